// The judge: a pure function from a flag's evidence since its rollout or step began to one
// verdict. A rollback needs an anytime-valid test to reject the limit and the breach to have
// held for sustainFor since its onset and still hold; the fast path needs its own stricter test
// to reject fastPathFactor x the limit. `healthy` needs enough requests since the step began to
// have caught twice the limit, with no breach in sight. Every reason says what it stands on.
import type { CheckName, ConversionTotals, FlagEvidence, LimitBasis } from './flag-evidence.js';
import type { GuardPolicy } from './guard-policy.js';
import { bernoulliKl } from './statistics.js';
import type { Verdict } from '../telemetry/names.js';
import type { OutcomeSource } from './cohort-aggregate.js';

export type { CheckName } from './flag-evidence.js';
export type CheckState = 'insufficient' | 'ok' | 'healthy' | 'breaching' | 'confirmed' | 'overwhelming';
export type { Verdict } from '../telemetry/names.js';

export interface CheckResult {
  readonly check: CheckName;
  readonly state: CheckState;
  /** The proportion the treatment may not exceed: error rate, or share of requests slower than thresholdMs. */
  readonly limit: number;
  readonly thresholdMs: number | undefined;
  /** Where the limit came from: the policy, the baseline, or the policy because the baseline was too thin. */
  readonly basis: LimitBasis;
  /** Conversion checks: the tracked event, its allowed drop and each cohort's events per exposure since the start. */
  readonly conversion?: { readonly event: string; readonly maxDrop: number; readonly treatmentRate: number; readonly baselineRate: number; readonly treatmentExposures: number; readonly baselineExposures: number };
  /** Latency from metric histograms: the bucket the threshold fell inside (its counts interpolated); undefined when exact. */
  readonly interpolatedBetweenMs?: readonly [number, number];
  /** Since the rollout or plan step began. */
  readonly samples: number;
  readonly events: number;
  readonly observed: number;
  /** Anytime-valid bounds on the rate since the start. */
  readonly lowerBound: number;
  readonly upperBound: number;
  /** The strongest sequential test's e-value and the value it must reach to act. */
  readonly evidence: number;
  readonly evidenceNeeded: number;
  /** The breach's estimated onset, and how long it has held since then (event time). */
  readonly breachSinceMs: number | undefined;
  readonly heldMs: number;
  /** Over the span since the onset. */
  readonly breachSamples: number;
  readonly breachObserved: number;
  /** Requests needed since the start to call the check healthy. */
  readonly samplesNeeded: number;
}

export interface CohortSummary {
  /** Where the cohort's numbers came from (spans, OTLP metrics, Prometheus, a MetricReader); absent when unknown. */
  readonly sources?: readonly OutcomeSource[];
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
  /** Event time the evidence reaches. */
  readonly throughMs: number;
  /** When the evidence began: the rollout's or step's start as the guardian saw it. */
  readonly sinceMs: number;
  /** A warning level crossed (judged like a limit, never a rollback); absent when none is. */
  readonly warning?: WarningJudgment;
}

export interface WarningJudgment {
  /** The warning check that crossed its level: confirmed over sustainFor, or overwhelming. */
  readonly check: CheckResult;
  readonly reason: string;
  /** The warning checks whose tests reject the level, as judged (the others are not read). */
  readonly checks: readonly CheckResult[];
}

export interface JudgeInput {
  readonly evidence: FlagEvidence;
  /** The cohorts over the last sustainFor, for the record. */
  readonly treatment: CohortSummary;
  readonly baseline: CohortSummary | undefined;
  /** The evidence against the warning levels, when the policy has any (see warnPolicyOf). */
  readonly warn?: FlagEvidence;
}

/** Healthy means the data since the start would have caught a breach this many times the limit. */
const HEALTHY_POWER_MULTIPLE = 2;

const CHECK_WORDS: Record<CheckName, string> = { errorRate: 'error rate', p95: 'P95', p99: 'P99', conversion: 'conversion' };

