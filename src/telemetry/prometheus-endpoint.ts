// The Prometheus scrape endpoint: a PrometheusExporter (a MetricReader) served on our own
// HTTP server, because the exporter's built-in server turns port 0 into 9464 and starts in
// its constructor. metricsHandler() mounts the same exporter on a server someone else owns.
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { quoteValue } from '../guardian/option-checks.js';

export interface PrometheusEndpointOptions {
  /** 0 picks a free port; `port` on the result says which. */
  readonly port: number;
  /** Interface to listen on (default 127.0.0.1: metrics are not published unless asked). */
  readonly host?: string;
  /** Path that serves the metrics (default /metrics); every other path is 404. */
  readonly path?: string;
}

export interface PrometheusEndpoint {
  /** The exporter: register it with a MeterProvider (`readers: [endpoint.reader]`), which owns its shutdown. */
  readonly reader: PrometheusExporter;
  readonly port: number;
  readonly url: string;
  /** Stops listening and frees the port. Idempotent. */
  close(): Promise<void>;
}

export type MetricsRequestHandler = (request: IncomingMessage, response: ServerResponse) => void;

/** Serves `exporter`'s metrics in Prometheus text format on any server's route. */
export function metricsHandler(exporter: PrometheusExporter): MetricsRequestHandler {
  return (request, response) => {
    try {
      exporter.getMetricsRequestHandler(request, response);
    } catch {
      // The exporter answers collection failures itself; this is anything else.
      if (!response.headersSent) response.statusCode = 500;
      response.end();
    }
  };
}

function pathOf(request: IncomingMessage): string | undefined {
  try {
    return new URL(request.url ?? '/', 'http://localhost').pathname;
  } catch {
    return undefined;
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    // Idle keep-alive sockets would hold close() open until they time out.
    server.closeIdleConnections();
    server.close(() => resolve());
  });
}

/** Starts serving a new PrometheusExporter; rejects if the port cannot be had. */
export async function startPrometheusEndpoint(options: PrometheusEndpointOptions): Promise<PrometheusEndpoint> {
  const { port } = options;
  const host = options.host ?? '127.0.0.1';
  const path = options.path ?? '/metrics';
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RangeError(`startPrometheusEndpoint: port must be an integer in [0, 65535], got ${quoteValue(port)}`);
  }
  if (!path.startsWith('/')) throw new RangeError(`startPrometheusEndpoint: path must start with "/", got ${quoteValue(path)}`);
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const serve = metricsHandler(exporter);
  const server = createServer((request, response) => {
    const requested = pathOf(request);
    if (requested === path) {
      serve(request, response);
      return;
    }
    response.statusCode = requested === undefined ? 400 : 404;
    response.end();
  });
  // Like the exporter's own server, it does not keep the process alive by itself.
  server.unref();
  await listen(server, port, host);
  const bound = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    reader: exporter,
    port: bound,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}${path}`,
    close: () => (closing ??= closeServer(server)),
  };
}
