// OTLP metrics into `serve`, end to end: the official metric exporters (http/protobuf, gRPC,
// http/json; gzip; cumulative and delta) from a real MeterProvider recording
// http.server.request.duration per flag and variant, hand-made spanmetrics payloads for what
// exporters never send (restarts, exponential buckets, garbage), and the in-process
// GuardianMetricReader; each ends in the guardian rolling back a bad treatment and not a good one.
import { Client as GrpcClient, credentials as grpcCredentials, Metadata, status as grpcStatus } from '@grpc/grpc-js';
import { gzipSync } from 'node:zlib';
import type { ExportResult } from '@opentelemetry/core';
import { AggregationTemporalityPreference, OTLPMetricExporter as OTLPMetricExporterHttp } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OTLPMetricExporterProto } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPMetricExporter as OTLPMetricExporterGrpc } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { type AggregationTemporality, type InstrumentType, MeterProvider, PeriodicExportingMetricReader, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { GuardianMetricReader } from '../../src/ingest/guardian-metric-reader.js';
import { CohortRegistry } from '../../src/guardian/cohort-registry.js';
import { RolloutGuardian, type RollbackRecord } from '../../src/guardian/rollout-guardian.js';
import { BearerAuth } from '../../src/server/bearer-auth.js';
import { METRICS_SERVICE_PATH } from '../../src/server/otlp-grpc-receiver.js';
import { RolloutServer } from '../../src/server/rollout-server.js';
import { MemoryFlagStore } from '../../src/stores/memory-store.js';
import { StoreWriter } from '../../src/stores/store-writer.js';
import { PROMETHEUS_NAMES } from '../../src/telemetry/names.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FakeClock } from '../helpers/fake-clock.js';
import { runCliIn } from '../helpers/cli-in-process.js';
import { withTempDir } from '../helpers/temp-dir.js';
import { mulberry32 } from '../helpers/seeded-random.js';

const SLOT_MS = 1000;
const SEMCONV_BOUNDS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
const GUARD = { maxErrorRate: 0.02, maxP95Ms: 500, sustainFor: '20s' } as const;
const FLAGS = { checkout: { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: 50 }, guard: GUARD } } as const;

interface Rig {
  readonly clock: FakeClock;
  readonly server: RolloutServer;
  readonly rollbacks: RollbackRecord[];
}

async function rig(options: { auth?: BearerAuth } = {}): Promise<Rig> {
  const clock = new FakeClock(Date.parse('2026-11-30T12:00:00Z'));
  const server = await RolloutServer.start({
    store: new MemoryFlagStore({ flags: FLAGS, clock }),
    port: 0,
    grpcPort: 0,
    clock,
    slotMs: SLOT_MS,
    slotCount: 600,
    autoTick: false,
    ingest: { allowedLatenessMs: 2_000, joinWaitMs: 1_000 },
    auth: options.auth,
  });
  const rollbacks: RollbackRecord[] = [];
  server.guardian.addListener({ rollback: (r) => rollbacks.push(r) });
  // The application starts a second after serve: its streams' first points count whole.
  clock.advance(SLOT_MS);
  return { clock, server, rollbacks };
}

/**
 * The SDK stamps points with the machine's clock and the test's clock is fake, so points pass
 * through this shim on their way to the official exporter: each end time becomes the fake
 * clock's now, and each start time moves with it once (a cumulative stream keeps its start).
 */
class FakeTimeExporter implements PushMetricExporter {
  private readonly starts = new Map<string, [number, number]>();
  constructor(
    private readonly clock: FakeClock,
    private readonly inner: PushMetricExporter,
  ) {}

  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    const now = this.clock.now();
    const end: [number, number] = [Math.floor(now / 1000), (now % 1000) * 1e6];
    for (const scope of metrics.scopeMetrics) {
      for (const metric of scope.metrics) {
        for (const point of metric.dataPoints) {
          const key = `${point.startTime[0]}.${point.startTime[1]}`;
          let start = this.starts.get(key);
          if (start === undefined) {
            const startMs = now - 10;
            start = [Math.floor(startMs / 1000), (startMs % 1000) * 1e6];
            this.starts.set(key, start);
          }
          (point as { startTime: [number, number] }).startTime = start;
          (point as { endTime: [number, number] }).endTime = end;
        }
      }
    }
    this.inner.export(metrics, resultCallback);
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  selectAggregationTemporality(type: InstrumentType): AggregationTemporality {
    return (this.inner.selectAggregationTemporality as (t: InstrumentType) => AggregationTemporality)(type);
  }
}

