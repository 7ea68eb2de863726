import { context, diag, DiagLogLevel, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { OpenFeature } from '@openfeature/server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CohortRegistry } from '../../src/guardian/cohort-registry.js';
import { RolloutGuardian, type RolloutWriter, type RollbackRecord } from '../../src/guardian/rollout-guardian.js';
import type { FlagDefinitionInput, GuardPolicyInput } from '../../src/core/flag-schema.js';
import type { Attribution } from '../../src/stores/flag-store.js';
import { MemoryFlagStore } from '../../src/stores/memory-store.js';
import { RolloutProvider } from '../../src/provider/rollout-provider.js';
import { StoreWriter } from '../../src/stores/store-writer.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { lognormal, mulberry32 } from '../helpers/seeded-random.js';

const SLOT_MS = 5_000;
const START = Date.parse('2026-11-27T12:00:00Z');

function checkout(guard: GuardPolicyInput = {}, extra: Partial<FlagDefinitionInput> = {}): FlagDefinitionInput {
  return { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: 50 }, guard, ...extra };
}

interface Rig {
  readonly clock: FakeClock;
  readonly store: MemoryFlagStore;
  readonly registry: CohortRegistry;
  readonly guardian: RolloutGuardian;
  readonly rollbacks: RollbackRecord[];
  readonly errors: Error[];
  /** Advances `seconds` of traffic at `rps` per cohort, ticking the guardian at every slot boundary. */
  run(seconds: number, rps: number, treatmentErrorRate: number, treatmentMedianMs?: number): Promise<void>;
}

function rig(flags: Record<string, FlagDefinitionInput>, writerFor?: (store: MemoryFlagStore, clock: FakeClock) => RolloutWriter): Rig {
  const clock = new FakeClock(START);
  const store = new MemoryFlagStore({ flags, clock });
  const registry = new CohortRegistry({ slotMs: SLOT_MS, slotCount: 72 });
  const writer = writerFor ? writerFor(store, clock) : new StoreWriter(store, clock);
  const guardian = new RolloutGuardian({ source: store, writer, registry, clock });
  const rollbacks: RollbackRecord[] = [];
  const errors: Error[] = [];
  guardian.addListener({ rollback: (r) => rollbacks.push(r), error: (e) => errors.push(e) });
  const random = mulberry32(7);
  return {
    clock,
    store,
    registry,
    guardian,
    rollbacks,
    errors,
    async run(seconds, rps, treatmentErrorRate, treatmentMedianMs = 80) {
      for (let s = 0; s < seconds; s++) {
        for (const key of Object.keys(flags)) {
          for (let i = 0; i < rps; i++) {
            const at = clock.now() + Math.floor((i * 1000) / rps);
            registry.record(key, 'on', lognormal(random, treatmentMedianMs, 0.5), random() < treatmentErrorRate, at);
            registry.record(key, 'off', lognormal(random, 80, 0.5), random() < 0.005, at);
          }
        }
        clock.advance(1000);
        if (clock.now() % SLOT_MS === 0) await guardian.tick();
      }
    },
  };
}

