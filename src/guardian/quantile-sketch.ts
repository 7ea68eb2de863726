// A mergeable quantile sketch with a relative-error guarantee (DDSketch-style): each value
// falls into a logarithmic bucket of one dense typed array, so add() is a log, a ceil and an
// increment, two sketches merge bucket by bucket, and memory is bounded by maxBins.
import { quoteValue, requirePositiveInteger } from './option-checks.js';

export interface QuantileSketchOptions {
  /** Bound on the relative error of a quantile estimate, in [1e-6, 1) (default 0.01). */
  readonly relativeAccuracy?: number;
  /** Most buckets held (default 2048); beyond that the lowest buckets collapse into one. */
  readonly maxBins?: number;
  /** Values at or below this many ms share one zero bucket (default 0.01). */
  readonly minValueMs?: number;
}

type Bins = Uint16Array | Uint32Array | Float64Array;

const DEFAULT_RELATIVE_ACCURACY = 0.01;
const DEFAULT_MAX_BINS = 2048;
const DEFAULT_MIN_VALUE_MS = 0.01;
// Below 1e-6 a bucket index could leave V8's small-integer range, and 2048 such buckets
// would span a factor of 1.004: no use for latencies.
const MIN_RELATIVE_ACCURACY = 1e-6;
// Sentinels for "no bucket in use" that keep minIndex/maxIndex small integers.
const NO_MIN_INDEX = 2 ** 30;
const NO_MAX_INDEX = -(2 ** 30);
const INITIAL_BINS = 64;
// Growth adds a margin so a tail creeping outwards reallocates every few buckets, not every
// one; a small margin because every slot of every cohort carries it.
const GROWTH_MARGIN_BINS = 16;
const UINT16_MAX = 0xffff;
// Uint32 counts widen at 2^31 rather than 2^32 so the cap stays a V8 small integer.
const UINT32_CAP = 0x7fffffff;
// Measured on Node 20 (V8 11) with process.memoryUsage() over 100k instances: the sketch
// object, and the typed-array view and buffer objects of a store; byteSize() adds the counts.
const OBJECT_BYTES = 128;
const STORE_OBJECT_BYTES = 184;

/** Counts start 2 bytes wide and widen when one overflows: most slots never need more. */
function binsLike(bins: Bins, length: number): Bins {
  if (bins instanceof Uint16Array) return new Uint16Array(length);
  if (bins instanceof Uint32Array) return new Uint32Array(length);
  return new Float64Array(length);
}

/** What a sketch's options fix; shared by the sketches made with the same options. */
interface Scale {
  readonly relativeAccuracy: number;
  readonly maxBins: number;
  readonly minValueMs: number;
  /** ln(gamma), gamma = (1 + a) / (1 - a): bucket i holds (gamma^(i-1), gamma^i]. */
  readonly lnGamma: number;
  /** 1 / ln(gamma): index = ceil(ln(v) * multiplier). */
  readonly multiplier: number;
  /** 1 - a: bucket i's estimate is gamma^i * (1 - a), within a of every value in it. */
  readonly estimateFactor: number;
}

// A window holds one sketch per slot, so what every sketch would repeat (boxed doubles, in
// V8) is held once. Bounded, so odd option values cannot grow it.
const scales = new Map<string, Scale>();
const MAX_SCALES = 64;
// Never written: a sketch allocates its own store on its first value.
const NO_BINS = new Uint16Array(0);

