// The Redis store against a real redis-server (started on a free port here, stopped
// afterwards): compare-and-set under contention, pub/sub across processes, the periodic resync,
// an outage with a guardian rollback, TLS with a password, and the CLI on a Redis store.
import { type ChildProcess, execFile, fork, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Client, type EventDetails, OpenFeature, ProviderEvents } from '@openfeature/server-sdk';
import { Redis } from 'ioredis';
import { parse as parseYaml } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FlagDefinitionInput } from '../../src/core/flag-schema.js';
import { planSteps } from '../../src/deploy/plan.js';
import { PlanWriter } from '../../src/deploy/plan-writer.js';
import { CohortRegistry } from '../../src/guardian/cohort-registry.js';
import { type RollbackRecord, RolloutGuardian } from '../../src/guardian/rollout-guardian.js';
import { RolloutProvider } from '../../src/provider/rollout-provider.js';
import { type StoreEvent, type WriteResult, FlagSourceError, InvalidWriteError, RevisionConflictError } from '../../src/stores/flag-store.js';
import { RedisFlagStore } from '../../src/stores/redis-store.js';
import { openStore } from '../../src/stores/open-store.js';
import { StoreWriter } from '../../src/stores/store-writer.js';
import { nextEvent } from '../helpers/events.js';
import { FakeClock } from '../helpers/fake-clock.js';
import type { ChildReport } from '../helpers/redis-provider-child.js';
import { RedisServer } from '../helpers/redis-server.js';
import { lognormal, mulberry32 } from '../helpers/seeded-random.js';

const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const CHILD = fileURLToPath(new URL('../helpers/redis-provider-child.ts', import.meta.url));
const START = Date.parse('2026-11-27T12:00:00Z');
const by = { actor: 'alice', reason: 'test' };
const silent = { warn: () => undefined, error: () => undefined };

const CHECKOUT: FlagDefinitionInput = { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: 50 } };
const GREETING: FlagDefinitionInput = { variants: { formal: 'Good day', casual: 'Hi' }, defaultVariant: 'formal' };

let redis: RedisServer;
let prefixes = 0;
const opened: { close(): Promise<unknown> }[] = [];
let domains = 0;

function nextPrefix(): string {
  return `test-${++prefixes}`;
}

function store(url: string, options: Omit<ConstructorParameters<typeof RedisFlagStore>[0], 'url'> = {}): RedisFlagStore {
  const s = new RedisFlagStore({ url, ...options });
  opened.push(s);
  return s;
}

function rawClient(server: RedisServer = redis): Redis {
  const client = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true });
  opened.push({ close: () => client.quit().catch(() => client.disconnect()) });
  return client;
}

/** Whole flags written as definitions, as `copy` does: one audited write. */
function seed(s: RedisFlagStore, flags: Record<string, FlagDefinitionInput>): Promise<WriteResult> {
  const changes = Object.entries(flags).map(([flagKey, value]) => ({ flagKey, definitionEdits: [{ path: [], value }] }));
  return s.write({ ...by, action: 'seed', changes });
}

async function start(provider: RolloutProvider): Promise<Client> {
  const domain = `redis-${++domains}`;
  await OpenFeature.setProviderAndWait(domain, provider);
  return OpenFeature.getClient(domain);
}

function providerEvent(provider: RolloutProvider, type: ProviderEvents, timeoutMs = 10_000): Promise<EventDetails | undefined> {
  return nextEvent<EventDetails | undefined>(
    (listener) => {
      provider.events.addHandler(type, listener);
      return () => provider.events.removeHandler(type, listener);
    },
    () => true,
    timeoutMs,
  );
}

function storeEvent(s: RedisFlagStore, accept: (event: StoreEvent) => boolean, timeoutMs = 5_000): Promise<StoreEvent> {
  return nextEvent<StoreEvent>((listener) => s.watch(listener), accept, timeoutMs);
}

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function cli(args: readonly string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<Run> {
  const { ROLLOUT_GUARDIAN_FLAGS: _ignored, ...inherited } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: options.cwd, env: { ...inherited, ...options.env } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] as number;
}

beforeAll(async () => {
  redis = await RedisServer.start();
}, 20_000);

afterAll(async () => {
  await redis?.dispose();
});

afterEach(async () => {
  await OpenFeature.close();
  await Promise.all(opened.splice(0).map((s) => s.close()));
});

