// `npm run bench:guardian`: a deterministic virtual-clock traffic simulator driving the real
// guardian (cohort windows, judge, RolloutGuardian, a memory store and its writer) through
// seeded scenarios, and reporting detection times, false rollbacks and the samples each
// detection used beside the SPRT bound for the same rates.
import { CohortRegistry } from '../src/guardian/cohort-registry.js';
import { RolloutGuardian, type RollbackRecord } from '../src/guardian/rollout-guardian.js';
import { DEFAULT_GUARD_POLICY, resolveGuardPolicy } from '../src/guardian/guard-policy.js';
import { sprtExpectedSamples } from '../src/guardian/statistics.js';
import type { CheckResult } from '../src/guardian/judge.js';
import type { GuardPolicyInput } from '../src/core/flag-schema.js';
import { MemoryFlagStore } from '../src/stores/memory-store.js';
import { StoreWriter } from '../src/stores/store-writer.js';
import type { Clock } from '../src/core/clock.js';
import { PlanRunner, type PlanEvent } from '../src/deploy/plan-runner.js';
import { PlanWriter } from '../src/deploy/plan-writer.js';
import { planSteps } from '../src/deploy/plan.js';
import { lognormal, mulberry32, poisson } from '../test/helpers/seeded-random.js';

const SLOT_MS = 5_000;
const SLOT_COUNT = 72;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

interface CohortModel {
  readonly errorRate: number;
  readonly medianMs: number;
  readonly sigma: number;
  /** This share of requests takes slowMs instead (a tail regression). */
  readonly slowShare?: number;
  readonly slowMs?: number;
}

/**
 * How requests arrive: `poisson` counts per second; `constant`, exactly the rate each second
 * (repeating counts, the shape that exposed a stale cache); `deterministic`, constant counts with
 * errors and slow requests at exact fractions of the traffic.
 */
type Traffic = 'poisson' | 'constant' | 'deterministic';

interface Phase {
  /** Requests per second reaching each cohort at time t (ms since the run began). */
  readonly rps: (tMs: number) => number;
  readonly treatment: CohortModel;
  readonly baseline: CohortModel;
}

interface Scenario {
  readonly name: string;
  readonly runs: number;
  readonly durationMs: number;
  readonly healthy: Phase;
  /** From onsetMs on, this phase replaces the healthy one; absent: a healthy scenario. */
  readonly fault?: { readonly onsetMs: number; readonly phase: Phase; readonly untilMs?: number };
  readonly guard: GuardPolicyInput;
  readonly traffic?: Traffic;
  readonly expectation: string;
  /** The error rates an SPRT would have to tell apart (limit vs fault), when errors are the fault. */
  readonly sprt?: { readonly p0: number; readonly p1: number; /** Steady traffic: detection is held to Wald's E[N] in time. */ readonly rps?: number };
  readonly pass: (r: ScenarioResult) => boolean;
}

interface ScenarioResult {
  readonly runs: number;
  readonly rollbacks: number;
  readonly falseRollbacks: number;
  readonly detectionMs: readonly number[];
  /** From onset to the first confident test, for the runs that were rolled back. */
  readonly confidentMs: readonly number[];
  /** From onset to the oracle SPRT's stop on the same requests. */
  readonly oracleMs: readonly number[];
  readonly samplesUsed: readonly number[];
  readonly decidingChecks: Readonly<Record<string, number>>;
}

class SimClock implements Clock {
  constructor(public ms: number) {}
  now(): number {
    return this.ms;
  }
}

const healthyModel: CohortModel = { errorRate: 0.005, medianMs: 80, sigma: 0.6 };
const steady = (rps: number) => () => rps;
// Bursty: 10 s at 30 req/s, then 50 s at 2 req/s, repeating (mean ~6.7 req/s).
const bursty = (t: number) => (t % MINUTE < 10_000 ? 30 : 2);

const fastOff: GuardPolicyInput = { fastPath: false };
const SUSTAIN_MS = 5 * MINUTE;

