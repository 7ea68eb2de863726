// No background promise rejects unhandled: stores, the provider and serve (guardian ticking)
// are put through hostile edits, vanishing files and a Redis that dies, freezes and comes
// back, with a process-wide 'unhandledRejection' listener that fails the test.
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type EventDetails, OpenFeature, ProviderEvents } from '@openfeature/server-sdk';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RolloutProvider } from '../../src/provider/rollout-provider.js';
import { RolloutServer } from '../../src/server/rollout-server.js';
import { FileFlagStore } from '../../src/stores/file-store.js';
import { RedisFlagStore } from '../../src/stores/redis-store.js';
import { StoreWriter } from '../../src/stores/store-writer.js';
import { nextEvent } from '../helpers/events.js';
import { RedisServer } from '../helpers/redis-server.js';
import { withTempDir } from '../helpers/temp-dir.js';

const FLAGS = `flags:
  checkout:
    variants: { on: true, off: false }
    defaultVariant: off
    rollout: { variant: on, percentage: 10 }
`;
const BOMB = `a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\nflags: {}\n`;
// Hostile outside any one flag, so the whole text is refused (inside a flag, only that flag is).
const DEEP = `{"flags":{},"deep":${'['.repeat(20_000)}${']'.repeat(20_000)}}`;
const silent = { warn: () => undefined, error: () => undefined };

const rejections: unknown[] = [];
const onRejection = (reason: unknown): void => {
  rejections.push(reason);
};

beforeAll(() => {
  process.on('unhandledRejection', onRejection);
});
afterAll(async () => {
  await OpenFeature.close();
  process.off('unhandledRejection', onRejection);
});

function providerEvent(provider: RolloutProvider, type: ProviderEvents, saying: RegExp = /.*/, timeoutMs = 10_000): Promise<EventDetails | undefined> {
  return nextEvent<EventDetails | undefined>(
    (listener) => {
      provider.events.addHandler(type, listener);
      return () => provider.events.removeHandler(type, listener);
    },
    (details) => saying.test(details?.message ?? ''),
    timeoutMs,
  );
}

describe('no unhandled rejection anywhere', () => {
  it('through a file store, its provider and serve: hostile edits, a vanished file, a revert, probes and ticks', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'flags.yaml');
      await writeFile(path, FLAGS);
      const provider = new RolloutProvider({ store: new FileFlagStore({ path, debounceMs: 1, resyncMs: 20 }), logger: silent });
      await OpenFeature.setProviderAndWait('file-paths', provider);
      const server = await RolloutServer.start({ store: new FileFlagStore({ path, debounceMs: 1, resyncMs: 20 }), port: 0, slotMs: 100, log: () => undefined });
      try {
        for (const text of [BOMB, DEEP, 'flags: [', '{"__proto__": {}, "flags": {}}']) {
          const failed = providerEvent(provider, ProviderEvents.Error);
          await writeFile(path, text);
          await failed;
          expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
          const ready = providerEvent(provider, ProviderEvents.Ready);
          await writeFile(path, FLAGS);
          await ready;
        }
        await rm(path);
        expect(await OpenFeature.getClient('file-paths').getBooleanValue('checkout', true, { targetingKey: 'u' })).toBe(false);
        await writeFile(path, FLAGS);
        await new StoreWriter(new FileFlagStore({ path, watch: false })).rollback('checkout', { actor: 'test', reason: 'paths' });
        expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      } finally {
        await server.close();
      }
    });
    expect(rejections).toEqual([]);
  }, 60_000);

  it('through a Redis store and its provider: hostile keys, Redis killed, frozen and restarted empty', async () => {
    const redis = await RedisServer.start();
    const raw = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 50 });
    raw.on('error', () => undefined);
    try {
      const url = redis.url('paths');
      const seed = new RedisFlagStore({ url });
      await seed.write({ actor: 't', reason: 'seed', action: 'copy', changes: [{ flagKey: 'checkout', definitionEdits: [{ path: [], value: { variants: { on: true, off: false }, defaultVariant: 'off' } }] }] });
      await seed.close();
      const store = new RedisFlagStore({ url, resyncMs: 50, commandTimeoutMs: 300 });
      const provider = new RolloutProvider({ store, logger: silent, errorGraceMs: 100 });
      await OpenFeature.setProviderAndWait('redis-paths', provider);
      await raw.connect();
      for (const text of [DEEP, BOMB, '{"__proto__": 1}']) {
        const failed = providerEvent(provider, ProviderEvents.Error);
        await raw.multi().set('paths:definitions', text).incr('paths:revision').exec();
        await failed;
      }
      // Frozen: commands time out.
      const pid = Number((await raw.info('server')).match(/process_id:(\d+)/)?.[1]);
      const stale = providerEvent(provider, ProviderEvents.Stale);
      process.kill(pid, 'SIGSTOP');
      await stale;
      process.kill(pid, 'SIGCONT');
      // Killed, and back without its data.
      await redis.stop();
      await rm(join(redis.dir, 'dump.rdb'), { force: true });
      const emptied = providerEvent(provider, ProviderEvents.Error, /holds no flags any more/);
      await redis.resume();
      await emptied;
      expect(await OpenFeature.getClient('redis-paths').getBooleanValue('checkout', true, { targetingKey: 'u' })).toBe(false);
      await expect(new StoreWriter(store).override('checkout', 'on', { actor: 't', reason: 'x' })).rejects.toThrow(/is empty/);
      await OpenFeature.clearProviders();
    } finally {
      raw.disconnect();
      await redis.dispose();
    }
    expect(rejections).toEqual([]);
  }, 60_000);
});