const pct = (x: number): string => (Number.isFinite(x) ? `${(x * 100).toFixed(2)}%` : '-');
const count = (n: number): string => Math.round(n).toLocaleString('en-US');
const seconds = (ms: number): string => `${Math.round(ms / 1000)} s`;

/** Requests that would catch HEALTHY_POWER_MULTIPLE x the limit on average (Wald). */
function samplesToRuleOut(limit: number, logThreshold: number, minSamples: number): number {
  if (!(limit > 0 && limit < 1)) return minSamples;
  const breach = Math.min(HEALTHY_POWER_MULTIPLE * limit, (1 + limit) / 2);
  return Math.max(minSamples, Math.ceil(logThreshold / bernoulliKl(breach, limit)));
}

/**
 * Tracked events that would catch a drop of HEALTHY_POWER_MULTIPLE x the allowed one on
 * average: the baseline's share of events under that drop against its share at the limit.
 */
function conversionsToRuleOut(c: ConversionTotals, logThreshold: number, minSamples: number): number {
  if (c.treatmentExposures === 0 || c.baselineExposures === 0) return minSamples;
  const ratio = c.baselineExposures / c.treatmentExposures;
  const atLimit = ratio / (1 - c.maxDrop + ratio);
  const breach = ratio / (Math.max(0, 1 - HEALTHY_POWER_MULTIPLE * c.maxDrop) + ratio);
  return Math.max(minSamples, Math.ceil(logThreshold / bernoulliKl(breach, atLimit)));
}

function conversionView(c: ConversionTotals): NonNullable<CheckResult['conversion']> {
  return {
    event: c.event,
    maxDrop: c.maxDrop,
    treatmentRate: c.treatmentExposures > 0 ? c.treatmentEvents / c.treatmentExposures : Number.NaN,
    baselineRate: c.baselineExposures > 0 ? c.baselineEvents / c.baselineExposures : Number.NaN,
    treatmentExposures: c.treatmentExposures,
    baselineExposures: c.baselineExposures,
  };
}

