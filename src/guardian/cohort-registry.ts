// Every cohort (flag x variant) the guardian has seen, each with its sliding window. The
// number of cohorts is capped so that a flood of flag keys cannot grow memory without bound.
import { CohortWindow } from './cohort-window.js';
import { requirePositiveInteger } from './option-checks.js';
import { QuantileSketch } from './quantile-sketch.js';

export interface CohortRegistryOptions {
  readonly slotMs: number;
  readonly slotCount: number;
  /** Cohorts kept at most (default 1000); outcomes of further cohorts are dropped and counted. */
  readonly maxCohorts?: number;
  /** Relative accuracy of the latency sketches (default 0.01). */
  readonly relativeAccuracy?: number;
}

export interface Cohort {
  readonly flagKey: string;
  readonly variant: string;
  readonly window: CohortWindow;
}

const DEFAULT_MAX_COHORTS = 1000;

export class CohortRegistry {
  readonly slotMs: number;
  readonly slotCount: number;
  private readonly maxCohorts: number;
  private readonly relativeAccuracy: number | undefined;
  /** flagKey -> variant -> window: two lookups and no key built per outcome. */
  private readonly windows = new Map<string, Map<string, CohortWindow>>();
  private cohortCount = 0;
  private dropped = 0;

  constructor(options: CohortRegistryOptions) {
    this.slotMs = requirePositiveInteger('CohortRegistry', 'slotMs', options.slotMs);
    this.slotCount = requirePositiveInteger('CohortRegistry', 'slotCount', options.slotCount);
    this.maxCohorts = requirePositiveInteger('CohortRegistry', 'maxCohorts', options.maxCohorts ?? DEFAULT_MAX_COHORTS);
    // Windows are made on first sight; a sketch made now checks relativeAccuracy while a
    // bad value can still throw.
    new QuantileSketch({ relativeAccuracy: options.relativeAccuracy });
    this.relativeAccuracy = options.relativeAccuracy;
  }

  /** Outcomes refused because their cohort would have exceeded maxCohorts. */
  get droppedCohorts(): number {
    return this.dropped;
  }

  /** Counts one outcome for the cohort; O(1) amortized, never throws. */
  record(flagKey: string, variant: string, durationMs: number, failed: boolean, nowMs: number): void {
    let window = this.windows.get(flagKey)?.get(variant);
    if (window === undefined) {
      window = this.create(flagKey, variant);
      if (window === undefined) return;
    }
    window.record(durationMs, failed, nowMs);
  }

  window(flagKey: string, variant: string): CohortWindow | undefined {
    return this.windows.get(flagKey)?.get(variant);
  }

  *cohorts(): IterableIterator<Cohort> {
    for (const [flagKey, variants] of this.windows) {
      for (const [variant, window] of variants) yield { flagKey, variant, window };
    }
  }

  private create(flagKey: string, variant: string): CohortWindow | undefined {
    if (this.cohortCount >= this.maxCohorts) {
      this.dropped++;
      return undefined;
    }
    let variants = this.windows.get(flagKey);
    if (variants === undefined) {
      variants = new Map();
      this.windows.set(flagKey, variants);
    }
    const window = new CohortWindow({ slotMs: this.slotMs, slotCount: this.slotCount, relativeAccuracy: this.relativeAccuracy });
    variants.set(variant, window);
    this.cohortCount++;
    return window;
  }
}
