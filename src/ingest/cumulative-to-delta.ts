// Cumulative metric points turned into deltas, per stream (resource + scope + metric + point
// attributes), following the OTel data model's rules for resets and gaps: a changed start
// time is a restart, a count that goes down is a reset, and a stream's first point is only a
// delta when it started while we were listening. Memory is bounded: idle streams are evicted.
import { type MetricPoint, FLAG_NO_RECORDED_VALUE, TEMPORALITY_CUMULATIVE, TEMPORALITY_DELTA } from './otlp-metric-points.js';

/** What became of one point. */
export type DeltaVerdict =
  /** The point now holds its delta (or was a delta already). */
  | 'delta'
  /** The first point of a stream whose start we did not see, or that follows a reset we cannot measure: kept as the base for the next. */
  | 'baseline'
  /** Not newer than the stream's last point (a retry or a reordering): ignored. */
  | 'stale'
  /** A staleness marker (no recorded value): the stream is forgotten. */
  | 'ended'
  /** Neither delta nor cumulative (AGGREGATION_TEMPORALITY_UNSPECIFIED), or buckets that do not add up. */
  | 'invalid';

export interface CumulativeToDeltaOptions {
  /** When we started listening (epoch ms): a first point that started after it is counted whole. */
  readonly startedAtMs: number;
  /** Streams remembered at once (default 100,000); the least recently updated go first. */
  readonly maxStreams?: number;
  /** A stream not updated for this long is forgotten (default 10 minutes). */
  readonly streamIdleMs?: number;
}

export interface CumulativeToDeltaStats {
  readonly streams: number;
  readonly baselines: number;
  readonly resets: number;
  readonly restarts: number;
  readonly stale: number;
  /** Streams forgotten because maxStreams were held (their next point is only a baseline). */
  readonly evictedStreams: number;
  /** Streams forgotten after streamIdleMs without a point. */
  readonly expiredStreams: number;
}

interface StreamState {
  startTimeMs: number;
  timeMs: number;
  seenAtMs: number;
  value: number;
  count: number;
  bounds: number[];
  bucketCounts: number[];
  scale: number;
  zeroCount: number;
  offset: number;
  expCounts: number[];
  negativeCount: number;
}

export class CumulativeToDelta {
  private readonly streams = new Map<string, StreamState>();
  private readonly startedAtMs: number;
  private readonly maxStreams: number;
  private readonly streamIdleMs: number;
  private lastSweepMs = Number.NEGATIVE_INFINITY;
  /**
   * The latest point time of any stream forgotten (evicted or expired). A stream whose start is
   * not after it may be one we forgot, whose counts up to then were already delivered: its
   * next point is a baseline, never counted whole again.
   */
  private forgottenThroughMs = Number.NEGATIVE_INFINITY;
  private counts = { baselines: 0, resets: 0, restarts: 0, stale: 0, evictedStreams: 0, expiredStreams: 0 };

  constructor(options: CumulativeToDeltaOptions) {
    this.startedAtMs = options.startedAtMs;
    this.maxStreams = options.maxStreams ?? 100_000;
    this.streamIdleMs = options.streamIdleMs ?? 600_000;
    if (!Number.isInteger(this.maxStreams) || this.maxStreams <= 0) throw new RangeError(`CumulativeToDelta: maxStreams must be a positive integer, got ${String(options.maxStreams)}`);
    if (!(this.streamIdleMs > 0)) throw new RangeError(`CumulativeToDelta: streamIdleMs must be positive, got ${String(options.streamIdleMs)}`);
  }

  get stats(): CumulativeToDeltaStats {
    return { streams: this.streams.size, ...this.counts };
  }

  /** Turns a cumulative point into its delta in place (a delta point passes as it is). */
  toDelta(point: MetricPoint, nowMs: number): DeltaVerdict {
    if (point.temporality === TEMPORALITY_DELTA) return 'delta';
    if (point.temporality !== TEMPORALITY_CUMULATIVE) return 'invalid';
    this.sweep(nowMs);
    const key = point.streamKey;
    const previous = this.streams.get(key);
    if ((point.flags & FLAG_NO_RECORDED_VALUE) !== 0) {
      this.streams.delete(key);
      return 'ended';
    }
    if (previous === undefined) {
      // A stream that started after we began listening, and after every stream we forgot, has
      // shown us all it counted (judged before remembering it evicts another).
      const whole = point.startTimeMs > 0 && point.startTimeMs < point.timeMs && point.startTimeMs >= this.startedAtMs && point.startTimeMs > this.forgottenThroughMs;
      this.remember(key, point, nowMs);
      if (whole) return 'delta';
      this.counts.baselines++;
      return 'baseline';
    }
    if (!(point.timeMs > previous.timeMs)) {
      this.counts.stale++;
      return 'stale';
    }
    if (point.startTimeMs !== 0 && previous.startTimeMs !== 0 && point.startTimeMs !== previous.startTimeMs) {
      // A restart: the new start time says from when the point counts; if that is after the
      // last point we saw, nothing of it was counted before and all of it is new.
      this.counts.restarts++;
      this.streams.delete(key);
      this.remember(key, point, nowMs);
      if (point.startTimeMs >= previous.timeMs) return 'delta';
      this.counts.baselines++;
      return 'baseline';
    }
    // The next delta is measured from this point's cumulative numbers, so keep them first.
    const next = snapshot(point, nowMs);
    const verdict = subtract(point, previous);
    this.streams.delete(key);
    this.streams.set(key, next);
    if (verdict === 'reset') {
      // A count went down without a new start time: something restarted and we cannot tell
      // what it counted before this point, so it is the base of the next delta, not a delta.
      this.counts.resets++;
      this.counts.baselines++;
      return 'baseline';
    }
    return verdict;
  }

