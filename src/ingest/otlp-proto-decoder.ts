// OTLP protobuf export requests (traces and logs) decoded by hand: only the fields the
// guardian needs are read, everything else is skipped by length without being parsed, and
// spans and log records land in reused structs, so a span costs no allocation beyond its ids.
import { ProtoError, ProtoReader, WIRE_LENGTH } from './proto-reader.js';
import {
  addExposure,
  type DecodedLogRecord,
  type DecodedSpan,
  EVALUATION_EVENT_NAMES,
  KEY_EVENT_NAME,
  KEY_FLAG,
  KEY_HTTP_STATUS,
  KEY_NONE,
  KEY_VARIANT,
  MAX_EXPOSURES_PER_SPAN,
  newDecodedLogRecord,
  newDecodedSpan,
  OtlpPayloadError,
  WANTED_KEYS,
} from './otlp-records.js';
import { EVENT_FEATURE_FLAG_EVALUATION } from '../telemetry/names.js';

const EVENT_NAMES = EVALUATION_EVENT_NAMES.map((name) => Buffer.from(name, 'utf8'));
const EVALUATION_EVENT = Buffer.from(EVENT_FEATURE_FLAG_EVALUATION, 'utf8');
// Wanted keys by byte length: most attribute keys are rejected by one array read.
const KEYS_BY_LENGTH: (Buffer[] | undefined)[] = [];
const IDS_BY_LENGTH: (number[] | undefined)[] = [];
for (const [key, id] of WANTED_KEYS) {
  const bytes = Buffer.from(key, 'utf8');
  (KEYS_BY_LENGTH[bytes.length] ??= []).push(bytes);
  (IDS_BY_LENGTH[bytes.length] ??= []).push(id);
}

// Tags are written out as numbers (field * 8 + wire type): a switch evaluates its case
// expressions in order at run time, so computed cases would cost a call each per field.
const tag = (field: number, wire: number) => field * 8 + wire;

const MAX_KEPT_STRUCTS = 8192;

/** Reused growable arrays of decoded structs: a batch keeps its objects between requests. */
export class DecodedBatch {
  readonly spans: DecodedSpan[] = [];
  spanCount = 0;
  readonly logs: DecodedLogRecord[] = [];
  logCount = 0;

  reset(): void {
    // After a burst of a huge request, keep only a usual batch's worth of structs.
    if (this.spans.length > MAX_KEPT_STRUCTS) this.spans.length = MAX_KEPT_STRUCTS;
    if (this.logs.length > MAX_KEPT_STRUCTS) this.logs.length = MAX_KEPT_STRUCTS;
    this.spanCount = 0;
    this.logCount = 0;
  }

  nextSpan(): DecodedSpan {
    let span = this.spans[this.spanCount];
    if (span === undefined) {
      span = newDecodedSpan();
      this.spans.push(span);
    }
    this.spanCount++;
    span.traceId = '';
    span.hasParent = false;
    span.kind = 0;
    span.flags = 0;
    span.statusCode = 0;
    span.httpStatus = 0;
    span.endTimeMs = 0;
    span.durationMs = 0;
    span.exposures.size = 0;
    span.unattributable = 0;
    return span;
  }

  nextLog(): DecodedLogRecord {
    let record = this.logs[this.logCount];
    if (record === undefined) {
      record = newDecodedLogRecord();
      this.logs.push(record);
    }
    this.logCount++;
    record.timeMs = 0;
    record.traceId = '';
    record.isEvaluation = false;
    record.flagKey = undefined;
    record.variant = undefined;
    return record;
  }
}

/** The scalar an AnyValue holds, in the reader's scratch: a string, or a number (NaN if none). */
interface Scalar {
  text: string | undefined;
  number: number;
}

function keyId(r: ProtoReader, start: number, end: number): number {
  const keys = KEYS_BY_LENGTH[end - start];
  if (keys === undefined) return KEY_NONE;
  for (let i = 0; i < keys.length; i++) if (r.equals(start, end, keys[i] as Buffer)) return (IDS_BY_LENGTH[end - start] as number[])[i] as number;
  return KEY_NONE;
}

function readAnyValue(r: ProtoReader, end: number, out: Scalar): void {
  out.text = undefined;
  out.number = Number.NaN;
  while (r.pos < end) {
    const t = r.tag();
    switch (t) {
      case 10 /* field 1, WIRE_LENGTH */: {
        const e = r.lengthEnd();
        out.text = r.utf8(r.pos, e);
        r.pos = e;
        break;
      }
      case 24 /* field 3, WIRE_VARINT */:
        out.number = r.varint();
        break;
      case 33 /* field 4, WIRE_FIXED64 */:
        out.number = r.double();
        break;
      default:
        // bool, arrays, kvlists and bytes are skipped whole: no recursion into nested values.
        r.skip(t & 7);
    }
  }
}

/**
 * Reads one KeyValue; returns the key's id (KEY_NONE for keys not wanted, whose value is
 * skipped unread) with its scalar in `out`.
 */
