// The public surface of rollout-guardian, each export named: what an application, an SRE's
// script or a service embedding the guardian needs. Internals (compiled flags, the hash, the
// windows, the judge) stay behind their module paths. api/rollout-guardian.api.txt records
// this list; after changing it on purpose, run `npm run api`.

// The OpenFeature provider.
export { RolloutProvider } from './provider/rollout-provider.js';
export type { RolloutProviderOptions } from './provider/rollout-provider.js';

// Stores: the interface, its backends, and opening one from a location.
export { FileFlagStore, FLAGS_ENV_VAR, DEFAULT_FLAGS_FILE } from './stores/file-store.js';
export type { FileFlagStoreOptions } from './stores/file-store.js';
export { MemoryFlagStore } from './stores/memory-store.js';
export type { MemoryFlagStoreOptions } from './stores/memory-store.js';
export { RedisFlagStore, DEFAULT_KEY_PREFIX } from './stores/redis-store.js';
export type { RedisFlagStoreOptions } from './stores/redis-store.js';
export { FlagdFileStore, FLAGD_LOCATION_PREFIX } from './stores/flagd-store.js';
export type { FlagdFileStoreOptions } from './stores/flagd-store.js';
export { openStore, REDIS_PASSWORD_ENV_VAR } from './stores/open-store.js';
export type { OpenStoreOptions, OpenedStore } from './stores/open-store.js';
export { StoreWriter, UnknownFlagError } from './stores/store-writer.js';
export { RevisionConflictError, InvalidWriteError, FlagSourceError } from './stores/flag-store.js';
export { LockTimeoutError } from './stores/file-lock.js';
export { WriteNotAppliedError, WriteIncompleteError } from './stores/write-journal.js';
export { FLAG_TEXT_LIMITS } from './stores/flag-file-format.js';
export { StoreLocationError } from './stores/store-location-error.js';
export type {
  Attribution,
  FlagStore,
  StoreSnapshot,
  StoreEvent,
  StoreListener,
  WriteRequest,
  WriteResult,
  FlagChange,
  DefinitionEdit,
  AuditEntry,
  AuditQuery,
  FlagAuditView,
} from './stores/flag-store.js';

// flagd's flag-definition JSON, both ways.
export { toFlagdDocument, fromFlagdDocument, FLAGD_SCHEMA_URL } from './flagd/flagd-convert.js';
export type { FlagdDocument, FlagdFlag, FlagdExport, FlagdExportOptions, FlagdImport, ConversionIssue } from './flagd/flagd-convert.js';

// The flag model: the file's schema and types, bucketing, reasons, emergency flags, time.
export { flagFileSchema } from './core/flag-schema.js';
export type {
  FlagDefinition,
  FlagDefinitionInput,
  FlagRuntimeState,
  FlagFile,
  GuardPolicyInput,
  PrometheusGuard,
  FlagValueType,
  PlanState,
} from './core/flag-schema.js';
export { flagFileJsonSchema } from './core/json-schema.js';
export type { EvaluationContext, FlagValue, FlagMetadata } from './core/compile-flag.js';
export { BUCKET_TOTAL, bucketFor } from './core/bucketing.js';
export { EMERGENCY_SHUTDOWN, READ_ONLY_MODE, MAINTENANCE_MODE } from './core/emergency.js';
export { Reason, ErrorCode } from './core/reasons.js';
export type { Clock } from './core/clock.js';
export { systemClock } from './runtime/system-clock.js';

// The guardian.
export { RolloutGuardian } from './guardian/rollout-guardian.js';
export type {
  RolloutGuardianOptions,
  RolloutWriter,
  FlagSource,
  HealthCheck,
  GuardedFlagStatus,
  RollbackRecord,
  GuardianListener,
  HealthCheckResult,
  GuardianTick,
} from './guardian/rollout-guardian.js';
export { GuardianSpanProcessor } from './guardian/guardian-span-processor.js';
export type { GuardianSpanProcessorOptions, GuardianSpanProcessorStats } from './guardian/guardian-span-processor.js';
export { CohortRegistry } from './guardian/cohort-registry.js';
export type { CohortRegistryOptions, Cohort, KnownFlags } from './guardian/cohort-registry.js';
export type { AggregateRefusal, AggregateSink, CohortAggregate, LatencyHistogram, OutcomeSource } from './guardian/cohort-aggregate.js';
export type { Judgment, CheckResult, CheckName, CheckState, Verdict, CohortSummary, WarningJudgment } from './guardian/judge.js';
export { DEFAULT_GUARD_POLICY, DEFAULT_WARN_POLICY } from './guardian/guard-policy.js';
export type { GuardPolicy, RelativePolicy, WarnPolicy } from './guardian/guard-policy.js';

