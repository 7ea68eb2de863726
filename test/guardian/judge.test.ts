// The judge on evidence folded slot by slot: sequential tests that may be read every slot,
// breaches dated from their onset and held for sustainFor, healthy only with enough evidence,
// relative limits from the baseline with the absolute ones as ceiling and fallback.
import { describe, expect, it } from 'vitest';
import { FlagEvidence } from '../../src/guardian/flag-evidence.js';
import { judge, type Judgment } from '../../src/guardian/judge.js';
import { DEFAULT_GUARD_POLICY, resolveGuardPolicy, type GuardPolicy } from '../../src/guardian/guard-policy.js';
import { LatencyDistribution } from '../../src/guardian/latency-distribution.js';
import type { SlotStats } from '../../src/guardian/cohort-window.js';
import { bernoulliKl, confidenceSequence, logMixture, mixtureReaches, mixtureSteps, sprtExpectedSamples } from '../../src/guardian/statistics.js';
import { CheckEvidence, TEST_DESIGN } from '../../src/guardian/check-evidence.js';
import { lognormal, mulberry32 } from '../helpers/seeded-random.js';

const SLOT_MS = 5_000;
const START = Date.parse('2026-11-27T12:00:00Z');

interface Phase {
  /** Slots this phase lasts. */
  readonly slots: number;
  /** Requests per slot. */
  readonly requests: number;
  readonly errorRate: number;
  readonly medianMs: number;
}

const minutes = (m: number) => Math.round((m * 60_000) / SLOT_MS);
const healthy = (m: number, requests = 50): Phase => ({ slots: minutes(m), requests, errorRate: 0.005, medianMs: 80 });
const failing = (m: number, errorRate: number, requests = 50): Phase => ({ slots: minutes(m), requests, errorRate, medianMs: 80 });
const quiet = (m: number): Phase => ({ slots: minutes(m), requests: 0, errorRate: 0, medianMs: 80 });

/** Seeded slots from START, phase by phase; errors are spread evenly. */
function slotsOf(seed: number, ...phases: Phase[]): SlotStats[] {
  const random = mulberry32(seed);
  const out: SlotStats[] = [];
  let owed = 0;
  for (const phase of phases) {
    for (let i = 0; i < phase.slots; i++) {
      const sketch = new LatencyDistribution(0.02);
      for (let r = 0; r < phase.requests; r++) sketch.add(lognormal(random, phase.medianMs, 0.5));
      owed += phase.requests * phase.errorRate;
      const errors = Math.floor(owed);
      owed -= errors;
      out.push({ startMs: START + out.length * SLOT_MS, count: phase.requests, errors, sketch });
    }
  }
  return out;
}

const noSummary = { samples: 0, errorRate: undefined, p95Ms: undefined, p99Ms: undefined };

/** Folds every slot in and judges after each, as the guardian does; returns every judgment. */
function watch(treatment: SlotStats[], options: { policy?: GuardPolicy; baseline?: SlotStats[] } = {}): Judgment[] {
  const policy = options.policy ?? DEFAULT_GUARD_POLICY;
  const evidence = new FlagEvidence({ policy, startMs: START, epochKey: 'k', slotMs: SLOT_MS });
  const judgments: Judgment[] = [];
  treatment.forEach((slot, i) => {
    const baseline = options.baseline?.[i];
    const reference = () => {
      if (options.baseline === undefined) return undefined;
      const merged = new LatencyDistribution(0.02);
      for (const s of options.baseline.slice(Math.max(0, i - minutes(1)), i + 1)) merged.merge(s.sketch);
      return merged;
    };
    evidence.fold(slot.startMs, slot.startMs + SLOT_MS, slot, baseline, reference);
    judgments.push(judge({ evidence, treatment: noSummary, baseline: undefined }));
  });
  return judgments;
}

const last = (judgments: Judgment[]): Judgment => judgments.at(-1) as Judgment;
const firstRollback = (judgments: Judgment[]) => judgments.findIndex((j) => j.verdict === 'rollback');
const noFastPath = resolveGuardPolicy({ fastPath: false });

