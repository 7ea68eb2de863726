// The in-process metric source: an application that already records, say,
// http.server.request.duration with the flag and variant as attributes registers this reader
// on its MeterProvider, and every interval (or on collectNow) the readings go through the
// same mapping as OTLP metrics into the guardian's cohort windows, never throwing into the app.
import { diag } from '@opentelemetry/api';
import {
  AggregationTemporality,
  DataPointType,
  type ExponentialHistogram,
  type Histogram,
  MetricReader,
  type MetricData,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import type { Clock } from '../core/clock.js';
import type { AggregateSink } from '../guardian/cohort-aggregate.js';
import type { MetricsMapping } from './metrics-mapping.js';
import { type AttributeValue, attributeKey, DecodedMetrics, newMetricPoint, streamKeyOf, TEMPORALITY_DELTA } from './otlp-metric-points.js';
import { OtlpMetricsIngest, type OtlpMetricsIngestStats } from './otlp-metrics-ingest.js';

export interface GuardianMetricReaderOptions {
  /** The guardian's cohort registry (any AggregateSink). */
  readonly registry: AggregateSink;
  /** The guardian's clock: readings count at the time they are collected. */
  readonly clock: Clock;
  readonly mapping?: MetricsMapping;
  /** How often to collect (default 5 s, the guardian's usual slot); 0: only on collectNow(). */
  readonly intervalMs?: number;
}

function attributesOf(attributes: Readonly<Record<string, unknown>>, into: Map<string, AttributeValue>): void {
  for (const key of Object.keys(attributes)) {
    const value = attributes[key];
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') into.set(key, value);
    else if (value !== undefined) into.set(key, `json:${JSON.stringify(value)}`);
  }
}

export class GuardianMetricReader extends MetricReader {
  private readonly ingest: OtlpMetricsIngest;
  private readonly clock: Clock;
  private readonly intervalMs: number;
  private timer: ReturnType<typeof setInterval> | undefined;
  private collecting: Promise<void> | undefined;
  private failures = 0;

  constructor(options: GuardianMetricReaderOptions) {
    // Delta temporality for this reader alone: the SDK keeps a reader's state apart, so the
    // application's other readers (its Prometheus endpoint, its exporter) still see cumulative.
    super({ aggregationTemporalitySelector: () => AggregationTemporality.DELTA });
    if (options.intervalMs !== undefined && !(Number.isInteger(options.intervalMs) && options.intervalMs >= 0)) throw new RangeError(`GuardianMetricReader: intervalMs must be a non-negative integer, got ${String(options.intervalMs)}`);
    this.clock = options.clock;
    this.intervalMs = options.intervalMs ?? 5_000;
    this.ingest = new OtlpMetricsIngest({ sink: options.registry, clock: options.clock, mapping: options.mapping, source: 'metric-reader' });
  }

  get stats(): OtlpMetricsIngestStats & { readonly collectFailures: number } {
    return { ...this.ingest.stats, collectFailures: this.failures };
  }

  protected override onInitialized(): void {
    if (this.intervalMs === 0) return;
    this.timer = setInterval(() => void this.collectNow(), this.intervalMs);
    this.timer.unref();
  }

  /** Collects now and records what the readings say; never rejects. One collection at a time. */
  collectNow(): Promise<void> {
    this.collecting ??= this.collectOnce().finally(() => {
      this.collecting = undefined;
    });
    return this.collecting;
  }

  protected override async onForceFlush(): Promise<void> {
    await this.collectNow();
  }

  protected override async onShutdown(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.collecting;
  }

  private async collectOnce(): Promise<void> {
    try {
      const { resourceMetrics, errors } = await this.collect();
      if (errors.length > 0) this.fail(`collecting metrics: ${String(errors[0])}`);
      this.ingest.ingest(this.decode(resourceMetrics));
    } catch (err) {
      this.fail(String(err));
    }
  }

  private fail(message: string): void {
    if (this.failures++ === 0) diag.warn(`rollout-guardian metric reader: ${message} (further failures are counted, not logged)`);
  }

  /** The SDK's readings as the points OTLP would carry; the time is the guardian's clock. */
  private decode(resourceMetrics: ResourceMetrics): DecodedMetrics {
    const out = new DecodedMetrics();
    const nowMs = this.clock.now();
    const resource = new Map<string, AttributeValue>();
    attributesOf(resourceMetrics.resource.attributes, resource);
    const resourceKey = attributeKey(resource);
    for (const scope of resourceMetrics.scopeMetrics) {
      const scopeKey = `${JSON.stringify(scope.scope.name)}@${JSON.stringify(scope.scope.version ?? '')}`;
      for (const metric of scope.metrics) {
        if (!this.ingest.wanted(metric.descriptor.name)) {
          out.skippedPoints += metric.dataPoints.length;
          continue;
        }
        this.points(metric, resourceKey, scopeKey, nowMs, out);
      }
    }
    return out;
  }

  private points(metric: MetricData, resourceKey: string, scopeKey: string, nowMs: number, out: DecodedMetrics): void {
    for (const dp of metric.dataPoints) {
      const point = newMetricPoint();
      point.metric = metric.descriptor.name;
      point.unit = metric.descriptor.unit;
      point.temporality = TEMPORALITY_DELTA;
      point.timeMs = nowMs;
      attributesOf(dp.attributes, point.attributes);
      point.streamKey = streamKeyOf(resourceKey, scopeKey, point.metric, point.attributes);
      switch (metric.dataPointType) {
        case DataPointType.SUM:
          point.kind = 'sum';
          point.monotonic = metric.isMonotonic;
          point.value = dp.value as number;
          break;
        case DataPointType.GAUGE:
          point.kind = 'gauge';
          point.value = dp.value as number;
          break;
        case DataPointType.HISTOGRAM: {
          const h = dp.value as Histogram;
          point.kind = 'histogram';
          point.count = h.count;
          point.bounds = h.buckets.boundaries.slice();
          point.bucketCounts = h.buckets.counts.slice();
          break;
        }
        case DataPointType.EXPONENTIAL_HISTOGRAM: {
          const h = dp.value as ExponentialHistogram;
          point.kind = 'exponential_histogram';
          point.count = h.count;
          let negativeCount = 0;
          for (const c of h.negative.bucketCounts) negativeCount += c;
          point.exponential = { scale: h.scale, zeroCount: h.zeroCount, offset: h.positive.offset, counts: h.positive.bucketCounts.slice(), negativeCount };
          break;
        }
      }
      out.points.push(point);
    }
  }
}
