import { execFile } from 'node:child_process';
import { readFile, readdir, stat, writeFile, chmod, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { FileFlagStore, resolveFlagsPath } from '../../src/stores/file-store.js';
import { InvalidWriteError, RevisionConflictError, FlagSourceError } from '../../src/stores/flag-store.js';
import type { StoreEvent } from '../../src/stores/flag-store.js';
import { StoreWriter, UnknownFlagError } from '../../src/stores/store-writer.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { withTempDir } from '../helpers/temp-dir.js';
import { nextEvent } from '../helpers/events.js';

const run = promisify(execFile);

const FLAGS_YAML = `# Checkout flags, owned by the payments team.
flags:
  # The new flow; see RFC-12.
  new-checkout:
    variants: { on: true, off: false }
    defaultVariant: off   # baseline
    rollout:
      variant: on
      percentage: 10      # start small
  color:
    defaultVariant: blue
    variants:
      blue: "#00f"
      red: "#f00"
`;

const by = { actor: 'alice', reason: 'testing' };

function eventsOf(store: FileFlagStore, accept: (e: StoreEvent) => boolean): Promise<StoreEvent> {
  return nextEvent<StoreEvent>((listener) => store.watch(listener), accept);
}

async function fixture(dir: string, text = FLAGS_YAML, name = 'flags.yaml'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

describe('FileFlagStore', () => {
  it('reads YAML and JSON flag files', async () => {
    await withTempDir(async (dir) => {
      const yamlStore = new FileFlagStore({ path: await fixture(dir), watch: false });
      const json = JSON.stringify({ flags: { x: { variants: { a: 1, b: 2 }, defaultVariant: 'b' } } }, null, 2);
      const jsonStore = new FileFlagStore({ path: await fixture(dir, json, 'flags.json'), watch: false });
      const fromYaml = await yamlStore.load();
      const fromJson = await jsonStore.load();
      expect(fromYaml.parsed.definitions.get('new-checkout')?.rollout).toEqual({ variant: 'on', percentage: 10 });
      expect(fromJson.parsed.definitions.get('x')?.variants).toEqual({ a: 1, b: 2 });
      expect(fromYaml.parsed.definitions.has('emergency_shutdown')).toBe(true);
    });
  });

  it('takes its path from the option, else ROLLOUT_GUARDIAN_FLAGS, else flags.yaml', () => {
    expect(resolveFlagsPath('/a/b.yaml', { ROLLOUT_GUARDIAN_FLAGS: '/c/d.yaml' })).toBe('/a/b.yaml');
    expect(resolveFlagsPath(undefined, { ROLLOUT_GUARDIAN_FLAGS: '/c/d.yaml' })).toBe('/c/d.yaml');
    expect(resolveFlagsPath(undefined, {})).toBe(join(process.cwd(), 'flags.yaml'));
    expect(new FileFlagStore({ env: { ROLLOUT_GUARDIAN_FLAGS: '/e/f.yml' } }).statePath).toBe('/e/f.state.json');
  });

  it('says how to fix a missing flag file', async () => {
    await withTempDir(async (dir) => {
      const store = new FileFlagStore({ path: join(dir, 'nope.yaml'), watch: false });
      await expect(store.load()).rejects.toThrow(/nope\.yaml does not exist; create it, pass --store <path>, or set ROLLOUT_GUARDIAN_FLAGS/);
    });
  });

  it('reloads when the file changes and hands listeners the new flags', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      const store = new FileFlagStore({ path });
      await store.load();
      const changed = eventsOf(store, (e) => e.type === 'change');
      await writeFile(path, FLAGS_YAML.replace('percentage: 10', 'percentage: 20'));
      const event = await changed;
      expect(event.type === 'change' && event.snapshot.parsed.definitions.get('new-checkout')?.rollout?.percentage).toBe(20);
      await store.close();
    });
  });

  it('reports a flag whose definition turned bad, by file, line, field and expectation, and keeps the others', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      const store = new FileFlagStore({ path });
      await store.load();
      const changed = eventsOf(store, (e) => e.type === 'change');
      await writeFile(path, FLAGS_YAML.replace('percentage: 10', 'percentage: 150').replace('defaultVariant: off', 'defaultVariant: off\n    state: sideways'));
      const event = await changed;
      const snapshot = event.type === 'change' ? event.snapshot : await store.load();
      const errors = snapshot.flagErrors?.get('new-checkout')?.join('\n') ?? '';
      expect(errors).toContain(`${path}:10:19: flags.new-checkout.rollout.percentage: expected a percentage from 0 to 100, got 150`);
      expect(errors).toContain(`${path}:7:12: flags.new-checkout.state: expected enabled or disabled, got "sideways"`);
      expect(snapshot.parsed.invalid.has('new-checkout')).toBe(true);
      expect(snapshot.parsed.definitions.has('color')).toBe(true);
      await store.close();
    });
  });

  it('serves the last good snapshot while the file is not valid YAML, and recovers when fixed', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      const store = new FileFlagStore({ path });
      const good = await store.load();
      // A watcher may first read the file half-written (writeFile truncates first): wait for the
      // complaint about the text as written.
      const invalid = eventsOf(store, (e) => e.type === 'invalid' && /YAML syntax error/.test(e.message));
      await writeFile(path, 'flags:\n  new-checkout: [unclosed\n');
      const event = await invalid;
      expect(event.type === 'invalid' && event.message).toMatch(new RegExp(`${path.replace(/[.]/g, '\\.')}:\\d+:\\d+: YAML syntax error`));
      expect(event.type === 'invalid' && event.message).toContain('the last good flags keep serving');
      // The last good flags, at the revision the files have now, so a rollback meanwhile lands.
      expect((await store.load()).parsed.definitions.get('new-checkout')).toEqual(good.parsed.definitions.get('new-checkout'));

      const recovered = eventsOf(store, (e) => e.type === 'change');
      await writeFile(path, FLAGS_YAML.replace('percentage: 10', 'percentage: 30'));
      const change = await recovered;
      expect(change.type === 'change' && change.snapshot.parsed.definitions.get('new-checkout')?.rollout?.percentage).toBe(30);
      await store.close();
    });
  });

  it('refuses to start on a file that is invalid as a whole, naming the field', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir, 'flagz:\n  a: {}\n');
      const store = new FileFlagStore({ path, watch: false });
      const error = await store.load().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FlagSourceError);
      expect(String(error)).toContain(`${path}:1:1: (top level): unknown field "flagz"`);
      expect(String(error)).toContain('flags: expected a map of flag keys to flag definitions (the field is missing)');
    });
  });

  it('keeps runtime state beside the flag file and never rewrites the YAML for it', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      const clock = new FakeClock(Date.parse('2026-11-27T10:00:00Z'));
      const store = new FileFlagStore({ path, watch: false, clock });
      const writer = new StoreWriter(store, clock);
      await writer.override('new-checkout', 'on', by);
      await writer.rollback('color', { actor: 'guardian', reason: 'error rate 4.2% > 1%' }, { errorRate: 0.042 });
      expect(await readFile(path, 'utf8')).toBe(FLAGS_YAML);
      const state = JSON.parse(await readFile(join(dir, 'flags.state.json'), 'utf8')) as { flags: Record<string, unknown> };
      expect(state.flags['new-checkout']).toEqual({ override: { variant: 'on', actor: 'alice', reason: 'testing', at: '2026-11-27T10:00:00.000Z' } });
      expect(state.flags.color).toMatchObject({ rollback: { actor: 'guardian', evidence: { errorRate: 0.042 } } });
      expect((await store.load()).state.get('new-checkout')?.override?.variant).toBe('on');
    });
  });

  it('edits a definition in place, keeping comments and key order', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      const store = new FileFlagStore({ path, watch: false });
      await new StoreWriter(store).setDefinition('new-checkout', ['rollout', 'percentage'], 25, by);
      expect(await readFile(path, 'utf8')).toBe(FLAGS_YAML.replace('percentage: 10', 'percentage: 25'));
      await new StoreWriter(store).setDefinition('color', ['variants', 'green'], '#0f0', by);
      const text = await readFile(path, 'utf8');
      expect(text).toContain('# The new flow; see RFC-12.');
      expect(text.indexOf('defaultVariant: blue')).toBeLessThan(text.indexOf('green'));
    });
  });

  it('keeps JSON files JSON, with their key order and indentation', async () => {
    await withTempDir(async (dir) => {
      const json = `{\n    "flags": {\n        "x": {\n            "variants": { "b": 2, "a": 1 },\n            "defaultVariant": "b"\n        }\n    }\n}\n`;
      const path = await fixture(dir, json, 'flags.json');
      const store = new FileFlagStore({ path, watch: false });
      await new StoreWriter(store).setDefinition('x', ['description'], 'numbers', by);
      const text = await readFile(path, 'utf8');
      expect(JSON.parse(text)).toEqual({ flags: { x: { variants: { b: 2, a: 1 }, defaultVariant: 'b', description: 'numbers' } } });
      expect(Object.keys((JSON.parse(text) as { flags: { x: { variants: object } } }).flags.x.variants)).toEqual(['b', 'a']);
      expect(text).toContain('\n    "flags"');
    });
  });

  it('refuses an edit that would make a flag invalid and leaves the file as it was', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      const store = new FileFlagStore({ path, watch: false });
      const writer = new StoreWriter(store);
      await expect(writer.setDefinition('new-checkout', ['rollout', 'percentage'], 101, by)).rejects.toThrow(
        /would make flag "new-checkout" invalid: flags\.new-checkout\.rollout\.percentage: expected a percentage from 0 to 100, got 101/,
      );
      await expect(writer.override('new-checkout', 'maybe', by)).rejects.toThrow(/has no variant "maybe"; expected one of: on, off/);
      await expect(writer.override('new-chekout', 'on', by)).rejects.toThrow(UnknownFlagError);
      await expect(writer.override('new-chekout', 'on', by)).rejects.toThrow(/did you mean "new-checkout"/);
      expect(await readFile(path, 'utf8')).toBe(FLAGS_YAML);
      expect(await store.audit()).toEqual([]);
    });
  });

  it('refuses a write whose expected revision is stale, changing nothing', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      const store = new FileFlagStore({ path, watch: false });
      const before = await store.load();
      await new StoreWriter(store).override('color', 'red', by);
      const stale = store.write({ ...by, action: 'override', expectedRevision: before.revision, changes: [{ flagKey: 'color', state: null }] });
      await expect(stale).rejects.toBeInstanceOf(RevisionConflictError);
      expect((await store.load()).state.get('color')?.override?.variant).toBe('red');
      expect(await store.audit()).toHaveLength(1);
    });
  });

  it('records every write in the audit log with time, actor, reason, before, after and revision', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      const clock = new FakeClock(Date.parse('2026-11-27T10:00:00Z'));
      const store = new FileFlagStore({ path, watch: false, clock });
      const writer = new StoreWriter(store, clock);
      await writer.override('color', 'red', by);
      clock.advance(60_000);
      const result = await writer.setDefinition('new-checkout', ['rollout', 'percentage'], 50, { actor: 'bob', reason: 'ramp' });
      const entries = await store.audit();
      expect(entries).toHaveLength(2);
      expect(entries[0]).toMatchObject({ time: '2026-11-27T10:00:00.000Z', actor: 'alice', reason: 'testing', action: 'override', flagKey: 'color' });
      expect(entries[0]?.before.state).toBeNull();
      expect(entries[0]?.after.state?.override?.variant).toBe('red');
      expect(entries[1]).toMatchObject({ time: '2026-11-27T10:01:00.000Z', actor: 'bob', action: 'set', flagKey: 'new-checkout', revision: result.revision });
      expect(entries[1]?.before.definition).toMatchObject({ rollout: { percentage: 10 } });
      expect(entries[1]?.after.definition).toMatchObject({ rollout: { percentage: 50 } });
      expect(await store.audit({ flagKey: 'color' })).toHaveLength(1);
      expect(await store.audit({ limit: 1 })).toEqual([entries[1]]);
      expect(await readFile(join(dir, 'flags.audit.jsonl'), 'utf8')).toMatch(/^\{.*\}\n\{.*\}\n$/);
    });
  });

  it('replaces files atomically: a concurrent reader only ever sees whole files, and no temp file is left', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      await chmod(path, 0o640);
      const store = new FileFlagStore({ path, watch: false });
      const writer = new StoreWriter(store);
      let writing = true;
      let reads = 0;
      const reader = (async () => {
        while (writing) {
          const text = await readFile(path, 'utf8');
          expect(text.startsWith('# Checkout flags') && text.trimEnd().endsWith('"#f00"')).toBe(true);
          const state = await readFile(join(dir, 'flags.state.json'), 'utf8').catch(() => '{}');
          expect(() => JSON.parse(state) as unknown).not.toThrow();
          reads++;
        }
      })();
      for (let i = 0; i < 40; i++) {
        await writer.setDefinition('new-checkout', ['rollout', 'percentage'], i, by);
        await writer.override('color', i % 2 === 0 ? 'red' : 'blue', by);
      }
      writing = false;
      await reader;
      expect(reads).toBeGreaterThan(0);
      expect((await readdir(dir)).sort()).toEqual(['flags.audit.jsonl', 'flags.state.json', 'flags.yaml']);
      expect((await stat(path)).mode & 0o777).toBe(0o640);
    });
  });

  it('loses no write when writers in several processes and in this one race on one flag', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      const helper = new URL('../helpers/concurrent-writer.ts', import.meta.url).pathname;
      const processes = Array.from({ length: 4 }, (_, i) => run(process.execPath, ['--import', 'tsx', helper, path, `proc-${i}`, '5', 'new-checkout']));
      const local = Array.from({ length: 6 }, (_, i) => {
        const store = new FileFlagStore({ path, watch: false });
        const writer = new StoreWriter(store, undefined, 1_000);
        return (async () => {
          for (let n = 0; n < 5; n++) await writer.setPercentage('new-checkout', n + 1, { actor: `local-${i}`, reason: `write ${n}` });
        })();
      });
      await Promise.all([...processes, ...local]);
      const entries = await new FileFlagStore({ path, watch: false }).audit();
      expect(entries).toHaveLength(50);
      expect(new Set(entries.map((e) => e.revision)).size).toBe(50);
      // A linear history: each write saw exactly the state the previous one left.
      for (let i = 1; i < entries.length; i++) expect(entries[i]?.before.state).toEqual(entries[i - 1]?.after.state);
      const last = entries.at(-1);
      expect((await new FileFlagStore({ path, watch: false }).load()).state.get('new-checkout')).toEqual(last?.after.state);
    });
  }, 30_000);

  it('rejects writes without an actor or a reason', async () => {
    await withTempDir(async (dir) => {
      const store = new FileFlagStore({ path: await fixture(dir), watch: false });
      await expect(store.write({ actor: ' ', reason: 'x', action: 'set', changes: [] })).rejects.toBeInstanceOf(InvalidWriteError);
      await expect(store.write({ actor: 'a', reason: '', action: 'set', changes: [] })).rejects.toThrow(/needs a reason/);
    });
  });

  it('tells listeners when the file disappears and when it is back', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      const store = new FileFlagStore({ path });
      await store.load();
      const gone = eventsOf(store, (e) => e.type === 'unavailable');
      await unlink(path);
      expect((await gone).type).toBe('unavailable');
      const back = eventsOf(store, (e) => e.type === 'available');
      await writeFile(path, FLAGS_YAML);
      expect((await back).type).toBe('available');
      await store.close();
      await store.close();
      expect(() => store.watch(() => undefined)).toThrow(/closed/);
    });
  });
});

