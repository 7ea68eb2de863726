// Every metric and attribute name rollout-guardian emits, in one place: the OpenTelemetry
// name, unit and description each instrument is created with, and the Prometheus name and
// labels the exporter turns them into. Dashboards, tests and docs take names from here.
import { ATTR_HTTP_RESPONSE_STATUS_CODE } from '@opentelemetry/semantic-conventions';
import {
  ATTR_FEATURE_FLAG_KEY,
  ATTR_FEATURE_FLAG_PROVIDER_NAME,
  ATTR_FEATURE_FLAG_RESULT_REASON,
  ATTR_FEATURE_FLAG_RESULT_VARIANT,
  EVENT_FEATURE_FLAG_EVALUATION,
} from '@opentelemetry/semantic-conventions/incubating';
import { type PlanStatus, planStatuses } from '../core/flag-schema.js';

// The span side, from OpenTelemetry's semantic conventions: the flag (`feature_flag.key`,
// also the metrics' flag attribute), the evaluation event and the HTTP status the default
// failure classifier reads.
export {
  ATTR_FEATURE_FLAG_KEY,
  ATTR_FEATURE_FLAG_PROVIDER_NAME,
  ATTR_FEATURE_FLAG_RESULT_REASON,
  ATTR_FEATURE_FLAG_RESULT_VARIANT,
  EVENT_FEATURE_FLAG_EVALUATION,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
};

/**
 * Names older producers still send, read beside the current ones: the `feature_flag` span
 * event with `feature_flag.variant` (semantic conventions before 1.28), and `http.status_code`.
 */
export const EVENT_FEATURE_FLAG_PREVIOUS = 'feature_flag';
export const ATTR_FEATURE_FLAG_VARIANT_PREVIOUS = 'feature_flag.variant';
export const ATTR_HTTP_STATUS_CODE_PREVIOUS = 'http.status_code';
/** The event name of a log record that predates LogRecord.event_name, as an attribute. */
export const ATTR_EVENT_NAME = 'event.name';

/** `feature_flag.provider.name` on spans and the OpenFeature provider's metadata name. */
export const PROVIDER_NAME = 'rollout-guardian';
export const ATTR_VARIANT = 'variant';
/** An OpenFeature reason on evaluations; the cause (`breach`, `health-check`) on rollbacks. */
export const ATTR_REASON = 'reason';
export const ATTR_VERDICT = 'verdict';
/** The check that decided a rollback: `errorRate`, `p95`, `p99`, or a health check's name. */
export const ATTR_CHECK = 'check';
/** A deployment plan's status: running, paused, completed, aborted, rolled-back. */
export const ATTR_PLAN_STATE = 'state';
/** Where a cohort's numbers came from: spans, otlp-metrics, prometheus, metric-reader. */
export const ATTR_SOURCE = 'source';
/** A notification target's name (from the notify file). */
export const ATTR_TARGET = 'target';
/** How a notification ended: sent, failed, dropped; or retried, for an attempt to be repeated. */
export const ATTR_OUTCOME = 'outcome';

/**
 * OpenTelemetry's mark for measurements beyond a cardinality limit; here, evaluations of
 * flags past the first thousand keys seen, counted together without their flag.
 */
export const ATTR_METRIC_OVERFLOW = 'otel.metric.overflow';

/** Attribute names as Prometheus labels: the exporter turns every character outside [a-zA-Z0-9_] into `_`. */
export const PROMETHEUS_LABELS = {
  [ATTR_FEATURE_FLAG_KEY]: 'feature_flag_key',
  [ATTR_VARIANT]: 'variant',
  [ATTR_REASON]: 'reason',
  [ATTR_VERDICT]: 'verdict',
  [ATTR_CHECK]: 'check',
  [ATTR_PLAN_STATE]: 'state',
  [ATTR_SOURCE]: 'source',
  [ATTR_TARGET]: 'target',
  [ATTR_OUTCOME]: 'outcome',
  [ATTR_METRIC_OVERFLOW]: 'otel_metric_overflow',
} as const;

export type AttributeName = keyof typeof PROMETHEUS_LABELS;

export interface MetricSpec {
  /** The OpenTelemetry instrument name. */
  readonly name: string;
  /** UCUM unit; the exporter prints it as `# UNIT` metadata, not in the name. */
  readonly unit: string;
  readonly description: string;
  readonly instrument: 'counter' | 'gauge' | 'observable-counter';
  readonly attributes: readonly AttributeName[];
}

