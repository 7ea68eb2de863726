// Evidence for the choice of latency sketch and for the cost of attribution: QuantileSketch
// at 1% and 2% against HdrHistogram (3 significant digits, 1 us..60 s) on error, add, merge
// and memory; GuardianSpanProcessor.onEnd per span on spans from a real tracer; and the
// memory of one cohort at 10,000 spans/s. `npx tsx bench/sketch-bench.ts [--json] [--rounds=N]`.
import { ROOT_CONTEXT, SpanKind, context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { type Histogram, build } from 'hdr-histogram-js';
import { CohortRegistry } from '../src/guardian/cohort-registry.js';
import { CohortWindow } from '../src/guardian/cohort-window.js';
import { GuardianSpanProcessor } from '../src/guardian/guardian-span-processor.js';
import { QuantileSketch } from '../src/guardian/quantile-sketch.js';
import { markActiveSpan } from '../src/provider/span-attribution.js';
import { type Random, lognormal, mulberry32, pareto } from '../test/helpers/seeded-random.js';
import { type Group, type Summary, fail, roundsOption, runRounds } from './measure.js';

const json = process.argv.includes('--json');
const ROUNDS = roundsOption(process.argv, 15);
const WARMUP_ROUNDS = 3;
const ACCURACY_SEEDS = 10;
const ACCURACY_SIZE = 100_000;
const ADD_ITERATIONS = 200_000;
const MERGE_ITERATIONS = 200;
/** One 5-second slot at 10,000 spans/s. */
const SLOT_VALUES = 50_000;
const SPAN_COUNT = 10_000;
const TARGET_CHILD_NS = 150;
const HDR_LOWEST_US = 1;
const HDR_HIGHEST_US = 60_000_000;


// --- the contenders, behind one face --------------------------------------------------------

interface Recorder {
  add(valueMs: number): void;
  quantile(q: number): number;
  merge(other: Recorder): void;
  bytes(): number;
  count(): number;
}

function sketchRecorder(relativeAccuracy: number): Recorder {
  const sketch = new QuantileSketch({ relativeAccuracy });
  const recorder = {
    sketch,
    add: (v: number) => sketch.add(v),
    quantile: (q: number) => sketch.quantile(q) ?? Number.NaN,
    merge: (other: Recorder) => sketch.merge((other as typeof recorder).sketch),
    bytes: () => sketch.byteSize(),
    count: () => sketch.count,
  };
  return recorder;
}

function hdrRecorder(): Recorder {
  const histogram: Histogram = build({
    bitBucketSize: 32,
    autoResize: false,
    lowestDiscernibleValue: HDR_LOWEST_US,
    highestTrackableValue: HDR_HIGHEST_US,
    numberOfSignificantValueDigits: 3,
  });
  const recorder = {
    histogram,
    // HdrHistogram counts integers: microseconds, as its users record latencies.
    add: (v: number) => histogram.recordValue(Math.round(v * 1000)),
    quantile: (q: number) => histogram.getValueAtPercentile(q * 100) / 1000,
    merge: (other: Recorder) => histogram.add((other as typeof recorder).histogram),
    bytes: () => histogram.estimatedFootprintInBytes,
    count: () => histogram.totalCount,
  };
  return recorder;
}

const CONTENDERS = {
  sketch1: { name: 'QuantileSketch 1%', make: () => sketchRecorder(0.01) },
  sketch2: { name: 'QuantileSketch 2%', make: () => sketchRecorder(0.02) },
  hdr: { name: 'HdrHistogram 3 digits', make: hdrRecorder },
} as const;
type ContenderKey = keyof typeof CONTENDERS;
const KEYS = Object.keys(CONTENDERS) as ContenderKey[];

// --- data: seeded, clipped to the range HdrHistogram was built for --------------------------

const clip = (v: number): number => Math.min(Math.max(v, HDR_LOWEST_US / 1000), HDR_HIGHEST_US / 1000);
const DATA = {
  lognormal: { name: 'lognormal (median 80 ms, sigma 1)', draw: (r: Random) => clip(lognormal(r, 80, 1)) },
  pareto: { name: 'pareto (10 ms, alpha 1.1)', draw: (r: Random) => clip(pareto(r, 10, 1.1)) },
} as const;
type DataKey = keyof typeof DATA;

function values(data: DataKey, count: number, seed: number): Float64Array {
  const random = mulberry32(seed);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = DATA[data].draw(random);
  return out;
}

/** Relative error against the nearer of the two order statistics the rank q * (n - 1) falls between. */
function relativeError(estimate: number, sorted: Float64Array, q: number): number {
  const h = q * (sorted.length - 1);
  const lower = sorted[Math.floor(h)] as number;
  const upper = sorted[Math.ceil(h)] as number;
  return Math.min(Math.abs(estimate - lower) / lower, Math.abs(estimate - upper) / upper);
}

// --- accuracy and memory (not timed) --------------------------------------------------------

type PerContender<T> = Record<ContenderKey, T>;
const accuracy = {} as Record<DataKey, PerContender<{ p95: number; p99: number }>>;
for (const data of Object.keys(DATA) as DataKey[]) {
  const worst = Object.fromEntries(KEYS.map((k) => [k, { p95: 0, p99: 0 }])) as PerContender<{ p95: number; p99: number }>;
  for (let seed = 1; seed <= ACCURACY_SEEDS; seed++) {
    const xs = values(data, ACCURACY_SIZE, seed);
    const sorted = Float64Array.from(xs).sort();
    for (const key of KEYS) {
      const recorder = CONTENDERS[key].make();
      for (const x of xs) recorder.add(x);
      worst[key].p95 = Math.max(worst[key].p95, relativeError(recorder.quantile(0.95), sorted, 0.95));
      worst[key].p99 = Math.max(worst[key].p99, relativeError(recorder.quantile(0.99), sorted, 0.99));
    }
  }
  accuracy[data] = worst;
}

const memory = {} as Record<DataKey, Record<'n10k' | 'n1m', PerContender<number>>>;
for (const data of Object.keys(DATA) as DataKey[]) {
  const row = { n10k: {}, n1m: {} } as Record<'n10k' | 'n1m', PerContender<number>>;
  for (const [size, label] of [
    [10_000, 'n10k'],
    [1_000_000, 'n1m'],
  ] as const) {
    const xs = values(data, size, 99);
    for (const key of KEYS) {
      const recorder = CONTENDERS[key].make();
      for (const x of xs) recorder.add(x);
      row[label][key] = recorder.bytes();
    }
  }
  memory[data] = row;
}

/** Bytes of one cohort window once its ring has filled at 10,000 spans/s (slotMs 5000, slotCount 72). */
function cohortBytes(sigma: number, relativeAccuracy: number): number {
  const window = new CohortWindow({ slotMs: 5000, slotCount: 72, relativeAccuracy });
  const random = mulberry32(7);
  const start = Date.parse('2026-11-27T12:00:00Z');
  for (let i = 0; i < 72 * SLOT_VALUES; i++) window.record(lognormal(random, 80, sigma), random() < 0.01, start + i / 10);
  return window.byteSize();
}
const cohort = {
  sigma05: { a1: cohortBytes(0.5, 0.01), a2: cohortBytes(0.5, 0.02) },
  sigma1: { a1: cohortBytes(1, 0.01), a2: cohortBytes(1, 0.02) },
};

// --- add and merge (timed) ------------------------------------------------------------------

const ADD_MASK = (1 << 16) - 1;
const addValues = values('lognormal', ADD_MASK + 1, 1234);
const adders = Object.fromEntries(
  KEYS.map((key) => {
    const recorder = CONTENDERS[key].make();
    // Warm to a steady state first: the store has grown, adds no longer allocate.
    for (const x of addValues) recorder.add(x);
    return [key, recorder];
  }),
) as PerContender<Recorder>;

function addRun(key: ContenderKey) {
  const recorder = adders[key];
  return (iterations: number): number => {
    for (let i = 0; i < iterations; i++) recorder.add(addValues[i & ADD_MASK] as number);
    return recorder.count();
  };
}

// One slot of a 10,000 spans/s service (lognormal, sigma 0.5) merged into an accumulator, as
// a window merge does once per slot.
const slotRandom = mulberry32(4321);
const slotValues = Float64Array.from({ length: SLOT_VALUES }, () => lognormal(slotRandom, 80, 0.5));
const slots = Object.fromEntries(
  KEYS.map((key) => {
    const recorder = CONTENDERS[key].make();
    for (const x of slotValues) recorder.add(x);
    return [key, recorder];
  }),
) as PerContender<Recorder>;

function mergeRun(key: ContenderKey) {
  return (iterations: number): number => {
    const target = CONTENDERS[key].make();
    for (let i = 0; i < iterations; i++) target.merge(slots[key]);
    return target.count();
  };
}

const addGroup: Group = {
  name: 'add',
  iterations: ADD_ITERATIONS,
  contenders: KEYS.map((key) => ({ name: `add ${key}`, kind: 'sync' as const, run: addRun(key) })),
};
const mergeGroup: Group = {
  name: 'merge',
  iterations: MERGE_ITERATIONS,
  contenders: KEYS.map((key) => ({ name: `merge ${key}`, kind: 'sync' as const, run: mergeRun(key) })),
  check: (name, iterations, checksum) => {
    if (checksum !== iterations * SLOT_VALUES) fail(`${name}: merged ${checksum} values, expected ${iterations * SLOT_VALUES}`);
  },
};

// --- GuardianSpanProcessor.onEnd on real spans (timed) ---------------------------------------

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
// Spans are made and ended by a tracer with no processor, so only the timed loop calls onEnd.
const tracer = new BasicTracerProvider().getTracer('sketch-bench');

function childSpans(count: number): ReadableSpan[] {
  const spans: ReadableSpan[] = [];
  for (let i = 0; i < count; i++) {
    const root = tracer.startSpan('GET /checkout', { kind: SpanKind.SERVER });
    const child = tracer.startSpan('SELECT orders', { kind: SpanKind.CLIENT, attributes: { 'db.system.name': 'postgresql', 'db.operation.name': 'SELECT', 'db.collection.name': 'orders' } }, trace.setSpan(ROOT_CONTEXT, root));
    child.end();
    spans.push(child as unknown as ReadableSpan);
  }
  return spans;
}

function rootSpansWithOneExposure(count: number): ReadableSpan[] {
  const spans: ReadableSpan[] = [];
  for (let i = 0; i < count; i++) {
    const root = tracer.startSpan('GET /checkout', {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': 'GET', 'url.path': '/checkout', 'http.route': '/checkout' },
    });
    // The provider marks the span exactly as it would in an application.
    context.with(trace.setSpan(ROOT_CONTEXT, root), () => markActiveSpan('new-checkout', i % 10 === 0 ? 'on' : 'off', 'SPLIT'));
    root.setAttribute('http.response.status_code', i % 100 === 0 ? 503 : 200);
    root.end();
    spans.push(root as unknown as ReadableSpan);
  }
  return spans;
}

/** [child, root] pairs where the evaluation happened in the child: the exposure waits for the root. */
function tracesWithChildExposure(count: number): [ReadableSpan, ReadableSpan][] {
  const traces: [ReadableSpan, ReadableSpan][] = [];
  for (let i = 0; i < count; i++) {
    const root = tracer.startSpan('GET /checkout', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'url.path': '/checkout' } });
    const parent = trace.setSpan(ROOT_CONTEXT, root);
    const child = tracer.startSpan('render checkout', {}, parent);
    context.with(trace.setSpan(parent, child), () => markActiveSpan('new-checkout', i % 10 === 0 ? 'on' : 'off', 'SPLIT'));
    child.end();
    root.setAttribute('http.response.status_code', 200);
    root.end();
    traces.push([child as unknown as ReadableSpan, root as unknown as ReadableSpan]);
  }
  return traces;
}

