// The guardian's OpenTelemetry instruments: evaluation counts the provider feeds, a rollback
// counter fed by the guardian, and gauges over cohorts, verdicts, guard limits and the span
// processor that are computed at collection time (on each scrape), never on a timer.
//
// The JS metrics SDK goes on exporting an observable series' last value after a callback
// stops observing it (opentelemetry-js#4096), so a series, once reported, is reported on
// every collection: NaN where there is nothing to say, never a frozen old value.
import {
  type Attributes,
  type BatchObservableResult,
  type Counter,
  type Meter,
  type Observable,
  type ObservableCounter,
  type ObservableGauge,
  type ObservableResult,
  diag,
} from '@opentelemetry/api';
import type { Clock } from '../core/clock.js';
import type { AggregateRefusal } from '../guardian/cohort-aggregate.js';
import type { CohortRegistry } from '../guardian/cohort-registry.js';
import { DEFAULT_GUARD_POLICY, type GuardPolicy } from '../guardian/guard-policy.js';
import type { GuardianSpanProcessorStats } from '../guardian/guardian-span-processor.js';
import type { OtlpIngestStats } from '../ingest/otlp-ingest.js';
import type { SourceProblems } from '../guardian/source-problems.js';
import type { OtlpMetricsIngestStats } from '../ingest/otlp-metrics-ingest.js';
import { type NotificationTotals, observeNotifications } from './notification-telemetry.js';
import { requirePositiveInteger } from '../guardian/option-checks.js';
import type { GuardedFlagStatus, RollbackRecord, RolloutGuardian } from '../guardian/rollout-guardian.js';
import { systemClock } from '../runtime/system-clock.js';
import type { FlagStore, StoreSnapshot } from '../stores/flag-store.js';
import type { PlanStatus } from '../core/flag-schema.js';
import { type Verdict, LATENESS_REASONS, REFUSAL_REASONS, UNUSED_METRIC_POINT_REASONS, type UnusedMetricPointReason, ATTR_PLAN_STATE, PLAN_STATES, ATTR_CHECK, ATTR_FEATURE_FLAG_KEY, ATTR_METRIC_OVERFLOW, ATTR_REASON, ATTR_SOURCE, SOURCE_ERROR_REASONS, SOURCES_WITH_ERRORS, ATTR_VARIANT, ATTR_VERDICT, METRICS, type MetricSpec, VERDICTS } from './names.js';

export interface GuardianTelemetryOptions {
  readonly meter: Meter;
  /** Source of the cohort gauges and of the count of outcomes it refused. */
  readonly registry?: CohortRegistry;
  /** Source of the verdict, breach, percentage and liveness gauges and of the rollback counter. */
  readonly guardian?: RolloutGuardian;
  /** The span processor's running totals (`() => processor.stats`), read on each collection. */
  readonly processorStats?: () => GuardianSpanProcessorStats;
  /**
   * How far back the cohort gauges look (default: the flag's sustainFor while the guardian
   * judges it, else 5 minutes); never further than the registry holds.
   */
  readonly windowMs?: number;
  /** The guardian's clock, so ages and windows line up with its ticks. */
  readonly clock?: Clock;
  /** OTLP ingest's running totals (`() => ingest.stats`); without it the ingest counters stay 0. */
  readonly ingestStats?: () => OtlpIngestStats;
  /** OTLP metrics ingest's running totals; without it the metric data point counters stay 0. */
  readonly metricsIngestStats?: () => OtlpMetricsIngestStats;
  /** Where plan state lives: the plan step and state gauges follow its changes. */
  readonly plans?: Pick<FlagStore, 'load' | 'watch'>;
  /** The plan runner, whose background errors are counted beside the guardian's. */
  readonly planRunner?: { readonly errorCount: number };
  /** Whether this replica acts on its store (the guardian lease, docs/fleet.md); default: it does. */
  readonly leaseHolder?: () => boolean;
  /** Metric sources' problems (failed Prometheus queries, empty answers); without it the source errors stay 0. */
  readonly sourceProblems?: Pick<SourceProblems, 'count'>;
  /** The notifier's totals per webhook target (`() => notifier.stats()`). */
  readonly notifications?: () => readonly NotificationTotals[];
}

