// The last hour of each guarded flag for the status page's charts: one point per `pointMs`
// (a minute by default) with both cohorts' request count, error rate, P95 and P99. The cohort
// windows keep only a few minutes, so each point is merged from them once the guardian's
// watermark has passed it and kept here, bounded: an hour of points per flag, a cap on flags,
// and a flag's points go with the flag (deleted from the store, or not guarded for an hour).
import type { CohortRegistry } from '../guardian/cohort-registry.js';
import type { GuardPolicy } from '../guardian/guard-policy.js';
import type { GuardianTick } from '../guardian/rollout-guardian.js';

export interface HistoryOptions {
  readonly registry: CohortRegistry;
  /** How far back points are kept (default one hour). */
  readonly horizonMs?: number;
  /** One point per this much event time: a multiple of the slot (default about a minute). */
  readonly pointMs?: number;
  /** Flags kept at most; the one updated longest ago goes first (default 1000). */
  readonly maxFlags?: number;
}

/** One cohort's numbers over the points, oldest first; null where the cohort saw nothing. */
export interface CohortSeries {
  readonly requests: number[];
  readonly errorRate: (number | null)[];
  readonly p95Ms: (number | null)[];
  readonly p99Ms: (number | null)[];
}

/** The guard's absolute limits, drawn on the charts. */
export interface HistoryLimits {
  readonly errorRate: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
}

export interface FlagHistory {
  readonly flag: string;
  readonly treatmentVariant: string;
  readonly baselineVariant: string;
  readonly limits: HistoryLimits;
  /** Start of the first point (ms since the epoch); point i starts at fromMs + i * pointMs. */
  readonly fromMs: number;
  readonly treatment: CohortSeries;
  readonly baseline: CohortSeries;
}

export interface HistoryView {
  readonly pointMs: number;
  readonly horizonMs: number;
  readonly flags: FlagHistory[];
}

interface CohortPoint {
  readonly requests: number;
  readonly errorRate: number | null;
  readonly p95Ms: number | null;
  readonly p99Ms: number | null;
}

interface Point {
  readonly startMs: number;
  readonly treatment: CohortPoint;
  readonly baseline: CohortPoint;
}

interface Entry {
  treatmentVariant: string;
  baselineVariant: string;
  limits: HistoryLimits;
  /** Start of the next point to record. */
  nextMs: number;
  readonly points: Point[];
}

const HOUR_MS = 3_600_000;
const EMPTY: CohortPoint = { requests: 0, errorRate: null, p95Ms: null, p99Ms: null };

/** About a minute of slots, but never more than half of what the cohort windows hold. */
export function defaultPointMs(slotMs: number, slotCount: number): number {
  const slots = Math.max(1, Math.min(Math.round(60_000 / slotMs), Math.floor(slotCount / 2)));
  return slots * slotMs;
}

const round = (value: number | undefined, digits: number): number | null => (value === undefined ? null : Number(value.toFixed(digits)));

export class RolloutHistory {
  readonly pointMs: number;
  readonly horizonMs: number;
  private readonly registry: CohortRegistry;
  private readonly maxFlags: number;
  private readonly capacity: number;
  /** In order of last update, oldest first, so the cap evicts the flag idle longest. */
  private readonly flags = new Map<string, Entry>();

  constructor(options: HistoryOptions) {
    this.registry = options.registry;
    const slotMs = options.registry.slotMs;
    this.pointMs = options.pointMs ?? defaultPointMs(slotMs, options.registry.slotCount);
    if (!Number.isInteger(this.pointMs) || this.pointMs <= 0 || this.pointMs % slotMs !== 0)
      throw new RangeError(`RolloutHistory: pointMs must be a positive multiple of the slot (${slotMs} ms), got ${this.pointMs}`);
    this.horizonMs = options.horizonMs ?? HOUR_MS;
    this.maxFlags = options.maxFlags ?? 1000;
    this.capacity = Math.max(1, Math.ceil(this.horizonMs / this.pointMs));
  }

