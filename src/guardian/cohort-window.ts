// The sliding window of one cohort (flag x variant): a ring of fixed time slots, each with a
// request count, an error count and a latency distribution (a sketch of span durations plus
// metric histograms as bucketed), merged on read. Memory is bounded by slotCount
// distributions of bounded size, whatever the traffic.
import type { LatencyHistogram, OutcomeSource } from './cohort-aggregate.js';
import { OUTCOME_SOURCES } from './cohort-aggregate.js';
import { LatencyDistribution } from './latency-distribution.js';
import { requirePositiveInteger } from './option-checks.js';

export interface CohortWindowOptions {
  /** Width of a slot in ms; slot i covers [i * slotMs, (i + 1) * slotMs) in epoch ms. */
  readonly slotMs: number;
  /** Slots kept: the window reaches back slotCount * slotMs. */
  readonly slotCount: number;
  /** Relative accuracy of the latency sketches (default 0.02). */
  readonly relativeAccuracy?: number;
}

/** One slot as it is now; `sketch` is the slot's live latency distribution, to be read, never written. */
export interface SlotStats {
  readonly startMs: number;
  /** Requests. */
  readonly count: number;
  readonly errors: number;
  /** Latency observations (for spans, one per request; metric sources count them apart). */
  readonly sketch: LatencyDistribution;
  /** Flag evaluations that served this variant, when exposures are counted (conversion checks). */
  readonly exposures?: number;
  /** Tracked events attributed to this variant, by event name, when any are counted. */
  readonly conversions?: ReadonlyMap<string, number>;
}

/** Slots merged: `fromMs` and `toMs` are the slot-aligned span actually covered. */
export interface WindowStats {
  readonly fromMs: number;
  readonly toMs: number;
  readonly count: number;
  readonly errors: number;
  /** A fresh distribution of every latency in the window; the caller owns it. */
  readonly sketch: LatencyDistribution;
}

// The window object and the objects of its three typed arrays, measured like the sketch's;
// byteSize() adds the arrays' contents, the sketch references and the sketches.
const FIXED_BYTES = 700;

/**
 * Cohort sketches answer to within 2%: a P95 of 500 ms reads as 490-510 ms, plenty for a
 * threshold judgment, and a cohort's ring stays under 64 KiB at 10,000 spans/s even for
 * widely spread latencies (at 1% a lognormal with sigma 1 needs about 86 KiB).
 */
export const DEFAULT_COHORT_ACCURACY = 0.02;
const NO_SLOT = -1;
/** Tracked event names counted per cohort: conversion checks name a few; junk names cannot grow it. */
const MAX_EVENT_NAMES = 8;

export class CohortWindow {
  readonly slotMs: number;
  readonly slotCount: number;
  private readonly relativeAccuracy: number;
  /** The absolute slot index each ring position holds, so a stale position reads as empty. */
  private readonly slotIndex: Float64Array;
  private readonly counts: Float64Array;
  private readonly errors: Float64Array;
  /** Created on a position's first write: a quiet cohort pays for no sketches. */
  private readonly sketches: (LatencyDistribution | undefined)[];
  /** Stands in for slots that saw nothing; shared, never written. */
  private readonly emptySketch: LatencyDistribution;
  private newestIndex = NO_SLOT;
  /** Which sources have written to this window, one bit per OUTCOME_SOURCES entry. */
  private sourceBits = 0;
  /** Exposures and tracked events per slot, made on first use: only flags with conversion checks pay. */
  private exposureCounts: Float64Array | undefined;
  private conversionCounts: Map<string, Float64Array> | undefined;

  constructor(options: CohortWindowOptions) {
    this.slotMs = requirePositiveInteger('CohortWindow', 'slotMs', options.slotMs);
    this.slotCount = requirePositiveInteger('CohortWindow', 'slotCount', options.slotCount);
    this.relativeAccuracy = options.relativeAccuracy ?? DEFAULT_COHORT_ACCURACY;
    // Built now so a bad relativeAccuracy throws here rather than on the first record.
    this.emptySketch = new LatencyDistribution(this.relativeAccuracy);
    this.slotIndex = new Float64Array(this.slotCount).fill(NO_SLOT);
    this.counts = new Float64Array(this.slotCount);
    this.errors = new Float64Array(this.slotCount);
    this.sketches = new Array<LatencyDistribution | undefined>(this.slotCount).fill(undefined);
  }

