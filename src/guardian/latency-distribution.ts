// The latencies of one slot (or of merged slots): single durations from spans in a quantile
// sketch, and histograms already bucketed by a metric pipeline kept as their buckets, so a
// limit that is a bucket boundary is judged exactly rather than through a second layer of
// approximation. A few distinct bucket layouts are kept per distribution; beyond that a
// histogram's buckets go into the sketch at representative values (approximate, and said so).
import type { LatencyHistogram } from './cohort-aggregate.js';
import { QuantileSketch } from './quantile-sketch.js';

/** Distinct bucket layouts kept exactly per distribution (one per source is the usual case). */
const MAX_LAYOUTS = 4;
/** Bounds a histogram may have (OpenTelemetry's exponential histograms default to 160 buckets). */
export const MAX_HISTOGRAM_BOUNDS = 512;
// Two histogram objects, the bounds reference and the counts' typed array header.
const LAYOUT_BYTES = 120;
const DISTRIBUTION_BYTES = 64;

interface Layout {
  readonly boundsMs: readonly number[];
  readonly counts: Float64Array;
  total: number;
}

/** Where a latency limit falls among the buckets it was judged on. */
export interface LimitResolution {
  /** True when every histogram has the limit as a boundary (spans count to the sketch's accuracy). */
  readonly exact: boolean;
  /** The widest bucket the limit falls inside, when it is not a boundary: counts there are interpolated. */
  readonly betweenMs?: readonly [number, number];
}

/** Why a histogram cannot be used; undefined when it can. */
export function histogramProblem(h: LatencyHistogram): string | undefined {
  const { boundsMs, counts } = h;
  if (!Array.isArray(boundsMs) || !Array.isArray(counts)) return 'boundsMs and counts must be arrays';
  if (boundsMs.length > MAX_HISTOGRAM_BOUNDS) return `${boundsMs.length} bounds; at most ${MAX_HISTOGRAM_BOUNDS} are taken`;
  if (counts.length !== boundsMs.length + 1) return `${counts.length} counts for ${boundsMs.length} bounds; expected ${boundsMs.length + 1}`;
  for (let i = 0; i < boundsMs.length; i++) {
    const b = boundsMs[i] as number;
    if (!Number.isFinite(b) || b < 0) return `bound ${i} is ${String(b)}; bounds are finite and non-negative`;
    if (i > 0 && !(b > (boundsMs[i - 1] as number))) return `bounds must strictly increase (bound ${i} is ${b} after ${boundsMs[i - 1] as number})`;
  }
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] as number;
    if (!(c >= 0 && Number.isFinite(c))) return `count ${i} is ${String(c)}; counts are finite and non-negative`;
  }
  return undefined;
}

