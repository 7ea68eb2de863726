// Every cohort (flag x variant) the guardian counts, each with its sliding window, keyed by
// event time. Once the guardian has told it which flags the store knows, cohorts of those flags
// are kept while they are live and everything else shares a small pool, oldest evicted first:
// junk flag keys cannot crowd out a live rollout. Outcomes older than the watermark (late) or
// ahead of the clock (future-dated) are counted and dropped, never mixed in.
import type { AggregateRefusal, AggregateSink, CohortAggregate } from './cohort-aggregate.js';
import { CohortWindow } from './cohort-window.js';
import { histogramProblem } from './latency-distribution.js';
import { requirePositiveInteger } from './option-checks.js';
import { QuantileSketch } from './quantile-sketch.js';

export interface CohortRegistryOptions {
  readonly slotMs: number;
  readonly slotCount: number;
  /** Cohorts of the store's flags kept at most (default 4096: 2,000 flags of two variants, with room). */
  readonly maxCohorts?: number;
  /** Cohorts of flags (or variants) the store does not know, kept at most (default 64). */
  readonly maxUnknownCohorts?: number;
  /** How far past the clock an outcome may be dated (default 60 s); beyond, it is future-dated and dropped. */
  readonly maxFutureMs?: number;
  /** Relative accuracy of the latency sketches (default 0.02). */
  readonly relativeAccuracy?: number;
}

export interface Cohort {
  readonly flagKey: string;
  readonly variant: string;
  readonly window: CohortWindow;
}

/** Flag keys the store knows, with their variants (undefined: any variant). */
export type KnownFlags = ReadonlyMap<string, ReadonlySet<string> | undefined>;

const DEFAULT_MAX_COHORTS = 4096;
const DEFAULT_MAX_UNKNOWN_COHORTS = 64;
const DEFAULT_MAX_FUTURE_MS = 60_000;

export class CohortRegistry implements AggregateSink {
  readonly slotMs: number;
  readonly slotCount: number;
  private readonly maxCohorts: number;
  private readonly maxUnknownCohorts: number;
  private readonly maxFutureMs: number;
  private readonly relativeAccuracy: number | undefined;
  /** flagKey -> variant -> window: two lookups and no key built per outcome. */
  private readonly windows = new Map<string, Map<string, CohortWindow>>();
  /** Cohorts outside the store's flags, oldest first. */
  private readonly unknown: Cohort[] = [];
  private known: KnownFlags | undefined;
  private cohortCount = 0;
  private dropped = 0;
  private lateOutcomes = 0;
  private futureOutcomes = 0;
  private readonly refusals: Record<AggregateRefusal, number> = { invalid: 0, late: 0, future: 0, 'cohort-limit': 0, 'other-source': 0 };
  private lastInvalid: string | undefined;
  private watermarkMs = Number.NEGATIVE_INFINITY;
  private horizonMs = Number.POSITIVE_INFINITY;

  constructor(options: CohortRegistryOptions) {
    this.slotMs = requirePositiveInteger('CohortRegistry', 'slotMs', options.slotMs);
    this.slotCount = requirePositiveInteger('CohortRegistry', 'slotCount', options.slotCount);
    this.maxCohorts = requirePositiveInteger('CohortRegistry', 'maxCohorts', options.maxCohorts ?? DEFAULT_MAX_COHORTS);
    this.maxUnknownCohorts = requirePositiveInteger('CohortRegistry', 'maxUnknownCohorts', options.maxUnknownCohorts ?? DEFAULT_MAX_UNKNOWN_COHORTS);
    this.maxFutureMs = options.maxFutureMs ?? DEFAULT_MAX_FUTURE_MS;
    // Windows are made on first sight; a sketch made now checks relativeAccuracy while a
    // bad value can still throw.
    new QuantileSketch({ relativeAccuracy: options.relativeAccuracy });
    this.relativeAccuracy = options.relativeAccuracy;
  }

  /** Outcomes refused because their cohort would have exceeded the caps, or evicted from the pool. */
  get droppedCohorts(): number {
    return this.dropped;
  }