/** `count` flags as YAML; flag-3's percentage is `pct3` (over 100 makes that one flag invalid). */
function manyFlagsYaml(count: number, pct3 = 30): string {
  const parts = ['flags:\n'];
  for (let i = 0; i < count; i++) {
    parts.push(`  flag-${i}:\n    variants: { on: true, off: false }\n    defaultVariant: off\n    rollout: { variant: on, percentage: ${i === 3 ? pct3 : i % 100} }\n`);
    parts.push(`    targeting:\n      - when: { attribute: region, in: [eu-west-1] }\n        variant: on\n`);
  }
  return parts.join('');
}

function manyFlagsJson(count: number, pct3 = 30): string {
  const flags: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) {
    flags[`flag-${i}`] = { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: i === 3 ? pct3 : i % 100 }, targeting: [{ when: { attribute: 'region', in: ['eu-west-1'] }, variant: 'on' }] };
  }
  return `${JSON.stringify({ flags }, null, 2)}\n`;
}

/** Every event the store emits, in order. */
function recorded(store: FileFlagStore): StoreEvent[] {
  const events: StoreEvent[] = [];
  store.watch((event) => events.push(event));
  return events;
}

describe('FileFlagStore reading large files in a worker thread', () => {
  it('reloads YAML and JSON through the worker to the same flags, revisions and located errors as on the main thread', async () => {
    await withTempDir(async (dir) => {
      for (const [name, text] of [
        ['flags.yaml', manyFlagsYaml],
        ['flags.json', manyFlagsJson],
      ] as const) {
        const path = await fixture(dir, text(300), name);
        const inWorker = new FileFlagStore({ path, watch: false, workerThresholdBytes: 0 });
        const onMain = new FileFlagStore({ path, watch: false, workerThresholdBytes: Number.POSITIVE_INFINITY });
        expect(await inWorker.load()).toEqual(await onMain.load());
        const fromWorker = recorded(inWorker);
        const fromMain = recorded(onMain);

        // One flag turns bad: the others change, that one is reported by file, line, field and expectation.
        await writeFile(path, text(300, 150));
        await inWorker.reload();
        await onMain.reload();
        expect(fromWorker).toEqual(fromMain);
        const changed = fromWorker[0];
        expect(changed?.type).toBe('change');
        const snapshot = changed?.type === 'change' ? changed.snapshot : undefined;
        expect(snapshot?.parsed.definitions.has('flag-299')).toBe(true);
        expect(snapshot?.flagErrors?.get('flag-3')?.join('\n')).toMatch(new RegExp(`${path.replace(/[.]/g, '\\.')}:\\d+:\\d+: flags\\.flag-3\\.rollout\\.percentage: expected a percentage from 0 to 100, got 150`));

        // The file turns unreadable as a whole: refused with the same located error, the last good flags serving.
        await writeFile(path, `${text(300)}\n]]] not ${name.endsWith('.json') ? 'JSON' : 'YAML'}`);
        await inWorker.reload();
        await onMain.reload();
        expect(fromWorker).toEqual(fromMain);
        const invalid = fromWorker[1];
        expect(invalid?.type === 'invalid' && invalid.message).toMatch(new RegExp(`the last good flags keep serving:\\n  ${path.replace(/[.]/g, '\\.')}:\\d+:\\d+: (YAML|JSON) syntax error`));
        const serving = await inWorker.load();
        expect(serving.parsed.definitions.get('flag-1')).toEqual(snapshot?.parsed.definitions.get('flag-1'));
        expect(serving.problem).toMatch(/is invalid; the last good flags keep serving/);
        expect(serving).toEqual(await onMain.load());
        await inWorker.close();
        await onMain.close();
      }
    });
  });

  it('refuses a billion-laughs file and 20,000 nested brackets through the worker with the main thread’s located errors, and keeps serving', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir, manyFlagsYaml(100));
      const inWorker = new FileFlagStore({ path, watch: false, workerThresholdBytes: 0 });
      const onMain = new FileFlagStore({ path, watch: false, workerThresholdBytes: Number.POSITIVE_INFINITY });
      const good = await inWorker.load();
      await onMain.load();
      const fromWorker = recorded(inWorker);
      const fromMain = recorded(onMain);
      const laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]', ...'bcdefghi'.split('').map((c, i) => `${c}: &${c} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`)].join('\n');
      for (const hostile of [`${laughs}\n`, `{"flags":{"deep":{"variants":{"a":${'['.repeat(20_000)}${']'.repeat(20_000)}},"defaultVariant":"a"}}}`]) {
        await writeFile(path, hostile);
        await inWorker.reload();
        await onMain.reload();
      }
      expect(fromWorker).toEqual(fromMain);
      expect(fromWorker.map((e) => (e.type === 'invalid' ? e.message.split('\n')[1] : e.type))).toEqual([
        expect.stringMatching(/flags\.yaml:\d+:\d+: the YAML aliases here expand to over 500,000 values/),
        expect.stringMatching(/flags\.yaml:1:\d+: YAML syntax error: expected at most 64 levels of nesting/),
      ]);
      expect((await inWorker.load()).parsed.definitions).toEqual(good.parsed.definitions);
      await inWorker.close();
      await onMain.close();
    });
  });

  it('starts one worker thread per store and reuses it, and close() ends it', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir, manyFlagsYaml(300));
      const small = new FileFlagStore({ path: await fixture(dir, FLAGS_YAML, 'small.yaml'), watch: false });
      const store = new FileFlagStore({ path, watch: false });
      expect(store.workerThreadId).toBeUndefined();
      await store.load();
      const thread = store.workerThreadId;
      expect(thread).toBeGreaterThan(0);
      await writeFile(path, manyFlagsYaml(300, 40));
      await store.reload();
      expect(store.workerThreadId).toBe(thread);
      expect((await store.load()).parsed.definitions.get('flag-3')?.rollout?.percentage).toBe(40);
      // The default threshold (32 KiB): this file is over it; a small one is read on the main thread.
      await small.load();
      expect(small.workerThreadId).toBeUndefined();
      await store.close();
      expect(store.workerThreadId).toBeUndefined();
    });
  });
});

describe('FileFlagStore when its worker thread fails', () => {
  it('reports a worker that takes too long as an invalid file, located, and keeps serving the last good flags', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir, manyFlagsYaml(300));
      const good = await new FileFlagStore({ path, watch: false }).load();
      // No thread starts and parses a file within 1 ms: every read through it times out.
      const store = new FileFlagStore({ path, watch: false, workerThresholdBytes: 0, workerTimeoutMs: 1 });
      await expect(store.load()).rejects.toThrow(new RegExp(`${path.replace(/[.]/g, '\\.')}: reading the file took over 1 ms and was stopped`));
      const events = recorded(store);
      await store.reload();
      expect(events.map((e) => e.type)).toEqual(['invalid']);
      expect(events[0]?.type === 'invalid' && events[0].message).toMatch(/flags\.yaml: reading the file took over 1 ms and was stopped; the last good flags keep serving/);
      expect(good.parsed.definitions.size).toBe(303);
      await store.close();
      await store.reload();
      expect(events).toHaveLength(1);
    });
  });
});
