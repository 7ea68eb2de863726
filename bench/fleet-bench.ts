// `npm run bench` (fleet): what one guardian replica holds for a fleet, and how long a standby
// takes to replace a killed one. Memory: 1,000 guarded flags x 2 variants fed by 100 senders
// (the cohort registry's rings and every flag's evidence), heap measured after a full GC.
// Failover: two leases on a real redis-server, on one simulated clock, the holder killed at a
// random moment with random renewal phases; takeover measured in slots. See docs/fleet.md.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CohortRegistry } from '../src/guardian/cohort-registry.js';
import { RolloutGuardian } from '../src/guardian/rollout-guardian.js';
import type { FlagDefinitionInput } from '../src/core/flag-schema.js';
import { MemoryFlagStore } from '../src/stores/memory-store.js';
import { RedisFlagStore } from '../src/stores/redis-store.js';
import { RedisLease } from '../src/stores/redis-lease.js';
import { StoreWriter } from '../src/stores/store-writer.js';
import { RedisServer } from '../test/helpers/redis-server.js';
import { lognormal, mulberry32 } from '../test/helpers/seeded-random.js';
import { fail, quantile } from './measure.js';

const SLOT_MS = 5_000;
const FLAGS = 1_000;
const SENDERS = 100;
/** Twice the ring (72 slots, serve's default): every ring full and evidence older than it. */
const SLOTS = 144;
const TRIALS = 60;
const START = Date.parse('2026-11-27T00:00:00Z');

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

class SimClock {
  constructor(public ms: number) {}
  now(): number {
    return this.ms;
  }
}

function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

async function fleetMemory(): Promise<{ heapBytes: number; perCohortBytes: number; ringBytes: number; outcomes: number }> {
  const random = mulberry32(15);
  const clock = new SimClock(START);
  const flags: Record<string, FlagDefinitionInput> = {};
  for (let i = 0; i < FLAGS; i++) flags[`flag-${i}`] = { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: 50 } };
  const store = new MemoryFlagStore({ clock, flags });
  const registry = new CohortRegistry({ slotMs: SLOT_MS, slotCount: 72, maxCohorts: 2 * FLAGS });
  const guardian = new RolloutGuardian({ source: store, writer: new StoreWriter(store, clock), registry, clock });
  await guardian.tick();
  // Each sender has its own latency mix, so the sketches see as many distinct values as a fleet sends.
  const senders = Array.from({ length: SENDERS }, (_, s) => Array.from({ length: 64 }, () => lognormal(random, 40 + s, 0.6)));
  const before = heapAfterGc();
  let outcomes = 0;
  for (let slot = 0; slot < SLOTS; slot++) {
    for (let f = 0; f < FLAGS; f++) {
      const flagKey = `flag-${f}`;
      for (let s = 0; s < SENDERS; s++) {
        const at = clock.ms + Math.floor((s * SLOT_MS) / SENDERS);
        const mix = senders[s] as number[];
        registry.record(flagKey, 'on', mix[(slot + f) & 63] as number, (slot * 31 + f * 7 + s) % 400 === 0, at);
        registry.record(flagKey, 'off', mix[(slot + f + 17) & 63] as number, (slot * 17 + f * 5 + s) % 500 === 0, at);
        outcomes += 2;
      }
    }
    clock.ms += SLOT_MS;
    await guardian.tick();
  }
  const after = heapAfterGc();
  // The rings' own account of their size, beside the heap's: the two should roughly agree.
  let ringBytes = 0;
  for (const { window } of registry.cohorts()) ringBytes += window.byteSize();
  const judged = guardian.status().length;
  if (judged !== FLAGS) fail(`expected ${FLAGS} judged flags, got ${judged}`);
  if (registry.lateCount + registry.futureCount + registry.droppedCohorts > 0) fail(`outcomes were refused: ${registry.lateCount} late, ${registry.futureCount} future, ${registry.droppedCohorts} over the cohort limit`);
  await guardian.shutdown();
  const heapBytes = after - before;
  return { heapBytes, perCohortBytes: heapBytes / (2 * FLAGS), ringBytes, outcomes };
}

interface Takeover {
  readonly killedSlots: number[];
  readonly handoverSlots: number[];
}

/** Advances the simulated clock in 10 ms steps, ticking each lease at its own phase, until `done`. */
async function runUntil(clock: SimClock, leases: readonly { lease: RedisLease; phaseMs: number }[], done: () => boolean, limitMs: number): Promise<number> {
  const from = clock.ms;
  while (!done()) {
    if (clock.ms - from > limitMs) fail(`no takeover within ${limitMs} ms`);
    clock.ms += 10;
    for (const { lease, phaseMs } of leases) if ((clock.ms - phaseMs) % lease.renewEveryMs === 0) await lease.tick();
  }
  return clock.ms - from;
}

