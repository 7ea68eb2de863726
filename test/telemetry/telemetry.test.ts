import { createServer } from 'node:net';
import { OpenFeature } from '@openfeature/server-sdk';
import type { Meter } from '@opentelemetry/api';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import type { FlagDefinitionInput } from '../../src/core/flag-schema.js';
import { CohortRegistry } from '../../src/guardian/cohort-registry.js';
import { RolloutGuardian } from '../../src/guardian/rollout-guardian.js';
import { RolloutProvider } from '../../src/provider/rollout-provider.js';
import { PlanWriter } from '../../src/deploy/plan-writer.js';
import { planSteps } from '../../src/deploy/plan.js';
import { MemoryFlagStore } from '../../src/stores/memory-store.js';
import { StoreWriter } from '../../src/stores/store-writer.js';
import type { GuardianSpanProcessorStats } from '../../src/guardian/guardian-span-processor.js';
import { GuardianTelemetry } from '../../src/telemetry/guardian-telemetry.js';
import type { NotificationTotals } from '../../src/telemetry/notification-telemetry.js';
import { METER_NAME, METRICS, type MetricId, PROMETHEUS_LABELS, PROMETHEUS_NAMES, VERDICTS } from '../../src/telemetry/names.js';
import { type PrometheusEndpoint, startPrometheusEndpoint } from '../../src/telemetry/prometheus-endpoint.js';
import { FakeClock } from '../helpers/fake-clock.js';

const FLAG = 'new-checkout';
const FLAGS: Record<string, FlagDefinitionInput> = {
  [FLAG]: { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: 20 }, guard: { fastPath: true } },
};
const SLOT_MS = 5_000;
const LABEL_KEY = PROMETHEUS_LABELS['feature_flag.key'];

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The samples of a Prometheus text exposition, comments skipped. */
function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key as string] = value as string;
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

class Scrape {
  readonly samples: Sample[];
  constructor(readonly text: string) {
    this.samples = parseSamples(text);
  }

  /** Samples of `id` whose labels include `labels`. */
  find(id: MetricId, labels: Record<string, string> = {}): Sample[] {
    return this.samples.filter((s) => s.name === PROMETHEUS_NAMES[id] && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  }

  /** The one sample of `id` with `labels`. */
  value(id: MetricId, labels: Record<string, string> = {}): number {
    const found = this.find(id, labels);
    expect(found, `${PROMETHEUS_NAMES[id]} ${JSON.stringify(labels)} in\n${this.text}`).toHaveLength(1);
    return (found[0] as Sample).value;
  }
}

interface Harness {
  readonly clock: FakeClock;
  readonly endpoint: PrometheusEndpoint;
  readonly meter: Meter;
  readonly store: MemoryFlagStore;
  readonly registry: CohortRegistry;
  readonly guardian: RolloutGuardian;
  readonly telemetry: GuardianTelemetry;
  scrape(): Promise<Scrape>;
}

const cleanups: (() => Promise<void> | void)[] = [];
let domainCount = 0;

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await OpenFeature.close();
});

async function endpointFor(): Promise<{ endpoint: PrometheusEndpoint; meter: Meter }> {
  const endpoint = await startPrometheusEndpoint({ port: 0 });
  const meterProvider = new MeterProvider({ readers: [endpoint.reader] });
  cleanups.push(() => endpoint.close(), () => meterProvider.shutdown());
  return { endpoint, meter: meterProvider.getMeter(METER_NAME) };
}

async function scrape(endpoint: PrometheusEndpoint): Promise<Scrape> {
  const response = await fetch(endpoint.url);
  expect(response.status).toBe(200);
  return new Scrape(await response.text());
}

async function harness(options: { processorStats?: () => GuardianSpanProcessorStats; windowMs?: number; maxCohorts?: number; notifications?: () => readonly NotificationTotals[] } = {}): Promise<Harness> {
  const { maxCohorts, ...telemetryOptions } = options;
  const clock = new FakeClock();
  const { endpoint, meter } = await endpointFor();
  const store = new MemoryFlagStore({ flags: FLAGS, clock });
  // 60 complete slots of 5 s: the default sustainFor of 5 minutes.
  const registry = new CohortRegistry({ slotMs: SLOT_MS, slotCount: 61, maxCohorts });
  const guardian = new RolloutGuardian({ source: store, writer: new StoreWriter(store, clock), registry, clock });
  const telemetry = new GuardianTelemetry({ meter, registry, guardian, clock, plans: store, ...telemetryOptions });
  cleanups.push(
    () => guardian.shutdown(),
    () => telemetry.shutdown(),
  );
  return { clock, endpoint, meter, store, registry, guardian, telemetry, scrape: () => scrape(endpoint) };
}

