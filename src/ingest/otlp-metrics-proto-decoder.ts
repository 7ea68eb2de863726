// OTLP protobuf ExportMetricsServiceRequest decoded by hand (field numbers from
// opentelemetry/proto/metrics/v1/metrics.proto): a metric's name is read first and metrics
// the mapping does not use are skipped by length; the wanted ones become MetricPoints.
import { ProtoError, ProtoReader } from './proto-reader.js';
import { OtlpPayloadError } from './otlp-records.js';
import { type AttributeValue, attributeKey, type DecodedMetrics, type MetricKind, type MetricPoint, newMetricPoint } from './otlp-metric-points.js';

// Tags as numbers (field * 8 + wire type: 0 varint, 1 fixed64, 2 length-delimited).
const LEN = (field: number) => field * 8 + 2;
const I64 = (field: number) => field * 8 + 1;
const VAR = (field: number) => field * 8;

const NS_PER_MS = 1e6;

function zigzag(n: number): number {
  // Varints here are below 2^53; a sint32's zigzag fits 32 bits.
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

function int64(r: ProtoReader): number {
  if (r.pos + 8 > r.end) throw new ProtoError(`truncated sfixed64 at byte ${r.pos}`);
  const value = Number(r.buf.readBigInt64LE(r.pos));
  r.pos += 8;
  return value;
}

function readAnyValue(r: ProtoReader, end: number): AttributeValue {
  let value: AttributeValue = '';
  while (r.pos < end) {
    const t = r.tag();
    switch (t) {
      case LEN(1): {
        const e = r.lengthEnd();
        value = r.utf8(r.pos, e);
        r.pos = e;
        break;
      }
      case VAR(2):
        value = r.varint() !== 0;
        break;
      case VAR(3): {
        // int64 as a varint: negative values take ten bytes and come out past 2^63.
        const n = r.varint();
        value = n >= 2 ** 63 ? n - 2 ** 64 : n;
        break;
      }
      case I64(4):
        value = r.double();
        break;
      default: {
        // Arrays, key-value lists and bytes name a stream by their bytes; they are never judged.
        const start = r.pos;
        r.skip(t & 7);
        value = `bytes:${r.hex(start, r.pos)}`;
      }
    }
  }
  return value;
}

function readAttribute(r: ProtoReader, end: number, into: Map<string, AttributeValue>): void {
  let key = '';
  let value: AttributeValue = '';
  while (r.pos < end) {
    const t = r.tag();
    if (t === LEN(1)) {
      const e = r.lengthEnd();
      key = r.utf8(r.pos, e);
      r.pos = e;
    } else if (t === LEN(2)) {
      const e = r.lengthEnd();
      value = readAnyValue(r, e);
      r.pos = e;
    } else r.skip(t & 7);
  }
  into.set(key, value);
}

/** A Resource or InstrumentationScope message: its attributes (field 1 / 3) and, for a scope, name and version. */
function readResource(r: ProtoReader, end: number): string {
  const attributes = new Map<string, AttributeValue>();
  while (r.pos < end) {
    const t = r.tag();
    if (t === LEN(1)) {
      const e = r.lengthEnd();
      readAttribute(r, e, attributes);
      r.pos = e;
    } else r.skip(t & 7);
  }
  return attributeKey(attributes);
}

function readScope(r: ProtoReader, end: number): string {
  let name = '';
  let version = '';
  const attributes = new Map<string, AttributeValue>();
  while (r.pos < end) {
    const t = r.tag();
    if (t === LEN(1) || t === LEN(2)) {
      const e = r.lengthEnd();
      if (t === LEN(1)) name = r.utf8(r.pos, e);
      else version = r.utf8(r.pos, e);
      r.pos = e;
    } else if (t === LEN(3)) {
      const e = r.lengthEnd();
      readAttribute(r, e, attributes);
      r.pos = e;
    } else r.skip(t & 7);
  }
  return `${JSON.stringify(name)}@${JSON.stringify(version)}${attributeKey(attributes)}`;
}

function fixed64s(r: ProtoReader, t: number, field: number, into: number[]): void {
  if (t === I64(field)) {
    into.push(r.fixed64());
    return;
  }
  const e = r.lengthEnd();
  while (r.pos < e) into.push(r.fixed64());
  if (r.pos !== e) throw new ProtoError(`packed fixed64 field ${field} is not a multiple of 8 bytes`);
}

function doubles(r: ProtoReader, t: number, field: number, into: number[]): void {
  if (t === I64(field)) {
    into.push(r.double());
    return;
  }
  const e = r.lengthEnd();
  while (r.pos < e) into.push(r.double());
  if (r.pos !== e) throw new ProtoError(`packed double field ${field} is not a multiple of 8 bytes`);
}

function varints(r: ProtoReader, t: number, field: number, into: number[]): void {
  if (t === VAR(field)) {
    into.push(r.varint());
    return;
  }
  const e = r.lengthEnd();
  const outer = r.end;
  r.end = e;
  try {
    while (r.pos < e) into.push(r.varint());
  } finally {
    r.end = outer;
  }
}

/** Buckets {offset = 1 (sint32), bucket_counts = 2 (packed uint64)}. */
function readBuckets(r: ProtoReader, end: number, counts: number[]): number {
  let offset = 0;
  while (r.pos < end) {
    const t = r.tag();
    if (t === VAR(1)) offset = zigzag(r.varint());
    else if (t === VAR(2) || t === LEN(2)) varints(r, t, 2, counts);
    else r.skip(t & 7);
  }
  return offset;
}

interface MetricHeader {
  kind: MetricKind;
  temporality: number;
  monotonic: boolean;
  name: string;
  unit: string;
  resourceKey: string;
  scopeKey: string;
}

export class OtlpMetricsProtoDecoder {
  private rawAttributes = '';

  /** The points of the wanted metrics of a protobuf ExportMetricsServiceRequest; throws OtlpPayloadError. */
  decode(body: Buffer, wanted: (metric: string) => boolean, out: DecodedMetrics): void {
    try {
      const r = new ProtoReader(body);
      while (r.pos < r.end) {
        const t = r.tag();
        if (t === LEN(1)) {
          const e = r.lengthEnd();
          this.resourceMetrics(r, e, wanted, out);
          r.pos = e;
        } else r.skip(t & 7);
      }
    } catch (err) {
      if (err instanceof ProtoError) throw new OtlpPayloadError(`malformed ExportMetricsServiceRequest: ${err.message}`);
      throw err;
    }
  }

  private resourceMetrics(r: ProtoReader, end: number, wanted: (metric: string) => boolean, out: DecodedMetrics): void {
    // The resource names every stream in it, wherever it sits in the message: find it first.
    const start = r.pos;
    let resourceKey = '';
    while (r.pos < end) {
      const t = r.tag();
      if (t === LEN(1)) {
        const e = r.lengthEnd();
        resourceKey = readResource(r, e);
        r.pos = e;
      } else r.skip(t & 7);
    }
    r.pos = start;
    while (r.pos < end) {
      const t = r.tag();
      if (t === LEN(2)) {
        const e = r.lengthEnd();
        this.scopeMetrics(r, e, resourceKey, wanted, out);
        r.pos = e;
      } else r.skip(t & 7);
    }
  }

  private scopeMetrics(r: ProtoReader, end: number, resourceKey: string, wanted: (metric: string) => boolean, out: DecodedMetrics): void {
    const start = r.pos;
    let scopeKey = '';
    while (r.pos < end) {
      const t = r.tag();
      if (t === LEN(1)) {
        const e = r.lengthEnd();
        scopeKey = readScope(r, e);
        r.pos = e;
      } else r.skip(t & 7);
    }
    r.pos = start;
    while (r.pos < end) {
      const t = r.tag();
      if (t === LEN(2)) {
        const e = r.lengthEnd();
        this.metric(r, e, resourceKey, scopeKey, wanted, out);
        r.pos = e;
      } else r.skip(t & 7);
    }
  }

  private metric(r: ProtoReader, end: number, resourceKey: string, scopeKey: string, wanted: (metric: string) => boolean, out: DecodedMetrics): void {
    const start = r.pos;
    const header: MetricHeader = { kind: 'gauge', temporality: 0, monotonic: false, name: '', unit: '', resourceKey, scopeKey };
    while (r.pos < end) {
      const t = r.tag();
      if (t === LEN(1) || t === LEN(3)) {
        const e = r.lengthEnd();
        if (t === LEN(1)) header.name = r.utf8(r.pos, e);
        else header.unit = r.utf8(r.pos, e);
        r.pos = e;
      } else r.skip(t & 7);
    }
    const use = wanted(header.name);
    r.pos = start;
    while (r.pos < end) {
      const t = r.tag();
      // gauge = 5, sum = 7, histogram = 9, exponential_histogram = 10, summary = 11.
      if (t === LEN(5) || t === LEN(7) || t === LEN(9) || t === LEN(10) || t === LEN(11)) {
        const e = r.lengthEnd();
        const field = t >>> 3;
        if (field === 11) out.summaryPoints += countPoints(r, e);
        else if (!use) out.skippedPoints += countPoints(r, e);
        else {
          header.kind = field === 5 ? 'gauge' : field === 7 ? 'sum' : field === 9 ? 'histogram' : 'exponential_histogram';
          this.data(r, e, header, out);
        }
        r.pos = e;
      } else r.skip(t & 7);
    }
  }

  /** Gauge / Sum / Histogram / ExponentialHistogram: data_points = 1, aggregation_temporality = 2, is_monotonic = 3. */
  private data(r: ProtoReader, end: number, header: MetricHeader, out: DecodedMetrics): void {
    const start = r.pos;
    header.temporality = 0;
    header.monotonic = false;
    while (r.pos < end) {
      const t = r.tag();
      if (t === VAR(2)) header.temporality = r.varint();
      else if (t === VAR(3)) header.monotonic = r.varint() !== 0;
      else r.skip(t & 7);
    }
    r.pos = start;
    while (r.pos < end) {
      const t = r.tag();
      if (t === LEN(1)) {
        const e = r.lengthEnd();
        const point = newMetricPoint();
        point.metric = header.name;
        point.unit = header.unit;
        point.kind = header.kind;
        point.temporality = header.temporality;
        point.monotonic = header.monotonic;
        this.rawAttributes = '';
        if (header.kind === 'gauge' || header.kind === 'sum') this.numberPoint(r, e, point);
        else if (header.kind === 'histogram') this.histogramPoint(r, e, point);
        else this.exponentialPoint(r, e, point);
        // The attributes' own bytes name the stream: a sender writes a series the same way
        // every time, and this costs a copy rather than a sort and a format per point.
        point.streamKey = `${header.resourceKey}\u0000${header.scopeKey}\u0000${header.name}\u0000${this.rawAttributes}`;
        out.points.push(point);
        r.pos = e;
      } else r.skip(t & 7);
    }
  }

  /** One KeyValue of a data point: kept raw for the stream's key, and read into the point. */
  private pointAttribute(r: ProtoReader, point: MetricPoint): void {
    const e = r.lengthEnd();
    this.rawAttributes += r.buf.toString('latin1', r.pos, e);
    readAttribute(r, e, point.attributes);
    r.pos = e;
  }

  /** NumberDataPoint: start 2, time 3, as_double 4, as_int 6 (sfixed64), attributes 7, flags 8. */
  private numberPoint(r: ProtoReader, end: number, point: MetricPoint): void {
    while (r.pos < end) {
      const t = r.tag();
      switch (t) {
        case I64(2):
          point.startTimeMs = r.fixed64() / NS_PER_MS;
          break;
        case I64(3):
          point.timeMs = r.fixed64() / NS_PER_MS;
          break;
        case I64(4):
          point.value = r.double();
          break;
        case I64(6):
          point.value = int64(r);
          break;
        case LEN(7):
          this.pointAttribute(r, point);
          break;
        case VAR(8):
          point.flags = r.varint();
          break;
        default:
          r.skip(t & 7);
      }
    }
  }

  /** HistogramDataPoint: start 2, time 3, count 4, bucket_counts 6, explicit_bounds 7, attributes 9, flags 10. */
  private histogramPoint(r: ProtoReader, end: number, point: MetricPoint): void {
    while (r.pos < end) {
      const t = r.tag();
      switch (t) {
        case I64(2):
          point.startTimeMs = r.fixed64() / NS_PER_MS;
          break;
        case I64(3):
          point.timeMs = r.fixed64() / NS_PER_MS;
          break;
        case I64(4):
          point.count = r.fixed64();
          break;
        case I64(6):
        case LEN(6):
          fixed64s(r, t, 6, point.bucketCounts);
          break;
        case I64(7):
        case LEN(7):
          doubles(r, t, 7, point.bounds);
          break;
        case LEN(9):
          this.pointAttribute(r, point);
          break;
        case VAR(10):
          point.flags = r.varint();
          break;
        default:
          r.skip(t & 7);
      }
    }
  }

  /** ExponentialHistogramDataPoint: attributes 1, start 2, time 3, count 4, scale 6, zero_count 7, positive 8, negative 9, flags 10. */
  private exponentialPoint(r: ProtoReader, end: number, point: MetricPoint): void {
    const exponential = { scale: 0, zeroCount: 0, offset: 0, counts: [] as number[], negativeCount: 0 };
    point.exponential = exponential;
    while (r.pos < end) {
      const t = r.tag();
      switch (t) {
        case LEN(1):
          this.pointAttribute(r, point);
          break;
        case I64(2):
          point.startTimeMs = r.fixed64() / NS_PER_MS;
          break;
        case I64(3):
          point.timeMs = r.fixed64() / NS_PER_MS;
          break;
        case I64(4):
          point.count = r.fixed64();
          break;
        case VAR(6):
          exponential.scale = zigzag(r.varint());
          break;
        case I64(7):
          exponential.zeroCount = r.fixed64();
          break;
        case LEN(8): {
          const e = r.lengthEnd();
          exponential.offset = readBuckets(r, e, exponential.counts);
          r.pos = e;
          break;
        }
        case LEN(9): {
          const e = r.lengthEnd();
          const negative: number[] = [];
          readBuckets(r, e, negative);
          for (const c of negative) exponential.negativeCount += c;
          r.pos = e;
          break;
        }
        case VAR(10):
          point.flags = r.varint();
          break;
        default:
          r.skip(t & 7);
      }
    }
  }
}

/** Data points in a metric data message not decoded further (counted, not read). */
function countPoints(r: ProtoReader, end: number): number {
  let n = 0;
  while (r.pos < end) {
    const t = r.tag();
    if (t === LEN(1)) n++;
    r.skip(t & 7);
  }
  return n;
}
