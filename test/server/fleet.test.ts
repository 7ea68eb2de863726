// Two `serve` replicas on one real Redis store, on one fake clock, fed the same outcomes: one
// acts, the other judges and stands by; a killed holder is replaced within two slots; every
// breach is rolled back exactly once; a holder that lost the lease cannot write; a graceful
// close hands over at once; plans advance on one replica only. Plus one smoke test that kills
// a real `serve` process with SIGKILL.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/core/clock.js';
import type { FlagDefinitionInput } from '../../src/core/flag-schema.js';
import { planSteps } from '../../src/deploy/plan.js';
import { PlanWriter } from '../../src/deploy/plan-writer.js';
import type { RollbackRecord } from '../../src/guardian/rollout-guardian.js';
import { RolloutServer } from '../../src/server/rollout-server.js';
import type { AuditEntry, StoreEvent } from '../../src/stores/flag-store.js';
import { NotLeaseHolderError, RedisFlagStore } from '../../src/stores/redis-store.js';
import { StoreWriter } from '../../src/stores/store-writer.js';
import { PROMETHEUS_NAMES } from '../../src/telemetry/names.js';
import { CLI_MAIN, requireBuiltCli } from '../helpers/cli-binary.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { RedisServer } from '../helpers/redis-server.js';
import { nextEvent } from '../helpers/events.js';
import { lognormal, mulberry32 } from '../helpers/seeded-random.js';

const SLOT_MS = 5_000;
const HALF_MS = SLOT_MS / 2;
const START = Date.parse('2026-11-27T12:00:00Z');
const by = { actor: 'sre', reason: 'test' };

function guarded(extra: Partial<FlagDefinitionInput> = {}): FlagDefinitionInput {
  return { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: 50 }, guard: { maxErrorRate: 0.01, sustainFor: '20s' }, ...extra };
}

/** One replica's view of the shared clock; a paused process sees it stand still. */
class ReplicaClock implements Clock {
  private frozenAt: number | undefined;
  constructor(private readonly shared: FakeClock) {}
  now(): number {
    return this.frozenAt ?? this.shared.now();
  }
  pause(): void {
    this.frozenAt = this.shared.now();
  }
}

interface Replica {
  readonly name: string;
  readonly server: RolloutServer;
  readonly store: RedisFlagStore;
  readonly clock: ReplicaClock;
  readonly log: string[];
  readonly rollbacks: RollbackRecord[];
  /** Flags this replica's guardian judged `rollback`, whether or not it wrote them. */
  readonly decided: Set<string>;
  /** Plan steps this replica wrote (or would have, in dry run). */
  readonly planMoves: string[];
  /** Fed and ticked by the fleet; false once killed or paused. */
  running: boolean;
}

let redis: RedisServer;
let prefixes = 0;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  redis = await RedisServer.start();
});

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
});

afterAll(async () => {
  await redis?.dispose();
});

/** A fresh key prefix on the shared redis-server, with these flags, and two replicas on one fake clock. */
class Fleet {
  readonly clock = new FakeClock(START);
  readonly url = redis.url(`fleet-${++prefixes}`);
  readonly replicas: Replica[] = [];
  private readonly random = mulberry32(11);
  private readonly admin: RedisFlagStore;

  private constructor() {
    this.admin = new RedisFlagStore({ url: this.url, clock: this.clock });
    closers.push(() => this.admin.close());
  }

  static async of(flags: Record<string, FlagDefinitionInput>, names: readonly string[] = ['replica-a', 'replica-b']): Promise<Fleet> {
    const fleet = new Fleet();
    await fleet.admin.write({ ...by, action: 'seed', changes: Object.entries(flags).map(([flagKey, value]) => ({ flagKey, definitionEdits: [{ path: [], value }] })) });
    for (const name of names) await fleet.start(name);
    return fleet;
  }

  async start(name: string): Promise<Replica> {
    const clock = new ReplicaClock(this.clock);
    const log: string[] = [];
    const store = new RedisFlagStore({ url: this.url, clock });
    const server = await RolloutServer.start({ store, port: 0, clock, slotMs: SLOT_MS, autoTick: false, replicaName: name, log: (line) => log.push(line), ingest: { allowedLatenessMs: 0, joinWaitMs: 1 } });
    closers.push(() => server.close());
    const replica: Replica = { name, server, store, clock, log, rollbacks: [], decided: new Set(), planMoves: [], running: true };
    server.guardian.addListener({ rollback: (r) => replica.rollbacks.push(r), decision: (d) => d.judgment.verdict === 'rollback' && replica.decided.add(d.flagKey) });
    server.plans.onEvent((e) => replica.planMoves.push(`${e.action.kind} ${e.flagKey}`));
    this.replicas.push(replica);
    return replica;
  }

  get a(): Replica {
    return this.replicas[0] as Replica;
  }

