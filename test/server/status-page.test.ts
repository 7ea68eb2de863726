// The status page of `serve`, looked at in a real headless Chromium: a real RolloutServer on a
// fake clock and a memory store, fed seeded traffic slot by slot, its guardian and plans ticked
// by the test. The page polls on its own; the test waits for it to show what the server said at
// the fake time it cares about, never for an amount of wall-clock time.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FlagDefinitionInput } from '../../src/core/flag-schema.js';
import { planSteps } from '../../src/deploy/plan.js';
import { PlanWriter } from '../../src/deploy/plan-writer.js';
import { BearerAuth } from '../../src/server/bearer-auth.js';
import { CohortRegistry } from '../../src/guardian/cohort-registry.js';
import { DEFAULT_GUARD_POLICY } from '../../src/guardian/guard-policy.js';
import { type HistoryView, RolloutHistory } from '../../src/server/rollout-history.js';
import { STATUS_PAGE_CSP } from '../../src/server/status-page.js';
import { CLI_MAIN, requireBuiltCli } from '../helpers/cli-binary.js';
import { STEADY, StatusPageFixture, launchChromium, pageCaughtUp, textBecomes } from '../helpers/status-page-fixture.js';

const GUARD = { sustainFor: '30s', minSamples: 30, fastPath: false };
const flag = (percentage: number): FlagDefinitionInput => ({
  variants: { on: true, off: false },
  defaultVariant: 'off',
  rollout: { variant: 'on', percentage },
  guard: GUARD,
});
const READ_TOKEN = 'read-only-token-0123456789abcdef';
const OPERATE_TOKEN = 'operate-token-0123456789abcdefgh';
const auth = () =>
  new BearerAuth([
    { token: READ_TOKEN, roles: ['read'], name: 'reader' },
    { token: OPERATE_TOKEN, roles: ['read', 'operate'], name: 'alice' },
  ]);
const by = { actor: 'sre', reason: 'release 42' };

async function deployPlan(fixture: StatusPageFixture, flagKey: string): Promise<void> {
  await new PlanWriter(fixture.store, fixture.clock).deploy(
    flagKey,
    'custom',
    planSteps('custom', { steps: [10, 50, 100], stepDurationMs: 3_600_000 }),
    by,
  );
}

const card = (page: Page, flagKey: string) =>
  page.locator('section.flag').filter({ has: page.getByRole('heading', { name: flagKey, exact: true }) });

