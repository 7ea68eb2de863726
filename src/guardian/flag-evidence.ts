// The evidence for one guarded flag since its rollout (or plan step) began: one CheckEvidence
// per check, fed once per completed slot with the treatment's counts against the limit in force
// then. In relative mode the limit comes from the baseline's data before that slot, bounded
// anytime-valid, with the absolute limits as a ceiling unless turned off.
import { CheckEvidence } from './check-evidence.js';
import type { SlotStats } from './cohort-window.js';
import type { GuardPolicy } from './guard-policy.js';
import type { LatencyDistribution } from './latency-distribution.js';
import { confidenceSequence } from './statistics.js';

export type CheckName = 'errorRate' | 'p95' | 'p99' | 'conversion';
type LatencyCheck = 'p95' | 'p99';
/** Where a check's limit came from for the latest slot. */
export type LimitBasis = 'absolute' | 'relative' | 'absolute-fallback';

export const SHARE_ABOVE: Record<LatencyCheck, number> = { p95: 0.05, p99: 0.01 };
const QUANTILE: Record<LatencyCheck, number> = { p95: 0.95, p99: 0.99 };

/**
 * A conversion check's totals since the start: exposures (evaluations served) and tracked
 * events per cohort. Its test is on the baseline's share of the two cohorts' events, which,
 * given the exposures, exceeds Eb / ((1 - maxDrop) Et + Eb) exactly when the treatment's rate
 * has dropped more than maxDrop below the baseline's (two Poisson rates compared conditionally).
 */
export interface ConversionTotals {
  readonly event: string;
  readonly maxDrop: number;
  treatmentExposures: number;
  baselineExposures: number;
  treatmentEvents: number;
  baselineEvents: number;
}

export interface CheckSlot {
  readonly name: CheckName;
  readonly evidence: CheckEvidence;
  /** The latency threshold of the latest slot (latency checks). */
  thresholdMs: number | undefined;
  basis: LimitBasis;
  /**
   * Latency checks on metric histograms: the bucket the threshold fell inside in the latest
   * slot, whose counts were interpolated; undefined when the threshold is a bucket boundary
   * (exact) or only spans were counted.
   */
  interpolatedBetweenMs: readonly [number, number] | undefined;
  /** Conversion checks: the event, its allowed drop and the counts since the start. */
  readonly conversion?: ConversionTotals;
}

export interface FlagEvidenceOptions {
  readonly policy: GuardPolicy;
  /** When the rollout or step began: evidence counts from here. */
  readonly startMs: number;
  /** What identifies this rollout or step; a new one starts new evidence. */
  readonly epochKey: string;
  readonly slotMs: number;
  /** Only these checks (default: every check the policy has); the warning levels judge a subset. */
  readonly only?: readonly CheckName[];
}

export class FlagEvidence {
  readonly policy: GuardPolicy;
  readonly epochKey: string;
  readonly checks: CheckSlot[] = [];
  /** The baseline's counts per slot over the last sustainFor, newest last: the relative error limit's reference. */
  private readonly baselineRecent: { n: number; errors: number }[] = [];
  private readonly recentSlots: number;
  private foldedThroughMs: number;
  private startedMs: number;

