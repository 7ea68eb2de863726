// The emergency flags every configuration has, off unless the file or an override turns
// them on. `emergency_shutdown` on sends every other flag to its baseline and stops the
// guardian and plans from acting; the other two are for the application to read.
import type { FlagDefinition } from './flag-schema.js';

export const EMERGENCY_SHUTDOWN = 'emergency_shutdown';
export const READ_ONLY_MODE = 'read_only_mode';
export const MAINTENANCE_MODE = 'maintenance_mode';

const off = (description: string): FlagDefinition => ({
  description,
  variants: { on: true, off: false },
  defaultVariant: 'off',
  state: 'enabled',
});

export const EMERGENCY_FLAGS: ReadonlyMap<string, FlagDefinition> = new Map([
  [EMERGENCY_SHUTDOWN, off('Every rollout serves its baseline; the guardian and plans stop acting.')],
  [READ_ONLY_MODE, off('The application should refuse writes.')],
  [MAINTENANCE_MODE, off('The application should show its maintenance page.')],
]);

export function isEmergencyFlag(key: string): boolean {
  return EMERGENCY_FLAGS.has(key);
}