describe('RolloutGuardian', () => {
  it('rolls a breaching flag back through the store, with the numbers it judged in the audit entry', async () => {
    const r = rig({ checkout: checkout() });
    await r.run(300, 20, 0.005);
    expect(r.rollbacks).toEqual([]);
    expect(r.guardian.status()[0]?.judgment.verdict).toBe('healthy');
    await r.run(330, 10, 0.06);
    expect(r.rollbacks).toHaveLength(1);
    expect(r.rollbacks[0]).toMatchObject({ flagKey: 'checkout', cause: 'breach' });
    const detectedAfterMs = (r.rollbacks[0]?.landedAtMs ?? 0) - (START + 300_000);
    expect(detectedAfterMs).toBeGreaterThanOrEqual(290_000);
    expect(detectedAfterMs).toBeLessThanOrEqual(330_000);
    const snapshot = await r.store.load();
    expect(snapshot.state.get('checkout')?.rollback?.actor).toBe('rollout-guardian');
    const [entry] = await r.store.audit({ flagKey: 'checkout' });
    expect(entry).toMatchObject({ action: 'rollback', actor: 'rollout-guardian' });
    expect(entry?.reason).toMatch(/breach held for 3\d\d s \(sustainFor 300 s\): error rate/);
    expect(entry?.evidence).toMatchObject({
      cause: 'breach',
      check: { check: 'errorRate', state: 'confirmed', limit: 0.01 },
      treatment: { variant: 'on' },
      baseline: { variant: 'off' },
      percentage: 50,
    });
    // Rolled back: no longer guarded, so nothing more is decided for it.
    await r.run(30, 10, 0.06);
    expect(r.rollbacks).toHaveLength(1);
    expect(r.guardian.status()).toEqual([]);
  });

  it('judges the warning levels like the limits: a P95 above 200 ms but under 500 ms warns and never rolls back', async () => {
    const r = rig({ checkout: checkout(), quiet: checkout({ warn: { enabled: false } }) });
    // Median 150 ms, sigma 0.5: P95 about 340 ms, P99 about 480 ms, both under their limits.
    await r.run(420, 20, 0.001, 150);
    expect(r.rollbacks).toEqual([]);
    const status = new Map(r.guardian.status().map((s) => [s.flagKey, s.judgment]));
    const warning = status.get('checkout')?.warning;
    expect(status.get('checkout')?.verdict).not.toBe('rollback');
    expect(warning?.check).toMatchObject({ check: 'p95', thresholdMs: 200, state: 'confirmed' });
    expect(warning?.reason).toMatch(/^above the warning level for \d+ s \(warns, never rolls back\): .* slower than 200 ms/);
    expect(status.get('quiet')?.warning).toBeUndefined();
  });

  it('says every rollback through OpenTelemetry diag, with no listener needed', async () => {
    const warnings: string[] = [];
    const quiet = () => undefined;
    diag.setLogger({ error: quiet, warn: (m: string) => warnings.push(m), info: quiet, debug: quiet, verbose: quiet }, DiagLogLevel.WARN);
    try {
      const r = rig({ checkout: checkout() });
      await r.run(330, 10, 0.06);
      expect(warnings).toEqual([expect.stringMatching(/^rollout-guardian: rolled back "checkout": breach held for \d+ s/)]);
    } finally {
      diag.disable();
    }
  });

  it('keeps a rollback that fails to write and retries it every tick until it lands', async () => {
    let failures = 3;
    const r = rig({ checkout: checkout() }, (store, clock) => {
      const real = new StoreWriter(store, clock);
      return {
        rollback: (flagKey: string, by: Attribution, evidence?: Readonly<Record<string, unknown>>) =>
          failures-- > 0 ? Promise.reject(new Error('store unreachable')) : real.rollback(flagKey, by, evidence),
      };
    });
    await r.run(60, 10, 0.5);
    expect(r.rollbacks).toHaveLength(1);
    expect(failures).toBe(-1);
    expect(r.errors.map((e) => e.message)).toEqual(['rollback of "checkout" failed, retrying every tick until it lands: Error: store unreachable']);
    expect((await r.store.load()).state.get('checkout')?.rollback).toBeDefined();
  });

  it('claims no rollback and writes no second entry when another writer rolled the flag back first', async () => {
    const r = rig({ checkout: checkout() }, (store, clock) => {
      const writer = new StoreWriter(store, clock);
      return {
        // Another replica (or an operator) lands its rollback just before this one's write.
        rollback: async (flagKey: string, by: Attribution, evidence?: Readonly<Record<string, unknown>>) => {
          await writer.rollback(flagKey, { actor: 'sre', reason: 'INC-7' });
          return writer.rollbackOnce(flagKey, by, evidence);
        },
      };
    });
    await r.run(60, 10, 0.5);
    expect(r.rollbacks).toEqual([]);
    expect(r.errors).toEqual([]);
    expect(r.guardian.pendingRollbacks).toEqual([]);
    expect((await r.store.audit({ flagKey: 'checkout' })).map((e) => e.actor)).toEqual(['sre']);
  });

  it('rolls back after the policy’s number of consecutive failed health checks, not before', async () => {
    const r = rig({ checkout: checkout({ healthCheckFailures: 5 }) });
    const results = [false, false, false, false, true, false, false, false, false, false];
    r.guardian.addHealthCheck('payments-api', () => Promise.resolve(results.shift() ?? true));
    await r.run(45, 1, 0);
    expect(r.rollbacks).toEqual([]);
    await r.run(5, 1, 0);
    expect(r.rollbacks).toHaveLength(1);
    expect(r.rollbacks[0]).toMatchObject({ cause: 'health-check', reason: 'health check "payments-api" failed 5 times in a row (limit 5)' });
  });

  it('counts a throwing or hanging health check as failed', async () => {
    const r = rig({ checkout: checkout({ healthCheckFailures: 2 }) });
    r.guardian.addHealthCheck('throws', () => Promise.reject(new Error('boom')), { flags: ['checkout'] });
    await r.run(10, 1, 0);
    expect(r.rollbacks.map((x) => x.cause)).toEqual(['health-check']);
  });

  it('stops acting while emergency_shutdown is on', async () => {
    const r = rig({ checkout: checkout() });
    await new StoreWriter(r.store, r.clock).override('emergency_shutdown', 'on', { actor: 'sre', reason: 'INC-9' });
    await r.run(120, 20, 0.6);
    expect(r.rollbacks).toEqual([]);
    expect(r.guardian.status()).toEqual([]);
  });

  it('guards only live rollouts: not disabled, overridden, rolled back or unguarded flags', async () => {
    const r = rig({
      disabled: checkout({}, { state: 'disabled' }),
      unguarded: checkout({ enabled: false }),
      overridden: checkout(),
      live: checkout(),
      plain: { variants: { a: 1, b: 2 }, defaultVariant: 'a' },
    });
    await new StoreWriter(r.store, r.clock).override('overridden', 'on', { actor: 'a', reason: 'b' });
    await r.run(5, 1, 0);
    expect(r.guardian.status().map((s) => s.flagKey)).toEqual(['live']);
  });

  it('shuts down idempotently and ticks no more', async () => {
    const r = rig({ checkout: checkout() });
    await r.guardian.shutdown();
    await r.guardian.shutdown();
    await r.run(60, 20, 0.9);
    expect(r.rollbacks).toEqual([]);
    expect(r.guardian.lastTick).toBeUndefined();
  });
});