  /**
   * Counts one outcome in the slot of `nowMs`. O(1) and never throws: a time that is not a
   * finite non-negative number, or that falls in a slot already gone from the ring, is
   * dropped; a duration the sketch cannot hold (NaN, negative) still counts as a request.
   */
  record(durationMs: number, failed: boolean, nowMs: number): void {
    const position = this.positionFor(nowMs);
    if (position < 0) return;
    this.counts[position] = (this.counts[position] as number) + 1;
    if (failed) this.errors[position] = (this.errors[position] as number) + 1;
    (this.sketches[position] as LatencyDistribution).add(durationMs);
    this.sourceBits |= 1;
  }

  /**
   * Counts what a metric source reported for an interval, in the slot of `nowMs`; the caller
   * has checked the numbers (see CohortRegistry.recordAggregate). Dropped like record()'s
   * outcomes when the slot is gone; returns whether it was counted.
   */
  recordAggregate(requests: number, errors: number, latency: LatencyHistogram | undefined, nowMs: number, source: OutcomeSource): boolean {
    const position = this.positionFor(nowMs);
    if (position < 0) return false;
    this.counts[position] = (this.counts[position] as number) + requests;
    this.errors[position] = (this.errors[position] as number) + errors;
    if (latency !== undefined) (this.sketches[position] as LatencyDistribution).addHistogram(latency);
    this.sourceBits |= 1 << OUTCOME_SOURCES.indexOf(source);
    return true;
  }

  /** Counts one exposure (an evaluation that served this variant) in the slot of `nowMs`; false when dropped. */
  recordExposure(nowMs: number): boolean {
    const position = this.positionFor(nowMs);
    if (position < 0) return false;
    const counts = (this.exposureCounts ??= new Float64Array(this.slotCount));
    counts[position] = (counts[position] as number) + 1;
    return true;
  }

  /** Counts one tracked event attributed to this variant; false when dropped (slot gone, or more than MAX_EVENT_NAMES names). */
  recordConversion(event: string, nowMs: number): boolean {
    const conversions = (this.conversionCounts ??= new Map<string, Float64Array>());
    let counts = conversions.get(event);
    if (counts === undefined) {
      if (conversions.size >= MAX_EVENT_NAMES) return false;
      counts = new Float64Array(this.slotCount);
      conversions.set(event, counts);
    }
    const position = this.positionFor(nowMs);
    if (position < 0) return false;
    counts[position] = (counts[position] as number) + 1;
    return true;
  }

  /**
   * Whether `source` may write here: a window takes one source, the first to write to it, so
   * a cohort fed both by spans and by metrics of the same requests is never counted twice.
   */
  takes(source: OutcomeSource): boolean {
    return this.sourceBits === 0 || this.sourceBits === 1 << OUTCOME_SOURCES.indexOf(source);
  }

  /** Whether span outcomes may write here (see takes()); the span path's check, without a lookup. */
  takesSpans(): boolean {
    return this.sourceBits <= 1;
  }

  /** The sources that have written to this window, in OUTCOME_SOURCES order. */
  sources(): OutcomeSource[] {
    return OUTCOME_SOURCES.filter((_, i) => (this.sourceBits & (1 << i)) !== 0);
  }

  /**
   * The ring position for event time `nowMs`, its slot made current (emptied if it held an
   * older slot), or -1 when the time is not a finite non-negative number or its slot is gone.
   */
  private positionFor(nowMs: number): number {
    if (!(nowMs >= 0 && nowMs < Number.POSITIVE_INFINITY)) return -1;
    const index = Math.floor(nowMs / this.slotMs);
    const position = index % this.slotCount;
    if (this.slotIndex[position] !== index) {
      // A late outcome for a slot the ring has moved past has nowhere to go.
      if (index < (this.slotIndex[position] as number) || index <= this.newestIndex - this.slotCount) return -1;
      this.slotIndex[position] = index;
      this.counts[position] = 0;
      this.errors[position] = 0;
      const sketch = this.sketches[position];
      if (sketch === undefined) this.sketches[position] = new LatencyDistribution(this.relativeAccuracy);
      else sketch.clear();
      if (this.exposureCounts !== undefined) this.exposureCounts[position] = 0;
      if (this.conversionCounts !== undefined) for (const counts of this.conversionCounts.values()) counts[position] = 0;
      if (index > this.newestIndex) this.newestIndex = index;
    }
    return position;
  }