  constructor(options: FlagEvidenceOptions) {
    this.policy = options.policy;
    this.startedMs = options.startMs;
    this.epochKey = options.epochKey;
    this.foldedThroughMs = options.startMs;
    this.recentSlots = Math.max(1, Math.ceil(this.policy.sustainForMs / options.slotMs));
    const relative = this.policy.relative;
    const ceiling = relative === undefined || relative.ceiling;
    const make = (name: Exclude<CheckName, 'conversion'>): void => {
      if (options.only !== undefined && !options.only.includes(name)) return;
      const evidence = new CheckEvidence({
        alpha: 1 - this.policy.confidence,
        restartEveryMs: this.policy.sustainForMs,
        fineMs: this.policy.sustainForMs / 2,
        fastPathFactor: this.policy.fastPath ? this.policy.fastPathFactor : undefined,
        startMs: options.startMs,
      });
      this.checks.push({ name, evidence, thresholdMs: name === 'errorRate' ? undefined : this.absoluteMs(name), basis: relative === undefined ? 'absolute' : 'absolute-fallback', interpolatedBetweenMs: undefined });
    };
    if (ceiling || relative?.maxErrorRateIncrease !== undefined) make('errorRate');
    if (ceiling || relative?.maxP95IncreasePct !== undefined) make('p95');
    if (ceiling || relative?.maxP99IncreasePct !== undefined) make('p99');
    for (const { event, maxDrop } of this.policy.conversions) {
      // Always against the baseline, never fast: a business metric moves slowly and is noisy.
      const evidence = new CheckEvidence({ alpha: 1 - this.policy.confidence, restartEveryMs: this.policy.sustainForMs, fineMs: this.policy.sustainForMs / 2, fastPathFactor: undefined, startMs: options.startMs, scale: 'odds' });
      const conversion = { event, maxDrop, treatmentExposures: 0, baselineExposures: 0, treatmentEvents: 0, baselineEvents: 0 };
      this.checks.push({ name: 'conversion', evidence, thresholdMs: undefined, basis: 'relative', interpolatedBetweenMs: undefined, conversion });
    }
  }

  /** When the evidence began: the rollout's or step's start as the guardian saw it. */
  get startMs(): number {
    return this.startedMs;
  }

  /** End of the last slot folded in. */
  get throughMs(): number {
    return this.foldedThroughMs;
  }

  /** Baseline requests in the recent window the relative limits are taken from, for the verdict's reason. */
  get baselineCount(): number {
    return this.recentBaseline().n;
  }

  /**
   * Folds in the slot [startMs, startMs + slotMs): the treatment's counts judged against the
   * limits, relative ones taken from the baseline's data before this slot (`baselineReference`
   * is the baseline's recent latency, asked for only in relative latency mode).
   */
  fold(startMs: number, endMs: number, treatment: SlotStats, baseline: SlotStats | undefined, baselineReference: () => LatencyDistribution | undefined): void {
    if (endMs <= this.foldedThroughMs) return;
    this.foldedThroughMs = endMs;
    const relative = this.policy.relative;
    if (baseline !== undefined) {
      this.baselineRecent.push({ n: baseline.count, errors: baseline.errors });
      if (this.baselineRecent.length > this.recentSlots) this.baselineRecent.shift();
    }
    // The same slot's baseline is independent of the treatment's outcomes, so it may set the
    // limit the treatment is tested against: a global incident raises both together.
    const reference = this.recentBaseline();
    const thinBaseline = reference.n < this.policy.minSamples;
    for (const check of this.checks) {
      if (check.conversion !== undefined) {
        foldConversion(check, startMs, endMs, treatment, baseline);
        continue;
      }
      if (check.name === 'conversion') continue;
      if (check.name === 'errorRate') {
        let p0 = this.policy.maxErrorRate;
        check.basis = relative === undefined ? 'absolute' : 'absolute-fallback';
        if (relative?.maxErrorRateIncrease !== undefined && !thinBaseline) {
          // The baseline's anytime-valid upper bound: its own uncertainty counts in the treatment's favour.
          const upper = confidenceSequence(reference.errors, reference.n, (1 - this.policy.confidence) / 4).upper;
          const relativeLimit = Math.min(1, upper + relative.maxErrorRateIncrease);
          p0 = relative.ceiling ? Math.min(p0, relativeLimit) : relativeLimit;
          check.basis = 'relative';
        }
        check.evidence.fold(startMs, endMs, treatment.count, treatment.errors, p0);
        continue;
      }
      let thresholdMs = this.absoluteMs(check.name);
      check.basis = relative === undefined ? 'absolute' : 'absolute-fallback';
      const pct = check.name === 'p95' ? relative?.maxP95IncreasePct : relative?.maxP99IncreasePct;
      if (pct !== undefined && relative !== undefined) {
        const reference = baselineReference();
        if (reference !== undefined && reference.count >= this.policy.minSamples) {
          const q = baselineQuantileUpper(reference, QUANTILE[check.name], 1 - this.policy.confidence);
          if (q !== undefined) {
            const relativeMs = q * (1 + pct / 100);
            thresholdMs = relative.ceiling ? Math.min(thresholdMs, relativeMs) : relativeMs;
            check.basis = 'relative';
          }
        }
      }
      check.thresholdMs = thresholdMs;
      const observed = treatment.sketch.count;
      const above = observed === 0 ? 0 : treatment.sketch.countAbove(thresholdMs);
      if (observed > 0) check.interpolatedBetweenMs = treatment.sketch.resolutionAt(thresholdMs).betweenMs;
      check.evidence.fold(startMs, endMs, observed, above, SHARE_ABOVE[check.name]);
    }
  }

