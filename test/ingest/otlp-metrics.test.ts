// OTLP metrics into cohort aggregates, below the routes: the protobuf and JSON decoders read
// what the official serializers write, cumulative streams become deltas with restarts and
// resets detected, exponential buckets become explicit bounds, and the mapping's defaults
// read spanmetrics and http.server.request.duration as they are produced.
import { ProtobufMetricsSerializer, JsonMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { AggregationType, MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { describe, expect, it } from 'vitest';
import type { AggregateSink, CohortAggregate } from '../../src/guardian/cohort-aggregate.js';
import { DEFAULT_METRICS_MAPPING, MetricsMappingError, parseMetricsMapping, resolveMetricsMapping } from '../../src/ingest/metrics-mapping.js';
import { DecodedMetrics } from '../../src/ingest/otlp-metric-points.js';
import { OtlpMetricsIngest, latencyHistogram } from '../../src/ingest/otlp-metrics-ingest.js';
import { OtlpMetricsJsonDecoder } from '../../src/ingest/otlp-metrics-json-decoder.js';
import { OtlpMetricsProtoDecoder } from '../../src/ingest/otlp-metrics-proto-decoder.js';
import { OtlpPayloadError } from '../../src/ingest/otlp-records.js';
import { FakeClock } from '../helpers/fake-clock.js';

class RecordingSink implements AggregateSink {
  readonly aggregates: CohortAggregate[] = [];
  recordAggregate(aggregate: CohortAggregate): undefined {
    this.aggregates.push(aggregate);
    return undefined;
  }
}

/** A reader the test collects by hand, cumulative like the SDK's default exporters. */
class HandReader extends MetricReader {
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

const FLAG = { 'feature_flag.key': 'checkout', 'feature_flag.result.variant': 'on' };
const all = () => true;

async function sdkReadings(): Promise<ResourceMetrics> {
  const reader = new HandReader();
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'shop' }),
    readers: [reader],
    views: [{ instrumentName: 'exp.duration', aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM, options: { maxSize: 160 } } }],
  });
  const meter = provider.getMeter('app', '1.0.0');
  const duration = meter.createHistogram('http.server.request.duration', { unit: 's', advice: { explicitBucketBoundaries: [0.1, 0.5, 1] } });
  duration.record(0.05, { ...FLAG, 'http.response.status_code': 200 });
  duration.record(0.7, { ...FLAG, 'http.response.status_code': 200 });
  duration.record(2, { ...FLAG, 'http.response.status_code': 503 });
  meter.createCounter('calls').add(5, { ...FLAG, 'status.code': 'STATUS_CODE_ERROR', 'span.kind': 'SPAN_KIND_SERVER' });
  meter.createUpDownCounter('inflight').add(-2, FLAG);
  meter.createGauge('queue').record(7.5, FLAG);
  const exp = meter.createHistogram('exp.duration', { unit: 'ms' });
  for (const v of [1, 3, 10, 100]) exp.record(v, FLAG);
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  return resourceMetrics;
}

function decodeBoth(rm: ResourceMetrics): { proto: DecodedMetrics; json: DecodedMetrics } {
  const proto = new DecodedMetrics();
  new OtlpMetricsProtoDecoder().decode(Buffer.from(ProtobufMetricsSerializer.serializeRequest(rm) as Uint8Array), all, proto);
  const json = new DecodedMetrics();
  new OtlpMetricsJsonDecoder().decode(Buffer.from(JsonMetricsSerializer.serializeRequest(rm) as Uint8Array).toString('utf8'), all, json);
  return { proto, json };
}

/** A JSON request of points for one metric; `data` is the metric's gauge/sum/histogram body. */
function request(metric: Record<string, unknown>, resource: Record<string, string> = { 'service.name': 'shop' }): string {
  return JSON.stringify({
    resourceMetrics: [{ resource: { attributes: Object.entries(resource).map(([key, v]) => ({ key, value: { stringValue: v } })) }, scopeMetrics: [{ scope: { name: 'collector' }, metrics: [metric] }] }],
  });
}

