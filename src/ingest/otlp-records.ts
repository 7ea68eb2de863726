// What ingest keeps of an OTLP span or log record: only the fields attribution and outcomes
// need, in flat reusable structs that the protobuf and JSON decoders fill in place (a batch
// reuses the same objects request after request), and the OTLP error the routes answer 400.
import {
  ATTR_EVENT_NAME,
  ATTR_FEATURE_FLAG_KEY,
  ATTR_FEATURE_FLAG_RESULT_VARIANT,
  ATTR_FEATURE_FLAG_VARIANT_PREVIOUS,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_STATUS_CODE_PREVIOUS,
  EVENT_FEATURE_FLAG_EVALUATION,
  EVENT_FEATURE_FLAG_PREVIOUS,
} from '../telemetry/names.js';

/** A payload that is not a well-formed OTLP export request: answered 400, nothing recorded. */
export class OtlpPayloadError extends Error {
  override readonly name = 'OtlpPayloadError';
}

/** OTLP's span kinds (opentelemetry.proto.trace.v1.Span.SpanKind), not the API's enum. */
export const OTLP_KIND = { unspecified: 0, internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const;
export const OTLP_STATUS_ERROR = 2;
/** Span.flags bits saying whether the parent's remoteness is known, and whether it is remote. */
export const SPAN_FLAGS_HAS_IS_REMOTE = 0x100;
export const SPAN_FLAGS_IS_REMOTE = 0x200;

/** The flag evaluations found on one span or log record (parallel arrays; the first `size` count). */
export interface Exposures {
  size: number;
  readonly flagKeys: string[];
  readonly variants: string[];
}

export interface DecodedSpan {
  /** Lowercase hex. */
  traceId: string;
  /** Whether the span names a parent (a parent span id not empty and not all zeros). */
  hasParent: boolean;
  kind: number;
  flags: number;
  statusCode: number;
  /** http.response.status_code (or the older http.status_code); 0 when absent. */
  httpStatus: number;
  endTimeMs: number;
  durationMs: number;
  /** Evaluations read from the span's events, or else from its own feature_flag.* attributes. */
  readonly exposures: Exposures;
  /** Evaluations with a flag key but no variant (value-only): counted, never attributed. */
  unattributable: number;
}

export interface DecodedLogRecord {
  /** time_unix_nano, or observed_time_unix_nano when the producer left it 0. */
  timeMs: number;
  /** '' when the record was emitted outside any span (lowercase hex otherwise). */
  traceId: string;
  /** Whether this is a feature_flag.evaluation event (event_name, or an event.name attribute). */
  isEvaluation: boolean;
  flagKey: string | undefined;
  variant: string | undefined;
}

export function newDecodedSpan(): DecodedSpan {
  return { traceId: '', hasParent: false, kind: 0, flags: 0, statusCode: 0, httpStatus: 0, endTimeMs: 0, durationMs: 0, exposures: { size: 0, flagKeys: [], variants: [] }, unattributable: 0 };
}

export function newDecodedLogRecord(): DecodedLogRecord {
  return { timeMs: 0, traceId: '', isEvaluation: false, flagKey: undefined, variant: undefined };
}

/** Adds one evaluation unless the same (flag, variant) is already there; false when full. */
export function addExposure(exposures: Exposures, flagKey: string, variant: string, max: number): boolean {
  const { size, flagKeys, variants } = exposures;
  for (let i = 0; i < size; i++) if (flagKeys[i] === flagKey && variants[i] === variant) return true;
  if (size >= max) return false;
  flagKeys[size] = flagKey;
  variants[size] = variant;
  exposures.size = size + 1;
  return true;
}

/** The attribute keys ingest reads; every other attribute is skipped unread. */
export const KEY_NONE = 0;
export const KEY_FLAG = 1;
export const KEY_VARIANT = 2;
export const KEY_HTTP_STATUS = 3;
export const KEY_EVENT_NAME = 4;

export const WANTED_KEYS: readonly (readonly [string, number])[] = [
  [ATTR_FEATURE_FLAG_KEY, KEY_FLAG],
  [ATTR_FEATURE_FLAG_RESULT_VARIANT, KEY_VARIANT],
  [ATTR_FEATURE_FLAG_VARIANT_PREVIOUS, KEY_VARIANT],
  [ATTR_HTTP_RESPONSE_STATUS_CODE, KEY_HTTP_STATUS],
  [ATTR_HTTP_STATUS_CODE_PREVIOUS, KEY_HTTP_STATUS],
  [ATTR_EVENT_NAME, KEY_EVENT_NAME],
];

export const WANTED_KEY_MAP: ReadonlyMap<string, number> = new Map(WANTED_KEYS);

/** Span event names that carry a flag evaluation: the current one and the one before it. */
export const EVALUATION_EVENT_NAMES: readonly string[] = [EVENT_FEATURE_FLAG_EVALUATION, EVENT_FEATURE_FLAG_PREVIOUS];

export function isEvaluationEventName(name: string): boolean {
  return name === EVENT_FEATURE_FLAG_EVALUATION || name === EVENT_FEATURE_FLAG_PREVIOUS;
}

/** The most evaluations one span or log record contributes (more are dropped and counted). */
export const MAX_EXPOSURES_PER_SPAN = 16;
