// Event time for ingested telemetry: an outcome counts in the slot of its span's end time (an
// exposure at its log time), and this gate decides whether that time is still usable. The
// watermark trails the guardian's clock by the allowed lateness: anything older is late, and
// anything further ahead of the clock than the allowed skew is future-dated; both are counted
// and refused, never silently mixed into the windows the guardian has already judged.
import type { Clock } from '../core/clock.js';

export interface EventTimeGateOptions {
  readonly clock: Clock;
  /** How far behind the clock an event may be and still count (default 30 s: batching and export delays). */
  readonly allowedLatenessMs?: number;
  /** How far ahead of the clock an event may be (clock skew between hosts; default 5 s). */
  readonly maxFutureSkewMs?: number;
}

export type EventTimeVerdict = 'on-time' | 'late' | 'future';

export const DEFAULT_ALLOWED_LATENESS_MS = 30_000;
export const DEFAULT_MAX_FUTURE_SKEW_MS = 5_000;

function requireNonNegative(name: string, value: number): number {
  if (typeof value !== 'number' || !(value >= 0 && value < Number.POSITIVE_INFINITY)) {
    throw new RangeError(`EventTimeGate: ${name} must be a non-negative finite number of ms, got ${String(value)}`);
  }
  return value;
}

export class EventTimeGate {
  readonly allowedLatenessMs: number;
  readonly maxFutureSkewMs: number;
  private readonly clock: Clock;
  private lateCount = 0;
  private futureCount = 0;

  constructor(options: EventTimeGateOptions) {
    this.clock = options.clock;
    this.allowedLatenessMs = requireNonNegative('allowedLatenessMs', options.allowedLatenessMs ?? DEFAULT_ALLOWED_LATENESS_MS);
    this.maxFutureSkewMs = requireNonNegative('maxFutureSkewMs', options.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS);
  }

  /** Event times before this are late. */
  get watermarkMs(): number {
    return this.clock.now() - this.allowedLatenessMs;
  }

  get late(): number {
    return this.lateCount;
  }

  get future(): number {
    return this.futureCount;
  }

  /** Judges one event time and counts a refusal. */
  admit(eventMs: number): EventTimeVerdict {
    const now = this.clock.now();
    if (!(eventMs >= now - this.allowedLatenessMs)) {
      this.lateCount++;
      return 'late';
    }
    if (eventMs > now + this.maxFutureSkewMs) {
      this.futureCount++;
      return 'future';
    }
    return 'on-time';
  }
}