function attrs(values: Record<string, string | number>): unknown[] {
  return Object.entries(values).map(([key, v]) => ({ key, value: typeof v === 'number' ? { intValue: String(v) } : { stringValue: v } }));
}

const NS = 1_000_000n;
const ns = (ms: number) => String(BigInt(ms) * NS);

function harness(options: { maxStreams?: number } = {}) {
  const clock = new FakeClock(Date.parse('2026-11-30T12:00:00Z'));
  const sink = new RecordingSink();
  const ingest = new OtlpMetricsIngest({ sink, clock, ...options });
  const decoder = new OtlpMetricsJsonDecoder();
  const send = (body: string) => {
    const decoded = new DecodedMetrics();
    decoder.decode(body, ingest.wanted, decoded);
    return ingest.ingest(decoded);
  };
  return { clock, sink, ingest, send };
}

/** spanmetrics' calls counter as the Collector sends it: cumulative, monotonic. */
function calls(points: { start: number; time: number; value: number; attributes?: Record<string, string | number> }[], temporality = 2): string {
  return request({
    name: 'traces.span.metrics.calls',
    unit: '{call}',
    sum: {
      aggregationTemporality: temporality,
      isMonotonic: true,
      dataPoints: points.map((p) => ({ attributes: attrs(p.attributes ?? { ...FLAG, 'status.code': 'STATUS_CODE_UNSET', 'span.kind': 'SPAN_KIND_SERVER' }), startTimeUnixNano: p.start === 0 ? undefined : ns(p.start), timeUnixNano: ns(p.time), asInt: String(p.value) })),
    },
  });
}

function durations(points: { start: number; time: number; counts: number[]; attributes?: Record<string, string | number> }[], bounds = [5, 10, 50], unit = 'ms'): string {
  return request({
    name: 'traces.span.metrics.duration',
    unit,
    histogram: {
      aggregationTemporality: 2,
      dataPoints: points.map((p) => ({
        attributes: attrs(p.attributes ?? { ...FLAG, 'span.kind': 'SPAN_KIND_SERVER' }),
        startTimeUnixNano: ns(p.start),
        timeUnixNano: ns(p.time),
        count: String(p.counts.reduce((a, b) => a + b, 0)),
        bucketCounts: p.counts.map(String),
        explicitBounds: bounds,
      })),
    },
  });
}

