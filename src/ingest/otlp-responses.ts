// The answers OTLP defines, in protobuf and JSON: Export*ServiceResponse with partial_success
// when part of a request was refused (empty when all was accepted), and google.rpc.Status for
// errors, so exporters log the reason rather than a bare status code.

export type Signal = 'traces' | 'logs' | 'metrics';

function varint(value: number, out: number[]): void {
  let v = value;
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function field(number: number, wire: number, out: number[]): void {
  varint(number * 8 + wire, out);
}

function lengthDelimited(number: number, bytes: Buffer | readonly number[], out: number[]): void {
  field(number, 2, out);
  varint(bytes.length, out);
  for (const b of bytes) out.push(b);
}

/** An Export{Trace,Logs,Metrics}ServiceResponse: empty, or partial_success {rejected, error_message} (the same field numbers in all three). */
export function exportResponseProto(rejected: number, message: string): Buffer {
  if (rejected === 0 && message === '') return Buffer.alloc(0);
  const partial: number[] = [];
  if (rejected > 0) {
    field(1, 0, partial);
    varint(rejected, partial);
  }
  if (message !== '') lengthDelimited(2, Buffer.from(message, 'utf8'), partial);
  const out: number[] = [];
  lengthDelimited(1, partial, out);
  return Buffer.from(out);
}

export function exportResponseJson(signal: Signal, rejected: number, message: string): string {
  if (rejected === 0 && message === '') return '{}';
  const count = signal === 'traces' ? 'rejectedSpans' : signal === 'logs' ? 'rejectedLogRecords' : 'rejectedDataPoints';
  return JSON.stringify({ partialSuccess: { [count]: String(rejected), errorMessage: message } });
}

/** google.rpc.Status with the gRPC code matching an HTTP refusal. */
export function statusProto(code: number, message: string): Buffer {
  const out: number[] = [];
  field(1, 0, out);
  varint(code, out);
  lengthDelimited(2, Buffer.from(message, 'utf8'), out);
  return Buffer.from(out);
}

export function statusJson(code: number, message: string): string {
  return JSON.stringify({ code, message });
}

/** gRPC status codes for the HTTP refusals (google.rpc.Code). */
export const GRPC_CODE = { invalidArgument: 3, resourceExhausted: 8, unauthenticated: 16, permissionDenied: 7, unavailable: 14, unimplemented: 12 } as const;