describe('judge', () => {
  it('holds on too little data, and says it is the treatment that is thin', () => {
    const j = last(watch(slotsOf(1, quiet(5), { slots: 1, requests: 10, errorRate: 0.1, medianMs: 80 })));
    expect(j.verdict).toBe('insufficient');
    expect(j.reason).toMatch(/too few treatment requests since .*: 10 \(50 needed to judge\)/);
  });

  it('calls a step healthy once it has enough requests to have caught twice the limit, not before', () => {
    const judgments = watch(slotsOf(2, healthy(20, 20)));
    const healthyAt = judgments.findIndex((j) => j.verdict === 'healthy');
    const errors = last(judgments).checks.find((c) => c.check === 'errorRate');
    expect(errors?.samplesNeeded).toBeGreaterThan(1000);
    expect(healthyAt).toBeGreaterThan(0);
    expect(healthyAt * 20).toBeGreaterThanOrEqual((errors?.samplesNeeded ?? 0) - 20);
    expect(judgments[healthyAt - 1]?.verdict).toBe('watching');
    expect(judgments[healthyAt - 1]?.reason).toMatch(/of the [\d,]+ treatment requests needed to rule out 2x/);
    expect(judgments.slice(healthyAt).every((j) => j.verdict === 'healthy')).toBe(true);
  });

  it('rolls back a breach held for sustainFor since its onset, and says exactly how long it held', () => {
    const judgments = watch(slotsOf(4, healthy(10), failing(8, 0.05)), { policy: noFastPath });
    const at = firstRollback(judgments);
    const j = judgments[at] as Judgment;
    const check = j.decidingCheck;
    expect(check).toMatchObject({ check: 'errorRate', state: 'confirmed', limit: 0.01 });
    // The onset is found within a slot or two of the true one; the rollback comes once it has held 300 s.
    expect(Math.abs((check?.breachSinceMs ?? 0) - (START + 10 * 60_000))).toBeLessThanOrEqual(2 * SLOT_MS);
    expect(check?.heldMs).toBe(j.throughMs - (check?.breachSinceMs ?? 0));
    expect(check?.heldMs).toBeGreaterThanOrEqual(300_000);
    expect(check?.heldMs).toBeLessThan(330_000);
    expect(j.reason).toContain(`breach held for ${Math.round((check?.heldMs ?? 0) / 1000)} s (sustainFor 300 s)`);
    expect(judgments.slice(0, at).some((x) => x.verdict === 'breaching' && /held \d+ s of the 300 s sustainFor/.test(x.reason))).toBe(true);
  });

  it('does not roll back a 4-minute blip that has passed, even with the fast path off', () => {
    const judgments = watch(slotsOf(6, healthy(10), failing(4, 0.05), healthy(30)), { policy: noFastPath });
    expect(firstRollback(judgments)).toBe(-1);
    expect(judgments.some((j) => j.verdict === 'breaching')).toBe(true);
  });

  it('does not count two bursts with a healthy gap as one sustained breach', () => {
    const judgments = watch(slotsOf(7, healthy(5), failing(1.5, 0.2), healthy(3), failing(1.5, 0.2), healthy(10)), { policy: noFastPath });
    expect(firstRollback(judgments)).toBe(-1);
  });

  it('acts at once on overwhelming evidence, and 100% errors on 10 requests is overwhelming', () => {
    const judgments = watch(slotsOf(8, healthy(5), { slots: 1, requests: 10, errorRate: 1, medianMs: 80 }));
    expect(last(judgments).verdict).toBe('rollback');
    expect(last(judgments).decidingCheck?.state).toBe('overwhelming');
    expect(last(judgments).reason).toMatch(/^overwhelming breach, acting before sustainFor: error rate 100\.00% over 10 requests/);
    expect(last(watch(slotsOf(8, healthy(5), { slots: 1, requests: 10, errorRate: 1, medianMs: 80 }), { policy: noFastPath })).verdict).toBe('breaching');
  });

  it('judges P95 and P99 as the share of requests slower than the limit', () => {
    const slow = { slots: minutes(8), requests: 50, errorRate: 0.005, medianMs: 400 };
    const judgments = watch(slotsOf(9, healthy(2), slow), { policy: noFastPath });
    const j = judgments[firstRollback(judgments)] as Judgment;
    expect(['p95', 'p99']).toContain(j.decidingCheck?.check);
    const p95 = j.checks.find((c) => c.check === 'p95');
    expect(p95).toMatchObject({ thresholdMs: 500, limit: 0.05, basis: 'absolute' });
    expect(p95?.breachObserved).toBeGreaterThan(0.2);
  });

  it('in relative mode without a ceiling blames nothing for a global incident that hurts both cohorts', () => {
    const policy = resolveGuardPolicy({ fastPath: false, relative: { maxErrorRateIncrease: 0.01, maxP95IncreasePct: 50, ceiling: false } });
    const incident = { slots: minutes(20), requests: 50, errorRate: 0.08, medianMs: 400 };
    const treatment = slotsOf(10, healthy(5), incident);
    const baseline = slotsOf(11, healthy(5), incident);
    expect(firstRollback(watch(treatment, { policy, baseline }))).toBe(-1);
    // The absolute limits, as a ceiling (the default) or alone, do roll it back.
    expect(firstRollback(watch(treatment, { policy: resolveGuardPolicy({ fastPath: false, relative: { maxErrorRateIncrease: 0.01 } }), baseline }))).toBeGreaterThan(0);
  });

  it('in relative mode rolls back a treatment worse than a baseline with no errors at all', () => {
    const policy = resolveGuardPolicy({ fastPath: false, relative: { maxErrorRateIncrease: 0.01, ceiling: false } });
    const judgments = watch(slotsOf(12, failing(15, 0.05)), { policy, baseline: slotsOf(13, failing(15, 0)) });
    const j = judgments[firstRollback(judgments)] as Judgment;
    expect(j.decidingCheck).toMatchObject({ check: 'errorRate', basis: 'relative' });
    expect(j.decidingCheck?.limit).toBeGreaterThan(0.01);
    expect(j.decidingCheck?.limit).toBeLessThan(0.04);
    expect(j.reason).toContain('relative to the baseline');
  });

  it('in relative mode falls back to the absolute limits when the baseline is too thin, as at 100%, and says so', () => {
    const policy = resolveGuardPolicy({ relative: { maxErrorRateIncrease: 0.01 } });
    const treatment = slotsOf(15, failing(8, 1, 10));
    const judgments = watch(treatment, { policy, baseline: slotsOf(14, quiet(8)) });
    const j = judgments[firstRollback(judgments)] as Judgment;
    expect(j.decidingCheck?.basis).toBe('absolute-fallback');
    expect(j.reason).toContain('absolute limit: the baseline is too thin to compare with');
    const early = watch(slotsOf(16, healthy(3)), { policy, baseline: slotsOf(14, quiet(3)) });
    expect(last(early).reason).toMatch(/the baseline has 0 requests \(50 needed to compare\), so the absolute limits apply/);
  });

  it('reports a breach suspected on a short span as breaching, naming how long and how strong', () => {
    const judgments = watch(slotsOf(17, healthy(3, 20), failing(0.5, 0.06, 20)), { policy: noFastPath });
    expect(last(judgments).verdict).toBe('breaching');
    expect(last(judgments).reason).toMatch(/^breach (suspected for \d+ s|confirmed, held \d+ s of the 300 s sustainFor): error rate/);
  });
});