function scaleFor(options: QuantileSketchOptions): Scale {
  const relativeAccuracy = options.relativeAccuracy ?? DEFAULT_RELATIVE_ACCURACY;
  if (typeof relativeAccuracy !== 'number' || !(relativeAccuracy >= MIN_RELATIVE_ACCURACY && relativeAccuracy < 1)) {
    throw new RangeError(`QuantileSketch: relativeAccuracy must be a number in [${MIN_RELATIVE_ACCURACY}, 1), got ${quoteValue(relativeAccuracy)}`);
  }
  const maxBins = requirePositiveInteger('QuantileSketch', 'maxBins', options.maxBins ?? DEFAULT_MAX_BINS);
  const minValueMs = options.minValueMs ?? DEFAULT_MIN_VALUE_MS;
  if (typeof minValueMs !== 'number' || !(minValueMs > 0 && minValueMs < Number.POSITIVE_INFINITY)) {
    throw new RangeError(`QuantileSketch: minValueMs must be a positive finite number, got ${quoteValue(minValueMs)}`);
  }
  const key = `${relativeAccuracy}/${maxBins}/${minValueMs}`;
  let scale = scales.get(key);
  if (scale === undefined) {
    // Buckets a hair narrower than promised, so rounding at a bucket's edge cannot push an
    // estimate past the stated bound.
    const a = relativeAccuracy * (1 - 1e-9);
    const lnGamma = Math.log((1 + a) / (1 - a));
    scale = { relativeAccuracy, maxBins, minValueMs, lnGamma, multiplier: 1 / lnGamma, estimateFactor: 1 - a };
    if (scales.size < MAX_SCALES) scales.set(key, scale);
  }
  return scale;
}

export class QuantileSketch {
  private readonly scale: Scale;
  private bins: Bins = NO_BINS;
  private binCap = UINT16_MAX;
  /** The bucket index that bins[0] holds. */
  private offset = 0;
  private minIndex = NO_MIN_INDEX;
  private maxIndex = NO_MAX_INDEX;
  private zeroCount = 0;
  private total = 0;
  private minValue = Number.POSITIVE_INFINITY;
  private maxValue = Number.NEGATIVE_INFINITY;

  constructor(options: QuantileSketchOptions = {}) {
    this.scale = scaleFor(options);
  }

  /** The bound on the relative error of quantile estimates; sketches merge only when theirs match. */
  get relativeAccuracy(): number {
    return this.scale.relativeAccuracy;
  }

  /** How many values were added (NaN, negative and infinite ones are not). */
  get count(): number {
    return this.total;
  }

  /** Adds one value in ms. Values it cannot hold (NaN, negative, infinite) are ignored: the data path never throws. */
  add(value: number): void {
    if (value > this.scale.minValueMs) {
      if (value === Number.POSITIVE_INFINITY) return;
      const index = Math.ceil(Math.log(value) * this.scale.multiplier);
      const bins = this.bins;
      const k = index - this.offset;
      if (k >= 0 && k < bins.length) {
        const n = (bins[k] as number) + 1;
        if (n > this.binCap) this.widen(n);
        this.bins[k] = n;
        if (index < this.minIndex) this.minIndex = index;
        if (index > this.maxIndex) this.maxIndex = index;
      } else {
        this.addToBin(index, 1);
      }
    } else if (value >= 0) {
      this.zeroCount++;
    } else {
      return;
    }
    this.total++;
    if (value < this.minValue) this.minValue = value;
    if (value > this.maxValue) this.maxValue = value;
  }

  /** Adds `n` values equal to `value` (n a positive integer); what add() ignores, this ignores too. */
  addMany(value: number, n: number): void {
    if (!(n >= 1 && Number.isInteger(n))) return;
    if (value > this.scale.minValueMs) {
      if (value === Number.POSITIVE_INFINITY) return;
      this.addToBin(Math.ceil(Math.log(value) * this.scale.multiplier), n);
    } else if (value >= 0) {
      this.zeroCount += n;
    } else {
      return;
    }
    this.total += n;
    if (value < this.minValue) this.minValue = value;
    if (value > this.maxValue) this.maxValue = value;
  }

  /** Adds every value of `other` to this sketch; throws, before changing anything, if their buckets differ. */
  merge(other: QuantileSketch): void {
    const mine = this.scale;
    const theirs = other.scale;
    if (theirs.relativeAccuracy !== mine.relativeAccuracy || theirs.minValueMs !== mine.minValueMs) {
      throw new Error(
        `QuantileSketch: cannot merge a sketch with relativeAccuracy ${theirs.relativeAccuracy} and minValueMs ${theirs.minValueMs} ` +
          `into one with relativeAccuracy ${mine.relativeAccuracy} and minValueMs ${mine.minValueMs}: their buckets differ`,
      );
    }
    if (other.total === 0) return;
    // Merging into itself would read bins while they move; a copy keeps the loop simple.
    const source = other === this ? this.copy() : other;
    if (source.minIndex <= source.maxIndex) {
      const bins = source.bins;
      const lo = source.minIndex - source.offset;
      const hi = source.maxIndex - source.offset;
      // The two ends first, so the store grows (or collapses) once, not once per bucket.
      this.addToBin(source.maxIndex, bins[hi] as number);
      if (hi > lo) this.addToBin(source.minIndex, bins[lo] as number);
      for (let k = lo + 1; k < hi; k++) {
        const n = bins[k] as number;
        if (n !== 0) this.addToBin(k + source.offset, n);
      }
    }
    this.zeroCount += source.zeroCount;
    this.total += source.total;
    if (source.minValue < this.minValue) this.minValue = source.minValue;
    if (source.maxValue > this.maxValue) this.maxValue = source.maxValue;
  }

