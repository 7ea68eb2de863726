// OTLP ingest in `serve` with the clients real pipelines use, at their defaults: the official
// OpenTelemetry trace and log exporters (http/protobuf, http/json, gRPC; plain and gzip), the
// NodeSDK configured only by OTEL_* variables, and OpenFeature's own OpenTelemetry hooks on
// the SDK's InMemoryProvider. Beside them, hand-made payloads for what no exporter sends:
// malformed, oversized, compressed bombs, deeply nested values, late and future-dated data.
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { Client as GrpcClient, credentials as grpcCredentials, Metadata, status as grpcStatus } from '@grpc/grpc-js';
import { deflateSync, gzipSync } from 'node:zlib';
import { context, propagation, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { logs } from '@opentelemetry/api-logs';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPLogExporter as OTLPLogExporterHttp } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as OTLPLogExporterProto } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPTraceExporter as OTLPTraceExporterHttp } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPTraceExporterProto } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as OTLPTraceExporterGrpc } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPLogExporter as OTLPLogExporterGrpc } from '@opentelemetry/exporter-logs-otlp-grpc';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter, type SpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { EventHook, SpanHook } from '@openfeature/open-telemetry-hooks';
import { InMemoryProvider, OpenFeature } from '@openfeature/server-sdk';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OtlpIngest, type OtlpIngestStats } from '../../src/ingest/otlp-ingest.js';
import { OtlpJsonDecoder } from '../../src/ingest/otlp-json-decoder.js';
import { DecodedBatch } from '../../src/ingest/otlp-proto-decoder.js';
import { replayOtlp } from '../../src/ingest/otlp-replay.js';
import { RolloutServer, type RolloutServerOptions } from '../../src/server/rollout-server.js';
import { MemoryFlagStore } from '../../src/stores/memory-store.js';
import { PROMETHEUS_NAMES } from '../../src/telemetry/names.js';
import { BearerAuth } from '../../src/server/bearer-auth.js';
import { TRACE_SERVICE_PATH } from '../../src/server/otlp-grpc-receiver.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { withTempDir } from '../helpers/temp-dir.js';
import { runCliIn } from '../helpers/cli-in-process.js';

const FLAGS = { checkout: { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: 50 } } } as const;

async function startServer(options: Partial<RolloutServerOptions> = {}): Promise<RolloutServer> {
  return RolloutServer.start({ store: new MemoryFlagStore({ flags: FLAGS }), port: 0, grpcPort: 0, autoTick: false, ...options });
}

async function ingestStats(server: RolloutServer): Promise<OtlpIngestStats> {
  const status = (await (await fetch(`${server.url}/api/status`)).json()) as { ingest: OtlpIngestStats };
  return status.ingest;
}

/** Outcomes a cohort holds over the last five minutes of the server's clock. */
function cohortCount(server: RolloutServer, variant: string, nowMs = Date.now()): { count: number; errors: number } {
  const stats = server.registry.window('checkout', variant)?.merged(nowMs - 300_000, nowMs + 60_000);
  return { count: stats?.count ?? 0, errors: stats?.errors ?? 0 };
}

async function scrape(server: RolloutServer): Promise<string> {
  return (await fetch(`${server.url}/metrics`)).text();
}

function metric(text: string, name: string, labels = ''): number | undefined {
  const m = new RegExp(`^${name}\\{${labels}[^}]*\\} (\\S+)$`, 'm').exec(text) ?? new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m === null ? undefined : Number(m[1]);
}

/** `count` requests: a SERVER root marked with an evaluation event, and a child span. */
async function sendRequests(exporter: SpanExporter, count: number, variant = 'on'): Promise<void> {
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: 16 })] });
  const tracer = provider.getTracer('app');
  for (let i = 0; i < count; i++) {
    const root = tracer.startSpan('GET /checkout', { kind: SpanKind.SERVER }, ROOT_CONTEXT);
    const child = tracer.startSpan('SELECT cart', { kind: SpanKind.CLIENT }, trace.setSpan(ROOT_CONTEXT, root));
    child.end();
    root.addEvent('feature_flag.evaluation', { 'feature_flag.key': 'checkout', 'feature_flag.result.variant': variant });
    root.setAttribute('http.response.status_code', 200);
    root.end();
  }
  try {
    await provider.forceFlush();
  } finally {
    await provider.shutdown();
  }
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

/** An OTLP/JSON span as the mapping defines it. */
function jsonSpan(i: number, endMs: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const endNs = BigInt(endMs) * 1_000_000n;
  return {
    traceId: hex(i + 1, 32),
    spanId: hex(i + 1, 16),
    kind: 2,
    startTimeUnixNano: String(endNs - 25_000_000n),
    endTimeUnixNano: String(endNs),
    events: [{ name: 'feature_flag.evaluation', attributes: [{ key: 'feature_flag.key', value: { stringValue: 'checkout' } }, { key: 'feature_flag.result.variant', value: { stringValue: 'on' } }] }],
    ...extra,
  };
}

