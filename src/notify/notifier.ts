// The notifier: hears the guardian (verdicts, warnings, rollbacks, health checks) and the plan
// runner (steps advanced, plans held and completed) through their listeners, turns what
// changed into events with ids derived from what they are about, drops the ones already
// notified, and hands each to the webhook targets that want it. The guardian's tick only
// enqueues; delivery runs beside it, and nothing here throws into the guardian.
import { diag } from '@opentelemetry/api';
import type { Clock } from '../core/clock.js';
import type { PlanEvent, PlanHoldEvent } from '../deploy/plan-runner.js';
import type { CheckResult } from '../guardian/judge.js';
import type { GuardedFlagStatus, GuardianListener, HealthCheckResult, RollbackRecord } from '../guardian/rollout-guardian.js';
import { systemClock } from '../runtime/system-clock.js';
import { type NotificationEvent, type NotificationType, eventId } from './notification.js';
import type { NotifyConfig } from './notify-config.js';
import { type DeliveryCounts, WebhookTarget } from './webhook-target.js';

export interface NotifierOptions {
  /** Targets with their secrets resolved (see NotifyConfig.secretEnv). */
  readonly config: NotifyConfig;
  readonly clock?: Clock;
  /** Uniform in [0, 1), for the backoff's jitter (default Math.random). */
  readonly random?: () => number;
  /** The first retry's wait (default 1 s). */
  readonly baseBackoffMs?: number;
}

/** One target's totals, as /metrics reports them. */
export interface NotificationCounts extends Readonly<DeliveryCounts> {
  readonly target: string;
  readonly queued: number;
}

/** What the guardian offers to listeners: RolloutGuardian fits. */
export interface GuardianEvents {
  addListener(listener: GuardianListener): () => void;
}

/** What the plan runner offers to listeners: PlanRunner fits. */
export interface PlanEvents {
  onEvent(listener: (event: PlanEvent) => void): () => void;
  onHold(listener: (event: PlanHoldEvent) => void): () => void;
}

export const DEFAULT_MAX_QUEUE = 1000;
export const DEFAULT_MAX_AGE_MS = 3_600_000;
export const DEFAULT_MAX_BACKOFF_MS = 60_000;
const DEFAULT_TIMEOUT_MS = 10_000;
/** Event ids remembered for deduplication, oldest forgotten first. */
const REMEMBERED_IDS = 10_000;

interface FlagMemory {
  breaching: boolean;
  warned: boolean;
}

export class Notifier {
  private readonly clock: Clock;
  private readonly targets: WebhookTarget[];
  private readonly seen = new Set<string>();
  private readonly flags = new Map<string, FlagMemory>();
  private readonly decided = new Set<string>();
  private readonly problemsLogged = new Set<string>();
  private closed = false;

  constructor(options: NotifierOptions) {
    this.clock = options.clock ?? systemClock;
    const config = options.config;
    const random = options.random ?? Math.random;
    this.targets = config.targets.map(
      (target) =>
        new WebhookTarget(target, {
          clock: this.clock,
          random,
          maxQueue: target.maxQueue ?? DEFAULT_MAX_QUEUE,
          maxAgeMs: config.maxAgeMs ?? DEFAULT_MAX_AGE_MS,
          baseBackoffMs: options.baseBackoffMs ?? 1_000,
          maxBackoffMs: config.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS,
          timeoutMs: config.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          onProblem: (kind, message) => this.problemOnce(target.name, kind, message),
        }),
    );
  }

