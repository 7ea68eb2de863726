// OTLP/JSON export requests (traces and logs) as the OTLP/JSON mapping defines them: hex ids,
// 64-bit times as decimal strings (or integers), enums as integers, lowerCamelCase keys. The
// parsed document is walked by hand into the same structs as protobuf; nested values are
// never descended into, and a bad field is a 400 naming where it is.
import type { DecodedBatch } from './otlp-proto-decoder.js';
import {
  addExposure,
  type DecodedLogRecord,
  type DecodedSpan,
  isEvaluationEventName,
  KEY_EVENT_NAME,
  KEY_FLAG,
  KEY_HTTP_STATUS,
  KEY_VARIANT,
  MAX_EXPOSURES_PER_SPAN,
  OtlpPayloadError,
  WANTED_KEY_MAP,
} from './otlp-records.js';
import { EVENT_FEATURE_FLAG_EVALUATION } from '../telemetry/names.js';
import { type Json, fail, list, object } from './otlp-json-reading.js';

const HEX_TRACE_ID = /^[0-9a-fA-F]{32}$/;
const HEX_SPAN_ID = /^[0-9a-fA-F]{16}$/;
const DIGITS = /^\d{1,20}$/;

/**
 * Nanoseconds since the epoch as [ms above the last 6 digits, the last 6 digits in ns], so
 * differences stay exact; fractions and signs are refused (the mapping sends integers).
 */
function nanos(value: unknown, where: string, out: Float64Array, at: number): void {
  if (value === undefined) {
    out[at] = 0;
    out[at + 1] = 0;
    return;
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) fail(where, 'a non-negative integer of nanoseconds (a decimal string for 64-bit values)', value);
    out[at] = Math.floor(value / 1e6);
    out[at + 1] = value % 1e6;
    return;
  }
  if (typeof value !== 'string' || !DIGITS.test(value)) fail(where, 'a non-negative integer of nanoseconds as a decimal string', value);
  const cut = value.length - 6;
  out[at] = cut > 0 ? Number(value.slice(0, cut)) : 0;
  out[at + 1] = Number(cut > 0 ? value.slice(cut) : value);
}

function id(value: unknown, pattern: RegExp, where: string, what: string): string {
  if (typeof value !== 'string' || !pattern.test(value)) fail(where, what, value);
  return value.toLowerCase();
}

function optionalId(value: unknown, where: string): string {
  if (value === undefined || value === null || value === '') return '';
  const text = id(value, HEX_SPAN_ID, where, 'a span id of 16 hex digits');
  return text === '0000000000000000' ? '' : text;
}

function enumValue(value: unknown, where: string, max: number): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) fail(where, `an integer enum value 0..${max}`, value);
  return value;
}

/** The scalar of an AnyValue: string or number; nested values are not looked at. */
interface Scalar {
  text: string | undefined;
  number: number;
}

function scalarOf(value: unknown, out: Scalar): void {
  out.text = undefined;
  out.number = Number.NaN;
  if (typeof value !== 'object' || value === null) return;
  const v = value as Json;
  if (typeof v.stringValue === 'string') out.text = v.stringValue;
  else if (typeof v.intValue === 'number' || typeof v.intValue === 'string') out.number = Number(v.intValue);
  else if (typeof v.doubleValue === 'number') out.number = v.doubleValue;
}

/** Reads the wanted keys of an attribute list; returns nothing, fills `found` by key id. */
function readAttributes(parent: Json, where: string, found: (keyId: number, value: Scalar) => void, scratch: Scalar): void {
  const attributes = list(parent, 'attributes', where);
  for (let i = 0; i < attributes.length; i++) {
    const kv = attributes[i] as Json | null;
    if (typeof kv !== 'object' || kv === null) fail(`${where}.attributes[${i}]`, 'a key-value object', kv);
    if (typeof kv.key !== 'string') fail(`${where}.attributes[${i}].key`, 'a string', kv.key);
    const keyId = WANTED_KEY_MAP.get(kv.key);
    if (keyId === undefined) continue;
    scalarOf(kv.value, scratch);
    found(keyId, scratch);
  }
}

export class OtlpJsonDecoder {
  private readonly times = new Float64Array(4);
  private readonly scratch: Scalar = { text: undefined, number: Number.NaN };
  private flag: string | undefined;
  private variant: string | undefined;
  private httpStatus = 0;
  private eventName = false;
  private readonly collect = (keyId: number, value: Scalar) => {
    if (keyId === KEY_FLAG) this.flag = value.text;
    else if (keyId === KEY_VARIANT) this.variant = value.text;
    else if (keyId === KEY_HTTP_STATUS) this.httpStatus = !Number.isNaN(value.number) ? value.number : Number(value.text ?? 0) || 0;
    else if (keyId === KEY_EVENT_NAME) this.eventName = value.text === EVENT_FEATURE_FLAG_EVALUATION;
  };

  /** The spans of a JSON ExportTraceServiceRequest, appended to `batch`; throws OtlpPayloadError. */
  decodeTraces(body: string, batch: DecodedBatch): void {
    this.decodeTracesValue(parse(body), batch);
  }

