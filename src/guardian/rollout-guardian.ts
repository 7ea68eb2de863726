// The guardian's loop: once per slot it folds each guarded flag's newly completed slots (in
// event time, behind a watermark) into the evidence of its current rollout or step, judges it,
// and on a confirmed breach or too many failed health checks rolls the flag back through a
// writer. A rollback that fails to write is retried every tick until it lands. One flag's
// failure never costs another its judgment; nothing here throws into the application, errors
// go to OpenTelemetry's diag, and its own writes run with tracing suppressed.
import { context, diag } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import type { Clock } from '../core/clock.js';
import type { FlagDefinition } from '../core/flag-schema.js';
import { type FlagSet, buildFlagSet } from '../core/flag-set.js';
import { EMERGENCY_SHUTDOWN, isEmergencyFlag } from '../core/emergency.js';
import { progressiveWeight } from '../core/evaluate.js';
import { weightToPercentage } from '../core/bucketing.js';
import type { Attribution, Lease, StoreEvent, StoreSnapshot } from '../stores/flag-store.js';
import { systemClock } from '../runtime/system-clock.js';
import type { CohortRegistry } from './cohort-registry.js';
import type { CohortWindow, SlotStats } from './cohort-window.js';
import { FlagEvidence } from './flag-evidence.js';
import { type GuardPolicy, DEFAULT_GUARD_POLICY, resolveGuardPolicy, warnPolicyOf } from './guard-policy.js';
import { type CohortSummary, type Judgment, judge } from './judge.js';
import { LatencyDistribution } from './latency-distribution.js';
import { type SourceProblemView, withSourceProblems } from './source-problems.js';

/** Stands in for the sketch of a slot that saw nothing; never written. */
const EMPTY_SKETCH = new LatencyDistribution();

/**
 * What the guardian needs from a store: implemented by StoreWriter over any FlagStore. A
 * result with no audit entries (`{ entries: [] }`, as StoreWriter.rollbackOnce gives for a flag
 * already rolled back) means nothing was written: the guardian then claims no rollback.
 */
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

/** One run of a registered health check. */
export interface HealthCheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly consecutiveFailures: number;
  /** The flags it covers (undefined: every guarded flag). */
  readonly flags: readonly string[] | undefined;
  readonly atMs: number;
}

/** One tick, after every flag was judged: slots before `watermarkMs` are final for all of them. */
export interface GuardianTick {
  readonly nowMs: number;
  readonly watermarkMs: number;
  /** Every flag guarded this tick (judged, or waiting for its rollback to land), with its cohorts. */
  readonly flags: readonly { readonly flagKey: string; readonly treatmentVariant: string; readonly baselineVariant: string; readonly policy: GuardPolicy }[];
}

export interface GuardianListener {
  decision?(status: GuardedFlagStatus): void;
  tick?(tick: GuardianTick): void;
  rollback?(record: RollbackRecord): void;
  error?(error: Error): void;
  healthCheck?(result: HealthCheckResult): void;
  /** Once at the very end of every tick (after health checks and pending writes), on the guardian's clock. */
  ticked?(atMs: number): void;
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
  /**
   * How long after a slot ends its outcomes may still arrive (default: one slot, for spans
   * recorded in-process; OTLP pipelines batch and want 30 s or more). The guardian judges a
   * slot once this has passed, so a late outcome is never missed once counted.
   */
  readonly allowedLatenessMs?: number;
  /**
   * Asked before every write: while another replica holds the lease, this one keeps judging
   * (its evidence stays warm) and keeps its decisions pending, but writes nothing.
   */
  readonly lease?: Lease;
  /** Metric sources' standing problems (a failed Prometheus query), said in each flag's verdict. */
  readonly sourceProblems?: SourceProblemView;
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
  /** What identifies the rollout or plan step now running: a new one starts new evidence. */
  readonly epochKey: string;
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
  private readonly allowedLatenessMs: number;
  private readonly lease: Lease | undefined;
  private readonly sourceProblems: SourceProblemView | undefined;
  private compiled: { readonly snapshot: StoreSnapshot; readonly set: FlagSet; readonly timed: boolean } | undefined;
  /** Evidence of each guarded flag's current rollout or step. */
  private readonly evidence = new Map<string, FlagEvidence>();
  /** The same flags' evidence against their warning levels, where they have any. */
  private readonly warnEvidence = new Map<string, FlagEvidence>();
  private internalErrors = 0;
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
    this.allowedLatenessMs = Math.max(0, options.allowedLatenessMs ?? this.registry.slotMs);
    this.lease = options.lease;
    this.sourceProblems = options.sourceProblems;
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

