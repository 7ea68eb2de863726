// `serve`: one long-running process that keeps the flags, runs the guardian and the plans on
// a store, receives OTLP/HTTP traces from a fleet, and serves /metrics, /healthz, /readyz and
// /api/status (what `status` and `health` read). It stops cleanly: in-flight ticks finish
// and every plan's state is already in the store.
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import type { Clock } from '../core/clock.js';
import { CohortRegistry } from '../guardian/cohort-registry.js';
import { GuardianSpanProcessor } from '../guardian/guardian-span-processor.js';
import { RolloutGuardian } from '../guardian/rollout-guardian.js';
import { PlanRunner } from '../deploy/plan-runner.js';
import type { FlagStore, StoreEvent } from '../stores/flag-store.js';
import { StoreWriter } from '../stores/store-writer.js';
import { systemClock } from '../stores/system-clock.js';
import { GuardianTelemetry } from '../telemetry/guardian-telemetry.js';
import { METER_NAME } from '../telemetry/names.js';
import { metricsHandler } from '../telemetry/prometheus-endpoint.js';
import { OtlpPayloadError, readOtlpTraces } from './otlp-receiver.js';
import { type ServerStatus, serverStatus } from './server-status.js';

export interface RolloutServerOptions {
  readonly store: FlagStore;
  readonly port: number;
  readonly host?: string;
  readonly clock?: Clock;
  readonly slotMs?: number;
  readonly slotCount?: number;
  /** Judge and report without writing rollbacks or plan steps. */
  readonly dryRun?: boolean;
  /** Where log lines go (default: nowhere). */
  readonly log?: (line: string) => void;
  /** Start the guardian's and the plans' timers (default true; tests tick by hand). */
  readonly autoTick?: boolean;
}

const MAX_BODY_BYTES = 8 * 1024 * 1024;

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new OtlpPayloadError(`body over ${MAX_BODY_BYTES} bytes`));
        request.destroy();
      } else chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
  response.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json' }).end(text);
}

export class RolloutServer {
  readonly registry: CohortRegistry;
  readonly processor: GuardianSpanProcessor;
  readonly guardian: RolloutGuardian;
  readonly plans: PlanRunner;
  private readonly store: FlagStore;
  private readonly clock: Clock;
  private readonly log: (line: string) => void;
  private readonly meterProvider: MeterProvider;
  private readonly telemetry: GuardianTelemetry;
  private readonly http: Server;
  private readonly unwatch: () => void;
  private storeTrouble: string | undefined;
  private loaded = false;
  private closing: Promise<void> | undefined;
  private boundPort = 0;

  private constructor(options: RolloutServerOptions) {
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? (() => undefined);
    const slotMs = options.slotMs ?? 5_000;
    this.registry = new CohortRegistry({ slotMs, slotCount: options.slotCount ?? 72 });
    this.processor = new GuardianSpanProcessor({ registry: this.registry, clock: this.clock });
    this.guardian = new RolloutGuardian({ source: this.store, writer: new StoreWriter(this.store, this.clock), registry: this.registry, clock: this.clock, dryRun: options.dryRun });
    this.plans = new PlanRunner({ store: this.store, judgments: this.guardian, clock: this.clock, dryRun: options.dryRun });
    const exporter = new PrometheusExporter({ preventServerStart: true });
    this.meterProvider = new MeterProvider({ readers: [exporter] });
    this.telemetry = new GuardianTelemetry({ meter: this.meterProvider.getMeter(METER_NAME), registry: this.registry, guardian: this.guardian, processorStats: () => this.processor.stats, clock: this.clock, plans: this.store });
    const metrics = metricsHandler(exporter);
    this.unwatch = this.store.watch((event) => this.onStoreEvent(event));
    this.guardian.addListener({
      rollback: (r) => this.log(`${r.dryRun ? '[dry run] would roll back' : 'rolled back'} ${r.flagKey}: ${r.reason}`),
      error: (e) => this.log(`guardian: ${e.message}`),
    });
    this.plans.onEvent((e) => this.log(`${e.dryRun ? '[dry run] would ' : ''}${e.action.kind} ${e.flagKey}: ${e.action.reason}`));
    this.http = createServer((request, response) => {
      this.route(request, response, metrics).catch((err: unknown) => {
        if (!response.headersSent) send(response, 500, { error: String(err) });
      });
    });
  }