interface Traffic {
  readonly errorRate: number;
  /** Share of requests taking 0.7 s (above the 500 ms limit, a bucket bound of the default buckets). */
  readonly slowShare: number;
}

const HEALTHY: Traffic = { errorRate: 0.004, slowShare: 0.01 };

/**
 * `seconds` slots of traffic recorded as http.server.request.duration with the flag and
 * variant as attributes, flushed through `flush` and judged after each slot.
 */
async function drive(clock: FakeClock, tick: () => Promise<void>, record: (seconds: number, attributes: Record<string, string | number>) => void, flush: () => Promise<void>, seconds: number, treatment: Traffic): Promise<void> {
  const random = mulberry32(7);
  for (let s = 0; s < seconds; s++) {
    for (const [variant, traffic] of [['on', treatment], ['off', HEALTHY]] as const) {
      for (let i = 0; i < 40; i++) {
        const failed = random() < traffic.errorRate;
        const slow = random() < traffic.slowShare;
        record(slow ? 0.7 : 0.04, { 'feature_flag.key': 'checkout', 'feature_flag.result.variant': variant, 'http.request.method': 'GET', 'http.response.status_code': failed ? 503 : 200 });
      }
    }
    await flush();
    clock.advance(SLOT_MS);
    await tick();
  }
}

function meter(exporter: PushMetricExporter): { provider: MeterProvider; record: (seconds: number, attributes: Record<string, string | number>) => void } {
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  const histogram = provider.getMeter('shop').createHistogram('http.server.request.duration', {
    unit: 's',
    advice: { explicitBucketBoundaries: SEMCONV_BOUNDS_S },
  });
  return { provider, record: (seconds, attributes) => histogram.record(seconds, attributes) };
}

async function scrape(server: RolloutServer): Promise<string> {
  return (await fetch(`${server.url}/metrics`)).text();
}

function metric(text: string, name: string, labels = ''): number | undefined {
  const m = new RegExp(`^${name}\\{${labels}[^}]*\\} (\\S+)$`, 'm').exec(text) ?? new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m === null ? undefined : Number(m[1]);
}

describe('the official OTLP metric exporters at their defaults', () => {
  const exporters: [string, (server: RolloutServer, temporality: AggregationTemporalityPreference) => PushMetricExporter][] = [
    ['http/protobuf with gzip', (s, t) => new OTLPMetricExporterProto({ url: `${s.url}/v1/metrics`, compression: CompressionAlgorithm.GZIP, temporalityPreference: t })],
    ['grpc with gzip', (s, t) => new OTLPMetricExporterGrpc({ url: `http://127.0.0.1:${String(s.grpcPort)}`, compression: CompressionAlgorithm.GZIP, temporalityPreference: t })],
    ['http/json', (s, t) => new OTLPMetricExporterHttp({ url: `${s.url}/v1/metrics`, temporalityPreference: t })],
  ];
  const cases = exporters.flatMap(([name, make]) => [AggregationTemporalityPreference.CUMULATIVE, AggregationTemporalityPreference.DELTA].map((t) => [`${name}, ${t === AggregationTemporalityPreference.CUMULATIVE ? 'cumulative' : 'delta'}`, make, t] as const));

  it.each(cases)('%s: a treatment answering 5xx is rolled back, a healthy one is not', async (_name, make, temporality) => {
    const r = await rig();
    const { provider, record } = meter(new FakeTimeExporter(r.clock, make(r.server, temporality)));
    try {
      await drive(r.clock, () => r.server.guardian.tick(), record, () => provider.forceFlush(), 30, HEALTHY);
      expect(r.rollbacks).toEqual([]);
      const cohort = r.server.registry.window('checkout', 'on')?.merged(r.clock.now() - 31_000, r.clock.now());
      // 30 slots of 40 requests: every one counted once, whichever the temporality.
      expect(cohort?.count).toBe(1200);
      await drive(r.clock, () => r.server.guardian.tick(), record, () => provider.forceFlush(), 60, { errorRate: 0.2, slowShare: 0.01 });
      expect(r.rollbacks).toHaveLength(1);
      expect(r.rollbacks[0]?.reason).toContain('error rate');
      const text = await scrape(r.server);
      expect(metric(text, PROMETHEUS_NAMES.ingestMetricDataPoints)).toBeGreaterThan(0);
      expect(metric(text, PROMETHEUS_NAMES.ingestUnusedMetricDataPoints, 'reason="late"')).toBe(0);
    } finally {
      await provider.shutdown();
      await r.server.close();
    }
  });

  it('a slow treatment is rolled back on P95 judged exactly on the buckets (500 ms is a bound)', async () => {
    const r = await rig();
    const { provider, record } = meter(new FakeTimeExporter(r.clock, new OTLPMetricExporterProto({ url: `${r.server.url}/v1/metrics` })));
    try {
      await drive(r.clock, () => r.server.guardian.tick(), record, () => provider.forceFlush(), 90, { errorRate: 0.004, slowShare: 0.15 });
      expect(r.rollbacks).toHaveLength(1);
      expect(r.rollbacks[0]?.reason).toContain('slower than 500 ms');
      expect(r.rollbacks[0]?.reason).not.toContain('approximate');
    } finally {
      await provider.shutdown();
      await r.server.close();
    }
  });
});

