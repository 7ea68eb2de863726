// OTLP/HTTP traces in JSON (what the official exporters send with http/json), turned into
// the span shape GuardianSpanProcessor reads, so a fleet can send its spans to `serve`. A
// payload that is not a trace export request is refused with a 400 naming the bad field.
import { SpanKind, SpanStatusCode, type HrTime, type SpanContext } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { z } from 'zod';
import { describeIssue, toSchemaIssues } from '../core/parse-flags.js';

const anyValue: z.ZodType<unknown> = z.lazy(() =>
  z.looseObject({
    stringValue: z.string().optional(),
    boolValue: z.boolean().optional(),
    intValue: z.union([z.number(), z.string()]).optional(),
    doubleValue: z.number().optional(),
    arrayValue: z.looseObject({ values: z.array(anyValue).optional() }).optional(),
  }),
);
const keyValue = z.looseObject({ key: z.string(), value: anyValue.optional() });
const nanos = z.union([z.string().regex(/^\d+$/), z.number().nonnegative()]);
const otlpSpan = z.looseObject({
  traceId: z.string().min(1),
  spanId: z.string().min(1),
  parentSpanId: z.string().optional(),
  flags: z.number().int().optional(),
  name: z.string().optional(),
  kind: z.number().int().min(0).max(5).optional(),
  startTimeUnixNano: nanos,
  endTimeUnixNano: nanos,
  attributes: z.array(keyValue).optional(),
  events: z.array(z.looseObject({ name: z.string(), attributes: z.array(keyValue).optional() })).optional(),
  status: z.looseObject({ code: z.number().int().min(0).max(2).optional() }).optional(),
});
const exportRequest = z.looseObject({
  resourceSpans: z.array(z.looseObject({ scopeSpans: z.array(z.looseObject({ spans: z.array(otlpSpan).optional() })).optional() })).optional(),
});
type OtlpSpan = z.output<typeof otlpSpan>;

export class OtlpPayloadError extends Error {
  override readonly name = 'OtlpPayloadError';
}

const IS_REMOTE_KNOWN = 0x100;
const IS_REMOTE = 0x200;

function scalar(value: unknown): string | number | boolean | undefined {
  const v = value as { stringValue?: string; boolValue?: boolean; intValue?: number | string; doubleValue?: number } | undefined;
  if (v === undefined) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  return v.doubleValue;
}

function attributesOf(list: readonly z.output<typeof keyValue>[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    const v = scalar(value);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

function hrDuration(start: string | number, end: string | number): HrTime {
  const ns = BigInt(end) - BigInt(start);
  const positive = ns > 0n ? ns : 0n;
  return [Number(positive / 1_000_000_000n), Number(positive % 1_000_000_000n)];
}

/** The few members of ReadableSpan the guardian's processor reads, from one OTLP span. */
function toReadableSpan(span: OtlpSpan): ReadableSpan {
  const context: SpanContext = { traceId: span.traceId, spanId: span.spanId, traceFlags: 1 };
  const hasParent = span.parentSpanId !== undefined && span.parentSpanId !== '' && !/^0+$/.test(span.parentSpanId);
  // Without the flag bits an exporter gives no word on remoteness; a span sent alone by its
  // own service is then taken as local to that service's trace.
  const remote = span.flags !== undefined && (span.flags & IS_REMOTE_KNOWN) !== 0 ? (span.flags & IS_REMOTE) !== 0 : false;
  const kind = span.kind === undefined || span.kind === 0 ? SpanKind.INTERNAL : ((span.kind - 1) as SpanKind);
  const code = span.status?.code === 2 ? SpanStatusCode.ERROR : span.status?.code === 1 ? SpanStatusCode.OK : SpanStatusCode.UNSET;
  return {
    name: span.name ?? '',
    kind,
    spanContext: () => context,
    parentSpanContext: hasParent ? { traceId: span.traceId, spanId: span.parentSpanId as string, traceFlags: 1, isRemote: remote } : undefined,
    attributes: attributesOf(span.attributes),
    events: (span.events ?? []).map((e) => ({ name: e.name, attributes: attributesOf(e.attributes), time: [0, 0] as HrTime, droppedAttributesCount: 0 })),
    status: { code },
    duration: hrDuration(span.startTimeUnixNano, span.endTimeUnixNano),
  } as unknown as ReadableSpan;
}

/**
 * The spans of an OTLP JSON export request, oldest end first (children end before their
 * roots, and the processor collects exposures from children as they end).
 */
export function readOtlpTraces(body: string): ReadableSpan[] {
  let data: unknown;
  try {
    data = JSON.parse(body);
  } catch (err) {
    throw new OtlpPayloadError(`not JSON: ${(err as Error).message}`);
  }
  const parsed = exportRequest.safeParse(data);
  if (!parsed.success) {
    throw new OtlpPayloadError(`not an OTLP trace export request: ${toSchemaIssues(parsed.error, data).slice(0, 3).map(describeIssue).join('; ')}`);
  }
  const spans: OtlpSpan[] = [];
  for (const rs of parsed.data.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
  spans.sort((a, b) => (BigInt(a.endTimeUnixNano) < BigInt(b.endTimeUnixNano) ? -1 : BigInt(a.endTimeUnixNano) > BigInt(b.endTimeUnixNano) ? 1 : 0));
  return spans.map(toReadableSpan);
}
