// Hostile and oversized flag text, from a file or a hand-edited Redis key: valid files with
// many aliases load; alias bombs, absurd nesting, JavaScript-reserved keys and huge files are
// refused with a located error while the last good flags keep serving, and no watcher dies.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { FileFlagStore } from '../../src/stores/file-store.js';
import { FLAG_TEXT_LIMITS } from '../../src/stores/flag-file-format.js';
import { type StoreEvent, FlagSourceError } from '../../src/stores/flag-store.js';
import { RedisFlagStore } from '../../src/stores/redis-store.js';
import { nextEvent } from '../helpers/events.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { RedisServer } from '../helpers/redis-server.js';
import { withTempDir } from '../helpers/temp-dir.js';

const GOOD = `flags:
  checkout:
    variants: { on: true, off: false }
    defaultVariant: off
    rollout: { variant: on, percentage: 10 }
`;

/** 101 flags sharing one guard through an alias: more alias uses than yaml's default allows. */
function sharedGuards(count: number): string {
  const lines = ['flags:'];
  for (let i = 0; i < count; i++) {
    lines.push(`  flag-${i}:`, '    variants: { on: true, off: false }', '    defaultVariant: off');
    lines.push(i === 0 ? '    guard: &g { maxErrorRate: 0.01, maxP95Ms: 500, sustainFor: 5m }' : '    guard: *g');
  }
  return `${lines.join('\n')}\n`;
}

const BILLION_LAUGHS = `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
flags:
  bomb:
    variants: { on: *h, off: [] }
    defaultVariant: off
`;

const DEEP_JSON = `{"flags":{"deep":{"variants":{"a":${'['.repeat(20_000)}${']'.repeat(20_000)}},"defaultVariant":"a"}}}`;

function events(store: { watch(listener: (e: StoreEvent) => void): () => void }, accept: (e: StoreEvent) => boolean): Promise<StoreEvent> {
  return nextEvent<StoreEvent>((listener) => store.watch(listener), accept);
}

function messageOf(event: StoreEvent): string {
  return event.type === 'invalid' ? event.message : '';
}

function io(cwd: string) {
  const out = { stdout: '', stderr: '' };
  return {
    out,
    io: {
      stdout: { write: (t: string) => (out.stdout += t) },
      stderr: { write: (t: string) => (out.stderr += t) },
      env: {},
      cwd,
      clock: new FakeClock(Date.parse('2026-11-30T00:00:00Z')),
      username: 'tester',
      version: '0.0.0',
    },
  };
}

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});
afterEach(() => {
  expect(unhandled).toEqual([]);
});

