// Which OTLP metrics tell the guardian about a cohort, and how: the metrics whose counts are
// requests (an error when the point's attributes say so), the histograms that are latency,
// the attributes that name the flag and the variant. The defaults read what the Collector's
// spanmetrics connector and the HTTP semantic conventions produce; a file may say otherwise.
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { describeIssue, toSchemaIssues } from '../core/parse-flags.js';

export type LatencyUnit = 's' | 'ms' | 'us';

/** One metric the mapping reads; `unit` overrides the unit the metric declares. */
export interface MetricRule {
  readonly metric: string;
  readonly unit?: LatencyUnit;
}

export interface MetricsMapping {
  /** Sums (monotonic counters) and histograms whose count is requests; an error point counts as an error too. */
  readonly requests: readonly MetricRule[];
  /** Histograms (explicit or exponential) whose buckets are request latency. */
  readonly latency: readonly MetricRule[];
  /** Point attributes naming the flag, first present wins. */
  readonly flagKeyAttributes: readonly string[];
  /** Point attributes naming the variant, first present wins. */
  readonly variantAttributes: readonly string[];
  /** A point whose status attribute is at least `httpErrorStatus` counts as errors. */
  readonly httpStatusAttributes: readonly string[];
  readonly httpErrorStatus: number;
  /** A point carrying any of these attributes (non-empty) counts as errors. */
  readonly errorTypeAttributes: readonly string[];
  /** A point whose span-status attribute has one of these values counts as errors. */
  readonly statusCodeAttributes: readonly string[];
  readonly errorStatusCodes: readonly string[];
  /** When a point says its span kind, only these kinds are requests (spanmetrics counts every span). */
  readonly spanKindAttributes: readonly string[];
  readonly requestSpanKinds: readonly string[];
}

/**
 * The defaults: spanmetrics under its current namespace (`traces.span.metrics.calls`/`.duration`)
 * and without one (`calls`/`duration`), and OTel HTTP servers' `http.server.request.duration`
 * (seconds), whose count is requests and whose buckets are latency.
 */
export const DEFAULT_METRICS_MAPPING: MetricsMapping = {
  requests: [{ metric: 'traces.span.metrics.calls' }, { metric: 'calls' }, { metric: 'http.server.request.duration' }],
  latency: [{ metric: 'traces.span.metrics.duration' }, { metric: 'duration' }, { metric: 'http.server.request.duration' }],
  flagKeyAttributes: ['feature_flag.key'],
  variantAttributes: ['feature_flag.result.variant', 'feature_flag.variant'],
  httpStatusAttributes: ['http.response.status_code', 'http.status_code'],
  httpErrorStatus: 500,
  errorTypeAttributes: ['error.type'],
  statusCodeAttributes: ['status.code'],
  errorStatusCodes: ['STATUS_CODE_ERROR', 'Error', 'ERROR'],
  spanKindAttributes: ['span.kind'],
  requestSpanKinds: ['SPAN_KIND_SERVER', 'SPAN_KIND_CONSUMER', 'Server', 'Consumer'],
};

const names = z.array(z.string().min(1)).min(1);
const rule = z.strictObject({ metric: z.string().min(1), unit: z.enum(['s', 'ms', 'us']).optional() });

/** What a mapping file may say; every field is optional and replaces its default whole. */
export const metricsMappingSchema = z.strictObject({
  requests: z.array(rule).optional(),
  latency: z.array(rule).optional(),
  flagKeyAttributes: names.optional(),
  variantAttributes: names.optional(),
  httpStatusAttributes: z.array(z.string().min(1)).optional(),
  httpErrorStatus: z.number().int().min(100).max(599).optional(),
  errorTypeAttributes: z.array(z.string().min(1)).optional(),
  statusCodeAttributes: z.array(z.string().min(1)).optional(),
  errorStatusCodes: z.array(z.string().min(1)).optional(),
  spanKindAttributes: z.array(z.string().min(1)).optional(),
  requestSpanKinds: z.array(z.string().min(1)).optional(),
});

export type MetricsMappingInput = z.input<typeof metricsMappingSchema>;

/** A mapping file that cannot be used: names the file and the bad field. */
export class MetricsMappingError extends Error {
  override readonly name = 'MetricsMappingError';
}

/** The mapping a library user gives, over the defaults; throws MetricsMappingError naming the bad field. */
export function resolveMetricsMapping(input: unknown = {}, source = 'metrics mapping'): MetricsMapping {
  const parsed = metricsMappingSchema.safeParse(input ?? {});
  if (!parsed.success) throw new MetricsMappingError(`${source}: ${toSchemaIssues(parsed.error, input).map(describeIssue).join('; ')}`);
  const given = parsed.data;
  const mapping: MetricsMapping = { ...DEFAULT_METRICS_MAPPING };
  for (const key of Object.keys(given) as (keyof MetricsMapping)[]) {
    const value = given[key];
    if (value !== undefined) (mapping as unknown as Record<string, unknown>)[key] = value;
  }
  return mapping;
}

/** A mapping file's text (YAML or JSON), validated; `source` is the file name errors quote. */
export function parseMetricsMapping(text: string, source: string): MetricsMapping {
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    throw new MetricsMappingError(`${source}: not YAML or JSON: ${(err as Error).message}`);
  }
  if (data !== null && data !== undefined && (typeof data !== 'object' || Array.isArray(data))) throw new MetricsMappingError(`${source}: expected a mapping of settings (requests, latency, flagKeyAttributes, ...), got ${Array.isArray(data) ? 'a list' : typeof data}`);
  return resolveMetricsMapping(data ?? {}, source);
}

/** Multiplier from a latency unit (UCUM as OTel writes it) to milliseconds; undefined when not a time unit. */
export function unitToMs(unit: string): number | undefined {
  switch (unit) {
    case 's':
    case 'seconds':
      return 1000;
    case 'ms':
    case 'milliseconds':
      return 1;
    case 'us':
    case 'microseconds':
      return 0.001;
    default:
      return undefined;
  }
}