  /** Takes a guardian tick: records every point its watermark has closed. Never throws. */
  record(tick: GuardianTick): void {
    const guarded = new Set<string>();
    for (const flag of tick.flags) {
      guarded.add(flag.flagKey);
      let entry = this.flags.get(flag.flagKey);
      if (entry === undefined || entry.nextMs > tick.watermarkMs + this.pointMs) {
        // New, or the clock went back past it: start from the oldest point the windows still hold whole.
        const heldFromMs = tick.watermarkMs - this.registry.slotMs * this.registry.slotCount;
        entry = {
          treatmentVariant: flag.treatmentVariant,
          baselineVariant: flag.baselineVariant,
          limits: limitsOf(flag.policy),
          nextMs: Math.ceil(heldFromMs / this.pointMs) * this.pointMs,
          points: [],
        };
      }
      this.flags.delete(flag.flagKey);
      this.flags.set(flag.flagKey, entry);
      entry.treatmentVariant = flag.treatmentVariant;
      entry.baselineVariant = flag.baselineVariant;
      if (
        entry.limits.errorRate !== flag.policy.maxErrorRate ||
        entry.limits.p95Ms !== flag.policy.maxP95Ms ||
        entry.limits.p99Ms !== flag.policy.maxP99Ms
      )
        entry.limits = limitsOf(flag.policy);
      // After a long stall only the last hour matters; points the windows no longer hold read as empty.
      entry.nextMs = Math.max(entry.nextMs, Math.floor((tick.watermarkMs - this.horizonMs) / this.pointMs) * this.pointMs);
      while (entry.nextMs + this.pointMs <= tick.watermarkMs) {
        entry.points.push(this.point(flag.flagKey, entry, entry.nextMs));
        entry.nextMs += this.pointMs;
      }
      this.trim(entry, tick.watermarkMs);
    }
    for (const [flagKey, entry] of this.flags) {
      if (guarded.has(flagKey)) continue;
      this.trim(entry, tick.watermarkMs);
      if (entry.points.length === 0) this.flags.delete(flagKey);
    }
    while (this.flags.size > this.maxFlags) {
      const oldest = this.flags.keys().next().value as string;
      this.flags.delete(oldest);
    }
  }

  /** Drops the history of flags the store no longer has. */
  retain(known: (flagKey: string) => boolean): void {
    for (const flagKey of this.flags.keys()) if (!known(flagKey)) this.flags.delete(flagKey);
  }

  /** Every flag's points (or one flag's), only those starting at or after `sinceMs` when given. */
  view(query: { readonly flag?: string; readonly sinceMs?: number } = {}): HistoryView {
    const flags: FlagHistory[] = [];
    const add = (flag: string, entry: Entry) => {
      const points = query.sinceMs === undefined ? entry.points : entry.points.filter((p) => p.startMs >= (query.sinceMs as number));
      flags.push({
        flag,
        treatmentVariant: entry.treatmentVariant,
        baselineVariant: entry.baselineVariant,
        limits: entry.limits,
        fromMs: points[0]?.startMs ?? entry.nextMs,
        treatment: series(points, (p) => p.treatment),
        baseline: series(points, (p) => p.baseline),
      });
    };
    if (query.flag !== undefined) {
      const entry = this.flags.get(query.flag);
      if (entry !== undefined) add(query.flag, entry);
    } else {
      for (const [flag, entry] of this.flags) add(flag, entry);
      flags.sort((a, b) => (a.flag < b.flag ? -1 : a.flag > b.flag ? 1 : 0));
    }
    return { pointMs: this.pointMs, horizonMs: this.horizonMs, flags };
  }

  /** Flags with history kept. */
  get size(): number {
    return this.flags.size;
  }

  private point(flagKey: string, entry: Entry, startMs: number): Point {
    return {
      startMs,
      treatment: this.cohortPoint(flagKey, entry.treatmentVariant, startMs),
      baseline: this.cohortPoint(flagKey, entry.baselineVariant, startMs),
    };
  }

  private cohortPoint(flagKey: string, variant: string, startMs: number): CohortPoint {
    const window = this.registry.window(flagKey, variant);
    if (window === undefined) return EMPTY;
    const merged = window.merged(startMs, startMs + this.pointMs);
    if (merged.count === 0) return EMPTY;
    return {
      requests: merged.count,
      errorRate: round(merged.errors / merged.count, 6),
      // A tenth of a millisecond is finer than the sketch's 2% error already.
      p95Ms: round(merged.sketch.quantile(0.95), 1),
      p99Ms: round(merged.sketch.quantile(0.99), 1),
    };
  }

  private trim(entry: Entry, watermarkMs: number): void {
    // A point stays while any of it lies within the horizon.
    const fromMs = watermarkMs - this.horizonMs;
    let drop = 0;
    while (
      drop < entry.points.length &&
      ((entry.points[drop] as Point).startMs + this.pointMs <= fromMs || entry.points.length - drop > this.capacity)
    )
      drop++;
    if (drop > 0) entry.points.splice(0, drop);
  }
}

function limitsOf(policy: GuardPolicy): HistoryLimits {
  return { errorRate: policy.maxErrorRate, p95Ms: policy.maxP95Ms, p99Ms: policy.maxP99Ms };
}

function series(points: readonly Point[], pick: (p: Point) => CohortPoint): CohortSeries {
  const out: CohortSeries = { requests: [], errorRate: [], p95Ms: [], p99Ms: [] };
  for (const p of points) {
    const c = pick(p);
    out.requests.push(c.requests);
    out.errorRate.push(c.errorRate);
    out.p95Ms.push(c.p95Ms);
    out.p99Ms.push(c.p99Ms);
  }
  return out;
}