describe('the status page', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser.close();
  });

  it('shows every rollout with its plan, verdict, numbers and charts, and a rollback within two slots of its decision', async () => {
    const fixture = await StatusPageFixture.start({ flags: { checkout: flag(10), search: flag(30) } });
    const page = await browser.newPage();
    try {
      await deployPlan(fixture, 'checkout');
      await fixture.play(130);
      await page.goto(`${fixture.server.url}/?poll=100`);
      await pageCaughtUp(page, fixture.clock.now());
      const checkout = card(page, 'checkout');
      expect(await checkout.locator('.plan').textContent()).toContain('custom plan running: step 1 of 3 (10%); next 50% at');
      expect(await checkout.locator('.badge.pct').textContent()).toBe('10% on');
      expect(await checkout.locator('.badge.v-healthy').textContent()).toBe('healthy');
      expect(await checkout.locator('.reason').textContent()).toMatch(/^guardian: no breach in [\d,]+ treatment requests/);
      expect(await checkout.locator('tr', { hasText: 'treatment (on)' }).locator('td').nth(1).textContent()).toBe('600');
      expect(await card(page, 'search').locator('.plan').textContent()).toBe('no plan');
      // Two minutes of traffic: two points on each chart, for both cohorts.
      for (const path of await checkout.locator('svg.chart path').all())
        expect(await path.getAttribute('d')).toMatch(/^M[\d.]+ [\d.]+L[\d.]+ [\d.]+$/);
      // Each chart carries the guard's limit: error rate 1% (the default), P95 500 ms, P99 1000 ms.
      expect(await checkout.locator('svg.chart .max').allTextContents()).toEqual([
        expect.stringMatching(/^max \d.*; limit 1\.00%$/),
        expect.stringMatching(/^max \d+ ms; limit 500 ms$/),
        expect.stringMatching(/^max \d+ ms; limit 1000 ms$/),
      ]);
      expect(await checkout.locator('svg.chart line.limit').first().getAttribute('visibility')).toBe('visible');
      expect(await card(page, 'search').locator('button[data-action="pause"]').isDisabled()).toBe(true);

      let decidedAtMs: number | undefined;
      fixture.server.guardian.addListener({ rollback: (r) => (decidedAtMs ??= r.decidedAtMs) });
      const failing = (flagKey: string) => (flagKey === 'checkout' ? { ...STEADY, treatmentErrorRate: 0.3 } : STEADY);
      let shownAtMs: number | undefined;
      for (let slot = 0; slot < 120 && shownAtMs === undefined; slot++) {
        await fixture.play(1, failing);
        await pageCaughtUp(page, fixture.clock.now());
        if ((await checkout.locator('.badge.v-rolled-back').count()) > 0) shownAtMs = fixture.clock.now();
      }
      expect(decidedAtMs).toBeDefined();
      expect(shownAtMs).toBeDefined();
      expect((shownAtMs as number) - (decidedAtMs as number)).toBeLessThanOrEqual(2 * fixture.slotMs);
      expect(await checkout.locator('.badge.pct').textContent()).toBe('0% on');
      expect(await checkout.locator('.plan').textContent()).toContain('custom plan rolled-back');
      // The rollback in the audit timeline, with the guardian's evidence.
      await checkout.locator('details.audit > summary').click();
      const entry = checkout.locator('details.audit li.rollback');
      await entry.waitFor();
      expect(await entry.count()).toBe(1);
      expect(await entry.locator('div').first().textContent()).toMatch(
        /^rollback by rollout-guardian at 2026-11-30T09:0\d:\d\d\.000Z: .*error rate/,
      );
      expect(await entry.locator('.muted').textContent()).toContain('plan running → rolled-back; rolled back');
      await entry.locator('details > summary').click();
      const evidence = JSON.parse((await entry.locator('pre').textContent()) as string) as {
        check: { check: string };
        treatment: { variant: string };
      };
      expect(evidence.check.check).toBe('errorRate');
      expect(evidence.treatment.variant).toBe('on');
      expect(await card(page, 'search').locator('.badge.v-healthy').count()).toBe(1);
    } finally {
      await page.close();
      await fixture.close();
    }
  });

  it('asks for a token and a reason: a wrong token is refused with the server message, the right one lands in the audit', async () => {
    const fixture = await StatusPageFixture.start({ flags: { checkout: flag(10) }, auth: auth() });
    const page = await browser.newPage();
    try {
      await deployPlan(fixture, 'checkout');
      await fixture.play(5);
      await page.goto(`${fixture.server.url}/?poll=100`);
      await textBecomes(page.locator('#problem'), 'send authorization: Bearer TOKEN: enter a token with the read role above');
      await page.locator('#token').fill(READ_TOKEN);
      await page.locator('#token-form button').click();
      await pageCaughtUp(page, fixture.clock.now());
      expect(await page.locator('#problem').isHidden()).toBe(true);

      const checkout = card(page, 'checkout');
      const dialog = page.locator('#action-dialog');
      const message = page.locator('#action-message');
      await checkout.locator('button[data-action="pause"]').click();
      expect(await page.locator('#action-title').textContent()).toBe('pause checkout');
      expect(await page.locator('#action-token').inputValue()).toBe(READ_TOKEN);
      await page.locator('#action-token').fill('not-a-token-anyone-was-given');
      await page.locator('#action-reason').fill('error budget is burning');
      await page.locator('#action-confirm').click();
      await textBecomes(message, 'the bearer token is not known');
      await page.locator('#action-token').fill(READ_TOKEN);
      await page.locator('#action-confirm').click();
      await textBecomes(message, 'the token "reader" lacks the operate role (an ingest or read token cannot act); use a token listed with operate');
      await page.locator('#action-token').fill(OPERATE_TOKEN);
      await page.locator('#action-reason').fill('');
      await page.locator('#action-confirm').click();
      expect(await message.textContent()).toBe('say why, for the audit log');
      await page.locator('#action-reason').fill('error budget is burning');
      await page.locator('#action-confirm').click();
      await dialog.waitFor({ state: 'hidden' });
      expect((await fixture.store.audit({ flagKey: 'checkout' })).map((e) => [e.action, e.actor, e.reason])).toEqual([
        ['deploy', 'sre', 'release 42'],
        ['pause', 'alice', 'error budget is burning'],
      ]);
      await textBecomes(checkout.locator('details.audit > summary'), 'Audit timeline (2)');
      await checkout.locator('details.audit > summary').click();
      expect(await checkout.locator('details.audit li').first().locator('div').first().textContent()).toBe(
        'pause by alice at 2026-11-30T09:00:05.000Z: error budget is burning',
      );
      expect(await checkout.locator('header .badge').allTextContents()).toContain('paused');
      expect(await checkout.locator('button[data-action="resume"]').isEnabled()).toBe(true);

      // A refusal the server explains: pausing a paused plan is a conflict, said in the dialog.
      const pauseAgain = await fetch(`${fixture.server.url}/api/v1/flags/checkout/pause`, {
        method: 'POST',
        headers: { authorization: `Bearer ${OPERATE_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'again' }),
      });
      expect(pauseAgain.status).toBe(409);
      expect(await pauseAgain.json()).toEqual({
        error: {
          code: 'conflict',
          message: 'the plan for "checkout" is paused, not running; resume it with rollout-guardian resume checkout',
        },
      });
    } finally {
      await page.close();
      await fixture.close();
    }
  });

  it("offers reset state on a card the guardian rolled back: the operate token's reset lands in the audit as its name, and the flag serves again", async () => {
    const fixture = await StatusPageFixture.start({ flags: { checkout: flag(10), search: flag(30) }, auth: auth() });
    const page = await browser.newPage();
    try {
      await fixture.play(5);
      await page.goto(`${fixture.server.url}/?poll=100`);
      await page.locator('#token').fill(READ_TOKEN);
      await page.locator('#token-form button').click();
      await pageCaughtUp(page, fixture.clock.now());
      const checkout = card(page, 'checkout');
      const reset = checkout.locator('button[data-action="reset-state"]');
      expect(await reset.isHidden()).toBe(true);

      const failing = (flagKey: string) => (flagKey === 'checkout' ? { ...STEADY, treatmentErrorRate: 0.3 } : STEADY);
      const rolledBack = async () => (await fixture.store.load()).state.get('checkout')?.rollback !== undefined;
      for (let slot = 0; slot < 120 && !(await rolledBack()); slot++) await fixture.play(1, failing);
      expect(await rolledBack()).toBe(true);
      await pageCaughtUp(page, fixture.clock.now());
      await textBecomes(checkout.locator('header .badge').nth(1), 'rolled back');
      expect(await checkout.locator('.badge.pct').textContent()).toBe('0% on');
      expect(await reset.isVisible()).toBe(true);
      expect(await reset.textContent()).toBe('reset state');
      expect(await card(page, 'search').locator('button[data-action="reset-state"]').isHidden()).toBe(true);

      await reset.click();
      expect(await page.locator('#action-title').textContent()).toBe('reset-state checkout');
      await page.locator('#action-token').fill(OPERATE_TOKEN);
      await page.locator('#action-reason').fill('the bad query is reverted');
      await page.locator('#action-confirm').click();
      await page.locator('#action-dialog').waitFor({ state: 'hidden' });
      const audit = await fixture.store.audit({ flagKey: 'checkout' });
      expect(audit.map((e) => [e.action, e.actor, e.reason]).at(-1)).toEqual(['reset-state', 'alice', 'the bad query is reverted']);
      expect(audit.at(-1)?.after.state).toBeNull();

      // The file's 10% serves again: the card says so on the page's next poll, and offers no reset.
      await textBecomes(checkout.locator('.badge.pct'), '10% on');
      expect(await checkout.locator('.badge.v-rolled-back').count()).toBe(0);
      expect(await reset.isHidden()).toBe(true);
      await textBecomes(checkout.locator('details.audit > summary'), `Audit timeline (${audit.length})`);
      await checkout.locator('details.audit > summary').click();
      expect(await checkout.locator('details.audit li').first().locator('div').first().textContent()).toMatch(
        /^reset-state by alice at 2026-11-30T09:0\d:\d\d\.000Z: the bad query is reverted$/,
      );
    } finally {
      await page.close();
      await fixture.close();
    }
  });

  it('shows hostile flag keys, reasons and actors as text: nothing in them becomes markup', async () => {
    const hostile = '<img src=x onerror="document.title=\'owned\'">';
    const fixture = await StatusPageFixture.start({ flags: { [hostile]: flag(20), checkout: flag(20) } });
    const page = await browser.newPage();
    try {
      await fixture.play(3);
      const reason = '</q><script>document.title="owned"</script><img src=y onerror="document.title=\'owned\'">';
      const rolled = await fetch(`${fixture.server.url}/api/v1/flags/${encodeURIComponent(hostile)}/rollback`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ reason }),
      });
      expect(rolled.status).toBe(200);
      await page.goto(`${fixture.server.url}/?poll=100`);
      await pageCaughtUp(page, fixture.clock.now());
      const shown = card(page, hostile);
      expect(await shown.count()).toBe(1);
      await shown.locator('details.audit > summary').click();
      expect(await shown.locator('details.audit q').textContent()).toBe(reason);
      expect(await page.locator('img').count()).toBe(0);
      expect(await page.locator('script').count()).toBe(1);
      expect(await page.title()).toBe('rollout-guardian');
    } finally {
      await page.close();
      await fixture.close();
    }
  });

  it('is under 200 KB, served under a strict Content-Security-Policy, and needs a token only for its data', async () => {
    const fixture = await StatusPageFixture.start({ flags: { checkout: flag(10) }, auth: auth() });
    try {
      let bytes = 0;
      for (const [path, type] of [
        ['/', 'text/html; charset=utf-8'],
        ['/status.js', 'text/javascript; charset=utf-8'],
        ['/status.css', 'text/css; charset=utf-8'],
      ] as const) {
        const response = await fetch(`${fixture.server.url}${path}`);
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toBe(type);
        expect(response.headers.get('content-security-policy')).toBe(STATUS_PAGE_CSP);
        const body = Buffer.from(await response.arrayBuffer());
        bytes += body.byteLength;
        if (path === '/') {
          const html = body.toString('utf8');
          // No inline script or style: the policy would refuse them, and nothing needs them.
          expect(html.match(/<script[^>]*>/g)).toEqual(['<script src="/status.js" defer>']);
          expect(html).not.toMatch(/\sstyle=|<style|\son[a-z]+=/);
        }
      }
      expect(bytes).toBeLessThan(200 * 1024);
      expect(STATUS_PAGE_CSP).not.toMatch(/unsafe/);
      expect(STATUS_PAGE_CSP).toContain("script-src 'self'");
      expect((await fetch(`${fixture.server.url}/api/v1/history`)).status).toBe(401);
      expect((await fetch(`${fixture.server.url}/api/status`)).status).toBe(401);
      expect(
        (await fetch(`${fixture.server.url}/api/v1/history?since=soon`, { headers: { authorization: `Bearer ${READ_TOKEN}` } })).status,
      ).toBe(400);
    } finally {
      await fixture.close();
    }
  });

  it('is served by the built binary: the build copies the page to dist', async () => {
    requireBuiltCli();
    const { ROLLOUT_GUARDIAN_FLAGS: _flags, ROLLOUT_GUARDIAN_TOKEN: _token, ...env } = process.env;
    const child = spawn(
      process.execPath,
      [
        CLI_MAIN,
        'serve',
        '--port',
        '0',
        '--grpc-port',
        '0',
        '--store',
        fileURLToPath(new URL('../../examples/flags.yaml', import.meta.url)),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env },
    );
    try {
      let out = '';
      child.stdout.setEncoding('utf8');
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (chunk: string) => {
          out += chunk;
          const m = /^status page: (http:\/\/[\d.]+:\d+)\/$/m.exec(out);
          if (m) resolve(m[1] as string);
        });
        child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${out}`)));
      });
      for (const file of ['index.html', 'status.js', 'status.css']) {
        const response = await fetch(`${url}/${file === 'index.html' ? '' : file}`);
        expect(response.status).toBe(200);
        expect(await response.text()).toBe(await readFile(new URL(`../../src/server/status-page/${file}`, import.meta.url), 'utf8'));
      }
    } finally {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
  });

  it("keeps an hour of per-minute points for each guarded flag, and forgets a flag's history with the flag", async () => {
    const fixture = await StatusPageFixture.start({ flags: { checkout: flag(10), search: flag(30) }, slotMs: 5_000 });
    try {
      const read = async (query = '') => (await (await fetch(`${fixture.server.url}/api/v1/history${query}`)).json()) as HistoryView;
      // 70 minutes of 20 requests a slot per cohort: 12 slots, 240 requests, in every whole minute.
      await fixture.play(70 * 12);
      const view = await read();
      expect(view.pointMs).toBe(60_000);
      expect(view.flags.map((f) => f.flag)).toEqual(['checkout', 'search']);
      const checkout = view.flags[0]!;
      expect(checkout.treatment.requests).toHaveLength(60);
      expect(checkout.limits).toEqual({ errorRate: 0.01, p95Ms: 500, p99Ms: 1000 });
      expect(new Set(checkout.treatment.requests)).toEqual(new Set([240]));
      expect(new Set(checkout.baseline.requests)).toEqual(new Set([240]));
      // Lognormal latencies with an 80 ms median and sigma 0.4: a P95 near 155 ms, a P99 above it.
      expect(checkout.treatment.p95Ms.every((v) => v !== null && v > 110 && v < 210)).toBe(true);
      expect(checkout.treatment.p99Ms.every((v, i) => v !== null && v >= (checkout.treatment.p95Ms[i] as number))).toBe(true);
      // The watermark trails the clock by one slot: the newest whole minute ended a minute before now.
      expect(checkout.fromMs + 60 * 60_000).toBe(Math.floor((fixture.clock.now() - 5_001) / 60_000) * 60_000);
      const since = checkout.fromMs + 59 * 60_000;
      expect((await read(`?flag=search&since=${since}`)).flags.map((f) => [f.flag, f.fromMs, f.treatment.requests])).toEqual([
        ['search', since, [240]],
      ]);

      await fixture.store.write({
        actor: 'sre',
        reason: 'done with it',
        action: 'delete',
        changes: [{ flagKey: 'search', definitionEdits: [{ path: [], value: undefined }], state: null }],
      });
      await fixture.server.guardian.tick();
      expect((await read()).flags.map((f) => f.flag)).toEqual(['checkout']);
      // A rolled-back flag is judged no more; its last hour stays on the charts, then goes.
      await fixture.server.plans.tick();
      await fetch(`${fixture.server.url}/api/v1/flags/checkout/rollback`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"reason": "bad"}',
      });
      await fixture.play(30 * 12);
      expect((await read()).flags[0]?.treatment.requests.length).toBe(30);
      await fixture.play(31 * 12);
      expect((await read()).flags).toEqual([]);
      expect(fixture.server.statusPage.history.size).toBe(0);
    } finally {
      await fixture.close();
    }
  });

  it('keeps history for at most maxFlags flags, dropping the one updated longest ago, and refuses a point that is not whole slots', () => {
    const registry = new CohortRegistry({ slotMs: 1000, slotCount: 120 });
    const history = new RolloutHistory({ registry, maxFlags: 2 });
    const cohorts = (flagKey: string) => ({ flagKey, treatmentVariant: 'on', baselineVariant: 'off', policy: DEFAULT_GUARD_POLICY });
    const start = Date.parse('2026-11-30T09:00:00Z');
    registry.record('a', 'on', 80, false, start + 500);
    history.record({ nowMs: start + 61_000, watermarkMs: start + 60_000, flags: [cohorts('a'), cohorts('b')] });
    history.record({ nowMs: start + 121_000, watermarkMs: start + 120_000, flags: [cohorts('c'), cohorts('b')] });
    expect(history.view().flags.map((f) => f.flag)).toEqual(['b', 'c']);
    expect(() => new RolloutHistory({ registry, pointMs: 1500 })).toThrow(
      'RolloutHistory: pointMs must be a positive multiple of the slot (1000 ms), got 1500',
    );
  });
});