function sprtMs(p0: number, p1: number, rps: number): number {
  return (sprtExpectedSamples(p0, p1, 0.01, 0.01) / rps) * 1000;
}

function scenarios(scale: number): Scenario[] {
  const runs = (n: number) => Math.max(1, Math.round(n * scale));
  const within = (ms: number, share: number) => (r: ScenarioResult) =>
    r.runs > 0 && r.falseRollbacks === 0 && r.detectionMs.filter((d) => d <= ms).length >= share * r.runs;
  const none = (r: ScenarioResult) => r.rollbacks === 0;
  // Against the optimum: median within 1.5x and p95 within 2.5x of Wald's E[N], never before sustainFor.
  const nearOptimal = (waldMs: number) => (r: ScenarioResult) =>
    r.falseRollbacks === 0 &&
    r.rollbacks === r.runs &&
    (quantile(r.detectionMs, 0.5) ?? Infinity) <= 1.5 * waldMs &&
    (quantile(r.detectionMs, 0.95) ?? Infinity) <= 2.5 * waldMs &&
    (r.detectionMs[0] ?? 0) >= SUSTAIN_MS;
  const healthy = (rps: (t: number) => number): Phase => ({ rps, treatment: healthyModel, baseline: healthyModel });
  const failing = (rps: (t: number) => number, treatment: Partial<CohortModel>): Phase => ({ rps, treatment: { ...healthyModel, ...treatment }, baseline: healthyModel });
  const onset = 10 * MINUTE;
  const out: Scenario[] = [];
  for (const [label, rps] of [
    ['10 req/s', steady(10)],
    ['1 req/s', steady(1)],
    ['0.2 req/s', steady(0.2)],
    ['bursty ~6.7 req/s', bursty],
  ] as const) {
    out.push({
      name: `healthy ${label}, 0.5% errors, 4 h runs`,
      runs: runs(250),
      durationMs: 4 * HOUR,
      healthy: healthy(rps),
      guard: {},
      expectation: 'no rollback in 1,000 cohort-hours',
      pass: none,
    });
  }
  out.push(
    {
      name: 'exactly at the limit: 1% errors at 10 req/s, 1 h runs',
      runs: runs(300),
      durationMs: HOUR,
      healthy: failing(steady(10), { errorRate: 0.01 }),
      guard: {},
      expectation: 'rolled back in at most 1% of hours',
      pass: (r) => r.rollbacks <= 0.01 * r.runs,
    },
    {
      name: 'treatment 5% errors at 10 req/s from the start',
      runs: runs(500),
      durationMs: 20 * MINUTE,
      healthy: failing(steady(10), { errorRate: 0.05 }),
      fault: { onsetMs: 0, phase: failing(steady(10), { errorRate: 0.05 }) },
      guard: {},
      expectation: 'p95 detection <= sustainFor + 30 s',
      sprt: { p0: 0.01, p1: 0.05 },
      pass: (r) => r.rollbacks === r.runs && (quantile(r.detectionMs, 0.95) ?? Infinity) <= SUSTAIN_MS + 30_000,
    },
    {
      name: 'treatment 5% errors at 10 req/s, onset 10 min into the step',
      runs: runs(300),
      durationMs: onset + 20 * MINUTE,
      healthy: healthy(steady(10)),
      fault: { onsetMs: onset, phase: failing(steady(10), { errorRate: 0.05 }) },
      guard: {},
      expectation: 'p95 detection <= sustainFor + 30 s',
      sprt: { p0: 0.01, p1: 0.05 },
      pass: (r) => r.falseRollbacks === 0 && r.rollbacks === r.runs && (quantile(r.detectionMs, 0.95) ?? Infinity) <= SUSTAIN_MS + 30_000,
    },
    {
      name: 'moderate: 1.5% errors at 10 req/s from the start',
      runs: runs(300),
      durationMs: 2 * HOUR,
      healthy: failing(steady(10), { errorRate: 0.015 }),
      fault: { onsetMs: 0, phase: failing(steady(10), { errorRate: 0.015 }) },
      guard: {},
      expectation: `median <= 1.5x, p95 <= 2.5x Wald E[N] (${(sprtMs(0.01, 0.015, 10) / 1000).toFixed(0)} s), none before sustainFor`,
      sprt: { p0: 0.01, p1: 0.015, rps: 10 },
      pass: nearOptimal(sprtMs(0.01, 0.015, 10)),
    },
    {
      name: 'moderate: 2% errors at 1 req/s from the start',
      runs: runs(300),
      durationMs: 4 * HOUR,
      healthy: failing(steady(1), { errorRate: 0.02 }),
      fault: { onsetMs: 0, phase: failing(steady(1), { errorRate: 0.02 }) },
      guard: {},
      expectation: `median <= 1.5x, p95 <= 2.5x Wald E[N] (${(sprtMs(0.01, 0.02, 1) / 1000).toFixed(0)} s), none before sustainFor`,
      sprt: { p0: 0.01, p1: 0.02, rps: 1 },
      pass: nearOptimal(sprtMs(0.01, 0.02, 1)),
    },
    {
      name: 'moderate: 1.5% errors at 10 req/s, onset 1 h into the step',
      runs: runs(100),
      durationMs: 3 * HOUR,
      healthy: healthy(steady(10)),
      fault: { onsetMs: HOUR, phase: failing(steady(10), { errorRate: 0.015 }) },
      guard: {},
      expectation: 'every breach caught (restarted tests spend the hourly budget)',
      sprt: { p0: 0.01, p1: 0.015 },
      pass: (r) => r.falseRollbacks === 0 && r.rollbacks === r.runs,
    },
    {
      name: 'dead treatment: 100% errors at 0.05 req/s',
      runs: runs(300),
      durationMs: 30 * MINUTE,
      healthy: failing(steady(0.05), { errorRate: 1 }),
      fault: { onsetMs: 0, phase: failing(steady(0.05), { errorRate: 1 }) },
      guard: {},
      expectation: 'rolled back within 10 min',
      pass: within(10 * MINUTE, 1),
    },
  );
  out.push(
    {
      name: 'treatment P95 above 500 ms at 10 req/s',
      runs: runs(300),
      durationMs: onset + 20 * MINUTE,
      healthy: healthy(steady(10)),
      // Median 300 ms, sigma 0.6: P95 ~ 800 ms, 20% of requests slower than 500 ms.
      fault: { onsetMs: onset, phase: failing(steady(10), { medianMs: 300 }) },
      guard: {},
      expectation: '>= 99% rolled back within 5m30s of onset',
      pass: within(330_000, 0.99),
    },
    {
      name: 'quiet 1 req/s, treatment 20% errors',
      runs: runs(300),
      durationMs: onset + 20 * MINUTE,
      healthy: healthy(steady(1)),
      fault: { onsetMs: onset, phase: failing(steady(1), { errorRate: 0.2 }) },
      guard: {},
      expectation: '>= 99% rolled back within 6m of onset',
      sprt: { p0: 0.01, p1: 0.2 },
      pass: within(360_000, 0.99),
    },
  );
  for (const traffic of ['constant', 'poisson'] as const) {
    out.push({
      name: `P99 only: slowest 2% at 3 s, 10 req/s, ${traffic}`,
      runs: runs(300),
      durationMs: 30 * MINUTE,
      healthy: failing(steady(10), { errorRate: 0, slowShare: 0.02, slowMs: 3000 }),
      fault: { onsetMs: 0, phase: failing(steady(10), { errorRate: 0, slowShare: 0.02, slowMs: 3000 }) },
      guard: {},
      traffic,
      expectation: 'p95 detection <= 6 min',
      sprt: { p0: 0.01, p1: 0.02 },
      pass: (r) => r.rollbacks === r.runs && (quantile(r.detectionMs, 0.95) ?? Infinity) <= 6 * MINUTE,
    });
  }
  out.push(
    {
      name: 'late step at constant traffic: 20 ms -> 2 s at t = 400 s, 10 req/s',
      runs: runs(100),
      durationMs: 30 * MINUTE,
      healthy: healthy(steady(10)),
      fault: { onsetMs: 400_000, phase: failing(steady(10), { medianMs: 2000, sigma: 0.1 }) },
      guard: {},
      traffic: 'deterministic',
      expectation: 'p95 detection <= sustainFor + 30 s (a reused ring slot must not hide it)',
      pass: (r) => r.falseRollbacks === 0 && r.rollbacks === r.runs && (quantile(r.detectionMs, 0.95) ?? Infinity) <= SUSTAIN_MS + 30_000,
    },
    {
      name: 'blip: 5% errors for 4 minutes at 10 req/s, fast path on',
      runs: runs(300),
      durationMs: onset + 30 * MINUTE,
      healthy: healthy(steady(10)),
      fault: { onsetMs: onset, untilMs: onset + 4 * MINUTE, phase: failing(steady(10), { errorRate: 0.05 }) },
      guard: {},
      expectation: 'no rollback: shorter than sustainFor',
      pass: none,
    },
    {
      name: 'blip: 20% errors for 3 minutes at 10 req/s, fast path off',
      runs: runs(300),
      durationMs: onset + 20 * MINUTE,
      healthy: healthy(steady(10)),
      fault: { onsetMs: onset, untilMs: onset + 3 * MINUTE, phase: failing(steady(10), { errorRate: 0.2 }) },
      guard: fastOff,
      expectation: 'no rollback: shorter than sustainFor',
      pass: none,
    },
    {
      name: 'gross: 20% errors at 10 req/s, fast path on',
      runs: runs(500),
      durationMs: onset + 10 * MINUTE,
      healthy: healthy(steady(10)),
      fault: { onsetMs: onset, phase: failing(steady(10), { errorRate: 0.2 }) },
      guard: {},
      expectation: '>= 99% rolled back within 60 s of onset',
      sprt: { p0: 0.01, p1: 0.2 },
      pass: within(60_000, 0.99),
    },
    {
      name: 'global incident, relative mode, no ceiling: both cohorts 8% errors',
      runs: runs(300),
      durationMs: onset + 30 * MINUTE,
      healthy: healthy(steady(10)),
      fault: {
        onsetMs: onset,
        phase: { rps: steady(10), treatment: { ...healthyModel, errorRate: 0.08, medianMs: 400 }, baseline: { ...healthyModel, errorRate: 0.08, medianMs: 400 } },
      },
      guard: { relative: { maxErrorRateIncrease: 0.01, maxP95IncreasePct: 50, ceiling: false } },
      expectation: 'no rollback: the flag is not to blame',
      pass: none,
    },
    {
      name: 'relative mode: treatment alone at 5% errors',
      runs: runs(300),
      durationMs: onset + 20 * MINUTE,
      healthy: healthy(steady(10)),
      fault: { onsetMs: onset, phase: failing(steady(10), { errorRate: 0.05 }) },
      guard: { relative: { maxErrorRateIncrease: 0.01, maxP95IncreasePct: 50 } },
      expectation: '>= 99% rolled back within 7m of onset',
      sprt: { p0: 0.015, p1: 0.05 },
      pass: within(420_000, 0.99),
    },
    {
      name: 'bursty traffic, treatment 5% errors',
      runs: runs(300),
      durationMs: onset + 20 * MINUTE,
      healthy: healthy(bursty),
      fault: { onsetMs: onset, phase: failing(bursty, { errorRate: 0.05 }) },
      guard: {},
      expectation: '>= 99% rolled back within 6m of onset',
      sprt: { p0: 0.01, p1: 0.05 },
      pass: within(360_000, 0.99),
    },
  );
  return out;
}