const children = childSpans(SPAN_COUNT);
const roots = rootSpansWithOneExposure(SPAN_COUNT);
const childProcessor = new GuardianSpanProcessor({ registry: new CohortRegistry({ slotMs: 5000, slotCount: 72 }) });
const rootProcessor = new GuardianSpanProcessor({ registry: new CohortRegistry({ slotMs: 5000, slotCount: 72 }) });
const traces = tracesWithChildExposure(SPAN_COUNT);
const traceProcessor = new GuardianSpanProcessor({ registry: new CohortRegistry({ slotMs: 5000, slotCount: 72 }) });

function onEndRun(processor: GuardianSpanProcessor, spans: readonly ReadableSpan[]) {
  return (iterations: number): number => {
    const before = processor.stats.recordedOutcomes;
    for (let i = 0; i < iterations; i++) processor.onEnd(spans[i % SPAN_COUNT] as ReadableSpan);
    return processor.stats.recordedOutcomes - before;
  };
}

function traceRun(iterations: number): number {
  const before = traceProcessor.stats.recordedOutcomes;
  for (let i = 0; i < iterations; i++) {
    const pair = traces[i % SPAN_COUNT] as [ReadableSpan, ReadableSpan];
    traceProcessor.onEnd(pair[0]);
    traceProcessor.onEnd(pair[1]);
  }
  return traceProcessor.stats.recordedOutcomes - before;
}

