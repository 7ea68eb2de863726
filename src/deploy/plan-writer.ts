// The operator's plan commands — deploy, pause, resume, promote, abort, rollback — as audited
// read-modify-write cycles on any FlagStore. Each refuses what makes no sense now with a
// message that says what to type instead.
import type { Clock } from '../core/clock.js';
import type { FlagDefinition, FlagRuntimeState, PlanState } from '../core/flag-schema.js';
import type { Attribution, FlagStore, StoreSnapshot, WriteResult } from '../stores/flag-store.js';
import { StoreWriter } from '../stores/store-writer.js';
import { systemClock } from '../runtime/system-clock.js';
import { type PlanStep, type Strategy, PlanError, newPlan } from './plan.js';

function describePlan(plan: PlanState): string {
  const step = plan.steps[plan.stepIndex];
  return `${plan.strategy} plan, step ${plan.stepIndex + 1} of ${plan.steps.length}, ${step?.percentage ?? 0}%`;
}

function isLive(plan: PlanState | undefined): boolean {
  return plan?.status === 'running' || plan?.status === 'paused';
}

export class PlanWriter {
  private readonly writer: StoreWriter;

  constructor(
    store: FlagStore,
    private readonly clock: Clock = systemClock,
  ) {
    this.writer = new StoreWriter(store, clock);
  }

  /** Starts a plan at its first step; clears an earlier rollback (deploying again is the way back). */
  deploy(flagKey: string, strategy: Strategy, steps: readonly PlanStep[], by: Attribution): Promise<WriteResult> {
    return this.writer.mutate(flagKey, 'deploy', by, (state, snapshot) => {
      const definition = this.definition(snapshot, flagKey);
      if (definition.rollout === undefined || definition.rollout.variant === definition.defaultVariant) {
        throw new PlanError(
          `flag "${flagKey}" has no treatment to roll out; add one to its definition, e.g. rollout-guardian flags set ${flagKey} rollout '{variant: <treatment>}'`,
        );
      }
      const existing = state?.plan;
      if (existing !== undefined && isLive(existing)) {
        throw new PlanError(
          `a plan is already ${existing.status} for "${flagKey}" (${describePlan(existing)}); see rollout-guardian status ${flagKey}, or stop it first with rollout-guardian abort ${flagKey} --reason "..."`,
        );
      }
      const plan = newPlan(strategy, steps, this.clock.now());
      const { rollback: _cleared, ...rest } = state ?? {};
      return { state: { ...rest, percentage: steps[0]?.percentage ?? 0, plan } };
    });
  }

  pause(flagKey: string, by: Attribution): Promise<WriteResult> {
    return this.plan(flagKey, 'pause', by, (plan) => {
      if (plan.status !== 'running') throw new PlanError(`the plan for "${flagKey}" is ${plan.status}, not running; resume it with rollout-guardian resume ${flagKey}`);
      return { ...plan, status: 'paused', pausedAt: this.now(), note: `paused by ${by.actor}: ${by.reason}` };
    });
  }

  resume(flagKey: string, by: Attribution): Promise<WriteResult> {
    return this.plan(flagKey, 'resume', by, (plan) => {
      if (plan.status !== 'paused' || plan.pausedAt === undefined) {
        throw new PlanError(`the plan for "${flagKey}" is ${plan.status}, not paused; pause it with rollout-guardian pause ${flagKey}`);
      }
      const { pausedAt, ...rest } = plan;
      return { ...rest, status: 'running', pausedMs: plan.pausedMs + Math.max(0, this.clock.now() - Date.parse(pausedAt)), note: `resumed by ${by.actor}: ${by.reason}` };
    });
  }

  /** Skips to the last step now. */
  promote(flagKey: string, by: Attribution): Promise<WriteResult> {
    return this.writer.mutate(flagKey, 'promote', by, (state) => {
      const plan = this.livePlan(flagKey, state);
      const lastIndex = plan.steps.length - 1;
      const last = plan.steps[lastIndex] as PlanStep;
      const at = this.now();
      const { pausedAt: _p, ...rest } = plan;
      return { state: { ...state, percentage: last.percentage, plan: { ...rest, stepIndex: lastIndex, stepStartedAt: at, pausedMs: 0, status: 'completed', endedAt: at, note: `promoted by ${by.actor}: ${by.reason}` } } };
    });
  }

  /** Stops the plan and sends the treatment back to 0%, without a rollback's verdict. */
  abort(flagKey: string, by: Attribution): Promise<WriteResult> {
    return this.writer.mutate(flagKey, 'abort', by, (state) => {
      const plan = this.livePlan(flagKey, state);
      const at = this.now();
      return { state: { ...state, percentage: 0, plan: { ...plan, status: 'aborted', endedAt: at, note: `aborted by ${by.actor}: ${by.reason}` } } };
    });
  }

  /** A manual rollback: the baseline serves everyone and a live plan ends as rolled back. */
  rollback(flagKey: string, by: Attribution, evidence?: Readonly<Record<string, unknown>>): Promise<WriteResult> {
    return this.writer.rollback(flagKey, by, evidence);
  }

  private plan(flagKey: string, action: string, by: Attribution, change: (plan: PlanState) => PlanState): Promise<WriteResult> {
    return this.writer.mutate(flagKey, action, by, (state) => ({ state: { ...state, plan: change(this.livePlan(flagKey, state)) } }));
  }

  private livePlan(flagKey: string, state: FlagRuntimeState | undefined): PlanState {
    const plan = state?.plan;
    if (plan === undefined) throw new PlanError(`"${flagKey}" has no plan; start one with rollout-guardian deploy ${flagKey} --strategy safe`);
    if (!isLive(plan)) throw new PlanError(`the plan for "${flagKey}" has ended (${plan.status}); start a new one with rollout-guardian deploy ${flagKey} --strategy safe`);
    return plan;
  }

  private definition(snapshot: StoreSnapshot, flagKey: string): FlagDefinition {
    const definition = snapshot.parsed.definitions.get(flagKey);
    if (definition === undefined) throw new PlanError(`flag "${flagKey}" is invalid; fix it first (rollout-guardian validate)`);
    return definition;
  }

  private now(): string {
    return new Date(this.clock.now()).toISOString();
  }
}