const traces = (spans: unknown[]) => JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans }] }] });

function post(server: RolloutServer, path: string, body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<Response> {
  return fetch(`${server.url}${path}`, { method: 'POST', body, headers });
}

describe('OTLP ingest from the official exporters at their defaults', () => {
  let server: RolloutServer;
  beforeEach(async () => {
    server = await startServer();
  });
  afterEach(async () => {
    await server.close();
  });

  const clients: [string, () => SpanExporter][] = [
    ['http/protobuf', () => new OTLPTraceExporterProto({ url: `${server.url}/v1/traces` })],
    ['http/protobuf with gzip', () => new OTLPTraceExporterProto({ url: `${server.url}/v1/traces`, compression: CompressionAlgorithm.GZIP })],
    ['http/json', () => new OTLPTraceExporterHttp({ url: `${server.url}/v1/traces` })],
    ['http/json with gzip', () => new OTLPTraceExporterHttp({ url: `${server.url}/v1/traces`, compression: CompressionAlgorithm.GZIP })],
    ['grpc', () => new OTLPTraceExporterGrpc({ url: `http://127.0.0.1:${String(server.grpcPort)}` })],
    ['grpc with gzip', () => new OTLPTraceExporterGrpc({ url: `http://127.0.0.1:${String(server.grpcPort)}`, compression: CompressionAlgorithm.GZIP })],
  ];
  for (const [name, exporter] of clients) {
    it(`counts every request sent over ${name}`, async () => {
      await sendRequests(exporter(), 30);
      const stats = await ingestStats(server);
      expect(stats).toMatchObject({ spans: 60, requests: 30, recordedOutcomes: 30, late: 0, future: 0 });
      expect(Object.values(stats.refusedRequests).every((n) => n === 0)).toBe(true);
      expect(cohortCount(server, 'on').count).toBe(30);
    });
  }
});

describe('health on a serve that hears nothing', () => {
  it('has health name the cause when the app sends and the guardian hears nothing', async () => {
    const server = await startServer();
    try {
      expect((await post(server, '/v1/traces', 'spans', { 'content-type': 'text/plain' })).status).toBe(415);
      await withTempDir(async (dir) => {
        const { writeFile } = await import('node:fs/promises');
        await writeFile(join(dir, 'flags.yaml'), 'flags:\n  checkout:\n    variants: { on: true, off: false }\n    defaultVariant: off\n');
        const run = await runCliIn(dir, ['health', '--server', server.url, '--store', join(dir, 'flags.yaml')]);
        expect(run.code).toBe(1);
        expect(run.stdout).toMatch(/telemetry arriving +fail +no outcomes in the last \d+ s: refused so far: 1 request\(s\) unsupported media type \(send OTLP as http\/protobuf or http\/json \(or gRPC\)\)/);
      });
    } finally {
      await server.close();
    }
  });
});

describe('compression the exporters do not send by default', () => {
  it('takes a deflate-encoded body (Content-Encoding: deflate) as it takes gzip, and answers in the request encoding', async () => {
    const clock = new FakeClock(Date.parse('2026-11-27T12:00:00Z'));
    const server = await startServer({ clock, slotMs: 1000, slotCount: 600 });
    try {
      const body = deflateSync(Buffer.from(traces([jsonSpan(1, clock.now() - 1_000), jsonSpan(2, clock.now() - 2_000)])));
      const response = await post(server, '/v1/traces', body, { 'content-type': 'application/json', 'content-encoding': 'deflate' });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/json');
      expect(await ingestStats(server)).toMatchObject({ spans: 2, recordedOutcomes: 2 });
      // A corrupt deflate stream is the payload's fault: a 400, not a 500.
      const corrupt = await post(server, '/v1/traces', Buffer.from('not deflate at all'), { 'content-type': 'application/json', 'content-encoding': 'deflate' });
      expect(corrupt.status).toBe(400);
    } finally {
      await server.close();
    }
  });
});

describe('attribution from what real producers send', () => {
  let server: RolloutServer;
  beforeEach(async () => {
    server = await startServer();
  });
  afterEach(async () => {
    await server.close();
  });

  it('joins OpenFeature EventHook log records (Logs API) to their request span, over the protobuf, JSON and gRPC logs exporters, whichever arrives first', async () => {
    const contextManager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(contextManager);
    const spanExporter = new OTLPTraceExporterProto({ url: `${server.url}/v1/traces` });
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] });
    const tracer = tracerProvider.getTracer('shop');
    const logExporters = [
      new OTLPLogExporterProto({ url: `${server.url}/v1/logs` }),
      new OTLPLogExporterHttp({ url: `${server.url}/v1/logs`, compression: CompressionAlgorithm.GZIP }),
      new OTLPLogExporterGrpc({ url: `http://127.0.0.1:${String(server.grpcPort)}`, compression: CompressionAlgorithm.GZIP }),
    ];
    for (const [index, logExporter] of logExporters.entries()) {
      const loggerProvider = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter: logExporter })] });
      logs.setGlobalLoggerProvider(loggerProvider);
      await OpenFeature.setProviderAndWait(new InMemoryProvider({ checkout: { variants: { on: true, off: false }, defaultVariant: index === 1 ? 'off' : 'on', disabled: false } }));
      OpenFeature.clearHooks();
      OpenFeature.addHooks(new EventHook());
      const client = OpenFeature.getClient();
      for (let i = 0; i < 10; i++) {
        await tracer.startActiveSpan('GET /checkout', { kind: SpanKind.SERVER }, ROOT_CONTEXT, async (span) => {
          await client.getBooleanValue('checkout', false, { targetingKey: `user-${i}` });
          // Half the requests end (and are exported) before their evaluation record is flushed.
          if (i % 2 === 0) span.end();
          await loggerProvider.forceFlush();
          if (i % 2 === 1) span.end();
        });
      }
      await tracerProvider.forceFlush();
      await loggerProvider.shutdown();
      logs.disable();
    }
    await tracerProvider.shutdown();
    OpenFeature.clearHooks();
    await OpenFeature.close();
    context.disable();
    const stats = await ingestStats(server);
    expect(stats).toMatchObject({ spans: 30, logRecords: 30, requests: 30, recordedOutcomes: 30, unattributable: 0 });
    expect(cohortCount(server, 'on').count).toBe(20);
    expect(cohortCount(server, 'off').count).toBe(10);
  });

  it("does not count OpenFeature SpanHook evaluation spans made outside a request as requests, but attributes those inside one", async () => {
    const contextManager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(contextManager);
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporterProto({ url: `${server.url}/v1/traces` }))] });
    trace.setGlobalTracerProvider(tracerProvider);
    await OpenFeature.setProviderAndWait(new InMemoryProvider({ checkout: { variants: { on: true, off: false }, defaultVariant: 'on', disabled: false } }));
    OpenFeature.addHooks(new SpanHook());
    const client = OpenFeature.getClient();
    for (let i = 0; i < 5; i++) await client.getBooleanValue('checkout', false);
    const tracer = tracerProvider.getTracer('shop');
    for (let i = 0; i < 3; i++) {
      await tracer.startActiveSpan('GET /checkout', { kind: SpanKind.SERVER }, ROOT_CONTEXT, async (span) => {
        await client.getBooleanValue('checkout', false);
        span.end();
      });
    }
    await tracerProvider.forceFlush();
    OpenFeature.clearHooks();
    await OpenFeature.close();
    await tracerProvider.shutdown();
    trace.disable();
    context.disable();
    expect(await ingestStats(server)).toMatchObject({ spans: 11, requests: 3, recordedOutcomes: 3 });
  });

  it('reads the previous span-event names and counts value-only evaluations as unattributable', async () => {
    const now = Date.now();
    const previous = { events: [{ name: 'feature_flag', attributes: [{ key: 'feature_flag.key', value: { stringValue: 'checkout' } }, { key: 'feature_flag.variant', value: { stringValue: 'off' } }, { key: 'feature_flag.provider_name', value: { stringValue: 'legacy' } }] }] };
    const valueOnly = { events: [{ name: 'feature_flag.evaluation', attributes: [{ key: 'feature_flag.key', value: { stringValue: 'checkout' } }, { key: 'feature_flag.result.value', value: { boolValue: true } }] }] };
    const onAttributes = { events: [], attributes: [{ key: 'feature_flag.key', value: { stringValue: 'checkout' } }, { key: 'feature_flag.result.variant', value: { stringValue: 'on' } }, { key: 'http.response.status_code', value: { intValue: '503' } }] };
    const response = await post(server, '/v1/traces', traces([jsonSpan(1, now, previous), jsonSpan(2, now, valueOnly), jsonSpan(3, now, onAttributes)]));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({});
    expect(await ingestStats(server)).toMatchObject({ spans: 3, requests: 3, recordedOutcomes: 2, unattributable: 1 });
    expect(cohortCount(server, 'off').count).toBe(1);
    expect(cohortCount(server, 'on')).toEqual({ count: 1, errors: 1 });
    expect(metric(await scrape(server), PROMETHEUS_NAMES.ingestUnattributable)).toBe(1);
  });

  it('counts only local roots of server or consumer kind as requests; children, clients and internal roots add exposures only', async () => {
    const now = Date.now();
    const child = jsonSpan(7, now, { kind: 2, parentSpanId: hex(99, 16), flags: 0x100 });
    const remoteChild = jsonSpan(8, now, { kind: 2, parentSpanId: hex(98, 16), flags: 0x300 });
    const internalRoot = jsonSpan(9, now, { kind: 1 });
    const consumerRoot = jsonSpan(10, now, { kind: 5 });
    await post(server, '/v1/traces', traces([child, remoteChild, internalRoot, consumerRoot]));
    expect(await ingestStats(server)).toMatchObject({ spans: 4, requests: 2, recordedOutcomes: 2 });
  });
});