describe('RolloutGuardian judging in event time, per rollout', () => {
  it('catches a latency step at steady traffic after the ring of slots has wrapped', async () => {
    const r = rig({ checkout: checkout() });
    await r.run(400, 10, 0, 20);
    expect(r.rollbacks).toEqual([]);
    await r.run(340, 10, 0, 2000);
    expect(r.rollbacks).toHaveLength(1);
    const detectedAfterMs = (r.rollbacks[0]?.landedAtMs ?? 0) - (START + 400_000);
    expect(detectedAfterMs).toBeLessThanOrEqual(330_000);
    expect(['p95', 'p99']).toContain((r.rollbacks[0]?.evidence.check as { check: string }).check);
  });

  it('keeps judging every flag through a backward clock step, counting new outcomes at once', async () => {
    const r = rig({ a: checkout(), b: checkout() });
    await r.run(120, 10, 0.005);
    r.clock.set(r.clock.now() - 245_000);
    await r.run(340, 10, 0.06);
    expect(r.rollbacks.map((x) => x.flagKey).sort()).toEqual(['a', 'b']);
    expect(r.errors.map((e) => e.message)).toEqual([expect.stringMatching(/^the clock stepped back 24\d s; the evidence is kept and shifted with it$/)]);
    expect(r.guardian.errorCount).toBe(1);
  });

  it('starts the evidence afresh when a rolled-back flag is reset, instead of rolling it back again at once', async () => {
    const r = rig({ checkout: checkout() });
    await r.run(330, 10, 0.06);
    expect(r.rollbacks).toHaveLength(1);
    const resetAt = r.clock.now();
    await new StoreWriter(r.store, r.clock).resetState('checkout', { actor: 'sre', reason: 'fixed' });
    await r.run(120, 10, 0.005);
    expect(r.rollbacks).toHaveLength(1);
    const judgment = r.guardian.status()[0]?.judgment;
    expect(judgment?.sinceMs).toBeGreaterThanOrEqual(resetAt - 2 * SLOT_MS);
    expect(judgment?.verdict).not.toBe('rollback');
  });

  it('does not let junk flag keys crowd out a live rollout', async () => {
    const r = rig({ checkout: checkout() });
    await r.run(5, 1, 0);
    for (let i = 0; i < 2000; i++) r.registry.record(`junk-${i}`, 'x', 10, true, r.clock.now());
    await r.run(330, 10, 0.5);
    expect(r.rollbacks.map((x) => x.flagKey)).toEqual(['checkout']);
    expect(r.registry.droppedCohorts).toBeGreaterThan(1900);
    expect([...r.registry.cohorts()].length).toBeLessThanOrEqual(2 + 64);
  });

  it('judges every other flag, runs health checks and retries when one flag’s judgment fails', async () => {
    const clock = new FakeClock(START);
    const store = new MemoryFlagStore({ flags: { bad: checkout(), good: checkout() }, clock });
    // A registry whose window for one flag is broken stands in for any fault in one flag's judgment.
    class BrokenForOneFlag extends CohortRegistry {
      override window(flagKey: string, variant: string) {
        if (flagKey === 'bad') throw new TypeError('broken window');
        return super.window(flagKey, variant);
      }
    }
    const registry = new BrokenForOneFlag({ slotMs: SLOT_MS, slotCount: 72 });
    const guardian = new RolloutGuardian({ source: store, writer: new StoreWriter(store, clock), registry, clock });
    const errors: string[] = [];
    guardian.addListener({ error: (e) => errors.push(e.message) });
    let checks = 0;
    guardian.addHealthCheck('ping', () => Promise.resolve(++checks > 0));
    for (let s = 0; s < 330; s++) {
      for (let i = 0; i < 10; i++) registry.record('good', 'on', 50, i === 0, clock.now() + i * 100);
      clock.advance(1000);
      if (clock.now() % SLOT_MS === 0) await guardian.tick();
    }
    expect(guardian.status().map((x) => x.flagKey)).toEqual([]);
    expect((await store.load()).state.get('good')?.rollback).toBeDefined();
    expect(checks).toBeGreaterThan(60);
    expect(errors[0]).toBe('judging "bad" failed: broken window');
  });

  it('counts late and future-dated outcomes instead of mixing them in', async () => {
    const r = rig({ checkout: checkout() });
    await r.run(60, 1, 0);
    r.registry.record('checkout', 'on', 10, true, r.clock.now() - 60_000);
    r.registry.record('checkout', 'on', 10, true, r.clock.now() + 3_600_000);
    expect(r.registry.lateCount).toBe(1);
    expect(r.registry.futureCount).toBe(1);
  });
});