/** spanmetrics' output as the Collector sends it (cumulative), for `variant`, as OTLP/JSON. */
function spanmetrics(resource: string, startMs: number, timeMs: number, variant: string, calls: number, errors: number, buckets: number[]): string {
  const ns = (ms: number) => `${ms}000000`;
  const attrs = (extra: Record<string, string>) =>
    Object.entries({ 'service.name': 'shop', 'span.name': 'GET /checkout', 'span.kind': 'SPAN_KIND_SERVER', 'feature_flag.key': 'checkout', 'feature_flag.result.variant': variant, ...extra }).map(([key, v]) => ({ key, value: { stringValue: v } }));
  return JSON.stringify({
    resourceMetrics: [
      {
        resource: { attributes: [{ key: 'service.instance.id', value: { stringValue: resource } }] },
        scopeMetrics: [
          {
            scope: { name: 'spanmetricsconnector' },
            metrics: [
              {
                name: 'traces.span.metrics.calls',
                unit: '{call}',
                sum: {
                  aggregationTemporality: 2,
                  isMonotonic: true,
                  dataPoints: [
                    { attributes: attrs({ 'status.code': 'STATUS_CODE_UNSET' }), startTimeUnixNano: ns(startMs), timeUnixNano: ns(timeMs), asInt: String(calls - errors) },
                    { attributes: attrs({ 'status.code': 'STATUS_CODE_ERROR' }), startTimeUnixNano: ns(startMs), timeUnixNano: ns(timeMs), asInt: String(errors) },
                  ],
                },
              },
              {
                name: 'traces.span.metrics.duration',
                unit: 'ms',
                histogram: {
                  aggregationTemporality: 2,
                  dataPoints: [{ attributes: attrs({ 'status.code': 'STATUS_CODE_UNSET' }), startTimeUnixNano: ns(startMs), timeUnixNano: ns(timeMs), count: String(buckets.reduce((a, b) => a + b, 0)), bucketCounts: buckets.map(String), explicitBounds: [100, 500, 1000] }],
                },
              },
            ],
          },
        ],
      },
    ],
  });
}