  /** Outcomes dated before the slot the guardian has already judged. */
  get lateCount(): number {
    return this.lateOutcomes;
  }

  /** Outcomes dated further ahead of the clock than maxFutureMs. */
  get futureCount(): number {
    return this.futureOutcomes;
  }

  /** Counts one outcome for the cohort at event time `atMs`; O(1) amortized, never throws. */
  record(flagKey: string, variant: string, durationMs: number, failed: boolean, atMs: number): void {
    if (atMs < this.watermarkMs) {
      this.lateOutcomes++;
      return;
    }
    if (atMs > this.horizonMs) {
      this.futureOutcomes++;
      return;
    }
    let window = this.windows.get(flagKey)?.get(variant);
    if (window === undefined) {
      window = this.create(flagKey, variant);
      if (window === undefined) return;
    }
    if (!window.takesSpans()) {
      this.refusals['other-source']++;
      return;
    }
    window.record(durationMs, failed, atMs);
  }

  /**
   * Counts what a metric source reported for one cohort over an interval, in the slot of
   * `atMs`, under the same watermark, horizon and cohort caps as outcomes. Never throws: bad
   * numbers, late or future-dated intervals and cohorts over the caps are refused, counted by
   * reason, and the reason returned.
   */
  recordAggregate(aggregate: CohortAggregate): AggregateRefusal | undefined {
    const problem = aggregateProblem(aggregate);
    if (problem !== undefined) {
      this.refusals.invalid++;
      this.lastInvalid = problem;
      return 'invalid';
    }
    const { flagKey, variant, atMs } = aggregate;
    if (atMs < this.watermarkMs) {
      this.refusals.late++;
      return 'late';
    }
    if (atMs > this.horizonMs) {
      this.refusals.future++;
      return 'future';
    }
    const window = this.windows.get(flagKey)?.get(variant) ?? this.create(flagKey, variant);
    if (window !== undefined && !window.takes(aggregate.source)) {
      this.refusals['other-source']++;
      return 'other-source';
    }
    if (window === undefined || !window.recordAggregate(aggregate.requests, aggregate.errors, aggregate.latency, atMs, aggregate.source)) {
      this.refusals['cohort-limit']++;
      return 'cohort-limit';
    }
    return undefined;
  }

  /**
   * Counts an exposure: an evaluation of a flag with conversion checks that served `variant`
   * (see RolloutProvider's `tracking` option). Late, future and over-the-cap ones are dropped
   * as outcomes are, and counted with them.
   */
  recordExposure(flagKey: string, variant: string, atMs: number): void {
    this.windowAt(flagKey, variant, atMs)?.recordExposure(atMs);
  }

  /** Counts a tracked event (OpenFeature track()) attributed to the variant its context was served. */
  recordConversion(flagKey: string, variant: string, event: string, atMs: number): void {
    this.windowAt(flagKey, variant, atMs)?.recordConversion(event, atMs);
  }

  /** The cohort's window for an observation at `atMs`, made if need be; undefined (and counted) when late, future or over the caps. */
  private windowAt(flagKey: string, variant: string, atMs: number): CohortWindow | undefined {
    if (atMs < this.watermarkMs) {
      this.lateOutcomes++;
      return undefined;
    }
    if (atMs > this.horizonMs) {
      this.futureOutcomes++;
      return undefined;
    }
    return this.windows.get(flagKey)?.get(variant) ?? this.create(flagKey, variant);
  }

  /** Aggregates refused, by reason (other-source counts span outcomes too), and the last reason an aggregate was invalid. */
  get aggregateRefusals(): Readonly<Record<AggregateRefusal, number>> & { readonly lastInvalid?: string } {
    return { ...this.refusals, lastInvalid: this.lastInvalid };
  }

  window(flagKey: string, variant: string): CohortWindow | undefined {
    return this.windows.get(flagKey)?.get(variant);
  }

  *cohorts(): IterableIterator<Cohort> {
    for (const [flagKey, variants] of this.windows) {
      for (const [variant, window] of variants) yield { flagKey, variant, window };
    }
  }

