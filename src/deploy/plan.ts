// Deployment plans as pure functions: the step schedules of the strategies, the projected
// timeline of a running plan, and the one decision a plan takes at an instant given the
// guardian's judgment of its treatment. Plans advance only on confident health.
import { formatDurationMs } from '../core/duration.js';
import type { FlagRuntimeState, PlanState } from '../core/flag-schema.js';
import type { Judgment } from '../guardian/judge.js';

export type Strategy = PlanState['strategy'];
export const STRATEGIES: readonly Strategy[] = ['safe', 'fast', 'instant', 'custom'];

export interface PlanStep {
  readonly percentage: number;
  /** How long the step is monitored before it may advance; 0 on the last step. */
  readonly holdMs: number;
}

const MINUTE = 60_000;
const DAY = 86_400_000;
/** Every step but 0% is watched at least this long, whatever the strategy's arithmetic says. */
export const MIN_MONITORING_MS = 5 * MINUTE;

export class PlanError extends Error {
  override readonly name = 'PlanError';
}

/** Spreads `totalMs` over the steps strictly between the first and the last. */
function spread(percentages: readonly number[], totalMs: number): PlanStep[] {
  const middle = percentages.length - 2;
  const holdMs = Math.max(MIN_MONITORING_MS, Math.floor(totalMs / Math.max(1, middle)));
  return percentages.map((percentage, i) => ({ percentage, holdMs: i === 0 || i === percentages.length - 1 ? 0 : holdMs }));
}

export interface CustomPlan {
  readonly steps: readonly number[];
  readonly stepDurationMs: number;
}

/**
 * The steps of a strategy. `safe`: 0, 5, 10, 25, 50, 75, 100 reaching 100% after 7 days;
 * `fast`: 0, 25, 50, 100 after 3 days; `instant`: 0 then 100 after one minute of monitoring;
 * `custom`: the given percentages, each but the last held for `stepDurationMs`.
 */
export function planSteps(strategy: Strategy, custom?: CustomPlan): PlanStep[] {
  switch (strategy) {
    case 'safe':
      return spread([0, 5, 10, 25, 50, 75, 100], 7 * DAY);
    case 'fast':
      return spread([0, 25, 50, 100], 3 * DAY);
    case 'instant':
      return [
        { percentage: 0, holdMs: MINUTE },
        { percentage: 100, holdMs: 0 },
      ];
    case 'custom': {
      if (custom === undefined || custom.steps.length === 0) throw new PlanError('a custom plan needs --steps, such as --steps 0,20,50,100');
      const steps = custom.steps;
      steps.forEach((p, i) => {
        if (!(p >= 0 && p <= 100)) throw new PlanError(`step ${i + 1} is ${p}%; every step must be a percentage from 0 to 100 (such as --steps 0,20,50,100)`);
        if (i > 0 && p <= (steps[i - 1] as number)) throw new PlanError(`steps must rise: ${steps[i - 1]}% is followed by ${p}% (such as --steps 0,20,50,100)`);
      });
      if (custom.stepDurationMs < MINUTE) {
        throw new PlanError(`a step of ${formatDurationMs(custom.stepDurationMs)} is too short to judge; give --step-duration 1m or more (such as 30m or 6h)`);
      }
      // Exactly what --step-duration says (1m at least, checked above): the 5-minute floor is the
      // strategies' arithmetic guard, not a silent override of a duration the user typed.
      return steps.map((percentage, i) => ({ percentage, holdMs: i === steps.length - 1 ? 0 : custom.stepDurationMs }));
    }
  }
}

/** A fresh plan at its first step. */
export function newPlan(strategy: Strategy, steps: readonly PlanStep[], nowMs: number): PlanState {
  const at = new Date(nowMs).toISOString();
  const last = steps.length === 1;
  return {
    strategy,
    steps: steps.map((s) => ({ ...s })),
    stepIndex: 0,
    status: last ? 'completed' : 'running',
    startedAt: at,
    stepStartedAt: at,
    pausedMs: 0,
    ...(last ? { endedAt: at } : {}),
  };
}

/** Monitoring time the current step has had: paused time does not count. */
export function stepElapsedMs(plan: PlanState, nowMs: number): number {
  const pausedNow = plan.pausedAt !== undefined ? nowMs - Date.parse(plan.pausedAt) : 0;
  return Math.max(0, nowMs - Date.parse(plan.stepStartedAt) - plan.pausedMs - pausedNow);
}

export interface ScheduledStep {
  readonly index: number;
  readonly percentage: number;
  /** When the step began, or when it would begin if every step before it stays healthy. */
  readonly startsAtMs: number;
  readonly state: 'done' | 'current' | 'next';
}