describe('the OTLP metrics decoders', () => {
  it('read the same points from protobuf and JSON as the official serializers write them', async () => {
    const { proto, json } = decodeBoth(await sdkReadings());
    const summary = (d: DecodedMetrics) =>
      d.points.map((p) => ({ metric: p.metric, unit: p.unit, kind: p.kind, temporality: p.temporality, monotonic: p.monotonic, value: p.value, count: p.count, bounds: p.bounds, bucketCounts: p.bucketCounts, exponential: p.exponential, attributes: Object.fromEntries(p.attributes), start: p.startTimeMs > 0, time: p.timeMs > p.startTimeMs }));
    expect(summary(proto)).toEqual(summary(json));
    const byName = new Map(proto.points.map((p) => [`${p.metric}/${String(p.attributes.get('http.response.status_code') ?? '')}`, p]));
    const ok = byName.get('http.server.request.duration/200');
    expect(ok).toMatchObject({ kind: 'histogram', unit: 's', temporality: 2, count: 2, bounds: [0.1, 0.5, 1], bucketCounts: [1, 0, 1, 0] });
    expect(byName.get('http.server.request.duration/503')).toMatchObject({ count: 1, bucketCounts: [0, 0, 0, 1] });
    expect(byName.get('calls/')).toMatchObject({ kind: 'sum', monotonic: true, value: 5 });
    expect(byName.get('inflight/')).toMatchObject({ kind: 'sum', monotonic: false, value: -2 });
    expect(byName.get('queue/')).toMatchObject({ kind: 'gauge', value: 7.5 });
    const exp = byName.get('exp.duration/');
    expect(exp?.kind).toBe('exponential_histogram');
    expect(exp?.exponential?.counts.reduce((a, b) => a + b, 0)).toBe(4);
    // Points of one stream share a key; different attributes make different streams.
    for (const d of [proto, json]) expect(new Set(d.points.map((p) => p.streamKey)).size).toBe(d.points.length);
  });

  it('skip metrics the mapping does not read without decoding their points, and count summaries', () => {
    const decoded = new DecodedMetrics();
    new OtlpMetricsJsonDecoder().decode(
      JSON.stringify({ resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: 'jvm.memory', gauge: { dataPoints: [{}, {}] } }, { name: 'rpc', summary: { dataPoints: [{}] } }] }] }] }),
      (name) => name === 'calls',
      decoded,
    );
    expect(decoded).toMatchObject({ points: [], skippedPoints: 2, summaryPoints: 1 });
  });

  it('refuse malformed payloads with an error that says where, and never anything else', () => {
    const json = new OtlpMetricsJsonDecoder();
    const proto = new OtlpMetricsProtoDecoder();
    expect(() => json.decode('{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "calls", "sum": {"dataPoints": [{"asInt": "x1"}]}}]}]}]}', all, new DecodedMetrics())).toThrow(
      'resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0].asInt: expected an integer',
    );
    expect(() => json.decode('{"resourceMetrics": {}}', all, new DecodedMetrics())).toThrow(OtlpPayloadError);
    expect(() => json.decode('not json', all, new DecodedMetrics())).toThrow(OtlpPayloadError);
    expect(() => proto.decode(Buffer.from([0x0a, 0x05, 0x12, 0x10]), all, new DecodedMetrics())).toThrow(OtlpPayloadError);
    // Any byte string is either decoded or refused as a payload error: seeded random garbage.
    let seed = 42;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.from(Array.from({ length: next() % 64 }, () => next() % 256));
      try {
        proto.decode(bytes, all, new DecodedMetrics());
      } catch (err) {
        expect(err).toBeInstanceOf(OtlpPayloadError);
      }
    }
  });
});

describe('hostile OTLP/JSON metrics', () => {
  it('are decoded or refused as payload errors, and what decodes is ingested without a throw', async () => {
    const valid = JSON.parse(Buffer.from(JsonMetricsSerializer.serializeRequest(await sdkReadings()) as Uint8Array).toString('utf8')) as unknown;
    const junk: unknown[] = [null, -1, 1e308, 'x', '-5', '99999999999999999999', 'Infinity', true, [], {}, [1, 'a'], { stringValue: 1 }, 2 ** 60];
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    /** Replaces one leaf (or subtree) somewhere in a copy of the request with junk. */
    const mutate = (value: unknown): unknown => {
      if (Array.isArray(value)) return (value as unknown[]).map((v) => (next() % 5 === 0 ? mutate(v) : v));
      if (typeof value === 'object' && value !== null) {
        const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
        const keys = Object.keys(out);
        const key = keys[next() % Math.max(1, keys.length)];
        if (key !== undefined) out[key] = next() % 3 === 0 ? junk[next() % junk.length] : mutate(out[key]);
        return out;
      }
      return junk[next() % junk.length];
    };
    const h = harness();
    let decoded = 0;
    for (let i = 0; i < 3000; i++) {
      const out = new DecodedMetrics();
      try {
        new OtlpMetricsJsonDecoder().decodeValue(mutate(valid), all, out);
      } catch (err) {
        expect(err).toBeInstanceOf(OtlpPayloadError);
        continue;
      }
      decoded++;
      expect(() => h.ingest.ingest(out)).not.toThrow();
    }
    // Both halves were exercised: some requests decode, many are refused.
    expect(decoded).toBeGreaterThan(100);
    expect(decoded).toBeLessThan(3000);
  });
});

