import { describe, expect, it } from 'vitest';
import { judge, type JudgeInput } from '../../src/guardian/judge.js';
import { DEFAULT_GUARD_POLICY, confidences, resolveGuardPolicy, type GuardPolicy } from '../../src/guardian/guard-policy.js';
import { QuantileSketch } from '../../src/guardian/quantile-sketch.js';
import type { SlotStats } from '../../src/guardian/cohort-window.js';
import { normalQuantile, sprtExpectedSamples, wilsonLower, wilsonUpper } from '../../src/guardian/statistics.js';
import { lognormal, mulberry32 } from '../helpers/seeded-random.js';

const SLOT_MS = 5_000;
const NOW = Date.parse('2026-11-27T12:00:00Z');

interface Phase {
  /** Slots this phase lasts. */
  readonly slots: number;
  /** Requests per slot. */
  readonly requests: number;
  readonly errorRate: number;
  readonly medianMs: number;
}

/** Slots ending at NOW, built phase by phase from seeded traffic; errors are spread evenly. */
function slotsOf(seed: number, ...phases: Phase[]): SlotStats[] {
  const random = mulberry32(seed);
  const total = phases.reduce((n, p) => n + p.slots, 0);
  const out: SlotStats[] = [];
  let index = 0;
  for (const phase of phases) {
    let owed = 0;
    for (let i = 0; i < phase.slots; i++, index++) {
      const sketch = new QuantileSketch();
      for (let r = 0; r < phase.requests; r++) sketch.add(lognormal(random, phase.medianMs, 0.5));
      owed += phase.requests * phase.errorRate;
      const errors = Math.floor(owed);
      owed -= errors;
      out.push({ startMs: NOW - (total - index) * SLOT_MS, count: phase.requests, errors, sketch });
    }
  }
  return out;
}

const minutes = (m: number) => Math.round((m * 60_000) / SLOT_MS);
const healthy = (m: number, requests = 50): Phase => ({ slots: minutes(m), requests, errorRate: 0.005, medianMs: 80 });
const failing = (m: number, errorRate: number, requests = 50): Phase => ({ slots: minutes(m), requests, errorRate, medianMs: 80 });

function input(treatment: SlotStats[], options: { policy?: GuardPolicy; baseline?: SlotStats[] } = {}): JudgeInput {
  const policy = options.policy ?? DEFAULT_GUARD_POLICY;
  return { nowMs: NOW, slotMs: SLOT_MS, policy, z: confidences(policy, SLOT_MS), treatment, baseline: options.baseline };
}

const noFastPath = resolveGuardPolicy({ fastPath: false });