  /**
   * The q-quantile, or undefined when the sketch is empty. Rank convention: with n values
   * sorted ascending as x[0..n-1], the estimate is of x[floor(q * (n - 1))] and is within
   * relativeAccuracy of it, for values above minValueMs and unless the lowest buckets have
   * collapsed (only low quantiles suffer). x[0] and x[n-1] are returned exactly.
   */
  quantile(q: number): number | undefined {
    if (typeof q !== 'number' || !(q >= 0 && q <= 1)) throw new RangeError(`QuantileSketch: q must be in [0, 1], got ${quoteValue(q)}`);
    if (this.total === 0) return undefined;
    const rank = Math.floor(q * (this.total - 1));
    // The extremes are known exactly; every other order statistic lies between them, so
    // clamping the estimate below only removes error.
    if (rank === 0) return this.minValue;
    if (rank === this.total - 1) return this.maxValue;
    let estimate = 0;
    if (rank >= this.zeroCount) {
      const bins = this.bins;
      const offset = this.offset;
      let seen = this.zeroCount;
      let index = this.maxIndex;
      for (let i = this.minIndex; i < this.maxIndex; i++) {
        seen += bins[i - offset] as number;
        if (seen > rank) {
          index = i;
          break;
        }
      }
      estimate = this.binValue(index);
    }
    return Math.min(Math.max(estimate, this.minValue), this.maxValue);
  }

  /**
   * How many values are greater than `threshold`. Exact for every value v except those with
   * |v - threshold| <= relativeAccuracy * v (and values at or below minValueMs, which count
   * as 0), because a bucket counts as above when its estimate is.
   */
  countAbove(threshold: number): number {
    if (this.total === 0 || !(threshold < this.maxValue)) return 0;
    if (threshold < this.minValue) return this.total;
    if (this.minIndex > this.maxIndex) return 0;
    let first = this.minIndex;
    if (threshold > 0) {
      // binValue(i) > threshold <=> i > ln(threshold / (1 - a)) / ln(gamma); the loops fix rounding.
      let i = Math.floor(Math.log(threshold / this.scale.estimateFactor) * this.scale.multiplier) + 1;
      while (this.binValue(i - 1) > threshold) i--;
      while (this.binValue(i) <= threshold) i++;
      if (i > first) first = i;
    }
    let above = 0;
    const bins = this.bins;
    for (let k = first - this.offset, end = this.maxIndex - this.offset; k <= end; k++) above += bins[k] as number;
    return above;
  }

  /** Empties the sketch but keeps its store, so a reused sketch does not allocate again. */
  clear(): void {
    if (this.minIndex <= this.maxIndex) this.bins.fill(0, this.minIndex - this.offset, this.maxIndex - this.offset + 1);
    this.minIndex = NO_MIN_INDEX;
    this.maxIndex = NO_MAX_INDEX;
    this.zeroCount = 0;
    this.total = 0;
    this.minValue = Number.POSITIVE_INFINITY;
    this.maxValue = Number.NEGATIVE_INFINITY;
  }

  /** Approximate bytes held: the counts' store plus the fixed cost of the objects. */
  byteSize(): number {
    return this.bins === NO_BINS ? OBJECT_BYTES : OBJECT_BYTES + STORE_OBJECT_BYTES + this.bins.byteLength;
  }

  /** The estimate for bucket i, whose values lie in (gamma^(i-1), gamma^i]: within a of each. */
  private binValue(index: number): number {
    return Math.exp(index * this.scale.lnGamma) * this.scale.estimateFactor;
  }