  get b(): Replica {
    return this.replicas[1] as Replica;
  }

  /**
   * Half a slot of traffic (each flag's treatment failing at its rate, the baseline at 0.2%),
   * recorded alike into every running replica; then each renews or competes for the lease and
   * judges, as their timers would: the later replicas judge first, so a standby has always
   * reached its verdict before the holder writes it.
   */
  async halfSlot(traffic: Record<string, number>, perCohort = 40): Promise<void> {
    const from = this.clock.now();
    for (const [flagKey, errorRate] of Object.entries(traffic)) {
      for (let i = 0; i < perCohort; i++) {
        const at = from + Math.floor((i * HALF_MS) / perCohort);
        const treatment = [lognormal(this.random, 80, 0.4), this.random() < errorRate] as const;
        const baseline = [lognormal(this.random, 80, 0.4), this.random() < 0.002] as const;
        for (const r of this.replicas) {
          if (!r.running) continue;
          r.server.registry.record(flagKey, 'on', treatment[0], treatment[1], at);
          r.server.registry.record(flagKey, 'off', baseline[0], baseline[1], at);
        }
      }
    }
    this.clock.advance(HALF_MS);
    for (const r of this.replicas) if (r.running) await r.server.lease?.tick();
    for (const r of [...this.replicas].reverse()) {
      if (!r.running) continue;
      await r.server.guardian.tick();
      await r.server.plans.tick();
    }
  }

  /** Half slots of `traffic` until `done` holds; fails after `limit` half slots. */
  async until(done: () => boolean, traffic: Record<string, number>, limit = 200): Promise<number> {
    for (let n = 1; n <= limit; n++) {
      await this.halfSlot(traffic);
      if (done()) return n;
    }
    throw new Error(`not done after ${limit} half slots`);
  }

  /** Stops renewing and ticking without releasing anything, as SIGKILL would. */
  kill(replica: Replica): void {
    replica.running = false;
    replica.server.lease?.abandon();
  }

  audit(flagKey: string, action = 'rollback'): Promise<AuditEntry[]> {
    return this.admin.audit({ flagKey }).then((entries) => entries.filter((e) => e.action === action));
  }
}

async function scrape(server: RolloutServer): Promise<string> {
  return (await fetch(`${server.url}/metrics`)).text();
}