  /** Loads the flags, starts listening and, unless told not to, ticking. */
  static async start(options: RolloutServerOptions): Promise<RolloutServer> {
    const server = new RolloutServer(options);
    await server.store.load();
    server.loaded = true;
    await new Promise<void>((resolve, reject) => {
      server.http.once('error', reject);
      server.http.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
    });
    server.boundPort = (server.http.address() as AddressInfo).port;
    if (options.autoTick ?? true) {
      server.guardian.start();
      server.plans.start(server.registry.slotMs);
    }
    return server;
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    return `http://127.0.0.1:${this.boundPort}`;
  }

  /** What /api/status serves. */
  async status(): Promise<ServerStatus> {
    const snapshot = await this.store.load();
    return serverStatus({
      snapshot,
      nowMs: this.clock.now(),
      guardian: this.guardian,
      plans: this.plans,
      processor: this.processor.stats,
      storeTrouble: this.storeTrouble,
      slotMs: this.registry.slotMs,
      ...this.recentOutcomes(),
    });
  }

  /** Outcomes in every cohort over the last minute (or the ring, if shorter). */
  private recentOutcomes(): { recentOutcomes: number; recentWindowMs: number } {
    const recentWindowMs = Math.min(60_000, this.registry.slotMs * (this.registry.slotCount - 1));
    const now = this.clock.now();
    let recentOutcomes = 0;
    for (const { window } of this.registry.cohorts()) recentOutcomes += window.merged(now - recentWindowMs, now + this.registry.slotMs).count;
    return { recentOutcomes, recentWindowMs };
  }

  /** Stops taking requests, lets running ticks finish, closes the store. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.http.closeAllConnections();
      await new Promise<void>((resolve) => this.http.close(() => resolve()));
      await this.guardian.shutdown();
      await this.plans.shutdown();
      this.telemetry.shutdown();
      this.unwatch();
      await this.meterProvider.shutdown();
      await this.processor.shutdown();
      await this.store.close();
    })();
    return this.closing;
  }

  private onStoreEvent(event: StoreEvent): void {
    if (event.type === 'unavailable') {
      this.storeTrouble = event.error.message;
      this.log(`store unavailable: ${event.error.message}`);
    } else if (event.type === 'available') {
      this.storeTrouble = undefined;
    } else if (event.type === 'invalid') {
      this.log(event.message);
    }
  }

  private async route(request: IncomingMessage, response: ServerResponse, metrics: (req: IncomingMessage, res: ServerResponse) => void): Promise<void> {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (request.method === 'POST' && path === '/v1/traces') return this.receiveTraces(request, response);
    if (request.method !== 'GET' && request.method !== 'HEAD') return send(response, 405, { error: `${request.method ?? ''} is not served here` });
    switch (path) {
      case '/metrics':
        return metrics(request, response);
      case '/healthz': {
        // Alive while the guardian keeps ticking: three slots without a tick is a stuck process.
        const last = this.guardian.lastTick;
        const stuck = last !== undefined && this.clock.now() - last > 3 * this.registry.slotMs;
        return send(response, stuck ? 503 : 200, stuck ? `guardian has not ticked for ${this.clock.now() - (last ?? 0)} ms\n` : 'ok\n');
      }
      case '/readyz': {
        if (!this.loaded) return send(response, 503, 'flags not loaded yet\n');
        if (this.storeTrouble !== undefined) return send(response, 503, `store unavailable: ${this.storeTrouble}\n`);
        // An empty store (Redis restarted without its data) or one serving its last good flags is not ready.
        const problem = await this.store.load().then((s) => s.problem, (err: unknown) => (err instanceof Error ? err.message : String(err)));
        if (problem !== undefined) return send(response, 503, `store not fit to serve: ${problem}\n`);
        return send(response, 200, 'ready\n');
      }
      case '/api/status':
        return send(response, 200, await this.status());
      default:
        return send(response, 404, { error: `no route ${path}; try /metrics, /healthz, /readyz, /api/status or POST /v1/traces` });
    }
  }

  private async receiveTraces(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim();
    if (type !== 'application/json') {
      return send(response, 415, { error: `content-type ${type || '(none)'} is not accepted; send OTLP/HTTP JSON (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json)` });
    }
    let spans;
    try {
      spans = readOtlpTraces(await readBody(request));
    } catch (err) {
      if (err instanceof OtlpPayloadError) return send(response, 400, { error: err.message });
      throw err;
    }
    for (const span of spans) this.processor.onEnd(span);
    send(response, 200, {});
  }
}
