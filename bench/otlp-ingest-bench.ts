// OTLP ingest throughput on one core: spans decoded and attributed per second for protobuf
// export requests of realistic spans (10 attributes and one flag evaluation event each, four
// spans a trace under a SERVER root), serialized by OpenTelemetry's own serializers; beside
// them, JSON.parse alone of the same batch's JSON form and our whole JSON path, in the same
// process and rounds; and OTLP metric data points (spanmetrics' calls and duration for 100
// flags x 2 variants, delta) decoded, mapped and recorded as cohort aggregates.
// `npx tsx bench/otlp-ingest-bench.ts [--json] [--rounds=N]`.
import { ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { CohortRegistry } from '../src/guardian/cohort-registry.js';
import { OtlpIngest } from '../src/ingest/otlp-ingest.js';
import { OtlpJsonDecoder } from '../src/ingest/otlp-json-decoder.js';
import { DecodedBatch, OtlpProtoDecoder } from '../src/ingest/otlp-proto-decoder.js';
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { AggregationTemporality, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { OtlpMetricsIngest } from '../src/ingest/otlp-metrics-ingest.js';
import { OtlpMetricsProtoDecoder } from '../src/ingest/otlp-metrics-proto-decoder.js';
import { DecodedMetrics } from '../src/ingest/otlp-metric-points.js';
import { type Group, type Summary, fail, roundRatios, roundsOption, runRounds } from './measure.js';

const json = process.argv.includes('--json');
const ROUNDS = roundsOption(process.argv, 11);
const WARMUP_ROUNDS = 3;
const TRACES_PER_BATCH = 128;
const SPANS_PER_TRACE = 4;
const SPANS_PER_BATCH = TRACES_PER_BATCH * SPANS_PER_TRACE;
const BATCHES_PER_ROUND = 20;
const TARGET_SPANS_PER_S = 150_000;
const TARGET_RATIO = 3;
const END_MS = Date.parse('2026-11-27T12:00:00Z');

// --- one export request, as the official exporters would send it -------------------------------

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = provider.getTracer('shop', '1.4.2');
const attributes = (i: number) => ({
  'http.request.method': 'GET',
  'url.path': `/checkout/${i}`,
  'url.scheme': 'https',
  'server.address': 'shop.example.com',
  'server.port': 443,
  'user_agent.original': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36',
  'client.address': `10.0.${i % 256}.${(i * 7) % 256}`,
  'network.protocol.version': '1.1',
  'http.route': '/checkout/:id',
  'http.response.status_code': i % 50 === 0 ? 503 : 200,
});
for (let t = 0; t < TRACES_PER_BATCH; t++) {
  const start = END_MS - 200;
  const root = tracer.startSpan('GET /checkout/:id', { kind: SpanKind.SERVER, startTime: start, attributes: attributes(t) }, ROOT_CONTEXT);
  for (let c = 1; c < SPANS_PER_TRACE; c++) {
    const child = tracer.startSpan(`child ${c}`, { kind: SpanKind.CLIENT, startTime: start + c, attributes: attributes(t + c) }, trace.setSpan(ROOT_CONTEXT, root));
    child.addEvent('feature_flag.evaluation', { 'feature_flag.key': `flag-${c}`, 'feature_flag.result.variant': t % 2 === 0 ? 'on' : 'off', 'feature_flag.provider.name': 'rollout-guardian' }, start + c);
    child.end(start + c + 50);
  }
  root.addEvent('feature_flag.evaluation', { 'feature_flag.key': 'checkout', 'feature_flag.result.variant': t % 2 === 0 ? 'on' : 'off', 'feature_flag.provider.name': 'rollout-guardian' }, start);
  root.end(END_MS - (t % 100));
}
const spans = exporter.getFinishedSpans();
if (spans.length !== SPANS_PER_BATCH) fail(`made ${spans.length} spans, expected ${SPANS_PER_BATCH}`);
const protobuf = Buffer.from(ProtobufTraceSerializer.serializeRequest(spans) as Uint8Array);
const jsonText = Buffer.from(JsonTraceSerializer.serializeRequest(spans) as Uint8Array).toString('utf8');

// --- the contenders -------------------------------------------------------------------------

// --- one metrics export request, as a Collector's spanmetrics connector would send it ---------

const FLAGS_IN_METRICS = 100;
class HandReader extends MetricReader {
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}
const metricReader = new HandReader({ aggregationTemporalitySelector: () => AggregationTemporality.DELTA });
const meterProvider = new MeterProvider({ readers: [metricReader] });
const spanMeter = meterProvider.getMeter('spanmetricsconnector');
const callsCounter = spanMeter.createCounter('traces.span.metrics.calls', { unit: '{call}' });
const durationHistogram = spanMeter.createHistogram('traces.span.metrics.duration', { unit: 'ms', advice: { explicitBucketBoundaries: [2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000] } });
for (let f = 0; f < FLAGS_IN_METRICS; f++) {
  for (const variant of ['on', 'off']) {
    const dims = { 'service.name': 'shop', 'span.name': 'GET /checkout/:id', 'span.kind': 'SPAN_KIND_SERVER', 'feature_flag.key': `flag-${f}`, 'feature_flag.result.variant': variant };
    callsCounter.add(120, { ...dims, 'status.code': 'STATUS_CODE_UNSET' });
    callsCounter.add(2, { ...dims, 'status.code': 'STATUS_CODE_ERROR' });
    for (let i = 0; i < 20; i++) durationHistogram.record(5 + i * 37, { ...dims, 'status.code': 'STATUS_CODE_UNSET' });
  }
}
const collected = await metricReader.collect();
let metricPointCount = 0;
for (const sm of collected.resourceMetrics.scopeMetrics) {
  for (const m of sm.metrics) {
    for (const point of m.dataPoints) {
      (point as { startTime: [number, number] }).startTime = [Math.floor((END_MS - 5000) / 1000), 0];
      (point as { endTime: [number, number] }).endTime = [Math.floor(END_MS / 1000), 0];
      metricPointCount++;
    }
  }
}
const metricsProtobuf = Buffer.from(ProtobufMetricsSerializer.serializeRequest(collected.resourceMetrics) as Uint8Array);
await meterProvider.shutdown();

const clock = { now: () => END_MS };
const registry = new CohortRegistry({ slotMs: 5000, slotCount: 72 });
const ingest = new OtlpIngest({ sink: registry, clock });
const proto = new OtlpProtoDecoder();
const jsonDecoder = new OtlpJsonDecoder();
const batch = new DecodedBatch();
const metricsIngest = new OtlpMetricsIngest({ sink: registry, clock });
const metricsDecoder = new OtlpMetricsProtoDecoder();
const decodeMetrics = () => {
  const decoded = new DecodedMetrics();
  metricsDecoder.decode(metricsProtobuf, metricsIngest.wanted, decoded);
  return decoded;
};

const O = {
  protoFull: 'protobuf: decode + attribute + record',
  protoDecode: 'protobuf: decode only',
  jsonParse: 'JSON.parse of the JSON form only',
  jsonFull: 'JSON: parse + walk + attribute + record',
} as const;

const perBatch = (work: () => number) => (iterations: number): number => {
  let spansSeen = 0;
  for (let i = 0; i < iterations / SPANS_PER_BATCH; i++) spansSeen += work();
  return spansSeen;
};

const group: Group = {
  name: 'ingest',
  iterations: SPANS_PER_BATCH * BATCHES_PER_ROUND,
  contenders: [
    {
      name: O.protoFull,
      kind: 'sync',
      run: perBatch(() => {
        batch.reset();
        proto.decodeTraces(protobuf, batch);
        ingest.ingestSpans(batch);
        return batch.spanCount;
      }),
    },
    {
      name: O.protoDecode,
      kind: 'sync',
      run: perBatch(() => {
        batch.reset();
        proto.decodeTraces(protobuf, batch);
        return batch.spanCount;
      }),
    },
    {
      name: O.jsonParse,
      kind: 'sync',
      run: perBatch(() => {
        const parsed = JSON.parse(jsonText) as { resourceSpans: { scopeSpans: { spans: unknown[] }[] }[] };
        let n = 0;
        for (const rs of parsed.resourceSpans) for (const ss of rs.scopeSpans) n += ss.spans.length;
        return n;
      }),
    },
    {
      name: O.jsonFull,
      kind: 'sync',
      run: perBatch(() => {
        batch.reset();
        jsonDecoder.decodeTraces(jsonText, batch);
        ingest.ingestSpans(batch);
        return batch.spanCount;
      }),
    },
  ],
  check: (name, iterations, checksum) => {
    if (checksum !== iterations) fail(`${name}: saw ${checksum} spans, expected ${iterations}`);
  },
};

const M = {
  full: 'metrics protobuf: decode + map + record',
  decode: 'metrics protobuf: decode only',
} as const;
const perMetricsBatch = (work: () => number) => (iterations: number): number => {
  let seen = 0;
  for (let i = 0; i < iterations / metricPointCount; i++) seen += work();
  return seen;
};
const metricsGroup: Group = {
  name: 'metrics',
  iterations: metricPointCount * 50,
  contenders: [
    {
      name: M.full,
      kind: 'sync',
      run: perMetricsBatch(() => {
        const decoded = decodeMetrics();
        metricsIngest.ingest(decoded);
        return decoded.points.length;
      }),
    },
    { name: M.decode, kind: 'sync', run: perMetricsBatch(() => decodeMetrics().points.length) },
  ],
  check: (name, iterations, checksum) => {
    if (checksum !== iterations) fail(`${name}: saw ${checksum} data points, expected ${iterations}`);
  },
};

if (!json) process.stdout.write(`rollout-guardian OTLP ingest bench: node ${process.version}, ${ROUNDS} rounds (+${WARMUP_ROUNDS} warm-up), batches of ${SPANS_PER_BATCH} spans (protobuf ${protobuf.length} bytes, JSON ${jsonText.length} bytes)\n`);
const started = process.hrtime.bigint();
const stats = await runRounds([group, metricsGroup], { rounds: ROUNDS, warmupRounds: WARMUP_ROUNDS });
const elapsedS = Number(process.hrtime.bigint() - started) / 1e9;
const get = (name: string): Summary => stats.get(name) as Summary;
const stat = ingest.stats;
if (stat.late + stat.future !== 0) fail(`${stat.late} late and ${stat.future} future spans: the bench clock is off`);
if (stat.recordedOutcomes === 0) fail('nothing was recorded: attribution is not being measured');
const metricStat = metricsIngest.stats;
if (metricStat.recordedPoints === 0 || metricStat.refusedPoints.late + metricStat.refusedPoints.future + metricStat.refusedPoints.invalid > 0) fail(`metric points: ${JSON.stringify(metricStat)}: the mapping or the bench clock is off`);

const perSecond = (ns: number) => Math.round(1e9 / ns);
const protoFull = perSecond(get(O.protoFull).median);
const vsParse = roundRatios(get(O.jsonParse), get(O.protoFull)).median;
const vsJsonPath = roundRatios(get(O.jsonFull), get(O.protoFull)).median;
const figures = {
  spansPerSecond: Object.fromEntries(Object.values(O).map((name) => [name, perSecond(get(name).median)])),
  nsPerSpan: Object.fromEntries(Object.values(O).map((name) => [name, Math.round(get(name).median * 10) / 10])),
  protobufVsJsonParse: Math.round(vsParse * 100) / 100,
  protobufVsJsonPath: Math.round(vsJsonPath * 100) / 100,
  targetSpansPerSecondMet: protoFull >= TARGET_SPANS_PER_S,
  targetRatioMet: vsParse >= TARGET_RATIO,
  protobufBytesPerSpan: Math.round(protobuf.length / SPANS_PER_BATCH),
  jsonBytesPerSpan: Math.round(jsonText.length / SPANS_PER_BATCH),
  metricDataPointsPerSecond: Object.fromEntries(Object.values(M).map((name) => [name, perSecond(get(name).median)])),
  metricPointsPerRequest: metricPointCount,
  metricsProtobufBytesPerPoint: Math.round(metricsProtobuf.length / metricPointCount),
  rounds: ROUNDS,
  elapsedS: Math.round(elapsedS * 10) / 10,
  node: process.version,
};
if (json) {
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} else {
  const lines = [''];
  lines.push(`${'spans per second on one core (median of rounds)'.padEnd(48)}${'spans/s'.padStart(12)}${'ns/span'.padStart(10)}${'min'.padStart(10)}${'max'.padStart(10)}`);
  for (const name of Object.values(O)) {
    const s = get(name);
    lines.push(`${`  ${name}`.padEnd(48)}${String(perSecond(s.median)).padStart(12)}${s.median.toFixed(1).padStart(10)}${s.min.toFixed(1).padStart(10)}${s.max.toFixed(1).padStart(10)}`);
  }
  lines.push(`${'metric data points per second on one core'.padEnd(48)}${'points/s'.padStart(12)}${'ns/point'.padStart(10)}${'min'.padStart(10)}${'max'.padStart(10)}`);
  for (const name of Object.values(M)) {
    const s = get(name);
    lines.push(`${`  ${name}`.padEnd(48)}${String(perSecond(s.median)).padStart(12)}${s.median.toFixed(1).padStart(10)}${s.min.toFixed(1).padStart(10)}${s.max.toFixed(1).padStart(10)}`);
  }
  lines.push(`  (${metricPointCount} points a request: spanmetrics calls and duration for ${FLAGS_IN_METRICS} flags x 2 variants, delta, ${Math.round(metricsProtobuf.length / metricPointCount)} bytes a point)`);
  lines.push('');
  lines.push(`protobuf (decode + attribute) vs JSON.parse alone: ${vsParse.toFixed(2)}x faster (target >= ${TARGET_RATIO}x: ${vsParse >= TARGET_RATIO ? 'met' : 'NOT met'})`);
  lines.push(`protobuf vs our whole JSON path: ${vsJsonPath.toFixed(2)}x faster`);
  lines.push(`protobuf decode + attribute: ${protoFull} spans/s (target >= ${TARGET_SPANS_PER_S}: ${protoFull >= TARGET_SPANS_PER_S ? 'met' : 'NOT met'})`);
  lines.push(`${elapsedS.toFixed(1)} s of timed rounds; node ${process.version}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}
await provider.shutdown();