function readKeyValue(r: ProtoReader, end: number, out: Scalar): number {
  let id = KEY_NONE;
  out.text = undefined;
  out.number = Number.NaN;
  while (r.pos < end) {
    const t = r.tag();
    if (t === 10 /* field 1, WIRE_LENGTH */) {
      const e = r.lengthEnd();
      id = keyId(r, r.pos, e);
      r.pos = e;
    } else if (t === 18 /* field 2, WIRE_LENGTH */ && id !== KEY_NONE) {
      const e = r.lengthEnd();
      const saved = r.end;
      r.end = e;
      readAnyValue(r, e, out);
      r.end = saved;
      r.pos = e;
    } else {
      r.skip(t & 7);
    }
  }
  return id;
}

/** Per-decoder scratch, so decoding allocates nothing per attribute. */
class SpanScratch implements Scalar {
  text: string | undefined = undefined;
  number = Number.NaN;
  readonly times = new Float64Array(4);
}

function httpStatusOf(value: Scalar): number {
  if (!Number.isNaN(value.number)) return value.number;
  if (value.text !== undefined) {
    const n = Number(value.text);
    return Number.isInteger(n) ? n : 0;
  }
  return 0;
}

function readEvent(r: ProtoReader, end: number, span: DecodedSpan, s: SpanScratch): boolean {
  let isEvaluation = false;
  let flagKey: string | undefined;
  let variant: string | undefined;
  while (r.pos < end) {
    const t = r.tag();
    if (t === 18 /* field 2, WIRE_LENGTH */) {
      const e = r.lengthEnd();
      for (let i = 0; i < EVENT_NAMES.length; i++) if (r.equals(r.pos, e, EVENT_NAMES[i] as Buffer)) isEvaluation = true;
      r.pos = e;
      // Serializers write the name before the attributes: other events are skipped unread.
      if (!isEvaluation) {
        r.pos = end;
        return false;
      }
    } else if (t === 26 /* field 3, WIRE_LENGTH */) {
      const e = r.lengthEnd();
      const saved = r.end;
      r.end = e;
      const id = readKeyValue(r, e, s);
      r.end = saved;
      r.pos = e;
      if (id === KEY_FLAG) flagKey = s.text;
      else if (id === KEY_VARIANT) variant = s.text;
    } else {
      r.skip(t & 7);
    }
  }
  if (!isEvaluation || flagKey === undefined) return false;
  if (variant === undefined) span.unattributable++;
  else if (!addExposure(span.exposures, flagKey, variant, MAX_EXPOSURES_PER_SPAN)) span.unattributable++;
  return true;
}

function readSpan(r: ProtoReader, end: number, span: DecodedSpan, s: SpanScratch): void {
  const times = s.times;
  times.fill(0);
  let attrFlag: string | undefined;
  let attrVariant: string | undefined;
  let fromEvents = false;
  let spanIdLength = 0;
  while (r.pos < end) {
    const t = r.tag();
    switch (t) {
      case 10 /* field 1, WIRE_LENGTH */: {
        const e = r.lengthEnd();
        span.traceId = r.hex(r.pos, e);
        r.pos = e;
        break;
      }
      case 18 /* field 2, WIRE_LENGTH */: {
        // Only its presence matters: attribution is by trace.
        const e = r.lengthEnd();
        spanIdLength = e - r.pos;
        r.pos = e;
        break;
      }
      case 34 /* field 4, WIRE_LENGTH */: {
        const e = r.lengthEnd();
        for (let i = r.pos; i < e; i++) {
          if (r.buf[i] !== 0) {
            span.hasParent = true;
            break;
          }
        }
        r.pos = e;
        break;
      }
      case 48 /* field 6, WIRE_VARINT */:
        span.kind = r.varint();
        break;
      case 57 /* field 7, WIRE_FIXED64 */:
        r.fixed64Halves(times, 0);
        break;
      case 65 /* field 8, WIRE_FIXED64 */:
        r.fixed64Halves(times, 2);
        break;
      case 74 /* field 9, WIRE_LENGTH */: {
        const e = r.lengthEnd();
        const saved = r.end;
        r.end = e;
        const id = readKeyValue(r, e, s);
        r.end = saved;
        r.pos = e;
        if (id === KEY_FLAG) attrFlag = s.text;
        else if (id === KEY_VARIANT) attrVariant = s.text;
        else if (id === KEY_HTTP_STATUS) span.httpStatus = httpStatusOf(s);
        break;
      }
      case 90 /* field 11, WIRE_LENGTH */: {
        const e = r.lengthEnd();
        const saved = r.end;
        r.end = e;
        if (readEvent(r, e, span, s)) fromEvents = true;
        r.end = saved;
        r.pos = e;
        break;
      }
      case 122 /* field 15, WIRE_LENGTH */: {
        const e = r.lengthEnd();
        while (r.pos < e) {
          const st = r.tag();
          if (st === 24 /* field 3, WIRE_VARINT */) span.statusCode = r.varint();
          else {
            const saved = r.end;
            r.end = e;
            r.skip(st & 7);
            r.end = saved;
          }
        }
        r.pos = e;
        break;
      }
      case 133 /* field 16, WIRE_FIXED32 */:
        span.flags = r.fixed32();
        break;
      default:
        r.skip(t & 7);
    }
  }
  if (span.traceId.length !== 32 || spanIdLength !== 8) {
    throw new OtlpPayloadError(`a span's trace_id must be 16 bytes and its span_id 8 bytes (got ${span.traceId.length / 2} and ${spanIdLength})`);
  }
  // Exact nanosecond difference from the halves; the end time itself needs only ms precision.
  const durationNs = (times[2]! - times[0]!) * 4294967296 + (times[3]! - times[1]!);
  span.durationMs = durationNs > 0 ? durationNs / 1e6 : 0;
  span.endTimeMs = (times[2]! * 4294967296 + times[3]!) / 1e6;
  if (!fromEvents && attrFlag !== undefined) {
    if (attrVariant === undefined) span.unattributable++;
    else addExposure(span.exposures, attrFlag, attrVariant, MAX_EXPOSURES_PER_SPAN);
  }
}

