// `serve`: one long-running process that keeps the flags, runs the guardian and the plans on
// a store, receives OTLP traces, logs and metrics from a fleet (see docs/pipelines.md), and serves /metrics, /healthz, /readyz and
// /api/status (what `status` and `health` read). It stops cleanly: in-flight ticks finish
// and every plan's state is already in the store.
import { type IncomingMessage, type Server as HttpServer, type ServerResponse, createServer } from 'node:http';
import { type Server as HttpsServer, createServer as createHttpsServer } from 'node:https';
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
import { RedisFlagStore } from '../stores/redis-store.js';
import { type LeaseStatus, RedisLease } from '../stores/redis-lease.js';
import { systemClock } from '../runtime/system-clock.js';
import { GuardianTelemetry } from '../telemetry/guardian-telemetry.js';
import { METER_NAME } from '../telemetry/names.js';
import { metricsHandler } from '../telemetry/prometheus-endpoint.js';
import { OtlpIngest, type OtlpIngestOptions } from '../ingest/otlp-ingest.js';
import { PrometheusSource, type PrometheusSourceOptions, flagsWithPrometheusGuards } from '../ingest/prometheus-source.js';
import { SourceProblems } from '../guardian/source-problems.js';
import { OtlpMetricsIngest } from '../ingest/otlp-metrics-ingest.js';
import type { MetricsMapping } from '../ingest/metrics-mapping.js';
import { type OtlpHttpLimits, OtlpHttpReceiver } from './otlp-http-receiver.js';
import { OtlpGrpcReceiver } from './otlp-grpc-receiver.js';
import { type BearerAuth, type Role, refusalMessage } from './bearer-auth.js';
import { type ServerStatus, serverStatus } from './server-status.js';
import { ControlApi } from './control-api.js';
import { Notifier } from '../notify/notifier.js';
import type { NotifyConfig } from '../notify/notify-config.js';
import { StatusPage } from './status-page.js';

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
  /** OTLP/gRPC on this port (0 picks a free one); no gRPC when absent. */
  readonly grpcPort?: number;
  /**
   * Bearer tokens every route but /healthz and /readyz requires (ingest for OTLP, read for the
   * rest). Without them the server listens on 127.0.0.1 only, whatever `host` says.
   */
  readonly auth?: BearerAuth;
  /** TLS for HTTP and gRPC alike (PEM key and certificate). */
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer };
  /** OTLP ingest: event-time limits, request kinds, join bounds, body limits. */
  readonly ingest?: Omit<OtlpIngestOptions, 'sink' | 'clock'> & OtlpHttpLimits;
  /** Query this Prometheus each slot for the flags whose guard names PromQL (docs/prometheus-source.md). */
  readonly prometheus?: Omit<PrometheusSourceOptions, 'flags' | 'sink' | 'slotMs' | 'problems' | 'clock'>;
  /** Which OTLP metrics give requests, errors and latency (default: spanmetrics and http.server.request.duration). */
  readonly metricsMapping?: MetricsMapping;
  /** Cumulative metric streams remembered at most (default 100,000, about 0.8 KiB each; docs/fleet.md). */
  readonly maxMetricStreams?: number;
  /** The control API (/api/v1/*): the one origin given CORS headers (none by default), the body limit (64 KiB). */
  readonly control?: { readonly corsOrigin?: string; readonly maxBodyBytes?: number };
  /** This replica's name in the guardian lease on a Redis store (default host:pid:random). */
  readonly replicaName?: string;
  /** Webhook notifications of warnings, rollbacks, health checks and plan steps (secrets resolved). */
  readonly notify?: NotifyConfig;
  /** The notifier's jitter source (default Math.random; tests seed it). */
  readonly notifyRandom?: () => number;
}

