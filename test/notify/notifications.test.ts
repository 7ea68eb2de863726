// Notifications end to end: a real RolloutServer (or Notifier) on a fake clock, posting to a
// real HTTP receiver on a free port. Time only moves when the test moves it; the HTTP round
// trips are real and awaited, backoff is waited out by advancing the clock.
import { createHmac } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DiagLogLevel, diag } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import type { FlagDefinitionInput } from '../../src/core/flag-schema.js';
import { PlanWriter } from '../../src/deploy/plan-writer.js';
import { planSteps } from '../../src/deploy/plan.js';
import { type NotificationEvent, eventId } from '../../src/notify/notification.js';
import { Notifier } from '../../src/notify/notifier.js';
import { NotifyConfigError, parseNotifyConfig, resolveSecrets } from '../../src/notify/notify-config.js';
import { RolloutServer } from '../../src/server/rollout-server.js';
import { MemoryFlagStore } from '../../src/stores/memory-store.js';
import { PROMETHEUS_NAMES } from '../../src/telemetry/names.js';
import { runCliIn } from '../helpers/cli-in-process.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { withTempDir } from '../helpers/temp-dir.js';
import { lognormal, mulberry32 } from '../helpers/seeded-random.js';

const START = Date.parse('2026-11-27T12:00:00Z');
const SLOT_MS = 5_000;
const SECRET = 'whsec_0123456789abcdef';

interface Received {
  /** The fake clock's time when the request arrived. */
  readonly atMs: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly status: number;
}

/** A webhook receiver on a free port that records every request and answers what `answer` says. */
class Receiver {
  readonly requests: Received[] = [];
  answer: () => { status: number; headers?: Record<string, string> } = () => ({ status: 200 });
  /** When set, requests wait for release() before they are answered. */
  holding = false;
  private readonly held: (() => void)[] = [];
  private server: Server;
  private port = 0;

  private constructor(private readonly clock: FakeClock) {
    this.server = this.create();
  }

  static async start(clock: FakeClock): Promise<Receiver> {
    const receiver = new Receiver(clock);
    await receiver.listen(0);
    cleanups.push(() => receiver.stop());
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** Bodies of the requests answered 2xx, parsed, in arrival order. */
  delivered(): Record<string, unknown>[] {
    return this.requests.filter((r) => r.status >= 200 && r.status < 300).map((r) => JSON.parse(r.body) as Record<string, unknown>);
  }

  release(): void {
    this.holding = false;
    for (const go of this.held.splice(0)) go();
  }

  async stop(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Listens again on the same port after stop(). */
  async restart(): Promise<void> {
    this.server = this.create();
    await this.listen(this.port);
  }

  private create(): Server {
    return createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const reply = () => {
          const { status, headers } = this.answer();
          this.requests.push({ atMs: this.clock.now(), headers: request.headers, body: Buffer.concat(chunks).toString('utf8'), status });
          response.writeHead(status, headers).end();
        };
        if (this.holding) this.held.push(reply);
        else reply();
      });
    });
  }

  private async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function flag(guard: FlagDefinitionInput['guard'] = {}, percentage = 50): FlagDefinitionInput {
  return { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage }, guard };
}

async function serve(
  clock: FakeClock,
  flags: Record<string, FlagDefinitionInput>,
  notifyYaml: string,
  dryRun = false,
): Promise<{ server: RolloutServer; store: MemoryFlagStore }> {
  const store = new MemoryFlagStore({ flags, clock });
  const server = await RolloutServer.start({
    store,
    port: 0,
    clock,
    slotMs: SLOT_MS,
    slotCount: 72,
    autoTick: false,
    ingest: { allowedLatenessMs: 2_000, joinWaitMs: 1_000 },
    notify: parseNotifyConfig(notifyYaml, 'notify.yaml'),
    notifyRandom: mulberry32(11),
    dryRun,
  });
  cleanups.push(() => server.close());
  return { server, store };
}

interface Traffic {
  readonly rps: number;
  readonly errorRate: number;
  readonly medianMs: number;
}