  /**
   * The slots overlapping [fromMs, toMs) that the ring still holds, oldest first, with the
   * empty ones as zero-count entries so gaps show. The ring holds the slotCount slots ending
   * at the later of the newest slot written and the last slot asked for.
   */
  slots(fromMs: number, toMs: number): SlotStats[] {
    const result: SlotStats[] = [];
    const range = this.slotRange(fromMs, toMs);
    if (range === undefined) return result;
    for (let index = range.first; index <= range.last; index++) {
      const position = index % this.slotCount;
      const startMs = index * this.slotMs;
      const sketch = this.sketches[position];
      if (this.slotIndex[position] === index && sketch !== undefined) {
        const stats: SlotStats = { startMs, count: this.counts[position] as number, errors: this.errors[position] as number, sketch };
        result.push(this.exposureCounts === undefined && this.conversionCounts === undefined ? stats : { ...stats, ...this.trackedAt(position) });
      } else {
        result.push({ startMs, count: 0, errors: 0, sketch: this.emptySketch });
      }
    }
    return result;
  }

  /** Requests and errors in the slots overlapping [fromMs, toMs), without listing them (read every tick). */
  totals(fromMs: number, toMs: number): { count: number; errors: number } {
    let count = 0;
    let errors = 0;
    const range = this.slotRange(fromMs, toMs);
    if (range !== undefined) {
      for (let index = range.first; index <= range.last; index++) {
        const position = index % this.slotCount;
        if (this.slotIndex[position] !== index) continue;
        count += this.counts[position] as number;
        errors += this.errors[position] as number;
      }
    }
    return { count, errors };
  }

  /** The slots overlapping [fromMs, toMs) merged into one count, error count and fresh sketch. */
  merged(fromMs: number, toMs: number): WindowStats {
    const sketch = new LatencyDistribution(this.relativeAccuracy);
    const range = this.slotRange(fromMs, toMs);
    if (range === undefined) {
      const at = Number.isFinite(toMs) ? toMs : 0;
      return { fromMs: at, toMs: at, count: 0, errors: 0, sketch };
    }
    let count = 0;
    let errors = 0;
    for (let index = range.first; index <= range.last; index++) {
      const position = index % this.slotCount;
      const slotSketch = this.sketches[position];
      if (this.slotIndex[position] !== index || slotSketch === undefined) continue;
      count += this.counts[position] as number;
      errors += this.errors[position] as number;
      sketch.merge(slotSketch);
    }
    return { fromMs: range.first * this.slotMs, toMs: (range.last + 1) * this.slotMs, count, errors, sketch };
  }

  /** End of the newest slot written, or -Infinity before the first outcome. */
  newestSlotEndMs(): number {
    return this.newestIndex === NO_SLOT ? Number.NEGATIVE_INFINITY : (this.newestIndex + 1) * this.slotMs;
  }

  /** Forgets every slot (the clock went back): the window reads as new, its sketches kept for reuse. */
  clear(): void {
    this.slotIndex.fill(NO_SLOT);
    this.counts.fill(0);
    this.errors.fill(0);
    this.exposureCounts?.fill(0);
    if (this.conversionCounts !== undefined) for (const counts of this.conversionCounts.values()) counts.fill(0);
    this.newestIndex = NO_SLOT;
  }

  /** Approximate bytes held by the window and its sketches. */
  byteSize(): number {
    let bytes = FIXED_BYTES + this.slotIndex.byteLength + this.counts.byteLength + this.errors.byteLength + 8 * this.slotCount;
    bytes += this.emptySketch.byteSize();
    for (const sketch of this.sketches) if (sketch !== undefined) bytes += sketch.byteSize();
    if (this.exposureCounts !== undefined) bytes += this.exposureCounts.byteLength;
    for (const [event, counts] of this.conversionCounts ?? []) bytes += counts.byteLength + 2 * event.length + 64;
    return bytes;
  }

  private trackedAt(position: number): { exposures: number; conversions: Map<string, number> } {
    const conversions = new Map<string, number>();
    for (const [event, counts] of this.conversionCounts ?? []) conversions.set(event, counts[position] as number);
    return { exposures: this.exposureCounts?.[position] ?? 0, conversions };
  }

  /** Absolute slot indexes overlapping [fromMs, toMs) and still in the ring, or undefined for none. */
  private slotRange(fromMs: number, toMs: number): { first: number; last: number } | undefined {
    if (!(Number.isFinite(fromMs) && Number.isFinite(toMs) && toMs > fromMs)) return undefined;
    const last = Math.ceil(toMs / this.slotMs) - 1;
    const oldestKept = Math.max(last, this.newestIndex) - this.slotCount + 1;
    const first = Math.max(Math.floor(fromMs / this.slotMs), oldestKept, 0);
    return first <= last ? { first, last } : undefined;
  }
}
