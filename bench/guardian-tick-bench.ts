// `npm run bench` (guardianTick): what one guardian tick costs in CPU with 200 guarded flags,
// each with a treatment and a baseline at 10 req/s, after an hour of virtual traffic; and the
// memory a cohort holds at 10,000 spans/s (its ring of sketches plus its flag's evidence).
// Medians over the ticks measured; the machine is shared, so read the median, not the max.
import { CohortRegistry } from '../src/guardian/cohort-registry.js';
import { RolloutGuardian } from '../src/guardian/rollout-guardian.js';
import { FlagEvidence } from '../src/guardian/flag-evidence.js';
import { DEFAULT_GUARD_POLICY } from '../src/guardian/guard-policy.js';
import type { FlagDefinitionInput } from '../src/core/flag-schema.js';
import { MemoryFlagStore } from '../src/stores/memory-store.js';
import { StoreWriter } from '../src/stores/store-writer.js';
import { lognormal, mulberry32 } from '../test/helpers/seeded-random.js';
import { quantile, roundsOption } from './measure.js';

const SLOT_MS = 5_000;
const FLAGS = 200;
const START = Date.parse('2026-11-27T00:00:00Z');

class SimClock {
  constructor(public ms: number) {}
  now(): number {
    return this.ms;
  }
}

async function tickCost(measuredTicks: number): Promise<{ medianMs: number; p95Ms: number }> {
  const random = mulberry32(5);
  const clock = new SimClock(START);
  const flags: Record<string, FlagDefinitionInput> = {};
  for (let i = 0; i < FLAGS; i++) flags[`flag-${i}`] = { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: 50 } };
  const store = new MemoryFlagStore({ clock, flags });
  const registry = new CohortRegistry({ slotMs: SLOT_MS, slotCount: 72 });
  const guardian = new RolloutGuardian({ source: store, writer: new StoreWriter(store, clock), registry, clock });
  const latencies = Array.from({ length: 4096 }, () => lognormal(random, 80, 0.6));
  let n = 0;
  const traffic = () => {
    // One slot of 10 req/s per cohort.
    for (let i = 0; i < FLAGS; i++) {
      for (let r = 0; r < 50; r++, n++) {
        const at = clock.ms + Math.floor((r * SLOT_MS) / 50);
        registry.record(`flag-${i}`, 'on', latencies[n & 4095] as number, (n * 7919) % 200 === 0, at);
        registry.record(`flag-${i}`, 'off', latencies[(n * 3) & 4095] as number, (n * 104729) % 200 === 0, at);
      }
    }
  };
  const warmupTicks = 720; // an hour of slots: restarted tests and merged history at their steady size
  const costs: number[] = [];
  for (let t = 0; t < warmupTicks + measuredTicks; t++) {
    traffic();
    clock.ms += SLOT_MS;
    const before = process.cpuUsage();
    await guardian.tick();
    const used = process.cpuUsage(before);
    if (t >= warmupTicks) costs.push((used.user + used.system) / 1000);
  }
  await guardian.shutdown();
  costs.sort((a, b) => a - b);
  return { medianMs: quantile(costs, 0.5), p95Ms: quantile(costs, 0.95) };
}

function cohortBytes(): { ringBytes: number; evidenceBytes: number } {
  const random = mulberry32(6);
  const registry = new CohortRegistry({ slotMs: SLOT_MS, slotCount: 72 });
  const evidence = new FlagEvidence({ policy: DEFAULT_GUARD_POLICY, startMs: START, epochKey: 'k', slotMs: SLOT_MS });
  // Six hours at 10,000 spans/s would take minutes to draw; the ring holds 6 minutes, so fill
  // it at the full rate and fold six hours of slots into the evidence (its size depends on slots, not spans).
  for (let slot = 0; slot < 72; slot++) {
    for (let i = 0; i < 50_000; i++) registry.record('f', 'on', lognormal(random, 80, 1), random() < 0.005, START + slot * SLOT_MS + (i % SLOT_MS));
  }
  const window = registry.window('f', 'on');
  if (window === undefined) throw new Error('no window');
  const slots = window.slots(START, START + 72 * SLOT_MS);
  for (let i = 0; i < 6 * 720; i++) {
    const slot = slots[i % slots.length];
    if (slot === undefined) continue;
    const startMs = START + i * SLOT_MS;
    evidence.fold(startMs, startMs + SLOT_MS, slot, slot, () => undefined);
  }
  return { ringBytes: window.byteSize(), evidenceBytes: evidence.byteSize() };
}

const rounds = roundsOption(process.argv.slice(2), 3);
const json = process.argv.includes('--json');
const medians: number[] = [];
const p95s: number[] = [];
for (let round = 0; round < rounds; round++) {
  const r = await tickCost(120);
  medians.push(r.medianMs);
  p95s.push(r.p95Ms);
}
medians.sort((a, b) => a - b);
p95s.sort((a, b) => a - b);
const memory = cohortBytes();
const result = {
  flags: FLAGS,
  rounds,
  tickCpuMedianMs: quantile(medians, 0.5),
  tickCpuP95Ms: quantile(p95s, 0.5),
  cohortRingKiB: memory.ringBytes / 1024,
  flagEvidenceKiB: memory.evidenceBytes / 1024,
};
if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  process.stdout.write(`guardian tick, ${FLAGS} guarded flags at 10 req/s per cohort, after an hour of traffic (median of ${rounds} rounds of 120 ticks):\n`);
  process.stdout.write(`  CPU per tick: median ${result.tickCpuMedianMs.toFixed(2)} ms, p95 ${result.tickCpuP95Ms.toFixed(2)} ms (target: median under 20 ms)\n`);
  process.stdout.write(`memory at 10,000 spans/s: cohort ring ${result.cohortRingKiB.toFixed(1)} KiB + its flag's evidence after 6 h ${result.flagEvidenceKiB.toFixed(1)} KiB = ${(result.cohortRingKiB + result.flagEvidenceKiB).toFixed(1)} KiB (budget 96 KiB)\n`);
}