describe('RolloutGuardian on metric aggregates', () => {
  // What a Collector's spanmetrics connector or an app's http.server.request.duration gives per
  // interval: requests, errors and explicit buckets (OpenTelemetry's default bounds, in ms).
  const BOUNDS_MS = [5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

  /** One aggregate per cohort per slot, `slow` of the treatment's requests in (500, 750] ms. */
  async function feed(r: Rig, seconds: number, requestsPerSlot: number, treatment: { errorRate: number; slowShare: number }): Promise<void> {
    const random = mulberry32(11);
    const binomial = (n: number, p: number) => {
      let k = 0;
      for (let i = 0; i < n; i++) if (random() < p) k++;
      return k;
    };
    for (let s = 0; s < seconds; s += SLOT_MS / 1000) {
      const atMs = r.clock.now() + SLOT_MS - 1;
      for (const [variant, errorRate, slowShare] of [['on', treatment.errorRate, treatment.slowShare], ['off', 0.004, 0.01]] as const) {
        const slow = binomial(requestsPerSlot, slowShare);
        const counts = BOUNDS_MS.map(() => 0).concat(0);
        counts[5] = requestsPerSlot - slow;
        counts[8] = slow;
        r.registry.recordAggregate({ flagKey: 'checkout', variant, atMs, requests: requestsPerSlot, errors: binomial(requestsPerSlot, errorRate), latency: { boundsMs: BOUNDS_MS, counts }, source: 'otlp-metrics' });
      }
      r.clock.advance(SLOT_MS);
      await r.guardian.tick();
    }
  }

  it('rolls back a treatment whose errors breach, and names the source in its status', async () => {
    const r = rig({ checkout: checkout() });
    await feed(r, 300, 50, { errorRate: 0.004, slowShare: 0.01 });
    expect(r.rollbacks).toEqual([]);
    const status = r.guardian.status()[0];
    expect(status?.judgment.verdict).toBe('healthy');
    expect(status?.judgment.treatment.sources).toEqual(['otlp-metrics']);
    await feed(r, 420, 50, { errorRate: 0.05, slowShare: 0.01 });
    expect(r.rollbacks).toHaveLength(1);
    expect(r.rollbacks[0]?.reason).toMatch(/^breach held for \d+ s \(sustainFor 300 s\): error rate/);
  });

  it('judges P95 exactly on bucket counts when the limit is a bucket bound', async () => {
    const r = rig({ checkout: checkout({ maxP95Ms: 500 }) });
    // 12% of requests in (500, 750]: the P95 is above 500 ms.
    await feed(r, 600, 50, { errorRate: 0.004, slowShare: 0.12 });
    expect(r.rollbacks).toHaveLength(1);
    expect(r.rollbacks[0]?.reason).toContain('requests slower than 500 ms, so P95');
    expect(r.rollbacks[0]?.reason).not.toContain('approximate');
  });

  it('says a latency judgment is approximate when the limit falls inside a bucket', async () => {
    const r = rig({ checkout: checkout({ maxP95Ms: 600 }) });
    await feed(r, 600, 50, { errorRate: 0.004, slowShare: 0.3 });
    expect(r.rollbacks).toHaveLength(1);
    expect(r.rollbacks[0]?.reason).toContain('approximate: 600 ms is not a bucket bound, so the bucket 500 ms to 750 ms was interpolated');
  });

  it('does not roll back a healthy treatment fed for an hour', async () => {
    const r = rig({ checkout: checkout() });
    await feed(r, 3600, 50, { errorRate: 0.004, slowShare: 0.02 });
    expect(r.rollbacks).toEqual([]);
    expect(r.guardian.status()[0]?.judgment.verdict).toBe('healthy');
  });
});

describe('RolloutGuardian on business events (OpenFeature track())', () => {
  afterAll(() => OpenFeature.close());

  /**
   * Users arrive through the OpenFeature SDK at `usersPerSecond`; each evaluates the flag once
   * (an exposure), makes a healthy request, and converts with the variant's probability,
   * reported with client.track().
   */
  async function shop(maxDropPct: number, seconds: number, conversion: { on: number; off: number }, domain: string) {
    const r = rig({ checkout: checkout({ sustainFor: '1m', conversions: [{ event: 'checkout-completed', maxDropPct }] }) });
    const provider = new RolloutProvider({ store: r.store, clock: r.clock, tracking: r.registry, closeStore: false });
    await OpenFeature.setProviderAndWait(domain, provider);
    const client = OpenFeature.getClient(domain);
    const random = mulberry32(23);
    let user = 0;
    for (let s = 0; s < seconds; s++) {
      for (let i = 0; i < 40; i++) {
        const context = { targetingKey: `user-${user++}` };
        const on = await client.getBooleanValue('checkout', false, context);
        // The request itself is healthy and fast: only the business metric differs.
        r.registry.record('checkout', on ? 'on' : 'off', 80, random() < 0.002, r.clock.now());
        if (random() < (on ? conversion.on : conversion.off)) client.track('checkout-completed', context);
      }
      r.clock.advance(1000);
      if (r.clock.now() % SLOT_MS === 0) await r.guardian.tick();
    }
    return r;
  }

  it('rolls back a treatment whose conversions per exposure drop more than allowed below the baseline', async () => {
    const r = await shop(5, 900, { on: 0.07, off: 0.1 }, 'conversions-drop');
    expect(r.rollbacks).toHaveLength(1);
    expect(r.rollbacks[0]?.reason).toMatch(/^breach held for \d+ s \(sustainFor 60 s\): checkout-completed per exposure \d\.\d+% in the treatment vs \d+\.\d+% in the baseline \([\d,]+ and [\d,]+ exposures\), more than the allowed 5% below it since /);
    const check = (r.rollbacks[0]?.evidence as { check?: { check: string } }).check;
    expect(check?.check).toBe('conversion');
  });

  it('leaves a treatment that converts as well as the baseline alone, and calls it healthy once the events could have shown a drop', async () => {
    const r = await shop(20, 900, { on: 0.1, off: 0.1 }, 'conversions-same');
    expect(r.rollbacks).toEqual([]);
    const judgment = r.guardian.status()[0]?.judgment;
    expect(judgment?.verdict).toBe('healthy');
    const conversion = judgment?.checks.find((c) => c.check === 'conversion')?.conversion;
    expect(conversion?.treatmentExposures).toBeGreaterThan(10_000);
    expect(conversion?.treatmentRate).toBeGreaterThan(0.09);
  });
});

describe('RolloutGuardian and tracing', () => {
  const contextManager = new AsyncLocalStorageContextManager();
  const provider = new BasicTracerProvider();
  beforeAll(() => {
    context.setGlobalContextManager(contextManager.enable());
    trace.setGlobalTracerProvider(provider);
  });
  afterAll(async () => {
    trace.disable();
    context.disable();
    await provider.shutdown();
  });

  it('writes its rollbacks with tracing suppressed, so it never measures itself', async () => {
    const recording: boolean[] = [];
    const r = rig({ checkout: checkout() }, (store, clock) => {
      const real = new StoreWriter(store, clock);
      return {
        rollback: (flagKey: string, by: Attribution, evidence?: Readonly<Record<string, unknown>>) => {
          const span = trace.getTracer('test').startSpan('store write');
          recording.push(span.isRecording());
          span.end();
          return real.rollback(flagKey, by, evidence);
        },
      };
    });
    expect(trace.getTracer('test').startSpan('outside').isRecording()).toBe(true);
    await r.run(60, 10, 0.5);
    expect(recording).toEqual([false]);
  });
});