  /**
   * The guardian's tick: outcomes before `watermarkMs` are late from now on, those past
   * `nowMs + maxFutureMs` future-dated; `known` says which cohorts are the store's. Cohorts of
   * flags the store no longer knows move to the pool; cohorts idle for a whole ring go.
   */
  advance(watermarkMs: number, nowMs: number, known: KnownFlags): void {
    this.watermarkMs = watermarkMs;
    this.horizonMs = nowMs + this.maxFutureMs;
    this.known = known;
    for (let i = this.unknown.length - 1; i >= 0; i--) {
      const c = this.unknown[i] as Cohort;
      if (this.isKnown(c.flagKey, c.variant)) this.unknown.splice(i, 1);
    }
    const idleBeforeMs = watermarkMs - this.slotCount * this.slotMs;
    for (const [flagKey, variants] of this.windows) {
      for (const [variant, window] of variants) {
        if (window.newestSlotEndMs() <= idleBeforeMs) this.remove(flagKey, variant);
        else if (!this.isKnown(flagKey, variant) && !this.unknown.some((c) => c.window === window)) this.unknown.push({ flagKey, variant, window });
      }
    }
    while (this.unknown.length > this.maxUnknownCohorts) this.evictOldestUnknown();
  }

  /** The clock went back by -shiftMs: every window starts afresh and nothing reads as late until the next tick. */
  clockStepped(shiftMs: number): void {
    for (const variants of this.windows.values()) for (const window of variants.values()) window.clear();
    this.watermarkMs += shiftMs;
    this.horizonMs += shiftMs;
  }

  private isKnown(flagKey: string, variant: string): boolean {
    if (this.known === undefined) return true;
    if (!this.known.has(flagKey)) return false;
    const variants = this.known.get(flagKey);
    return variants === undefined || variants.has(variant);
  }

  private create(flagKey: string, variant: string): CohortWindow | undefined {
    const known = this.isKnown(flagKey, variant);
    if (known && this.cohortCount - this.unknown.length >= this.maxCohorts) {
      this.dropped++;
      return undefined;
    }
    if (!known && this.unknown.length >= this.maxUnknownCohorts) this.evictOldestUnknown();
    let variants = this.windows.get(flagKey);
    if (variants === undefined) {
      variants = new Map();
      this.windows.set(flagKey, variants);
    }
    const window = new CohortWindow({ slotMs: this.slotMs, slotCount: this.slotCount, relativeAccuracy: this.relativeAccuracy });
    variants.set(variant, window);
    this.cohortCount++;
    if (!known) this.unknown.push({ flagKey, variant, window });
    return window;
  }

  private evictOldestUnknown(): void {
    const oldest = this.unknown.shift();
    if (oldest === undefined) return;
    this.dropped++;
    this.remove(oldest.flagKey, oldest.variant);
  }

  private remove(flagKey: string, variant: string): void {
    const variants = this.windows.get(flagKey);
    const window = variants?.get(variant);
    if (variants === undefined || window === undefined) return;
    variants.delete(variant);
    if (variants.size === 0) this.windows.delete(flagKey);
    this.cohortCount--;
    const at = this.unknown.findIndex((c) => c.window === window);
    if (at >= 0) this.unknown.splice(at, 1);
  }
}

/** What is wrong with an aggregate's fields, or undefined; the message names the field. */
function aggregateProblem(a: CohortAggregate): string | undefined {
  if (typeof a.flagKey !== 'string' || a.flagKey === '' || typeof a.variant !== 'string' || a.variant === '') return 'flagKey and variant must be non-empty strings';
  if (!(Number.isFinite(a.atMs) && a.atMs >= 0)) return `atMs is ${String(a.atMs)}; expected epoch milliseconds`;
  if (!(Number.isFinite(a.requests) && a.requests >= 0)) return `requests is ${String(a.requests)}; expected a count`;
  if (!(Number.isFinite(a.errors) && a.errors >= 0 && a.errors <= a.requests)) return `errors is ${String(a.errors)}; expected a count no larger than requests (${a.requests})`;
  if (a.latency !== undefined) {
    const problem = histogramProblem(a.latency);
    if (problem !== undefined) return `latency: ${problem}`;
  }
  return undefined;
}