/** 200 requests per cohort over two slots: the treatment fails half of them and is slower. */
function recordGrossBreach(h: Harness): void {
  for (let slot = 0; slot < 2; slot++) {
    for (let i = 0; i < 100; i++) {
      const n = slot * 100 + i;
      h.registry.record(FLAG, 'on', 100 + n, n % 2 === 0, h.clock.now() + i);
      h.registry.record(FLAG, 'off', 20, false, h.clock.now() + i);
    }
    h.clock.advance(SLOT_MS);
  }
}

async function rollBack(h: Harness): Promise<void> {
  const landed: string[] = [];
  const stop = h.guardian.addListener({ rollback: (record) => landed.push(record.flagKey) });
  recordGrossBreach(h);
  for (let tick = 0; tick < 3 && landed.length === 0; tick++) {
    await h.guardian.tick();
    if (landed.length === 0) h.clock.advance(SLOT_MS);
  }
  stop();
  expect(landed).toEqual([FLAG]);
}

describe('GuardianTelemetry scraped through a real Prometheus exporter', () => {
  it('counts evaluations through the OpenFeature SDK by flag, variant and reason, errors included', async () => {
    const h = await harness();
    const domain = `telemetry-${++domainCount}`;
    await OpenFeature.setProviderAndWait(domain, new RolloutProvider({ store: h.store, clock: h.clock, telemetry: h.telemetry }));
    const client = OpenFeature.getClient(domain);
    for (let i = 0; i < 50; i++) await client.getBooleanValue(FLAG, false, { targetingKey: `user-${i}` });
    await client.getBooleanValue(FLAG, false, {});
    await client.getBooleanValue('no-such-flag', false, {});
    await client.getStringValue(FLAG, 'x', { targetingKey: 'user-1' });

    const s = await h.scrape();
    const split = s.find('evaluations', { [LABEL_KEY]: FLAG, reason: 'SPLIT' });
    expect(split.map((x) => x.labels.variant).sort()).toEqual(['off', 'on']);
    expect(split.reduce((sum, x) => sum + x.value, 0)).toBe(50);
    expect(s.value('evaluations', { [LABEL_KEY]: FLAG, variant: 'off', reason: 'DEFAULT' })).toBe(1);
    // Errors carry no variant label: the caller's default is not a variant.
    const notFound = s.find('evaluations', { [LABEL_KEY]: 'no-such-flag', reason: 'ERROR' });
    expect(notFound.map((x) => [x.value, x.labels.variant])).toEqual([[1, undefined]]);
    expect(s.value('evaluations', { [LABEL_KEY]: FLAG, reason: 'ERROR' })).toBe(1);
  });

  it('reports rollout percentage, verdict and breach per guarded flag, and the guardian liveness gauges', async () => {
    const h = await harness();
    await h.guardian.tick();
    h.clock.advance(7_000);

    const s = await h.scrape();
    expect(s.value('rolloutPercentage', { [LABEL_KEY]: FLAG })).toBe(20);
    expect(s.value('breach', { [LABEL_KEY]: FLAG })).toBe(0);
    const verdicts = s.find('verdict', { [LABEL_KEY]: FLAG });
    expect(verdicts.map((x) => x.labels.verdict).sort()).toEqual([...VERDICTS].sort());
    expect(verdicts.filter((x) => x.value === 1).map((x) => x.labels.verdict)).toEqual(['insufficient']);
    expect(s.value('lastTickAge')).toBe(7);
    expect(s.value('pendingRollbacks')).toBe(0);
  });

  it("reports each cohort's requests, error rate, P95 and P99 over the guardian's window of complete slots", async () => {
    const h = await harness();
    recordGrossBreach(h);
    // An outcome in the slot still filling is not in the window yet.
    h.registry.record(FLAG, 'on', 5_000, true, h.clock.now());

    const s = await h.scrape();
    const on = { [LABEL_KEY]: FLAG, variant: 'on' };
    const off = { [LABEL_KEY]: FLAG, variant: 'off' };
    expect(s.value('cohortRequests', on)).toBe(200);
    expect(s.value('cohortRequests', off)).toBe(200);
    expect(s.value('cohortErrorRate', on)).toBe(0.5);
    expect(s.value('cohortErrorRate', off)).toBe(0);
    // Treatment latencies are 100..299 ms: P95 is the 190th (289 ms), P99 the 198th (297 ms), within the sketch's 1%; in seconds.
    expect(Math.abs(s.value('cohortLatencyP95', on) - 0.289)).toBeLessThanOrEqual(0.289 * 0.01);
    expect(Math.abs(s.value('cohortLatencyP99', on) - 0.297)).toBeLessThanOrEqual(0.297 * 0.01);
    expect(Math.abs(s.value('cohortLatencyP95', off) - 0.02)).toBeLessThanOrEqual(0.02 * 0.01);
  });

  it('reports NaN, not zero and not the last value, for cohort rates and latencies once the window has no traffic', async () => {
    const h = await harness({ windowMs: 2 * SLOT_MS });
    recordGrossBreach(h);
    const on = { [LABEL_KEY]: FLAG, variant: 'on' };
    expect((await h.scrape()).value('cohortErrorRate', on)).toBe(0.5);
    h.clock.advance(2 * SLOT_MS);

    const s = await h.scrape();
    expect(s.value('cohortRequests', on)).toBe(0);
    expect(s.value('cohortErrorRate', on)).toBeNaN();
    expect(s.value('cohortLatencyP95', on)).toBeNaN();
    expect(s.value('cohortLatencyP99', on)).toBeNaN();
  });

  it('counts a rollback by flag, cause and deciding check, and shows the flag breaching at 0%', async () => {
    const h = await harness();
    await rollBack(h);

    const s = await h.scrape();
    expect(s.value('rollbacks', { [LABEL_KEY]: FLAG })).toBe(1);
    expect(s.find('rollbacks')[0]?.labels).toMatchObject({ [LABEL_KEY]: FLAG, reason: 'breach', check: 'errorRate' });
    expect(s.value('breach', { [LABEL_KEY]: FLAG })).toBe(1);
    expect(s.value('verdict', { [LABEL_KEY]: FLAG, verdict: 'rollback' })).toBe(1);
    expect(s.value('rolloutPercentage', { [LABEL_KEY]: FLAG })).toBe(0);

    // The next tick no longer judges the rolled-back flag: no verdict, no breach, still 0%.
    h.clock.advance(SLOT_MS);
    await h.guardian.tick();
    expect(h.guardian.status()).toEqual([]);
    const after = await h.scrape();
    expect(after.find('verdict', { [LABEL_KEY]: FLAG }).map((x) => x.value)).toEqual(VERDICTS.map(() => 0));
    expect(after.value('breach', { [LABEL_KEY]: FLAG })).toBe(0);
    expect(after.value('rolloutPercentage', { [LABEL_KEY]: FLAG })).toBe(0);
    expect(after.value('rollbacks', { [LABEL_KEY]: FLAG })).toBe(1);
  });

  it("reports each guarded flag's limits from its guard policy, for dashboards to draw, and NaN once the flag is no longer judged", async () => {
    const h = await harness();
    await h.guardian.tick();
    const flag = { [LABEL_KEY]: FLAG };
    // The test flag's guard leaves the limits out: the defaults of 1%, 500 ms and 1000 ms, in seconds.
    const s = await h.scrape();
    expect(s.value('guardMaxErrorRate', flag)).toBe(0.01);
    expect(s.value('guardMaxP95', flag)).toBe(0.5);
    expect(s.value('guardMaxP99', flag)).toBe(1);

    await rollBack(h);
    h.clock.advance(SLOT_MS);
    await h.guardian.tick();
    const after = await h.scrape();
    expect(after.value('guardMaxErrorRate', flag)).toBeNaN();
    expect(after.value('guardMaxP95', flag)).toBeNaN();
    expect(after.value('guardMaxP99', flag)).toBeNaN();
  });

  it('reports the written limits of a flag, also as the ceiling of a relative one, and NaN for a flag judged against its baseline alone', async () => {
    const clock = new FakeClock();
    const { endpoint, meter } = await endpointFor();
    const variants = { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: 20 } } as const;
    const store = new MemoryFlagStore({
      flags: {
        absolute: { ...variants, guard: { maxErrorRate: 0.05, maxP95Ms: 250, maxP99Ms: 900 } },
        ceiling: { ...variants, guard: { maxErrorRate: 0.05, relative: { maxErrorRateIncrease: 0.01, maxP95IncreasePct: 20 } } },
        relative: { ...variants, guard: { maxErrorRate: 0.05, relative: { maxErrorRateIncrease: 0.01, maxP95IncreasePct: 20, ceiling: false } } },
      },
      clock,
    });
    const registry = new CohortRegistry({ slotMs: SLOT_MS, slotCount: 61 });
    const guardian = new RolloutGuardian({ source: store, writer: new StoreWriter(store, clock), registry, clock });
    const telemetry = new GuardianTelemetry({ meter, registry, guardian, clock });
    cleanups.push(
      () => guardian.shutdown(),
      () => telemetry.shutdown(),
    );
    await guardian.tick();

    const s = await scrape(endpoint);
    expect(s.value('guardMaxErrorRate', { [LABEL_KEY]: 'absolute' })).toBe(0.05);
    expect(s.value('guardMaxP95', { [LABEL_KEY]: 'absolute' })).toBe(0.25);
    expect(s.value('guardMaxP99', { [LABEL_KEY]: 'absolute' })).toBe(0.9);
    expect(s.value('guardMaxErrorRate', { [LABEL_KEY]: 'ceiling' })).toBe(0.05);
    expect(s.value('guardMaxP95', { [LABEL_KEY]: 'ceiling' })).toBe(0.5);
    expect(s.value('guardMaxErrorRate', { [LABEL_KEY]: 'relative' })).toBeNaN();
    expect(s.value('guardMaxP95', { [LABEL_KEY]: 'relative' })).toBeNaN();
    expect(s.value('guardMaxP99', { [LABEL_KEY]: 'relative' })).toBeNaN();
  });

  it('prints every name in names.ts exactly as the exporter derives it, with its unit, type and labels', async () => {
    const h = await harness({
      processorStats: () => ({ recordedOutcomes: 400, droppedExposures: 2, droppedTraces: 1, internalErrors: 0 }),
      notifications: () => [{ target: 'ops', sent: 3, failed: 1, dropped: 0, retried: 5, queued: 2 }],
    });
    h.telemetry.recordEvaluation(FLAG, 'on', 'SPLIT');
    await new PlanWriter(h.store, h.clock).deploy(FLAG, 'custom', planSteps('custom', { steps: [20, 100], stepDurationMs: 3_600_000 }), { actor: 'sre', reason: 'release' });
    await rollBack(h);

    const s = await h.scrape();
    for (const [id, spec] of Object.entries(METRICS) as [MetricId, (typeof METRICS)[MetricId]][]) {
      const name = PROMETHEUS_NAMES[id];
      const type = spec.instrument === 'gauge' ? 'gauge' : 'counter';
      expect(s.text).toContain(`# TYPE ${name} ${type}\n`);
      expect(s.text).toContain(`# HELP ${name} ${spec.description}\n`);
      if (spec.unit !== '') expect(s.text).toContain(`# UNIT ${name} ${spec.unit}\n`);
      const samples = s.find(id);
      expect(samples.length, name).toBeGreaterThan(0);
      const labels = spec.attributes.map((a) => PROMETHEUS_LABELS[a]).sort();
      for (const sample of samples) {
        expect(Object.keys(sample.labels).filter((l) => !l.startsWith('otel_scope_')).sort(), name).toEqual(labels);
        expect(sample.labels.otel_scope_name).toBe(METER_NAME);
      }
    }
    expect(s.value('recordedOutcomes')).toBe(400);
    expect(s.value('droppedExposures')).toBe(2);
    expect(s.value('droppedTraces')).toBe(1);
    expect(s.value('internalErrors')).toBe(0);
    expect(s.value('droppedCohortOutcomes')).toBe(0);
    expect(s.value('notifications', { target: 'ops', outcome: 'retried' })).toBe(5);
    expect(s.value('notificationsQueued', { target: 'ops' })).toBe(2);
  });

  it("reports each plan's step and state, following the store: a rollback ends the plan as rolled back", async () => {
    const h = await harness();
    await new PlanWriter(h.store, h.clock).deploy(FLAG, 'custom', planSteps('custom', { steps: [20, 50, 100], stepDurationMs: 3_600_000 }), { actor: 'sre', reason: 'release' });
    const running = await h.scrape();
    expect(running.value('planStep', { [LABEL_KEY]: FLAG })).toBe(1);
    expect(running.value('planState', { [LABEL_KEY]: FLAG, state: 'running' })).toBe(1);
    expect(running.value('planState', { [LABEL_KEY]: FLAG, state: 'rolled-back' })).toBe(0);
    await rollBack(h);
    const ended = await h.scrape();
    expect(ended.value('planState', { [LABEL_KEY]: FLAG, state: 'rolled-back' })).toBe(1);
    expect(ended.value('planState', { [LABEL_KEY]: FLAG, state: 'running' })).toBe(0);
  });

  it('counts the outcomes the registry refuses once it holds its limit of cohorts', async () => {
    const h = await harness({ maxCohorts: 1 });
    recordGrossBreach(h);
    const s = await h.scrape();
    expect(s.value('droppedCohortOutcomes')).toBe(200);
    expect(s.find('cohortRequests').map((x) => x.labels.variant)).toEqual(['on']);
  });

  it('keeps the other gauges when one source throws at collection time', async () => {
    const h = await harness({
      processorStats: () => {
        throw new Error('processor gone');
      },
    });
    await h.guardian.tick();
    const s = await h.scrape();
    expect(s.value('rolloutPercentage', { [LABEL_KEY]: FLAG })).toBe(20);
    expect(s.find('recordedOutcomes')).toEqual([]);
  });

  it('is inert after shutdown: nothing observed, rollbacks uncounted, recordEvaluation never throws', async () => {
    const h = await harness();
    h.telemetry.recordEvaluation(FLAG, 'on', 'SPLIT');
    h.telemetry.shutdown();
    h.telemetry.shutdown();
    expect(() => h.telemetry.recordEvaluation(FLAG, 'on', 'SPLIT')).not.toThrow();
    await rollBack(h);

    const s = await h.scrape();
    expect(s.samples.filter((x) => x.name.startsWith('rollout_guardian_'))).toEqual([]);
  });

  it('counts evaluations of flags past the first thousand keys under one overflow series', async () => {
    const h = await harness();
    for (let i = 0; i < 1_002; i++) h.telemetry.recordEvaluation(`flag-${i}`, undefined, 'ERROR');
    const s = await h.scrape();
    expect(s.find('evaluations')).toHaveLength(1_001);
    expect(s.value('evaluations', { [PROMETHEUS_LABELS['otel.metric.overflow']]: 'true' })).toBe(2);
  });

  it('never throws into an evaluation when the recorder does', async () => {
    const domain = `telemetry-${++domainCount}`;
    const throwing = {
      recordEvaluation: () => {
        throw new Error('recorder broken');
      },
    };
    await OpenFeature.setProviderAndWait(domain, new RolloutProvider({ store: new MemoryFlagStore({ flags: FLAGS }), telemetry: throwing }));
    expect(await OpenFeature.getClient(domain).getBooleanDetails(FLAG, true, {})).toMatchObject({ value: false, reason: 'DEFAULT' });
  });

  it('refuses a window that is not a positive integer of ms, quoting it', async () => {
    const { meter } = await endpointFor();
    expect(() => new GuardianTelemetry({ meter, windowMs: 0 })).toThrow('GuardianTelemetry: windowMs must be a positive integer, got 0');
  });
});

