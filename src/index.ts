// The public surface of rollout-guardian, each export named.
export { RolloutProvider } from './provider/rollout-provider.js';
export type { RolloutProviderOptions } from './provider/rollout-provider.js';

export { FileFlagStore, resolveFlagsPath, FLAGS_ENV_VAR, DEFAULT_FLAGS_FILE } from './stores/file-store.js';
export type { FileFlagStoreOptions } from './stores/file-store.js';
export { MemoryFlagStore } from './stores/memory-store.js';
export type { MemoryFlagStoreOptions } from './stores/memory-store.js';
export { RedisFlagStore, DEFAULT_KEY_PREFIX, redisKeys } from './stores/redis-store.js';
export type { RedisFlagStoreOptions, RedisKeys } from './stores/redis-store.js';
export { openStore, storedDefinitions, REDIS_PASSWORD_ENV_VAR } from './stores/open-store.js';
export type { OpenStoreOptions, OpenedStore } from './stores/open-store.js';
export { StoreLocationError } from './stores/store-location-error.js';
export { FlagdFileStore, FLAGD_LOCATION_PREFIX } from './stores/flagd-store.js';
export type { FlagdFileStoreOptions } from './stores/flagd-store.js';
export { FlagdEvaluator, validateFlagdText } from './stores/flagd-evaluator.js';
export type { FlagdSchemaIssue } from './stores/flagd-evaluator.js';
export { toFlagdDocument, fromFlagdDocument, FLAGD_SCHEMA_URL, FLAGD_METADATA, describeConversionIssue } from './core/flagd-convert.js';
export type { FlagdDocument, FlagdFlag, FlagdExport, FlagdExportOptions, FlagdImport, ConversionIssue } from './core/flagd-convert.js';
export type { ExternalEvaluator, ExternalFlag } from './core/compile-flag.js';
export { StoreWriter, UnknownFlagError } from './stores/store-writer.js';
export { RevisionConflictError, InvalidWriteError, FlagSourceError } from './stores/flag-store.js';
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
export { systemClock } from './stores/system-clock.js';

export { evaluate } from './core/evaluate.js';
export { compileFlag } from './core/compile-flag.js';
export type { CompiledFlag, EvaluationContext, EvaluationResult, FlagEntry, FlagValue, FlagMetadata } from './core/compile-flag.js';
export { buildFlagSet, changedFlags } from './core/flag-set.js';
export type { FlagSet } from './core/flag-set.js';
export { parseFlagDocument, describeIssue } from './core/parse-flags.js';
export type { ParsedFlags, SchemaIssue } from './core/parse-flags.js';
export { flagFileSchema, flagDefinitionSchema } from './core/flag-schema.js';
export type { FlagDefinition, FlagDefinitionInput, FlagRuntimeState, FlagFile, GuardPolicyInput, FlagValueType } from './core/flag-schema.js';
export { flagFileJsonSchema } from './core/json-schema.js';
export { BUCKET_TOTAL, bucketFor, percentageToWeight } from './core/bucketing.js';
export { murmur3Utf8 } from './core/murmur3.js';
export { EMERGENCY_SHUTDOWN, READ_ONLY_MODE, MAINTENANCE_MODE } from './core/emergency.js';
export { Reason, ErrorCode } from './core/reasons.js';
export { parseDurationMs, formatDurationMs } from './core/duration.js';
export type { Clock } from './core/clock.js';

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

export { RolloutGuardian } from './guardian/rollout-guardian.js';
export type { RolloutGuardianOptions, RolloutWriter, FlagSource, HealthCheck, GuardedFlagStatus, RollbackRecord, GuardianListener } from './guardian/rollout-guardian.js';
export { GuardianSpanProcessor } from './guardian/guardian-span-processor.js';
export type { GuardianSpanProcessorOptions, GuardianSpanProcessorStats } from './guardian/guardian-span-processor.js';
export { CohortRegistry } from './guardian/cohort-registry.js';
export type { CohortRegistryOptions, Cohort } from './guardian/cohort-registry.js';
export { CohortWindow } from './guardian/cohort-window.js';
export type { CohortWindowOptions, SlotStats, WindowStats } from './guardian/cohort-window.js';
export { QuantileSketch } from './guardian/quantile-sketch.js';
export type { QuantileSketchOptions } from './guardian/quantile-sketch.js';
export { judge } from './guardian/judge.js';
export type { Judgment, JudgeInput, CheckResult, CheckName, CheckState, Verdict, CohortSummary } from './guardian/judge.js';
export { DEFAULT_GUARD_POLICY, resolveGuardPolicy } from './guardian/guard-policy.js';
export type { GuardPolicy, RelativePolicy } from './guardian/guard-policy.js';
export { markActiveSpan } from './provider/span-attribution.js';
