// The guardian's loop: once per slot it judges every guarded flag from its cohorts and, on a
// confirmed breach or on too many failed health checks, rolls the flag back through a writer.
// A rollback that fails to write is kept and retried every tick until it lands. Nothing here
// throws into the application, and its own writes run with tracing suppressed.
import { context } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import type { Clock } from '../core/clock.js';
import type { FlagDefinition } from '../core/flag-schema.js';
import { buildFlagSet } from '../core/flag-set.js';
import { isEmergencyFlag } from '../core/emergency.js';
import { progressiveWeight } from '../core/evaluate.js';
import { weightToPercentage } from '../core/bucketing.js';
import type { Attribution, StoreEvent, StoreSnapshot } from '../stores/flag-store.js';
import { systemClock } from '../runtime/system-clock.js';
import type { CohortRegistry } from './cohort-registry.js';
import type { SlotStats } from './cohort-window.js';
import { type GuardPolicy, DEFAULT_GUARD_POLICY, confidences, resolveGuardPolicy } from './guard-policy.js';
import { type Judgment, judge } from './judge.js';
import { QuantileSketch } from './quantile-sketch.js';

/** Stands in for the sketch of a slot that saw nothing; never written. */
const EMPTY_SKETCH = new QuantileSketch();

/** What the guardian needs from a store: implemented by StoreWriter over any FlagStore. */
export interface RolloutWriter {
  rollback(flagKey: string, by: Attribution, evidence?: Readonly<Record<string, unknown>>): Promise<unknown>;
}

/** Where the guardian reads flag definitions and state. */
export interface FlagSource {
  load(): Promise<StoreSnapshot>;
  watch(listener: (event: StoreEvent) => void): () => void;
}

export type HealthCheck = () => Promise<boolean>;

export interface GuardedFlagStatus {
  readonly flagKey: string;
  readonly treatmentVariant: string;
  readonly baselineVariant: string;
  readonly percentage: number;
  readonly policy: GuardPolicy;
  readonly judgment: Judgment;
  readonly judgedAtMs: number;
  readonly rollbackPending: boolean;
}

export interface RollbackRecord {
  readonly flagKey: string;
  readonly reason: string;
  /** `breach` (the judge) or `health-check`. */
  readonly cause: 'breach' | 'health-check';
  readonly evidence: Readonly<Record<string, unknown>>;
  readonly decidedAtMs: number;
  readonly landedAtMs: number;
  /** Decided in dry run: nothing was written. */
  readonly dryRun: boolean;
}

export interface GuardianListener {
  decision?(status: GuardedFlagStatus): void;
  rollback?(record: RollbackRecord): void;
  error?(error: Error): void;
}

export interface RolloutGuardianOptions {
  readonly source: FlagSource;
  readonly writer: RolloutWriter;
  readonly registry: CohortRegistry;
  readonly clock?: Clock;
  /** The actor rollbacks are recorded under (default `rollout-guardian`). */
  readonly actor?: string;
  /** Policy defaults for flags whose guard block leaves a field out. */
  readonly defaults?: GuardPolicy;
  /** Limit on one health check's run (default: one slot). */
  readonly healthCheckTimeoutMs?: number;
  /** Judge and report rollbacks without writing them (Argo's dry-run analysis). */
  readonly dryRun?: boolean;
}

interface PendingRollback {
  readonly reason: string;
  readonly cause: RollbackRecord['cause'];
  readonly evidence: Readonly<Record<string, unknown>>;
  readonly decidedAtMs: number;
  attempts: number;
}

interface RegisteredCheck {
  readonly name: string;
  readonly check: HealthCheck;
  readonly flags: readonly string[] | undefined;
  consecutiveFailures: number;
}

interface Guarded {
  readonly flagKey: string;
  readonly definition: FlagDefinition;
  readonly treatmentVariant: string;
  readonly percentage: number;
  readonly policy: GuardPolicy;
}

export class RolloutGuardian {
  private readonly source: FlagSource;
  private readonly writer: RolloutWriter;
  private readonly registry: CohortRegistry;
  private readonly clock: Clock;
  private readonly actor: string;
  private readonly defaults: GuardPolicy;
  private readonly healthCheckTimeoutMs: number;
  private readonly dryRun: boolean;
  /** In dry run, flags whose rollback was already reported, so it is said once per breach. */
  private readonly reportedDryRun = new Set<string>();
  private readonly listeners = new Set<GuardianListener>();
  private readonly pending = new Map<string, PendingRollback>();
  private readonly checks: RegisteredCheck[] = [];
  private readonly latest = new Map<string, GuardedFlagStatus>();
  private snapshot: StoreSnapshot | undefined;
  private stale = true;
  private unwatch: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private lastTickMs: number | undefined;
  private closed = false;

