// OTLP/gRPC: the trace, logs and metrics Export services (default port 4317) on @grpc/grpc-js, with
// the hand decoder as the request deserializer (grpc-js handles gzip and caps the message,
// decompressed, at the body limit), bearer tokens in the `authorization` metadata, and the
// same refusals, counts and partial-success answers as OTLP/HTTP.
import { type Metadata, Server, ServerCredentials, type ServiceDefinition, status as grpcStatus, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import type { OtlpIngest } from '../ingest/otlp-ingest.js';
import type { OtlpMetricsIngest } from '../ingest/otlp-metrics-ingest.js';
import { DecodedMetrics } from '../ingest/otlp-metric-points.js';
import { OtlpMetricsProtoDecoder } from '../ingest/otlp-metrics-proto-decoder.js';
import { DecodedBatch, OtlpProtoDecoder } from '../ingest/otlp-proto-decoder.js';
import { OtlpPayloadError } from '../ingest/otlp-records.js';
import { exportResponseProto, type Signal } from '../ingest/otlp-responses.js';
import type { AuthResult } from './bearer-auth.js';

export const TRACE_SERVICE_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
export const LOGS_SERVICE_PATH = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';
export const METRICS_SERVICE_PATH = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export';

export interface OtlpGrpcOptions {
  readonly host: string;
  readonly port: number;
  readonly maxBodyBytes: number;
  /** TLS key and certificate (PEM); plaintext without. */
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer };
  /** Checks the `authorization` metadata for the ingest role; absent: no authentication. */
  readonly authenticate?: (header: string | undefined) => AuthResult;
  /** Where MetricsService points go; without it the service is not offered. */
  readonly metrics?: OtlpMetricsIngest;
}

const identity = (b: Buffer) => b;

function service(path: string): ServiceDefinition {
  return {
    Export: { path, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: 'export' },
  };
}

function header(metadata: Metadata): string | undefined {
  const value = metadata.get('authorization')[0];
  return typeof value === 'string' ? value : value?.toString('utf8');
}

export class OtlpGrpcReceiver {
  private readonly decoder = new OtlpProtoDecoder();
  private readonly batch = new DecodedBatch();
  private readonly metricsDecoder = new OtlpMetricsProtoDecoder();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(ingest: OtlpIngest, options: OtlpGrpcOptions): Promise<OtlpGrpcReceiver> {
    const server = new Server({ 'grpc.max_receive_message_length': options.maxBodyBytes });
    const credentials = options.tls === undefined ? ServerCredentials.createInsecure() : ServerCredentials.createSsl(null, [{ private_key: options.tls.key, cert_chain: options.tls.cert }], false);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync(`${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`, credentials, (err, bound) => (err === null ? resolve(bound) : reject(err))));
    const receiver = new OtlpGrpcReceiver(server, port);
    const handler = (signal: Signal) => (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => receiver.export(ingest, options, signal, call, callback);
    server.addService(service(TRACE_SERVICE_PATH), { Export: handler('traces') });
    server.addService(service(LOGS_SERVICE_PATH), { Export: handler('logs') });
    if (options.metrics !== undefined) server.addService(service(METRICS_SERVICE_PATH), { Export: handler('metrics') });
    return receiver;
  }

  /** Stops at once: exporters retry what was in flight. Idempotent. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.tryShutdown(() => resolve());
      this.server.forceShutdown();
    });
  }

  private export(ingest: OtlpIngest, options: OtlpGrpcOptions, signal: Signal, call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void {
    if (options.authenticate !== undefined) {
      const result = options.authenticate(header(call.metadata));
      if (result !== 'ok') {
        const message = result === 'forbidden' ? 'this token may not send telemetry (it lacks the ingest role)' : 'send authorization: Bearer TOKEN (OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20TOKEN)';
        ingest.refuse('unauthenticated', `gRPC ${signal}: ${message}`);
        callback({ code: result === 'forbidden' ? grpcStatus.PERMISSION_DENIED : grpcStatus.UNAUTHENTICATED, details: message });
        return;
      }
    }
    if (signal === 'metrics') return this.exportMetrics(ingest, options.metrics as OtlpMetricsIngest, call, callback);
    const batch = this.batch;
    batch.reset();
    try {
      if (signal === 'traces') this.decoder.decodeTraces(call.request, batch);
      else this.decoder.decodeLogs(call.request, batch);
    } catch (err) {
      const message = err instanceof OtlpPayloadError ? err.message : `not an OTLP export request: ${String(err)}`;
      ingest.refuse('malformed', message);
      callback({ code: grpcStatus.INVALID_ARGUMENT, details: message });
      return;
    }
    const { rejected, message } = signal === 'traces' ? ingest.ingestSpans(batch) : ingest.ingestLogs(batch);
    callback(null, exportResponseProto(rejected, message));
  }

  private exportMetrics(ingest: OtlpIngest, metrics: OtlpMetricsIngest, call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void {
    const decoded = new DecodedMetrics();
    try {
      this.metricsDecoder.decode(call.request, metrics.wanted, decoded);
    } catch (err) {
      const message = err instanceof OtlpPayloadError ? err.message : `not an OTLP export request: ${String(err)}`;
      ingest.refuse('malformed', message);
      callback({ code: grpcStatus.INVALID_ARGUMENT, details: message });
      return;
    }
    const { rejected, message } = metrics.ingest(decoded);
    callback(null, exportResponseProto(rejected, message));
  }
}