describe('the join of spans and evaluation records', () => {
  const logRecord = (i: number, timeMs: number) => ({
    timeUnixNano: String(BigInt(timeMs) * 1_000_000n),
    traceId: hex(i + 1, 32),
    spanId: hex(i + 1, 16),
    eventName: 'feature_flag.evaluation',
    attributes: [{ key: 'feature_flag.key', value: { stringValue: 'checkout' } }, { key: 'feature_flag.result.variant', value: { stringValue: 'off' } }],
  });
  const plain = (i: number, endMs: number) => jsonSpan(i, endMs, { events: [] });

  function harness(options: { maxTraces?: number; joinWaitMs?: number } = {}) {
    const clock = new FakeClock(Date.parse('2026-11-27T12:00:00Z'));
    const recorded: string[] = [];
    const ingest = new OtlpIngest({ sink: { record: (flag, variant, _d, _f, atMs) => recorded.push(`${flag}=${variant}@${atMs - clock.now()}`) }, clock, ...options });
    const decoder = new OtlpJsonDecoder();
    const batch = new DecodedBatch();
    const spans = (list: unknown[]) => {
      batch.reset();
      decoder.decodeTraces(traces(list), batch);
      ingest.ingestSpans(batch);
    };
    const records = (list: unknown[]) => {
      batch.reset();
      decoder.decodeLogs(JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords: list }] }] }), batch);
      ingest.ingestLogs(batch);
    };
    return { clock, recorded, ingest, spans, records };
  }

  it('joins a record to a request that arrived before it, within the wait, and not after', () => {
    const h = harness({ joinWaitMs: 10_000 });
    const now = h.clock.now();
    h.spans([plain(1, now - 100), plain(2, now - 100)]);
    h.clock.advance(9_000);
    h.records([logRecord(1, now - 150)]);
    expect(h.recorded).toEqual(['checkout=off@-9100']);
    h.clock.advance(2_000);
    h.records([logRecord(2, now - 150)]);
    expect(h.recorded).toHaveLength(1);
    expect(h.ingest.pendingTraces).toBe(1);
  });

  it('holds at most maxTraces, dropping the oldest and counting exposures that never met their request', () => {
    const h = harness({ maxTraces: 3 });
    const now = h.clock.now();
    h.records([logRecord(1, now), logRecord(2, now), logRecord(3, now), logRecord(4, now)]);
    expect(h.ingest.pendingTraces).toBe(3);
    expect(h.ingest.stats.droppedTraces).toBe(1);
    h.spans([plain(1, now), plain(4, now)]);
    expect(h.recorded).toEqual(['checkout=off@0']);
  });
});

