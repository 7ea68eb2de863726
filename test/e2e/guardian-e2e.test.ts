// Real HTTP requests through a real OpenTelemetry Node SDK into the guardian: the demo's
// service, with the guardian's clock injected and ticked by the test, so minutes of traffic
// take seconds and no test waits for time to pass.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemo, DEMO_FLAG, type Demo } from '../../examples/demo/demo-service.js';
import type { RollbackRecord } from '../../src/guardian/rollout-guardian.js';
import { PROMETHEUS_NAMES } from '../../src/telemetry/names.js';
import { FakeClock } from '../helpers/fake-clock.js';

const START = Date.parse('2026-11-27T12:00:00Z');
const PER_SECOND = 24;

describe('the guardian end to end', () => {
  const clock = new FakeClock(START);
  let demo: Demo;
  const rollbacks: RollbackRecord[] = [];
  let user = 0;

  beforeAll(async () => {
    demo = await startDemo({ clock, autoTick: false, workMs: () => 0 });
    demo.guardian.addListener({ rollback: (r) => rollbacks.push(r) });
  });
  afterAll(async () => {
    await demo.close();
  });

  /** One virtual second: a burst of real requests, then the clock moves and the guardian looks. */
  async function second(): Promise<number[]> {
    const statuses = await Promise.all(
      Array.from({ length: PER_SECOND }, async () => {
        const response = await fetch(`${demo.serviceUrl}/checkout?user=user-${user++}`);
        await response.text();
        return response.status;
      }),
    );
    clock.advance(1000);
    await demo.guardian.tick();
    return statuses;
  }

  it('rolls back a failing treatment in the store, the audit log and Prometheus, and the baseline then serves everyone', async () => {
    for (let s = 0; s < 20; s++) expect((await second()).every((status) => status === 200)).toBe(true);
    expect(rollbacks).toEqual([]);

    demo.setTreatmentFault({ errorRate: 0.5, extraLatencyMs: 0 });
    const onset = clock.now();
    let failures = 0;
    for (let s = 0; s < 40 && rollbacks.length === 0; s++) failures += (await second()).filter((status) => status === 500).length;
    expect(failures).toBeGreaterThan(0);
    expect(rollbacks).toHaveLength(1);
    const [rollback] = rollbacks;
    expect(rollback).toMatchObject({ flagKey: DEMO_FLAG, cause: 'breach' });
    // The demo's guard: sustained for 15 s, judged on 1 s slots.
    expect(rollback!.landedAtMs - onset).toBeGreaterThanOrEqual(15_000);
    expect(rollback!.landedAtMs - onset).toBeLessThanOrEqual(18_000);

    const state = JSON.parse(await readFile(demo.flagsPath.replace(/\.yaml$/, '.state.json'), 'utf8')) as { flags: Record<string, { rollback?: { actor: string }; plan?: { status: string } }> };
    expect(state.flags[DEMO_FLAG]?.rollback?.actor).toBe('rollout-guardian');
    // The rollback ended the demo's plan in the same write.
    expect(state.flags[DEMO_FLAG]?.plan?.status).toBe('rolled-back');
    const [entry] = await demo.store.audit({ flagKey: DEMO_FLAG, limit: 1 });
    expect(entry).toMatchObject({ action: 'rollback', actor: 'rollout-guardian', evidence: { cause: 'breach', check: { check: 'errorRate', state: 'confirmed' } } });
    expect((entry?.evidence?.treatment as { errorRate: number }).errorRate).toBeGreaterThan(0.3);

    const scrape = await (await fetch(demo.metricsUrl)).text();
    expect(scrape).toMatch(new RegExp(`^${PROMETHEUS_NAMES.rollbacks}\\{feature_flag_key="${DEMO_FLAG}",reason="breach",check="errorRate"[^}]*\\} 1$`, 'm'));
    expect(scrape).toMatch(new RegExp(`^${PROMETHEUS_NAMES.rolloutPercentage}\\{feature_flag_key="${DEMO_FLAG}"[^}]*\\} 0$`, 'm'));
    expect(scrape).toMatch(new RegExp(`^${PROMETHEUS_NAMES.evaluations}\\{feature_flag_key="${DEMO_FLAG}",variant="on",reason="SPLIT"[^}]*\\} [1-9]`, 'm'));

    // The provider follows the store: no one gets the failing treatment any more.
    const details = await demo.client.getBooleanDetails(DEMO_FLAG, true, { targetingKey: 'anyone' });
    expect(details).toMatchObject({ value: false, reason: 'DEFAULT', flagMetadata: { rolledBack: true } });
    expect((await second()).every((status) => status === 200)).toBe(true);
  });
});