const O = {
  child: 'onEnd: child span, no exposure',
  root: 'onEnd: local root, one exposure',
  trace: 'onEnd x2: exposed child, then its root',
} as const;
const onEndGroup: Group = {
  name: 'onEnd',
  iterations: SPAN_COUNT,
  contenders: [
    { name: O.child, kind: 'sync', run: onEndRun(childProcessor, children) },
    { name: O.root, kind: 'sync', run: onEndRun(rootProcessor, roots) },
    { name: O.trace, kind: 'sync', run: traceRun },
  ],
  check: (name, iterations, recorded) => {
    const expected = name === O.child ? 0 : iterations;
    if (recorded !== expected) fail(`${name}: recorded ${recorded} outcomes, expected ${expected}`);
  },
};

// What the provider pays per evaluation when nothing is traced: the lookup of the active span.
function markWithoutSpan(iterations: number): number {
  for (let i = 0; i < iterations; i++) markActiveSpan('new-checkout', 'on', 'SPLIT');
  return iterations;
}
const MARK = 'markActiveSpan, no active span';
const markGroup: Group = { name: 'mark', iterations: 100_000, contenders: [{ name: MARK, kind: 'sync', run: markWithoutSpan }] };

if (!json) {
  process.stdout.write(`rollout-guardian sketch bench: node ${process.version}, ${ROUNDS} rounds (+${WARMUP_ROUNDS} warm-up)\n`);
}
const started = process.hrtime.bigint();
const stats = await runRounds([addGroup, mergeGroup, onEndGroup, markGroup], { rounds: ROUNDS, warmupRounds: WARMUP_ROUNDS });
const elapsedS = Number(process.hrtime.bigint() - started) / 1e9;
for (const processor of [childProcessor, rootProcessor, traceProcessor]) {
  if (processor.stats.internalErrors !== 0) fail(`onEnd caught ${processor.stats.internalErrors} internal errors`);
}