/** The plan's timeline: past steps, the current one, and projected times for the rest. */
export function planSchedule(plan: PlanState, nowMs: number): ScheduledStep[] {
  const out: ScheduledStep[] = [];
  const current = plan.steps[plan.stepIndex];
  let at = nowMs + Math.max(0, (current?.holdMs ?? 0) - stepElapsedMs(plan, nowMs));
  plan.steps.forEach((step, index) => {
    if (index < plan.stepIndex) out.push({ index, percentage: step.percentage, startsAtMs: Number.NaN, state: 'done' });
    else if (index === plan.stepIndex) out.push({ index, percentage: step.percentage, startsAtMs: Date.parse(plan.stepStartedAt), state: 'current' });
    else {
      out.push({ index, percentage: step.percentage, startsAtMs: at, state: 'next' });
      at += step.holdMs;
    }
  });
  return out;
}

export type PlanAction =
  /** `overdue`: the step's monitoring time is over and only the guardian's judgment holds it. */
  | { readonly kind: 'hold'; readonly note: string; readonly overdue?: true }
  | { readonly kind: 'advance'; readonly toIndex: number; readonly percentage: number; readonly reason: string }
  | { readonly kind: 'complete'; readonly reason: string }
  | { readonly kind: 'rolled-back'; readonly reason: string };

function pct(x: number | undefined): string {
  return x === undefined || Number.isNaN(x) ? '-' : `${(x * 100).toFixed(2)}%`;
}

/** In words, why the judgment lets a step advance: what each check saw since the step began. */
function healthWords(judgment: Judgment): string {
  return judgment.checks
    .map((c) => (c.check === 'errorRate' ? `error rate ${pct(c.observed)} (limit ${pct(c.limit)})` : `${pct(c.observed)} slower than ${Math.round(c.thresholdMs ?? 0)} ms (limit ${pct(c.limit)})`))
    .join(', ');
}

/**
 * What a running plan does now. A rollback of its flag ends it; a step advances once it has
 * been monitored for its hold and the guardian calls the treatment healthy with enough
 * evidence; a 0% step has no treatment to judge and advances on time alone.
 */
export function nextPlanAction(plan: PlanState, state: FlagRuntimeState | undefined, judgment: Judgment | undefined, nowMs: number, observedElapsedMs?: number): PlanAction {
  if (plan.status !== 'running') return { kind: 'hold', note: `plan is ${plan.status}` };
  if (state?.rollback !== undefined) return { kind: 'rolled-back', reason: `rolled back by ${state.rollback.actor}: ${state.rollback.reason}` };
  const step = plan.steps[plan.stepIndex];
  if (step === undefined) return { kind: 'complete', reason: 'no steps left' };
  const last = plan.stepIndex === plan.steps.length - 1;
  if (last) return { kind: 'complete', reason: `reached ${step.percentage}%` };
  // Another host's clock wrote stepStartedAt: never count more time than this runner has watched the step.
  const elapsed = observedElapsedMs === undefined ? stepElapsedMs(plan, nowMs) : Math.min(stepElapsedMs(plan, nowMs), observedElapsedMs);
  if (elapsed < step.holdMs) return { kind: 'hold', note: `monitoring step ${plan.stepIndex + 1} (${step.percentage}%): ${formatDurationMs(step.holdMs - elapsed)} left` };
  const next = plan.steps[plan.stepIndex + 1] as PlanStep;
  const toNext = { kind: 'advance' as const, toIndex: plan.stepIndex + 1, percentage: next.percentage };
  if (step.percentage === 0) return { ...toNext, reason: `step ${plan.stepIndex + 1} (0%) held ${formatDurationMs(step.holdMs)}; nothing to judge at 0%` };
  if (judgment === undefined) return { kind: 'hold', note: 'holding: no judgment from the guardian yet (is it running with this flag\u2019s traffic?)', overdue: true };
  if (judgment.verdict !== 'healthy') return { kind: 'hold', note: `holding: ${judgment.reason}`, overdue: true };
  return { ...toNext, reason: `step ${plan.stepIndex + 1} (${step.percentage}%) healthy after ${formatDurationMs(elapsed)}: ${healthWords(judgment)} over ${judgment.checks[0]?.samples ?? 0} requests since the step began` };
}

/** The flag state after `action`, or undefined when nothing changes. */
export function applyPlanAction(state: FlagRuntimeState, action: PlanAction, nowMs: number): FlagRuntimeState | undefined {
  const plan = state.plan;
  if (plan === undefined || action.kind === 'hold') return undefined;
  const at = new Date(nowMs).toISOString();
  switch (action.kind) {
    case 'advance': {
      const completes = action.toIndex === plan.steps.length - 1;
      return {
        ...state,
        percentage: action.percentage,
        // stepClock: the start was stamped by a plan runner's clock, which runners can trust.
        plan: { ...plan, stepIndex: action.toIndex, stepStartedAt: at, stepClock: 'runner', pausedMs: 0, status: completes ? 'completed' : 'running', ...(completes ? { endedAt: at } : {}), note: action.reason },
      };
    }
    case 'complete':
      return { ...state, plan: { ...plan, status: 'completed', endedAt: at, note: action.reason } };
    case 'rolled-back':
      return { ...state, plan: { ...plan, status: 'rolled-back', endedAt: at, note: action.reason } };
  }
}