function sameBounds(a: readonly number[], b: readonly number[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** How many of a layout's observations exceed `thresholdMs`, interpolating linearly in the bucket that holds it. */
function layoutAbove(layout: Layout, thresholdMs: number): number {
  const { boundsMs, counts } = layout;
  let above = 0;
  for (let i = counts.length - 1; i >= 0; i--) {
    const n = counts[i] as number;
    if (n === 0) continue;
    const lower = i === 0 ? 0 : (boundsMs[i - 1] as number);
    if (lower >= thresholdMs) {
      above += n;
      continue;
    }
    const upper = i < boundsMs.length ? (boundsMs[i] as number) : Number.POSITIVE_INFINITY;
    if (upper <= thresholdMs) break;
    // The limit lies inside this bucket. Above the last bound nothing is known of the spread,
    // so all of it counts as slower: a limit past every bucket is a mapping to fix, not a pass.
    above += upper === Number.POSITIVE_INFINITY ? n : (n * (upper - thresholdMs)) / (upper - lower);
    break;
  }
  return above;
}

/** A value standing for a bucket's observations once its layout cannot be kept. */
function representative(boundsMs: readonly number[], i: number): number {
  const lower = i === 0 ? 0 : (boundsMs[i - 1] as number);
  if (i >= boundsMs.length) return lower * 1.5;
  const upper = boundsMs[i] as number;
  return lower > 0 ? Math.sqrt(lower * upper) : upper / 2;
}

export class LatencyDistribution {
  private readonly sketch: QuantileSketch;
  private layouts: Layout[] | undefined;
  private histogramTotal = 0;

  constructor(relativeAccuracy?: number) {
    this.sketch = new QuantileSketch({ relativeAccuracy });
  }

  /** Latency observations held: single durations plus histogram counts. */
  get count(): number {
    return this.sketch.count + this.histogramTotal;
  }

  get relativeAccuracy(): number {
    return this.sketch.relativeAccuracy;
  }

  /** One duration in ms; values the sketch cannot hold are ignored (the data path never throws). */
  add(durationMs: number): void {
    this.sketch.add(durationMs);
  }

  /** A histogram's counts; the caller has checked it with histogramProblem(). */
  addHistogram(h: LatencyHistogram): void {
    const layouts = (this.layouts ??= []);
    let layout = layouts.find((l) => sameBounds(l.boundsMs, h.boundsMs));
    if (layout === undefined) {
      if (layouts.length >= MAX_LAYOUTS) {
        for (let i = 0; i < h.counts.length; i++) this.sketch.addMany(representative(h.boundsMs, i), Math.round(h.counts[i] as number));
        return;
      }
      layout = { boundsMs: h.boundsMs.slice(), counts: new Float64Array(h.counts.length), total: 0 };
      layouts.push(layout);
    }
    let total = 0;
    for (let i = 0; i < h.counts.length; i++) {
      const n = h.counts[i] as number;
      layout.counts[i] = (layout.counts[i] as number) + n;
      total += n;
    }
    layout.total += total;
    this.histogramTotal += total;
  }

  merge(other: LatencyDistribution): void {
    this.sketch.merge(other.sketch);
    for (const layout of other.layouts ?? []) {
      if (layout.total > 0) this.addHistogram({ boundsMs: layout.boundsMs, counts: Array.from(layout.counts) });
    }
  }

  /**
   * Observations slower than `thresholdMs`. Spans count to the sketch's relative accuracy;
   * histogram buckets wholly above or below the limit count exactly, and the one bucket the
   * limit falls inside is interpolated linearly (see resolutionAt()).
   */
  countAbove(thresholdMs: number): number {
    let above = this.sketch.countAbove(thresholdMs);
    if (this.layouts !== undefined) for (const layout of this.layouts) if (layout.total > 0) above += layoutAbove(layout, thresholdMs);
    return above;
  }

  /** Whether countAbove(thresholdMs) is exact for the histograms held, and if not, which bucket is interpolated. */
  resolutionAt(thresholdMs: number): LimitResolution {
    let between: [number, number] | undefined;
    for (const layout of this.layouts ?? []) {
      if (layout.total === 0) continue;
      const bounds = layout.boundsMs;
      if (bounds.includes(thresholdMs)) continue;
      let i = 0;
      while (i < bounds.length && (bounds[i] as number) < thresholdMs) i++;
      const lower = i === 0 ? 0 : (bounds[i - 1] as number);
      const upper = i < bounds.length ? (bounds[i] as number) : Number.POSITIVE_INFINITY;
      if (between === undefined || upper - lower > between[1] - between[0]) between = [lower, upper];
    }
    return between === undefined ? { exact: true } : { exact: false, betweenMs: between };
  }

  /**
   * The q-quantile in ms, or undefined when empty. Spans alone: the sketch's estimate. With
   * histograms: the smallest latency with at least the rank's share at or below it, the
   * buckets interpolated linearly as Prometheus' histogram_quantile does.
   */
  quantile(q: number): number | undefined {
    if (this.histogramTotal === 0) return this.sketch.quantile(q);
    const n = this.count;
    if (n === 0) return undefined;
    const needBelow = Math.floor(q * (n - 1)) + 1;
    let hi = 1;
    for (const layout of this.layouts ?? []) {
      const last = layout.boundsMs[layout.boundsMs.length - 1];
      if (last !== undefined && last * 2 > hi) hi = last * 2;
    }
    const sketchMax = this.sketch.quantile(1);
    if (sketchMax !== undefined && sketchMax > hi) hi = sketchMax;
    if (n - this.countAbove(hi) < needBelow) return hi;
    let lo = 0;
    for (let i = 0; i < 60 && hi - lo > 1e-6 * hi; i++) {
      const mid = (lo + hi) / 2;
      if (n - this.countAbove(mid) >= needBelow) hi = mid;
      else lo = mid;
    }
    return hi;
  }

  /** Empties the distribution but keeps its stores for reuse. */
  clear(): void {
    this.sketch.clear();
    if (this.layouts !== undefined) {
      for (const layout of this.layouts) {
        layout.counts.fill(0);
        layout.total = 0;
      }
      // A slot reused for another interval may see other layouts: keep only those in use recently.
      if (this.layouts.length >= MAX_LAYOUTS) this.layouts = undefined;
    }
    this.histogramTotal = 0;
  }

  byteSize(): number {
    let bytes = DISTRIBUTION_BYTES + this.sketch.byteSize();
    for (const layout of this.layouts ?? []) bytes += LAYOUT_BYTES + 8 * layout.boundsMs.length + layout.counts.byteLength;
    return bytes;
  }
}
