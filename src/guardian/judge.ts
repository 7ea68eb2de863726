// The judge: pure functions from a cohort's slots to a verdict. A breach must be confident,
// must have held since it began (found as the change point with the most evidence) for
// sustainFor, and must still hold in every fifth of that span and in the most recent one; an
// overwhelming breach may act at once. Too little data holds and is never called healthy.
import type { GuardPolicy, Confidences } from './guard-policy.js';
import type { SlotStats } from './cohort-window.js';
import { QuantileSketch } from './quantile-sketch.js';
import { binomialLlr, wilsonLower, wilsonUpper } from './statistics.js';

export type CheckName = 'errorRate' | 'p95' | 'p99';
export type CheckState = 'insufficient' | 'ok' | 'healthy' | 'breaching' | 'confirmed' | 'overwhelming';
export type Verdict = 'insufficient' | 'watching' | 'healthy' | 'breaching' | 'rollback';

export interface CheckResult {
  readonly check: CheckName;
  readonly state: CheckState;
  /** The proportion the treatment may not exceed: error rate, or share of requests slower than thresholdMs. */
  readonly limit: number;
  readonly thresholdMs: number | undefined;
  /** Over the judged span: since the breach began, or the last sustainFor. */
  readonly samples: number;
  readonly events: number;
  readonly observed: number;
  readonly lowerBound: number;
  readonly upperBound: number;
  readonly breachSinceMs: number | undefined;
}

export interface CohortSummary {
  readonly samples: number;
  readonly errorRate: number | undefined;
  readonly p95Ms: number | undefined;
  readonly p99Ms: number | undefined;
}

export interface Judgment {
  readonly verdict: Verdict;
  readonly reason: string;
  readonly checks: readonly CheckResult[];
  /** Over the last sustainFor. */
  readonly treatment: CohortSummary;
  readonly baseline: CohortSummary | undefined;
  /** The check that decided a rollback. */
  readonly decidingCheck: CheckResult | undefined;
}

export interface JudgeInput {
  /** End of the last complete slot; the slots end here, oldest first, one per slotMs, none missing. */
  readonly nowMs: number;
  readonly slotMs: number;
  readonly policy: GuardPolicy;
  readonly z: Confidences;
  readonly treatment: readonly SlotStats[];
  readonly baseline: readonly SlotStats[] | undefined;
}

interface Measure {
  readonly n: number;
  readonly k: number;
  readonly limit: number;
  readonly thresholdMs: number | undefined;
}

/** How one check counts events over a range of slots [from, to). */
interface CheckModel {
  readonly name: CheckName;
  measure(from: number, to: number): Measure | undefined;
}

const QUANTILE: Record<Exclude<CheckName, 'errorRate'>, number> = { p95: 0.95, p99: 0.99 };
const SHARE_ABOVE: Record<Exclude<CheckName, 'errorRate'>, number> = { p95: 0.05, p99: 0.01 };

// A completed slot never changes, yet the judge asks each slot the same question every tick:
// remember the answer per sketch, threshold and count (a reused ring slot has a new count).
const aboveCache = new WeakMap<QuantileSketch, Map<number, { count: number; above: number }>>();

function countAbove(slot: SlotStats, thresholdMs: number): number {
  if (slot.count === 0) return 0;
  let byThreshold = aboveCache.get(slot.sketch);
  if (byThreshold === undefined) aboveCache.set(slot.sketch, (byThreshold = new Map<number, { count: number; above: number }>()));
  const hit = byThreshold.get(thresholdMs);
  if (hit !== undefined && hit.count === slot.count) return hit.above;
  const above = slot.sketch.countAbove(thresholdMs);
  byThreshold.set(thresholdMs, { count: slot.count, above });
  return above;
}

function prefixSums(slots: readonly SlotStats[], value: (s: SlotStats) => number): Float64Array {
  const sums = new Float64Array(slots.length + 1);
  for (let i = 0; i < slots.length; i++) sums[i + 1] = (sums[i] as number) + value(slots[i] as SlotStats);
  return sums;
}

function mergedSketch(slots: readonly SlotStats[], from: number, to: number): QuantileSketch | undefined {
  let merged: QuantileSketch | undefined;
  for (let i = from; i < to; i++) {
    const s = slots[i] as SlotStats;
    if (s.count === 0) continue;
    merged ??= new QuantileSketch({ relativeAccuracy: s.sketch.relativeAccuracy });
    merged.merge(s.sketch);
  }
  return merged;
}

