// Parsers for the CLI's duration and time arguments, with bounds: each refusal says what was
// expected and gives an example to type. A duration beyond what a timer can hold (about 24.8
// days) would fire at once, so bounds are part of the type, not an afterthought.
import { InvalidArgumentError } from 'commander';
import { formatDurationMs, parseDurationMs } from '../core/duration.js';

/** The longest delay Node's timers hold; longer ones fire after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

export interface DurationBounds {
  readonly minMs: number;
  readonly maxMs: number;
  /** What to type, such as `5s`. */
  readonly example: string;
}

/** A commander parser for a duration within `bounds`. */
export function durationArgument(bounds: DurationBounds): (text: string) => number {
  return (text: string) => {
    const ms = parseDurationMs(text);
    const range = `from ${formatDurationMs(bounds.minMs)} to ${formatDurationMs(bounds.maxMs)}`;
    if (ms === undefined) throw new InvalidArgumentError(`"${text}" is not a duration; write it like ${bounds.example} (${range})`);
    if (ms < bounds.minMs || ms > bounds.maxMs) throw new InvalidArgumentError(`"${text}" is out of range; expected a duration ${range}, such as ${bounds.example}`);
    return ms;
  };
}

// A calendar date with a time and a zone; a bare date is midnight UTC. Numbers alone
// (`1`, `2026`) are refused: Date.parse reads them as years.
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2}))?$/i;
const RELATIVE = /^([+-])(.+)$/;

/**
 * A commander parser for an instant: ISO 8601 (`2026-11-08T09:00:00Z`), relative to now
 * (`+10m`, `-1h`), or `now` when `allowNow`. `now` is read when the argument is parsed.
 */
export function instantArgument(now: () => number, options: { allowNow?: boolean } = {}): (text: string) => number {
  const expected = `expected an ISO 8601 date-time with a zone such as 2026-11-08T09:00:00Z, or a time relative to now such as +10m or -1h${options.allowNow ? ', or now' : ''}`;
  return (text: string) => {
    const s = text.trim();
    if (options.allowNow && s === 'now') return now();
    const relative = RELATIVE.exec(s);
    if (relative !== null) {
      const ms = parseDurationMs(relative[2] as string);
      if (ms === undefined || /^\d+$/.test(relative[2] as string)) throw new InvalidArgumentError(`"${text}" is not a time; ${expected}`);
      return now() + (relative[1] === '-' ? -ms : ms);
    }
    const ms = ISO_INSTANT.test(s) ? Date.parse(s) : Number.NaN;
    if (Number.isNaN(ms)) throw new InvalidArgumentError(`"${text}" is not a time; ${expected}`);
    return ms;
  };
}
