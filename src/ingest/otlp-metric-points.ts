// What ingest keeps of an OTLP metric data point: one flat struct per point that the protobuf
// and JSON decoders (and the in-process MetricReader) fill, naming its stream (resource,
// scope, metric, point attributes) so cumulative points can be turned into deltas per stream.

/** opentelemetry.proto.metrics.v1.AggregationTemporality. */
export const TEMPORALITY_UNSPECIFIED = 0;
export const TEMPORALITY_DELTA = 1;
export const TEMPORALITY_CUMULATIVE = 2;

/** DataPointFlags.FLAG_NO_RECORDED_VALUE_MASK: the stream has ended (a staleness marker). */
export const FLAG_NO_RECORDED_VALUE = 1;

export type MetricKind = 'gauge' | 'sum' | 'histogram' | 'exponential_histogram';

export type AttributeValue = string | number | boolean;

/** Exponential buckets as OTLP sends them: bucket i covers (base^(offset+i), base^(offset+i+1)]. */
export interface ExponentialBuckets {
  scale: number;
  zeroCount: number;
  offset: number;
  counts: number[];
  /** Everything in the negative buckets, summed (a latency has none; they are kept as "fastest"). */
  negativeCount: number;
}

export interface MetricPoint {
  /** Resource attributes, scope, metric name and point attributes, as one canonical text. */
  streamKey: string;
  metric: string;
  unit: string;
  kind: MetricKind;
  temporality: number;
  monotonic: boolean;
  /** 0 when the sender does not know when the cumulative value started. */
  startTimeMs: number;
  timeMs: number;
  flags: number;
  /** The point's own attributes (scalars; nested values as text). */
  attributes: Map<string, AttributeValue>;
  /** A gauge's or sum's value. */
  value: number;
  /** A histogram's observation count. */
  count: number;
  /** Explicit bucket bounds in the metric's unit, and count per bucket (bounds.length + 1). */
  bounds: number[];
  bucketCounts: number[];
  exponential: ExponentialBuckets | undefined;
}

/** One export request, decoded: the points of the wanted metrics and what was passed over. */
export class DecodedMetrics {
  readonly points: MetricPoint[] = [];
  /** Points of metrics the mapping does not use (not decoded further). */
  skippedPoints = 0;
  /** Summary points: OTLP still defines them, but quantiles cannot be merged or judged. */
  summaryPoints = 0;
}

export function newMetricPoint(): MetricPoint {
  return {
    streamKey: '',
    metric: '',
    unit: '',
    kind: 'gauge',
    temporality: TEMPORALITY_UNSPECIFIED,
    monotonic: false,
    startTimeMs: 0,
    timeMs: 0,
    flags: 0,
    attributes: new Map(),
    value: 0,
    count: 0,
    bounds: [],
    bucketCounts: [],
    exponential: undefined,
  };
}

/**
 * Attributes as a canonical text (keys in order), so the same set always names the same
 * stream. Separators are control characters rather than JSON: this runs for every point.
 */
export function attributeKey(attributes: ReadonlyMap<string, AttributeValue>): string {
  if (attributes.size === 0) return '';
  let sorted = true;
  let previous = '';
  for (const key of attributes.keys()) {
    if (key < previous) {
      sorted = false;
      break;
    }
    previous = key;
  }
  let out = '';
  for (const key of sorted ? attributes.keys() : [...attributes.keys()].sort()) {
    const value = attributes.get(key);
    out += `${key}\u0001${typeof value === 'string' ? 's' : typeof value === 'number' ? 'n' : 'b'}${String(value)}\u0002`;
  }
  return out;
}

/** The stream a point belongs to. */
export function streamKeyOf(resourceKey: string, scopeKey: string, metric: string, pointAttributes: ReadonlyMap<string, AttributeValue>): string {
  return `${resourceKey}\u0000${scopeKey}\u0000${metric}\u0000${attributeKey(pointAttributes)}`;
}
