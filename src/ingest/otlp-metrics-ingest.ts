// From decoded metric points to cohort aggregates: picks the points the mapping reads, names
// their cohort (flag x variant) from their attributes, turns cumulative points into deltas per
// stream, gates them in event time like spans, and hands each one's requests, errors and
// latency buckets (in ms) to the cohort registry. Every point not used is counted by reason.
import { diag } from '@opentelemetry/api';
import type { Clock } from '../core/clock.js';
import type { AggregateRefusal, AggregateSink, CohortAggregate, LatencyHistogram, OutcomeSource } from '../guardian/cohort-aggregate.js';
import { MAX_HISTOGRAM_BOUNDS } from '../guardian/latency-distribution.js';
import { CumulativeToDelta, type CumulativeToDeltaStats } from './cumulative-to-delta.js';
import { EventTimeGate } from './event-time-gate.js';
import { type MetricsMapping, type MetricRule, DEFAULT_METRICS_MAPPING, unitToMs } from './metrics-mapping.js';
import type { AttributeValue, DecodedMetrics, MetricPoint } from './otlp-metric-points.js';
import type { IngestResult } from './otlp-ingest.js';
import type { UnusedMetricPointReason } from '../telemetry/names.js';

/** Why a data point was refused (answered as rejected data points); a subset of the telemetry's unused reasons. */
export type MetricPointRefusal = Extract<UnusedMetricPointReason, 'late' | 'future' | 'invalid' | 'unit' | 'kind' | 'cohort-limit' | 'other-source'>;
export const METRIC_POINT_REFUSALS: readonly MetricPointRefusal[] = ['late', 'future', 'invalid', 'unit', 'kind', 'cohort-limit', 'other-source'];

export interface OtlpMetricsIngestOptions {
  readonly sink: AggregateSink;
  readonly clock: Clock;
  /** Shares the trace ingest's event-time limits (and its late/future counts); one of its own otherwise. */
  readonly gate?: EventTimeGate;
  readonly mapping?: MetricsMapping;
  /** What the status and audit call these numbers (default otlp-metrics). */
  readonly source?: OutcomeSource;
  /** Cumulative streams remembered at once (default 100,000) and how long an idle one is kept (default 10 min). */
  readonly maxStreams?: number;
  readonly streamIdleMs?: number;
}

export interface OtlpMetricsIngestStats {
  /** Data points received in wanted metrics. */
  readonly dataPoints: number;
  /** Points used: recorded in a cohort (an interval in which nothing happened records nothing). */
  readonly recordedPoints: number;
  /** Points of metrics the mapping does not read, and summary points (never usable). */
  readonly skippedPoints: number;
  readonly summaryPoints: number;
  /** Points without a flag and variant attribute, or of a span kind that is not a request. */
  readonly unattributedPoints: number;
  /** Cumulative points that only set a stream's base (first seen, or after a reset). */
  readonly baselinePoints: number;
  readonly stalePoints: number;
  readonly refusedPoints: Readonly<Record<MetricPointRefusal, number>>;
  readonly streams: CumulativeToDeltaStats;
}

interface Roles {
  readonly requests: MetricRule | undefined;
  readonly latency: MetricRule | undefined;
}

function first(attributes: ReadonlyMap<string, AttributeValue>, keys: readonly string[]): AttributeValue | undefined {
  for (const key of keys) {
    const value = attributes.get(key);
    if (value !== undefined && value !== '') return value;
  }
  return undefined;
}

export class OtlpMetricsIngest {
  readonly gate: EventTimeGate;
  readonly mapping: MetricsMapping;
  private readonly sink: AggregateSink;
  private readonly clock: Clock;
  private readonly source: OutcomeSource;
  private readonly roles = new Map<string, Roles>();
  private readonly deltas: CumulativeToDelta;
  /** Cumulative streams remembered at most. */
  readonly maxStreams: number;
  private readonly errorStatusCodes: ReadonlySet<string>;
  private readonly requestSpanKinds: ReadonlySet<string>;
  private counts = { dataPoints: 0, recordedPoints: 0, skippedPoints: 0, summaryPoints: 0, unattributedPoints: 0, baselinePoints: 0, stalePoints: 0 };
  private readonly refused: Record<MetricPointRefusal, number> = { late: 0, future: 0, invalid: 0, unit: 0, kind: 0, 'cohort-limit': 0, 'other-source': 0 };
  private readonly warned = new Set<string>();
  /** Whether the mapping reads a metric of this name; decoders skip the others unread. */
  readonly wanted = (metric: string): boolean => this.roles.has(metric);

