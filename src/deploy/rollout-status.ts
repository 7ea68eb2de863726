// The status of every rollout as one stable JSON shape: percentage, plan step and the next,
// and the guardian's latest judgment with both cohorts' numbers. `serve` builds it with the
// guardian's numbers; the CLI builds it from the store alone, or reads it from `serve`.
import { weightToPercentage } from '../core/bucketing.js';
import { progressiveWeight } from '../core/evaluate.js';
import { RolloutKind } from '../core/compile-flag.js';
import { buildFlagSet } from '../core/flag-set.js';
import { isEmergencyFlag } from '../core/emergency.js';
import type { CohortSummary, Judgment } from '../guardian/judge.js';
import type { StoreSnapshot } from '../stores/flag-store.js';
import { planSchedule } from './plan.js';

export interface CohortView {
  /** Where the numbers came from: spans, otlp-metrics, prometheus, metric-reader. */
  readonly sources: readonly string[];
  readonly samples: number;
  readonly errorRate: number | null;
  readonly p95Ms: number | null;
  readonly p99Ms: number | null;
}

export interface PlanView {
  readonly strategy: string;
  readonly status: string;
  /** 1-based. */
  readonly step: number;
  readonly steps: number;
  readonly stepPercentage: number;
  readonly stepStartedAt: string;
  readonly nextStepAt: string | null;
  readonly nextPercentage: number | null;
  readonly note: string | null;
}

export interface GuardianView {
  readonly verdict: string;
  readonly reason: string;
  /** Why a warning level is crossed (guard.warn), or null; never a rollback by itself. */
  readonly warning: string | null;
  readonly judgedAt: string;
  readonly treatment: CohortView;
  readonly baseline: CohortView | null;
}

export interface FlagStatusView {
  readonly flag: string;
  /** The treatment's share now, 0 to 100. */
  readonly percentage: number;
  readonly treatmentVariant: string | null;
  readonly baselineVariant: string;
  readonly override: string | null;
  readonly rolledBack: boolean;
  readonly disabled: boolean;
  readonly plan: PlanView | null;
  readonly guardian: GuardianView | null;
}

export interface StatusSources {
  readonly judgments?: ReadonlyMap<string, { readonly judgment: Judgment; readonly judgedAtMs: number }>;
  /** Why running plans hold, from the plan runner. */
  readonly notes?: ReadonlyMap<string, string>;
}

function cohort(summary: CohortSummary): CohortView {
  return { sources: summary.sources ?? [], samples: summary.samples, errorRate: summary.errorRate ?? null, p95Ms: summary.p95Ms ?? null, p99Ms: summary.p99Ms ?? null };
}

/** Every flag with a rollout (and every flag with a plan), in file order. */
export function rolloutStatus(snapshot: StoreSnapshot, nowMs: number, sources: StatusSources = {}): FlagStatusView[] {
  const { set } = buildFlagSet(snapshot.parsed, snapshot.state, nowMs, undefined, snapshot.external);
  const out: FlagStatusView[] = [];
  for (const [flag, entry] of set.flags) {
    if (entry.kind !== 'flag' || isEmergencyFlag(flag)) continue;
    const state = snapshot.state.get(flag);
    const rollout = entry.definition.rollout;
    if (rollout === undefined && state?.plan === undefined) continue;
    const plan = state?.plan;
    const schedule = plan ? planSchedule(plan, nowMs) : [];
    const next = schedule.find((s) => s.state === 'next');
    const live = plan?.status === 'running' || plan?.status === 'paused';
    const judged = sources.judgments?.get(flag);
    const fixed = entry.fixed;
    out.push({
      flag,
      percentage: fixed !== undefined ? Number(fixed.flagMetadata.rolloutPercentage ?? 0) : entry.rolloutKind === RolloutKind.Static ? (rollout ? 100 : 0) : weightToPercentage(progressiveWeight(entry, nowMs)),
      treatmentVariant: rollout?.variant ?? null,
      baselineVariant: entry.definition.defaultVariant,
      override: state?.override?.variant ?? null,
      rolledBack: state?.rollback !== undefined,
      disabled: entry.definition.state === 'disabled' || set.shutdown,
      plan: plan
        ? {
            strategy: plan.strategy,
            status: plan.status,
            step: plan.stepIndex + 1,
            steps: plan.steps.length,
            stepPercentage: plan.steps[plan.stepIndex]?.percentage ?? 0,
            stepStartedAt: plan.stepStartedAt,
            nextStepAt: live && next && plan.status === 'running' ? new Date(next.startsAtMs).toISOString() : null,
            nextPercentage: live && next ? next.percentage : null,
            note: (live ? sources.notes?.get(flag) : undefined) ?? plan.note ?? null,
          }
        : null,
      guardian: judged
        ? {
            verdict: judged.judgment.verdict,
            reason: judged.judgment.reason,
            warning: judged.judgment.warning?.reason ?? null,
            judgedAt: new Date(judged.judgedAtMs).toISOString(),
            treatment: cohort(judged.judgment.treatment),
            baseline: judged.judgment.baseline ? cohort(judged.judgment.baseline) : null,
          }
        : null,
    });
  }
  return out;
}