describe('sequential statistics', () => {
  it('keeps the true rate inside its confidence sequence at every look, in at least 1 - alpha of runs', () => {
    const random = mulberry32(99);
    for (const p of [0.005, 0.01, 0.05]) {
      let escaped = 0;
      const runs = 200;
      for (let run = 0; run < runs; run++) {
        let k = 0;
        for (let n = 1; n <= 5000; n++) {
          if (random() < p) k++;
          if (n % 50 !== 0) continue;
          const cs = confidenceSequence(k, n, 0.05);
          if (p < cs.lower || p > cs.upper) {
            escaped++;
            break;
          }
        }
      }
      expect(escaped / runs).toBeLessThanOrEqual(0.05);
    }
  });

  it('brackets a proportion with bounds that tighten with more data', () => {
    const few = confidenceSequence(5, 100, 0.01);
    const many = confidenceSequence(500, 10_000, 0.01);
    expect(few.lower).toBeLessThan(0.05);
    expect(few.upper).toBeGreaterThan(0.05);
    expect(many.upper - many.lower).toBeLessThan(few.upper - few.lower);
    expect(confidenceSequence(0, 0, 0.01)).toEqual({ lower: 0, upper: 1 });
  });

  it('reads from running counts the same evidence as tests summed slot by slot, while the limit moves and tests restart and retire', () => {
    const random = mulberry32(7);
    const alpha = 0.01;
    const restartEveryMs = 5 * 60_000;
    const evidence = new CheckEvidence({ alpha, restartEveryMs, fineMs: restartEveryMs / 2, fastPathFactor: 5, startMs: START });
    // The straightforward way: every test keeps its own sums and adds each slot to them.
    const tests: { logs: number[]; fast: number[]; threshold: number; fastThreshold: number }[] = [];
    const begin = (a: number) => tests.push({ logs: TEST_DESIGN.confirm.map(() => 0), fast: TEST_DESIGN.fast.map(() => 0), threshold: Math.log(1 / a), fastThreshold: Math.log(1 / (a * TEST_DESIGN.fastShare)) });
    begin(alpha * TEST_DESIGN.epochShare);
    let lastRestartMs = START;
    let compared = 0;
    for (let slot = 0; slot < 4 * 720; slot++) {
      const startMs = START + slot * SLOT_MS;
      // An hour of a steady limit (absolute mode), then one that moves every slot (relative
      // mode) with some slots whose fast-path null reaches 1, and quiet slots. Errors at a
      // third of the limit with bursts at 3x for two hours, then a breach at 2x for two more,
      // so that restarted tests lead, and the one begun with the breach until it is retired.
      const p0 = slot < 720 ? 0.01 : slot < 1440 ? 0.005 + 0.01 * random() : random() < 0.1 ? 0.25 : 0.02 * random() + 0.001;
      const n = random() < 0.05 ? 0 : Math.floor(random() * 80);
      const multiple = slot >= 1440 ? 2 : slot % 500 < 100 ? 3 : 1 / 3;
      const k = Math.min(n, Math.round(n * p0 * multiple * 2 * random()));
      evidence.fold(startMs, startMs + SLOT_MS, n, k, p0);
      if (startMs - lastRestartMs >= restartEveryMs) {
        lastRestartMs = startMs;
        begin((alpha * (1 - TEST_DESIGN.epochShare) * restartEveryMs) / TEST_DESIGN.hourMs);
        if (tests.length > TEST_DESIGN.maxRestarts + 1) tests.splice(1, 1);
      }
      if (n > 0) {
        const steps = mixtureSteps(TEST_DESIGN.confirm, p0);
        const fast = 5 * p0 < 1 ? mixtureSteps(TEST_DESIGN.fast, 5 * p0) : undefined;
        for (const test of tests) {
          test.logs = test.logs.map((log, i) => log + k * (steps.hit[i] as number) + (n - k) * (steps.miss[i] as number));
          if (fast) test.fast = test.fast.map((log, i) => log + k * (fast.hit[i] as number) + (n - k) * (fast.miss[i] as number));
        }
      }
      const expected = Math.max(...tests.map((t) => logMixture(TEST_DESIGN.confirm, Float64Array.from(t.logs)) - t.threshold));
      const fastRejected = tests.some((t) => mixtureReaches(TEST_DESIGN.fast, Float64Array.from(t.fast), t.fastThreshold));
      const reading = evidence.read();
      expect(reading.logEvidence).toBeCloseTo(expected, 6);
      expect(reading.fastRejected).toBe(fastRejected);
      expect(evidence.rejects()).toBe(expected >= 0 || fastRejected);
      compared++;
    }
    expect(compared).toBe(2880);
  });

  it('gives the SPRT expected sample size and the divergence it stands on', () => {
    expect(Math.round(sprtExpectedSamples(0.01, 0.015, 0.01, 0.01))).toBe(4114);
    expect(Math.round(sprtExpectedSamples(0.01, 0.02, 0.01, 0.01))).toBe(1151);
    expect(bernoulliKl(0.015, 0.01)).toBeCloseTo(0.0010946, 6);
  });
});