const FLAG = [ATTR_FEATURE_FLAG_KEY] as const;
const COHORT = [ATTR_FEATURE_FLAG_KEY, ATTR_VARIANT] as const;

export const METRICS = {
  evaluations: {
    name: 'rollout_guardian.flag.evaluations',
    unit: '{evaluation}',
    description: 'Flag evaluations answered by the provider, by flag, variant and OpenFeature reason.',
    instrument: 'observable-counter',
    attributes: [ATTR_FEATURE_FLAG_KEY, ATTR_VARIANT, ATTR_REASON],
  },
  rolloutPercentage: {
    name: 'rollout_guardian.flag.rollout_percentage',
    unit: '%',
    description: 'Share of traffic a guarded flag sends to its treatment variant; 0 once a rollback has landed.',
    instrument: 'gauge',
    attributes: FLAG,
  },
  cohortRequests: {
    name: 'rollout_guardian.cohort.requests',
    unit: '{request}',
    description: "Requests the cohort (flag x variant) saw in the guardian's window.",
    instrument: 'gauge',
    attributes: COHORT,
  },
  cohortErrorRate: {
    name: 'rollout_guardian.cohort.error_rate',
    unit: '1',
    description: "Share of the cohort's requests that failed in the guardian's window, 0..1.",
    instrument: 'gauge',
    attributes: COHORT,
  },
  cohortLatencyP95: {
    name: 'rollout_guardian.cohort.latency.p95_seconds',
    unit: 's',
    description: "P95 request latency of the cohort in the guardian's window, in seconds.",
    instrument: 'gauge',
    attributes: COHORT,
  },
  cohortLatencyP99: {
    name: 'rollout_guardian.cohort.latency.p99_seconds',
    unit: 's',
    description: "P99 request latency of the cohort in the guardian's window, in seconds.",
    instrument: 'gauge',
    attributes: COHORT,
  },
  breach: {
    name: 'rollout_guardian.flag.breach',
    unit: '',
    description: "1 while the guardian's verdict on the flag is breaching or rollback, else 0.",
    instrument: 'gauge',
    attributes: FLAG,
  },
  verdict: {
    name: 'rollout_guardian.flag.verdict',
    unit: '',
    description: "The guardian's verdict on the flag as a state set: 1 for the current verdict, 0 for the others.",
    instrument: 'gauge',
    attributes: [ATTR_FEATURE_FLAG_KEY, ATTR_VERDICT],
  },
  guardMaxErrorRate: {
    name: 'rollout_guardian.guard.max_error_rate',
    unit: '1',
    description: "The guard's limit on the treatment's error rate, 0..1; NaN while the flag is judged relative to its baseline or not judged.",
    instrument: 'gauge',
    attributes: FLAG,
  },
  guardMaxP95: {
    name: 'rollout_guardian.guard.max_p95_seconds',
    unit: 's',
    description: "The guard's absolute limit on the treatment's P95 latency, in seconds (a ceiling in relative mode); NaN while the flag is judged relative to its baseline alone or not judged.",
    instrument: 'gauge',
    attributes: FLAG,
  },
  planStep: {
    name: 'rollout_guardian.plan.step',
    unit: '{step}',
    description: "The step a flag's deployment plan is at, counting from 1; NaN once the flag has no plan.",
    instrument: 'gauge',
    attributes: FLAG,
  },
  planState: {
    name: 'rollout_guardian.plan.state',
    unit: '1',
    description: "A flag's deployment plan status as a state set: 1 for the current state, 0 for the others.",
    instrument: 'gauge',
    attributes: [ATTR_FEATURE_FLAG_KEY, ATTR_PLAN_STATE],
  },
  guardMaxP99: {
    name: 'rollout_guardian.guard.max_p99_seconds',
    unit: 's',
    description: "The guard's absolute limit on the treatment's P99 latency, in seconds (a ceiling in relative mode); NaN while the flag is judged relative to its baseline alone or not judged.",
    instrument: 'gauge',
    attributes: FLAG,
  },
  rollbacks: {
    name: 'rollout_guardian.rollbacks',
    unit: '{rollback}',
    description: 'Rollbacks the guardian wrote, by flag, cause (reason) and deciding check.',
    instrument: 'counter',
    attributes: [ATTR_FEATURE_FLAG_KEY, ATTR_REASON, ATTR_CHECK],
  },
  pendingRollbacks: {
    name: 'rollout_guardian.pending_rollbacks',
    unit: '{rollback}',
    description: 'Rollbacks decided but not yet written to the store (retried every tick).',
    instrument: 'gauge',
    attributes: [],
  },
  lastTickAge: {
    name: 'rollout_guardian.last_tick_age_seconds',
    unit: 's',
    description: 'Seconds since the guardian last judged its flags; growing past a slot means it has stalled.',
    instrument: 'gauge',
    attributes: [],
  },
  recordedOutcomes: {
    name: 'rollout_guardian.span_processor.recorded_outcomes',
    unit: '{outcome}',
    description: 'Outcomes the span processor recorded, one per cohort a local root span was exposed to.',
    instrument: 'observable-counter',
    attributes: [],
  },
  droppedExposures: {
    name: 'rollout_guardian.span_processor.dropped_exposures',
    unit: '{exposure}',
    description: 'Flag exposures the span processor dropped because a trace was exposed to more cohorts than it keeps.',
    instrument: 'observable-counter',
    attributes: [],
  },
  droppedTraces: {
    name: 'rollout_guardian.span_processor.dropped_traces',
    unit: '{trace}',
    description: 'Traces whose exposures the span processor evicted (too many held, or too old) before their root span ended.',
    instrument: 'observable-counter',
    attributes: [],
  },
  internalErrors: {
    name: 'rollout_guardian.span_processor.internal_errors',
    unit: '{error}',
    description: 'Errors the span processor caught in onEnd (its classifier included) rather than throw into the application.',
    instrument: 'observable-counter',
    attributes: [],
  },
  droppedCohortOutcomes: {
    name: 'rollout_guardian.cohort_registry.dropped_outcomes',
    unit: '{outcome}',
    description: 'Outcomes the cohort registry refused because their cohort would have exceeded its cohort limit.',
    instrument: 'observable-counter',
    attributes: [],
  },
  ingestRefusedRequests: {
    name: 'rollout_guardian.ingest.refused_requests',
    unit: '{request}',
    description: 'OTLP export requests refused, by reason: unsupported_media_type (415), malformed (400), unauthenticated (401), too_large (413), busy (503).',
    instrument: 'observable-counter',
    attributes: [ATTR_REASON],
  },
  ingestRefusedEvents: {
    name: 'rollout_guardian.ingest.refused_events',
    unit: '{event}',
    description: 'Request outcomes (local root spans), flag evaluations (log records) and metric data points received but not used because their event time was late (before now minus the allowed lateness) or future (beyond the allowed clock skew), by reason.',
    instrument: 'observable-counter',
    attributes: [ATTR_REASON],
  },
  ingestSpans: {
    name: 'rollout_guardian.ingest.spans',
    unit: '{span}',
    description: 'Spans received over OTLP (HTTP and gRPC) in accepted export requests.',
    instrument: 'observable-counter',
    attributes: [],
  },
  ingestLogRecords: {
    name: 'rollout_guardian.ingest.log_records',
    unit: '{record}',
    description: 'Log records received over OTLP (HTTP and gRPC) in accepted export requests.',
    instrument: 'observable-counter',
    attributes: [],
  },
  ingestUnattributable: {
    name: 'rollout_guardian.ingest.unattributable_evaluations',
    unit: '{evaluation}',
    description: 'Flag evaluations received (span events, span attributes or log records) that name no variant or no trace, so no request can be attributed to a cohort by them.',
    instrument: 'observable-counter',
    attributes: [],
  },
  ingestMetricDataPoints: {
    name: 'rollout_guardian.ingest.metric_data_points',
    unit: '{data_point}',
    description: 'OTLP metric data points received over HTTP and gRPC in metrics the metrics mapping reads.',
    instrument: 'observable-counter',
    attributes: [],
  },
  ingestUnusedMetricDataPoints: {
    name: 'rollout_guardian.ingest.unused_metric_data_points',
    unit: '{data_point}',
    description:
      'Metric data points received but not recorded in a cohort, by reason: refused (late, future, invalid, unit, kind, cohort-limit, other-source: answered as rejected data points) or passed over (baseline: the first cumulative point of a stream or one after a reset; stale; unattributed: no flag and variant, or not a request span kind; unmapped: a metric the mapping does not read; summary).',
    instrument: 'observable-counter',
    attributes: [ATTR_REASON],
  },
  guardianErrors: {
    name: 'rollout_guardian.errors',
    unit: '{error}',
    description: "Errors caught in the guardian's and the plan runner's background work (a flag's judgment, a tick, a store read); each also goes to OpenTelemetry's diag.",
    instrument: 'observable-counter',
    attributes: [ATTR_REASON],
  },
  cohortSource: {
    name: 'rollout_guardian.cohort.source',
    unit: '1',
    description: "1 for each source that has fed the cohort's window: spans, otlp-metrics (OTLP metrics in), prometheus (PromQL queries), metric-reader (an in-process MetricReader).",
    instrument: 'gauge',
    attributes: [ATTR_FEATURE_FLAG_KEY, ATTR_VARIANT, ATTR_SOURCE],
  },
  refusedAggregates: {
    name: 'rollout_guardian.cohort_registry.refused_aggregates',
    unit: '{aggregate}',
    description: 'Metric aggregates (one cohort over one interval) the cohort registry refused, by reason: invalid (bad numbers or histogram), late, future, cohort-limit, other-source (the cohort is fed by another source: spans, or another metric source; span outcomes refused so are counted here too).',
    instrument: 'observable-counter',
    attributes: [ATTR_REASON],
  },
  leaseHolder: {
    name: 'rollout_guardian.lease.holder',
    unit: '',
    description: "1 while this replica holds its store's guardian lease and acts (always, for a single guardian on a file, flagd or memory store), 0 while it stands by judging without writing (docs/fleet.md).",
    instrument: 'gauge',
    attributes: [],
  },
  outOfTimeOutcomes: {
    name: 'rollout_guardian.cohort_registry.out_of_time_outcomes',
    unit: '{outcome}',
    description: 'Outcomes refused for their event time: late (before the slot the guardian already judged) or future (dated ahead of the clock).',
    instrument: 'observable-counter',
    attributes: [ATTR_REASON],
  },
  sourceErrors: {
    name: 'rollout_guardian.source.errors',
    unit: '{error}',
    description: "Times a metric source could not deliver a guarded flag's numbers for a slot, by source and reason: query_failed, timeout, empty (no series, or none for a variant), malformed (an answer it cannot read), late (delivered after the guardian judged the slot), refused.",
    instrument: 'observable-counter',
    attributes: [ATTR_SOURCE, ATTR_REASON],
  },
  notifications: {
    name: 'rollout_guardian.notifications',
    unit: '{notification}',
    description: 'Notifications by webhook target and outcome: sent, failed (refused with a 4xx, or still undelivered at the maximum age), dropped (the queue was full); retried counts attempts that will be repeated.',
    instrument: 'observable-counter',
    attributes: [ATTR_TARGET, ATTR_OUTCOME],
  },
  notificationsQueued: {
    name: 'rollout_guardian.notifications.queued',
    unit: '{notification}',
    description: 'Notifications waiting for delivery to each webhook target (a receiver that is down shows as a growing queue).',
    instrument: 'gauge',
    attributes: [ATTR_TARGET],
  },
} as const satisfies Record<string, MetricSpec>;