describe('judge', () => {
  it('holds on too little data: one error in ten requests is not a rollback and not healthy either', () => {
    const slots = slotsOf(1, { slots: minutes(6) - 1, requests: 0, errorRate: 0, medianMs: 80 }, { slots: 1, requests: 10, errorRate: 0.1, medianMs: 80 });
    const j = judge(input(slots));
    expect(j.verdict).toBe('insufficient');
    expect(j.reason).toContain('too little traffic');
  });

  it('calls a cohort healthy only when every check is confidently within its limit', () => {
    expect(judge(input(slotsOf(2, healthy(6, 100)))).verdict).toBe('healthy');
    // 0.9% errors against a 1% limit: within it, but not confidently.
    expect(judge(input(slotsOf(3, failing(6, 0.009, 100)))).verdict).toBe('watching');
  });

  it('rolls back a breach that has held for sustainFor, dating it from when it began', () => {
    const j = judge(input(slotsOf(4, healthy(1), failing(5, 0.05)), { policy: noFastPath }));
    expect(j.verdict).toBe('rollback');
    expect(j.decidingCheck).toMatchObject({ check: 'errorRate', state: 'confirmed', limit: 0.01 });
    expect(j.decidingCheck?.breachSinceMs).toBe(NOW - 5 * 60_000);
    expect(j.decidingCheck?.samples).toBe(minutes(5) * 50);
    expect(j.reason).toMatch(/breach held for 300 s: error rate 5\.00% over 3000 requests, confidently above 1\.00%/);
  });

  it('does not roll back a breach younger than sustainFor, but reports it as breaching', () => {
    const j = judge(input(slotsOf(5, healthy(2), failing(4, 0.05)), { policy: noFastPath }));
    expect(j.verdict).toBe('breaching');
    expect(j.checks.find((c) => c.check === 'errorRate')?.breachSinceMs).toBe(NOW - 4 * 60_000);
  });

  it('does not roll back a blip shorter than sustainFor that has passed', () => {
    const j = judge(input(slotsOf(6, healthy(1), failing(3, 0.2), healthy(2)), { policy: noFastPath }));
    expect(j.verdict).not.toBe('rollback');
  });

  it('does not count two bursts with a healthy gap as one sustained breach', () => {
    const j = judge(input(slotsOf(7, failing(1.5, 0.2), healthy(2.5), failing(1.5, 0.2)), { policy: noFastPath }));
    expect(j.verdict).toBe('breaching');
  });

  it('acts at once on an overwhelming breach when the fast path is on', () => {
    const slots = slotsOf(8, healthy(5.5), failing(0.25, 0.3));
    expect(judge(input(slots)).verdict).toBe('rollback');
    expect(judge(input(slots)).decidingCheck?.state).toBe('overwhelming');
    expect(judge(input(slots, { policy: noFastPath })).verdict).toBe('breaching');
  });

  it('judges P95 and P99 as the share of requests slower than the limit', () => {
    const slow = { slots: minutes(5), requests: 50, errorRate: 0.005, medianMs: 400 };
    const j = judge(input(slotsOf(9, healthy(1), slow), { policy: noFastPath }));
    expect(j.verdict).toBe('rollback');
    expect(['p95', 'p99']).toContain(j.decidingCheck?.check);
    const p95 = j.checks.find((c) => c.check === 'p95');
    expect(p95).toMatchObject({ thresholdMs: 500, limit: 0.05 });
    expect(p95?.observed).toBeGreaterThan(0.2);
    expect(j.treatment.p95Ms).toBeGreaterThan(500);
  });

  it('in relative mode blames nothing for a global incident that hurts both cohorts', () => {
    const policy = resolveGuardPolicy({ fastPath: false, relative: { maxErrorRateIncrease: 0.01, maxP95IncreasePct: 50 } });
    const incident = { slots: minutes(5), requests: 50, errorRate: 0.08, medianMs: 400 };
    const treatment = slotsOf(10, healthy(1), incident);
    const baseline = slotsOf(11, healthy(1), incident);
    expect(judge(input(treatment, { policy, baseline })).verdict).not.toBe('rollback');
    expect(judge(input(treatment, { policy: noFastPath })).verdict).toBe('rollback');
  });

  it('in relative mode rolls back a treatment that is worse than its baseline', () => {
    const policy = resolveGuardPolicy({ fastPath: false, relative: { maxErrorRateIncrease: 0.01 } });
    const j = judge(input(slotsOf(12, healthy(1), failing(5, 0.06)), { policy, baseline: slotsOf(13, healthy(6)) }));
    expect(j.verdict).toBe('rollback');
    expect(j.reason).toContain('relative to the baseline');
    expect(j.baseline?.samples).toBe(minutes(5) * 50);
  });

  it('in relative mode holds when the baseline has too little traffic to compare with', () => {
    const policy = resolveGuardPolicy({ relative: { maxErrorRateIncrease: 0.01 } });
    const emptyBaseline = slotsOf(14, { slots: minutes(6), requests: 0, errorRate: 0, medianMs: 80 });
    expect(judge(input(slotsOf(15, failing(6, 0.2)), { policy, baseline: emptyBaseline })).verdict).toBe('insufficient');
  });
});

describe('statistics', () => {
  it('computes normal quantiles to many digits', () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963985, 6);
    expect(normalQuantile(0.99)).toBeCloseTo(2.326347874, 6);
    expect(normalQuantile(1e-6)).toBeCloseTo(-4.753424309, 5);
  });

  it('brackets a proportion with Wilson bounds that tighten with more data', () => {
    expect(wilsonLower(5, 100, 1.96)).toBeCloseTo(0.02154, 4);
    expect(wilsonUpper(5, 100, 1.96)).toBeCloseTo(0.11175, 4);
    expect(wilsonLower(50, 1000, 1.96)).toBeGreaterThan(wilsonLower(5, 100, 1.96));
    expect(wilsonLower(0, 0, 2)).toBe(0);
    expect(wilsonUpper(0, 0, 2)).toBe(1);
  });

  it('gives the SPRT expected sample size from Wald’s approximation', () => {
    // 1% vs 5% at alpha = beta = 0.01: (0.99 ln 99 - 0.01 ln 99) / (0.05 ln 5 + 0.95 ln(0.95/0.99)).
    expect(sprtExpectedSamples(0.01, 0.05, 0.01, 0.01)).toBeCloseTo(109.06, 1);
  });

  it('spreads the per-hour confidence over every look in an hour', () => {
    const z = confidences(DEFAULT_GUARD_POLICY, SLOT_MS);
    expect(z.zDetect).toBeCloseTo(2.326, 3);
    expect(z.zConfirm).toBeCloseTo(normalQuantile(1 - 0.01 / 720), 6);
  });
});
