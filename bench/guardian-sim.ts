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
import { lognormal, mulberry32, poisson } from '../test/helpers/seeded-random.js';

const SLOT_MS = 5_000;
const SLOT_COUNT = 72;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

interface CohortModel {
  readonly errorRate: number;
  readonly medianMs: number;
  readonly sigma: number;
}

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
  readonly expectation: string;
  /** The error rates an SPRT would have to tell apart (limit vs fault), when errors are the fault. */
  readonly sprt?: { readonly p0: number; readonly p1: number };
  readonly pass: (r: ScenarioResult) => boolean;
}

interface ScenarioResult {
  readonly runs: number;
  readonly rollbacks: number;
  readonly falseRollbacks: number;
  readonly detectionMs: readonly number[];
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

function scenarios(scale: number): Scenario[] {
  const runs = (n: number) => Math.max(1, Math.round(n * scale));
  const within = (ms: number, share: number) => (r: ScenarioResult) =>
    r.runs > 0 && r.falseRollbacks === 0 && r.detectionMs.filter((d) => d <= ms).length >= share * r.runs;
  const none = (r: ScenarioResult) => r.rollbacks === 0;
  const onset = 10 * MINUTE;
  return [
    {
      name: 'healthy 10 req/s, 0.5% errors',
      runs: runs(1000),
      durationMs: HOUR,
      healthy: { rps: steady(10), treatment: healthyModel, baseline: healthyModel },
      guard: {},
      expectation: 'no rollback in any hour',
      pass: none,
    },
    {
      name: 'healthy quiet 1 req/s, 0.5% errors',
      runs: runs(1000),
      durationMs: HOUR,
      healthy: { rps: steady(1), treatment: healthyModel, baseline: healthyModel },
      guard: {},
      expectation: 'no rollback in any hour',
      pass: none,
    },
    {
      name: 'healthy bursty traffic, 0.5% errors',
      runs: runs(300),
      durationMs: HOUR,
      healthy: { rps: bursty, treatment: healthyModel, baseline: healthyModel },
      guard: {},
      expectation: 'no rollback in any hour',
      pass: none,
    },
    {
      name: 'treatment 5% errors at 10 req/s',
      runs: runs(1000),
      durationMs: onset + 20 * MINUTE,
      healthy: { rps: steady(10), treatment: healthyModel, baseline: healthyModel },
      fault: { onsetMs: onset, phase: { rps: steady(10), treatment: { ...healthyModel, errorRate: 0.05 }, baseline: healthyModel } },
      guard: {},
      expectation: '>= 99% rolled back within 5m30s of onset',
      sprt: { p0: 0.01, p1: 0.05 },
      pass: within(330_000, 0.99),
    },
    {
      name: 'treatment P95 above 500 ms at 10 req/s',
      runs: runs(500),
      durationMs: onset + 20 * MINUTE,
      healthy: { rps: steady(10), treatment: healthyModel, baseline: healthyModel },
      // Median 300 ms, sigma 0.6: P95 ~ 800 ms, 20% of requests slower than 500 ms.
      fault: { onsetMs: onset, phase: { rps: steady(10), treatment: { ...healthyModel, medianMs: 300 }, baseline: healthyModel } },
      guard: {},
      expectation: '>= 99% rolled back within 5m30s of onset',
      sprt: { p0: 0.05, p1: 0.2 },
      pass: within(330_000, 0.99),
    },
    {
      name: 'quiet 1 req/s, treatment 20% errors',
      runs: runs(1000),
      durationMs: onset + 20 * MINUTE,
      healthy: { rps: steady(1), treatment: healthyModel, baseline: healthyModel },
      fault: { onsetMs: onset, phase: { rps: steady(1), treatment: { ...healthyModel, errorRate: 0.2 }, baseline: healthyModel } },
      guard: {},
      expectation: '>= 99% rolled back within 6m of onset',
      sprt: { p0: 0.01, p1: 0.2 },
      pass: within(360_000, 0.99),
    },
    {
      name: 'gross: 20% errors at 10 req/s, fast path on',
      runs: runs(1000),
      durationMs: onset + 10 * MINUTE,
      healthy: { rps: steady(10), treatment: healthyModel, baseline: healthyModel },
      fault: { onsetMs: onset, phase: { rps: steady(10), treatment: { ...healthyModel, errorRate: 0.2 }, baseline: healthyModel } },
      guard: {},
      expectation: '>= 99% rolled back within 30 s of onset',
      sprt: { p0: 0.01, p1: 0.2 },
      pass: within(30_000, 0.99),
    },
    {
      name: 'gross: 20% errors at 10 req/s, fast path off',
      runs: runs(300),
      durationMs: onset + 15 * MINUTE,
      healthy: { rps: steady(10), treatment: healthyModel, baseline: healthyModel },
      fault: { onsetMs: onset, phase: { rps: steady(10), treatment: { ...healthyModel, errorRate: 0.2 }, baseline: healthyModel } },
      guard: fastOff,
      expectation: 'rolled back after sustainFor (about 5m), not before',
      sprt: { p0: 0.01, p1: 0.2 },
      pass: (r) => r.rollbacks === r.runs && r.detectionMs.every((d) => d >= 4.5 * MINUTE && d <= 330_000),
    },
    {
      name: 'blip: 20% errors for 3 minutes at 10 req/s, fast path off',
      runs: runs(300),
      durationMs: onset + 20 * MINUTE,
      healthy: { rps: steady(10), treatment: healthyModel, baseline: healthyModel },
      fault: { onsetMs: onset, untilMs: onset + 3 * MINUTE, phase: { rps: steady(10), treatment: { ...healthyModel, errorRate: 0.2 }, baseline: healthyModel } },
      guard: fastOff,
      expectation: 'no rollback: shorter than sustainFor',
      pass: none,
    },
    {
      name: 'global incident, relative mode: both cohorts 8% errors',
      runs: runs(500),
      durationMs: onset + 30 * MINUTE,
      healthy: { rps: steady(10), treatment: healthyModel, baseline: healthyModel },
      fault: {
        onsetMs: onset,
        phase: { rps: steady(10), treatment: { ...healthyModel, errorRate: 0.08, medianMs: 400 }, baseline: { ...healthyModel, errorRate: 0.08, medianMs: 400 } },
      },
      guard: { relative: { maxErrorRateIncrease: 0.01, maxP95IncreasePct: 50 } },
      expectation: 'no rollback: the flag is not to blame',
      pass: none,
    },
    {
      name: 'relative mode: treatment alone at 5% errors',
      runs: runs(300),
      durationMs: onset + 20 * MINUTE,
      healthy: { rps: steady(10), treatment: healthyModel, baseline: healthyModel },
      fault: { onsetMs: onset, phase: { rps: steady(10), treatment: { ...healthyModel, errorRate: 0.05 }, baseline: healthyModel } },
      guard: { relative: { maxErrorRateIncrease: 0.01, maxP95IncreasePct: 50 } },
      // Comparing with a noisy baseline costs power: the baseline's own upper bound sets the limit.
      expectation: '>= 99% rolled back within 7m of onset',
      sprt: { p0: 0.015, p1: 0.05 },
      pass: within(420_000, 0.99),
    },
    {
      name: 'bursty traffic, treatment 5% errors',
      runs: runs(300),
      durationMs: onset + 20 * MINUTE,
      healthy: { rps: bursty, treatment: healthyModel, baseline: healthyModel },
      fault: { onsetMs: onset, phase: { rps: bursty, treatment: { ...healthyModel, errorRate: 0.05 }, baseline: healthyModel } },
      guard: {},
      expectation: '>= 99% rolled back within 6m of onset',
      sprt: { p0: 0.01, p1: 0.05 },
      pass: within(360_000, 0.99),
    },
  ];
}

function seedOf(name: string, run: number): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return (h ^ Math.imul(run + 1, 0x9e3779b1)) >>> 0;
}