  /**
   * Hands the event to every target that wants it, unless an event with its id was notified
   * already; false for a duplicate. Never throws.
   */
  notify(event: NotificationEvent): boolean {
    if (this.closed || this.seen.has(event.id)) return false;
    this.seen.add(event.id);
    if (this.seen.size > REMEMBERED_IDS) this.seen.delete(this.seen.values().next().value as string);
    for (const target of this.targets) {
      try {
        if (target.accepts(event)) target.enqueue(event);
      } catch (err) {
        this.problemOnce(target.name, 'internal', `could not queue ${event.type}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return true;
  }

  /** Listens to the guardian; the returned function stops listening. */
  watchGuardian(guardian: GuardianEvents): () => void {
    return guardian.addListener({
      decision: (status) => this.guarded(() => this.onDecision(status)),
      rollback: (record) => this.guarded(() => this.onRollback(record)),
      healthCheck: (result) => this.guarded(() => this.onHealthCheck(result)),
      // Each tick is a heartbeat on the guardian's clock: retries that fell due are sent.
      ticked: () => this.guarded(() => this.onTick()),
    });
  }

  /** Listens to the plan runner; the returned function stops listening. */
  watchPlans(plans: PlanEvents): () => void {
    const offEvent = plans.onEvent((event) => this.guarded(() => this.onPlanEvent(event)));
    const offHold = plans.onHold((event) => this.guarded(() => this.onPlanHold(event)));
    return () => {
      offEvent();
      offHold();
    };
  }

  /** Sends whatever is due now on the clock at every target; resolves when each is idle or waiting for a retry. Never rejects. */
  async pump(): Promise<void> {
    await Promise.all(this.targets.map((t) => t.pump()));
  }

  stats(): NotificationCounts[] {
    return this.targets.map((t) => ({ target: t.name, queued: t.queued, ...t.counts }));
  }

  /** Stops delivery (attempts in flight finish; queued events are not sent). Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.targets.map((t) => t.close()));
  }

  private onDecision(status: GuardedFlagStatus): void {
    const j = status.judgment;
    const flag = status.flagKey;
    this.decided.add(flag);
    const memory = this.flags.get(flag) ?? { breaching: false, warned: false };
    const breaching = j.verdict === 'breaching';
    if (breaching && !memory.breaching) {
      const check = j.checks.find((c) => c.state === 'breaching');
      this.emit('breach-suspected', [flag, j.sinceMs, check?.check, check?.breachSinceMs], {
        flag,
        verdict: j.verdict,
        reason: j.reason,
        evidence: judgedEvidence(status, check),
        atMs: status.judgedAtMs,
      });
    }
    // A rollback says more than a warning at the same moment.
    const warning = j.verdict === 'rollback' ? undefined : j.warning;
    if (warning !== undefined && !memory.warned) {
      this.emit('warning', [flag, j.sinceMs, warning.check.check, warning.check.breachSinceMs], {
        flag,
        verdict: j.verdict,
        reason: warning.reason,
        evidence: judgedEvidence(status, warning.check),
        atMs: status.judgedAtMs,
      });
    }
    memory.breaching = breaching;
    memory.warned = warning !== undefined;
    this.flags.set(flag, memory);
  }

  private onRollback(record: RollbackRecord): void {
    this.emit('rollback', [record.flagKey, record.decidedAtMs, record.dryRun ? 'dry-run' : 'written'], {
      flag: record.flagKey,
      verdict: 'rollback',
      reason: record.reason,
      evidence: {
        cause: record.cause,
        ...record.evidence,
        decidedAt: new Date(record.decidedAtMs).toISOString(),
        landedAt: new Date(record.landedAtMs).toISOString(),
      },
      atMs: record.landedAtMs,
      dryRun: record.dryRun,
    });
  }

  private onHealthCheck(result: HealthCheckResult): void {
    // Said when a run of failures begins; the rollback it may lead to is its own event.
    if (result.ok || result.consecutiveFailures !== 1) return;
    const flags = result.flags;
    this.emit('health-check-failed', [result.name, result.atMs], {
      flag: flags?.length === 1 ? flags[0] : undefined,
      verdict: undefined,
      reason: `health check "${result.name}" failed${flags === undefined ? ' (it covers every guarded flag)' : ` (it covers ${flags.join(', ')})`}`,
      evidence: { healthCheck: result.name, consecutiveFailures: result.consecutiveFailures, flags: flags ?? null },
      atMs: result.atMs,
    });
  }

  private onTick(): void {
    // Flags no longer judged (rolled back, unguarded) are forgotten, so a new rollout starts clean.
    for (const flag of this.flags.keys()) if (!this.decided.has(flag)) this.flags.delete(flag);
    this.decided.clear();
    void this.pump();
  }

  private onPlanEvent(event: PlanEvent): void {
    const action = event.action;
    const base = { flag: event.flagKey, verdict: undefined, reason: action.reason, atMs: event.atMs, dryRun: event.dryRun };
    if (action.kind === 'advance') {
      this.emit('plan-step-advanced', [event.flagKey, action.toIndex, event.atMs], {
        ...base,
        evidence: { step: action.toIndex + 1, percentage: action.percentage },
      });
    }
    if (action.kind === 'complete' || (action.kind === 'advance' && event.status === 'completed')) {
      this.emit('plan-completed', [event.flagKey, event.atMs], {
        ...base,
        evidence: action.kind === 'advance' ? { step: action.toIndex + 1, percentage: action.percentage } : {},
      });
    }
  }

  private onPlanHold(event: PlanHoldEvent): void {
    // Once per step: the runner says it every tick while the judgment holds the plan.
    this.emit('plan-held', [event.flagKey, event.stepIndex, event.stepStartedAt], {
      flag: event.flagKey,
      verdict: undefined,
      reason: event.note,
      evidence: { step: event.stepIndex + 1, percentage: event.percentage ?? null, stepStartedAt: event.stepStartedAt },
      atMs: event.atMs,
    });
  }

  private emit(
    type: NotificationType,
    idParts: readonly (string | number | undefined)[],
    event: Omit<NotificationEvent, 'id' | 'type' | 'dryRun'> & { dryRun?: boolean },
  ): void {
    this.notify({ ...event, id: eventId(type, ...idParts), type, dryRun: event.dryRun ?? false });
  }

  private guarded(call: () => void): void {
    try {
      call();
    } catch (err) {
      this.problemOnce('notifier', 'internal', err instanceof Error ? err.message : String(err));
    }
  }

  private problemOnce(target: string, kind: string, message: string): void {
    const key = `${target}\u0000${kind}`;
    if (this.problemsLogged.has(key)) return;
    this.problemsLogged.add(key);
    try {
      diag.warn(`rollout-guardian notify: ${target}: ${message} (further "${kind}" problems with this target are counted, not logged)`);
    } catch {
      // Even the logger cannot break the guardian.
    }
  }
}

/** The numbers behind a verdict, as the rollback's audit entry keeps them. */
function judgedEvidence(status: GuardedFlagStatus, check: CheckResult | undefined): Record<string, unknown> {
  const j = status.judgment;
  return {
    verdict: j.verdict,
    check,
    treatment: {
      variant: status.treatmentVariant,
      samples: j.treatment.samples,
      errorRate: j.treatment.errorRate,
      p95Ms: j.treatment.p95Ms,
      p99Ms: j.treatment.p99Ms,
    },
    baseline:
      j.baseline === undefined
        ? undefined
        : {
            variant: status.baselineVariant,
            samples: j.baseline.samples,
            errorRate: j.baseline.errorRate,
            p95Ms: j.baseline.p95Ms,
            p99Ms: j.baseline.p99Ms,
          },
    percentage: status.percentage,
    policy: { ...status.policy },
  };
}
