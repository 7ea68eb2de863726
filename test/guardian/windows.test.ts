import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CohortAggregate } from '../../src/guardian/cohort-aggregate.js';
import { CohortRegistry } from '../../src/guardian/cohort-registry.js';
import { CohortWindow } from '../../src/guardian/cohort-window.js';
import { LatencyDistribution, histogramProblem } from '../../src/guardian/latency-distribution.js';
import { QuantileSketch } from '../../src/guardian/quantile-sketch.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { type Random, exponential, lognormal, mulberry32, pareto, uniform } from '../helpers/seeded-random.js';

// Rank convention under test (stated on QuantileSketch.quantile): with n values sorted
// ascending, the q-quantile is x[floor(q * (n - 1))]. An estimate passes when it is within
// relativeAccuracy of that order statistic or of its upper neighbour x[ceil(q * (n - 1))].
const QUANTILES = [0.5, 0.9, 0.95, 0.99, 0.999];
const SIZES = [1, 10, 1_000, 100_000];
const DATA_SETS: Record<string, (random: Random) => number> = {
  uniform: (r) => uniform(r, 1, 1000),
  exponential: (r) => exponential(r, 100),
  lognormal: (r) => lognormal(r, 80, 1),
  'pareto heavy tail': (r) => pareto(r, 10, 1.1),
  bimodal: (r) => (r() < 0.7 ? lognormal(r, 20, 0.2) : lognormal(r, 400, 0.3)),
  constant: () => 42,
};

function draw(name: string, size: number, seed: number): number[] {
  const random = mulberry32(seed);
  const generate = DATA_SETS[name] as (random: Random) => number;
  return Array.from({ length: size }, () => generate(random));
}

function sketchOf(values: readonly number[], options?: ConstructorParameters<typeof QuantileSketch>[0]): QuantileSketch {
  const sketch = new QuantileSketch(options);
  for (const v of values) sketch.add(v);
  return sketch;
}

/** The exact q-quantile's two candidates under the rank convention. */
function exactQuantiles(sorted: readonly number[], q: number): [number, number] {
  const h = q * (sorted.length - 1);
  return [sorted[Math.floor(h)] as number, sorted[Math.ceil(h)] as number];
}

function withinAccuracy(estimate: number, exact: number, accuracy: number): boolean {
  return Math.abs(estimate - exact) <= accuracy * Math.abs(exact);
}

const ascending = (a: number, b: number): number => a - b;

