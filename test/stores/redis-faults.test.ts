// The Redis store when Redis loses its data or its state turns bad, against a real
// redis-server: no write replaces definitions it did not read, an empty store is reported
// (and `serve` says not ready), and the last good flags keep serving.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RolloutServer } from '../../src/server/rollout-server.js';
import type { StoreEvent } from '../../src/stores/flag-store.js';
import { RedisFlagStore } from '../../src/stores/redis-store.js';
import { StoreWriter } from '../../src/stores/store-writer.js';
import { nextEvent } from '../helpers/events.js';
import { cliRun } from '../helpers/in-process-cli.js';
import { RedisServer } from '../helpers/redis-server.js';

const CHECKOUT = { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: 10 } };
const by = { actor: 'alice', reason: 'test' };

let redis: RedisServer;
const opened: { close(): Promise<unknown> }[] = [];
let prefixes = 0;

function store(prefix: string): RedisFlagStore {
  const s = new RedisFlagStore({ url: redis.url(prefix), resyncMs: 50 });
  opened.push(s);
  return s;
}

async function seed(s: RedisFlagStore): Promise<void> {
  await s.write({ ...by, action: 'copy', changes: [{ flagKey: 'checkout', definitionEdits: [{ path: [], value: CHECKOUT }] }] });
}

beforeAll(async () => {
  redis = await RedisServer.start();
}, 20_000);
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await redis?.dispose();
});

describe('a Redis store that lost its data', () => {
  it('restarted empty: an operator write is refused as "store is empty" instead of storing no flags, and instances keep serving', async () => {
    const prefix = `empty-${++prefixes}`;
    const serving = store(prefix);
    await seed(serving);
    await serving.load();
    const noticed = nextEvent<StoreEvent>((l) => serving.watch(l), (e) => e.type === 'invalid' && e.message.includes('holds no flags any more'), 10_000);
    // Restarted without its data: stopped, its saved data removed, started again.
    await redis.stop();
    await rm(join(redis.dir, 'dump.rdb'), { force: true });
    await redis.resume();

    const write = await cliRun(['flags', 'override', 'emergency_shutdown', 'on', '--store', redis.url(prefix), '--reason', 'incident'], { cwd: redis.dir });
    expect(write.code).toBe(1);
    expect(write.stderr).toMatch(/^error: redis:\/\/127\.0\.0\.1:\d+\/\?prefix=empty-\d+ is empty: it holds no flag definitions \(empty-\d+:definitions\); .*copy --from flags\.yaml --to .*; nothing was written\n$/);
    const raw = new Redis({ host: '127.0.0.1', port: redis.port });
    opened.push({ close: () => raw.quit() });
    expect(await raw.exists(`${prefix}:definitions`, `${prefix}:revision`)).toBe(0);

    await noticed;
    const snapshot = await serving.load();
    expect(snapshot.parsed.definitions.get('checkout')?.rollout?.percentage).toBe(10);
    expect(snapshot.problem).toMatch(/holds no flags any more/);
    // A new process sees an empty store, and says so.
    expect((await store(prefix).load()).problem).toMatch(/is empty: it holds no flag definitions/);
  }, 30_000);

  it('serve on an empty store answers /readyz with 503 and why, then 200 once the flags are loaded', async () => {
    const prefix = `ready-${++prefixes}`;
    const s = store(prefix);
    const server = await RolloutServer.start({ store: s, port: 0, autoTick: false, log: () => undefined });
    opened.push(server);
    const empty = await fetch(`${server.url}/readyz`);
    expect(empty.status).toBe(503);
    expect(await empty.text()).toMatch(/store not fit to serve: .* is empty/);
    await seed(store(prefix));
    await new StoreWriter(store(prefix)).override('checkout', 'on', by);
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
  }, 30_000);
});
