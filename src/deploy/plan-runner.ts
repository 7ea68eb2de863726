// Runs deployment plans: once per interval it reads the store, asks the guardian how each
// plan's treatment is doing, and advances, completes or ends the plans whose time has come,
// each move an audited write with its evidence. Plan state lives in the store, so a runner
// that restarts resumes every plan at the right step and time. In dry run it only says what
// it would do.
import { diag } from '@opentelemetry/api';
import type { Clock } from '../core/clock.js';
import { buildFlagSet } from '../core/flag-set.js';
import type { FlagRuntimeState, PlanState, PlanStatus } from '../core/flag-schema.js';
import type { Judgment } from '../guardian/judge.js';
import type { FlagStore, Lease } from '../stores/flag-store.js';
import { systemClock } from '../runtime/system-clock.js';
import { type PlanAction, applyPlanAction, nextPlanAction } from './plan.js';

/** Where the runner learns how a flag's treatment is doing: RolloutGuardian.status() fits. */
export interface JudgmentSource {
  status(): readonly { readonly flagKey: string; readonly judgment: Judgment }[];
}

export interface PlanEvent {
  readonly flagKey: string;
  readonly action: Exclude<PlanAction, { kind: 'hold' }>;
  readonly atMs: number;
  /** True when the runner is in dry run and wrote nothing. */
  readonly dryRun: boolean;
  /** The plan's status after the action (an advance to the last step completes it). */
  readonly status?: PlanStatus;
}

/** A plan whose step has been monitored long enough but that the guardian's judgment holds. */
export interface PlanHoldEvent {
  readonly flagKey: string;
  readonly note: string;
  readonly stepIndex: number;
  readonly stepStartedAt: string;
  readonly percentage: number | undefined;
  readonly atMs: number;
}

export interface PlanRunnerOptions {
  readonly store: Pick<FlagStore, 'load' | 'write'>;
  readonly judgments?: JudgmentSource;
  readonly clock?: Clock;
  readonly actor?: string;
  /** Judge and report, change nothing. */
  readonly dryRun?: boolean;
  /** Asked before every write: a standby replica follows the plans but advances none. */
  readonly lease?: Lease;
}

export class PlanRunner {
  private readonly store: Pick<FlagStore, 'load' | 'write'>;
  private readonly judgments: JudgmentSource | undefined;
  private readonly clock: Clock;
  private readonly actor: string;
  private readonly dryRun: boolean;
  private readonly lease: Lease | undefined;
  private readonly listeners = new Set<(event: PlanEvent) => void>();
  private readonly holdListeners = new Set<(event: PlanHoldEvent) => void>();
  private readonly holdNotes = new Map<string, string>();
  /**
   * When this runner first saw each flag's current step, on its own clock, with the step's
   * elapsed time then: a step is never held for less than this runner has watched it, so a
   * writer whose clock runs ahead cannot make a step advance early.
   */
  private readonly firstSeen = new Map<string, { readonly step: string; readonly atMs: number; readonly elapsedMs: number }>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private lastTickMs: number | undefined;
  private closed = false;
  private errors = 0;

  constructor(options: PlanRunnerOptions) {
    this.store = options.store;
    this.judgments = options.judgments;
    this.clock = options.clock ?? systemClock;
    this.actor = options.actor ?? 'rollout-guardian/plan';
    this.dryRun = options.dryRun ?? false;
    this.lease = options.lease;
  }

  start(intervalMs: number): void {
    if (this.closed || this.timer) return;
    this.timer = setInterval(() => {
      void this.tick();
    }, intervalMs);
    this.timer.unref();
  }