  /** Errors caught in ticks, flags' judgments and health checks, as counted for /metrics. */
  get errorCount(): number {
    return this.internalErrors;
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
    const previousMs = this.lastTickMs;
    this.lastTickMs = nowMs;
    const slotMs = this.registry.slotMs;
    if (previousMs !== undefined && nowMs < previousMs - slotMs) this.clockStepped(nowMs - previousMs);
    if (this.stale || this.snapshot === undefined) {
      this.snapshot = await this.source.load();
      this.stale = false;
    }
    const snapshot = this.snapshot;
    const guarded = this.guardedFlags(snapshot, nowMs);
    if (guarded === undefined) {
      // Emergency shutdown: the guardian stops acting.
      this.latest.clear();
      this.evidence.clear();
      this.warnEvidence.clear();
      return;
    }
    // Event time: a slot is judged once its outcomes can no longer be late.
    const watermarkMs = Math.floor((nowMs - this.allowedLatenessMs) / slotMs) * slotMs;
    this.registry.advance(watermarkMs, nowMs, knownVariants(snapshot));
    const live = new Set<string>();
    for (const flag of guarded) {
      live.add(flag.flagKey);
      if (this.pending.has(flag.flagKey)) continue;
      try {
        this.judgeFlag(flag, watermarkMs, nowMs);
      } catch (err) {
        // One flag's failure never costs another flag its judgment.
        this.emitError(new Error(`judging "${flag.flagKey}" failed: ${err instanceof Error ? err.message : String(err)}`));
      }
    }
    for (const key of this.latest.keys()) if (!live.has(key)) this.latest.delete(key);
    const flags = guarded.map((f) => ({ flagKey: f.flagKey, treatmentVariant: f.treatmentVariant, baselineVariant: f.definition.defaultVariant, policy: f.policy }));
    this.emit((l) => l.tick?.({ nowMs, watermarkMs, flags }));
    for (const key of this.evidence.keys()) if (!live.has(key)) this.evidence.delete(key);
    // No longer guarded (rolled back by another replica or an operator, or its rollout ended):
    // a decision still pending for it has nothing left to do.
    for (const key of this.pending.keys()) if (!live.has(key)) this.pending.delete(key);
    for (const key of this.warnEvidence.keys()) if (!live.has(key)) this.warnEvidence.delete(key);
    await this.runHealthChecks(guarded, nowMs);
    await this.flushPending();
    this.emit((l) => l.ticked?.(nowMs));
  }