describe('RedisFlagStore', () => {
  it('keeps definitions, state and a revision counter under its prefix, and audits every write with before, after and evidence', async () => {
    const prefix = nextPrefix();
    const s = store(redis.url(prefix));
    expect((await s.load()).revision).toBe('0');
    expect((await seed(s, { checkout: CHECKOUT, greeting: GREETING })).revision).toBe('1');
    await new StoreWriter(s).rollback('checkout', { actor: 'rollout-guardian', reason: 'error rate 4% > 1%' }, { errorRate: 0.04 });

    const snapshot = await s.load();
    expect(snapshot.revision).toBe('2');
    expect(snapshot.source).toBe(`redis://127.0.0.1:${redis.port}/?prefix=${prefix}`);
    expect(snapshot.state.get('checkout')?.rollback).toMatchObject({ actor: 'rollout-guardian', evidence: { errorRate: 0.04 } });
    const raw = rawClient();
    expect(await raw.get(`${prefix}:revision`)).toBe('2');
    expect(JSON.parse((await raw.get(`${prefix}:definitions`)) ?? '')).toEqual({ flags: { checkout: CHECKOUT, greeting: GREETING } });
    expect(await raw.xlen(`${prefix}:audit`)).toBe(3);

    const [rollback] = await s.audit({ flagKey: 'checkout', limit: 1 });
    expect(rollback).toMatchObject({
      action: 'rollback',
      actor: 'rollout-guardian',
      reason: 'error rate 4% > 1%',
      flagKey: 'checkout',
      revision: '2',
      before: { definition: CHECKOUT, state: null },
      after: { definition: CHECKOUT, state: { rollback: { actor: 'rollout-guardian' } } },
      evidence: { errorRate: 0.04 },
    });
    expect((await s.audit()).map((e) => `${e.action} ${e.flagKey} ${e.revision}`)).toEqual(['seed checkout 1', 'seed greeting 1', 'rollback checkout 2']);

    // Another prefix on the same Redis is another environment: it sees none of this.
    expect((await store(redis.url(nextPrefix())).load()).parsed.definitions.has('checkout')).toBe(false);
  });

  it('keeps plan state like any runtime state: a plan deployed through one instance is what another loads', async () => {
    const url = redis.url(nextPrefix());
    const clock = new FakeClock(START);
    await seed(store(url), { checkout: { ...CHECKOUT, rollout: { variant: 'on', percentage: 0 } } });
    await new PlanWriter(store(url, { clock }), clock).deploy('checkout', 'fast', planSteps('fast'), { actor: 'sre', reason: 'ship it' });
    const state = (await store(url).load()).state.get('checkout');
    expect(state).toMatchObject({ percentage: 0, plan: { strategy: 'fast', status: 'running', stepIndex: 0 } });
    const [entry] = await store(url).audit({ flagKey: 'checkout', limit: 1 });
    expect(entry).toMatchObject({ action: 'deploy', actor: 'sre', revision: '2', after: { state } });
  });

  it('refuses an invalid write and a stale revision, and writes nothing', async () => {
    const s = store(redis.url(nextPrefix()));
    await seed(s, { checkout: CHECKOUT });
    const edit = { ...by, action: 'set', changes: [{ flagKey: 'checkout', definitionEdits: [{ path: ['rollout', 'percentage'], value: 150 }] }] };
    await expect(s.write(edit)).rejects.toThrow(InvalidWriteError);
    await expect(s.write({ ...by, action: 'reset-state', expectedRevision: '0', changes: [{ flagKey: 'checkout', state: null }] })).rejects.toThrow(
      new RevisionConflictError('0', '1'),
    );
    expect((await s.load()).revision).toBe('1');
    expect(await s.audit()).toHaveLength(1);
  });

  it('20 concurrent writers on one flag: successful writes = revisions = audit entries, each conflict reported, no update merged or lost', async () => {
    const url = redis.url(nextPrefix());
    await seed(store(url), { contended: CHECKOUT });
    const writers = Array.from({ length: 20 }, () => store(url));
    const rounds = 10;
    let successes = 0;
    const conflicts: RevisionConflictError[] = [];
    await Promise.all(
      writers.map(async (writer, w) => {
        for (let round = 0; round < rounds; round++) {
          const snapshot = await writer.load();
          const percentage = w + round / 100;
          try {
            await writer.write({ actor: `writer-${w}`, reason: `round ${round}`, action: 'set-percentage', expectedRevision: snapshot.revision, changes: [{ flagKey: 'contended', state: { percentage } }] });
            successes++;
          } catch (err) {
            if (!(err instanceof RevisionConflictError)) throw err;
            conflicts.push(err);
          }
        }
      }),
    );
    expect(successes + conflicts.length).toBe(20 * rounds);
    expect(conflicts.length).toBeGreaterThan(0);
    for (const conflict of conflicts) expect(Number(conflict.actual)).toBeGreaterThan(Number(conflict.expected));

    const check = store(url);
    const entries = (await check.audit({ flagKey: 'contended' })).filter((e) => e.action === 'set-percentage');
    expect(Number((await check.load()).revision) - 1).toBe(successes);
    expect(entries).toHaveLength(successes);
    // Revisions 2, 3, ... in order, and each write started from what the previous one left:
    // a chain with no gap is a history where nothing was merged or lost.
    expect(entries.map((e) => e.revision)).toEqual(Array.from({ length: successes }, (_, i) => String(i + 2)));
    for (let i = 1; i < entries.length; i++) expect(entries[i]?.before.state).toEqual(entries[i - 1]?.after.state);
    expect((await check.load()).state.get('contended')).toEqual(entries.at(-1)?.after.state);
  });

  it('loses no update when 20 writers retry through StoreWriter', async () => {
    const url = redis.url(nextPrefix());
    await seed(store(url), { contended: CHECKOUT });
    const perWriter = 5;
    await Promise.all(
      Array.from({ length: 20 }, async (_, w) => {
        const writer = new StoreWriter(store(url), undefined, 1_000);
        for (let i = 0; i < perWriter; i++) await writer.setPercentage('contended', w + i / 10, { actor: `writer-${w}`, reason: `write ${i}` });
      }),
    );
    const check = store(url);
    expect((await check.load()).revision).toBe(String(1 + 20 * perWriter));
    expect(await check.audit({ flagKey: 'contended' })).toHaveLength(1 + 20 * perWriter);
  });

  it('brings three provider instances in separate processes to every change, p99 under a second over 1,000 changes', async () => {
    const url = redis.url(nextPrefix());
    const seeder = store(url);
    await seed(seeder, { rollout: { ...CHECKOUT, rollout: { variant: 'on', percentage: 0 } } });
    const children: ChildProcess[] = [];
    try {
      const ready = Array.from({ length: 3 }, () => {
        const child = fork(CHILD, [url, 'rollout'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        children.push(child);
        return nextEvent<ChildReport>(
          (listener) => {
            child.on('message', listener);
            return () => child.off('message', listener);
          },
          (report) => report.type === 'ready',
          20_000,
        );
      });
      expect((await Promise.all(ready)).map((r) => r.percentage)).toEqual([0, 0, 0]);

      const writer = new StoreWriter(seeder);
      const delays: number[] = [];
      for (let i = 1; i <= 1_000; i++) {
        const percentage = i / 100;
        const seen = children.map((child) =>
          nextEvent<ChildReport>(
            (listener) => {
              child.on('message', listener);
              return () => child.off('message', listener);
            },
            (report) => report.type === 'seen' && report.percentage === percentage,
          ),
        );
        const writtenAtMs = performance.timeOrigin + performance.now();
        await writer.setPercentage('rollout', percentage, { actor: 'sre', reason: `step ${i}` });
        // Paced: the next change goes out once every instance serves this one.
        for (const report of await Promise.all(seen)) if (report.type === 'seen') delays.push(report.seenAtMs - writtenAtMs);
      }
      const sorted = delays.sort((a, b) => a - b);
      const median = percentile(sorted, 0.5);
      const p99 = percentile(sorted, 0.99);
      console.log(
        `propagation to 3 provider processes over 1,000 changes (${sorted.length} deliveries): median ${median.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${(sorted.at(-1) ?? 0).toFixed(2)} ms`,
      );
      expect(sorted).toHaveLength(3_000);
      expect(p99).toBeLessThan(1_000);
    } finally {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.send('stop');
            }),
        ),
      );
    }
  }, 60_000);

  it('picks up a change whose message was missed at the next periodic resync', async () => {
    const prefix = nextPrefix();
    const s = store(redis.url(prefix), { resyncMs: 50 });
    await seed(s, { greeting: GREETING });
    await s.load();
    const changed = storeEvent(s, (e) => e.type === 'change');
    // Written behind the store's back: no PUBLISH, as if the message had been lost.
    const raw = rawClient();
    await raw.multi().set(`${prefix}:definitions`, JSON.stringify({ flags: { greeting: { ...GREETING, defaultVariant: 'casual' } } })).incr(`${prefix}:revision`).exec();
    const event = await changed;
    expect(event.type === 'change' && event.snapshot.parsed.definitions.get('greeting')?.defaultVariant).toBe('casual');
    expect(event.type === 'change' && event.snapshot.revision).toBe('2');
  });

  it('keeps serving the last good flags when the stored flags turn invalid or vanish, and says why', async () => {
    const prefix = nextPrefix();
    const s = store(redis.url(prefix), { resyncMs: 50 });
    await seed(s, { greeting: GREETING });
    await s.load();
    const raw = rawClient();
    const invalid = storeEvent(s, (e) => e.type === 'invalid');
    await raw.multi().set(`${prefix}:definitions`, '{"flags": {"greeting": ').incr(`${prefix}:revision`).exec();
    const bad = await invalid;
    expect(bad.type === 'invalid' && bad.message).toMatch(new RegExp(`^redis://127\\.0\\.0\\.1:${redis.port}/\\?prefix=${prefix} is invalid; the last good flags keep serving:\\n  ${prefix}:definitions:1:\\d+: `));
    expect((await s.load()).parsed.definitions.get('greeting')?.defaultVariant).toBe('formal');
    // A state-only write (a rollback) still lands on the last good definitions.
    await new StoreWriter(s).override('greeting', 'casual', by);

    const vanished = storeEvent(s, (e) => e.type === 'invalid' && e.message.includes('holds no flags any more'));
    await raw.del(`${prefix}:revision`, `${prefix}:definitions`, `${prefix}:state`);
    await vanished;
    expect((await s.load()).parsed.definitions.has('greeting')).toBe(true);
  });

  it('rides out an outage: evaluations keep serving, STALE then ERROR, a rollback decided meanwhile lands after, then READY', async () => {
    const server = await RedisServer.start();
    try {
      const clock = new FakeClock(START);
      const url = server.url('outage');
      await seed(store(url), { checkout: CHECKOUT });
      const s = store(url, { clock });
      const provider = new RolloutProvider({ store: s, errorGraceMs: 300, logger: silent });
      const client = await start(provider);
      const statuses: string[] = [];
      for (const type of [ProviderEvents.Stale, ProviderEvents.Error, ProviderEvents.Ready]) provider.events.addHandler(type, () => statuses.push(type));
      const registry = new CohortRegistry({ slotMs: 5_000, slotCount: 72 });
      const guardian = new RolloutGuardian({ source: s, writer: new StoreWriter(s, clock), registry, clock });
      const rollbacks: RollbackRecord[] = [];
      const errors: Error[] = [];
      guardian.addListener({ rollback: (r) => rollbacks.push(r), error: (e) => errors.push(e) });
      await guardian.tick();

      const users = Array.from({ length: 50 }, (_, i) => `user-${i}`);
      const serve = () => Promise.all(users.map((targetingKey) => client.getBooleanDetails('checkout', false, { targetingKey })));
      const before = await serve();
      expect(before.every((d) => d.reason === 'SPLIT' && d.errorCode === undefined)).toBe(true);

      // At once: within a second of Redis going away.
      const stale = providerEvent(provider, ProviderEvents.Stale, 1_000);
      await server.stop();
      await stale;
      expect(statuses).toEqual([ProviderEvents.Stale]);
      expect((await serve()).map((d) => [d.value, d.reason, d.errorCode])).toEqual(before.map((d) => [d.value, 'SPLIT', undefined]));
      await providerEvent(provider, ProviderEvents.Error);
      expect(statuses).toEqual([ProviderEvents.Stale, ProviderEvents.Error]);

      // Writes fail fast and say so: from this process, and from the command line.
      await expect(new StoreWriter(s, clock).override('checkout', 'off', by)).rejects.toThrow(
        new RegExp(`^Redis at redis://127\\.0\\.0\\.1:${server.port}/\\?prefix=outage is unreachable: .+; nothing was written$`),
      );
      const write = await cli(['flags', 'override', 'checkout', 'off', '--store', url, '--reason', 'INC-7']);
      expect(write.code).toBe(1);
      expect(write.stderr).toMatch(new RegExp(`^error: Redis at redis://127\\.0\\.0\\.1:${server.port}/\\?prefix=outage is unreachable: connect ECONNREFUSED .+; nothing was read or written\\n$`));

      // The treatment fails while Redis is away: the guardian decides, the write cannot land.
      const random = mulberry32(11);
      for (let second = 0; second < 60; second++) {
        for (let i = 0; i < 10; i++) {
          const at = clock.now() + i * 100;
          registry.record('checkout', 'on', lognormal(random, 80, 0.5), random() < 0.5, at);
          registry.record('checkout', 'off', lognormal(random, 80, 0.5), random() < 0.005, at);
        }
        clock.advance(1_000);
        if (clock.now() % registry.slotMs === 0) await guardian.tick();
      }
      expect(guardian.pendingRollbacks).toEqual(['checkout']);
      expect(rollbacks).toEqual([]);
      expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/^rollback of "checkout" failed, retrying every tick until it lands: FlagSourceError: Redis at .+ is unreachable/)]);
      expect((await serve()).map((d) => d.value)).toEqual(before.map((d) => d.value));

      const ready = providerEvent(provider, ProviderEvents.Ready);
      await server.resume();
      await ready;
      const rolledBack = providerEvent(provider, ProviderEvents.ConfigurationChanged);
      await guardian.tick();
      expect(rollbacks.map((r) => r.flagKey)).toEqual(['checkout']);
      expect(guardian.pendingRollbacks).toEqual([]);
      await rolledBack;
      expect((await serve()).every((d) => d.value === false && d.reason === 'DEFAULT' && d.errorCode === undefined)).toBe(true);
      expect(statuses).toEqual([ProviderEvents.Stale, ProviderEvents.Error, ProviderEvents.Ready]);
      const [entry] = await s.audit({ flagKey: 'checkout', limit: 1 });
      expect(entry).toMatchObject({ action: 'rollback', actor: 'rollout-guardian', evidence: { cause: 'breach', verdict: 'rollback' } });
    } finally {
      await server.dispose();
    }
  }, 30_000);

  it('fails with the reason when Redis is not there to begin with, and opens only the URLs it supports', async () => {
    // Port 1: nothing listens there, so the connection is refused at once.
    const s = store('redis://127.0.0.1:1', { connectTimeoutMs: 1_000 });
    await expect(s.load()).rejects.toThrow(FlagSourceError);
    await expect(s.load()).rejects.toThrow(/^Redis at redis:\/\/127\.0\.0\.1:\d+ is unreachable: .+; nothing was read or written$/);
    expect(() => openStore('mongodb://db/flags')).toThrow('mongodb:// stores are not supported; use a YAML or JSON flag file (a path or file:// URL) or Redis (redis:// or rediss://)');
    expect(() => openStore('redis://h/?prefx=a')).toThrow('unknown parameter "prefx" in the URL; supported: prefix, ca');
    const remote = openStore('rediss://:secret@cache.internal:6380/2?prefix=staging');
    opened.push(remote);
    expect(remote.source).toBe('rediss://cache.internal:6380/2?prefix=staging');
  });

  const hasOpenssl = spawnSync('openssl', ['version']).error === undefined;
  it.runIf(hasOpenssl)('connects over TLS with a password, trusting the CA the rediss:// URL names (needs openssl to make certificates)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rollout-guardian-test-tls-'));
    let server: RedisServer | undefined;
    try {
      const file = (name: string) => join(dir, name);
      await writeFile(file('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
      const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
      for (const args of [
        ['req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.crt'), '-days', '2', '-subj', '/CN=rollout-guardian test CA'],
        ['req', ...ec, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=127.0.0.1'],
        ['x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('server.crt'), '-days', '2', '-extfile', file('san.ext')],
      ]) {
        const made = spawnSync('openssl', args, { encoding: 'utf8' });
        if (made.status !== 0) throw new Error(`openssl ${args[0]} failed: ${made.stderr}`);
      }
      server = await RedisServer.start({ tls: { certFile: file('server.crt'), keyFile: file('server.key'), caFile: file('ca.crt') }, password: 's3cret:/@' });
      const url = `${server.url('tls')}&ca=${encodeURIComponent(file('ca.crt'))}`;
      const s = store(url);
      await seed(s, { greeting: GREETING });
      expect((await s.load()).source).toBe(`rediss://127.0.0.1:${server.port}/?prefix=tls`);
      expect(await s.audit()).toHaveLength(1);

      await expect(store(url.replace(encodeURIComponent('s3cret:/@'), 'wrong')).load()).rejects.toThrow(/is unreachable: WRONGPASS/);
      await expect(store(server.url('tls'), { connectTimeoutMs: 2_000 }).load()).rejects.toThrow(/is unreachable: .*(self.signed|certificate)/);
    } finally {
      await server?.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the rollout-guardian CLI on a Redis store', () => {
  const FLAGS_YAML = `# Checkout flags, owned by the payments team.
flags:
  new-checkout:
    description: The redesigned checkout flow
    variants: { on: true, off: false }
    defaultVariant: off        # the baseline
    rollout:
      variant: on
      percentage: 10
    targeting:
      - name: eu canary
        when: { attribute: region, in: [eu-west-1] }
        variant: on
  search-ranking:
    variants: { classic: classic-v1, learned: ltr-2026-10 }
    defaultVariant: classic
`;
  let dir: string;

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` before these tests (npm test does)`);
    dir = await mkdtemp(join(tmpdir(), 'rollout-guardian-test-cli-'));
    await writeFile(join(dir, 'flags.yaml'), FLAGS_YAML);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('copies file -> Redis -> file as one audited write each, lists from --store or ROLLOUT_GUARDIAN_FLAGS, and the round trip is equal', async () => {
    const url = redis.url(nextPrefix());
    expect((await cli(['flags', 'override', 'search-ranking', 'learned', '--reason', 'INC-1'], { cwd: dir })).code).toBe(0);

    const dry = await cli(['copy', '--from', 'flags.yaml', '--to', url, '--dry-run', '--json'], { cwd: dir });
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, changed: true, revision: '0', entries: [] });
    const toRedis = await cli(['copy', '--from', 'flags.yaml', '--to', url, '--reason', 'move to Redis'], { cwd: dir });
    expect(toRedis).toMatchObject({ code: 0, stderr: '' });
    expect(toRedis.stdout).toContain(`copied 2 flags from ${join(dir, 'flags.yaml')} to ${url} (revision 1), recorded in the audit log:`);
    expect(toRedis.stdout).toMatch(/search-ranking\s+added\s+set/);
    const again = await cli(['copy', '--from', 'flags.yaml', '--to', url, '--reason', 'again'], { cwd: dir });
    expect(again.stdout).toBe(`${url} already matches ${join(dir, 'flags.yaml')}; nothing was written\n`);

    const listed = await cli(['flags', 'list', '--store', url]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/new-checkout\s+boolean\s+enabled\s+on, off\s+off\s+10% on/);
    expect(listed.stdout).toMatch(/search-ranking\s+string\s+.*learned \(by /);
    const fromEnv = await cli(['flags', 'get', 'new-checkout', '--json'], { cwd: dir, env: { ROLLOUT_GUARDIAN_FLAGS: url } });
    expect(JSON.parse(fromEnv.stdout)).toMatchObject({ store: url, revision: '1', flag: { key: 'new-checkout', summary: '10% on' } });
    const audit = JSON.parse((await cli(['audit', '--store', url, '--json'])).stdout) as { entries: { action: string; flagKey: string; reason: string }[] };
    expect(audit.entries.map((e) => [e.action, e.flagKey, e.reason])).toEqual([
      ['copy', 'new-checkout', 'move to Redis'],
      ['copy', 'search-ranking', 'move to Redis'],
    ]);

    const back = await cli(['copy', '--from', url, '--to', 'back.yaml', '--reason', 'and back'], { cwd: dir });
    expect(back).toMatchObject({ code: 0, stderr: '' });
    expect(parseYaml(await readFile(join(dir, 'back.yaml'), 'utf8'))).toEqual(parseYaml(FLAGS_YAML));
    // Definitions, runtime state (the override, stamp and all) and each flag's content hash.
    const list = async (file: string) => (JSON.parse((await cli(['flags', 'list', '--json', '--store', file], { cwd: dir })).stdout) as { flags: unknown[] }).flags;
    expect(await list('back.yaml')).toEqual(await list('flags.yaml'));
  });

  it('needs a flag file for validate, and never echoes a password', async () => {
    const validate = await cli(['validate', '--store', 'redis://:hunter2@127.0.0.1:1']);
    expect(validate.code).toBe(2);
    expect(validate.stderr).toContain('redis://:***@127.0.0.1:1 (from --store) is a redis:// store');
    expect(validate.stderr).not.toContain('hunter2');
  });
});