describe('cumulative streams', () => {
  it('give no delta for the first point of a stream that started before we listened, then the increase per point', () => {
    const h = harness();
    const t = h.clock.now();
    h.send(calls([{ start: t - 3_600_000, time: t, value: 1000 }]));
    h.clock.advance(5_000);
    h.send(calls([{ start: t - 3_600_000, time: t + 5_000, value: 1040 }]));
    h.clock.advance(5_000);
    h.send(calls([{ start: t - 3_600_000, time: t + 10_000, value: 1040 }]));
    expect(h.sink.aggregates).toEqual([{ flagKey: 'checkout', variant: 'on', atMs: t + 5_000 - 1, requests: 40, errors: 0, latency: undefined, source: 'otlp-metrics' }]);
    expect(h.ingest.stats).toMatchObject({ dataPoints: 3, baselinePoints: 1, streams: { streams: 1, baselines: 1 } });
  });

  it('count all of a stream that started after we began listening', () => {
    const h = harness();
    const t = h.clock.now();
    h.clock.advance(5_000);
    h.send(calls([{ start: t + 1_000, time: t + 5_000, value: 12 }]));
    expect(h.sink.aggregates.map((a) => a.requests)).toEqual([12]);
  });

  it('take a changed start time as a restart, and a count that went down as a reset', () => {
    const h = harness();
    const t = h.clock.now();
    h.send(calls([{ start: t - 60_000, time: t, value: 500 }]));
    h.clock.advance(10_000);
    // The sender restarted at t + 6 s: all 7 counted since then are new.
    h.send(calls([{ start: t + 6_000, time: t + 10_000, value: 7 }]));
    h.clock.advance(5_000);
    h.send(calls([{ start: t + 6_000, time: t + 15_000, value: 10 }]));
    h.clock.advance(5_000);
    // Down without a new start time: a reset we cannot measure, so a new base.
    h.send(calls([{ start: t + 6_000, time: t + 20_000, value: 2 }]));
    h.clock.advance(5_000);
    h.send(calls([{ start: t + 6_000, time: t + 25_000, value: 9 }]));
    // A retry of an old point changes nothing.
    h.send(calls([{ start: t + 6_000, time: t + 20_000, value: 2 }]));
    expect(h.sink.aggregates.map((a) => a.requests)).toEqual([7, 3, 7]);
    expect(h.ingest.stats).toMatchObject({ stalePoints: 1, streams: { restarts: 1, resets: 1 } });
  });

  it('keep streams apart by sender, so many senders of the same series do not mix', () => {
    const h = harness();
    const t = h.clock.now();
    for (const pod of ['a', 'b']) h.send(calls([{ start: t - 60_000, time: t, value: pod === 'a' ? 100 : 900 }], 2).replace('shop', `shop-${pod}`));
    h.clock.advance(5_000);
    for (const pod of ['a', 'b']) h.send(calls([{ start: t - 60_000, time: t + 5_000, value: pod === 'a' ? 110 : 905 }], 2).replace('shop', `shop-${pod}`));
    expect(h.sink.aggregates.map((a) => a.requests)).toEqual([10, 5]);
  });

  it('evict the least recently updated stream beyond the bound, forget idle ones, and count both', () => {
    const h = harness({ maxStreams: 2 });
    const t = h.clock.now();
    for (const variant of ['a', 'b', 'c']) h.send(calls([{ start: t - 60_000, time: t, value: 1, attributes: { 'feature_flag.key': 'checkout', 'feature_flag.result.variant': variant } }]));
    expect(h.ingest.stats.streams).toMatchObject({ streams: 2, evictedStreams: 1 });
    // Ten minutes without a point: forgotten, and counted apart from the evictions.
    h.clock.advance(600_001);
    h.send(calls([{ start: t - 60_000, time: h.clock.now(), value: 5, attributes: { 'feature_flag.key': 'checkout', 'feature_flag.result.variant': 'd' } }]));
    expect(h.ingest.stats.streams).toMatchObject({ streams: 1, evictedStreams: 1, expiredStreams: 2 });
  });

  it('count an evicted stream that comes back as a baseline, never its whole total again', () => {
    const h = harness({ maxStreams: 2 });
    const t = h.clock.now();
    const point = (variant: string, time: number, value: number) => calls([{ start: t + 1, time, value, attributes: { 'feature_flag.key': 'checkout', 'feature_flag.result.variant': variant } }]);
    // Three streams started after the ingest did: each first point counts whole.
    for (const variant of ['a', 'b', 'c']) h.send(point(variant, t + 5_000, 10));
    expect(h.sink.aggregates.map((a) => a.requests)).toEqual([10, 10, 10]);
    expect(h.ingest.stats.streams).toMatchObject({ evictedStreams: 1 });
    // 'a' was forgotten; its next cumulative point (15) is only the base of the next delta.
    h.clock.advance(5_000);
    h.send(point('a', t + 10_000, 15));
    expect(h.sink.aggregates.map((a) => a.requests)).toEqual([10, 10, 10]);
  });

  it('subtract histograms bucket by bucket, and pass delta temporality through', () => {
    const h = harness();
    const t = h.clock.now();
    h.send(durations([{ start: t - 60_000, time: t, counts: [10, 5, 1, 0] }]));
    h.clock.advance(5_000);
    h.send(durations([{ start: t - 60_000, time: t + 5_000, counts: [12, 5, 4, 1] }]));
    h.send(calls([{ start: t, time: t + 5_000, value: 3 }], 1));
    expect(h.sink.aggregates.map(({ requests, latency }) => ({ requests, latency }))).toEqual([
      { requests: 0, latency: { boundsMs: [5, 10, 50], counts: [2, 0, 3, 1] } },
      { requests: 3, latency: undefined },
    ]);
  });
});