const GUARDIAN_ERRORS = Object.freeze({ [ATTR_REASON]: 'guardian' });
const PLAN_ERRORS = Object.freeze({ [ATTR_REASON]: 'plans' });
const AGGREGATE_REFUSALS: readonly AggregateRefusal[] = ['invalid', 'late', 'future', 'cohort-limit', 'other-source'];
const LATE = Object.freeze({ [ATTR_REASON]: 'late' });
const FUTURE = Object.freeze({ [ATTR_REASON]: 'future' });

// Flag keys come from callers, and a typo'd key per request would otherwise grow the counts
// without bound; beyond this many flags evaluations are counted under one overflow series.
const MAX_COUNTED_FLAGS = 1000;

/** One evaluation series: its attributes, built once, and its running count. */
interface EvaluationCount {
  readonly attributes: Attributes;
  count: number;
}

type EvaluationCounts = Map<string, Map<string | undefined, Map<string, EvaluationCount>>>;

function evaluationCount(flagKey: string, variant: string | undefined, reason: string): EvaluationCount {
  // A missing variant is left out rather than sent as "": Prometheus reads both the same.
  const attributes: Attributes = variant === undefined ? { [ATTR_FEATURE_FLAG_KEY]: flagKey, [ATTR_REASON]: reason } : { [ATTR_FEATURE_FLAG_KEY]: flagKey, [ATTR_VARIANT]: variant, [ATTR_REASON]: reason };
  return { attributes: Object.freeze(attributes), count: 0 };
}

/** What decided a rollback, read from the evidence the guardian records with it. */
function decidingCheck(record: RollbackRecord): string | undefined {
  const evidence = record.evidence;
  if (record.cause === 'health-check') return typeof evidence.healthCheck === 'string' ? evidence.healthCheck : undefined;
  const check: unknown = evidence.check;
  if (typeof check === 'object' && check !== null && 'check' in check && typeof check.check === 'string') return check.check;
  return undefined;
}

function isBreach(status: GuardedFlagStatus): boolean {
  return status.judgment.verdict === 'breaching' || status.judgment.verdict === 'rollback';
}

export class GuardianTelemetry {
  private readonly meter: Meter;
  private readonly registry: CohortRegistry | undefined;
  private readonly guardian: RolloutGuardian | undefined;
  private readonly processorStats: (() => GuardianSpanProcessorStats) | undefined;
  private readonly windowMs: number | undefined;
  private readonly clock: Clock;
  private readonly rollbacks: Counter;
  private readonly evaluations: ObservableCounter;
  private readonly rolloutPercentage: ObservableGauge;
  private readonly cohortRequests: ObservableGauge;
  private readonly cohortErrorRate: ObservableGauge;
  private readonly cohortLatencyP95: ObservableGauge;
  private readonly cohortLatencyP99: ObservableGauge;
  private readonly breach: ObservableGauge;
  private readonly verdict: ObservableGauge;
  private readonly guardMaxErrorRate: ObservableGauge;
  private readonly guardMaxP95: ObservableGauge;
  private readonly guardMaxP99: ObservableGauge;
  private readonly pendingRollbacks: ObservableGauge;
  private readonly lastTickAge: ObservableGauge;
  private readonly recordedOutcomes: ObservableCounter;
  private readonly droppedExposures: ObservableCounter;
  private readonly droppedTraces: ObservableCounter;
  private readonly internalErrors: ObservableCounter;
  private readonly droppedCohortOutcomes: ObservableCounter;
  private readonly observables: Observable[];
  private readonly evaluationCounts: EvaluationCounts = new Map();
  private readonly overflow: EvaluationCount = { attributes: Object.freeze({ [ATTR_METRIC_OVERFLOW]: true }), count: 0 };
  /** Every flag the verdict, breach, percentage and limit gauges have reported. */
  private readonly judgedFlags = new Set<string>();
  /** Flags whose rollback landed, with when: their treatment is at 0% though the guardian no longer reports them. */
  private readonly rolledBack = new Map<string, number>();
  /** Each flag's plan step and status from the latest store snapshot; flags seen once stay, without a plan. */
  private readonly planOf = new Map<string, { step: number; status: PlanStatus } | undefined>();
  private readonly planStep: ObservableGauge;
  private readonly planState: ObservableGauge;
  private readonly guardianErrors: ObservableCounter;
  private readonly outOfTimeOutcomes: ObservableCounter;
  private readonly cohortSource: ObservableGauge;
  private readonly refusedAggregates: ObservableCounter;
  private readonly planRunner: { readonly errorCount: number } | undefined;
  private unwatchPlans: (() => void) | undefined;
  private removeIngest: (() => void) | undefined;
  private removeLease: (() => void) | undefined;
  private removeSources: (() => void) | undefined;
  private removeNotifications: (() => void) | undefined;
  private unsubscribe: (() => void) | undefined;
  private warned = false;
  private closed = false;