describe('event time', () => {
  it('records outcomes at their span end time and refuses late and future-dated spans with a partial success', async () => {
    const clock = new FakeClock(Date.parse('2026-11-27T12:00:00Z'));
    const server = await startServer({ clock, slotMs: 1000, slotCount: 600, ingest: { allowedLatenessMs: 60_000 } });
    try {
      const now = clock.now();
      const spans = [jsonSpan(1, now - 10_000), jsonSpan(2, now - 59_000), jsonSpan(3, now - 61_000), jsonSpan(4, now + 4_000), jsonSpan(5, now + 6_000)];
      const response = await post(server, '/v1/traces', traces(spans));
      expect(response.status).toBe(200);
      const body = (await response.json()) as { partialSuccess: { rejectedSpans: string; errorMessage: string } };
      expect(body.partialSuccess.rejectedSpans).toBe('2');
      expect(body.partialSuccess.errorMessage).toContain('1 request span(s) late');
      expect(await ingestStats(server)).toMatchObject({ recordedOutcomes: 3, late: 1, future: 1 });
      const window = server.registry.window('checkout', 'on');
      // The outcome ten seconds ago sits in the slot of its end time, not of its arrival.
      expect(window?.merged(now - 10_000, now - 9_000).count).toBe(1);
      expect(window?.merged(now, now + 1000).count).toBe(0);
      // In protobuf, from spans the official serializer wrote: ExportTraceServiceResponse{partial_success{rejected_spans: 1, error_message}}.
      const memory = new InMemorySpanExporter();
      const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(memory)] });
      const late = provider.getTracer('shop').startSpan('GET /late', { kind: SpanKind.SERVER, startTime: now - 90_000 }, ROOT_CONTEXT);
      late.end(now - 89_000);
      const answer = await post(server, '/v1/traces', Buffer.from(ProtobufTraceSerializer.serializeRequest(memory.getFinishedSpans()) as Uint8Array), { 'content-type': 'application/x-protobuf' });
      expect(answer.status).toBe(200);
      const bytes = Buffer.from(await answer.arrayBuffer());
      expect([...bytes.subarray(0, 1)]).toEqual([0x0a]);
      expect([...bytes.subarray(2, 4)]).toEqual([0x08, 0x01]);
      expect(bytes.toString('latin1')).toContain('1 request span(s) late');
      await provider.shutdown();
      const text = await scrape(server);
      expect(metric(text, PROMETHEUS_NAMES.ingestRefusedEvents, 'reason="late"')).toBe(2);
      expect(metric(text, PROMETHEUS_NAMES.ingestRefusedEvents, 'reason="future"')).toBe(1);
    } finally {
      await server.close();
    }
  });
});