  /** The baseline's latest fifth of sustainFor, widened to the whole sustainFor when that is too thin. */
  private recentBaseline(): { n: number; errors: number } {
    const short = Math.max(1, Math.round(this.recentSlots / 5));
    let n = 0;
    let errors = 0;
    for (let i = this.baselineRecent.length - 1, taken = 0; i >= 0; i--, taken++) {
      if (taken >= short && n >= this.policy.minSamples) break;
      const s = this.baselineRecent[i] as { n: number; errors: number };
      n += s.n;
      errors += s.errors;
    }
    return { n, errors };
  }

  /** Marks [from, endMs) as passed with no data the guardian could read (a stalled tick, a gap). */
  skipTo(endMs: number): void {
    if (endMs > this.foldedThroughMs) this.foldedThroughMs = endMs;
  }

  /** Moves every time held by `deltaMs` (the clock stepped), so the evidence keeps its meaning. */
  shift(deltaMs: number): void {
    this.foldedThroughMs += deltaMs;
    this.startedMs += deltaMs;
    for (const check of this.checks) check.evidence.shift(deltaMs);
  }

  byteSize(): number {
    let bytes = 300;
    for (const check of this.checks) bytes += check.evidence.byteSize();
    return bytes;
  }

  private absoluteMs(name: LatencyCheck): number {
    return name === 'p95' ? this.policy.maxP95Ms : this.policy.maxP99Ms;
  }
}

/**
 * A latency the baseline's q-quantile is confidently below: the empirical quantile at the rank
 * the share above could still reach, so a baseline with few requests gives a generous limit.
 */
function baselineQuantileUpper(sketch: LatencyDistribution, q: number, alpha: number): number | undefined {
  const n = sketch.count;
  const share = confidenceSequence(Math.round((1 - q) * n), n, alpha).lower;
  return sketch.quantile(Math.min(1, Math.max(q, 1 - share)));
}

/** One slot of a conversion check: the baseline's share of both cohorts' events, against the share a drop of maxDrop would give. */
function foldConversion(check: CheckSlot, startMs: number, endMs: number, treatment: SlotStats, baseline: SlotStats | undefined): void {
  const c = check.conversion as ConversionTotals;
  const et = treatment.exposures ?? 0;
  const eb = baseline?.exposures ?? 0;
  const ct = treatment.conversions?.get(c.event) ?? 0;
  const cb = baseline?.conversions?.get(c.event) ?? 0;
  // Without exposures on both sides a slot says nothing about the ratio of the two rates.
  if (et === 0 || eb === 0) {
    check.evidence.fold(startMs, endMs, 0, 0, 0.5);
    return;
  }
  c.treatmentExposures += et;
  c.baselineExposures += eb;
  c.treatmentEvents += ct;
  c.baselineEvents += cb;
  check.evidence.fold(startMs, endMs, ct + cb, cb, eb / ((1 - c.maxDrop) * et + eb));
}