  constructor(options: RolloutGuardianOptions) {
    this.source = options.source;
    this.writer = options.writer;
    this.registry = options.registry;
    this.clock = options.clock ?? systemClock;
    this.actor = options.actor ?? 'rollout-guardian';
    this.defaults = options.defaults ?? DEFAULT_GUARD_POLICY;
    this.healthCheckTimeoutMs = options.healthCheckTimeoutMs ?? this.registry.slotMs;
    this.dryRun = options.dryRun ?? false;
    this.unwatch = this.source.watch((event) => {
      if (event.type === 'change') {
        this.snapshot = event.snapshot;
        this.stale = false;
      }
    });
  }

  /** Ticks once per slot on a real timer that does not keep the process alive. */
  start(): void {
    if (this.closed || this.timer) return;
    this.timer = setInterval(() => {
      void this.tick();
    }, this.registry.slotMs);
    this.timer.unref();
  }

  addListener(listener: GuardianListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Runs `check` every tick; `healthCheckFailures` failures in a row roll back the flags it covers (default: every guarded flag). */
  addHealthCheck(name: string, check: HealthCheck, options: { flags?: readonly string[] } = {}): void {
    this.checks.push({ name, check, flags: options.flags, consecutiveFailures: 0 });
  }

  /** The latest judgment of each guarded flag. */
  status(): GuardedFlagStatus[] {
    return [...this.latest.values()];
  }

  /** When the last tick ran, for health reporting. */
  get lastTick(): number | undefined {
    return this.lastTickMs;
  }

  /** Rollbacks decided but not yet written. */
  get pendingRollbacks(): readonly string[] {
    return [...this.pending.keys()];
  }

  /** One decision per guarded flag. Never rejects; a tick already running is not doubled. */
  tick(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.ticking ??= this.runTick()
      .catch((err: unknown) => this.emitError(err))
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
    this.unwatch?.();
    this.unwatch = undefined;
    await this.ticking;
    this.listeners.clear();
  }

  private async runTick(): Promise<void> {
    const nowMs = this.clock.now();
    this.lastTickMs = nowMs;
    if (this.stale || this.snapshot === undefined) {
      this.snapshot = await this.source.load();
      this.stale = false;
    }
    const guarded = this.guardedFlags(this.snapshot, nowMs);
    if (guarded === undefined) {
      // Emergency shutdown: the guardian stops acting.
      this.latest.clear();
      return;
    }
    const slotMs = this.registry.slotMs;
    const endMs = Math.floor(nowMs / slotMs) * slotMs;
    const fromMs = endMs - (this.registry.slotCount - 1) * slotMs;
    const live = new Set<string>();
    for (const flag of guarded) {
      live.add(flag.flagKey);
      if (this.pending.has(flag.flagKey)) continue;
      const treatment = this.slots(flag.flagKey, flag.treatmentVariant, fromMs, endMs);
      const baseline = this.slots(flag.flagKey, flag.definition.defaultVariant, fromMs, endMs);
      const judgment = judge({ nowMs: endMs, slotMs, policy: flag.policy, z: confidences(flag.policy, slotMs), treatment, baseline });
      const status: GuardedFlagStatus = {
        flagKey: flag.flagKey,
        treatmentVariant: flag.treatmentVariant,
        baselineVariant: flag.definition.defaultVariant,
        percentage: flag.percentage,
        policy: flag.policy,
        judgment,
        judgedAtMs: nowMs,
        rollbackPending: judgment.verdict === 'rollback',
      };
      this.latest.set(flag.flagKey, status);
      this.emit((l) => l.decision?.(status));
      if (judgment.verdict !== 'rollback') this.reportedDryRun.delete(flag.flagKey);
      else if (!this.reportedDryRun.has(flag.flagKey)) {
        this.pending.set(flag.flagKey, { reason: judgment.reason, cause: 'breach', evidence: evidenceOf(status), decidedAtMs: nowMs, attempts: 0 });
      }
    }
    for (const key of this.latest.keys()) if (!live.has(key)) this.latest.delete(key);
    await this.runHealthChecks(guarded, nowMs);
    await this.flushPending();
  }

  private slots(flagKey: string, variant: string, fromMs: number, toMs: number): readonly SlotStats[] {
    const window = this.registry.window(flagKey, variant);
    if (window !== undefined) return window.slots(fromMs, toMs);
    // No traffic yet: the same span, empty, so both cohorts line up slot for slot.
    const empty: SlotStats[] = [];
    for (let t = fromMs; t < toMs; t += this.registry.slotMs) empty.push({ startMs: t, count: 0, errors: 0, sketch: EMPTY_SKETCH });
    return empty;
  }

  /** Flags with a live rollout of a treatment, unless an emergency shutdown stops everything. */
  private guardedFlags(snapshot: StoreSnapshot, nowMs: number): Guarded[] | undefined {
    const { set } = buildFlagSet(snapshot.parsed, snapshot.state, nowMs, undefined, snapshot.external);
    if (set.shutdown) return undefined;
    const out: Guarded[] = [];
    for (const [flagKey, entry] of set.flags) {
      if (entry.kind !== 'flag' || entry.fixed !== undefined || isEmergencyFlag(flagKey)) continue;
      const rollout = entry.definition.rollout;
      if (rollout === undefined || rollout.variant === entry.definition.defaultVariant) continue;
      const policy = resolveGuardPolicy(entry.definition.guard, this.defaults);
      if (!policy.enabled) continue;
      const percentage = weightToPercentage(progressiveWeight(entry, nowMs));
      out.push({ flagKey, definition: entry.definition, treatmentVariant: rollout.variant, percentage, policy });
    }
    return out;
  }

  private async runHealthChecks(guarded: readonly Guarded[], nowMs: number): Promise<void> {
    for (const registered of this.checks) {
      const ok = await this.runCheck(registered.check);
      registered.consecutiveFailures = ok ? 0 : registered.consecutiveFailures + 1;
      if (ok) continue;
      for (const flag of guarded) {
        if (registered.flags !== undefined && !registered.flags.includes(flag.flagKey)) continue;
        if (registered.consecutiveFailures < flag.policy.healthCheckFailures || this.pending.has(flag.flagKey) || this.reportedDryRun.has(flag.flagKey)) continue;
        const reason = `health check "${registered.name}" failed ${registered.consecutiveFailures} times in a row (limit ${flag.policy.healthCheckFailures})`;
        this.pending.set(flag.flagKey, {
          reason,
          cause: 'health-check',
          evidence: { healthCheck: registered.name, consecutiveFailures: registered.consecutiveFailures, limit: flag.policy.healthCheckFailures },
          decidedAtMs: nowMs,
          attempts: 0,
        });
      }
    }
  }

  private async runCheck(check: HealthCheck): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.healthCheckTimeoutMs);
      timer.unref();
    });
    try {
      return (await Promise.race([Promise.resolve().then(check), timeout])) === true;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  private async flushPending(): Promise<void> {
    for (const [flagKey, rollback] of this.pending) {
      if (this.dryRun) {
        this.pending.delete(flagKey);
        this.reportedDryRun.add(flagKey);
        const record = { flagKey, reason: rollback.reason, cause: rollback.cause, evidence: rollback.evidence, decidedAtMs: rollback.decidedAtMs, landedAtMs: this.clock.now(), dryRun: true };
        this.emit((l) => l.rollback?.(record));
        continue;
      }
      rollback.attempts++;
      try {
        await context.with(suppressTracing(context.active()), () =>
          this.writer.rollback(flagKey, { actor: this.actor, reason: rollback.reason }, { cause: rollback.cause, ...rollback.evidence }),
        );
      } catch (err) {
        // Kept and retried next tick; said once, not every tick.
        if (rollback.attempts === 1) this.emitError(new Error(`rollback of "${flagKey}" failed, retrying every tick until it lands: ${String(err)}`));
        continue;
      }
      this.pending.delete(flagKey);
      this.stale = true;
      const record: RollbackRecord = {
        flagKey,
        reason: rollback.reason,
        cause: rollback.cause,
        evidence: rollback.evidence,
        decidedAtMs: rollback.decidedAtMs,
        landedAtMs: this.clock.now(),
        dryRun: false,
      };
      this.emit((l) => l.rollback?.(record));
    }
  }

  private emit(call: (listener: GuardianListener) => void): void {
    for (const listener of this.listeners) {
      try {
        call(listener);
      } catch {
        // A listener cannot break the guardian.
      }
    }
  }

  private emitError(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.emit((l) => l.error?.(error));
  }
}

function evidenceOf(status: GuardedFlagStatus): Record<string, unknown> {
  const j = status.judgment;
  return {
    verdict: j.verdict,
    check: j.decidingCheck,
    checks: j.checks,
    treatment: { variant: status.treatmentVariant, ...j.treatment },
    baseline: { variant: status.baselineVariant, ...j.baseline },
    percentage: status.percentage,
    policy: { ...status.policy },
  };
}