describe('startPrometheusEndpoint', () => {
  it('takes a free port when asked for port 0, serves only its path, and frees the port on close', async () => {
    const endpoint = await startPrometheusEndpoint({ port: 0, path: '/prom' });
    const provider = new MeterProvider({ readers: [endpoint.reader] });
    cleanups.push(() => provider.shutdown());
    expect(endpoint.port).toBeGreaterThan(0);
    expect(endpoint.url).toBe(`http://127.0.0.1:${endpoint.port}/prom`);
    provider.getMeter(METER_NAME).createCounter('probe').add(1);

    expect((await scrape(endpoint)).text).toContain('probe_total');
    expect((await fetch(`http://127.0.0.1:${endpoint.port}/metrics`)).status).toBe(404);

    // While it listens nobody else can have the port; once closed, anybody can.
    await expect(listenOn(endpoint.port)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await endpoint.close();
    await endpoint.close();
    await listenOn(endpoint.port).then((close) => close());
  });

  it('refuses a port outside 0..65535 or a path without a leading slash', async () => {
    await expect(startPrometheusEndpoint({ port: 70_000 })).rejects.toThrow('port must be an integer in [0, 65535], got 70000');
    await expect(startPrometheusEndpoint({ port: 0, path: 'metrics' })).rejects.toThrow('path must start with "/", got "metrics"');
  });
});

/** Listens on `port` (127.0.0.1) and resolves to a function that stops. */
function listenOn(port: number): Promise<() => Promise<void>> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () =>
      resolve(
        () =>
          new Promise<void>((done) => {
            server.close(() => done());
          }),
      ),
    );
  });
}