  private copy(): QuantileSketch {
    const copy = new QuantileSketch(this.scale);
    copy.bins = this.bins.slice();
    copy.binCap = this.binCap;
    copy.offset = this.offset;
    copy.minIndex = this.minIndex;
    copy.maxIndex = this.maxIndex;
    copy.zeroCount = this.zeroCount;
    copy.total = this.total;
    copy.minValue = this.minValue;
    copy.maxValue = this.maxValue;
    return copy;
  }

  /** Adds n to bucket `index`, making room first when the store does not cover it. */
  private addToBin(index: number, n: number): void {
    let k = index - this.offset;
    if (k < 0 || k >= this.bins.length) {
      index = this.makeRoom(index);
      k = index - this.offset;
    }
    const count = (this.bins[k] as number) + n;
    if (count > this.binCap) this.widen(count);
    this.bins[k] = count;
    if (index < this.minIndex) this.minIndex = index;
    if (index > this.maxIndex) this.maxIndex = index;
  }

  /**
   * Lays the store out so it covers `index` and returns the bucket to use: `index` itself,
   * or the lowest kept bucket when covering it would exceed maxBins. High quantiles are the
   * ones a latency guard reads, so it is always the low end that collapses.
   */
  private makeRoom(index: number): number {
    if (this.minIndex > this.maxIndex) {
      // Nothing stored: re-centre the (all-zero) store on the new value without copying.
      if (this.bins.length === 0) this.bins = new Uint16Array(Math.min(INITIAL_BINS, this.scale.maxBins));
      this.offset = index - (this.bins.length >> 1);
      return index;
    }
    let lo = Math.min(index, this.minIndex);
    const hi = Math.max(index, this.maxIndex);
    let folded = 0;
    if (hi - lo + 1 > this.scale.maxBins) {
      lo = hi - this.scale.maxBins + 1;
      if (index < this.minIndex) index = lo;
      else folded = this.takeBelow(lo);
    }
    if (lo - this.offset < 0 || hi - this.offset >= this.bins.length) this.relayout(lo, hi);
    // What collapsed goes to the lowest kept bucket, which the store now covers.
    if (folded > 0) this.addToBin(lo, folded);
    return index;
  }

  /** Removes every bucket below `lo` (all of them, if `lo` is above the highest) and returns their total. */
  private takeBelow(lo: number): number {
    const from = this.minIndex - this.offset;
    const to = Math.min(lo, this.maxIndex + 1) - this.offset;
    let taken = 0;
    for (let k = from; k < to; k++) taken += this.bins[k] as number;
    this.bins.fill(0, from, to);
    if (lo > this.maxIndex) {
      this.minIndex = NO_MIN_INDEX;
      this.maxIndex = NO_MAX_INDEX;
    } else {
      this.minIndex = lo;
    }
    return taken;
  }

  /** Moves the used buckets so the store covers [lo, hi], growing it (up to maxBins) when needed. */
  private relayout(lo: number, hi: number): void {
    const needed = hi - lo + 1;
    const old = this.bins;
    const length = needed > old.length ? Math.min(this.scale.maxBins, needed + GROWTH_MARGIN_BINS) : old.length;
    const offset = lo - ((length - needed) >> 1);
    const empty = this.minIndex > this.maxIndex;
    if (length !== old.length) {
      const bins = binsLike(old, length);
      if (!empty) bins.set(old.subarray(this.minIndex - this.offset, this.maxIndex - this.offset + 1), this.minIndex - offset);
      this.bins = bins;
    } else if (!empty) {
      const from = this.minIndex - this.offset;
      const to = this.maxIndex - this.offset + 1;
      const dest = this.minIndex - offset;
      old.copyWithin(dest, from, to);
      old.fill(0, 0, dest);
      old.fill(0, dest + (to - from));
    }
    this.offset = offset;
  }

  /** Switches to wider counts so that `count` fits. */
  private widen(count: number): void {
    const wide = count > UINT32_CAP || this.bins instanceof Uint32Array;
    const bins = wide ? new Float64Array(this.bins.length) : new Uint32Array(this.bins.length);
    bins.set(this.bins);
    this.bins = bins;
    this.binCap = wide ? Number.MAX_SAFE_INTEGER : UINT32_CAP;
  }
}
