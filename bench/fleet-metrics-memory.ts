// Memory `serve` needs for OTLP metrics at fleet scale (issue #15): 100 senders (Collectors with
// the spanmetrics connector, each its own resource) export `traces.span.metrics.calls` (a
// monotonic Sum split by status.code UNSET / ERROR, span.kind SERVER) and
// `traces.span.metrics.duration` (explicit-bucket histogram in ms, 16 bounds, same split) for
// 1,000 flags x 2 variants every 5 s, 4 exports, so 800,000 streams with 4 points each. Each
// request goes the HTTP route's way: protobuf bytes from OpenTelemetry's own
// ProtobufMetricsSerializer, OtlpMetricsProtoDecoder, OtlpMetricsIngest (default mapping) into
// a CohortRegistry as serve builds it (5 s slots, 72 of them) but with maxCohorts 2,000, as
// bench/fleet-bench.ts, so every cohort is held. Heap used after a full GC, before and after,
// is the registry's windows plus the cumulative-to-delta stream state; measured for delta,
// cumulative with the default stream bound (100,000) and cumulative with the bound raised to
// hold every stream. `node --expose-gc --import tsx bench/fleet-metrics-memory.ts [--json]`
// (it also turns GC on itself, as bench/fleet-bench.ts does).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { HrTime } from '@opentelemetry/api';
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, type MetricData, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { CohortRegistry } from '../src/guardian/cohort-registry.js';
import type { AggregateSink, CohortAggregate } from '../src/guardian/cohort-aggregate.js';
import { DEFAULT_METRICS_MAPPING } from '../src/ingest/metrics-mapping.js';
import { OtlpMetricsIngest } from '../src/ingest/otlp-metrics-ingest.js';
import { DecodedMetrics } from '../src/ingest/otlp-metric-points.js';
import { OtlpMetricsProtoDecoder } from '../src/ingest/otlp-metrics-proto-decoder.js';
import { fail } from './measure.js';

const json = process.argv.includes('--json');
const arg = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const SENDERS = arg('senders', 100);
const FLAGS = arg('flags', 1_000);
const VARIANTS = ['on', 'off'] as const;
const EXPORTS = arg('exports', 4);
const INTERVAL_MS = 5_000;
const SLOT_MS = 5_000;
const START = Date.parse('2026-11-27T00:00:00Z');
const BOUNDS = [2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000];
/** Per stream and interval: calls UNSET and ERROR, and how those calls fall into the 17 buckets. */
const OK_CALLS = 100;
const ERROR_CALLS = 2;
const OK_BUCKETS = [0, 0, 3, 7, 10, 30, 20, 12, 8, 5, 3, 1, 1, 0, 0, 0, 0];
const ERROR_BUCKETS = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0];
const STREAMS_PER_SENDER = FLAGS * VARIANTS.length * 2 /* status codes */ * 2; /* calls + duration */
const ALL_STREAMS = SENDERS * STREAMS_PER_SENDER;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

const hr = (ms: number): HrTime => [Math.floor(ms / 1000), (ms % 1000) * 1e6];

/** One sender's k-th export (k from 1): cumulative values are k intervals' worth since START. */
function exportRequest(sender: number, k: number, temporality: AggregationTemporality): Buffer {
  const cumulative = temporality === AggregationTemporality.CUMULATIVE;
  const times = cumulative ? k : 1;
  const startTime = hr(cumulative ? START : START + (k - 1) * INTERVAL_MS);
  const endTime = hr(START + k * INTERVAL_MS);
  const calls: MetricData['dataPoints'] = [];
  const durations: MetricData['dataPoints'] = [];
  for (let f = 0; f < FLAGS; f++) {
    for (const variant of VARIANTS) {
      for (const [status, n, buckets] of [['STATUS_CODE_UNSET', OK_CALLS, OK_BUCKETS], ['STATUS_CODE_ERROR', ERROR_CALLS, ERROR_BUCKETS]] as const) {
        const attributes = { 'service.name': 'shop', 'span.name': 'GET /checkout/:id', 'span.kind': 'SPAN_KIND_SERVER', 'status.code': status, 'feature_flag.key': `flag-${f}`, 'feature_flag.result.variant': variant };
        (calls as unknown[]).push({ startTime, endTime, attributes, value: n * times });
        (durations as unknown[]).push({ startTime, endTime, attributes, value: { buckets: { boundaries: BOUNDS, counts: buckets.map((c) => c * times) }, count: n * times, sum: 150 * n * times, min: 3, max: 9000 } });
      }
    }
  }
  const resourceMetrics: ResourceMetrics = {
    resource: resourceFromAttributes({ 'service.name': 'otelcol-contrib', 'service.instance.id': `collector-${sender}` }),
    scopeMetrics: [
      {
        scope: { name: 'spanmetricsconnector' },
        metrics: [
          { descriptor: { name: 'traces.span.metrics.calls', description: '', unit: '{call}', valueType: 1 }, aggregationTemporality: temporality, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints: calls } as MetricData,
          { descriptor: { name: 'traces.span.metrics.duration', description: '', unit: 'ms', valueType: 1 }, aggregationTemporality: temporality, dataPointType: DataPointType.HISTOGRAM, dataPoints: durations } as MetricData,
        ],
      },
    ],
  };
  return Buffer.from(ProtobufMetricsSerializer.serializeRequest(resourceMetrics) as Uint8Array);
}