  constructor(options: GuardianTelemetryOptions) {
    this.meter = options.meter;
    this.registry = options.registry;
    this.guardian = options.guardian;
    this.processorStats = options.processorStats;
    this.windowMs = options.windowMs === undefined ? undefined : requirePositiveInteger('GuardianTelemetry', 'windowMs', options.windowMs);
    this.clock = options.clock ?? systemClock;
    const meter = this.meter;
    const counter = (spec: MetricSpec) => meter.createCounter(spec.name, { unit: spec.unit, description: spec.description });
    const gauge = (spec: MetricSpec) => meter.createObservableGauge(spec.name, { unit: spec.unit, description: spec.description });
    const observableCounter = (spec: MetricSpec) => meter.createObservableCounter(spec.name, { unit: spec.unit, description: spec.description });
    this.rollbacks = counter(METRICS.rollbacks);
    this.evaluations = observableCounter(METRICS.evaluations);
    this.rolloutPercentage = gauge(METRICS.rolloutPercentage);
    this.cohortRequests = gauge(METRICS.cohortRequests);
    this.cohortErrorRate = gauge(METRICS.cohortErrorRate);
    this.cohortLatencyP95 = gauge(METRICS.cohortLatencyP95);
    this.cohortLatencyP99 = gauge(METRICS.cohortLatencyP99);
    this.breach = gauge(METRICS.breach);
    this.verdict = gauge(METRICS.verdict);
    this.guardMaxErrorRate = gauge(METRICS.guardMaxErrorRate);
    this.guardMaxP95 = gauge(METRICS.guardMaxP95);
    this.guardMaxP99 = gauge(METRICS.guardMaxP99);
    this.pendingRollbacks = gauge(METRICS.pendingRollbacks);
    this.lastTickAge = gauge(METRICS.lastTickAge);
    this.recordedOutcomes = observableCounter(METRICS.recordedOutcomes);
    this.droppedExposures = observableCounter(METRICS.droppedExposures);
    this.droppedTraces = observableCounter(METRICS.droppedTraces);
    this.internalErrors = observableCounter(METRICS.internalErrors);
    this.droppedCohortOutcomes = observableCounter(METRICS.droppedCohortOutcomes);
    this.planStep = gauge(METRICS.planStep);
    this.planState = gauge(METRICS.planState);
    this.guardianErrors = observableCounter(METRICS.guardianErrors);
    this.outOfTimeOutcomes = observableCounter(METRICS.outOfTimeOutcomes);
    this.cohortSource = gauge(METRICS.cohortSource);
    this.refusedAggregates = observableCounter(METRICS.refusedAggregates);
    this.planRunner = options.planRunner;
    this.observables = [
      this.guardianErrors,
      this.outOfTimeOutcomes,
      this.cohortSource,
      this.refusedAggregates,
      this.planStep,
      this.planState,
      this.evaluations,
      this.rolloutPercentage,
      this.cohortRequests,
      this.cohortErrorRate,
      this.cohortLatencyP95,
      this.cohortLatencyP99,
      this.breach,
      this.verdict,
      this.guardMaxErrorRate,
      this.guardMaxP95,
      this.guardMaxP99,
      this.pendingRollbacks,
      this.lastTickAge,
      this.recordedOutcomes,
      this.droppedExposures,
      this.droppedTraces,
      this.internalErrors,
      this.droppedCohortOutcomes,
    ];
    this.removeIngest = this.observeIngest(meter, options.ingestStats, options.metricsIngestStats);
    this.removeLease = this.observeLease(meter, options.leaseHolder ?? (() => true));
    this.removeSources = this.observeSourceErrors(meter, options.sourceProblems);
    const notifications = options.notifications;
    if (notifications !== undefined) this.removeNotifications = observeNotifications(meter, notifications, (err) => this.warnOnce(err));
    // One batch callback, so a scrape reads the guardian's status once for every gauge.
    meter.addBatchObservableCallback(this.collect, this.observables);
    this.unsubscribe = this.guardian?.addListener({ rollback: (record) => this.onRollback(record) });
    const plans = options.plans;
    if (plans !== undefined) {
      this.unwatchPlans = plans.watch((event) => {
        if (event.type === 'change') this.notePlans(event.snapshot);
      });
      plans.load().then(
        (snapshot) => this.notePlans(snapshot),
        (err: unknown) => this.warnOnce(err),
      );
    }
  }

