// The demo's moving parts, started together: a node:http checkout service instrumented with
// the OpenTelemetry Node SDK, RolloutProvider on a file store, the guardian with short
// windows, a Prometheus endpoint, and a way to make the treatment fail. The demo script and
// the end-to-end test both start it; the test injects a clock and ticks the guardian itself.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { SpanKind, SpanStatusCode, context, metrics, propagation, trace } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { OpenFeature, type Client } from '@openfeature/server-sdk';
import type { Clock } from '../../src/core/clock.js';
import { CohortRegistry } from '../../src/guardian/cohort-registry.js';
import { GuardianSpanProcessor } from '../../src/guardian/guardian-span-processor.js';
import { RolloutGuardian } from '../../src/guardian/rollout-guardian.js';
import { RolloutProvider } from '../../src/provider/rollout-provider.js';
import { FileFlagStore } from '../../src/stores/file-store.js';
import { StoreWriter } from '../../src/stores/store-writer.js';
import { PlanRunner } from '../../src/deploy/plan-runner.js';
import { PlanWriter } from '../../src/deploy/plan-writer.js';
import { planSteps } from '../../src/deploy/plan.js';
import { systemClock } from '../../src/runtime/system-clock.js';
import { GuardianTelemetry } from '../../src/telemetry/guardian-telemetry.js';
import { METER_NAME } from '../../src/telemetry/names.js';
import { type PrometheusEndpoint, startPrometheusEndpoint } from '../../src/telemetry/prometheus-endpoint.js';

export const DEMO_FLAG = 'new-checkout';

export interface TreatmentFault {
  /** Share of treatment requests that fail with a 500. */
  readonly errorRate: number;
  /** Latency added to every treatment request. */
  readonly extraLatencyMs: number;
}

export interface DemoOptions {
  /** Injected in tests; the wall clock otherwise. */
  readonly clock?: Clock;
  /** Start the guardian's own timer (default true); tests call guardian.tick() instead. */
  readonly autoTick?: boolean;
  /** 0 (default) picks a free port. */
  readonly metricsPort?: number;
  readonly servicePort?: number;
  readonly slotMs?: number;
  /** Simulated work per request, in ms, before any fault; default a few ms to ~40 ms. */
  readonly workMs?: (random: () => number) => number;
  /** Seed for the service's own randomness (fault draws, work times). */
  readonly seed?: number;
}

export interface Demo {
  readonly serviceUrl: string;
  readonly metricsUrl: string;
  readonly flagsPath: string;
  readonly store: FileFlagStore;
  readonly registry: CohortRegistry;
  readonly guardian: RolloutGuardian;
  readonly client: Client;
  setTreatmentFault(fault: TreatmentFault | undefined): void;
  close(): Promise<void>;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const defaultWork = (random: () => number) => 5 + Math.floor(-20 * Math.log(1 - random()));

async function listen(server: Server, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const clock = options.clock ?? systemClock;
  const slotMs = options.slotMs ?? 1000;
  const random = mulberry32(options.seed ?? 42);
  const work = options.workMs ?? defaultWork;
  const dir = await mkdtemp(join(tmpdir(), 'rollout-guardian-demo-'));
  const flagsPath = join(dir, 'flags.yaml');
  await copyFile(new URL('./demo-flags.yaml', import.meta.url), flagsPath);

  const registry = new CohortRegistry({ slotMs, slotCount: 40 });
  const processor = new GuardianSpanProcessor({ registry, clock });
  const endpoint: PrometheusEndpoint = await startPrometheusEndpoint({ port: options.metricsPort ?? 0 });
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ 'service.name': 'rollout-guardian-demo' }),
    autoDetectResources: false,
    spanProcessors: [processor],
    metricReaders: [endpoint.reader],
    instrumentations: [],
  });
  sdk.start();

  const store = new FileFlagStore({ path: flagsPath, clock });
  const guardian = new RolloutGuardian({ source: store, writer: new StoreWriter(store, clock), registry, clock });
  const telemetry = new GuardianTelemetry({ meter: metrics.getMeter(METER_NAME), registry, guardian, processorStats: () => processor.stats, clock, plans: store });
  const provider = new RolloutProvider({ store, clock, telemetry });
  await OpenFeature.setProviderAndWait('demo', provider);
  const client = OpenFeature.getClient('demo');
  // The rollout: a plan at 50% for ten minutes before 100%, which the guardian guards.
  await new PlanWriter(store, clock).deploy(DEMO_FLAG, 'custom', planSteps('custom', { steps: [50, 100], stepDurationMs: 10 * 60_000 }), { actor: 'demo', reason: 'roll out the new checkout' });
  const plans = new PlanRunner({ store, judgments: guardian, clock });
  if (options.autoTick ?? true) {
    guardian.start();
    plans.start(slotMs);
  }

  let fault: TreatmentFault | undefined;
  const tracer = trace.getTracer('rollout-guardian-demo');
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const parent = propagation.extract(context.active(), request.headers);
    await tracer.startActiveSpan(`${request.method ?? 'GET'} ${url.pathname}`, { kind: SpanKind.SERVER, attributes: { 'http.request.method': request.method ?? 'GET', 'url.path': url.pathname } }, parent, async (span) => {
      let status = 200;
      try {
        if (url.pathname !== '/checkout') {
          status = 404;
          return;
        }
        const user = url.searchParams.get('user') ?? undefined;
        const useNew = await client.getBooleanValue(DEMO_FLAG, false, user === undefined ? {} : { targetingKey: user });
        let ms = work(random);
        const failing = useNew && fault !== undefined && random() < fault.errorRate;
        if (useNew && fault !== undefined) ms += fault.extraLatencyMs;
        await tracer.startActiveSpan(useNew ? 'new checkout' : 'classic checkout', async (child) => {
          if (ms > 0) await delay(ms);
          child.end();
        });
        status = failing ? 500 : 200;
      } finally {
        span.setAttribute('http.response.status_code', status);
        if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        // The span ends before the response leaves, so a caller that has its answer knows
        // the outcome is already recorded.
        span.end();
        response.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok\n' : 'checkout failed\n');
      }
    });
  };
  const server = createServer((request, response) => {
    handle(request, response).catch(() => {
      if (!response.headersSent) response.writeHead(500).end();
    });
  });
  server.keepAliveTimeout = 5_000;
  const port = await listen(server, options.servicePort ?? 0);

  let closed = false;
  return {
    serviceUrl: `http://127.0.0.1:${port}`,
    metricsUrl: endpoint.url,
    flagsPath,
    store,
    registry,
    guardian,
    client,
    setTreatmentFault(next) {
      fault = next;
    },
    async close() {
      if (closed) return;
      closed = true;
      await guardian.shutdown();
      await plans.shutdown();
      telemetry.shutdown();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await OpenFeature.close();
      await sdk.shutdown();
      await endpoint.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