const get = (name: string): Summary => stats.get(name) as Summary;
const round1 = (x: number): number => Math.round(x * 10) / 10;
const childNs = get(O.child).median;
const rootNs = get(O.root).median;

if (json) {
  const perContender = <T>(f: (key: ContenderKey) => T): Record<string, T> => Object.fromEntries(KEYS.map((k) => [CONTENDERS[k].name, f(k)]));
  const figures = {
    maxRelativeError: Object.fromEntries(
      (Object.keys(DATA) as DataKey[]).map((d) => [DATA[d].name, perContender((k) => ({ p95: accuracy[d][k].p95, p99: accuracy[d][k].p99 }))]),
    ),
    addNs: perContender((k) => round1(get(`add ${k}`).median)),
    mergeSlotNs: perContender((k) => round1(get(`merge ${k}`).median)),
    bytes: Object.fromEntries((Object.keys(DATA) as DataKey[]).map((d) => [DATA[d].name, perContender((k) => ({ n10k: memory[d].n10k[k], n1m: memory[d].n1m[k] }))])),
    onEndChildNoExposureNs: round1(childNs),
    onEndRootOneExposureNs: round1(rootNs),
    onEndExposedChildThenRootNs: round1(get(O.trace).median),
    onEndChildTargetMet: childNs <= TARGET_CHILD_NS,
    markActiveSpanNoSpanNs: round1(get(MARK).median),
    cohortBytesAt10kSpansPerS: {
      'sigma 0.5, 1%': cohort.sigma05.a1,
      'sigma 0.5, 2%': cohort.sigma05.a2,
      'sigma 1, 1%': cohort.sigma1.a1,
      'sigma 1, 2%': cohort.sigma1.a2,
    },
    rounds: ROUNDS,
    elapsedS: round1(elapsedS),
    node: process.version,
  };
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} else {
  const pct = (x: number): string => `${(x * 100).toFixed(3)}%`.padStart(10);
  const num = (x: number, digits = 1): string => x.toFixed(digits).padStart(10);
  const kib = (x: number): string => `${(x / 1024).toFixed(1)} KiB`.padStart(12);
  const lines: string[] = [];
  const head = (label: string, cols: readonly string[], width = 10): string => `${label.padEnd(44)}${cols.map((c) => c.padStart(width)).join('')}`;
  lines.push('');
  lines.push(`max relative error over ${ACCURACY_SEEDS} seeds of ${ACCURACY_SIZE} values (vs the nearer neighbouring order statistic)`);
  for (const d of Object.keys(DATA) as DataKey[]) {
    lines.push(head(DATA[d].name, ['P95', 'P99']));
    for (const k of KEYS) lines.push(`${`  ${CONTENDERS[k].name}`.padEnd(44)}${pct(accuracy[d][k].p95)}${pct(accuracy[d][k].p99)}`);
  }
  lines.push('');
  lines.push(head('ns per operation (median of rounds)', ['median', 'min', 'p25', 'p75', 'max']));
  const timed = (label: string, s: Summary): string => `${label.padEnd(44)}${num(s.median)}${num(s.min)}${num(s.p25)}${num(s.p75)}${num(s.max)}`;
  for (const k of KEYS) lines.push(timed(`add: ${CONTENDERS[k].name}`, get(`add ${k}`)));
  for (const k of KEYS) lines.push(timed(`merge a 50k slot: ${CONTENDERS[k].name}`, get(`merge ${k}`)));
  lines.push(timed(O.child, get(O.child)));
  lines.push(timed(O.root, get(O.root)));
  lines.push(timed(O.trace, get(O.trace)));
  lines.push(timed(MARK, get(MARK)));
  lines.push(`  onEnd for a child span: target <= ${TARGET_CHILD_NS} ns: ${childNs <= TARGET_CHILD_NS ? 'met' : 'NOT met'}`);
  lines.push('');
  lines.push(head('bytes held', ['10k values', '1M values'], 12));
  for (const d of Object.keys(DATA) as DataKey[]) {
    lines.push(`  ${DATA[d].name}`);
    for (const k of KEYS) lines.push(`${`    ${CONTENDERS[k].name}`.padEnd(44)}${kib(memory[d].n10k[k])}${kib(memory[d].n1m[k])}`);
  }
  lines.push('');
  lines.push(head('one cohort at 10,000 spans/s, 72 x 5 s', ['1%', '2%'], 12));
  lines.push(`${'  lognormal median 80 ms, sigma 0.5'.padEnd(44)}${kib(cohort.sigma05.a1)}${kib(cohort.sigma05.a2)}`);
  lines.push(`${'  lognormal median 80 ms, sigma 1'.padEnd(44)}${kib(cohort.sigma1.a1)}${kib(cohort.sigma1.a2)}`);
  lines.push('');
  lines.push(`${elapsedS.toFixed(1)} s of timed rounds; node ${process.version}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}