describe('QuantileSketch', () => {
  const dataSets = Object.keys(DATA_SETS).flatMap((name, i) =>
    SIZES.map((size, j) => {
      const values = draw(name, size, 1000 * i + j + 1);
      return { name, size, values, sorted: [...values].sort(ascending) };
    }),
  );

  it.each([0.01, 0.02])('estimates every quantile within relativeAccuracy %s over seeded data sets of every size', (accuracy) => {
    const misses: string[] = [];
    for (const { name, size, values, sorted } of dataSets) {
      const sketch = sketchOf(values, { relativeAccuracy: accuracy });
      expect(sketch.count).toBe(size);
      for (const q of QUANTILES) {
        const estimate = sketch.quantile(q) as number;
        const [lower, upper] = exactQuantiles(sorted, q);
        if (!withinAccuracy(estimate, lower, accuracy) && !withinAccuracy(estimate, upper, accuracy)) {
          misses.push(`${name} n=${size} q=${q}: estimate ${estimate}, exact ${lower}..${upper}`);
        }
      }
    }
    expect(misses).toEqual([]);
  });

  it('answers q = 0 and q = 1 with the exact minimum and maximum, and undefined when empty', () => {
    const values = draw('lognormal', 1000, 7);
    const sketch = sketchOf(values);
    expect(sketch.quantile(0)).toBe(Math.min(...values));
    expect(sketch.quantile(1)).toBe(Math.max(...values));
    expect(new QuantileSketch().quantile(0.5)).toBeUndefined();
  });

  it('merges two sketches into exactly the sketch of their union', () => {
    const a = draw('lognormal', 20_000, 11);
    // Far apart, so the merge has to grow the store on both sides.
    const b = draw('pareto heavy tail', 20_000, 12).map((v) => v * 1000);
    const merged = sketchOf(a);
    merged.merge(sketchOf(b));
    const union = sketchOf([...a, ...b]);
    expect(merged.count).toBe(union.count);
    for (const q of [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1]) expect(merged.quantile(q)).toBe(union.quantile(q));
    for (const t of [1, 80, 1000, 50_000]) expect(merged.countAbove(t)).toBe(union.countAbove(t));
  });

  it('merges into an empty sketch and into itself', () => {
    const values = draw('exponential', 5000, 13);
    const empty = new QuantileSketch();
    empty.merge(sketchOf(values));
    expect(empty.quantile(0.99)).toBe(sketchOf(values).quantile(0.99));
    const doubled = sketchOf(values);
    doubled.merge(doubled);
    expect(doubled.count).toBe(10_000);
    expect(doubled.quantile(0.99)).toBe(sketchOf([...values, ...values]).quantile(0.99));
  });

  it('refuses to merge a sketch of another accuracy, before changing anything', () => {
    const target = sketchOf([1, 2, 3]);
    expect(() => target.merge(sketchOf([4, 5], { relativeAccuracy: 0.02 }))).toThrow(/relativeAccuracy 0.02 .* relativeAccuracy 0.01/);
    expect(target.count).toBe(3);
    expect(target.quantile(1)).toBe(3);
  });

  it('counts values above a threshold exactly, except values within relativeAccuracy of it', () => {
    const accuracy = 0.01;
    for (const name of ['lognormal', 'bimodal', 'pareto heavy tail']) {
      const values = draw(name, 50_000, 17);
      const sketch = sketchOf(values, { relativeAccuracy: accuracy });
      for (const threshold of [5, 20, 80, 100, 250, 500, 1000, 5000]) {
        const exact = values.filter((v) => v > threshold).length;
        const ambiguous = values.filter((v) => Math.abs(v - threshold) <= accuracy * v).length;
        expect(Math.abs(sketch.countAbove(threshold) - exact), `${name} above ${threshold}`).toBeLessThanOrEqual(ambiguous);
      }
      expect(sketch.countAbove(0)).toBe(values.length);
      expect(sketch.countAbove(Math.max(...values))).toBe(0);
    }
  });

  it('holds at most maxBins buckets under an adversarial spread, collapsing the lowest so high quantiles stay accurate', () => {
    const random = mulberry32(19);
    // Values from 1e-2 to 1e300 ms: about 70,000 buckets at 1% if nothing collapsed.
    const spread = Array.from({ length: 100_000 }, () => Math.pow(10, uniform(random, -2, 300)));
    for (const maxBins of [128, 2048]) {
      const sketch = new QuantileSketch({ maxBins });
      for (const v of spread) {
        sketch.add(v);
        // 8 bytes a bucket once counts have widened to doubles, plus the fixed part.
        if (sketch.count % 10_000 === 0) expect(sketch.byteSize()).toBeLessThanOrEqual(maxBins * 8 + 1024);
      }
      const sorted = [...spread].sort(ascending);
      for (const q of [0.999, 1]) {
        const [lower, upper] = exactQuantiles(sorted, q);
        const estimate = sketch.quantile(q) as number;
        expect(withinAccuracy(estimate, lower, 0.01) || withinAccuracy(estimate, upper, 0.01), `q=${q} with maxBins ${maxBins}`).toBe(true);
      }
    }
  });

  it('loses no count when it collapses: any split merged equals the whole, in any order, and high quantiles stay accurate', () => {
    // Values over 15 decades into at most 64 buckets, so most runs collapse, several times.
    const values = fc.array(fc.double({ min: -3, max: 12, noNaN: true }).map((e) => Math.pow(10, e)), { minLength: 1, maxLength: 400 });
    fc.assert(
      fc.property(values, fc.nat(), fc.integer({ min: 1, max: 64 }), fc.constantFrom(0.01, 0.02, 0.05), (xs, cut, maxBins, relativeAccuracy) => {
        const options = { maxBins, relativeAccuracy };
        const at = cut % (xs.length + 1);
        const merged = sketchOf(xs.slice(0, at), options);
        merged.merge(sketchOf(xs.slice(at), options));
        const whole = sketchOf(xs, options);
        const reversed = sketchOf([...xs].reverse(), options);
        const sorted = [...xs].sort(ascending);
        const max = sorted[sorted.length - 1] as number;
        const gamma = (1 + relativeAccuracy) / (1 - relativeAccuracy);
        // Buckets this far below the maximum's are never collapsed.
        const floor = max / Math.pow(gamma, maxBins - 2);
        for (const q of [0, 0.25, 0.5, 0.9, 0.99, 1]) {
          expect(merged.quantile(q)).toBe(whole.quantile(q));
          expect(reversed.quantile(q)).toBe(whole.quantile(q));
          const [lower, upper] = exactQuantiles(sorted, q);
          if (lower > floor && lower > 0.01) {
            const estimate = whole.quantile(q) as number;
            expect(withinAccuracy(estimate, lower, relativeAccuracy) || withinAccuracy(estimate, upper, relativeAccuracy)).toBe(true);
          }
        }
        expect(merged.count).toBe(xs.length);
      }),
      { seed: 0x736b6574, numRuns: 1000 },
    );
  });

  it('ignores NaN, negative and infinite values, and puts values at or below minValueMs in a zero bucket', () => {
    const sketch = new QuantileSketch({ minValueMs: 0.5 });
    for (const v of [Number.NaN, -1, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) sketch.add(v);
    expect(sketch.count).toBe(0);
    for (const v of [0, 0.2, 0.5, 100]) sketch.add(v);
    expect(sketch.count).toBe(4);
    expect(sketch.quantile(0.5)).toBe(0);
    expect(sketch.countAbove(0.6)).toBe(1);
  });

  it('starts afresh after clear() and estimates as well as a new sketch', () => {
    const sketch = sketchOf(draw('pareto heavy tail', 10_000, 23));
    sketch.clear();
    expect(sketch.count).toBe(0);
    expect(sketch.quantile(0.5)).toBeUndefined();
    const values = draw('lognormal', 10_000, 29);
    for (const v of values) sketch.add(v);
    for (const q of QUANTILES) expect(sketch.quantile(q)).toBe(sketchOf(values).quantile(q));
  });

  it('keeps counts exact beyond 65,535 values in one bucket', () => {
    const sketch = new QuantileSketch();
    for (let i = 0; i < 70_000; i++) sketch.add(80);
    sketch.add(1000);
    expect(sketch.countAbove(100)).toBe(1);
    expect(sketch.countAbove(50)).toBe(70_001);
    expect(withinAccuracy(sketch.quantile(0.99999) as number, 80, 0.01)).toBe(true);
  });

  it('rejects bad options at construction, quoting the value', () => {
    expect(() => new QuantileSketch({ relativeAccuracy: 0 })).toThrow('relativeAccuracy must be a number in [0.000001, 1), got 0');
    expect(() => new QuantileSketch({ relativeAccuracy: 1.5 })).toThrow('got 1.5');
    expect(() => new QuantileSketch({ relativeAccuracy: '0.01' as unknown as number })).toThrow('got "0.01"');
    expect(() => new QuantileSketch({ maxBins: 10.5 })).toThrow('maxBins must be a positive integer, got 10.5');
    expect(() => new QuantileSketch({ minValueMs: -1 })).toThrow('minValueMs must be a positive finite number, got -1');
    expect(() => new QuantileSketch().quantile(1.1)).toThrow('q must be in [0, 1], got 1.1');
  });
});

describe('CohortWindow', () => {
  const T = Date.parse('2026-11-27T12:00:00Z');

  it('puts each outcome in the slot of its time and lists empty slots between as zero counts', () => {
    const window = new CohortWindow({ slotMs: 1000, slotCount: 10 });
    window.record(10, false, T);
    window.record(20, true, T + 999);
    window.record(30, false, T + 2500);
    expect(window.slots(T, T + 3000).map(({ startMs, count, errors }) => ({ startMs, count, errors }))).toEqual([
      { startMs: T, count: 2, errors: 1 },
      { startMs: T + 1000, count: 0, errors: 0 },
      { startMs: T + 2000, count: 1, errors: 0 },
    ]);
    const [first, gap] = window.slots(T, T + 2000);
    expect(first?.sketch.quantile(1)).toBe(20);
    expect(gap?.sketch.count).toBe(0);
  });

  it('lists every slot that overlaps the range asked for, partial ones included', () => {
    const window = new CohortWindow({ slotMs: 1000, slotCount: 10 });
    expect(window.slots(T + 500, T + 1500).map((s) => s.startMs)).toEqual([T, T + 1000]);
    expect(window.slots(T + 1000, T + 1000)).toEqual([]);
  });

  it('forgets a slot once slotCount newer slots have started', () => {
    const window = new CohortWindow({ slotMs: 1000, slotCount: 10 });
    window.record(10, true, T);
    window.record(10, false, T + 9000);
    expect(window.merged(T, T + 10_000)).toMatchObject({ count: 2, errors: 1 });
    window.record(10, false, T + 10_000);
    expect(window.slots(T, T + 1000)).toEqual([]);
    expect(window.merged(T, T + 11_000)).toMatchObject({ fromMs: T + 1000, toMs: T + 11_000, count: 2, errors: 0 });
    // The slot at T + 10 s took over T's ring position, starting from zero.
    expect(window.slots(T + 10_000, T + 11_000)[0]?.count).toBe(1);
  });

  it('reads a slot older than the ring as gone even when nothing newer was written', () => {
    const window = new CohortWindow({ slotMs: 1000, slotCount: 10 });
    window.record(10, false, T);
    const slots = window.slots(T, T + 11_000);
    expect(slots.map((s) => s.startMs)).toEqual(Array.from({ length: 10 }, (_, i) => T + 1000 * (i + 1)));
    expect(slots.every((s) => s.count === 0)).toBe(true);
  });

  it('drops outcomes that arrive for a slot the ring has left, and never throws on a bad time', () => {
    const window = new CohortWindow({ slotMs: 1000, slotCount: 10 });
    window.record(10, false, T + 20_000);
    window.record(10, true, T + 5000);
    window.record(10, true, Number.NaN);
    window.record(10, true, -5);
    expect(window.merged(T, T + 21_000)).toMatchObject({ count: 1, errors: 0 });
  });

  it('merges a window into summed counts and errors and one sketch, slot-aligned', () => {
    const window = new CohortWindow({ slotMs: 1000, slotCount: 10 });
    for (let i = 0; i < 6; i++) window.record(100 * (i + 1), i % 3 === 0, T + 700 * i);
    const merged = window.merged(T + 100, T + 3100);
    expect(merged).toMatchObject({ fromMs: T, toMs: T + 4000, count: 6, errors: 2 });
    expect(merged.sketch.count).toBe(6);
    merged.sketch.add(1);
    expect(window.merged(T, T + 4000).sketch.count).toBe(6);
  });

  it('estimates P95 and P99 of a merged window within its relative accuracy', () => {
    for (const relativeAccuracy of [0.01, 0.02]) {
      const window = new CohortWindow({ slotMs: 5000, slotCount: 12, relativeAccuracy });
      const random = mulberry32(31);
      const values: number[] = [];
      for (let t = 0; t < 60_000; t += 2) {
        const v = t > 40_000 ? lognormal(random, 200, 0.8) : lognormal(random, 80, 0.5);
        values.push(v);
        window.record(v, false, T + t);
      }
      const merged = window.merged(T, T + 60_000);
      expect(merged.count).toBe(values.length);
      const sorted = values.sort(ascending);
      for (const q of [0.95, 0.99]) {
        const [lower, upper] = exactQuantiles(sorted, q);
        const estimate = merged.sketch.quantile(q) as number;
        expect(withinAccuracy(estimate, lower, relativeAccuracy) || withinAccuracy(estimate, upper, relativeAccuracy), `q=${q} at ${relativeAccuracy}`).toBe(true);
      }
    }
  });

  it('holds a cohort at 10,000 spans/s in under 64 KiB with 72 slots of 5 s', () => {
    const clock = new FakeClock(T);
    const window = new CohortWindow({ slotMs: 5000, slotCount: 72 });
    const random = mulberry32(37);
    // Past one full turn of the ring, so reused slots count too: 80 slots of 50,000 spans,
    // lognormal latencies with a median of 80 ms and sigma 0.5 (P99 about 3.2 x the median).
    for (let i = 0; i < 80 * 50_000; i++) {
      clock.set(T + i / 10);
      window.record(lognormal(random, 80, 0.5), random() < 0.01, clock.now());
    }
    expect(window.merged(T + 8 * 5000, T + 80 * 5000).count).toBe(72 * 50_000);
    // About 57 KB here: 72 sketches of about 220 two-byte buckets, plus fixed costs.
    expect(window.byteSize()).toBeLessThan(64 * 1024);
  });

  it('rejects a slot width or count that is not a positive integer', () => {
    expect(() => new CohortWindow({ slotMs: 0, slotCount: 10 })).toThrow('slotMs must be a positive integer, got 0');
    expect(() => new CohortWindow({ slotMs: 1000, slotCount: 2.5 })).toThrow('slotCount must be a positive integer, got 2.5');
    expect(() => new CohortWindow({ slotMs: 1000, slotCount: 10, relativeAccuracy: 2 })).toThrow('relativeAccuracy');
  });
});

describe('CohortRegistry', () => {
  const T = Date.parse('2026-11-27T12:00:00Z');

  it('keeps one window per flag and variant', () => {
    const registry = new CohortRegistry({ slotMs: 1000, slotCount: 10 });
    registry.record('checkout', 'on', 120, true, T);
    registry.record('checkout', 'on', 80, false, T);
    registry.record('checkout', 'off', 60, false, T);
    registry.record('search', 'on', 60, false, T);
    expect(registry.window('checkout', 'on')?.merged(T, T + 1000)).toMatchObject({ count: 2, errors: 1 });
    expect(registry.window('checkout', 'off')?.merged(T, T + 1000)).toMatchObject({ count: 1, errors: 0 });
    expect(registry.window('checkout', 'missing')).toBeUndefined();
    expect([...registry.cohorts()].map(({ flagKey, variant }) => `${flagKey}/${variant}`)).toEqual(['checkout/on', 'checkout/off', 'search/on']);
    expect(registry.slotMs).toBe(1000);
    expect(registry.slotCount).toBe(10);
  });

  it('drops and counts outcomes of cohorts beyond maxCohorts while known cohorts keep recording', () => {
    const registry = new CohortRegistry({ slotMs: 1000, slotCount: 10, maxCohorts: 2 });
    registry.record('a', 'on', 10, false, T);
    registry.record('a', 'off', 10, false, T);
    registry.record('b', 'on', 10, false, T);
    registry.record('a', 'beta', 10, false, T);
    registry.record('a', 'on', 10, false, T);
    expect(registry.droppedCohorts).toBe(2);
    expect(registry.window('b', 'on')).toBeUndefined();
    expect([...registry.cohorts()]).toHaveLength(2);
    expect(registry.window('a', 'on')?.merged(T, T + 1000).count).toBe(2);
  });

  it('rejects bad options at construction', () => {
    expect(() => new CohortRegistry({ slotMs: 1000, slotCount: 10, maxCohorts: 0 })).toThrow('maxCohorts must be a positive integer, got 0');
    expect(() => new CohortRegistry({ slotMs: -1, slotCount: 10 })).toThrow('slotMs must be a positive integer, got -1');
    expect(() => new CohortRegistry({ slotMs: 1000, slotCount: 10, relativeAccuracy: Number.NaN })).toThrow('got NaN');
  });
});

describe('LatencyDistribution', () => {
  // OpenTelemetry's default explicit bounds for http.server.request.duration, in ms.
  const SEMCONV_MS = [5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];
  const histogram = (counts: Record<number, number>, boundsMs = SEMCONV_MS) => ({ boundsMs, counts: Array.from({ length: boundsMs.length + 1 }, (_, i) => counts[i] ?? 0) });

  it('counts observations slower than a limit exactly when the limit is a bucket bound', () => {
    const d = new LatencyDistribution();
    // 900 in (250, 500], 60 in (500, 750], 40 in (1000, 2500].
    d.addHistogram(histogram({ 7: 900, 8: 60, 10: 40 }));
    expect(d.count).toBe(1000);
    expect(d.countAbove(500)).toBe(100);
    expect(d.countAbove(1000)).toBe(40);
    expect(d.resolutionAt(500)).toEqual({ exact: true });
  });

  it('interpolates the one bucket a limit falls inside, and says which bucket that was', () => {
    const d = new LatencyDistribution();
    d.addHistogram(histogram({ 7: 900, 8: 100 }));
    // 600 ms is 40% of the way through (500, 750]: 60% of its 100 observations are above it.
    expect(d.countAbove(600)).toBeCloseTo(60, 9);
    expect(d.resolutionAt(600)).toEqual({ exact: false, betweenMs: [500, 750] });
    // Past the last bound nothing is known of the spread: all of the overflow bucket counts as slower.
    const tail = new LatencyDistribution();
    tail.addHistogram(histogram({ 14: 5 }));
    expect(tail.countAbove(20_000)).toBe(5);
  });

  it('adds histograms of the same layout together and keeps spans and histograms apart', () => {
    const d = new LatencyDistribution(0.02);
    d.addHistogram(histogram({ 7: 10 }));
    d.addHistogram(histogram({ 8: 10 }));
    for (let i = 0; i < 10; i++) d.add(2000);
    expect(d.count).toBe(30);
    expect(d.countAbove(500)).toBe(20);
    const merged = new LatencyDistribution(0.02);
    merged.merge(d);
    merged.merge(d);
    expect(merged.count).toBe(60);
    expect(merged.countAbove(500)).toBe(40);
  });

  it('reads quantiles over buckets as histogram_quantile does, within the bucket by linear interpolation', () => {
    const d = new LatencyDistribution();
    d.addHistogram(histogram({ 5: 900, 7: 100 }));
    // The 95th percentile lies halfway through the 100 observations in (250, 500].
    expect(d.quantile(0.95)).toBeCloseTo(250 + 250 * ((950 - 900) / 100), 0);
    expect(d.quantile(0.5)).toBeLessThanOrEqual(100);
    expect(new LatencyDistribution().quantile(0.5)).toBeUndefined();
  });

  it('keeps four bucket layouts exactly and folds further ones into the sketch, counting every observation', () => {
    const d = new LatencyDistribution();
    for (let k = 1; k <= 6; k++) d.addHistogram(histogram({ 1: 10 }, [k, 10 * k, 100 * k]));
    expect(d.count).toBe(60);
    expect(d.countAbove(1000)).toBe(0);
  });

  it('refuses histograms that do not describe buckets, naming what is wrong', () => {
    expect(histogramProblem({ boundsMs: [1, 2], counts: [1, 2] })).toBe('2 counts for 2 bounds; expected 3');
    expect(histogramProblem({ boundsMs: [2, 1], counts: [0, 0, 0] })).toBe('bounds must strictly increase (bound 1 is 1 after 2)');
    expect(histogramProblem({ boundsMs: [1], counts: [1, -1] })).toBe('count 1 is -1; counts are finite and non-negative');
    expect(histogramProblem({ boundsMs: [Number.NaN], counts: [1, 1] })).toBe('bound 0 is NaN; bounds are finite and non-negative');
    expect(histogramProblem({ boundsMs: [1, 2], counts: [0, 1, 2] })).toBeUndefined();
  });
});

describe('Cohort aggregates from metric sources', () => {
  const T = Date.parse('2026-11-27T12:00:00Z');
  const aggregate = (over: Partial<CohortAggregate> = {}): CohortAggregate => ({ flagKey: 'checkout', variant: 'on', atMs: T, requests: 100, errors: 2, latency: { boundsMs: [100, 500], counts: [80, 15, 5] }, source: 'otlp-metrics', ...over });

  it('counts requests, errors and latency buckets in the slot of the interval, and names the source', () => {
    const registry = new CohortRegistry({ slotMs: 1000, slotCount: 10 });
    expect(registry.recordAggregate(aggregate())).toBeUndefined();
    expect(registry.recordAggregate(aggregate({ requests: 0, errors: 0, latency: { boundsMs: [100, 500], counts: [0, 0, 5] } }))).toBeUndefined();
    const window = registry.window('checkout', 'on') as CohortWindow;
    const merged = window.merged(T, T + 1000);
    expect(merged).toMatchObject({ count: 100, errors: 2 });
    // Latency observations: 100 + 5 from histograms; 5 + 5 slower than 500 ms.
    expect(merged.sketch.count).toBe(105);
    expect(merged.sketch.countAbove(500)).toBe(10);
    expect(window.sources()).toEqual(['otlp-metrics']);
  });

  it('takes one source per cohort, so requests seen as spans and as metrics are not counted twice', () => {
    const registry = new CohortRegistry({ slotMs: 1000, slotCount: 10 });
    registry.record('checkout', 'on', 120, false, T);
    registry.record('checkout', 'off', 120, false, T);
    expect(registry.recordAggregate(aggregate())).toBe('other-source');
    expect(registry.recordAggregate(aggregate({ variant: 'beta' }))).toBeUndefined();
    registry.record('checkout', 'beta', 120, false, T);
    expect(registry.recordAggregate(aggregate({ variant: 'beta', source: 'prometheus' }))).toBe('other-source');
    expect(registry.window('checkout', 'on')?.merged(T, T + 1000).count).toBe(1);
    expect(registry.window('checkout', 'beta')?.merged(T, T + 1000).count).toBe(100);
    expect(registry.window('checkout', 'beta')?.sources()).toEqual(['otlp-metrics']);
    expect(registry.aggregateRefusals['other-source']).toBe(3);
  });

  it('refuses bad numbers, late and future intervals, and counts each reason', () => {
    const registry = new CohortRegistry({ slotMs: 1000, slotCount: 10 });
    expect(registry.recordAggregate(aggregate({ errors: 101 }))).toBe('invalid');
    expect(registry.aggregateRefusals.lastInvalid).toBe('errors is 101; expected a count no larger than requests (100)');
    expect(registry.recordAggregate(aggregate({ requests: Number.NaN }))).toBe('invalid');
    expect(registry.recordAggregate(aggregate({ latency: { boundsMs: [1], counts: [1] } }))).toBe('invalid');
    expect(registry.recordAggregate(aggregate({ flagKey: '' }))).toBe('invalid');
    registry.advance(T + 5000, T + 5000, new Map([['checkout', undefined]]));
    expect(registry.recordAggregate(aggregate())).toBe('late');
    expect(registry.recordAggregate(aggregate({ atMs: T + 3_600_000 }))).toBe('future');
    expect(registry.aggregateRefusals).toMatchObject({ invalid: 4, late: 1, future: 1, 'cohort-limit': 0 });
    expect(registry.window('checkout', 'on')).toBeUndefined();
  });
});