function wrap(err: unknown): never {
  if (err instanceof ProtoError) throw new OtlpPayloadError(`not an OTLP protobuf export request: ${err.message}`);
  if (err instanceof OtlpPayloadError) throw err;
  throw new OtlpPayloadError(`not an OTLP protobuf export request: ${String(err)}`);
}

/** Descends into each length-delimited `field` of the message [r.pos, end) and calls `each`. */
function forEachMessage(r: ProtoReader, end: number, field: number, each: (r: ProtoReader, end: number) => void): void {
  const wanted = tag(field, WIRE_LENGTH);
  while (r.pos < end) {
    const t = r.tag();
    if (t !== wanted) {
      r.skip(t & 7);
      continue;
    }
    const e = r.lengthEnd();
    const saved = r.end;
    r.end = e;
    each(r, e);
    r.end = saved;
    r.pos = e;
  }
}

/** Decodes protobuf OTLP trace and logs export requests, with reused scratch and callbacks. */
export class OtlpProtoDecoder {
  private readonly scratch = new SpanScratch();
  private batch: DecodedBatch = new DecodedBatch();
  private readonly onSpan = (r: ProtoReader, end: number) => readSpan(r, end, this.batch.nextSpan(), this.scratch);
  private readonly onScopeSpans = (r: ProtoReader, end: number) => forEachMessage(r, end, 2, this.onSpan);
  private readonly onResourceSpans = (r: ProtoReader, end: number) => forEachMessage(r, end, 2, this.onScopeSpans);
  private readonly onLog = (r: ProtoReader, end: number) => this.readLog(r, end, this.batch.nextLog());
  private readonly onScopeLogs = (r: ProtoReader, end: number) => forEachMessage(r, end, 2, this.onLog);
  private readonly onResourceLogs = (r: ProtoReader, end: number) => forEachMessage(r, end, 2, this.onScopeLogs);

  /** The spans of an ExportTraceServiceRequest, appended to `batch`; throws OtlpPayloadError. */
  decodeTraces(body: Buffer, batch: DecodedBatch): void {
    this.batch = batch;
    try {
      const r = new ProtoReader(body);
      forEachMessage(r, body.length, 1, this.onResourceSpans);
    } catch (err) {
      wrap(err);
    }
  }

  /** The log records of an ExportLogsServiceRequest, appended to `batch`; throws OtlpPayloadError. */
  decodeLogs(body: Buffer, batch: DecodedBatch): void {
    this.batch = batch;
    try {
      const r = new ProtoReader(body);
      forEachMessage(r, body.length, 1, this.onResourceLogs);
    } catch (err) {
      wrap(err);
    }
  }

  private readLog(r: ProtoReader, end: number, record: DecodedLogRecord): void {
    const s = this.scratch;
    let time = 0;
    let observed = 0;
    while (r.pos < end) {
      const t = r.tag();
      switch (t) {
        case 9 /* field 1, WIRE_FIXED64 */:
          time = r.fixed64();
          break;
        case 89 /* field 11, WIRE_FIXED64 */:
          observed = r.fixed64();
          break;
        case 50 /* field 6, WIRE_LENGTH */: {
          const e = r.lengthEnd();
          const saved = r.end;
          r.end = e;
          const id = readKeyValue(r, e, s);
          r.end = saved;
          r.pos = e;
          if (id === KEY_FLAG) record.flagKey = s.text;
          else if (id === KEY_VARIANT) record.variant = s.text;
          else if (id === KEY_EVENT_NAME && s.text === EVENT_FEATURE_FLAG_EVALUATION) record.isEvaluation = true;
          break;
        }
        case 74 /* field 9, WIRE_LENGTH */: {
          const e = r.lengthEnd();
          record.traceId = e > r.pos ? r.hex(r.pos, e) : '';
          r.pos = e;
          break;
        }
        case 98 /* field 12, WIRE_LENGTH */: {
          const e = r.lengthEnd();
          if (r.equals(r.pos, e, EVALUATION_EVENT)) record.isEvaluation = true;
          r.pos = e;
          break;
        }
        default:
          r.skip(t & 7);
      }
    }
    if (/^0*$/.test(record.traceId)) record.traceId = '';
    record.timeMs = (time !== 0 ? time : observed) / 1e6;
  }
}