function seedOf(name: string, run: number): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return (h ^ Math.imul(run + 1, 0x9e3779b1)) >>> 0;
}

interface RunOutcome {
  readonly rollback: RollbackRecord | undefined;
  /** When a sequential test first rejected the limit (ms since the run began), before sustainFor and holding. */
  readonly confidentAtMs: number | undefined;
  /** When Wald's SPRT, told the true rate, would have stopped on the same requests (ms since the run began). */
  readonly oracleAtMs: number | undefined;
}

async function runOnce(scenario: Scenario, run: number): Promise<RunOutcome> {
  const random = mulberry32(seedOf(scenario.name, run));
  const startMs = Date.parse('2026-11-27T00:00:00Z');
  const clock = new SimClock(startMs);
  const registry = new CohortRegistry({ slotMs: SLOT_MS, slotCount: SLOT_COUNT });
  const store = new MemoryFlagStore({
    clock,
    flags: { checkout: { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: 50 }, guard: scenario.guard } },
  });
  const guardian = new RolloutGuardian({ source: store, writer: new StoreWriter(store, clock), registry, clock });
  let rollback: RollbackRecord | undefined;
  let confidentAtMs: number | undefined;
  guardian.addListener({
    rollback: (r) => (rollback = r),
    decision: (status) => {
      if (confidentAtMs === undefined && status.judgment.checks.some((c) => c.evidence >= c.evidenceNeeded)) confidentAtMs = clock.ms - startMs;
    },
  });
  const fault = scenario.fault;
  const traffic = scenario.traffic ?? 'poisson';
  const owed = { on: { n: 0, errors: 0, slow: 0 }, off: { n: 0, errors: 0, slow: 0 } };
  // The oracle: Wald's SPRT of the scenario's limit against its true rate (alpha = beta = 0.01),
  // fed the treatment's errors from the onset, the yardstick the guardian is measured against.
  const oracle = scenario.sprt;
  const oracleHit = oracle ? Math.log(oracle.p1 / oracle.p0) : 0;
  const oracleMiss = oracle ? Math.log((1 - oracle.p1) / (1 - oracle.p0)) : 0;
  const oracleBound = Math.log(0.99 / 0.01);
  let oracleLlr = 0;
  let oracleAtMs: number | undefined;
  for (let t = 0; t < scenario.durationMs && rollback === undefined; t += 1000) {
    const faulty = fault !== undefined && t >= fault.onsetMs && (fault.untilMs === undefined || t < fault.untilMs);
    const phase = faulty ? fault.phase : scenario.healthy;
    const lambda = phase.rps(t);
    for (const [variant, model] of [
      ['on', phase.treatment],
      ['off', phase.baseline],
    ] as const) {
      const o = owed[variant];
      let n: number;
      if (traffic === 'poisson') n = poisson(random, lambda);
      else {
        o.n += lambda;
        n = Math.floor(o.n);
        o.n -= n;
      }
      for (let i = 0; i < n; i++) {
        // Constant traffic is evenly spaced; Poisson arrivals anywhere in the second.
        const at = startMs + t + (traffic === 'poisson' ? Math.floor(random() * 1000) : Math.floor((i * 1000) / n));
        let failed: boolean;
        let slow: boolean;
        if (traffic === 'deterministic') {
          o.errors += model.errorRate;
          o.slow += model.slowShare ?? 0;
          failed = o.errors >= 1;
          slow = o.slow >= 1;
          if (failed) o.errors -= 1;
          if (slow) o.slow -= 1;
        } else {
          failed = random() < model.errorRate;
          slow = model.slowShare !== undefined && random() < model.slowShare;
        }
        const durationMs = slow ? (model.slowMs ?? 3000) : lognormal(random, model.medianMs, model.sigma);
        registry.record('checkout', variant, durationMs, failed, at);
        if (oracle !== undefined && variant === 'on' && faulty && oracleAtMs === undefined) {
          const event = oracle.p0 === 0.01 && (model.slowShare ?? 0) > 0 ? slow : failed;
          oracleLlr += event ? oracleHit : oracleMiss;
          if (oracleLlr >= oracleBound) oracleAtMs = at - startMs;
        }
      }
    }
    if ((t + 1000) % SLOT_MS === 0) {
      clock.ms = startMs + t + 1000;
      await guardian.tick();
    }
  }
  await guardian.shutdown();
  if (rollback !== undefined) return { confidentAtMs, oracleAtMs, rollback: { ...rollback, landedAtMs: rollback.landedAtMs - startMs, decidedAtMs: rollback.decidedAtMs - startMs } };
  return { rollback, confidentAtMs, oracleAtMs };
}