async function takeovers(): Promise<Takeover> {
  const redis = await RedisServer.start();
  const random = mulberry32(21);
  const killedSlots: number[] = [];
  const handoverSlots: number[] = [];
  try {
    for (let trial = 0; trial < TRIALS; trial++) {
      const clock = new SimClock(START);
      const stores = [0, 1].map(() => new RedisFlagStore({ url: redis.url(`fleet-bench-${trial}`), clock }));
      const [a, b] = stores.map((store, i) => new RedisLease({ store, slotMs: SLOT_MS, clock, owner: `replica-${i}` })) as [RedisLease, RedisLease];
      const phase = () => Math.floor(random() * (SLOT_MS / 2 / 10)) * 10;
      const pa = { lease: a, phaseMs: phase() };
      const pb = { lease: b, phaseMs: phase() };
      await a.tick();
      await b.tick();
      if (!a.acting || b.acting) fail('the first lease did not go to the first replica');
      // Run a random while, then kill the holder (it stops renewing, releases nothing).
      await runUntil(clock, [pa, pb], () => clock.ms - START >= 2 * SLOT_MS + Math.floor(random() * SLOT_MS / 10) * 10, 10 * SLOT_MS);
      a.abandon();
      killedSlots.push((await runUntil(clock, [pb], () => b.acting, 10 * SLOT_MS)) / SLOT_MS);
      // And a graceful close of the new holder hands back to a fresh replica.
      const c = new RedisLease({ store: stores[0] as RedisFlagStore, slotMs: SLOT_MS, clock, owner: 'replica-2' });
      const pc = { lease: c, phaseMs: phase() };
      await runUntil(clock, [pb, pc], () => clock.ms % SLOT_MS === 0, SLOT_MS);
      await b.close();
      handoverSlots.push((await runUntil(clock, [pc], () => c.acting, 10 * SLOT_MS)) / SLOT_MS);
      await c.close();
      for (const store of stores) await store.close();
    }
  } finally {
    await redis.dispose();
  }
  return { killedSlots, handoverSlots };
}

const json = process.argv.includes('--json');
const memory = await fleetMemory();
const t = await takeovers();
const sorted = (xs: number[]) => [...xs].sort((x, y) => x - y);
const killed = sorted(t.killedSlots);
const handover = sorted(t.handoverSlots);
const result = {
  flags: FLAGS,
  cohorts: 2 * FLAGS,
  senders: SENDERS,
  slots: SLOTS,
  outcomes: memory.outcomes,
  heapMiB: memory.heapBytes / 1024 / 1024,
  perCohortKiB: memory.perCohortBytes / 1024,
  ringsByteSizeMiB: memory.ringBytes / 1024 / 1024,
  trials: TRIALS,
  takeoverAfterKillSlots: { median: quantile(killed, 0.5), p95: quantile(killed, 0.95), max: killed.at(-1) ?? Number.NaN },
  takeoverAfterCloseSlots: { median: quantile(handover, 0.5), max: handover.at(-1) ?? Number.NaN },
};
if (result.takeoverAfterKillSlots.max > 2) fail(`a standby took ${result.takeoverAfterKillSlots.max} slots to replace a killed holder (bound: 2)`);
if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  process.stdout.write(`fleet: ${FLAGS} guarded flags x 2 variants fed by ${SENDERS} senders for ${SLOTS} slots of ${SLOT_MS / 1000} s (${(memory.outcomes / 1e6).toFixed(1)} M outcomes):\n`);
  process.stdout.write(`  cohort registry + evidence: ${result.heapMiB.toFixed(1)} MiB of heap after GC, ${result.perCohortKiB.toFixed(1)} KiB per cohort (the rings count ${result.ringsByteSizeMiB.toFixed(1)} MiB themselves)\n`);
  process.stdout.write(`failover on a real redis-server, ${TRIALS} trials with random renewal phases and kill times:\n`);
  process.stdout.write(`  holder killed: standby acts after median ${result.takeoverAfterKillSlots.median.toFixed(2)} slots, p95 ${result.takeoverAfterKillSlots.p95.toFixed(2)}, max ${result.takeoverAfterKillSlots.max.toFixed(2)} (bound 2)\n`);
  process.stdout.write(`  holder closed: standby acts after median ${result.takeoverAfterCloseSlots.median.toFixed(2)} slots, max ${result.takeoverAfterCloseSlots.max.toFixed(2)} (bound 0.5)\n`);
}