function models(input: JudgeInput): CheckModel[] {
  const { policy, treatment, baseline, z } = input;
  const n = prefixSums(treatment, (s) => s.count);
  const errors = prefixSums(treatment, (s) => s.errors);
  const relative = policy.relative;
  const out: CheckModel[] = [];
  if (relative === undefined) {
    out.push({ name: 'errorRate', measure: (a, b) => ({ n: n[b]! - n[a]!, k: errors[b]! - errors[a]!, limit: policy.maxErrorRate, thresholdMs: undefined }) });
    for (const [name, ms] of [
      ['p95', policy.maxP95Ms],
      ['p99', policy.maxP99Ms],
    ] as const) {
      const above = prefixSums(treatment, (s) => countAbove(s, ms));
      out.push({ name, measure: (a, b) => ({ n: n[b]! - n[a]!, k: above[b]! - above[a]!, limit: SHARE_ABOVE[name], thresholdMs: ms }) });
    }
    return out;
  }
  if (baseline === undefined) return out;
  const bn = prefixSums(baseline, (s) => s.count);
  const berrors = prefixSums(baseline, (s) => s.errors);
  const minBaseline = policy.minSamples;
  const increase = relative.maxErrorRateIncrease;
  if (increase !== undefined) {
    out.push({
      name: 'errorRate',
      measure: (a, b) => {
        const nb = bn[b]! - bn[a]!;
        if (nb < minBaseline) return undefined;
        // The baseline's own uncertainty counts in the treatment's favour.
        return { n: n[b]! - n[a]!, k: errors[b]! - errors[a]!, limit: Math.min(1, wilsonUpper(berrors[b]! - berrors[a]!, nb, z.zDetect) + increase), thresholdMs: undefined };
      },
    });
  }
  for (const [name, pct] of [
    ['p95', relative.maxP95IncreasePct],
    ['p99', relative.maxP99IncreasePct],
  ] as const) {
    if (pct === undefined) continue;
    out.push({
      name,
      measure: (a, b) => {
        if (bn[b]! - bn[a]! < minBaseline) return undefined;
        const base = mergedSketch(baseline, a, b)?.quantile(QUANTILE[name]);
        if (base === undefined) return undefined;
        const thresholdMs = base * (1 + pct / 100);
        let k = 0;
        for (let i = a; i < b; i++) k += countAbove(treatment[i] as SlotStats, thresholdMs);
        return { n: n[b]! - n[a]!, k, limit: SHARE_ABOVE[name], thresholdMs };
      },
    });
  }
  return out;
}

/** Count and error rate now; the quantiles, which need the slots merged, only when read. */
function summary(slots: readonly SlotStats[], from: number): CohortSummary {
  let samples = 0;
  let errors = 0;
  for (let i = from; i < slots.length; i++) {
    samples += (slots[i] as SlotStats).count;
    errors += (slots[i] as SlotStats).errors;
  }
  let sketch: QuantileSketch | undefined | null = null;
  const merged = () => (sketch === null ? (sketch = mergedSketch(slots, from, slots.length)) : sketch);
  return {
    samples,
    errorRate: samples > 0 ? errors / samples : undefined,
    get p95Ms() {
      return merged()?.quantile(0.95);
    },
    get p99Ms() {
      return merged()?.quantile(0.99);
    },
  };
}

/** The slot index where the breach most likely began: the suffix with the largest evidence above its limit. */
function changePoint(model: CheckModel, end: number): number | undefined {
  let best: number | undefined;
  let bestLlr = 0;
  for (let j = end - 1; j >= 0; j--) {
    const m = model.measure(j, end);
    if (m === undefined || m.n === 0 || m.k / m.n <= m.limit) continue;
    const llr = binomialLlr(m.k, m.n, m.limit);
    if (llr > bestLlr) {
      bestLlr = llr;
      best = j;
    }
  }
  return best;
}

function above(m: Measure | undefined): boolean {
  return m !== undefined && m.n > 0 && m.k / m.n > m.limit;
}