/** Runs of Wald's SPRT alone that sprtAlone() draws: enough for its p95 to within about 1%. */
const SPRT_ALONE_RUNS = 20_000;

/**
 * Wald's SPRT on its own, told the true rate p1 and read after every request, stopping when the
 * log likelihood ratio of p1 against the limit p0 reaches ln((1 - beta) / alpha) (alpha = beta
 * = 0.01): its sample sizes as multiples of Wald's E[N]. The yardstick's own spread: Wald's
 * E[N] is an average (and an approximation that ignores the overshoot), and no test that
 * must also cover rates it is not told can expect to beat the SPRT that is told.
 */
function sprtAlone(p0: number, p1: number): { mean: number; p50: number; p95: number } {
  const random = mulberry32(seedOf(`sprt ${p0} ${p1}`, 0));
  const hit = Math.log(p1 / p0);
  const miss = Math.log((1 - p1) / (1 - p0));
  const bound = Math.log(0.99 / 0.01);
  const expected = sprtExpectedSamples(p0, p1, 0.01, 0.01);
  const samples: number[] = [];
  for (let run = 0; run < SPRT_ALONE_RUNS; run++) {
    let llr = 0;
    let n = 0;
    while (llr < bound) {
      n++;
      llr += random() < p1 ? hit : miss;
    }
    samples.push(n);
  }
  samples.sort((a, b) => a - b);
  const mean = samples.reduce((sum, n) => sum + n, 0) / samples.length;
  return { mean: mean / expected, p50: (quantile(samples, 0.5) as number) / expected, p95: (quantile(samples, 0.95) as number) / expected };
}