describe('a flag file with hostile or oversized content', () => {
  it('loads a valid file where 101 flags share one guard through an alias', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'flags.yaml');
      await writeFile(path, sharedGuards(102));
      const store = new FileFlagStore({ path, watch: false });
      const snapshot = await store.load();
      expect(snapshot.parsed.definitions.get('flag-101')?.guard).toEqual({ maxErrorRate: 0.01, maxP95Ms: 500, sustainFor: '5m' });
      expect(snapshot.parsed.invalid.size).toBe(0);
      // And a write to such a file works too.
      expect(await runCli(['flags', 'set', 'flag-7', 'state', 'disabled', '--store', path, '--reason', 'test'], io(dir).io)).toBe(0);
      expect((await store.load()).parsed.definitions.get('flag-7')?.state).toBe('disabled');
    });
  });

  it('refuses a billion-laughs file and 20,000-deep nesting with a located error, the last good flags serving meanwhile', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'flags.yaml');
      await writeFile(path, GOOD);
      const store = new FileFlagStore({ path, debounceMs: 1 });
      await store.load();
      // writeFile truncates before it writes, so a watcher may first read a partial file: wait
      // for the complaint about the text as written.
      const bomb = events(store, (e) => /aliases here expand/.test(messageOf(e)));
      await writeFile(path, BILLION_LAUGHS);
      expect(messageOf(await bomb)).toMatch(/flags\.yaml:\d+:\d+: the YAML aliases here expand to over 500,000 values/);
      expect((await store.load()).parsed.definitions.get('checkout')?.rollout?.percentage).toBe(10);

      const deep = events(store, (e) => /levels of nesting/.test(messageOf(e)));
      await writeFile(path, DEEP_JSON);
      expect(messageOf(await deep)).toMatch(/flags\.yaml:1:\d+: YAML syntax error: expected at most 64 levels of nesting/);
      expect((await store.load()).parsed.definitions.get('checkout')?.rollout?.percentage).toBe(10);
      await store.close();

      // A process starting on the bad file fails to initialize with the location, not a crash.
      await writeFile(path, BILLION_LAUGHS);
      const fresh = new FileFlagStore({ path, watch: false });
      await expect(fresh.load()).rejects.toThrow(FlagSourceError);
      await expect(fresh.load()).rejects.toThrow(/flags\.yaml:\d+:\d+: the YAML aliases here expand/);
    });
  });

  it('refuses flag keys and object values that use __proto__, constructor or prototype, naming where, and keeps the other flags', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'flags.json');
      await writeFile(
        path,
        '{"flags": {"__proto__": {"variants": {"a": true}, "defaultVariant": "a"},\n "theme": {"variants": {"dark": {"__proto__": {"bg": 1}}, "light": {"bg": 2}}, "defaultVariant": "light"},\n "ok": {"variants": {"a": true}, "defaultVariant": "a"}}}\n',
      );
      const snapshot = await new FileFlagStore({ path, watch: false }).load();
      expect(snapshot.parsed.definitions.has('ok')).toBe(true);
      expect(snapshot.parsed.definitions.has('theme')).toBe(false);
      expect(snapshot.flagErrors?.get('__proto__')?.[0]).toMatch(/flags\.json:1:\d+: flags\.__proto__: expected a flag key other than "__proto__", "constructor", "prototype"/);
      expect(snapshot.flagErrors?.get('theme')?.[0]).toMatch(/flags\.json:2:\d+: flags\.theme\.variants\.dark\.__proto__: expected a key other than/);
      const yamlPath = join(dir, 'flags.yaml');
      await writeFile(yamlPath, 'flags:\n  constructor:\n    variants: { a: true }\n    defaultVariant: a\n');
      const yamlSnapshot = await new FileFlagStore({ path: yamlPath, watch: false }).load();
      expect(yamlSnapshot.flagErrors?.get('constructor')?.[0]).toMatch(/flags\.yaml:3:\d+: flags\.constructor: expected a flag key other than/);
    });
  });

  it(`refuses a file over ${FLAG_TEXT_LIMITS.maxBytes / 1024 / 1024} MB with a clear error, and validate refuses a 50 MB file at once`, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'flags.yaml');
      const filler = `# ${'x'.repeat(1_000)}\n`;
      await writeFile(path, GOOD + filler.repeat(Math.ceil((50 * 1024 * 1024) / filler.length)));
      const store = new FileFlagStore({ path, watch: false });
      await expect(store.load()).rejects.toThrow(/flags\.yaml: the file is 50\.0 MB, over the limit of 8\.0 MB for a flag file; split it/);
      const run = io(dir);
      const heapBefore = process.memoryUsage().heapUsed;
      expect(await runCli(['validate', path], run.io)).toBe(1);
      expect(run.out.stderr).toMatch(/flags\.yaml: the file is 50\.0 MB, over the limit of 8\.0 MB/);
      expect(run.out.stderr).not.toMatch(/unexpected failure|\n\s+at /);
      // Refused without being parsed: the heap grew by the text alone, not by a document tree.
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(400 * 1024 * 1024);
    });
  });

  it('after a bad edit is reverted to byte-identical content, watchers hear the good flags again', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'flags.yaml');
      await writeFile(path, GOOD);
      const store = new FileFlagStore({ path, debounceMs: 1 });
      await store.load();
      const bad = events(store, (e) => e.type === 'invalid');
      await writeFile(path, 'flags: [');
      await bad;
      const good = events(store, (e) => e.type === 'change');
      await writeFile(path, GOOD);
      const event = await good;
      expect(event.type === 'change' && event.snapshot.parsed.definitions.get('checkout')?.rollout?.percentage).toBe(10);
      await store.close();
    });
  });
});

describe('a Redis definitions key edited by hand into something hostile', () => {
  let redis: RedisServer;
  let raw: Redis;
  const opened: RedisFlagStore[] = [];
  beforeAll(async () => {
    redis = await RedisServer.start();
    raw = new Redis({ host: '127.0.0.1', port: redis.port });
  }, 20_000);
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    raw?.disconnect();
    await redis?.dispose();
  });

  it('refuses 20,000-deep JSON (that flag only), alias-bomb YAML and reserved keys with a located error; every watcher keeps serving', async () => {
    const s = new RedisFlagStore({ url: redis.url('hostile'), resyncMs: 50 });
    opened.push(s);
    await s.write({ actor: 'a', reason: 'seed', action: 'seed', changes: [{ flagKey: 'checkout', definitionEdits: [{ path: [], value: { variants: { on: true, off: false }, defaultVariant: 'off' } }] }] });
    await s.load();
    const hostile: [string, RegExp][] = [
      [DEEP_JSON.replace('{"flags":{', '{"flags":{"checkout":{"variants":{"on":true,"off":false},"defaultVariant":"off"},'), /hostile:definitions: flags\.deep\.variants\.a(\[0\])+: expected at most 64 levels of nesting/],
      [BILLION_LAUGHS, /hostile:definitions:\d+:\d+: the YAML aliases here expand to over/],
      ['{"__proto__": {"x": 1}, "flags": {}}', /hostile:definitions: __proto__: expected a key other than/],
    ];
    for (const [text, expected] of hostile) {
      const heard = events(s, (e) => e.type === 'invalid' || e.type === 'change');
      await raw.multi().set('hostile:definitions', text).incr('hostile:revision').exec();
      const event = await heard;
      // A deep value inside one flag spoils that flag (PARSE_ERROR); the rest of the key is refused whole.
      expect(event.type === 'change' ? [...(event.snapshot.flagErrors?.values() ?? [])].flat().join('\n') : messageOf(event)).toMatch(expected);
      expect((await s.load()).parsed.definitions.get('checkout')?.defaultVariant).toBe('off');
    }
  });
});