async function post(server: RolloutServer, body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<{ status: number; body: string }> {
  const response = await fetch(`${server.url}/v1/metrics`, { method: 'POST', headers, body });
  return { status: response.status, body: await response.text() };
}

describe('hand-made OTLP metric payloads', () => {
  it('spanmetrics from three Collectors, one restarting mid-way: errors counted once, a bad treatment rolled back, the baseline not', async () => {
    const r = await rig();
    const t0 = r.clock.now();
    // Cumulative totals per collector and variant.
    const totals = new Map<string, { start: number; calls: number; errors: number; buckets: number[] }>();
    try {
      for (let s = 0; s < 80; s++) {
        const now = r.clock.now();
        for (const collector of ['c1', 'c2', 'c3']) {
          for (const variant of ['on', 'off']) {
            const key = `${collector}/${variant}`;
            // c2 restarts at 30 s: its counts start again from zero with a new start time.
            if (!totals.has(key) || (collector === 'c2' && s === 30)) totals.set(key, { start: now - 1, calls: 0, errors: 0, buckets: [0, 0, 0, 0] });
            const total = totals.get(key)!;
            const bad = variant === 'on' && s >= 20;
            total.calls += 20;
            total.errors += bad ? 4 : 0;
            total.buckets[0]! += 20;
            const response = await post(r.server, gzipSync(spanmetrics(collector, total.start, now, variant, total.calls, total.errors, total.buckets)), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
            expect(response).toEqual({ status: 200, body: '{}' });
          }
        }
        r.clock.advance(SLOT_MS);
        await r.server.guardian.tick();
        if (s === 19) expect(r.rollbacks).toEqual([]);
      }
      expect(r.rollbacks).toHaveLength(1);
      expect(r.rollbacks[0]?.flagKey).toBe('checkout');
      const stats = r.server.metricsIngest.stats;
      // The first point of each stream (2 calls + 1 duration per collector and variant) counted whole: started after serve did.
      expect(stats.streams.restarts).toBe(6);
      expect(stats.baselinePoints).toBe(0);
      const off = r.server.registry.window('checkout', 'off')?.merged(t0 - SLOT_MS, r.clock.now());
      expect(off).toMatchObject({ count: 80 * 3 * 20, errors: 0 });
    } finally {
      await r.server.close();
    }
  });

  it('exponential histograms in protobuf over gRPC, malformed payloads refused with 400 and nothing else, and auth as for traces', async () => {
    const auth = BearerAuth.parse('ingest-token-0123456789 ingest\nread-token-0123456789 read\n', 'tokens');
    const r = await rig({ auth });
    const client = new GrpcClient(`127.0.0.1:${String(r.server.grpcPort)}`, grpcCredentials.createInsecure());
    const call = (body: Buffer, token: string) =>
      new Promise<{ code: number; details: string }>((resolve) => {
        const metadata = new Metadata();
        metadata.set('authorization', `Bearer ${token}`);
        client.makeUnaryRequest(METRICS_SERVICE_PATH, (b: Buffer) => b, (b: Buffer) => b, body, metadata, (err) => resolve({ code: err?.code ?? grpcStatus.OK, details: err?.details ?? '' }));
      });
    try {
      // A request with an exponential histogram (scale 0: bounds 1, 2, 4, 8 ... ms) written by the official serializer.
      const { ProtobufMetricsSerializer } = await import('@opentelemetry/otlp-transformer');
      const { AggregationType, MetricReader } = await import('@opentelemetry/sdk-metrics');
      class Hand extends MetricReader {
        protected override onShutdown(): Promise<void> {
          return Promise.resolve();
        }
        protected override onForceFlush(): Promise<void> {
          return Promise.resolve();
        }
      }
      const reader = new Hand({ aggregationTemporalitySelector: () => 0 });
      const provider = new MeterProvider({ readers: [reader], views: [{ instrumentName: 'duration', aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM } }] });
      const histogram = provider.getMeter('app').createHistogram('duration', { unit: 'ms' });
      for (let i = 0; i < 50; i++) histogram.record(3 + i, { 'feature_flag.key': 'checkout', 'feature_flag.result.variant': 'on' });
      const collected = await reader.collect();
      for (const m of collected.resourceMetrics.scopeMetrics[0]!.metrics) for (const p of m.dataPoints) (p as { endTime: [number, number] }).endTime = [Math.floor(r.clock.now() / 1000), 0];
      const body = Buffer.from(ProtobufMetricsSerializer.serializeRequest(collected.resourceMetrics) as Uint8Array);
      await provider.shutdown();
      expect(await call(body, 'read-token-0123456789')).toMatchObject({ code: grpcStatus.PERMISSION_DENIED });
      expect(await call(body, 'ingest-token-0123456789')).toEqual({ code: grpcStatus.OK, details: '' });
      const window = r.server.registry.window('checkout', 'on')?.merged(r.clock.now() - 5_000, r.clock.now() + 1_000);
      // `duration` is latency only in the default mapping: 50 latencies, no requests.
      expect(window?.sketch.count).toBe(50);
      expect(window?.count).toBe(0);
      expect(window?.sketch.countAbove(64)).toBe(0);
      expect(r.server.metricsIngest.stats).toMatchObject({ dataPoints: 1, recordedPoints: 1 });
      expect(await call(Buffer.from([0x0a, 0x05, 0x12, 0x10]), 'ingest-token-0123456789')).toMatchObject({ code: grpcStatus.INVALID_ARGUMENT });

      const headers = { 'content-type': 'application/json', authorization: 'Bearer ingest-token-0123456789' };
      expect((await post(r.server, '{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "calls", "sum": {"dataPoints": [{"asInt": [1]}]}}]}]}]}', headers)).status).toBe(400);
      expect((await post(r.server, 'garbage', headers)).body).toContain('not JSON');
      expect((await post(r.server, Buffer.from([0xff, 0xff]), { ...headers, 'content-type': 'application/x-protobuf' })).status).toBe(400);
      expect((await post(r.server, '{}', { 'content-type': 'application/json' })).status).toBe(401);
      expect((await post(r.server, '{}', { 'content-type': 'text/plain', authorization: 'Bearer ingest-token-0123456789' })).status).toBe(415);
      // A late point is a partial success naming why.
      const late = spanmetrics('c9', r.clock.now() - 120_000, r.clock.now() - 60_000, 'on', 5, 0, [5, 0, 0, 0]).replaceAll('"aggregationTemporality":2', '"aggregationTemporality":1');
      expect(JSON.parse((await post(r.server, late, headers)).body)).toEqual({ partialSuccess: { rejectedDataPoints: '3', errorMessage: 'data points not recorded: 3 late (before now - 2000 ms)' } });
      const text = await (await fetch(`${r.server.url}/metrics`, { headers: { authorization: 'Bearer read-token-0123456789' } })).text();
      expect(metric(text, PROMETHEUS_NAMES.ingestRefusedRequests, 'reason="malformed"')).toBe(4);
      expect(metric(text, PROMETHEUS_NAMES.ingestUnusedMetricDataPoints, 'reason="late"')).toBe(3);
    } finally {
      client.close();
      await r.server.close();
    }
  });
});

describe('GuardianMetricReader, the in-process source', () => {
  it('feeds an application’s http.server.request.duration into the guardian: a bad treatment rolled back, a healthy one not', async () => {
    const clock = new FakeClock(Date.parse('2026-11-30T12:00:00Z'));
    const store = new MemoryFlagStore({ flags: FLAGS, clock });
    const registry = new CohortRegistry({ slotMs: SLOT_MS, slotCount: 600 });
    const guardian = new RolloutGuardian({ source: store, writer: new StoreWriter(store, clock), registry, clock, allowedLatenessMs: 1_000 });
    const rollbacks: RollbackRecord[] = [];
    guardian.addListener({ rollback: (r) => rollbacks.push(r) });
    const reader = new GuardianMetricReader({ registry, clock, intervalMs: 0 });
    const provider = new MeterProvider({ readers: [reader] });
    // The bounds the HTTP semantic conventions advise for http.server.request.duration (seconds).
    const histogram = provider.getMeter('shop').createHistogram('http.server.request.duration', { unit: 's', advice: { explicitBucketBoundaries: SEMCONV_BOUNDS_S } });
    try {
      await store.load();
      await drive(clock, () => guardian.tick(), (seconds, attributes) => histogram.record(seconds, attributes), () => reader.collectNow(), 30, HEALTHY);
      expect(rollbacks).toEqual([]);
      expect(registry.window('checkout', 'off')?.merged(clock.now() - 31_000, clock.now()).count).toBe(1200);
      await drive(clock, () => guardian.tick(), (seconds, attributes) => histogram.record(seconds, attributes), () => reader.collectNow(), 60, { errorRate: 0.2, slowShare: 0.01 });
      expect(rollbacks).toHaveLength(1);
      expect(rollbacks[0]?.evidence).toMatchObject({ treatment: { variant: 'on', sources: ['metric-reader'] } });
      expect(reader.stats).toMatchObject({ collectFailures: 0, refusedPoints: { late: 0, future: 0, invalid: 0 } });
    } finally {
      await provider.shutdown();
      await guardian.shutdown();
    }
  });
});

describe('serve --metrics-mapping', () => {
  it('refuses a mapping file it cannot use, naming the file and the field, before listening', async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'flags.yaml'), 'flags: {}\n');
      await writeFile(join(dir, 'mapping.yaml'), 'latency:\n  - metric: http_latency\n    unit: minutes\n');
      const run = await runCliIn(dir, ['serve', '--store', join(dir, 'flags.yaml'), '--port', '0', '--no-grpc-port', '--metrics-mapping', join(dir, 'mapping.yaml')]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`--metrics-mapping ${join(dir, 'mapping.yaml')}: latency[0].unit:`);
      expect(run.stderr).toContain('see docs/pipelines.md');
      const missing = await runCliIn(dir, ['serve', '--store', join(dir, 'flags.yaml'), '--port', '0', '--no-grpc-port', '--metrics-mapping', join(dir, 'nope.yaml')]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain(`--metrics-mapping ${join(dir, 'nope.yaml')}: ENOENT`);
      const streams = await runCliIn(dir, ['serve', '--store', join(dir, 'flags.yaml'), '--port', '0', '--no-grpc-port', '--max-metric-streams', '0']);
      expect(streams.code).toBe(2);
      expect(streams.stderr).toContain('expected a whole number of streams from 1 to 100000000, such as 1000000, got "0"');
    });
  });

  it('remembers as many cumulative streams as --max-metric-streams allows', async () => {
    const store = new MemoryFlagStore({ flags: {} });
    const server = await RolloutServer.start({ store, port: 0, autoTick: false, maxMetricStreams: 3 });
    try {
      expect(server.metricsIngest.maxStreams).toBe(3);
    } finally {
      await server.close();
    }
  });
});