describe('a fleet of two serve replicas on one Redis store', () => {
  it('acts on one replica; the other stands by, ready, and says who acts in /api/status, /metrics and its log', async () => {
    const fleet = await Fleet.of({ checkout: guarded() });
    const { a, b } = fleet;
    expect(a.server.leaseStatus()).toMatchObject({ mode: 'lease', acting: true, replica: 'replica-a', holder: 'replica-a', token: 1, ttlMs: 7_500, renewEveryMs: 2_500 });
    expect(b.server.leaseStatus()).toMatchObject({ mode: 'lease', acting: false, replica: 'replica-b', holder: 'replica-a', token: 1 });
    expect(a.log).toEqual([expect.stringMatching(/^guardian lease held by replica-a: acquired with token 1; this replica acts$/)]);
    expect(b.log).toEqual([]);

    expect((await fetch(`${b.server.url}/readyz`)).status).toBe(200);
    const status = (await (await fetch(`${b.server.url}/api/status`)).json()) as { lease: unknown };
    expect(status.lease).toMatchObject({ mode: 'lease', acting: false, replica: 'replica-b', holder: 'replica-a' });
    expect(await scrape(a.server)).toMatch(new RegExp(`^${PROMETHEUS_NAMES.leaseHolder}\\{[^}]*\\} 1$`, 'm'));
    expect(await scrape(b.server)).toMatch(new RegExp(`^${PROMETHEUS_NAMES.leaseHolder}\\{[^}]*\\} 0$`, 'm'));
    // Renewals keep the holder acting and the standby standing by.
    for (let i = 0; i < 6; i++) await fleet.halfSlot({ checkout: 0.002 });
    expect([a.server.leaseStatus().acting, b.server.leaseStatus().acting]).toEqual([true, false]);
    expect(a.log).toHaveLength(1);
  });

  it('rolls a breach back exactly once: the holder writes it, the standby judges the same breach and writes nothing, even once it acts', async () => {
    const fleet = await Fleet.of({ checkout: guarded() });
    const { a, b } = fleet;
    await fleet.until(() => a.rollbacks.length > 0, { checkout: 0.2 });
    // The standby reached the same verdict on the same outcomes.
    expect(b.decided).toEqual(new Set(['checkout']));
    expect(b.rollbacks).toEqual([]);
    for (let i = 0; i < 4; i++) await fleet.halfSlot({ checkout: 0.2 });
    // Handed over: the new holder finds the flag already rolled back and writes no second entry.
    await a.server.close();
    a.running = false;
    await fleet.until(() => b.server.leaseStatus().acting, { checkout: 0.2 }, 2);
    for (let i = 0; i < 4; i++) await fleet.halfSlot({ checkout: 0.2 });
    expect(b.rollbacks).toEqual([]);
    // However late the new holder's own decision comes, it finds the flag rolled back and writes nothing.
    const again = await new StoreWriter((b.server.lease as NonNullable<RolloutServer['lease']>).fencedStore(), b.clock).rollbackOnce('checkout', { actor: 'rollout-guardian', reason: 'a late decision' });
    expect(again.entries).toEqual([]);
    const entries = await fleet.audit('checkout');
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ actor: 'rollout-guardian', evidence: { cause: 'breach', check: { check: 'errorRate' } } });
  });

  it('when the holder is killed, the standby takes over within two slots and rolls the next breach back once', async () => {
    const fleet = await Fleet.of({ checkout: guarded(), search: guarded() });
    const { a, b } = fleet;
    for (let i = 0; i < 8; i++) await fleet.halfSlot({ checkout: 0.002, search: 0.002 });
    const killedAt = fleet.clock.now();
    fleet.kill(a);
    const halfSlots = await fleet.until(() => b.server.leaseStatus().acting, { checkout: 0.002, search: 0.002 }, 8);
    expect(halfSlots * HALF_MS).toBeLessThanOrEqual(2 * SLOT_MS);
    expect(fleet.clock.now() - killedAt).toBeLessThanOrEqual(2 * SLOT_MS);
    expect(b.server.leaseStatus()).toMatchObject({ acting: true, holder: 'replica-b', token: 2 });
    expect(b.log).toEqual([expect.stringMatching(/^guardian lease held by replica-b: acquired with token 2 \(from replica-a\); this replica acts$/)]);

    await fleet.until(() => b.rollbacks.length > 0, { checkout: 0.002, search: 0.2 });
    for (let i = 0; i < 4; i++) await fleet.halfSlot({ checkout: 0.002, search: 0.2 });
    expect(b.rollbacks.map((r) => r.flagKey)).toEqual(['search']);
    expect(a.rollbacks).toEqual([]);
    expect(await fleet.audit('search')).toHaveLength(1);
    expect(await fleet.audit('checkout')).toEqual([]);
  });

  it('fences a holder that was paused past its lease: its late write is refused in Redis and nothing is written', async () => {
    const fleet = await Fleet.of({ checkout: guarded() });
    const { a, b } = fleet;
    // Paused (SIGSTOP, a long GC): A's time stands still, so by its clock it still holds the lease.
    a.running = false;
    a.clock.pause();
    await fleet.until(() => b.server.leaseStatus().acting, { checkout: 0.002 }, 8);
    expect(a.server.leaseStatus()).toMatchObject({ acting: true, token: 1 });
    // A wakes and lands the write it had decided on before the pause.
    const late = new StoreWriter((a.server.lease as NonNullable<RolloutServer['lease']>).fencedStore(), a.clock).rollbackOnce('checkout', { actor: 'rollout-guardian', reason: 'decided before the pause' });
    const refusal = await late.then(() => undefined, (err: unknown) => err);
    expect(refusal).toBeInstanceOf(NotLeaseHolderError);
    expect((refusal as Error).message).toBe(`this replica no longer holds the guardian lease on ${(await fleet.a.server.status()).store} (replica-b holds it with token 2); nothing was written`);
    expect(await fleet.audit('checkout')).toEqual([]);
    // And it knows: A stands by from now on.
    expect(a.server.leaseStatus().acting).toBe(false);
    expect(a.log.at(-1)).toMatch(/^guardian lease lost by replica-a: a write was fenced: replica-b \(token 2\) holds the lease; this replica stands by/);
  });

  it('hands over at once on a graceful close: the standby acts at its next renewal, half a slot later', async () => {
    const fleet = await Fleet.of({ checkout: guarded() });
    const { a, b } = fleet;
    await fleet.halfSlot({ checkout: 0.002 });
    await a.server.close();
    a.running = false;
    expect(a.log.at(-1)).toBe('guardian lease released by replica-a (token 1)');
    expect(await fleet.until(() => b.server.leaseStatus().acting, { checkout: 0.002 }, 1)).toBe(1);
    expect(b.server.leaseStatus()).toMatchObject({ holder: 'replica-b', token: 2 });
  });

  it('while Redis is away no one acts; the rollback decided meanwhile lands once when it is back', async () => {
    const fleet = await Fleet.of({ checkout: guarded() });
    const { a, b } = fleet;
    for (let i = 0; i < 4; i++) await fleet.halfSlot({ checkout: 0.002 });
    const back = fleet.replicas.map((r) => nextEvent<StoreEvent>((listener) => r.store.watch(listener), (e) => e.type === 'available', 20_000));
    await redis.stop();
    await fleet.until(() => a.server.guardian.pendingRollbacks.includes('checkout'), { checkout: 0.2 });
    // The holder stopped acting one TTL after its last renewal; the standby could not take over.
    expect([a.server.leaseStatus().acting, b.server.leaseStatus().acting]).toEqual([false, false]);
    expect(a.log).toContainEqual(expect.stringMatching(/^guardian lease lost by replica-a: no renewal for 7500 ms; standing by until one lands/));
    expect(a.rollbacks).toEqual([]);
    await redis.resume();
    await Promise.all(back);
    await fleet.until(() => a.rollbacks.length + b.rollbacks.length > 0, { checkout: 0.2 }, 4);
    for (let i = 0; i < 4; i++) await fleet.halfSlot({ checkout: 0.2 });
    expect(a.rollbacks.length + b.rollbacks.length).toBe(1);
    expect(await fleet.audit('checkout')).toHaveLength(1);
    expect(fleet.replicas.filter((r) => r.server.leaseStatus().acting)).toHaveLength(1);
  });

  it('advances a deployment plan on the acting replica only, each step once, across a failover', async () => {
    const fleet = await Fleet.of({ checkout: guarded({ rollout: { variant: 'on', percentage: 0 } }) });
    const { a, b } = fleet;
    const admin = new RedisFlagStore({ url: fleet.url, clock: fleet.clock });
    closers.push(() => admin.close());
    await new PlanWriter(admin, fleet.clock).deploy('checkout', 'custom', planSteps('custom', { steps: [10, 50, 100], stepDurationMs: 60_000 }), by);
    const advances = async (count: number): Promise<AuditEntry[]> => {
      let entries: AuditEntry[] = [];
      for (let n = 0; n < 200 && entries.length < count; n++) {
        await fleet.halfSlot({ checkout: 0.001 });
        entries = await fleet.audit('checkout', 'plan-advance');
      }
      return entries;
    };
    expect(await advances(1)).toHaveLength(1);
    expect(a.planMoves).toEqual(['advance checkout']);
    expect(b.planMoves).toEqual([]);
    fleet.kill(a);
    const both = await advances(2);
    for (let i = 0; i < 4; i++) await fleet.halfSlot({ checkout: 0.001 });
    expect(await fleet.audit('checkout', 'plan-advance')).toHaveLength(2);
    expect(both).toHaveLength(2);
    expect(a.planMoves).toEqual(['advance checkout']);
    expect(b.planMoves).toEqual(['advance checkout']);
    expect((await admin.load()).state.get('checkout')?.plan?.stepIndex).toBe(2);
  });

  it('survives SIGKILL of a real serve process: the lease stays with the dead process until a standby has seen it unrenewed for its TTL', async () => {
    requireBuiltCli();
    const fleet = await Fleet.of({ checkout: guarded() }, []);
    const child: ChildProcess = spawn(process.execPath, [CLI_MAIN, 'serve', '--store', fleet.url, '--port', '0', '--no-grpc-port', '--slot', '200ms', '--replica-name', 'serve-child'], { stdio: ['ignore', 'pipe', 'pipe'] });
    closers.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return Promise.resolve();
    });
    let err = '';
    child.stderr?.setEncoding('utf8');
    await new Promise<void>((resolve, reject) => {
      child.stderr?.on('data', (chunk: string) => {
        err += chunk;
        if (err.includes('guardian lease held by serve-child: acquired with token 1')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
    });
    const raw = new Redis({ host: '127.0.0.1', port: redis.port });
    closers.push(() => raw.quit());
    const key = `${fleet.url.split('prefix=')[1]}:guardian-lease`;
    const childName = await raw.hget(key, 'owner');
    expect(childName).toBe('serve-child');
    expect(await raw.hget(key, 'ttlMs')).toBe('300');
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    // Nothing released it: the standby must wait out the TTL, measured on its own clock.
    expect(await raw.hget(key, 'owner')).toBe(childName);
    const b = await fleet.start('replica-b');
    expect(b.server.leaseStatus()).toMatchObject({ acting: false, holder: childName, token: 1 });
    fleet.clock.advance(299);
    await b.server.lease?.tick();
    expect(b.server.leaseStatus().acting).toBe(false);
    fleet.clock.advance(1);
    await b.server.lease?.tick();
    expect(b.server.leaseStatus()).toMatchObject({ acting: true, holder: 'replica-b', token: 2 });
    expect(err).not.toMatch(/released/);
  });

  it('refuses a replica name it cannot put in the lease, with what to give instead', () => {
    requireBuiltCli();
    const run = spawnSync(process.execPath, [CLI_MAIN, 'serve', '--replica-name', 'web 7'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('"web 7" cannot name a replica; give printable characters without spaces, such as the pod name');
  });
});