  constructor(options: OtlpMetricsIngestOptions) {
    this.sink = options.sink;
    this.clock = options.clock;
    this.gate = options.gate ?? new EventTimeGate({ clock: options.clock });
    this.mapping = options.mapping ?? DEFAULT_METRICS_MAPPING;
    this.source = options.source ?? 'otlp-metrics';
    for (const rule of this.mapping.requests) this.roles.set(rule.metric, { requests: rule, latency: this.roles.get(rule.metric)?.latency });
    for (const rule of this.mapping.latency) this.roles.set(rule.metric, { requests: this.roles.get(rule.metric)?.requests, latency: rule });
    this.errorStatusCodes = new Set(this.mapping.errorStatusCodes);
    this.requestSpanKinds = new Set(this.mapping.requestSpanKinds);
    this.maxStreams = options.maxStreams ?? 100_000;
    this.deltas = new CumulativeToDelta({ startedAtMs: options.clock.now(), maxStreams: this.maxStreams, streamIdleMs: options.streamIdleMs });
  }

  get stats(): OtlpMetricsIngestStats {
    return { ...this.counts, refusedPoints: { ...this.refused }, streams: this.deltas.stats };
  }

  /** Records the usable points of a decoded export request; says how many were refused and why. */
  ingest(decoded: DecodedMetrics): IngestResult {
    const nowMs = this.clock.now();
    this.counts.skippedPoints += decoded.skippedPoints;
    this.counts.summaryPoints += decoded.summaryPoints;
    const refusedBefore = { ...this.refused };
    const evictedBefore = this.deltas.stats.evictedStreams;
    for (const point of decoded.points) this.point(point, nowMs);
    if (this.deltas.stats.evictedStreams > evictedBefore) {
      this.warnOnce('streams', `rollout-guardian ingest: more than ${this.maxStreams} cumulative metric streams at once; the least recently updated are forgotten and their next point only sets a baseline, so requests go uncounted (raise serve --max-metric-streams, or have the senders export delta temporality)`);
    }
    let rejected = 0;
    const parts: string[] = [];
    for (const reason of METRIC_POINT_REFUSALS) {
      const n = this.refused[reason] - refusedBefore[reason];
      if (n === 0) continue;
      rejected += n;
      parts.push(`${n} ${DESCRIPTIONS[reason](this.gate)}`);
    }
    if (rejected > 0) this.warnOnce('refused', `rollout-guardian ingest: metric data points not recorded: ${parts.join('; ')} (counted in /metrics; further ones are not logged)`);
    return { rejected, message: parts.length === 0 ? '' : `data points not recorded: ${parts.join('; ')}` };
  }

  private point(point: MetricPoint, nowMs: number): void {
    const roles = this.roles.get(point.metric);
    if (roles === undefined) {
      this.counts.skippedPoints++;
      return;
    }
    this.counts.dataPoints++;
    const m = this.mapping;
    const flagKey = first(point.attributes, m.flagKeyAttributes);
    const variant = first(point.attributes, m.variantAttributes);
    if (typeof flagKey !== 'string' || variant === undefined || typeof variant === 'object') {
      this.counts.unattributedPoints++;
      return;
    }
    const spanKind = first(point.attributes, m.spanKindAttributes);
    if (spanKind !== undefined && !this.requestSpanKinds.has(String(spanKind))) {
      this.counts.unattributedPoints++;
      return;
    }
    const isHistogram = point.kind === 'histogram' || point.kind === 'exponential_histogram';
    const requestRule = roles.requests !== undefined && (isHistogram || (point.kind === 'sum' && point.monotonic)) ? roles.requests : undefined;
    const latencyRule = roles.latency !== undefined && isHistogram ? roles.latency : undefined;
    if (requestRule === undefined && latencyRule === undefined) {
      this.refuse('kind', `metric ${point.metric} is a ${point.kind}${point.kind === 'sum' ? ' (not monotonic)' : ''}; requests come from monotonic sums or histograms, latency from histograms`);
      return;
    }
    let factor = 1;
    if (latencyRule !== undefined) {
      const unit = latencyRule.unit ?? point.unit;
      const f = unitToMs(unit);
      if (f === undefined) {
        this.refuse('unit', `metric ${point.metric} has unit "${unit}"; give its unit (s, ms or us) in the metrics mapping`);
        return;
      }
      factor = f;
    }
    if (!wellFormed(point)) {
      this.refuse('invalid', `a ${point.metric} point's buckets do not add up (bounds must increase and bucket_counts have one more entry than explicit_bounds)`);
      return;
    }
    const verdict = this.deltas.toDelta(point, nowMs);
    if (verdict === 'baseline') {
      this.counts.baselinePoints++;
      return;
    }
    if (verdict === 'stale') {
      this.counts.stalePoints++;
      return;
    }
    if (verdict === 'ended') return;
    if (verdict === 'invalid') {
      this.refuse('invalid', `metric ${point.metric} has no aggregation temporality (neither delta nor cumulative)`);
      return;
    }
    const admitted = this.gate.admit(point.timeMs);
    if (admitted !== 'on-time') {
      this.refused[admitted]++;
      return;
    }
    const requests = requestRule === undefined ? 0 : isHistogram ? point.count : point.value;
    const latency = latencyRule === undefined ? undefined : latencyHistogram(point, factor);
    if (requests === 0 && (latency === undefined || point.count === 0)) {
      // Nothing happened in this stream over the interval: nothing to record.
      this.counts.recordedPoints++;
      return;
    }
    const aggregate: CohortAggregate = {
      flagKey,
      variant: String(variant),
      // The interval (start, time] ends at `time`: one ms earlier lands it in the slot it was counted in.
      atMs: Math.ceil(point.timeMs) - 1,
      requests,
      errors: requests > 0 && this.isError(point.attributes) ? requests : 0,
      latency,
      source: this.source,
    };
    const refusal: AggregateRefusal | undefined = this.sink.recordAggregate(aggregate);
    if (refusal === undefined) this.counts.recordedPoints++;
    else this.refused[refusal]++;
  }

