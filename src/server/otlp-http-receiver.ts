// OTLP/HTTP on the 4318-style routes, POST /v1/traces, /v1/logs and /v1/metrics: protobuf or JSON, plain,
// gzip or deflate, answered in the request's content type (an empty or partial-success
// Export*ServiceResponse, or a google.rpc.Status for an error) and every refusal counted by
// reason. A malformed payload is a 400 and changes nothing: a batch is decoded whole before
// any of it is ingested.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DecodedBatch, OtlpProtoDecoder } from '../ingest/otlp-proto-decoder.js';
import { OtlpJsonDecoder } from '../ingest/otlp-json-decoder.js';
import { OtlpPayloadError } from '../ingest/otlp-records.js';
import type { OtlpIngest, RefusalReason } from '../ingest/otlp-ingest.js';
import type { OtlpMetricsIngest } from '../ingest/otlp-metrics-ingest.js';
import { DecodedMetrics } from '../ingest/otlp-metric-points.js';
import { OtlpMetricsProtoDecoder } from '../ingest/otlp-metrics-proto-decoder.js';
import { OtlpMetricsJsonDecoder } from '../ingest/otlp-metrics-json-decoder.js';
import { exportResponseJson, exportResponseProto, GRPC_CODE, type Signal, statusJson, statusProto } from '../ingest/otlp-responses.js';
import { type Body, BodyError, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONCURRENT_BODY_BYTES, MemoryBudget, readBody } from './body-reader.js';

export interface OtlpHttpLimits {
  /** Largest body accepted, on the wire and decompressed (default 16 MiB). */
  readonly maxBodyBytes?: number;
  /** Bytes all bodies in flight may hold at once (default 64 MiB); beyond it, 503 and retry. */
  readonly maxConcurrentBodyBytes?: number;
}

const PROTOBUF = 'application/x-protobuf';
const JSON_TYPE = 'application/json';

const HTTP_TO_GRPC: Record<number, number> = { 400: GRPC_CODE.invalidArgument, 401: GRPC_CODE.unauthenticated, 403: GRPC_CODE.permissionDenied, 413: GRPC_CODE.resourceExhausted, 415: GRPC_CODE.unimplemented, 503: GRPC_CODE.unavailable };

export class OtlpHttpReceiver {
  readonly maxBodyBytes: number;
  private readonly budget: MemoryBudget;
  private readonly proto = new OtlpProtoDecoder();
  private readonly json = new OtlpJsonDecoder();
  private readonly batch = new DecodedBatch();
  private readonly metricsProto = new OtlpMetricsProtoDecoder();
  private readonly metricsJson = new OtlpMetricsJsonDecoder();

  constructor(
    private readonly ingest: OtlpIngest,
    limits: OtlpHttpLimits = {},
    /** Where /v1/metrics points go; without it, /v1/metrics refuses with 404. */
    private readonly metrics?: OtlpMetricsIngest,
  ) {
    this.maxBodyBytes = limits.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.budget = new MemoryBudget(limits.maxConcurrentBodyBytes ?? DEFAULT_MAX_CONCURRENT_BODY_BYTES);
  }

  /** Bytes of request bodies held right now. */
  get bodyBytesInFlight(): number {
    return this.budget.inUse;
  }

  /** Answers a refusal in the request's content type (JSON unless it asked for protobuf) and counts it. */
  refuse(request: IncomingMessage, response: ServerResponse, status: number, reason: RefusalReason, message: string): void {
    this.ingest.refuse(reason, message);
    const asProto = contentType(request) === PROTOBUF;
    const code = HTTP_TO_GRPC[status] ?? GRPC_CODE.invalidArgument;
    const headers: Record<string, string> = { 'content-type': asProto ? PROTOBUF : JSON_TYPE };
    if (status === 503) headers['retry-after'] = '1';
    if (!response.headersSent) response.writeHead(status, headers).end(asProto ? statusProto(code, message) : `${statusJson(code, message)}\n`);
  }

  async handle(signal: Signal, request: IncomingMessage, response: ServerResponse): Promise<void> {
    const type = contentType(request);
    if (type !== PROTOBUF && type !== JSON_TYPE) {
      request.resume();
      return this.refuse(request, response, 415, 'unsupported_media_type', `content-type ${type || '(none)'} is not accepted on /v1/${signal}; send application/x-protobuf or application/json (OTLP/HTTP)`);
    }
    let body;
    try {
      body = await readBody(request, this.maxBodyBytes, this.budget);
    } catch (err) {
      if (err instanceof BodyError) return this.refuse(request, response, err.failure.status, err.failure.reason, err.failure.message);
      throw err;
    }
    if (signal === 'metrics') return this.handleMetrics(type, body, request, response);
    // Decoding and ingesting are synchronous, so one reused batch serves every request; a
    // batch is decoded whole first, so a bad payload is refused with nothing ingested.
    const batch = this.batch;
    batch.reset();
    try {
      if (type === PROTOBUF) {
        if (signal === 'traces') this.proto.decodeTraces(body.bytes, batch);
        else this.proto.decodeLogs(body.bytes, batch);
      } else {
        const text = body.bytes.toString('utf8');
        if (signal === 'traces') this.json.decodeTraces(text, batch);
        else this.json.decodeLogs(text, batch);
      }
    } catch (err) {
      // Whatever a payload makes the decoders throw is the payload's fault: a 400, never a 500.
      return this.refuse(request, response, 400, 'malformed', err instanceof OtlpPayloadError ? err.message : `not an OTLP export request: ${String(err)}`);
    } finally {
      body.release();
    }
    const { rejected, message } = signal === 'traces' ? this.ingest.ingestSpans(batch) : this.ingest.ingestLogs(batch);
    if (type === PROTOBUF) response.writeHead(200, { 'content-type': PROTOBUF }).end(exportResponseProto(rejected, message));
    else response.writeHead(200, { 'content-type': JSON_TYPE }).end(exportResponseJson(signal, rejected, message));
  }

  private handleMetrics(type: string, body: Body, request: IncomingMessage, response: ServerResponse): void {
    const metrics = this.metrics;
    if (metrics === undefined) {
      body.release();
      return this.refuse(request, response, 404, 'malformed', 'this server does not take OTLP metrics');
    }
    const decoded = new DecodedMetrics();
    try {
      if (type === PROTOBUF) this.metricsProto.decode(body.bytes, metrics.wanted, decoded);
      else this.metricsJson.decode(body.bytes.toString('utf8'), metrics.wanted, decoded);
    } catch (err) {
      return this.refuse(request, response, 400, 'malformed', err instanceof OtlpPayloadError ? err.message : `not an OTLP export request: ${String(err)}`);
    } finally {
      body.release();
    }
    const { rejected, message } = metrics.ingest(decoded);
    if (type === PROTOBUF) response.writeHead(200, { 'content-type': PROTOBUF }).end(exportResponseProto(rejected, message));
    else response.writeHead(200, { 'content-type': JSON_TYPE }).end(exportResponseJson('metrics', rejected, message));
  }
}

function contentType(request: IncomingMessage): string {
  return (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}
