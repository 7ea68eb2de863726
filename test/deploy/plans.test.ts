// Whole plans through days of virtual time: the real PlanRunner, RolloutGuardian, cohort
// windows and stores, with traffic recorded straight into the cohorts once a minute.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { CohortRegistry } from '../../src/guardian/cohort-registry.js';
import { RolloutGuardian } from '../../src/guardian/rollout-guardian.js';
import { PlanRunner, type PlanEvent } from '../../src/deploy/plan-runner.js';
import { PlanWriter } from '../../src/deploy/plan-writer.js';
import { PlanError, planSchedule, planSteps } from '../../src/deploy/plan.js';
import type { FlagStore } from '../../src/stores/flag-store.js';
import { MemoryFlagStore } from '../../src/stores/memory-store.js';
import { FileFlagStore } from '../../src/stores/file-store.js';
import { StoreWriter } from '../../src/stores/store-writer.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { lognormal, mulberry32 } from '../helpers/seeded-random.js';
import { withTempDir } from '../helpers/temp-dir.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const START = Date.parse('2026-11-02T09:00:00Z');
const by = { actor: 'sre', reason: 'release 42' };
const FLAG = {
  checkout: { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on' }, guard: { maxErrorRate: 0.01, sustainFor: '5m' } },
};

// Latencies drawn once and cycled: the plans care about health, not about the draw.
const random = mulberry32(11);
const LATENCIES = Array.from({ length: 4096 }, () => lognormal(random, 80, 0.5));

interface Rig {
  readonly clock: FakeClock;
  readonly store: FlagStore;
  readonly plans: PlanWriter;
  readonly events: PlanEvent[];
  treatmentErrorRate: number;
  /** Minutes of traffic, with the guardian and the runner ticking once a minute. */
  run(minutes: number): Promise<void>;
  /** A new guardian and runner on the same store and clock: a process restart. */
  restart(): void;
  shutdown(): Promise<void>;
}

function rig(store: FlagStore, clock: FakeClock, options: { dryRun?: boolean } = {}): Rig {
  let registry = new CohortRegistry({ slotMs: MINUTE, slotCount: 12 });
  let guardian = new RolloutGuardian({ source: store, writer: new StoreWriter(store, clock), registry, clock, dryRun: options.dryRun });
  let runner = new PlanRunner({ store, judgments: guardian, clock, dryRun: options.dryRun });
  const events: PlanEvent[] = [];
  runner.onEvent((e) => events.push(e));
  let n = 0;
  const self: Rig = {
    clock,
    store,
    plans: new PlanWriter(store, clock),
    events,
    treatmentErrorRate: 0.002,
    async run(minutes) {
      for (let m = 0; m < minutes; m++) {
        const at = clock.now();
        const errorEvery = Math.round(1 / self.treatmentErrorRate);
        for (let i = 0; i < 1000; i++, n++) {
          registry.record('checkout', 'on', LATENCIES[n % LATENCIES.length] as number, n % errorEvery === 0, at + i);
          registry.record('checkout', 'off', LATENCIES[(n * 7) % LATENCIES.length] as number, n % 500 === 0, at + i);
        }
        clock.advance(MINUTE);
        await guardian.tick();
        await runner.tick();
      }
    },
    restart() {
      void guardian.shutdown();
      void runner.shutdown();
      registry = new CohortRegistry({ slotMs: MINUTE, slotCount: 12 });
      guardian = new RolloutGuardian({ source: store, writer: new StoreWriter(store, clock), registry, clock, dryRun: options.dryRun });
      runner = new PlanRunner({ store, judgments: guardian, clock, dryRun: options.dryRun });
      runner.onEvent((e) => events.push(e));
    },
    async shutdown() {
      await guardian.shutdown();
      await runner.shutdown();
    },
  };
  return self;
}

async function planOf(store: FlagStore) {
  return (await store.load()).state.get('checkout');
}

describe('deployment plans', () => {
  it('lays out the strategies: safe reaches 100% after 7 days, fast after 3, instant after a minute', () => {
    const total = (strategy: 'safe' | 'fast' | 'instant') => planSteps(strategy).reduce((ms, s) => ms + s.holdMs, 0);
    expect(planSteps('safe').map((s) => s.percentage)).toEqual([0, 5, 10, 25, 50, 75, 100]);
    expect(total('safe')).toBe(7 * DAY);
    expect(planSteps('fast').map((s) => s.percentage)).toEqual([0, 25, 50, 100]);
    expect(total('fast')).toBe(3 * DAY);
    expect(planSteps('instant')).toEqual([
      { percentage: 0, holdMs: MINUTE },
      { percentage: 100, holdMs: 0 },
    ]);
    expect(planSteps('custom', { steps: [0, 20, 50, 100], stepDurationMs: 6 * HOUR }).map((s) => s.holdMs)).toEqual([6 * HOUR, 6 * HOUR, 6 * HOUR, 0]);
    expect(() => planSteps('custom', { steps: [0, 50, 20], stepDurationMs: HOUR })).toThrow(/steps must rise: 50% is followed by 20%/);
    expect(() => planSteps('custom', { steps: [0, 50], stepDurationMs: 1000 })).toThrow(/give --step-duration 1m or more/);
    expect(() => planSteps('custom')).toThrow(PlanError);
  });

  it('takes a healthy safe plan to 100% on schedule, each step audited with its evidence', async () => {
    const clock = new FakeClock(START);
    const r = rig(new MemoryFlagStore({ flags: FLAG, clock }), clock);
    await r.plans.deploy('checkout', 'safe', planSteps('safe'), by);
    const schedule = planSchedule((await planOf(r.store))!.plan!, clock.now());
    expect(schedule.at(-1)?.startsAtMs).toBe(START + 7 * DAY);
    await r.run(7 * 24 * 60 + 10);
    const state = await planOf(r.store);
    expect(state?.percentage).toBe(100);
    expect(state?.plan?.status).toBe('completed');
    const completedAt = Date.parse(state?.plan?.endedAt ?? '');
    expect(completedAt - START).toBeGreaterThanOrEqual(7 * DAY);
    expect(completedAt - START).toBeLessThanOrEqual(7 * DAY + 7 * MINUTE);
    const advances = (await r.store.audit({ flagKey: 'checkout' })).filter((e) => e.action === 'plan-advance');
    expect(advances.map((e) => e.after.state?.percentage)).toEqual([5, 10, 25, 50, 75, 100]);
    expect(advances[1]?.reason).toMatch(/^step 2 \(5%\) healthy after 1d9h36m: error rate 0\.\d+% \(limit 1\.00%\)/);
    expect(advances[1]?.evidence).toMatchObject({ verdict: 'healthy' });
    await r.shutdown();
  });

  it('rolls back a breach at 25% and ends the plan as rolled back', async () => {
    const clock = new FakeClock(START);
    const r = rig(new MemoryFlagStore({ flags: FLAG, clock }), clock);
    await r.plans.deploy('checkout', 'fast', planSteps('fast'), by);
    await r.run(24 * 60);
    expect((await planOf(r.store))?.percentage).toBe(25);
    r.treatmentErrorRate = 0.1;
    await r.run(15);
    const state = await planOf(r.store);
    expect(state?.rollback?.actor).toBe('rollout-guardian');
    expect(state?.plan).toMatchObject({ status: 'rolled-back', stepIndex: 1 });
    r.treatmentErrorRate = 0.002;
    await r.run(3 * 24 * 60);
    expect((await planOf(r.store))?.plan?.stepIndex).toBe(1);
    await expect(r.plans.pause('checkout', by)).rejects.toThrow(/has ended \(rolled-back\); start a new one with rollout-guardian deploy checkout/);
    await r.shutdown();
  });

  it('does not advance a step early when the deploying host’s clock runs 10 minutes behind the runner’s', async () => {
    const clock = new FakeClock(START);
    const r = rig(new MemoryFlagStore({ flags: FLAG, clock }), clock);
    const behind = new FakeClock(START - 10 * MINUTE);
    await new PlanWriter(r.store, behind).deploy('checkout', 'custom', planSteps('custom', { steps: [50, 100], stepDurationMs: 20 * MINUTE }), by);
    await r.run(15);
    expect((await planOf(r.store))?.plan?.stepIndex).toBe(0);
    await r.run(8);
    expect((await planOf(r.store))?.plan?.status).toBe('completed');
    await r.shutdown();
  });

  it('stops the clock of a step while paused', async () => {
    const clock = new FakeClock(START);
    const r = rig(new MemoryFlagStore({ flags: FLAG, clock }), clock);
    await r.plans.deploy('checkout', 'custom', planSteps('custom', { steps: [50, 100], stepDurationMs: HOUR }), by);
    await r.run(30);
    await r.plans.pause('checkout', by);
    await r.run(5 * 60);
    expect((await planOf(r.store))?.plan).toMatchObject({ status: 'paused', stepIndex: 0 });
    await r.plans.resume('checkout', by);
    await r.run(29);
    expect((await planOf(r.store))?.plan?.stepIndex).toBe(0);
    await r.run(3);
    const state = await planOf(r.store);
    expect(state?.plan?.status).toBe('completed');
    expect(Date.parse(state?.plan?.endedAt ?? '') - START).toBeGreaterThanOrEqual(6 * HOUR);
    await r.shutdown();
  });

  it('resumes at the right step and time after a restart, from the state in the store', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'flags.yaml');
      await writeFile(path, `flags:\n  checkout:\n    variants: { on: true, off: false }\n    defaultVariant: off\n    rollout: { variant: on }\n`);
      const clock = new FakeClock(START);
      const first = rig(new FileFlagStore({ path, clock, watch: false }), clock);
      await first.plans.deploy('checkout', 'custom', planSteps('custom', { steps: [0, 10, 50, 100], stepDurationMs: 2 * HOUR }), by);
      await first.run(3 * 60);
      expect((await planOf(first.store))?.plan?.stepIndex).toBe(1);
      await first.shutdown();

      // Killed: half an hour passes with no process at all, then a new one on the same files.
      clock.advance(30 * MINUTE);
      const second = rig(new FileFlagStore({ path, clock, watch: false }), clock);
      const before = await planOf(second.store);
      expect(before).toMatchObject({ percentage: 10, plan: { stepIndex: 1, status: 'running' } });
      await second.run(20);
      expect((await planOf(second.store))?.plan?.stepIndex).toBe(1);
      await second.run(20);
      const after = await planOf(second.store);
      expect(after).toMatchObject({ percentage: 50, plan: { stepIndex: 2 } });
      // Step 2 began at its scheduled time plus the monitoring the new process needed.
      const held = Date.parse(after?.plan?.stepStartedAt ?? '') - Date.parse(before?.plan?.stepStartedAt ?? '');
      expect(held).toBeGreaterThanOrEqual(2 * HOUR);
      expect(held).toBeLessThanOrEqual(2 * HOUR + 2 * MINUTE);
      await second.shutdown();
    });
  });

  it('in dry run judges and reports, and changes nothing in the store', async () => {
    const clock = new FakeClock(START);
    const store = new MemoryFlagStore({ flags: FLAG, clock });
    await new PlanWriter(store, clock).deploy('checkout', 'fast', planSteps('fast'), by);
    const before = await store.load();
    const audit = await store.audit();
    const r = rig(store, clock, { dryRun: true });
    await r.run(40);
    r.treatmentErrorRate = 0.2;
    await r.run(20);
    expect((await store.load()).revision).toBe(before.revision);
    expect(await store.audit()).toEqual(audit);
    expect(r.events.length).toBeGreaterThan(0);
    expect(r.events.every((e) => e.dryRun)).toBe(true);
    await r.shutdown();
  });

  it('refuses what makes no sense now, saying what to type instead', async () => {
    const clock = new FakeClock(START);
    const store = new MemoryFlagStore({ flags: { ...FLAG, plain: { variants: { a: 1, b: 2 }, defaultVariant: 'a' } }, clock });
    const plans = new PlanWriter(store, clock);
    await expect(plans.deploy('plain', 'safe', planSteps('safe'), by)).rejects.toThrow(/has no treatment to roll out; add one to its definition, e.g. rollout-guardian flags set plain rollout/);
    await expect(plans.pause('checkout', by)).rejects.toThrow(/has no plan; start one with rollout-guardian deploy checkout --strategy safe/);
    await plans.deploy('checkout', 'safe', planSteps('safe'), by);
    await expect(plans.deploy('checkout', 'fast', planSteps('fast'), by)).rejects.toThrow(/a plan is already running for "checkout" \(safe plan, step 1 of 7, 0%\); see rollout-guardian status checkout, or stop it first with rollout-guardian abort checkout/);
    await expect(plans.resume('checkout', by)).rejects.toThrow(/is running, not paused; pause it with rollout-guardian pause checkout/);
    await plans.abort('checkout', by);
    expect((await store.load()).state.get('checkout')).toMatchObject({ percentage: 0, plan: { status: 'aborted' } });
  });

  it('promotes a running plan straight to its last step', async () => {
    const clock = new FakeClock(START);
    const store = new MemoryFlagStore({ flags: FLAG, clock });
    const plans = new PlanWriter(store, clock);
    await plans.deploy('checkout', 'safe', planSteps('safe'), by);
    await plans.promote('checkout', by);
    expect((await store.load()).state.get('checkout')).toMatchObject({ percentage: 100, plan: { status: 'completed', stepIndex: 6 } });
  });
});