// Deployment plans.
export { PlanRunner } from './deploy/plan-runner.js';
export type { PlanRunnerOptions, PlanEvent, PlanHoldEvent, JudgmentSource } from './deploy/plan-runner.js';
export { PlanWriter } from './deploy/plan-writer.js';
export { PlanError, STRATEGIES, planSteps } from './deploy/plan.js';
export type { Strategy, PlanStep, CustomPlan, PlanAction } from './deploy/plan.js';
export { rolloutStatus } from './deploy/rollout-status.js';
export type { FlagStatusView, PlanView, GuardianView, CohortView, StatusSources } from './deploy/rollout-status.js';

// Notifications: webhooks on warnings, rollbacks, health checks and plan steps.
export { Notifier } from './notify/notifier.js';
export type { NotifierOptions, NotificationCounts, GuardianEvents, PlanEvents } from './notify/notifier.js';
export { parseNotifyConfig, resolveSecrets, NotifyConfigError } from './notify/notify-config.js';
export type { NotifyConfig, WebhookTargetConfig } from './notify/notify-config.js';
export { NOTIFICATION_TYPES, SIGNATURE_HEADER, TIMESTAMP_HEADER, EVENT_HEADER, EVENT_ID_HEADER } from './notify/notification.js';
export type { NotificationEvent, NotificationType } from './notify/notification.js';

// serve, embedded.
export { RolloutServer, ListenError } from './server/rollout-server.js';
export type { RolloutServerOptions } from './server/rollout-server.js';
export { BearerAuth } from './server/bearer-auth.js';
export type { AuthCheck, AuthResult, Role, TokenGrant } from './server/bearer-auth.js';

// OTLP ingest: recorded or live OpenTelemetry data into the guardian's cohorts.
export { OtlpIngest } from './ingest/otlp-ingest.js';
export type { OtlpIngestOptions, OtlpIngestStats, OutcomeSink, RequestKind } from './ingest/otlp-ingest.js';
export { EventTimeGate } from './ingest/event-time-gate.js';
export type { EventTimeGateOptions } from './ingest/event-time-gate.js';
export { replayOtlp, ReplayClock, ReplayError } from './ingest/otlp-replay.js';
export type { ReplayLine, ReplayOptions, ReplayResult } from './ingest/otlp-replay.js';
// Metric sources: OTLP metrics (spanmetrics, http.server.request.duration) and an in-process MetricReader.
export { GuardianMetricReader } from './ingest/guardian-metric-reader.js';
export type { GuardianMetricReaderOptions } from './ingest/guardian-metric-reader.js';
export { OtlpMetricsIngest } from './ingest/otlp-metrics-ingest.js';
export type { MetricPointRefusal, OtlpMetricsIngestOptions, OtlpMetricsIngestStats } from './ingest/otlp-metrics-ingest.js';
export { DEFAULT_METRICS_MAPPING, MetricsMappingError, parseMetricsMapping, resolveMetricsMapping } from './ingest/metrics-mapping.js';
export type { LatencyUnit, MetricRule, MetricsMapping, MetricsMappingInput } from './ingest/metrics-mapping.js';

// Prometheus as a source: PromQL per guarded flag, queried each slot.
export { PrometheusSource } from './ingest/prometheus-source.js';
export type { PrometheusSourceOptions, PrometheusSourceStats } from './ingest/prometheus-source.js';
export { SourceProblems } from './guardian/source-problems.js';
export type { SourceProblem, SourceProblemView } from './guardian/source-problems.js';

// Telemetry: instruments, the Prometheus endpoint, and every name they use.
export { GuardianTelemetry } from './telemetry/guardian-telemetry.js';
export type { GuardianTelemetryOptions } from './telemetry/guardian-telemetry.js';
export { startPrometheusEndpoint, metricsHandler } from './telemetry/prometheus-endpoint.js';
export type { PrometheusEndpoint, PrometheusEndpointOptions, MetricsRequestHandler } from './telemetry/prometheus-endpoint.js';
export {
  METRICS,
  PROMETHEUS_NAMES,
  PROMETHEUS_LABELS,
  VERDICTS,
  METER_NAME,
  ATTR_FEATURE_FLAG_KEY,
  ATTR_VARIANT,
  ATTR_REASON,
  ATTR_VERDICT,
  ATTR_CHECK,
  ATTR_METRIC_OVERFLOW,
  PROVIDER_NAME,
} from './telemetry/names.js';
export type { MetricSpec, MetricId, AttributeName } from './telemetry/names.js';
