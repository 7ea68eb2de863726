// The wall clock, for composition roots and defaults; logic takes a Clock instead.
import type { Clock } from '../core/clock.js';

export const systemClock: Clock = { now: () => Date.now() };