  private judgeFlag(flag: Guarded, watermarkMs: number, nowMs: number): void {
    let evidence = this.evidence.get(flag.flagKey);
    if (evidence === undefined || evidence.epochKey !== flag.epochKey) {
      // A new rollout, step, percentage or policy: evidence starts now, not before.
      evidence = new FlagEvidence({ policy: flag.policy, startMs: watermarkMs, epochKey: flag.epochKey, slotMs: this.registry.slotMs });
      this.evidence.set(flag.flagKey, evidence);
      const warnPolicy = warnPolicyOf(flag.policy);
      if (warnPolicy === undefined) this.warnEvidence.delete(flag.flagKey);
      else this.warnEvidence.set(flag.flagKey, new FlagEvidence({ policy: warnPolicy.policy, only: warnPolicy.checks, startMs: watermarkMs, epochKey: flag.epochKey, slotMs: this.registry.slotMs }));
    }
    const baselineVariant = flag.definition.defaultVariant;
    const treatmentWindow = this.registry.window(flag.flagKey, flag.treatmentVariant);
    const baselineWindow = this.registry.window(flag.flagKey, baselineVariant);
    const sustainFromMs = watermarkMs - flag.policy.sustainForMs;
    if (evidence.throughMs < watermarkMs) this.fold(evidence, treatmentWindow, baselineWindow, watermarkMs, sustainFromMs);
    const warn = this.warnEvidence.get(flag.flagKey);
    if (warn !== undefined && warn.throughMs < watermarkMs) this.fold(warn, treatmentWindow, baselineWindow, watermarkMs, sustainFromMs);
    const judged = judge({ evidence, warn, treatment: summaryOf(treatmentWindow, sustainFromMs, watermarkMs), baseline: summaryOf(baselineWindow, sustainFromMs, watermarkMs) });
    const judgment = withSourceProblems(judged, this.sourceProblems?.problemsFor(flag.flagKey));
    const status: GuardedFlagStatus = {
      flagKey: flag.flagKey,
      treatmentVariant: flag.treatmentVariant,
      baselineVariant,
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

  /** Folds the slots from where the evidence stands up to the watermark, each exactly once. */
  private fold(evidence: FlagEvidence, treatmentWindow: CohortWindow | undefined, baselineWindow: CohortWindow | undefined, watermarkMs: number, sustainFromMs: number): void {
    if (treatmentWindow === undefined) {
      evidence.fold(evidence.throughMs, watermarkMs, emptySlot(evidence.throughMs), undefined, () => undefined);
      return;
    }
    // The baseline's latest minute or so (the sustainFor when that is too thin) is the reference
    // for relative latency: a global slowdown moves both cohorts' limits together.
    let reference: LatencyDistribution | undefined | null = null;
    const baselineReference = () => {
      if (reference !== null || baselineWindow === undefined) return reference ?? undefined;
      const recent = baselineWindow.merged(watermarkMs - Math.max(this.registry.slotMs, evidence.policy.sustainForMs / 5), watermarkMs);
      reference = recent.count >= evidence.policy.minSamples ? recent.sketch : baselineWindow.merged(sustainFromMs, watermarkMs).sketch;
      return reference;
    };
    const treatment = treatmentWindow.slots(evidence.throughMs, watermarkMs);
    const baseline = baselineWindow?.slots(evidence.throughMs, watermarkMs);
    const first = treatment[0];
    // Slots the ring no longer holds (a stalled guardian) pass unjudged rather than misread.
    if (first !== undefined && first.startMs > evidence.throughMs) evidence.skipTo(first.startMs);
    const slotMs = this.registry.slotMs;
    // Both windows list every slot of the range oldest first, so they line up from the end.
    const offset = baseline === undefined ? 0 : baseline.length - treatment.length;
    for (let i = 0; i < treatment.length; i++) {
      const slot = treatment[i] as SlotStats;
      const b = baseline?.[i + offset];
      evidence.fold(slot.startMs, slot.startMs + slotMs, slot, b !== undefined && b.startMs === slot.startMs ? b : undefined, baselineReference);
    }
  }

  /**
   * The clock went back (an NTP step, a VM restore): event times now read as the past. Shift the
   * evidence back with it and drop the ring's slots from the clock's future, so new outcomes
   * count at once instead of being refused as late for as long as the step.
   */
  private clockStepped(deltaMs: number): void {
    this.emitError(new Error(`the clock stepped back ${Math.round(-deltaMs / 1000)} s; the evidence is kept and shifted with it`));
    const slotMs = this.registry.slotMs;
    const shiftMs = Math.floor(deltaMs / slotMs) * slotMs;
    for (const evidence of this.evidence.values()) evidence.shift(shiftMs);
    for (const evidence of this.warnEvidence.values()) evidence.shift(shiftMs);
    this.registry.clockStepped(shiftMs);
  }

  /** Flags with a live rollout of a treatment, unless an emergency shutdown stops everything. */
  private guardedFlags(snapshot: StoreSnapshot, nowMs: number): Guarded[] | undefined {
    const set = this.flagSetOf(snapshot, nowMs);
    if (set.shutdown) return undefined;
    const out: Guarded[] = [];
    for (const [flagKey, entry] of set.flags) {
      if (entry.kind !== 'flag' || entry.fixed !== undefined || isEmergencyFlag(flagKey)) continue;
      const rollout = entry.definition.rollout;
      if (rollout === undefined || rollout.variant === entry.definition.defaultVariant) continue;
      const policy = resolveGuardPolicy(entry.definition.guard, this.defaults);
      if (!policy.enabled) continue;
      const percentage = weightToPercentage(progressiveWeight(entry, nowMs));
      const plan = entry.state?.plan;
      const epochKey = JSON.stringify([rollout, entry.state?.percentage, plan?.stepIndex, plan?.stepStartedAt, entry.definition.guard]);
      out.push({ flagKey, definition: entry.definition, treatmentVariant: rollout.variant, percentage, policy, epochKey });
    }
    return out;
  }

  /**
   * The snapshot's compiled flags. Compiling hashes every definition, so the set is kept until
   * the snapshot changes; time enters only through an emergency_shutdown with a progressive
   * rollout, which is compiled afresh each tick.
   */
  private flagSetOf(snapshot: StoreSnapshot, nowMs: number): FlagSet {
    const cached = this.compiled;
    if (cached !== undefined && cached.snapshot === snapshot && !cached.timed) return cached.set;
    const { set } = buildFlagSet(snapshot.parsed, snapshot.state, nowMs, undefined, snapshot.external);
    const shutdown = set.flags.get(EMERGENCY_SHUTDOWN);
    this.compiled = { snapshot, set, timed: shutdown?.kind === 'flag' && shutdown.progressive !== undefined };
    return set;
  }

  private async runHealthChecks(guarded: readonly Guarded[], nowMs: number): Promise<void> {
    for (const registered of this.checks) {
      const ok = await this.runCheck(registered.check);
      registered.consecutiveFailures = ok ? 0 : registered.consecutiveFailures + 1;
      const result: HealthCheckResult = { name: registered.name, ok, consecutiveFailures: registered.consecutiveFailures, flags: registered.flags, atMs: nowMs };
      this.emit((l) => l.healthCheck?.(result));
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
        diag.warn(`rollout-guardian: [dry run] would roll back "${flagKey}": ${rollback.reason}`);
        this.emit((l) => l.rollback?.(record));
        continue;
      }
      if (this.lease !== undefined && !this.lease.acting) continue;
      rollback.attempts++;
      let result: unknown;
      try {
        result = await context.with(suppressTracing(context.active()), () =>
          this.writer.rollback(flagKey, { actor: this.actor, reason: rollback.reason }, { cause: rollback.cause, ...rollback.evidence }),
        );
      } catch (err) {
        // Kept and retried next tick; said once, not every tick.
        if (rollback.attempts === 1) this.emitError(new Error(`rollback of "${flagKey}" failed, retrying every tick until it lands: ${String(err)}`));
        continue;
      }
      this.pending.delete(flagKey);
      this.stale = true;
      if (wroteNothing(result)) {
        diag.info(`rollout-guardian: "${flagKey}" was already rolled back; nothing written`);
        continue;
      }
      // Never silent: a rollback is said through OpenTelemetry's diag even with no listener.
      diag.warn(`rollout-guardian: rolled back "${flagKey}": ${rollback.reason}`);
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
    this.internalErrors++;
    diag.error(`rollout-guardian: ${error.message}`);
    this.emit((l) => l.error?.(error));
  }
}

function wroteNothing(result: unknown): boolean {
  return typeof result === 'object' && result !== null && 'entries' in result && Array.isArray(result.entries) && result.entries.length === 0;
}

function emptySlot(startMs: number): SlotStats {
  return { startMs, count: 0, errors: 0, sketch: EMPTY_SKETCH };
}

/** A cohort over [fromMs, toMs): counts now, quantiles merged only when read. */
function summaryOf(window: CohortWindow | undefined, fromMs: number, toMs: number): CohortSummary {
  if (window === undefined) return { samples: 0, errorRate: undefined, p95Ms: undefined, p99Ms: undefined };
  const { count: samples, errors } = window.totals(fromMs, toMs);
  let merged: LatencyDistribution | undefined;
  const sketch = () => (merged ??= window.merged(fromMs, toMs).sketch);
  return {
    sources: window.sources(),
    samples,
    errorRate: samples > 0 ? errors / samples : undefined,
    get p95Ms() {
      return samples > 0 ? sketch().quantile(0.95) : undefined;
    },
    get p99Ms() {
      return samples > 0 ? sketch().quantile(0.99) : undefined;
    },
  };
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

/** Every flag the store knows with its variants (undefined: any variant, for flags it cannot read). */
function knownVariants(snapshot: StoreSnapshot): Map<string, ReadonlySet<string> | undefined> {
  const known = new Map<string, ReadonlySet<string> | undefined>();
  for (const [flagKey, definition] of snapshot.parsed.definitions) known.set(flagKey, new Set(Object.keys(definition.variants)));
  for (const flagKey of snapshot.parsed.invalid.keys()) known.set(flagKey, undefined);
  for (const flagKey of snapshot.external?.keys() ?? []) known.set(flagKey, undefined);
  return known;
}