  /** The same, from an already parsed request (a replay line). */
  decodeTracesValue(value: unknown, batch: DecodedBatch): void {
    const root = object(value, 'request');
    const resources = list(root, 'resourceSpans', 'request');
    for (let i = 0; i < resources.length; i++) {
      const rs = object(resources[i], `resourceSpans[${i}]`);
      const scopes = list(rs, 'scopeSpans', `resourceSpans[${i}]`);
      for (let j = 0; j < scopes.length; j++) {
        const ss = object(scopes[j], `resourceSpans[${i}].scopeSpans[${j}]`);
        const spans = list(ss, 'spans', `resourceSpans[${i}].scopeSpans[${j}]`);
        for (let k = 0; k < spans.length; k++) this.readSpan(object(spans[k], `resourceSpans[${i}].scopeSpans[${j}].spans[${k}]`), `resourceSpans[${i}].scopeSpans[${j}].spans[${k}]`, batch.nextSpan());
      }
    }
  }

  /** The log records of a JSON ExportLogsServiceRequest, appended to `batch`; throws OtlpPayloadError. */
  decodeLogs(body: string, batch: DecodedBatch): void {
    this.decodeLogsValue(parse(body), batch);
  }

  /** The same, from an already parsed request (a replay line). */
  decodeLogsValue(value: unknown, batch: DecodedBatch): void {
    const root = object(value, 'request');
    const resources = list(root, 'resourceLogs', 'request');
    for (let i = 0; i < resources.length; i++) {
      const rl = object(resources[i], `resourceLogs[${i}]`);
      const scopes = list(rl, 'scopeLogs', `resourceLogs[${i}]`);
      for (let j = 0; j < scopes.length; j++) {
        const sl = object(scopes[j], `resourceLogs[${i}].scopeLogs[${j}]`);
        const records = list(sl, 'logRecords', `resourceLogs[${i}].scopeLogs[${j}]`);
        for (let k = 0; k < records.length; k++) this.readLog(object(records[k], `resourceLogs[${i}].scopeLogs[${j}].logRecords[${k}]`), `resourceLogs[${i}].scopeLogs[${j}].logRecords[${k}]`, batch.nextLog());
      }
    }
  }

  private readSpan(json: Json, where: string, span: DecodedSpan): void {
    span.traceId = id(json.traceId, HEX_TRACE_ID, `${where}.traceId`, 'a trace id of 32 hex digits');
    id(json.spanId, HEX_SPAN_ID, `${where}.spanId`, 'a span id of 16 hex digits');
    span.hasParent = optionalId(json.parentSpanId, `${where}.parentSpanId`) !== '';
    span.kind = enumValue(json.kind, `${where}.kind`, 5);
    if (json.flags !== undefined) {
      if (typeof json.flags !== 'number' || !Number.isInteger(json.flags) || json.flags < 0) fail(`${where}.flags`, 'a non-negative integer', json.flags);
      span.flags = json.flags;
    }
    const times = this.times;
    nanos(json.startTimeUnixNano, `${where}.startTimeUnixNano`, times, 0);
    nanos(json.endTimeUnixNano, `${where}.endTimeUnixNano`, times, 2);
    const durationMs = times[2]! - times[0]! + (times[3]! - times[1]!) / 1e6;
    span.durationMs = durationMs > 0 ? durationMs : 0;
    span.endTimeMs = times[2]! + times[3]! / 1e6;
    if (json.status !== undefined && json.status !== null) span.statusCode = enumValue(object(json.status, `${where}.status`).code, `${where}.status.code`, 2);
    this.flag = undefined;
    this.variant = undefined;
    this.httpStatus = 0;
    readAttributes(json, where, this.collect, this.scratch);
    span.httpStatus = this.httpStatus;
    const attrFlag = this.flag;
    const attrVariant = this.variant;
    let fromEvents = false;
    const events = list(json, 'events', where);
    for (let i = 0; i < events.length; i++) {
      const event = object(events[i], `${where}.events[${i}]`);
      if (typeof event.name !== 'string' || !isEvaluationEventName(event.name)) continue;
      this.flag = undefined;
      this.variant = undefined;
      readAttributes(event, `${where}.events[${i}]`, this.collect, this.scratch);
      if (this.flag === undefined) continue;
      fromEvents = true;
      if (this.variant === undefined || !addExposure(span.exposures, this.flag, this.variant, MAX_EXPOSURES_PER_SPAN)) span.unattributable++;
    }
    if (!fromEvents && attrFlag !== undefined) {
      if (attrVariant === undefined) span.unattributable++;
      else addExposure(span.exposures, attrFlag, attrVariant, MAX_EXPOSURES_PER_SPAN);
    }
  }

  private readLog(json: Json, where: string, record: DecodedLogRecord): void {
    const times = this.times;
    nanos(json.timeUnixNano, `${where}.timeUnixNano`, times, 0);
    nanos(json.observedTimeUnixNano, `${where}.observedTimeUnixNano`, times, 2);
    record.timeMs = times[0]! !== 0 || times[1]! !== 0 ? times[0]! + times[1]! / 1e6 : times[2]! + times[3]! / 1e6;
    const traceId = json.traceId === undefined || json.traceId === '' ? '' : id(json.traceId, HEX_TRACE_ID, `${where}.traceId`, 'a trace id of 32 hex digits');
    record.traceId = /^0*$/.test(traceId) ? '' : traceId;
    optionalId(json.spanId, `${where}.spanId`);
    this.flag = undefined;
    this.variant = undefined;
    this.eventName = false;
    readAttributes(json, where, this.collect, this.scratch);
    record.flagKey = this.flag;
    record.variant = this.variant;
    record.isEvaluation = json.eventName === EVENT_FEATURE_FLAG_EVALUATION || this.eventName;
  }
}

function parse(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch (err) {
    throw new OtlpPayloadError(`not JSON: ${(err as Error).message}`);
  }
}