  onEvent(listener: (event: PlanEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Every tick, each plan held past its step's monitoring time by the guardian's judgment. */
  onHold(listener: (event: PlanHoldEvent) => void): () => void {
    this.holdListeners.add(listener);
    return () => {
      this.holdListeners.delete(listener);
    };
  }

  /** Why each running plan is holding, as of the last tick. */
  notes(): ReadonlyMap<string, string> {
    return this.holdNotes;
  }

  /** Ticks that failed (a store that could not be read), as counted for /metrics. */
  get errorCount(): number {
    return this.errors;
  }

  get lastTick(): number | undefined {
    return this.lastTickMs;
  }

  /** One look at every plan. Never rejects; a tick already running is not doubled. */
  tick(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.ticking ??= this.runTick()
      .catch((err: unknown) => {
        // Never rejects, never silent: the error goes to OpenTelemetry's diag and is counted.
        this.errors++;
        diag.error(`rollout-guardian plan runner: ${err instanceof Error ? err.message : String(err)}`);
      })
      .finally(() => {
        this.ticking = undefined;
      });
    return this.ticking;
  }

  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
    this.listeners.clear();
    this.holdListeners.clear();
  }

  private async runTick(): Promise<void> {
    const nowMs = this.clock.now();
    this.lastTickMs = nowMs;
    const snapshot = await this.store.load();
    this.holdNotes.clear();
    if (buildFlagSet(snapshot.parsed, snapshot.state, nowMs, undefined, snapshot.external).set.shutdown) {
      for (const [key, state] of snapshot.state) if (state.plan?.status === 'running') this.holdNotes.set(key, 'emergency shutdown: plans stopped');
      return;
    }
    const judgments = new Map((this.judgments?.status() ?? []).map((s) => [s.flagKey, s.judgment]));
    let revision = snapshot.revision;
    for (const [flagKey, state] of snapshot.state) {
      const plan = state.plan;
      if (plan?.status !== 'running') continue;
      const judgment = judgments.get(flagKey);
      const action = nextPlanAction(plan, state, judgment, nowMs, this.observedElapsedMs(flagKey, plan, nowMs));
      if (action.kind === 'hold') {
        this.holdNotes.set(flagKey, action.note);
        if (action.overdue) {
          const held: PlanHoldEvent = { flagKey, note: action.note, stepIndex: plan.stepIndex, stepStartedAt: plan.stepStartedAt, percentage: plan.steps[plan.stepIndex]?.percentage, atMs: nowMs };
          this.emitTo(this.holdListeners, held);
        }
        continue;
      }
      const next = applyPlanAction(state, action, nowMs);
      if (next === undefined) continue;
      if (!this.dryRun && this.lease !== undefined && !this.lease.acting) {
        this.holdNotes.set(flagKey, `standby: the replica holding the guardian lease will ${action.kind} (${action.reason})`);
        continue;
      }
      if (!this.dryRun) {
        const written = await this.write(flagKey, next, action, revision, judgment);
        if (written === undefined) return; // someone else wrote: look again next tick
        revision = written;
      }
      this.emitTo(this.listeners, { flagKey, action, atMs: nowMs, dryRun: this.dryRun, status: next.plan?.status });
    }
  }

  private async write(flagKey: string, next: FlagRuntimeState, action: Exclude<PlanAction, { kind: 'hold' }>, revision: string, judgment: Judgment | undefined): Promise<string | undefined> {
    try {
      const result = await this.store.write({
        actor: this.actor,
        reason: action.reason,
        action: `plan-${action.kind}`,
        expectedRevision: revision,
        changes: [{ flagKey, state: next }],
        ...(judgment ? { evidence: { verdict: judgment.verdict, checks: judgment.checks, treatment: { ...judgment.treatment }, baseline: judgment.baseline ? { ...judgment.baseline } : undefined } } : {}),
      });
      return result.revision;
    } catch {
      return undefined;
    }
  }

  /**
   * Monitoring time this runner can vouch for. A step a runner started carries a runner's
   * timestamp, comparable with this clock (a restarted runner resumes on time); a step started
   * by an operator's command carries that host's clock, so it counts from this runner's own
   * first sight of it: a deploying host whose clock is behind cannot make a step advance early.
   */
  private observedElapsedMs(flagKey: string, plan: PlanState, nowMs: number): number | undefined {
    // Under a lease the runner that stamped the step may have been another replica, on another
    // host's clock; a standby watches every step from its start, so its own sight is as good.
    if (plan['stepClock'] === 'runner' && this.lease === undefined) return undefined;
    const step = `${plan.stepIndex}@${plan.stepStartedAt}`;
    let seen = this.firstSeen.get(flagKey);
    if (seen === undefined || seen.step !== step) {
      seen = { step, atMs: nowMs, elapsedMs: 0 };
      this.firstSeen.set(flagKey, seen);
    }
    return seen.elapsedMs + Math.max(0, nowMs - seen.atMs) - (plan.pausedAt !== undefined ? Math.max(0, nowMs - Math.max(seen.atMs, Date.parse(plan.pausedAt))) : 0);
  }

  private emitTo<E>(listeners: ReadonlySet<(event: E) => void>, event: E): void {
    for (const listener of listeners) {
      try {
        listener(event);
      } catch {
        // A listener cannot break the runner.
      }
    }
  }
}
