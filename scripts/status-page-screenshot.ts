// `npm run screenshot`: takes docs/status-page.png. A real `serve` on a fake clock plays an hour
// of seeded traffic over five rollouts (a plan advancing, a steady rollout, one breaching its
// P99, one the guardian rolled back, a paused plan), then headless Chromium photographs the page.
import { fileURLToPath } from 'node:url';
import type { FlagDefinitionInput } from '../src/core/flag-schema.js';
import { planSteps } from '../src/deploy/plan.js';
import { PlanWriter } from '../src/deploy/plan-writer.js';
import { STEADY, type SlotTraffic, StatusPageFixture, launchChromium, pageCaughtUp } from '../test/helpers/status-page-fixture.js';

const out = fileURLToPath(new URL('../docs/status-page.png', import.meta.url));
const rollout = (percentage: number, guard: Record<string, unknown> = {}): FlagDefinitionInput => ({
  variants: { on: true, off: false },
  defaultVariant: 'off',
  rollout: { variant: 'on', percentage },
  guard: { sustainFor: '2m', minSamples: 50, fastPath: false, ...guard },
});

const fixture = await StatusPageFixture.start({
  flags: {
    'new-checkout': rollout(5),
    'search-ranking': rollout(50),
    recommendations: rollout(20, { sustainFor: '30m' }),
    'payment-retry': rollout(10),
    'dark-mode': rollout(0),
  },
  slotMs: 5_000,
});
try {
  const plans = new PlanWriter(fixture.store, fixture.clock);
  await plans.deploy('new-checkout', 'custom', planSteps('custom', { steps: [5, 25, 50, 100], stepDurationMs: 30 * 60_000 }), {
    actor: 'alice',
    reason: 'release 2026.11.30',
  });
  await plans.deploy('dark-mode', 'custom', planSteps('custom', { steps: [10, 50, 100], stepDurationMs: 60 * 60_000 }), {
    actor: 'bob',
    reason: 'theme refresh',
  });
  const traffic = (flagKey: string, slot: number): SlotTraffic => {
    const minute = slot / 12;
    if (flagKey === 'payment-retry' && minute >= 35) return { ...STEADY, treatmentErrorRate: 0.06 };
    if (flagKey === 'recommendations' && minute >= 50) return { ...STEADY, treatmentMedianMs: 420 };
    if (flagKey === 'search-ranking') return { ...STEADY, requests: 30, treatmentMedianMs: 90 };
    return STEADY;
  };
  await fixture.play(20 * 12, traffic);
  await plans.pause('dark-mode', { actor: 'bob', reason: 'waiting for the design review' });
  await fixture.play(40 * 12, (flagKey, slot) => traffic(flagKey, slot + 20 * 12));

  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${fixture.server.url}/?poll=500`);
    await pageCaughtUp(page, fixture.clock.now());
    const rolledBack = page.locator('section.flag[data-flag="payment-retry"]');
    await rolledBack.locator('details.audit > summary').click();
    await rolledBack.locator('details.audit li.rollback details > summary').click();
    await page.screenshot({ path: out, fullPage: true });
    process.stdout.write(`wrote ${out}\n`);
  } finally {
    await browser.close();
  }
} finally {
  await fixture.close();
}