function judgeCheck(model: CheckModel, input: JudgeInput): CheckResult {
  const { policy, z, slotMs, nowMs } = input;
  const end = input.treatment.length;
  const sustainSlots = Math.max(1, Math.round(policy.sustainForMs / slotMs));
  const recentSlots = Math.max(1, Math.round(sustainSlots / 5));
  const windowStart = Math.max(0, end - sustainSlots);
  const result = (state: CheckState, m: Measure | undefined, since: number | undefined): CheckResult => ({
    check: model.name,
    state,
    limit: m?.limit ?? Number.NaN,
    thresholdMs: m?.thresholdMs,
    samples: m?.n ?? 0,
    events: m?.k ?? 0,
    observed: m && m.n > 0 ? m.k / m.n : Number.NaN,
    lowerBound: m ? wilsonLower(m.k, m.n, z.zConfirm) : 0,
    upperBound: m ? wilsonUpper(m.k, m.n, z.zDetect) : 1,
    breachSinceMs: since,
  });

  const recent = model.measure(Math.max(0, end - recentSlots), end);
  const recentBreaching = recent !== undefined && recent.n > 0 && wilsonLower(recent.k, recent.n, z.zDetect) > recent.limit;
  if (recentBreaching) {
    const start = changePoint(model, end) ?? end - recentSlots;
    const span = model.measure(start, end);
    const sinceMs = nowMs - (end - start) * slotMs;
    // A suspicion on fewer than minSamples requests is still too little data.
    if (span === undefined || span.n < policy.minSamples) return result('insufficient', span, sinceMs);
    const lower = wilsonLower(span.k, span.n, z.zConfirm);
    if (policy.fastPath && lower > policy.fastPathFactor * span.limit) return result('overwhelming', span, sinceMs);
    if (end - start >= sustainSlots && lower > span.limit && everyFifthHolds(model, start, end)) return result('confirmed', span, sinceMs);
    return result('breaching', span, sinceMs);
  }
  const window = model.measure(windowStart, end);
  if (window === undefined || window.n < policy.minSamples) return result('insufficient', window, undefined);
  if (wilsonUpper(window.k, window.n, z.zDetect) < window.limit) return result('healthy', window, undefined);
  return result('ok', window, undefined);
}

/** The breach held throughout: every fifth of [start, end) is above its limit (or saw no traffic). */
function everyFifthHolds(model: CheckModel, start: number, end: number): boolean {
  const length = end - start;
  for (let part = 0; part < 5; part++) {
    const a = start + Math.floor((part * length) / 5);
    const b = start + Math.floor(((part + 1) * length) / 5);
    if (b <= a) continue;
    const m = model.measure(a, b);
    if (m !== undefined && m.n > 0 && !above(m)) return false;
  }
  return true;
}

const CHECK_WORDS: Record<CheckName, string> = { errorRate: 'error rate', p95: 'P95', p99: 'P99' };

function describe(c: CheckResult, policy: GuardPolicy): string {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const since = c.breachSinceMs === undefined ? '' : ` since ${new Date(c.breachSinceMs).toISOString()}`;
  const basis = policy.relative ? ' (relative to the baseline)' : '';
  if (c.check === 'errorRate') {
    return `${CHECK_WORDS[c.check]} ${pct(c.observed)} over ${c.samples} requests, confidently above ${pct(c.limit)}${basis} (lower bound ${pct(c.lowerBound)})${since}`;
  }
  return `${pct(c.observed)} of ${c.samples} requests slower than ${Math.round(c.thresholdMs ?? 0)} ms, so ${CHECK_WORDS[c.check]} is above it${basis} (lower bound ${pct(c.lowerBound)} > ${pct(c.limit)})${since}`;
}

/** One decision for one flag from its cohorts' slots. */
export function judge(input: JudgeInput): Judgment {
  const sustainSlots = Math.max(1, Math.round(input.policy.sustainForMs / input.slotMs));
  const from = Math.max(0, input.treatment.length - sustainSlots);
  const treatment = summary(input.treatment, from);
  const baseline = input.baseline ? summary(input.baseline, from) : undefined;
  const checks = models(input).map((m) => judgeCheck(m, input));
  const deciding = checks.find((c) => c.state === 'overwhelming') ?? checks.find((c) => c.state === 'confirmed');
  if (deciding) {
    const how = deciding.state === 'overwhelming' ? 'overwhelming breach' : `breach held for ${Math.round(input.policy.sustainForMs / 1000)} s`;
    return { verdict: 'rollback', reason: `${how}: ${describe(deciding, input.policy)}`, checks, treatment, baseline, decidingCheck: deciding };
  }
  const breaching = checks.find((c) => c.state === 'breaching');
  if (breaching) return { verdict: 'breaching', reason: `breach suspected, not yet sustained: ${CHECK_WORDS[breaching.check]}`, checks, treatment, baseline, decidingCheck: undefined };
  if (checks.length === 0 || checks.some((c) => c.state === 'insufficient')) {
    return { verdict: 'insufficient', reason: `too little traffic to judge (${treatment.samples} requests in the window, ${input.policy.minSamples} needed)`, checks, treatment, baseline, decidingCheck: undefined };
  }
  if (checks.every((c) => c.state === 'healthy')) return { verdict: 'healthy', reason: 'every check confidently within its limit', checks, treatment, baseline, decidingCheck: undefined };
  return { verdict: 'watching', reason: 'within limits, without enough evidence yet to call it healthy', checks, treatment, baseline, decidingCheck: undefined };
}