function quantile(sorted: readonly number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

async function runScenario(scenario: Scenario): Promise<ScenarioResult> {
  const confidentMs: number[] = [];
  const oracleMs: number[] = [];
  const detectionMs: number[] = [];
  const samplesUsed: number[] = [];
  const decidingChecks: Record<string, number> = {};
  let rollbacks = 0;
  let falseRollbacks = 0;
  for (let run = 0; run < scenario.runs; run++) {
    const { rollback, confidentAtMs, oracleAtMs } = await runOnce(scenario, run);
    if (process.env.SIM_DEBUG && rollback) process.stderr.write(`run ${run}: ${rollback.reason}\n`);
    if (oracleAtMs !== undefined) oracleMs.push(oracleAtMs - (scenario.fault?.onsetMs ?? 0));
    if (rollback === undefined) continue;
    rollbacks++;
    const onset = scenario.fault?.onsetMs;
    if (onset === undefined || rollback.landedAtMs < onset) {
      falseRollbacks++;
      continue;
    }
    detectionMs.push(rollback.landedAtMs - onset);
    if (confidentAtMs !== undefined) confidentMs.push(confidentAtMs - onset);
    const check = rollback.evidence.check as CheckResult | undefined;
    if (check) {
      samplesUsed.push(check.breachSamples ?? check.samples);
      decidingChecks[check.check] = (decidingChecks[check.check] ?? 0) + 1;
    }
  }
  detectionMs.sort((a, b) => a - b);
  confidentMs.sort((a, b) => a - b);
  oracleMs.sort((a, b) => a - b);
  samplesUsed.sort((a, b) => a - b);
  return { runs: scenario.runs, rollbacks, falseRollbacks, detectionMs, confidentMs, oracleMs, samplesUsed, decidingChecks };
}

function seconds(ms: number | undefined): string {
  return ms === undefined ? '-' : `${(ms / 1000).toFixed(0)}s`;
}

/**
 * A custom plan on a quiet service: steps 10, 25, 50, 100% each held an hour, 0.5 req/s per
 * cohort at 0.5% errors. Every step must advance within a minute of its hour.
 */
async function planOnTime(runs: number): Promise<{ runs: number; steps: number; onTime: number; lateMaxS: number; notes: string[] }> {
  let steps = 0;
  let onTime = 0;
  let lateMaxS = 0;
  const notes: string[] = [];
  for (let run = 0; run < runs; run++) {
    const random = mulberry32(seedOf('plan', run));
    const startMs = Date.parse('2026-11-27T00:00:00Z');
    const clock = new SimClock(startMs);
    const registry = new CohortRegistry({ slotMs: SLOT_MS, slotCount: SLOT_COUNT });
    const store = new MemoryFlagStore({ clock, flags: { checkout: { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on' } } } });
    const guardian = new RolloutGuardian({ source: store, writer: new StoreWriter(store, clock), registry, clock });
    const runner = new PlanRunner({ store, judgments: guardian, clock });
    const events: PlanEvent[] = [];
    runner.onEvent((e) => events.push(e));
    await new PlanWriter(store, clock).deploy('checkout', 'custom', planSteps('custom', { steps: [10, 25, 50, 100], stepDurationMs: HOUR }), { actor: 'sim', reason: 'plan on time' });
    for (let t = 0; t < 3 * HOUR + 10 * MINUTE; t += 1000) {
      for (const variant of ['on', 'off']) {
        for (let i = poisson(random, 0.5); i > 0; i--) registry.record('checkout', variant, lognormal(random, 80, 0.6), random() < 0.005, startMs + t + Math.floor(random() * 1000));
      }
      if ((t + 1000) % SLOT_MS === 0) {
        clock.ms = startMs + t + 1000;
        await guardian.tick();
        await runner.tick();
      }
    }
    await guardian.shutdown();
    await runner.shutdown();
    let stepStart = startMs;
    for (const e of events) {
      steps++;
      const lateS = (e.atMs - stepStart - HOUR) / 1000;
      lateMaxS = Math.max(lateMaxS, lateS);
      if (lateS <= 60) onTime++;
      stepStart = e.atMs;
    }
    if (events.length < 3) notes.push(`run ${run}: ${runner.notes().get('checkout') ?? 'no note'}`);
    steps += 3 - Math.min(3, events.length);
  }
  return { runs, steps, onTime, lateMaxS, notes };
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const scaleArg = process.argv.find((a) => a.startsWith('--scale='));
  const scale = scaleArg ? Number(scaleArg.slice('--scale='.length)) : 1;
  const policy = resolveGuardPolicy({}, DEFAULT_GUARD_POLICY);
  const alpha = 1 - policy.confidence;
  const rows = [];
  // --only=WORDS runs the scenarios whose name contains WORDS.
  const onlyArg = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
  for (const scenario of scenarios(scale)) {
    if (onlyArg !== undefined && !scenario.name.includes(onlyArg)) continue;
    const started = performance.now();
    const r = await runScenario(scenario);
    const sprt = scenario.sprt ? Math.ceil(sprtExpectedSamples(scenario.sprt.p0, scenario.sprt.p1, alpha, 0.01)) : undefined;
    // Only where detection is held to Wald's E[N]: there the SPRT's own spread is the yardstick's.
    const alone = scenario.sprt?.rps !== undefined ? sprtAlone(scenario.sprt.p0, scenario.sprt.p1) : undefined;
    const waldMs = scenario.sprt?.rps !== undefined ? sprtMs(scenario.sprt.p0, scenario.sprt.p1, scenario.sprt.rps) : undefined;
    const row = {
      scenario: scenario.name,
      runs: r.runs,
      rollbacks: r.rollbacks,
      falseRollbacks: r.falseRollbacks,
      falseRollbackRate: r.falseRollbacks / r.runs,
      detectionMedianS: quantile(r.detectionMs, 0.5) !== undefined ? (quantile(r.detectionMs, 0.5) as number) / 1000 : null,
      detectionP95S: quantile(r.detectionMs, 0.95) !== undefined ? (quantile(r.detectionMs, 0.95) as number) / 1000 : null,
      detectionMaxS: r.detectionMs.length > 0 ? (r.detectionMs.at(-1) as number) / 1000 : null,
      samplesUsedMedian: quantile(r.samplesUsed, 0.5) ?? null,
      sprtExpectedSamples: sprt ?? null,
      /** Wald's SPRT alone over SPRT_ALONE_RUNS runs: mean, median and p95 of its samples as multiples of Wald's E[N]. */
      sprtAlone: alone ?? null,
      decidingChecks: r.decidingChecks,
      expectation: scenario.expectation,
      pass: scenario.pass(r),
      wallMs: Math.round(performance.now() - started),
    };
    rows.push(row);
    if (!json) {
      process.stdout.write(
        `${row.pass ? 'PASS' : 'FAIL'}  ${scenario.name.padEnd(58)} runs ${String(r.runs).padStart(4)}  rollbacks ${String(r.rollbacks).padStart(4)}  false ${String(r.falseRollbacks).padStart(3)}  ` +
          `detect p50 ${seconds(quantile(r.detectionMs, 0.5)).padStart(5)} p95 ${seconds(quantile(r.detectionMs, 0.95)).padStart(5)} max ${seconds(r.detectionMs.at(-1)).padStart(5)}  ` +
          `samples p50 ${String(quantile(r.samplesUsed, 0.5) ?? '-').padStart(5)} vs SPRT ${String(sprt ?? '-').padStart(4)}  (${(row.wallMs / 1000).toFixed(1)}s)\n` +
          `      expected: ${scenario.expectation}; first confident p50 ${seconds(quantile(r.confidentMs, 0.5))} p95 ${seconds(quantile(r.confidentMs, 0.95))}; oracle SPRT on the same requests p50 ${seconds(quantile(r.oracleMs, 0.5))} p95 ${seconds(quantile(r.oracleMs, 0.95))}; deciding checks ${JSON.stringify(r.decidingChecks)}\n` +
          (alone === undefined || waldMs === undefined
            ? ''
            : `      Wald's SPRT alone, told the true rate (${SPRT_ALONE_RUNS.toLocaleString('en-US')} runs): mean ${alone.mean.toFixed(2)}x, p50 ${alone.p50.toFixed(2)}x, p95 ${alone.p95.toFixed(2)}x Wald's E[N]; the guardian: p50 ${((quantile(r.detectionMs, 0.5) ?? Number.NaN) / waldMs).toFixed(2)}x, p95 ${((quantile(r.detectionMs, 0.95) ?? Number.NaN) / waldMs).toFixed(2)}x\n`),
      );
    }
  }
  if (onlyArg === undefined || 'plan'.includes(onlyArg) || onlyArg.includes('plan')) {
    const started = performance.now();
    const plan = await planOnTime(Math.max(1, Math.round(100 * scale)));
    const row = {
      scenario: 'custom plan, 1 h steps (10, 25, 50, 100%), 0.5 req/s per cohort, 0.5% errors',
      runs: plan.runs,
      stepsOnTime: plan.onTime,
      steps: plan.steps,
      latestAdvanceS: plan.lateMaxS,
      expectation: 'every step advances within a minute of its hour',
      pass: plan.onTime === plan.steps,
      wallMs: Math.round(performance.now() - started),
    };
    rows.push(row);
    if (!json) {
      process.stdout.write(`${row.pass ? 'PASS' : 'FAIL'}  ${row.scenario}  runs ${row.runs}  steps on time ${row.stepsOnTime}/${row.steps}, latest ${row.latestAdvanceS.toFixed(0)} s after its hour  (${(row.wallMs / 1000).toFixed(1)}s)\n      expected: ${row.expectation}\n`);
      for (const note of plan.notes.slice(0, 5)) process.stdout.write(`      ${note}\n`);
    }
  }
  const summary = { slotMs: SLOT_MS, slotCount: SLOT_COUNT, policy: { ...policy }, sprtErrorRates: { alpha, beta: 0.01 }, scale, scenarios: rows, allPass: rows.every((r) => r.pass) };
  if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else process.stdout.write(`\n${summary.allPass ? 'all scenarios meet their expectation' : 'SOME SCENARIOS FAIL their expectation'}\n`);
  if (!summary.allPass) process.exitCode = 1;
}

await main();