describe('the mapping', () => {
  it('reads spanmetrics: errors from status.code, only server and consumer spans, latency converted to ms', () => {
    const h = harness();
    const t = h.clock.now();
    h.clock.advance(5_000);
    const error = { ...FLAG, 'status.code': 'STATUS_CODE_ERROR', 'span.kind': 'SPAN_KIND_SERVER' };
    const client = { ...FLAG, 'status.code': 'STATUS_CODE_UNSET', 'span.kind': 'SPAN_KIND_CLIENT' };
    const noFlag = { 'status.code': 'STATUS_CODE_UNSET', 'span.kind': 'SPAN_KIND_SERVER' };
    h.send(calls([{ start: t + 1, time: t + 5_000, value: 4, attributes: error }, { start: t + 1, time: t + 5_000, value: 9, attributes: client }, { start: t + 1, time: t + 5_000, value: 9, attributes: noFlag }]));
    h.send(durations([{ start: t + 1, time: t + 5_000, counts: [1, 1, 0, 0] }], [0.25, 0.5, 1], 's'));
    expect(h.sink.aggregates.map(({ requests, errors, latency }) => ({ requests, errors, latency }))).toEqual([
      { requests: 4, errors: 4, latency: undefined },
      { requests: 0, errors: 0, latency: { boundsMs: [250, 500, 1000], counts: [1, 1, 0, 0] } },
    ]);
    expect(h.ingest.stats.unattributedPoints).toBe(2);
  });

  it('reads http.server.request.duration as requests and latency, errors from 5xx or error.type, the older variant attribute too', () => {
    const h = harness();
    const t = h.clock.now();
    h.clock.advance(5_000);
    const point = (attributes: Record<string, string | number>, counts: number[]) => ({
      attributes: attrs(attributes),
      startTimeUnixNano: ns(t),
      timeUnixNano: ns(t + 5_000),
      count: String(counts.reduce((a, b) => a + b, 0)),
      bucketCounts: counts.map(String),
      explicitBounds: [0.1, 1],
    });
    const body = request({
      name: 'http.server.request.duration',
      unit: 's',
      histogram: {
        aggregationTemporality: 1,
        dataPoints: [
          point({ 'feature_flag.key': 'checkout', 'feature_flag.variant': 'off', 'http.response.status_code': 200 }, [3, 1, 0]),
          point({ ...FLAG, 'http.response.status_code': 502 }, [0, 0, 2]),
          point({ ...FLAG, 'http.response.status_code': 200, 'error.type': 'timeout' }, [0, 1, 0]),
        ],
      },
    });
    h.send(body);
    expect(h.sink.aggregates.map(({ variant, requests, errors, latency }) => ({ variant, requests, errors, latency }))).toEqual([
      { variant: 'off', requests: 4, errors: 0, latency: { boundsMs: [100, 1000], counts: [3, 1, 0] } },
      { variant: 'on', requests: 2, errors: 2, latency: { boundsMs: [100, 1000], counts: [0, 0, 2] } },
      { variant: 'on', requests: 1, errors: 1, latency: { boundsMs: [100, 1000], counts: [0, 1, 0] } },
    ]);
  });

  it('refuses and counts points it cannot use: gauges, unknown units, late and future points', () => {
    const h = harness();
    const t = h.clock.now();
    const gauge = request({ name: 'calls', gauge: { dataPoints: [{ attributes: attrs(FLAG), timeUnixNano: ns(t), asDouble: 1 }] } });
    expect(h.send(gauge).rejected).toBe(1);
    expect(h.send(durations([{ start: t - 1, time: t, counts: [1, 0, 0, 0] }], [1, 2, 3], 'min')).message).toContain('latency unit that is not s, ms or us');
    const late = h.send(calls([{ start: t - 120_000, time: t - 60_000, value: 3 }], 1));
    const future = h.send(calls([{ start: t, time: t + 60_000, value: 3 }], 1));
    expect([late, future]).toEqual([
      { rejected: 1, message: 'data points not recorded: 1 late (before now - 30000 ms)' },
      { rejected: 1, message: 'data points not recorded: 1 future-dated (beyond +5000 ms)' },
    ]);
    expect(h.ingest.stats.refusedPoints).toEqual({ late: 1, future: 1, invalid: 0, unit: 1, kind: 1, 'cohort-limit': 0, 'other-source': 0 });
    expect(h.sink.aggregates).toEqual([]);
  });

  it('turns exponential buckets into explicit bounds: base 2^(2^-scale), bucket i up to base^(i+1)', () => {
    const point = new DecodedMetrics();
    new OtlpMetricsJsonDecoder().decode(
      request({ name: 'duration', unit: 'ms', exponentialHistogram: { aggregationTemporality: 1, dataPoints: [{ attributes: attrs(FLAG), count: '7', scale: 1, zeroCount: '1', positive: { offset: 2, bucketCounts: ['2', '0', '4'] } }] } }),
      all,
      point,
    );
    const histogram = latencyHistogram(point.points[0]!, 1);
    // base = sqrt(2): bucket index 2 is (2, 2^1.5], 3 is (2^1.5, 4], 4 is (4, 2^2.5].
    expect(histogram?.counts).toEqual([1, 2, 0, 4, 0]);
    expect(histogram?.boundsMs.map((b) => Number(b.toFixed(6)))).toEqual([2, 2.828427, 4, 5.656854]);
  });

  it('takes a mapping file in YAML over the defaults, and names the bad field of a wrong one', () => {
    const mapping = parseMetricsMapping('requests: [{ metric: http_requests }]\nlatency: [{ metric: http_latency, unit: us }]\n', 'mapping.yaml');
    expect(mapping).toMatchObject({ requests: [{ metric: 'http_requests' }], latency: [{ metric: 'http_latency', unit: 'us' }], flagKeyAttributes: DEFAULT_METRICS_MAPPING.flagKeyAttributes });
    expect(() => parseMetricsMapping('latency: [{ metric: d, unit: minutes }]', 'mapping.yaml')).toThrow(/^mapping\.yaml: latency\[0\]\.unit: .*"s".*"ms".*"us"/);
    expect(() => parseMetricsMapping('flagKeyAtributes: [x]', 'm.yaml')).toThrow('m.yaml: (top level): unknown field "flagKeyAtributes" (check the spelling)');
    expect(() => parseMetricsMapping('- a', 'm.yaml')).toThrow(MetricsMappingError);
    expect(() => resolveMetricsMapping({ variantAttributes: [] })).toThrow('variantAttributes');
  });
});