describe('replay of a recorded OTLP stream', () => {
  it('judges ten minutes of recorded traffic in event time, faster than real time, and finds the breach where it began', async () => {
    const start = Date.parse('2026-11-27T12:00:00Z');
    const breachFrom = start + 180_000;
    // One request line a second, received 5 s after its spans ended (a Collector's batching).
    const lines: string[] = [];
    let id = 0;
    for (let second = 5; second < 600; second++) {
      const receivedMs = start + second * 1000;
      const spans = [];
      for (let i = 0; i < 10; i++) {
        const endMs = receivedMs - 5000 + i * 50;
        const variant = i % 2 === 0 ? 'on' : 'off';
        const failed = variant === 'on' && endMs >= breachFrom && i % 4 === 0;
        spans.push(
          jsonSpan(id++, endMs, {
            status: failed ? { code: 2 } : {},
            events: [{ name: 'feature_flag.evaluation', attributes: [{ key: 'feature_flag.key', value: { stringValue: 'checkout' } }, { key: 'feature_flag.result.variant', value: { stringValue: variant } }] }],
          }),
        );
      }
      lines.push(JSON.stringify({ timeUnixMs: receivedMs, traces: JSON.parse(traces(spans)) as unknown }));
    }
    const clock = new FakeClock(start);
    const guarded = { checkout: { ...FLAGS.checkout, guard: { sustainFor: '30s', minSamples: 30, fastPath: false } } };
    // The recording is 5 s behind: 10 s of allowed lateness and 2 s for evaluation records cover it.
    const lagMs = 12_000;
    const server = await RolloutServer.start({
      store: new MemoryFlagStore({ flags: guarded, clock }),
      port: 0,
      clock,
      slotMs: 1000,
      slotCount: 600,
      autoTick: false,
      dryRun: true,
      ingest: { allowedLatenessMs: 10_000, joinWaitMs: 2_000 },
    });
    const rollbacks: { atMs: number; dryRun: boolean }[] = [];
    server.guardian.addListener({ rollback: (r) => rollbacks.push({ atMs: clock.now(), dryRun: r.dryRun }) });
    try {
      const result = await replayOtlp(lines, { ingest: server.ingest, clock, tick: () => server.guardian.tick(), tickEveryMs: 1000, source: 'recording.jsonl' });
      expect(result).toMatchObject({ requests: 595, spans: 5950, fromMs: start + 5000, toMs: start + 599_000 });
      expect(server.ingest.stats).toMatchObject({ recordedOutcomes: 5950, late: 0, future: 0 });
      expect(rollbacks.length).toBeGreaterThan(0);
      expect(rollbacks[0]?.dryRun).toBe(true);
      // Judged when the breach had lasted sustainFor in event time, once no more of that time
      // could arrive: sustainFor + the guardian's lag (lateness + join wait) + a few slots.
      const detectedAfterMs = (rollbacks[0]?.atMs ?? 0) - breachFrom;
      // (The onset is dated to the earliest second the data support, so up to a few seconds early.)
      expect(detectedAfterMs).toBeGreaterThanOrEqual(30_000 + lagMs - 3_000);
      expect(detectedAfterMs).toBeLessThanOrEqual(30_000 + lagMs + 5_000);
      expect((await server.status()).flags.find((f) => f.flag === 'checkout')).toMatchObject({ rolledBack: false });
    } finally {
      await server.close();
    }
  });

  it('stops at a bad line, naming it', async () => {
    const clock = new FakeClock(Date.parse('2026-11-27T12:00:00Z'));
    const server = await startServer({ clock });
    try {
      const good = JSON.stringify({ timeUnixMs: clock.now(), traces: { resourceSpans: [] } });
      await expect(replayOtlp([good, '{"timeUnixMs": 1}'], { ingest: server.ingest, clock, source: 'rec.jsonl' })).rejects.toThrow('rec.jsonl:2: timeUnixMs 1 goes back in time');
      await expect(replayOtlp([good, JSON.stringify({ timeUnixMs: clock.now() + 1, traces: { resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: 'x' }] }] }] } })], { ingest: server.ingest, clock, source: 'rec.jsonl' })).rejects.toThrow(
        'rec.jsonl:2: resourceSpans[0].scopeSpans[0].spans[0].traceId: expected a trace id of 32 hex digits',
      );
    } finally {
      await server.close();
    }
  });
});