function judgeCheck(slot: FlagEvidence['checks'][number], policy: GuardPolicy): CheckResult {
  const r = slot.evidence.read();
  const heldMs = r.onsetMs === undefined ? 0 : r.throughMs - r.onsetMs;
  const rejected = r.logEvidence >= 0;
  const samplesNeeded = slot.conversion !== undefined ? conversionsToRuleOut(slot.conversion, r.epochThreshold, policy.minSamples) : samplesToRuleOut(r.limit, r.epochThreshold, policy.minSamples);
  const observed = r.samples > 0 ? r.events / r.samples : Number.NaN;
  let state: CheckState;
  if (r.fastRejected) state = 'overwhelming';
  else if (rejected && heldMs >= policy.sustainForMs && r.stillHolding) state = 'confirmed';
  else if (rejected || (r.onsetMs !== undefined && r.onsetLlr >= r.logThreshold)) state = 'breaching';
  else if (r.samples < policy.minSamples) state = 'insufficient';
  else if (r.samples >= samplesNeeded && observed <= r.limit && r.logE < 1) state = 'healthy';
  else state = 'ok';
  // One literal of one shape, the optional fields added after: spreading them in made every
  // result a dictionary-mode object, a tenth of the tick.
  const result: Mutable<CheckResult> = {
    check: slot.name,
    state,
    limit: r.limit,
    thresholdMs: slot.thresholdMs,
    basis: slot.basis,
    samples: r.samples,
    events: r.events,
    observed,
    lowerBound: r.lowerBound,
    upperBound: r.upperBound,
    evidence: Math.exp(Math.min(700, r.logE)),
    evidenceNeeded: Math.exp(r.logThreshold),
    breachSinceMs: r.onsetMs,
    heldMs,
    breachSamples: r.onsetSamples,
    breachObserved: r.onsetSamples > 0 ? r.onsetEvents / r.onsetSamples : Number.NaN,
    samplesNeeded,
  };
  if (slot.interpolatedBetweenMs !== undefined) result.interpolatedBetweenMs = slot.interpolatedBetweenMs;
  if (slot.conversion !== undefined) result.conversion = conversionView(slot.conversion);
  return result;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function what(c: CheckResult): string {
  if (c.conversion !== undefined) return `${ratioWords(c.conversion)}, more than the allowed ${dropWords(c.conversion)} below it`;
  if (c.check === 'errorRate') return `error rate ${pct(c.breachObserved)} over ${count(c.breachSamples)} requests, limit ${pct(c.limit)}`;
  return `${pct(c.breachObserved)} of ${count(c.breachSamples)} requests slower than ${Math.round(c.thresholdMs ?? 0)} ms, so ${CHECK_WORDS[c.check]} is above it (limit ${pct(c.limit)} of requests)${interpolationWords(c)}`;
}

function ratioWords(v: NonNullable<CheckResult['conversion']>): string {
  return `${v.event} per exposure ${pct(v.treatmentRate)} in the treatment vs ${pct(v.baselineRate)} in the baseline (${count(v.treatmentExposures)} and ${count(v.baselineExposures)} exposures)`;
}

const dropWords = (v: NonNullable<CheckResult['conversion']>): string => `${Number((v.maxDrop * 100).toFixed(2))}%`;

/** What a check counts, for reasons about how many it has. */
const unitWords = (c: CheckResult): string => (c.conversion !== undefined ? `${c.conversion.event} events` : 'treatment requests');

/** Histogram buckets only say how many requests fell between two bounds: say when the threshold was not one. */
function interpolationWords(c: CheckResult): string {
  const between = c.interpolatedBetweenMs;
  if (between === undefined) return '';
  const upper = Number.isFinite(between[1]) ? `${Math.round(between[1])} ms` : 'infinity';
  return `; approximate: ${Math.round(c.thresholdMs ?? 0)} ms is not a bucket bound, so the bucket ${Math.round(between[0])} ms to ${upper} was interpolated (make the limit a bucket bound to judge it exactly)`;
}

function basisWords(c: CheckResult): string {
  if (c.conversion !== undefined) return '';
  if (c.basis === 'relative') return ' (relative to the baseline)';
  if (c.basis === 'absolute-fallback') return ' (absolute limit: the baseline is too thin to compare with)';
  return '';
}

function evidenceWords(c: CheckResult): string {
  return `e-value ${c.evidence >= 1e6 ? c.evidence.toExponential(1) : c.evidence.toFixed(1)} of ${c.evidenceNeeded.toFixed(0)} needed`;
}

function since(c: CheckResult): string {
  return c.breachSinceMs === undefined ? '' : ` since ${new Date(c.breachSinceMs).toISOString()}`;
}

/**
 * Whether the evidence against the warning levels has crossed one, by the rollback's own rule
 * (confirmed over sustainFor and still holding, or overwhelming); undefined when not.
 */
export function judgeWarning(evidence: FlagEvidence): WarningJudgment | undefined {
  // Confirmed and overwhelming both stand on a rejected test: most ticks stop here, cheaply.
  // Only a check whose test rejects can be confirmed or overwhelming: the others are not read.
  const rejecting = evidence.checks.filter((slot) => slot.evidence.rejects());
  if (rejecting.length === 0) return undefined;
  const policy = evidence.policy;
  const checks = rejecting.map((slot) => judgeCheck(slot, policy));
  const check = checks.find((c) => c.state === 'overwhelming') ?? checks.find((c) => c.state === 'confirmed');
  if (check === undefined) return undefined;
  return { check, checks, reason: `above the warning level for ${seconds(check.heldMs)} (warns, never rolls back): ${what(check)}${since(check)}; ${evidenceWords(check)}` };
}

/** One decision for one flag from its evidence. */
export function judge(input: JudgeInput): Judgment {
  const { evidence, treatment, baseline } = input;
  const policy = evidence.policy;
  const checks = evidence.checks.map((slot) => judgeCheck(slot, policy));
  const warning = input.warn === undefined ? undefined : judgeWarning(input.warn);
  const base = { checks, treatment, baseline, throughMs: evidence.throughMs, sinceMs: evidence.startMs, ...(warning === undefined ? {} : { warning }) };
  const overwhelming = checks.find((c) => c.state === 'overwhelming');
  if (overwhelming) {
    return { ...base, verdict: 'rollback', decidingCheck: overwhelming, reason: `overwhelming breach, acting before sustainFor: ${what(overwhelming)}${basisWords(overwhelming)}${since(overwhelming)}, far above ${policy.fastPathFactor}x the limit` };
  }
  const confirmed = checks.find((c) => c.state === 'confirmed');
  if (confirmed) {
    return {
      ...base,
      verdict: 'rollback',
      decidingCheck: confirmed,
      reason: `breach held for ${seconds(confirmed.heldMs)} (sustainFor ${seconds(policy.sustainForMs)}): ${what(confirmed)}${basisWords(confirmed)}${since(confirmed)}; ${evidenceWords(confirmed)}`,
    };
  }
  const breaching = checks.find((c) => c.state === 'breaching' && c.evidence >= c.evidenceNeeded) ?? checks.find((c) => c.state === 'breaching');
  if (breaching) {
    const confident = breaching.evidence >= breaching.evidenceNeeded;
    const reason = !confident
      ? `breach suspected for ${seconds(breaching.heldMs)}: ${what(breaching)}${basisWords(breaching)}; ${evidenceWords(breaching)}`
      : breaching.heldMs >= policy.sustainForMs
        ? `breach of the ${breaching.conversion?.event ?? CHECK_WORDS[breaching.check]} limit${since(breaching)} no longer shows in the most recent data: watching whether it has passed (${what(breaching)})`
        : `breach confirmed, held ${seconds(breaching.heldMs)} of the ${seconds(policy.sustainForMs)} sustainFor: ${what(breaching)}${basisWords(breaching)}`;
    return { ...base, verdict: 'breaching', decidingCheck: undefined, reason };
  }
  const thinBaseline = policy.relative !== undefined && checks.some((c) => c.basis === 'absolute-fallback') ? `; the baseline has ${count(evidence.baselineCount)} requests (${policy.minSamples} needed to compare), so the absolute limits apply` : '';
  if (checks.length === 0) return { ...base, verdict: 'insufficient', decidingCheck: undefined, reason: 'no check is configured for this flag' };
  const thin = checks.find((c) => c.state === 'insufficient');
  if (thin) {
    return { ...base, verdict: 'insufficient', decidingCheck: undefined, reason: `too few ${unitWords(thin)} since ${new Date(evidence.startMs).toISOString()}: ${count(thin.samples)} (${policy.minSamples} needed to judge)${thinBaseline}` };
  }
  if (checks.every((c) => c.state === 'healthy')) {
    return { ...base, verdict: 'healthy', decidingCheck: undefined, reason: `no breach in ${count(checks[0]!.samples)} treatment requests, enough to have caught ${HEALTHY_POWER_MULTIPLE}x any limit${thinBaseline}` };
  }
  const waiting = checks.find((c) => c.state === 'ok' && c.samples < c.samplesNeeded);
  const above = checks.find((c) => c.state === 'ok' && c.observed > c.limit);
  const reason = above
    ? above.conversion !== undefined
      ? `${ratioWords(above.conversion)}: lower than the allowed ${dropWords(above.conversion)} drop permits, not yet confidently (${evidenceWords(above)})${thinBaseline}`
      : `${CHECK_WORDS[above.check]} ${pct(above.observed)} over ${count(above.samples)} requests is above its limit ${pct(above.limit)}, not yet confidently (${evidenceWords(above)})${thinBaseline}`
    : waiting
      ? `within limits; ${count(waiting.samples)} of the ${count(waiting.samplesNeeded)} ${unitWords(waiting)} needed to rule out ${HEALTHY_POWER_MULTIPLE}x the ${CHECK_WORDS[waiting.check]} limit${thinBaseline}`
      : `within limits, with a hint of a breach too weak to act on${thinBaseline}`;
  return { ...base, verdict: 'watching', decidingCheck: undefined, reason };
}