export type MetricId = keyof typeof METRICS;

/**
 * The names @opentelemetry/exporter-prometheus 0.223 prints: dots become `_` and counters
 * gain `_total`. It does not add unit suffixes (opentelemetry-js#3466 was closed unbuilt),
 * so the unit is part of the instrument name (`_seconds`), values in base units. Written out rather than derived so dashboards and
 * docs can grep them; the telemetry test checks each against a real scrape.
 */
export const PROMETHEUS_NAMES = {
  evaluations: 'rollout_guardian_flag_evaluations_total',
  rolloutPercentage: 'rollout_guardian_flag_rollout_percentage',
  cohortRequests: 'rollout_guardian_cohort_requests',
  cohortErrorRate: 'rollout_guardian_cohort_error_rate',
  cohortLatencyP95: 'rollout_guardian_cohort_latency_p95_seconds',
  cohortLatencyP99: 'rollout_guardian_cohort_latency_p99_seconds',
  breach: 'rollout_guardian_flag_breach',
  verdict: 'rollout_guardian_flag_verdict',
  guardMaxErrorRate: 'rollout_guardian_guard_max_error_rate',
  guardMaxP95: 'rollout_guardian_guard_max_p95_seconds',
  guardMaxP99: 'rollout_guardian_guard_max_p99_seconds',
  planStep: 'rollout_guardian_plan_step',
  planState: 'rollout_guardian_plan_state',
  rollbacks: 'rollout_guardian_rollbacks_total',
  pendingRollbacks: 'rollout_guardian_pending_rollbacks',
  lastTickAge: 'rollout_guardian_last_tick_age_seconds',
  guardianErrors: 'rollout_guardian_errors_total',
  leaseHolder: 'rollout_guardian_lease_holder',
  outOfTimeOutcomes: 'rollout_guardian_cohort_registry_out_of_time_outcomes_total',
  cohortSource: 'rollout_guardian_cohort_source',
  refusedAggregates: 'rollout_guardian_cohort_registry_refused_aggregates_total',
  recordedOutcomes: 'rollout_guardian_span_processor_recorded_outcomes_total',
  droppedExposures: 'rollout_guardian_span_processor_dropped_exposures_total',
  droppedTraces: 'rollout_guardian_span_processor_dropped_traces_total',
  internalErrors: 'rollout_guardian_span_processor_internal_errors_total',
  droppedCohortOutcomes: 'rollout_guardian_cohort_registry_dropped_outcomes_total',
  ingestRefusedRequests: 'rollout_guardian_ingest_refused_requests_total',
  ingestRefusedEvents: 'rollout_guardian_ingest_refused_events_total',
  ingestSpans: 'rollout_guardian_ingest_spans_total',
  ingestLogRecords: 'rollout_guardian_ingest_log_records_total',
  ingestUnattributable: 'rollout_guardian_ingest_unattributable_evaluations_total',
  sourceErrors: 'rollout_guardian_source_errors_total',
  ingestMetricDataPoints: 'rollout_guardian_ingest_metric_data_points_total',
  ingestUnusedMetricDataPoints: 'rollout_guardian_ingest_unused_metric_data_points_total',
  notifications: 'rollout_guardian_notifications_total',
  notificationsQueued: 'rollout_guardian_notifications_queued',
} as const satisfies Record<MetricId, string>;