  private notePlans(snapshot: StoreSnapshot): void {
    if (this.closed) return;
    for (const key of this.planOf.keys()) this.planOf.set(key, undefined);
    for (const [flagKey, state] of snapshot.state) {
      if (state.plan !== undefined) this.planOf.set(flagKey, { step: state.plan.stepIndex + 1, status: state.plan.status });
    }
  }

  private observePlans(result: BatchObservableResult): void {
    for (const [flagKey, plan] of this.planOf) {
      const flag = { [ATTR_FEATURE_FLAG_KEY]: flagKey };
      result.observe(this.planStep, plan === undefined ? Number.NaN : plan.step, flag);
      for (const state of PLAN_STATES) result.observe(this.planState, plan?.status === state ? 1 : 0, { [ATTR_FEATURE_FLAG_KEY]: flagKey, [ATTR_PLAN_STATE]: state });
    }
  }

  /**
   * Counts one flag resolution. The provider calls it on every evaluation, so it is three map
   * lookups and an increment, read at scrape time: a Counter.add() would hash the attributes
   * on every call (about 1 µs). Never throws.
   */
  recordEvaluation(flagKey: string, variant: string | undefined, reason: string): void {
    if (this.closed) return;
    try {
      this.countFor(flagKey, variant, reason).count++;
    } catch (err) {
      this.warnOnce(err);
    }
  }