describe('refusals: counted by reason, answered in the request content type, nothing changed', () => {
  let server: RolloutServer;
  beforeEach(async () => {
    server = await startServer({ ingest: { maxBodyBytes: 1024 * 1024, maxConcurrentBodyBytes: 1.5 * 1024 * 1024 } });
  });
  afterEach(async () => {
    await server.close();
  });

  it('415 for other content types and encodings, 400 for malformed protobuf, JSON and fractional timestamps', async () => {
    expect((await post(server, '/v1/traces', 'x', { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await post(server, '/v1/logs', traces([]), { 'content-type': 'application/json', 'content-encoding': 'br' })).status).toBe(415);
    const garbage = await post(server, '/v1/traces', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 1, 2]), { 'content-type': 'application/x-protobuf' });
    expect(garbage.status).toBe(400);
    expect(garbage.headers.get('content-type')).toBe('application/x-protobuf');
    expect(Buffer.from(await garbage.arrayBuffer()).toString('latin1')).toContain('runs past its message');
    const fractional = await post(server, '/v1/traces', traces([jsonSpan(1, Date.now(), { endTimeUnixNano: 1.5e18 + 0.5 })]));
    expect(fractional.status).toBe(400);
    expect(((await fractional.json()) as { message: string }).message).toContain('spans[0].endTimeUnixNano: expected a non-negative integer');
    const fraction = await post(server, '/v1/traces', traces([jsonSpan(1, Date.now(), { startTimeUnixNano: '1700000000000000000.5' })]));
    expect(fraction.status).toBe(400);
    const notGzip = await post(server, '/v1/traces', 'plain', { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect(notGzip.status).toBe(400);
    // One bad span refuses the whole request: the good one beside it is not recorded.
    const mixed = await post(server, '/v1/traces', traces([jsonSpan(1, Date.now()), { traceId: 'nope' }]));
    expect(mixed.status).toBe(400);
    expect(await ingestStats(server)).toMatchObject({ spans: 0, recordedOutcomes: 0, refusedRequests: { unsupported_media_type: 2, malformed: 5 } });
    const text = await scrape(server);
    expect(metric(text, PROMETHEUS_NAMES.ingestRefusedRequests, 'reason="malformed"')).toBe(5);
    expect(metric(text, PROMETHEUS_NAMES.ingestRefusedRequests, 'reason="unsupported_media_type"')).toBe(2);
  });

  it('accepts a 20,000-deep arrayValue without recursing into it, in JSON and protobuf', async () => {
    const nested = `${'{"arrayValue":{"values":['.repeat(20_000)}{"stringValue":"leaf"}${']}}'.repeat(20_000)}`;
    const span = JSON.stringify(jsonSpan(1, Date.now())).replace(/^\{/, `{"attributes":[{"key":"deep","value":${nested}}],`);
    const json = await post(server, '/v1/traces', `{"resourceSpans":[{"scopeSpans":[{"spans":[${span}]}]}]}`);
    expect(json.status).toBe(200);
    // Protobuf: KeyValue{key:"deep", value: AnyValue{array_value: ArrayValue{values: AnyValue{...}}}} nested 20,000 deep,
    // built from the inside out as prefixes (each level: array_value tag, length, values tag, length).
    const leaf = Buffer.from([0x0a, 0x01, 0x78]); // AnyValue{string_value:"x"}
    const prefixes: Buffer[] = [];
    let inner = leaf.length;
    for (let i = 0; i < 20_000; i++) {
      const arrayLength = 1 + varint(inner).length + inner;
      prefixes.push(Buffer.concat([Buffer.from([0x2a]), varint(arrayLength), Buffer.from([0x0a]), varint(inner)]));
      inner = 1 + varint(arrayLength).length + arrayLength;
    }
    const value = Buffer.concat([...prefixes.reverse(), leaf]);
    const keyValue = Buffer.concat([Buffer.from([0x0a, 0x04]), Buffer.from('deep'), Buffer.from([0x12]), varint(value.length), value]);
    const spanBytes = Buffer.concat([Buffer.from([0x0a, 0x10]), Buffer.alloc(16, 1), Buffer.from([0x12, 0x08]), Buffer.alloc(8, 2), Buffer.from([0x4a]), varint(keyValue.length), keyValue]);
    const request = wrap(1, wrap(2, wrap(2, spanBytes)));
    const proto = await post(server, '/v1/traces', request, { 'content-type': 'application/x-protobuf' });
    expect(proto.status).toBe(200);
    expect(await ingestStats(server)).toMatchObject({ spans: 2, requests: 1, recordedOutcomes: 1 });
  });

  it('413 naming the limit for a declared or streamed oversize body and for a gzip bomb; 503 while bodies in flight hold the budget', async () => {
    const big = await post(server, '/v1/traces', Buffer.alloc(1024 * 1024 + 1, 0x20));
    expect(big.status).toBe(413);
    expect(((await big.json()) as { message: string }).message).toContain('limit of 1 MiB');
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20));
    expect(bomb.length).toBeLessThan(1024 * 1024);
    const bombed = await post(server, '/v1/traces', bomb, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect(bombed.status).toBe(413);
    expect(((await bombed.json()) as { message: string }).message).toContain('decompressed from gzip is over the limit of 1 MiB');
    // A body of 1 MiB held open at 900 KiB, then another of 900 KiB: beyond the 1.5 MiB budget, 503 and retry.
    const padded = (bytes: number) => `{"resourceSpans":[]}${' '.repeat(bytes - 20)}`;
    const held = httpRequest(`${server.url}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(1024 * 1024) } });
    const heldAnswer = new Promise<number>((resolve) => held.on('response', (res) => resolve(res.statusCode ?? 0)));
    held.write(padded(900 * 1024));
    await vi.waitFor(() => expect(server.otlpHttp.bodyBytesInFlight).toBe(900 * 1024));
    const busy = await post(server, '/v1/traces', padded(900 * 1024));
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('1');
    held.end(' '.repeat(124 * 1024));
    expect(await heldAnswer).toBe(200);
    expect(server.otlpHttp.bodyBytesInFlight).toBe(0);
    expect((await post(server, '/v1/traces', padded(900 * 1024))).status).toBe(200);
    expect((await ingestStats(server)).refusedRequests.busy).toBe(1);
    expect((await ingestStats(server)).refusedRequests.too_large).toBe(2);
  });

  it('refuses a gRPC message over the limit after gzip decompression, and a malformed one, with their gRPC codes', async () => {
    const client = new GrpcClient(`127.0.0.1:${String(server.grpcPort)}`, grpcCredentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });
    const call = (body: Buffer) =>
      new Promise<number>((resolve) => {
        client.makeUnaryRequest(TRACE_SERVICE_PATH, (b: Buffer) => b, (b: Buffer) => b, body, new Metadata(), (err) => resolve(err?.code ?? 0));
      });
    try {
      // 8 MiB of zeros gzip to a few KiB on the wire: the decompressed size is what is refused.
      expect(await call(Buffer.alloc(8 * 1024 * 1024))).toBe(grpcStatus.RESOURCE_EXHAUSTED);
      expect(await call(Buffer.from([0x0a, 0xff, 0xff, 0x03]))).toBe(grpcStatus.INVALID_ARGUMENT);
      expect(await call(Buffer.alloc(0))).toBe(grpcStatus.OK);
      expect((await ingestStats(server)).refusedRequests.malformed).toBe(1);
    } finally {
      client.close();
    }
  });
});

const TOKEN = 'ingest-and-read-token-0123456789';
const READ_ONLY = 'read-only-token-0123456789abcdef';

describe('authentication and TLS', () => {
  it('refuses unauthenticated OTLP (HTTP and gRPC) and private routes with 401, counted, changing nothing; tokens from the file grant their roles', async () => {
    const server = await startServer({ auth: BearerAuth.parse(`# tokens\n${TOKEN}\n${READ_ONLY} read\n`, 'tokens.txt') });
    try {
      const span = traces([jsonSpan(1, Date.now())]);
      const anonymous = await post(server, '/v1/traces', span);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
      expect(((await anonymous.json()) as { message: string }).message).toContain('OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20TOKEN');
      expect((await post(server, '/v1/traces', span, { 'content-type': 'application/json', authorization: 'Bearer not-the-token-at-all-0000' })).status).toBe(401);
      expect((await post(server, '/v1/logs', span, { 'content-type': 'application/json', authorization: `Bearer ${READ_ONLY}` })).status).toBe(403);
      await expect(sendRequests(new OTLPTraceExporterGrpc({ url: `http://127.0.0.1:${String(server.grpcPort)}` }), 3)).rejects.toThrow();
      expect((await fetch(`${server.url}/api/status`)).status).toBe(401);
      expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      const read = { authorization: `Bearer ${READ_ONLY}` };
      const before = ((await (await fetch(`${server.url}/api/status`, { headers: read })).json()) as { ingest: OtlpIngestStats }).ingest;
      expect(before).toMatchObject({ spans: 0, recordedOutcomes: 0, refusedRequests: { unauthenticated: 4 } });

      const metadata = new Metadata();
      metadata.set('authorization', `Bearer ${TOKEN}`);
      await sendRequests(new OTLPTraceExporterGrpc({ url: `http://127.0.0.1:${String(server.grpcPort)}`, metadata }), 3);
      await sendRequests(new OTLPTraceExporterProto({ url: `${server.url}/v1/traces`, headers: { authorization: `Bearer ${TOKEN}` } }), 2);
      const after = ((await (await fetch(`${server.url}/api/status`, { headers: read })).json()) as { ingest: OtlpIngestStats }).ingest;
      expect(after).toMatchObject({ spans: 10, recordedOutcomes: 5 });
      const text = await (await fetch(`${server.url}/metrics`, { headers: read })).text();
      expect(metric(text, PROMETHEUS_NAMES.ingestRefusedRequests, 'reason="unauthenticated"')).toBe(4);
    } finally {
      await server.close();
    }
  });

  it('without a token listens on 127.0.0.1 only, whatever host it is given, and says so', async () => {
    const lines: string[] = [];
    const server = await startServer({ host: '0.0.0.0', log: (line) => lines.push(line) });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(lines.join('\n')).toContain('no token configured: listening on 127.0.0.1 only, not 0.0.0.0');
    } finally {
      await server.close();
    }
  });

  it('serves HTTP and gRPC over TLS with a certificate and key from files', async () => {
    await withTempDir(async (dir) => {
      const key = join(dir, 'key.pem');
      const cert = join(dir, 'cert.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
      const tls = { key: await readFile(key), cert: await readFile(cert) };
      const server = await startServer({ tls, auth: new BearerAuth([{ token: TOKEN }]) });
      try {
        expect(server.url).toMatch(/^https:/);
        await sendRequests(new OTLPTraceExporterProto({ url: `${server.url}/v1/traces`, headers: { authorization: `Bearer ${TOKEN}` }, httpAgentOptions: { ca: tls.cert } }), 2);
        const metadata = new Metadata();
        metadata.set('authorization', `Bearer ${TOKEN}`);
        await sendRequests(new OTLPTraceExporterGrpc({ url: `https://127.0.0.1:${String(server.grpcPort)}`, credentials: grpcCredentials.createSsl(tls.cert), metadata }), 3);
        const status = await new Promise<string>((resolve, reject) => {
          httpsGet(`${server.url}/api/status`, { ca: tls.cert, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (body += chunk));
            res.on('end', () => resolve(body));
          }).on('error', reject);
        });
        expect((JSON.parse(status) as { ingest: OtlpIngestStats }).ingest).toMatchObject({ spans: 10, recordedOutcomes: 5 });
      } finally {
        await server.close();
      }
    });
  });
});

// Last: the NodeSDK registers global providers, and OpenFeature's SpanHook binds its tracer to
// the global one when first used, so the SpanHook test above must run before this.
describe('the NodeSDK as an application configures it', () => {
  let server: RolloutServer;
  beforeEach(async () => {
    server = await startServer({ auth: new BearerAuth([{ token: TOKEN }]) });
  });
  afterEach(async () => {
    await server.close();
  });

  it('hears the NodeSDK configured only by OTEL_* variables (http/protobuf by default), its token in OTEL_EXPORTER_OTLP_HEADERS, with evaluations from the EventHook as log records', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      OTEL_EXPORTER_OTLP_ENDPOINT: server.url,
      OTEL_EXPORTER_OTLP_HEADERS: `authorization=Bearer%20${TOKEN}`,
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
      OTEL_SERVICE_NAME: 'shop',
      OTEL_METRICS_EXPORTER: 'none',
      OTEL_LOGS_EXPORTER: 'otlp',
    });
    for (const name of ['OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_LOGS_PROTOCOL', 'OTEL_TRACES_EXPORTER']) delete process.env[name];
    const sdk = new NodeSDK({ instrumentations: [] });
    try {
      sdk.start();
      await OpenFeature.setProviderAndWait(new InMemoryProvider({ checkout: { variants: { on: true, off: false }, defaultVariant: 'off', disabled: false } }));
      OpenFeature.addHooks(new EventHook());
      const client = OpenFeature.getClient();
      const tracer = trace.getTracer('shop');
      for (let i = 0; i < 12; i++) {
        await tracer.startActiveSpan('GET /checkout', { kind: SpanKind.SERVER }, ROOT_CONTEXT, async (root) => {
          await client.getBooleanValue('checkout', false, { targetingKey: `user-${i}` });
          root.end();
        });
      }
    } finally {
      OpenFeature.clearHooks();
      await OpenFeature.close();
      await sdk.shutdown();
      // The SDK leaves its globals registered; the tests after this one register their own.
      trace.disable();
      context.disable();
      propagation.disable();
      logs.disable();
      process.env = saved;
    }
    const status = (await (await fetch(`${server.url}/api/status`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { ingest: OtlpIngestStats };
    expect(status.ingest).toMatchObject({ spans: 12, logRecords: 12, requests: 12, recordedOutcomes: 12, unattributable: 0 });
    expect(cohortCount(server, 'off').count).toBe(12);
  });
});

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return Buffer.from(out);
}

function wrap(field: number, inner: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(field << 3) | 2]), varint(inner.length), inner]);
}