/** `seconds` of traffic into the server's cohorts, ticking the guardian, the plans and the notifier at every slot. */
async function run(
  server: RolloutServer,
  clock: FakeClock,
  seconds: number,
  traffic: Record<string, Traffic>,
  random = mulberry32(5),
): Promise<void> {
  for (let s = 0; s < seconds; s++) {
    for (const [key, t] of Object.entries(traffic)) {
      for (let i = 0; i < t.rps; i++) {
        const at = clock.now() + Math.floor((i * 1000) / t.rps);
        server.registry.record(key, 'on', lognormal(random, t.medianMs, 0.5), random() < t.errorRate, at);
        server.registry.record(key, 'off', lognormal(random, 50, 0.5), random() < 0.001, at);
      }
    }
    clock.advance(1000);
    if (clock.now() % SLOT_MS === 0) {
      await server.guardian.tick();
      await server.plans.tick();
      await server.notifier?.pump();
    }
  }
}

function verify(received: Received): boolean {
  const timestamp = String(received.headers['x-rollout-guardian-timestamp']);
  const expected = `sha256=${createHmac('sha256', SECRET).update(`${timestamp}.${received.body}`).digest('hex')}`;
  return received.headers['x-rollout-guardian-signature'] === expected;
}

function event(n: number, atMs: number): NotificationEvent {
  return {
    id: eventId('rollback', `flag-${n}`, n),
    type: 'rollback',
    flag: `flag-${n}`,
    verdict: 'rollback',
    reason: `reason ${n}`,
    evidence: {},
    atMs,
    dryRun: false,
  };
}

async function scrape(server: RolloutServer): Promise<string> {
  return (await fetch(`${server.url}/metrics`)).text();
}