  private isError(attributes: ReadonlyMap<string, AttributeValue>): boolean {
    const m = this.mapping;
    const status = first(attributes, m.httpStatusAttributes);
    if (status !== undefined && Number(status) >= m.httpErrorStatus) return true;
    if (first(attributes, m.errorTypeAttributes) !== undefined) return true;
    const code = first(attributes, m.statusCodeAttributes);
    return code !== undefined && this.errorStatusCodes.has(String(code));
  }

  private refuse(reason: MetricPointRefusal, detail: string): void {
    this.refused[reason]++;
    this.warnOnce(`refused:${reason}`, `rollout-guardian ingest: ${detail} (further such points are counted as ${reason} in /metrics, not logged)`);
  }

  private warnOnce(kind: string, message: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    diag.warn(message);
  }
}

const DESCRIPTIONS: Record<MetricPointRefusal, (gate: EventTimeGate) => string> = {
  late: (gate) => `late (before now - ${gate.allowedLatenessMs} ms)`,
  future: (gate) => `future-dated (beyond +${gate.maxFutureSkewMs} ms)`,
  invalid: () => 'malformed (buckets that do not add up, or no temporality)',
  unit: () => 'with a latency unit that is not s, ms or us (set it in the metrics mapping)',
  kind: () => 'of a kind the mapping cannot use (a gauge, or a sum that is not monotonic)',
  'cohort-limit': () => 'for cohorts beyond the cohort limit',
  'other-source': () => 'for cohorts another source already feeds (spans, or another metric source: one source per cohort, so nothing is counted twice)',
};

function wellFormed(point: MetricPoint): boolean {
  if (point.kind === 'histogram') {
    const bounds = point.bounds;
    if (point.bucketCounts.length === 0) return bounds.length === 0;
    if (point.bucketCounts.length !== bounds.length + 1) return false;
    for (let i = 1; i < bounds.length; i++) if (!((bounds[i] as number) > (bounds[i - 1] as number))) return false;
    for (const c of point.bucketCounts) if (!(c >= 0)) return false;
    return true;
  }
  if (point.kind === 'exponential_histogram') {
    const e = point.exponential;
    return e !== undefined && e.scale >= -10 && e.scale <= 20 && e.counts.length < MAX_HISTOGRAM_BOUNDS;
  }
  return Number.isFinite(point.value);
}

/**
 * A delta histogram point's buckets in milliseconds. An exponential histogram becomes explicit
 * bounds: with base = 2^(2^-scale), positive bucket i (index offset + i) holds (base^index,
 * base^(index + 1)]; zero and negative counts go below the first bound.
 */
export function latencyHistogram(point: MetricPoint, factor: number): LatencyHistogram | undefined {
  if (point.kind === 'histogram') {
    if (point.bucketCounts.length === 0) return undefined;
    return { boundsMs: point.bounds.map((b) => b * factor), counts: point.bucketCounts.slice() };
  }
  const e = point.exponential;
  if (e === undefined) return undefined;
  const below = e.zeroCount + e.negativeCount;
  if (e.counts.length === 0) return { boundsMs: [], counts: [below] };
  const step = 2 ** -e.scale;
  const boundsMs: number[] = [];
  for (let i = 0; i <= e.counts.length; i++) boundsMs.push(2 ** ((e.offset + i) * step) * factor);
  return { boundsMs, counts: [below, ...e.counts, 0] };
}
