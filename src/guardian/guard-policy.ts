// A flag's guard policy with every default filled in. Defaults are the SRE conventions the
// project promises: error rate > 1%, P95 > 500 ms, P99 > 1000 ms, held for 5 minutes, and
// 5 consecutive failed health checks.
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
}

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
  };
}