/** Values of the plan `state` label, each reported (0 or 1) for every flag with a plan. */
export const PLAN_STATES: readonly PlanStatus[] = planStatuses;

/**
 * The guardian's verdicts, which are also the values of the `verdict` label, each reported (0
 * or 1) for every guarded flag. Defined here, where the label is, and taken by the judge, so
 * telemetry's names depend on nothing in the guardian.
 */
export const VERDICTS = ['insufficient', 'watching', 'healthy', 'breaching', 'rollback'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** The instrumentation scope the guardian's meter should be obtained under. */
export const METER_NAME = 'rollout-guardian';

/** Why an OTLP export request (or part of one) was refused: the `reason` label of the refusal metrics. */
export type RefusalReason = 'unsupported_media_type' | 'malformed' | 'unauthenticated' | 'too_large' | 'busy';
export const REFUSAL_REASONS: readonly RefusalReason[] = ['unsupported_media_type', 'malformed', 'unauthenticated', 'too_large', 'busy'];
/** Why an outcome was refused for its event time. */
export type LatenessReason = 'late' | 'future';
export const LATENESS_REASONS: readonly LatenessReason[] = ['late', 'future'];

/** Why a metric source could not deliver a flag's numbers for a slot: the `reason` label of the source errors. */
export type SourceErrorReason = 'query_failed' | 'timeout' | 'empty' | 'malformed' | 'late' | 'refused';
export const SOURCE_ERROR_REASONS: readonly SourceErrorReason[] = ['query_failed', 'timeout', 'empty', 'malformed', 'late', 'refused'];
/** Sources whose errors /metrics reports from the start, each reason at 0 until it happens. */
export const SOURCES_WITH_ERRORS = ['prometheus'] as const;
/** Why a metric data point was not recorded: the `reason` label of the unused-data-points counter. */
export type UnusedMetricPointReason = 'late' | 'future' | 'invalid' | 'unit' | 'kind' | 'cohort-limit' | 'other-source' | 'baseline' | 'stale' | 'unattributed' | 'unmapped' | 'summary';
export const UNUSED_METRIC_POINT_REASONS: readonly UnusedMetricPointReason[] = ['late', 'future', 'invalid', 'unit', 'kind', 'cohort-limit', 'other-source', 'baseline', 'stale', 'unattributed', 'unmapped', 'summary'];

export type NotificationOutcome = 'sent' | 'failed' | 'dropped' | 'retried';
export const NOTIFICATION_OUTCOMES: readonly NotificationOutcome[] = ['sent', 'failed', 'dropped', 'retried'];