  /** Keeps a copy of the cumulative point (before it is turned into a delta). */
  private remember(key: string, point: MetricPoint, nowMs: number): void {
    if (this.streams.size >= this.maxStreams) {
      // The least recently updated hundredth at once: one walk past the map's deleted entries
      // per many evictions, where one walk per eviction made a full map quadratic.
      let evict = Math.max(1, Math.floor(this.maxStreams / 100));
      for (const [oldKey, state] of this.streams) {
        if (evict-- <= 0) break;
        this.forget(oldKey, state);
        this.counts.evictedStreams++;
      }
    }
    this.streams.set(key, snapshot(point, nowMs));
  }

  private forget(key: string, state: StreamState): void {
    this.streams.delete(key);
    if (state.timeMs > this.forgottenThroughMs) this.forgottenThroughMs = state.timeMs;
  }

  /** Forgets streams idle for streamIdleMs (in update order, so it stops at the first recent one). */
  private sweep(nowMs: number): void {
    if (nowMs - this.lastSweepMs < this.streamIdleMs / 8) return;
    this.lastSweepMs = nowMs;
    const oldest = nowMs - this.streamIdleMs;
    for (const [key, state] of this.streams) {
      if (state.seenAtMs >= oldest) return;
      this.forget(key, state);
      this.counts.expiredStreams++;
    }
  }
}

function snapshot(point: MetricPoint, nowMs: number): StreamState {
  const e = point.exponential;
  return {
    startTimeMs: point.startTimeMs,
    timeMs: point.timeMs,
    seenAtMs: nowMs,
    value: point.value,
    count: point.count,
    bounds: point.bounds.slice(),
    bucketCounts: point.bucketCounts.slice(),
    scale: e?.scale ?? 0,
    zeroCount: e?.zeroCount ?? 0,
    offset: e?.offset ?? 0,
    expCounts: e === undefined ? [] : e.counts.slice(),
    negativeCount: e?.negativeCount ?? 0,
  };
}

/**
 * Replaces the point's cumulative numbers by their increase since `previous`; 'reset' when
 * anything went down (or the buckets changed shape), leaving the point untouched.
 */
function subtract(point: MetricPoint, previous: StreamState): 'delta' | 'reset' {
  if (point.kind === 'sum' || point.kind === 'gauge') {
    const delta = point.value - previous.value;
    if (delta < 0) return 'reset';
    point.value = delta;
    return 'delta';
  }
  if (point.count < previous.count) return 'reset';
  if (point.kind === 'histogram') {
    const counts = point.bucketCounts;
    const before = previous.bucketCounts;
    if (counts.length !== before.length || point.bounds.length !== previous.bounds.length) return 'reset';
    for (let i = 0; i < point.bounds.length; i++) if (point.bounds[i] !== previous.bounds[i]) return 'reset';
    for (let i = 0; i < counts.length; i++) if ((counts[i] as number) < (before[i] as number)) return 'reset';
    for (let i = 0; i < counts.length; i++) counts[i] = (counts[i] as number) - (before[i] as number);
    point.count -= previous.count;
    return 'delta';
  }
  const e = point.exponential;
  if (e === undefined) return 'reset';
  // The SDK lowers the scale as values spread (never raises it): bring the previous buckets
  // down to the current scale, where each new bucket is 2^shift old ones.
  if (e.scale > previous.scale) return 'reset';
  const shift = previous.scale - e.scale;
  const divisor = 2 ** shift;
  const aligned = new Array<number>(e.counts.length).fill(0);
  for (let k = 0; k < previous.expCounts.length; k++) {
    const c = previous.expCounts[k] as number;
    if (c === 0) continue;
    const at = Math.floor((previous.offset + k) / divisor) - e.offset;
    if (at < 0 || at >= aligned.length) return 'reset';
    aligned[at] = (aligned[at] as number) + c;
  }
  if (e.zeroCount < previous.zeroCount || e.negativeCount < previous.negativeCount) return 'reset';
  for (let i = 0; i < aligned.length; i++) if ((e.counts[i] as number) < (aligned[i] as number)) return 'reset';
  for (let i = 0; i < aligned.length; i++) e.counts[i] = (e.counts[i] as number) - (aligned[i] as number);
  e.zeroCount -= previous.zeroCount;
  e.negativeCount -= previous.negativeCount;
  point.count -= previous.count;
  return 'delta';
}