interface Row {
  name: string;
  maxStreams: number;
  streamsHeld: number;
  evictedStreams: number;
  cohorts: number;
  heapBytes: number;
  bytesPerStream: number | undefined;
  requestsCounted: number;
  requestsSent: number;
  points: number;
  seconds: number;
}

function run(name: string, temporality: AggregationTemporality, maxStreams: number | undefined): Row {
  const started = process.hrtime.bigint();
  const before = heapAfterGc();
  const clock = { ms: START, now(): number { return this.ms; } };
  const registry = new CohortRegistry({ slotMs: SLOT_MS, slotCount: 72, maxCohorts: FLAGS * VARIANTS.length });
  let requestsCounted = 0;
  const sink: AggregateSink = {
    recordAggregate(aggregate: CohortAggregate) {
      const refusal = registry.recordAggregate(aggregate);
      if (refusal === undefined) requestsCounted += aggregate.requests;
      return refusal;
    },
  };
  const ingest = new OtlpMetricsIngest({ sink, clock, mapping: DEFAULT_METRICS_MAPPING, ...(maxStreams === undefined ? {} : { maxStreams }) });
  const decoder = new OtlpMetricsProtoDecoder();
  let requestsSent = 0;
  let points = 0;
  for (let k = 1; k <= EXPORTS; k++) {
    clock.ms = START + k * INTERVAL_MS + 200; // the exports of one interval arrive within 200 ms
    for (let s = 0; s < SENDERS; s++) {
      const decoded = new DecodedMetrics();
      decoder.decode(exportRequest(s, k, temporality), ingest.wanted, decoded);
      points += decoded.points.length;
      ingest.ingest(decoded);
      requestsSent += FLAGS * VARIANTS.length * (OK_CALLS + ERROR_CALLS);
    }
  }
  const after = heapAfterGc();
  const stats = ingest.stats;
  const refused = Object.values(stats.refusedPoints).reduce((a, b) => a + b, 0);
  if (refused > 0 || stats.unattributedPoints > 0) fail(`${name}: ${JSON.stringify(stats)}`);
  let cohorts = 0;
  for (const _ of registry.cohorts()) cohorts++;
  const streamsHeld = stats.streams.streams;
  const heapBytes = after - before;
  return {
    name,
    maxStreams: maxStreams ?? 100_000,
    streamsHeld,
    evictedStreams: stats.streams.evictedStreams,
    cohorts,
    heapBytes,
    bytesPerStream: undefined,
    requestsCounted,
    requestsSent,
    points,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
}

const rows = [
  run('delta', AggregationTemporality.DELTA, undefined),
  run('cumulative (default bound)', AggregationTemporality.CUMULATIVE, undefined),
  run('cumulative (bound = all streams)', AggregationTemporality.CUMULATIVE, ALL_STREAMS),
];
// The delta run holds the same cohort windows and no streams: the rest is the stream state.
const windowsBytes = (rows[0] as Row).heapBytes;
for (const r of rows) if (r.streamsHeld > 0) r.bytesPerStream = Math.round((r.heapBytes - windowsBytes) / r.streamsHeld);

const mib = (b: number) => (b / 2 ** 20).toFixed(1);
if (json) {
  process.stdout.write(`${JSON.stringify({ senders: SENDERS, flags: FLAGS, exports: EXPORTS, streams: ALL_STREAMS, rows, node: process.version })}\n`);
} else {
  const lines = [`rollout-guardian fleet metrics memory: node ${process.version}, ${SENDERS} senders x ${FLAGS} flags x ${VARIANTS.length} variants, spanmetrics calls + duration split by status code (${ALL_STREAMS.toLocaleString('en')} streams), ${EXPORTS} exports 5 s apart`, ''];
  lines.push(`${'temporality'.padEnd(34)}${'streams held'.padStart(14)}${'evicted'.padStart(10)}${'cohorts'.padStart(9)}${'heap MiB'.padStart(10)}${'B/stream'.padStart(10)}${'requests counted / sent'.padStart(34)}${'s'.padStart(7)}`);
  for (const r of rows) {
    const ratio = `${r.requestsCounted.toLocaleString('en')} / ${r.requestsSent.toLocaleString('en')} (${((100 * r.requestsCounted) / r.requestsSent).toFixed(1)}%)`;
    lines.push(`${r.name.padEnd(34)}${r.streamsHeld.toLocaleString('en').padStart(14)}${r.evictedStreams.toLocaleString('en').padStart(10)}${String(r.cohorts).padStart(9)}${mib(r.heapBytes).padStart(10)}${(r.bytesPerStream === undefined ? '-' : String(r.bytesPerStream)).padStart(10)}${ratio.padStart(34)}${r.seconds.toFixed(1).padStart(7)}`);
  }
  lines.push('', "heap: used after a full GC, after minus before (cohort windows + cumulative-to-delta streams); B/stream: that heap less the delta run's (the 2,000 cohorts' windows), over the streams held");
  process.stdout.write(`${lines.join('\n')}\n`);
}