  /**
   * Stops reporting: the rollback listener and the collection callback are removed. Idempotent.
   * The SDK keeps exporting the gauges' last values until its MeterProvider shuts down.
   */
  shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.unwatchPlans?.();
    this.unwatchPlans = undefined;
    this.planOf.clear();
    try {
      this.meter.removeBatchObservableCallback(this.collect, this.observables);
      this.removeIngest?.();
      this.removeIngest = undefined;
      this.removeLease?.();
      this.removeLease = undefined;
      this.removeSources?.();
      this.removeSources = undefined;
      this.removeNotifications?.();
      this.removeNotifications = undefined;
    } catch (err) {
      this.warnOnce(err);
    }
    this.evaluationCounts.clear();
    this.judgedFlags.clear();
    this.rolledBack.clear();
  }

  private countFor(flagKey: string, variant: string | undefined, reason: string): EvaluationCount {
    let byVariant = this.evaluationCounts.get(flagKey);
    if (byVariant === undefined) {
      if (this.evaluationCounts.size >= MAX_COUNTED_FLAGS) return this.overflow;
      byVariant = new Map();
      this.evaluationCounts.set(flagKey, byVariant);
    }
    let byReason = byVariant.get(variant);
    if (byReason === undefined) {
      byReason = new Map();
      byVariant.set(variant, byReason);
    }
    let entry = byReason.get(reason);
    if (entry === undefined) {
      entry = evaluationCount(flagKey, variant, reason);
      byReason.set(reason, entry);
    }
    return entry;
  }

  private onRollback(record: RollbackRecord): void {
    if (this.closed) return;
    try {
      const check = decidingCheck(record);
      const attributes: Attributes = { [ATTR_FEATURE_FLAG_KEY]: record.flagKey, [ATTR_REASON]: record.cause };
      if (check !== undefined) attributes[ATTR_CHECK] = check;
      this.rollbacks.add(1, attributes);
      this.rolledBack.set(record.flagKey, record.landedAtMs);
      this.judgedFlags.add(record.flagKey);
    } catch (err) {
      this.warnOnce(err);
    }
  }

  private readonly collect = (result: BatchObservableResult): void => {
    if (this.closed) return;
    const nowMs = this.clock.now();
    let statuses: GuardedFlagStatus[] = [];
    // Each source on its own, so one that fails does not blank the others.
    try {
      this.observeEvaluations(result);
    } catch (err) {
      this.warnOnce(err);
    }
    try {
      this.observePlans(result);
    } catch (err) {
      this.warnOnce(err);
    }
    try {
      if (this.guardian !== undefined) {
        statuses = this.guardian.status();
        this.observeGuardian(result, this.guardian, statuses, nowMs);
      }
    } catch (err) {
      this.warnOnce(err);
    }
    try {
      if (this.registry !== undefined) this.observeCohorts(result, this.registry, statuses, nowMs);
    } catch (err) {
      this.warnOnce(err);
    }
    try {
      const stats = this.processorStats?.();
      if (stats !== undefined) {
        result.observe(this.recordedOutcomes, stats.recordedOutcomes);
        result.observe(this.droppedExposures, stats.droppedExposures);
        result.observe(this.droppedTraces, stats.droppedTraces);
        result.observe(this.internalErrors, stats.internalErrors);
      }
    } catch (err) {
      this.warnOnce(err);
    }
  };

  /** The ingest counters, every reason reported from the start so a refusal shows as a rise, not a new series. */
  private observeIngest(meter: Meter, stats: (() => OtlpIngestStats) | undefined, metricStats: (() => OtlpMetricsIngestStats) | undefined): () => void {
    const counter = (spec: MetricSpec) => meter.createObservableCounter(spec.name, { unit: spec.unit, description: spec.description });
    const refusedRequests = counter(METRICS.ingestRefusedRequests);
    const refusedEvents = counter(METRICS.ingestRefusedEvents);
    const spans = counter(METRICS.ingestSpans);
    const logRecords = counter(METRICS.ingestLogRecords);
    const unattributable = counter(METRICS.ingestUnattributable);
    const metricPoints = counter(METRICS.ingestMetricDataPoints);
    const unusedMetricPoints = counter(METRICS.ingestUnusedMetricDataPoints);
    const unusedReasons = UNUSED_METRIC_POINT_REASONS.map((reason) => [reason, Object.freeze({ [ATTR_REASON]: reason })] as const);
    const requestReasons = REFUSAL_REASONS.map((reason) => [reason, Object.freeze({ [ATTR_REASON]: reason })] as const);
    const eventReasons = LATENESS_REASONS.map((reason) => [reason, Object.freeze({ [ATTR_REASON]: reason })] as const);
    const observables = [refusedRequests, refusedEvents, spans, logRecords, unattributable, metricPoints, unusedMetricPoints];
    const callback = (result: BatchObservableResult) => {
      try {
        const s = stats?.();
        for (const [reason, attributes] of requestReasons) result.observe(refusedRequests, s?.refusedRequests[reason] ?? 0, attributes);
        for (const [reason, attributes] of eventReasons) result.observe(refusedEvents, s?.[reason] ?? 0, attributes);
        result.observe(spans, s?.spans ?? 0);
        result.observe(logRecords, s?.logRecords ?? 0);
        result.observe(unattributable, s?.unattributable ?? 0);
        const m = metricStats?.();
        result.observe(metricPoints, m?.dataPoints ?? 0);
        for (const [reason, attributes] of unusedReasons) result.observe(unusedMetricPoints, m === undefined ? 0 : unusedMetricPointCount(m, reason), attributes);
      } catch (err) {
        this.warnOnce(err);
      }
    };
    meter.addBatchObservableCallback(callback, observables);
    return () => meter.removeBatchObservableCallback(callback, observables);
  }

  /** 1 on the replica that holds the guardian lease (acts), 0 on a standby. */
  private observeLease(meter: Meter, acting: () => boolean): () => void {
    const spec = METRICS.leaseHolder;
    const holder = meter.createObservableGauge(spec.name, { unit: spec.unit, description: spec.description });
    const callback = (result: { observe(value: number): void }) => {
      try {
        result.observe(acting() ? 1 : 0);
      } catch (err) {
        this.warnOnce(err);
      }
    };
    holder.addCallback(callback);
    return () => holder.removeCallback(callback);
  }

  /** Source errors by source and reason, every pair reported from the start so a failure shows as a rise. */
  private observeSourceErrors(meter: Meter, problems: Pick<SourceProblems, 'count'> | undefined): () => void {
    const spec = METRICS.sourceErrors;
    const errors = meter.createObservableCounter(spec.name, { unit: spec.unit, description: spec.description });
    const series = SOURCES_WITH_ERRORS.flatMap((source) => SOURCE_ERROR_REASONS.map((reason) => [source, reason, Object.freeze({ [ATTR_SOURCE]: source, [ATTR_REASON]: reason })] as const));
    const callback = (result: ObservableResult) => {
      try {
        for (const [source, reason, attributes] of series) result.observe(problems?.count(source, reason) ?? 0, attributes);
      } catch (err) {
        this.warnOnce(err);
      }
    };
    errors.addCallback(callback);
    return () => errors.removeCallback(callback);
  }

  private observeEvaluations(result: BatchObservableResult): void {
    for (const byVariant of this.evaluationCounts.values()) {
      for (const byReason of byVariant.values()) {
        for (const entry of byReason.values()) result.observe(this.evaluations, entry.count, entry.attributes);
      }
    }
    if (this.overflow.count > 0) result.observe(this.evaluations, this.overflow.count, this.overflow.attributes);
  }

  private observeGuardian(result: BatchObservableResult, guardian: RolloutGuardian, statuses: readonly GuardedFlagStatus[], nowMs: number): void {
    const judged = new Set<string>();
    for (const status of statuses) {
      const flagKey = status.flagKey;
      judged.add(flagKey);
      this.judgedFlags.add(flagKey);
      const landedAtMs = this.rolledBack.get(flagKey);
      // A status judged after the rollback landed means the flag is guarded again (its state was reset).
      if (landedAtMs !== undefined && status.judgedAtMs > landedAtMs) this.rolledBack.delete(flagKey);
      this.observeFlag(result, flagKey, this.rolledBack.has(flagKey) ? 0 : status.percentage, isBreach(status) ? 1 : 0, status.judgment.verdict, status.policy);
    }
    // The guardian stops judging a flag once its rollback lands (or its guard goes): no verdict,
    // no breach, no limits, and 0% after a rollback, so dashboards show the drop rather than a
    // frozen last value; otherwise its percentage is unknown here.
    for (const flagKey of this.judgedFlags) {
      if (!judged.has(flagKey)) this.observeFlag(result, flagKey, this.rolledBack.has(flagKey) ? 0 : Number.NaN, 0, undefined, undefined);
    }
    result.observe(this.pendingRollbacks, guardian.pendingRollbacks.length);
    const lastTick = guardian.lastTick;
    if (lastTick !== undefined) result.observe(this.lastTickAge, Math.max(0, nowMs - lastTick) / 1000);
    result.observe(this.guardianErrors, guardian.errorCount, GUARDIAN_ERRORS);
    if (this.planRunner !== undefined) result.observe(this.guardianErrors, this.planRunner.errorCount, PLAN_ERRORS);
  }

  private observeFlag(result: BatchObservableResult, flagKey: string, percentage: number, breach: number, current: Verdict | undefined, policy: GuardPolicy | undefined): void {
    const flag = { [ATTR_FEATURE_FLAG_KEY]: flagKey };
    result.observe(this.rolloutPercentage, percentage, flag);
    result.observe(this.breach, breach, flag);
    // The limits the dashboards draw as lines: the absolute ones, which also stand as a ceiling in
    // relative mode. Judged against the baseline alone (ceiling off), there is no fixed line: NaN, a gap.
    const absolute = policy !== undefined && (policy.relative === undefined || policy.relative.ceiling);
    result.observe(this.guardMaxErrorRate, absolute ? policy.maxErrorRate : Number.NaN, flag);
    result.observe(this.guardMaxP95, absolute ? policy.maxP95Ms / 1000 : Number.NaN, flag);
    result.observe(this.guardMaxP99, absolute ? policy.maxP99Ms / 1000 : Number.NaN, flag);
    for (const verdict of VERDICTS) result.observe(this.verdict, verdict === current ? 1 : 0, { [ATTR_FEATURE_FLAG_KEY]: flagKey, [ATTR_VERDICT]: verdict });
  }

  private observeCohorts(result: BatchObservableResult, registry: CohortRegistry, statuses: readonly GuardedFlagStatus[], nowMs: number): void {
    const slotMs = registry.slotMs;
    // Complete slots only, ending where the guardian's last tick judged, so the gauges show
    // the numbers behind its verdict rather than a half-filled current slot.
    const endMs = Math.floor(nowMs / slotMs) * slotMs;
    const heldSlots = Math.max(1, registry.slotCount - 1);
    result.observe(this.droppedCohortOutcomes, registry.droppedCohorts);
    result.observe(this.outOfTimeOutcomes, registry.lateCount, LATE);
    result.observe(this.outOfTimeOutcomes, registry.futureCount, FUTURE);
    const refusals = registry.aggregateRefusals;
    for (const reason of AGGREGATE_REFUSALS) result.observe(this.refusedAggregates, refusals[reason], { [ATTR_REASON]: reason });
    const sustainFor = new Map<string, number>();
    if (this.windowMs === undefined) for (const status of statuses) sustainFor.set(status.flagKey, status.policy.sustainForMs);
    for (const { flagKey, variant, window } of registry.cohorts()) {
      const windowMs = this.windowMs ?? sustainFor.get(flagKey) ?? DEFAULT_GUARD_POLICY.sustainForMs;
      const slots = Math.min(heldSlots, Math.max(1, Math.round(windowMs / slotMs)));
      const stats = window.merged(endMs - slots * slotMs, endMs);
      const cohort = { [ATTR_FEATURE_FLAG_KEY]: flagKey, [ATTR_VARIANT]: variant };
      result.observe(this.cohortRequests, stats.count, cohort);
      // No traffic is no rate and no latency (NaN, a gap in Prometheus), not zero.
      result.observe(this.cohortErrorRate, stats.count > 0 ? stats.errors / stats.count : Number.NaN, cohort);
      result.observe(this.cohortLatencyP95, (stats.sketch.quantile(0.95) ?? Number.NaN) / 1000, cohort);
      result.observe(this.cohortLatencyP99, (stats.sketch.quantile(0.99) ?? Number.NaN) / 1000, cohort);
      for (const source of window.sources()) result.observe(this.cohortSource, 1, { ...cohort, [ATTR_SOURCE]: source });
    }
  }

  private warnOnce(err: unknown): void {
    if (this.warned) return;
    this.warned = true;
    try {
      diag.warn('rollout-guardian telemetry: a metric could not be recorded; further failures are not logged', err);
    } catch {
      // Even the logger cannot break a caller.
    }
  }
}

function unusedMetricPointCount(stats: OtlpMetricsIngestStats, reason: UnusedMetricPointReason): number {
  switch (reason) {
    case 'baseline':
      return stats.baselinePoints;
    case 'stale':
      return stats.stalePoints;
    case 'unattributed':
      return stats.unattributedPoints;
    case 'unmapped':
      return stats.skippedPoints;
    case 'summary':
      return stats.summaryPoints;
    default:
      return stats.refusedPoints[reason];
  }
}