function metric(text: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${PROMETHEUS_NAMES.notifications}{`) && l.includes(labels));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

describe('notifications', () => {
  it('delivers a rollback within one slot of its decision, signed, with its evidence, as generic JSON and as a Slack message, once', async () => {
    const clock = new FakeClock(START);
    const ops = await Receiver.start(clock);
    const chat = await Receiver.start(clock);
    const { server, store } = await serve(
      clock,
      { checkout: flag({ sustainFor: '30s' }) },
      `targets:\n  - { name: ops, url: "${ops.url}", secret: ${SECRET} }\n  - { name: chat, url: "${chat.url}", format: slack, events: [rollback] }\n`,
    );
    await run(server, clock, 120, { checkout: { rps: 20, errorRate: 0.3, medianMs: 50 } });

    const rollbacks = ops.requests.filter((r) => r.headers['x-rollout-guardian-event'] === 'rollback');
    expect(rollbacks).toHaveLength(1);
    const received = rollbacks[0] as Received;
    const body = JSON.parse(received.body) as {
      id: string;
      rates: { treatment: { errorRate: number } };
      limits: unknown;
      evidence: { decidedAt: string };
    };
    const [audit] = await store.audit({ flagKey: 'checkout' });
    expect(body).toMatchObject({
      type: 'rollback',
      flag: 'checkout',
      verdict: 'rollback',
      reason: audit?.reason,
      dryRun: false,
      source: 'rollout-guardian',
    });
    expect(body.id).toMatch(/^evt_[0-9a-f]{24}$/);
    expect(received.headers['x-rollout-guardian-event-id']).toBe(body.id);
    expect(body.evidence).toMatchObject({
      cause: 'breach',
      check: { check: 'errorRate', limit: 0.01 },
      treatment: { variant: 'on' },
      baseline: { variant: 'off' },
      percentage: 50,
    });
    expect(body.rates.treatment.errorRate).toBeGreaterThan(0.2);
    expect(body.limits).toMatchObject({ maxErrorRate: 0.01, maxP95Ms: 500, maxP99Ms: 1000, warn: { maxErrorRate: 0.005 } });
    // Decided, written and delivered in the same tick: well within one slot.
    expect(received.atMs - Date.parse(body.evidence.decidedAt)).toBeLessThan(SLOT_MS);
    expect(verify(received)).toBe(true);
    expect(verify({ ...received, body: received.body.replace('checkout', 'checkoux') })).toBe(false);

    // The Slack target asked for rollbacks only, and gets Block Kit with the numbers.
    expect(chat.requests).toHaveLength(1);
    const slack = JSON.parse((chat.requests[0] as Received).body) as {
      text: string;
      blocks: { type: string; fields?: { text: string }[] }[];
    };
    expect(slack.text).toMatch(
      /^:rotating_light: Rolled back `checkout`: breach held for|^:rotating_light: Rolled back `checkout`: overwhelming breach/,
    );
    expect(slack.blocks.map((b) => b.type)).toEqual(['header', 'section', 'section', 'context']);
    expect(slack.blocks[2]?.fields?.[0]?.text).toMatch(/^\*Error rate\*\n\d+\.\d\d% \(baseline \d\.\d\d%, limit 1\.00%\)$/);
    expect(chat.requests[0]?.headers['x-rollout-guardian-signature']).toBeUndefined();

    // Notified once: the same event again is a duplicate, and more ticks add nothing.
    expect(
      server.notifier?.notify({
        id: body.id,
        type: 'rollback',
        flag: 'checkout',
        verdict: 'rollback',
        reason: 'again',
        evidence: {},
        atMs: clock.now(),
        dryRun: false,
      }),
    ).toBe(false);
    await run(server, clock, 30, { checkout: { rps: 20, errorRate: 0.3, medianMs: 50 } });
    expect(ops.requests.filter((r) => r.headers['x-rollout-guardian-event'] === 'rollback')).toHaveLength(1);
    expect(metric(await scrape(server), 'target="ops",outcome="sent"')).toBe(ops.requests.length);
  });

  it('on a breach that builds up, notifies the warning, then the suspected breach, then the rollback, each once', async () => {
    const clock = new FakeClock(START);
    const ops = await Receiver.start(clock);
    const { server } = await serve(clock, { checkout: flag({ sustainFor: '60s' }) }, `targets:\n  - { name: ops, url: "${ops.url}" }\n`);
    // 0.8% errors: above the 0.5% warning level, under the 1% limit.
    await run(server, clock, 300, { checkout: { rps: 100, errorRate: 0.008, medianMs: 50 } });
    expect(ops.delivered().map((b) => [b.type, b.reason])).toEqual([
      [
        'warning',
        expect.stringMatching(
          /^above the warning level for \d+ s \(warns, never rolls back\): error rate 0\.\d+% over [\d,]+ requests, limit 0\.50%/,
        ),
      ],
    ]);
    await run(server, clock, 240, { checkout: { rps: 100, errorRate: 0.04, medianMs: 50 } });
    const events = ops.delivered();
    expect(events.map((b) => b.type)).toEqual(['warning', 'breach-suspected', 'rollback']);
    expect(events[1]).toMatchObject({
      flag: 'checkout',
      verdict: 'breaching',
      evidence: { check: { check: 'errorRate', state: 'breaching' } },
    });
    expect(events[1]?.reason).toMatch(/^breach (suspected|confirmed)/);
  });

  it('in dry run, notifies the rollback it would have written, marked as such, and writes nothing', async () => {
    const clock = new FakeClock(START);
    const ops = await Receiver.start(clock);
    const { server, store } = await serve(
      clock,
      { checkout: flag({ sustainFor: '30s' }) },
      `targets:\n  - { name: ops, url: "${ops.url}", events: [rollback] }\n`,
      true,
    );
    await run(server, clock, 120, { checkout: { rps: 20, errorRate: 0.3, medianMs: 50 } });
    const events = ops.delivered();
    expect(events.map((b) => [b.type, b.flag, b.dryRun])).toEqual([['rollback', 'checkout', true]]);
    expect((await store.load()).state.get('checkout')?.rollback).toBeUndefined();
  });

  it('never makes the guardian wait for a receiver: a tick finishes while the webhook is still unanswered', async () => {
    const clock = new FakeClock(START);
    const ops = await Receiver.start(clock);
    ops.holding = true;
    const { server } = await serve(clock, { checkout: flag({ sustainFor: '30s' }) }, `targets:\n  - { name: ops, url: "${ops.url}" }\n`);
    server.guardian.addHealthCheck('payments', () => Promise.resolve(false), { flags: ['checkout'] });
    clock.advance(SLOT_MS);
    await server.guardian.tick();
    // The health check failed, the event is on its way, and the tick is over.
    expect(server.notifier?.stats()).toEqual([{ target: 'ops', queued: 1, sent: 0, failed: 0, dropped: 0, retried: 0 }]);
    const sent = server.notifier?.pump();
    ops.release();
    await sent;
    const [body] = ops.delivered();
    expect(body).toMatchObject({
      type: 'health-check-failed',
      flag: 'checkout',
      reason: 'health check "payments" failed (it covers checkout)',
      evidence: { healthCheck: 'payments', consecutiveFailures: 1 },
    });
    // A run of failures is said once, when it begins.
    for (let i = 0; i < 3; i++) {
      clock.advance(SLOT_MS);
      await server.guardian.tick();
      await server.notifier?.pump();
    }
    expect(ops.delivered().filter((b) => b.type === 'health-check-failed')).toHaveLength(1);
  });

  it.each(['answers 503', 'is closed'])(
    'gets every event, in order and once each, to a receiver that %s for 10 minutes',
    async (outage) => {
      const clock = new FakeClock(START);
      const ops = await Receiver.start(clock);
      const backAtMs = START + 600_000;
      const warnings: string[] = [];
      const quiet = () => undefined;
      diag.setLogger({ error: quiet, warn: (m: string) => warnings.push(m), info: quiet, debug: quiet, verbose: quiet }, DiagLogLevel.WARN);
      cleanups.push(() => diag.disable());
      if (outage === 'is closed') await ops.stop();
      else ops.answer = () => ({ status: clock.now() < backAtMs ? 503 : 200 });
      const notifier = new Notifier({
        config: parseNotifyConfig(`targets:\n  - { name: ops, url: "${ops.url}" }\n`, 'notify.yaml'),
        clock,
        random: mulberry32(3),
      });
      cleanups.push(() => notifier.close());
      const ids: string[] = [];
      for (let s = 0; s < 780; s += 5) {
        if (s % 120 === 0 && s < 600) {
          const e = event(s, clock.now());
          ids.push(e.id);
          notifier.notify(e);
        }
        if (outage === 'is closed' && clock.now() === backAtMs) await ops.restart();
        clock.advance(5_000);
        await notifier.pump();
      }
      const delivered = ops.delivered();
      expect(delivered.map((b) => b.id)).toEqual(ids);
      expect(ids).toHaveLength(5);
      const [stats] = notifier.stats();
      expect(stats).toMatchObject({ target: 'ops', sent: 5, failed: 0, dropped: 0, queued: 0 });
      // Backoff, not hammering: far fewer attempts than the 120 five-second looks of the outage,
      // yet capped, so the first delivery comes within a minute (plus a look) of the return.
      expect(stats?.retried).toBeGreaterThan(5);
      expect(stats?.retried).toBeLessThan(30);
      const firstBack = ops.requests.find((r) => r.status === 200) as Received;
      expect(firstBack.atMs - backAtMs).toBeLessThanOrEqual(65_000);
      // Said once, then counted.
      expect(warnings).toEqual([
        expect.stringMatching(
          outage === 'is closed'
            ? /^rollout-guardian notify: ops: rollback evt_\w+ not delivered: .*retrying with backoff .*\(further "network" problems/
            : /^rollout-guardian notify: ops: rollback evt_\w+ answered HTTP 503; retrying .*\(further "http-503" problems/,
        ),
      ]);
    },
  );

  it('waits as long as Retry-After says on a 429, and gives up at once on another 4xx', async () => {
    const clock = new FakeClock(START);
    const limited = await Receiver.start(clock);
    const refusing = await Receiver.start(clock);
    let answered = 0;
    limited.answer = () => (answered++ === 0 ? { status: 429, headers: { 'retry-after': '120' } } : { status: 204 });
    refusing.answer = () => ({ status: 404 });
    const notifier = new Notifier({
      config: parseNotifyConfig(
        `targets:\n  - { name: limited, url: "${limited.url}" }\n  - { name: refusing, url: "${refusing.url}" }\n`,
        'n.yaml',
      ),
      clock,
      random: mulberry32(9),
    });
    cleanups.push(() => notifier.close());
    notifier.notify(event(1, clock.now()));
    for (let s = 0; s < 300; s += 5) {
      await notifier.pump();
      clock.advance(5_000);
    }
    expect(limited.requests.map((r) => [r.atMs - START, r.status])).toEqual([
      [0, 429],
      [120_000, 204],
    ]);
    expect(refusing.requests.map((r) => r.status)).toEqual([404]);
    expect(notifier.stats()).toEqual([
      { target: 'limited', queued: 0, sent: 1, failed: 0, dropped: 0, retried: 1 },
      { target: 'refusing', queued: 0, sent: 0, failed: 1, dropped: 0, retried: 0 },
    ]);
  });

  it('drops what overflows a full queue and counts it in /metrics', async () => {
    const clock = new FakeClock(START);
    const ops = await Receiver.start(clock);
    ops.answer = () => ({ status: 503 });
    const { server } = await serve(clock, { checkout: flag() }, `targets:\n  - { name: ops, url: "${ops.url}", maxQueue: 3 }\n`);
    for (let n = 0; n < 5; n++) server.notifier?.notify(event(n, clock.now()));
    await server.notifier?.pump();
    const text = await scrape(server);
    expect(metric(text, 'target="ops",outcome="dropped"')).toBe(2);
    expect(metric(text, 'target="ops",outcome="sent"')).toBe(0);
    expect(metric(text, 'target="ops",outcome="retried"')).toBe(1);
    expect(text).toMatch(new RegExp(`^${PROMETHEUS_NAMES.notificationsQueued}\\{target="ops"[^}]*\\} 3$`, 'm'));
  });

  it('notifies a warning, and no rollback, when the P95 sits between its 200 ms warning level and its 500 ms limit', async () => {
    const clock = new FakeClock(START);
    const ops = await Receiver.start(clock);
    const { server, store } = await serve(clock, { checkout: flag() }, `targets:\n  - { name: ops, url: "${ops.url}" }\n`);
    await run(server, clock, 420, { checkout: { rps: 20, errorRate: 0.001, medianMs: 150 } });
    const events = ops.delivered();
    expect(events.map((b) => b.type)).toEqual(['warning']);
    expect(events[0]).toMatchObject({
      flag: 'checkout',
      evidence: { check: { check: 'p95', thresholdMs: 200 } },
      limits: { maxP95Ms: 500, warn: { maxP95Ms: 200 } },
    });
    expect(events[0]?.reason).toMatch(/^above the warning level for \d+ s \(warns, never rolls back\)/);
    expect((await store.load()).state.get('checkout')?.rollback).toBeUndefined();
    // The status the CLI and the status page read carries it beside the verdict.
    const status = (await (await fetch(`${server.url}/api/status`)).json()) as {
      flags: { flag: string; guardian: { verdict: string; warning: string | null } }[];
    };
    const guardian = status.flags.find((f) => f.flag === 'checkout')?.guardian;
    expect(guardian?.verdict).not.toBe('rollback');
    expect(guardian?.warning).toMatch(/^above the warning level for \d+ s \(warns, never rolls back\): .* slower than 200 ms/);
    // And `status --server` says it under the verdict.
    const cli = await runCliIn(process.cwd(), ['status', 'checkout', '--server', server.url]);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/\n {2}warning {3}above the warning level for \d+ s \(warns, never rolls back\)/);
  });

  it('notifies plan steps advanced and completed, and a plan held by its judgment once per step', async () => {
    const clock = new FakeClock(START);
    const ops = await Receiver.start(clock);
    const { server, store } = await serve(
      clock,
      { checkout: flag({}, 0), search: flag({}, 0) },
      `targets:\n  - { name: ops, url: "${ops.url}", events: [plan-step-advanced, plan-held, plan-completed] }\n`,
    );
    const plans = new PlanWriter(store, clock);
    const by = { actor: 'sre', reason: 'release' };
    await plans.deploy('checkout', 'custom', planSteps('custom', { steps: [0, 50, 100], stepDurationMs: 60_000 }), by);
    await plans.deploy('search', 'custom', planSteps('custom', { steps: [50, 100], stepDurationMs: 60_000 }), by);
    await server.plans.tick();
    // checkout has healthy traffic; search has none, so it cannot be judged healthy.
    await run(server, clock, 300, { checkout: { rps: 30, errorRate: 0.001, medianMs: 50 } });
    const events = ops.delivered().map((b) => [b.type, b.flag, (b.evidence as { step?: number }).step]);
    expect(events).toEqual([
      ['plan-step-advanced', 'checkout', 2],
      ['plan-held', 'search', 1],
      ['plan-step-advanced', 'checkout', 3],
      ['plan-completed', 'checkout', 3],
    ]);
    expect(ops.delivered()[1]?.reason).toMatch(/^holding: too few treatment requests/);
  });
});

describe('the notification file', () => {
  it('refuses bad targets, saying where each problem is', () => {
    const text = [
      'targets:',
      '  - url: ftp://hooks.example.com/x',
      '    format: teams',
      '    events: [rollback, deploy]',
      '  - { url: "https://hooks.example.com/a", secret: short }',
      '',
    ].join('\n');
    let error: unknown;
    try {
      parseNotifyConfig(text, 'notify.yaml');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(NotifyConfigError);
    expect((error as NotifyConfigError).problems).toEqual([
      'notify.yaml:2:10: targets[0].url: expected an http:// or https:// URL, got "ftp://hooks.example.com/x"',
      'notify.yaml:3:13: targets[0].format: expected generic or slack, got "teams"',
      'notify.yaml:4:24: targets[0].events[1]: expected one of warning, breach-suspected, rollback, health-check-failed, plan-step-advanced, plan-held, plan-completed, got "deploy"',
      'notify.yaml:5:51: targets[1].secret: expected a secret of at least 16 characters, got "short"',
    ]);
  });

  it('names targets after their host, wants distinct names, and reads secretEnv from the environment it is given', () => {
    expect(() => parseNotifyConfig('targets:\n  - url: https://a.example/1\n  - url: https://a.example/2\n', 'n.yaml')).toThrow(
      'n.yaml:3:10: targets[1].url: expected a name of its own: targets[0] is also "a.example" (give each target a distinct name)',
    );
    const config = parseNotifyConfig('{"targets": [{"url": "https://a.example/1", "secretEnv": "HOOK_SECRET"}], "maxAge": "2h"}', 'n.json');
    expect(config.maxAgeMs).toBe(7_200_000);
    expect(resolveSecrets(config, { HOOK_SECRET: SECRET }, 'n.json').targets[0]?.secret).toBe(SECRET);
    expect(() => resolveSecrets(config, {}, 'n.json')).toThrow(
      'n.json: target "a.example" takes its secret from $HOOK_SECRET, which is not set; export HOOK_SECRET=<secret> before serve',
    );
  });

  it('stops serve --notify with a bad file before anything starts, saying where the file is bad', async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'flags.yaml'), 'flags: {}\n');
      await writeFile(join(dir, 'notify.yaml'), 'targets:\n  - url: not a url\n');
      const run = await runCliIn(dir, [
        'serve',
        '--port',
        '0',
        '--no-grpc-port',
        '--store',
        join(dir, 'flags.yaml'),
        '--notify',
        join(dir, 'notify.yaml'),
      ]);
      expect(run.code).not.toBe(0);
      expect(run.stderr).toContain('--notify: 1 problem in the notification file:');
      expect(run.stderr).toContain(
        `${join(dir, 'notify.yaml')}:2:10: targets[0].url: expected an http:// or https:// URL, got "not a url"`,
      );
      expect(run.stdout).toBe('');
    });
  });
});
