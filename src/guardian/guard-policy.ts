// A flag's guard policy with every default filled in. Defaults are the SRE conventions the
// project promises: error rate > 1%, P95 > 500 ms, P99 > 1000 ms, held for 5 minutes, and
// 5 consecutive failed health checks; warnings at 0.5%, 200 ms and 500 ms.
import { parseDurationMs } from '../core/duration.js';
import type { GuardPolicyInput } from '../core/flag-schema.js';

export interface RelativePolicy {
  /** Treatment error rate may exceed the baseline's by at most this (0.01 = one point). */
  readonly maxErrorRateIncrease: number | undefined;
  /** Treatment P95 may exceed the baseline's by at most this percentage. */
  readonly maxP95IncreasePct: number | undefined;
  readonly maxP99IncreasePct: number | undefined;
  /** The absolute limits still apply as a ceiling (default true); off, only the baseline decides. */
  readonly ceiling: boolean;
}

/** A business event per exposure (OpenFeature track() over evaluations) the treatment may not lose more than maxDrop of. */
export interface ConversionPolicy {
  readonly event: string;
  /** Largest allowed drop of the treatment's rate below the baseline's, as a fraction (0.05 = 5%). */
  readonly maxDrop: number;
}

/** Warning levels, absolute: judged like the rollback limits, they notify and never roll back. */
export interface WarnPolicy {
  readonly maxErrorRate: number;
  readonly maxP95Ms: number;
  readonly maxP99Ms: number;
}

export interface GuardPolicy {
  readonly enabled: boolean;
  readonly maxErrorRate: number;
  readonly maxP95Ms: number;
  readonly maxP99Ms: number;
  readonly sustainForMs: number;
  /** Requests a window needs before it can judge anything. */
  readonly minSamples: number;
  /**
   * 1 - the false-rollback budget: the probability of no false rollback of a cohort exactly at
   * its limit, over the whole step for the test begun with it plus per hour for the restarted ones.
   */
  readonly confidence: number;
  readonly healthCheckFailures: number;
  /** Act before sustainFor when the breach is overwhelming. */
  readonly fastPath: boolean;
  /** How far the confident bound must clear the limit for the fast path (5 = five times). */
  readonly fastPathFactor: number;
  /** Present: limits relative to the baseline cohort, the absolute ones kept as a ceiling unless `ceiling` is false. */
  readonly relative: RelativePolicy | undefined;
  /** Conversion checks against the baseline, from tracked events (none by default). */
  readonly conversions: readonly ConversionPolicy[];
  /** Warning levels (undefined: no warnings). A level at or above its rollback limit is not judged. */
  readonly warn: WarnPolicy | undefined;
}

/** The seed's warning levels: errors 0.5%, P95 200 ms, P99 500 ms. */
export const DEFAULT_WARN_POLICY: WarnPolicy = { maxErrorRate: 0.005, maxP95Ms: 200, maxP99Ms: 500 };

export const DEFAULT_GUARD_POLICY: GuardPolicy = {
  enabled: true,
  maxErrorRate: 0.01,
  maxP95Ms: 500,
  maxP99Ms: 1000,
  sustainForMs: 300_000,
  minSamples: 50,
  confidence: 0.99,
  healthCheckFailures: 5,
  fastPath: true,
  fastPathFactor: 5,
  relative: undefined,
  conversions: [],
  warn: DEFAULT_WARN_POLICY,
};

export function resolveGuardPolicy(input: GuardPolicyInput | undefined, defaults: GuardPolicy = DEFAULT_GUARD_POLICY): GuardPolicy {
  if (input === undefined) return defaults;
  const relative = input.relative;
  return {
    enabled: input.enabled ?? defaults.enabled,
    maxErrorRate: input.maxErrorRate ?? defaults.maxErrorRate,
    maxP95Ms: input.maxP95Ms ?? defaults.maxP95Ms,
    maxP99Ms: input.maxP99Ms ?? defaults.maxP99Ms,
    sustainForMs: input.sustainFor !== undefined ? (parseDurationMs(input.sustainFor) ?? defaults.sustainForMs) : defaults.sustainForMs,
    minSamples: input.minSamples ?? defaults.minSamples,
    confidence: input.confidence ?? defaults.confidence,
    healthCheckFailures: input.healthCheckFailures ?? defaults.healthCheckFailures,
    fastPath: input.fastPath ?? defaults.fastPath,
    fastPathFactor: defaults.fastPathFactor,
    conversions: input.conversions?.map((c) => ({ event: c.event, maxDrop: c.maxDropPct / 100 })) ?? defaults.conversions,
    relative:
      relative === undefined
        ? defaults.relative
        : {
            maxErrorRateIncrease: relative.maxErrorRateIncrease,
            maxP95IncreasePct: relative.maxP95IncreasePct,
            maxP99IncreasePct: relative.maxP99IncreasePct,
            ceiling: relative.ceiling ?? true,
          },
    warn: resolveWarn(input.warn, defaults.warn),
  };
}

function resolveWarn(input: GuardPolicyInput['warn'], defaults: WarnPolicy | undefined): WarnPolicy | undefined {
  if (input === undefined) return defaults;
  if (input.enabled === false) return undefined;
  const base = defaults ?? DEFAULT_WARN_POLICY;
  return { maxErrorRate: input.maxErrorRate ?? base.maxErrorRate, maxP95Ms: input.maxP95Ms ?? base.maxP95Ms, maxP99Ms: input.maxP99Ms ?? base.maxP99Ms };
}

/**
 * The policy the warning levels are judged under: the same evidence machinery and sustainFor,
 * with the warning levels as absolute limits, and only the checks whose level sits below its
 * rollback limit (a level at or above it could only ever warn with a rollback). Undefined when
 * nothing is left to warn about.
 */
export function warnPolicyOf(policy: GuardPolicy): { policy: GuardPolicy; checks: readonly ('errorRate' | 'p95' | 'p99')[] } | undefined {
  const warn = policy.warn;
  if (warn === undefined || !policy.enabled) return undefined;
  const checks: ('errorRate' | 'p95' | 'p99')[] = [];
  if (warn.maxErrorRate < policy.maxErrorRate) checks.push('errorRate');
  if (warn.maxP95Ms < policy.maxP95Ms) checks.push('p95');
  if (warn.maxP99Ms < policy.maxP99Ms) checks.push('p99');
  if (checks.length === 0) return undefined;
  return { policy: { ...policy, maxErrorRate: warn.maxErrorRate, maxP95Ms: warn.maxP95Ms, maxP99Ms: warn.maxP99Ms, relative: undefined, warn: undefined, conversions: [] }, checks };
}