interface RunOutcome {
  readonly rollback: RollbackRecord | undefined;
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
  guardian.addListener({ rollback: (r) => (rollback = r) });
  const fault = scenario.fault;
  for (let t = 0; t < scenario.durationMs && rollback === undefined; t += 1000) {
    const faulty = fault !== undefined && t >= fault.onsetMs && (fault.untilMs === undefined || t < fault.untilMs);
    const phase = faulty ? fault.phase : scenario.healthy;
    const lambda = phase.rps(t);
    for (const [variant, model] of [
      ['on', phase.treatment],
      ['off', phase.baseline],
    ] as const) {
      const n = poisson(random, lambda);
      for (let i = 0; i < n; i++) {
        const at = startMs + t + Math.floor(random() * 1000);
        registry.record('checkout', variant, lognormal(random, model.medianMs, model.sigma), random() < model.errorRate, at);
      }
    }
    if ((t + 1000) % SLOT_MS === 0) {
      clock.ms = startMs + t + 1000;
      await guardian.tick();
    }
  }
  await guardian.shutdown();
  if (rollback !== undefined) return { rollback: { ...rollback, landedAtMs: rollback.landedAtMs - startMs, decidedAtMs: rollback.decidedAtMs - startMs } };
  return { rollback };
}

function quantile(sorted: readonly number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

async function runScenario(scenario: Scenario): Promise<ScenarioResult> {
  const detectionMs: number[] = [];
  const samplesUsed: number[] = [];
  const decidingChecks: Record<string, number> = {};
  let rollbacks = 0;
  let falseRollbacks = 0;
  for (let run = 0; run < scenario.runs; run++) {
    const { rollback } = await runOnce(scenario, run);
    if (rollback === undefined) continue;
    rollbacks++;
    const onset = scenario.fault?.onsetMs;
    if (onset === undefined || rollback.landedAtMs < onset) {
      falseRollbacks++;
      continue;
    }
    detectionMs.push(rollback.landedAtMs - onset);
    const check = rollback.evidence.check as CheckResult | undefined;
    if (check) {
      samplesUsed.push(check.samples);
      decidingChecks[check.check] = (decidingChecks[check.check] ?? 0) + 1;
    }
  }
  detectionMs.sort((a, b) => a - b);
  samplesUsed.sort((a, b) => a - b);
  return { runs: scenario.runs, rollbacks, falseRollbacks, detectionMs, samplesUsed, decidingChecks };
}

function seconds(ms: number | undefined): string {
  return ms === undefined ? '-' : `${(ms / 1000).toFixed(0)}s`;
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const scaleArg = process.argv.find((a) => a.startsWith('--scale='));
  const scale = scaleArg ? Number(scaleArg.slice('--scale='.length)) : 1;
  const policy = resolveGuardPolicy({}, DEFAULT_GUARD_POLICY);
  const alpha = 1 - policy.confidence;
  const rows = [];
  for (const scenario of scenarios(scale)) {
    const started = performance.now();
    const r = await runScenario(scenario);
    const sprt = scenario.sprt ? Math.ceil(sprtExpectedSamples(scenario.sprt.p0, scenario.sprt.p1, alpha, 0.01)) : undefined;
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
          `      expected: ${scenario.expectation}\n`,
      );
    }
  }
  const summary = { slotMs: SLOT_MS, slotCount: SLOT_COUNT, policy: { ...policy }, sprtErrorRates: { alpha, beta: 0.01 }, scale, scenarios: rows, allPass: rows.every((r) => r.pass) };
  if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else process.stdout.write(`\n${summary.allPass ? 'all scenarios meet their expectation' : 'SOME SCENARIOS FAIL their expectation'}\n`);
  if (!summary.allPass) process.exitCode = 1;
}

await main();