/** A port that cannot be listened on (in use, not permitted): a configuration problem, not a bug. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
  response.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json' }).end(text);
}

export class RolloutServer {
  readonly registry: CohortRegistry;
  readonly processor: GuardianSpanProcessor;
  readonly guardian: RolloutGuardian;
  readonly plans: PlanRunner;
  /** Where OTLP spans and log records become outcomes, over HTTP and gRPC alike. */
  readonly ingest: OtlpIngest;
  /** Where OTLP metric data points become cohort aggregates (same event-time gate as spans). */
  readonly metricsIngest: OtlpMetricsIngest;
  /** OTLP/HTTP routes; its bodyBytesInFlight shows the body budget in use. */
  readonly otlpHttp: OtlpHttpReceiver;
  /** On a Redis store (not in dry run): the lease that makes one replica of several the acting one. */
  readonly lease: RedisLease | undefined;
  /** The Prometheus query source, when a Prometheus URL was given. */
  readonly prometheus: PrometheusSource | undefined;
  /** Metric sources' standing problems per flag, shown in verdicts and counted for /metrics. */
  readonly sourceProblems = new SourceProblems();
  /** Webhook delivery, when `notify` is configured. */
  readonly notifier: Notifier | undefined;
  /** The page at / and the last hour of each rollout its charts draw. */
  readonly statusPage: StatusPage;
  private readonly store: FlagStore;
  private readonly dryRun: boolean;
  private readonly clock: Clock;
  private readonly log: (line: string) => void;
  private readonly meterProvider: MeterProvider;
  private readonly telemetry: GuardianTelemetry;
  private readonly http: HttpServer | HttpsServer;
  private readonly auth: BearerAuth | undefined;
  private readonly controlApi: ControlApi;
  private readonly scheme: 'http' | 'https';
  private grpc: OtlpGrpcReceiver | undefined;
  private readonly unwatch: () => void;
  private storeTrouble: string | undefined;
  private loaded = false;
  private closing: Promise<void> | undefined;
  private boundPort = 0;
  private host = '127.0.0.1';

  private constructor(options: RolloutServerOptions) {
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? (() => undefined);
    const slotMs = options.slotMs ?? 5_000;
    this.registry = new CohortRegistry({ slotMs, slotCount: options.slotCount ?? 72 });
    this.processor = new GuardianSpanProcessor({ registry: this.registry, clock: this.clock });
    this.ingest = new OtlpIngest({ ...options.ingest, sink: this.registry, clock: this.clock });
    this.metricsIngest = new OtlpMetricsIngest({ sink: this.registry, clock: this.clock, gate: this.ingest.gate, mapping: options.metricsMapping, maxStreams: options.maxMetricStreams });
    this.otlpHttp = new OtlpHttpReceiver(this.ingest, options.ingest, this.metricsIngest);
    // A slot is judged once nothing more can arrive for it: the ingest's allowed lateness plus
    // the time a request may wait for its evaluation records.
    this.prometheus = options.prometheus === undefined ? undefined : new PrometheusSource({ ...options.prometheus, flags: this.store, sink: this.registry, slotMs, problems: this.sourceProblems, clock: this.clock });
    // ... and the time a slot's Prometheus numbers take to arrive: query delay, poll, timeout.
    const allowedLatenessMs = Math.max(this.ingest.gate.allowedLatenessMs + this.ingest.joinWaitMs, this.prometheus?.latenessNeededMs ?? 0);
    // Replicas on one Redis store share a lease: the holder acts through writes fenced by it,
    // the others judge and stand by (docs/fleet.md). Other stores have a single guardian.
    this.dryRun = options.dryRun ?? false;
    this.lease = this.store instanceof RedisFlagStore && !this.dryRun ? new RedisLease({ store: this.store, slotMs, clock: this.clock, owner: options.replicaName, log: this.log }) : undefined;
    const actingStore = this.lease?.fencedStore() ?? this.store;
    const writer = new StoreWriter(actingStore, this.clock);
    this.guardian = new RolloutGuardian({ source: this.store, writer: { rollback: (flagKey, by, evidence) => writer.rollbackOnce(flagKey, by, evidence) }, registry: this.registry, clock: this.clock, dryRun: options.dryRun, allowedLatenessMs, lease: this.lease, sourceProblems: this.sourceProblems });
    this.plans = new PlanRunner({ store: actingStore, judgments: this.guardian, clock: this.clock, dryRun: options.dryRun, lease: this.lease });
    // A new holder writes what it has already decided at once, not a slot later.
    this.lease?.onChange((acting) => {
      if (!acting) return;
      void this.guardian.tick();
      void this.plans.tick();
    });
    const notifier = options.notify === undefined ? undefined : new Notifier({ config: options.notify, clock: this.clock, random: options.notifyRandom });
    notifier?.watchGuardian(this.guardian);
    notifier?.watchPlans(this.plans);
    this.notifier = notifier;
    const exporter = new PrometheusExporter({ preventServerStart: true });
    this.meterProvider = new MeterProvider({ readers: [exporter] });
    this.telemetry = new GuardianTelemetry({ meter: this.meterProvider.getMeter(METER_NAME), registry: this.registry, guardian: this.guardian, processorStats: () => this.processor.stats, ingestStats: () => this.ingest.stats, metricsIngestStats: () => this.metricsIngest.stats, clock: this.clock, plans: this.store, planRunner: this.plans, leaseHolder: () => this.leaseStatus().acting, sourceProblems: this.sourceProblems, notifications: notifier === undefined ? undefined : () => notifier.stats() });
    const metrics = metricsHandler(exporter);
    this.unwatch = this.store.watch((event) => this.onStoreEvent(event));
    this.guardian.addListener({
      rollback: (r) => this.log(`${r.dryRun ? '[dry run] would roll back' : 'rolled back'} ${r.flagKey}: ${r.reason}`),
      error: (e) => this.log(`guardian: ${e.message}`),
    });
    this.plans.onEvent((e) => this.log(`${e.dryRun ? '[dry run] would ' : ''}${e.action.kind} ${e.flagKey}: ${e.action.reason}`));
    this.auth = options.auth;
    this.controlApi = new ControlApi({ ...options.control, store: this.store, clock: this.clock, auth: this.auth, log: this.log });
    this.statusPage = new StatusPage({ store: this.store, registry: this.registry, guardian: this.guardian, auth: this.auth, log: this.log });
    this.scheme = options.tls === undefined ? 'http' : 'https';
    const handle = (request: IncomingMessage, response: ServerResponse) => {
      this.route(request, response, metrics).catch((err: unknown) => {
        if (!response.headersSent) send(response, 500, { error: String(err) });
      });
    };
    this.http = options.tls === undefined ? createServer(handle) : createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, handle);
  }

  /** Loads the flags, starts listening and, unless told not to, ticking. */
  static async start(options: RolloutServerOptions): Promise<RolloutServer> {
    const server = new RolloutServer(options);
    const snapshot = await server.store.load();
    server.loaded = true;
    // The first replica up acts from its first tick; a later one learns who does.
    await server.lease?.tick();
    const unqueried = server.prometheus === undefined ? flagsWithPrometheusGuards(snapshot) : [];
    if (unqueried.length > 0) server.log(`${unqueried.join(', ')}: guard.prometheus is set but no Prometheus URL is (give --prometheus-url URL); these guards get no numbers from Prometheus`);
    let host = options.host ?? '127.0.0.1';
    if (options.auth === undefined && !LOOPBACK.has(host)) {
      server.log(`no token configured: listening on 127.0.0.1 only, not ${host} (give --token-file or ROLLOUT_GUARDIAN_TOKEN to serve other hosts)`);
      host = '127.0.0.1';
    }
    server.host = host;
    try {
      await new Promise<void>((resolve, reject) => {
        server.http.once('error', reject);
        server.http.listen(options.port, host, () => resolve());
      });
    } catch (err) {
      await server.close();
      throw new ListenError(`cannot listen on ${host}:${options.port} (${(err as Error).message}); give another --port`);
    }
    server.boundPort = (server.http.address() as AddressInfo).port;
    if (options.grpcPort !== undefined) {
      try {
        const auth = options.auth;
        server.grpc = await OtlpGrpcReceiver.start(server.ingest, {
          host,
          port: options.grpcPort,
          maxBodyBytes: server.otlpHttp.maxBodyBytes,
          tls: options.tls,
          authenticate: auth === undefined ? undefined : (header) => auth.check(header, 'ingest').result,
          metrics: server.metricsIngest,
        });
      } catch (err) {
        await server.close();
        throw new ListenError(`cannot listen for OTLP/gRPC on ${host}:${options.grpcPort} (${(err as Error).message}); give another --grpc-port, or --no-grpc-port`);
      }
    }
    if (options.autoTick ?? true) {
      server.lease?.start();
      server.guardian.start();
      server.plans.start(server.registry.slotMs);
      server.prometheus?.start();
    }
    return server;
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    return `${this.scheme}://${this.host === '::1' ? '[::1]' : this.host === '0.0.0.0' || this.host === '::' ? '127.0.0.1' : this.host}:${this.boundPort}`;
  }

  /** The OTLP/gRPC port, or undefined without gRPC. */
  get grpcPort(): number | undefined {
    return this.grpc?.port;
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
      ingest: this.ingest.stats,
      lease: this.leaseStatus(),
      storeTrouble: this.storeTrouble,
      slotMs: this.registry.slotMs,
      ...this.recentOutcomes(),
    });
  }

  /** Whether this replica acts on its store, and who does. */
  leaseStatus(): LeaseStatus {
    if (this.lease !== undefined) return this.lease.status();
    const mode = this.dryRun ? 'dry-run' : 'sole';
    return { mode, acting: mode === 'sole', replica: null, holder: null, token: null, ttlMs: null, renewEveryMs: null };
  }

  /** Outcomes in every cohort over the last minute (or the ring, if shorter). */
  private recentOutcomes(): { recentOutcomes: number; recentWindowMs: number } {
    const recentWindowMs = Math.min(60_000, this.registry.slotMs * (this.registry.slotCount - 1));
    const now = this.clock.now();
    let recentOutcomes = 0;
    // Counts only: merging the slots' sketches too would cost every poll of the status page.
    for (const { window } of this.registry.cohorts()) for (const slot of window.slots(now - recentWindowMs, now + this.registry.slotMs)) recentOutcomes += slot.count;
    return { recentOutcomes, recentWindowMs };
  }

  /** Stops taking requests, lets running ticks finish, closes the store. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.http.closeAllConnections();
      await Promise.all([new Promise<void>((resolve) => this.http.close(() => resolve())), this.grpc?.close()]);
      await this.prometheus?.shutdown();
      this.statusPage.close();
      await this.guardian.shutdown();
      await this.plans.shutdown();
      // Released once nothing more will be written, so a standby takes over at once.
      await this.lease?.close();
      await this.notifier?.close();
      this.telemetry.shutdown();
      this.unwatch();
      await this.meterProvider.shutdown();
      await this.processor.shutdown();
      await this.store.close();
    })();
    return this.closing;
  }

  /** Answers 401 or 403 (and counts it, for OTLP) unless the request carries a token with `role`. */
  private authorized(request: IncomingMessage, response: ServerResponse, role: Role, isOtlp: boolean): boolean {
    const { result } = (this.auth as BearerAuth).check(request.headers.authorization, role);
    if (result === 'ok') return true;
    request.resume();
    const hint = result === 'missing' && isOtlp ? ' (exporters: OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20TOKEN)' : '';
    const message = `${refusalMessage(result, role)}${hint}`;
    if (result !== 'forbidden') response.setHeader('www-authenticate', 'Bearer');
    if (isOtlp) {
      this.otlpHttp.refuse(request, response, result === 'forbidden' ? 403 : 401, 'unauthenticated', message);
    } else {
      send(response, result === 'forbidden' ? 403 : 401, { error: message });
    }
    return false;
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
    const url = new URL(request.url ?? '/', 'http://localhost');
    const path = url.pathname;
    // The page's files need no token, its data routes check their own roles; the control API
    // checks its own tokens and roles (operate to act, read to look).
    if (this.statusPage.handles(request.method, path)) return this.statusPage.route(request, response, url);
    // The control API checks its own tokens and roles (operate to act, read to look).
    if (this.controlApi.handles(path)) return this.controlApi.handle(request, response, url);
    const isOtlp = request.method === 'POST' && (path === '/v1/traces' || path === '/v1/logs' || path === '/v1/metrics');
    if (this.auth !== undefined && path !== '/healthz' && path !== '/readyz' && !this.authorized(request, response, isOtlp ? 'ingest' : 'read', isOtlp)) return;
    if (isOtlp) return this.otlpHttp.handle(path === '/v1/traces' ? 'traces' : path === '/v1/logs' ? 'logs' : 'metrics', request, response);
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
        return send(response, 404, { error: `no route ${path}; try /metrics, /healthz, /readyz, /api/status, /api/v1/flags, /openapi.json, or POST /v1/traces, /v1/logs and /v1/metrics` });
    }
  }
}
