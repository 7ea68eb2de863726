// The file store under faults, on the real file system: an audit log that cannot be written
// or a full disk leaves the change not applied and the CLI says so; a write cut off leaves a
// journal the next open undoes; leftovers of dead writers are removed; writers queue on the
// lock, and a lock is never broken because clocks disagree; symlinks and a corrupt state file.
import { execFile, spawn } from 'node:child_process';
import { link, lstat, mkdir, open, readFile, readdir, readlink, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { OpenFeature, ProviderEvents } from '@openfeature/server-sdk';
import { describe, expect, it } from 'vitest';
import { RolloutProvider } from '../../src/provider/rollout-provider.js';
import { FileFlagStore } from '../../src/stores/file-store.js';
import { type StoreEvent, FlagSourceError } from '../../src/stores/flag-store.js';
import { LockTimeoutError, withFileLock } from '../../src/stores/file-lock.js';
import { StoreWriter } from '../../src/stores/store-writer.js';
import { nextEvent } from '../helpers/events.js';
import { cliRun } from '../helpers/in-process-cli.js';
import { withTempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);

const FLAGS = `flags:
  checkout:
    variants: { on: true, off: false }
    defaultVariant: off
    rollout: { variant: on, percentage: 10 }
`;
const by = { actor: 'alice', reason: 'test' };

async function fixture(dir: string): Promise<string> {
  const path = join(dir, 'flags.yaml');
  await writeFile(path, FLAGS);
  return path;
}

async function snapshotFiles(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    const info = await lstat(join(dir, name));
    out[name] = info.isFile() ? await readFile(join(dir, name), 'utf8') : info.isDirectory() ? '<dir>' : `-> ${await readlink(join(dir, name))}`;
  }
  return out;
}

describe('a change and its audit entry land together or not at all', () => {
  it('an audit log that cannot be written leaves the change not applied, and the CLI says so in one line', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      await new StoreWriter(new FileFlagStore({ path, watch: false })).override('checkout', 'off', by);
      const store = new FileFlagStore({ path, watch: false });
      // A directory where the audit log should be: no process, root included, can append to it.
      await writeFile(join(dir, 'moved.jsonl'), await readFile(store.auditPath, 'utf8'));
      await rm(store.auditPath);
      await mkdir(store.auditPath);
      const before = await snapshotFiles(dir);
      const result = await cliRun(['flags', 'override', 'checkout', 'on', '--store', path, '--reason', 'incident'], { cwd: dir });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^error: cannot write the audit log .*flags\.audit\.jsonl \(EISDIR.*\), so the change was not applied; nothing changed\n$/);
      expect(await snapshotFiles(dir)).toEqual(before);
    });
  });

  it('a full disk while the audit entry is written undoes the change: files as before, no entry, no temp file', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      await new StoreWriter(new FileFlagStore({ path, watch: false })).override('checkout', 'off', by);
      const store = new FileFlagStore({ path, watch: false });
      const stateBefore = await readFile(store.statePath, 'utf8');
      await rm(store.auditPath);
      // /dev/full accepts the open and fails every write with ENOSPC, as a full disk does.
      await symlink('/dev/full', store.auditPath);
      const before = await snapshotFiles(dir);
      const set = await cliRun(['flags', 'set', 'checkout', 'rollout.percentage', '50', '--store', path, '--reason', 'ramp'], { cwd: dir });
      expect(set.code).toBe(1);
      expect(set.stderr).toMatch(/^error: the write failed \(ENOSPC: no space left on device.*\), so the change was undone and not applied; no audit entry was written\n$/);
      expect(await snapshotFiles(dir)).toEqual(before);
      expect(await readFile(store.statePath, 'utf8')).toBe(stateBefore);
    });
  });

  it('the next write removes the temp and lock files that writers killed mid-write left behind', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      const store = new FileFlagStore({ path, watch: false });
      await new StoreWriter(store).override('checkout', 'off', by);
      const clean = Object.keys(await snapshotFiles(dir));
      // Named as a write and a lock attempt of pid 999999 (not running) name theirs.
      await writeFile(join(dir, '.flags.yaml.999999.deadbeef.tmp'), 'half a file');
      await writeFile(join(dir, '.flags.state.json.999999.deadbeef.tmp'), '{"vers');
      await writeFile(join(dir, 'flags.yaml.lock.999999-deadbeef'), '999999');
      await new StoreWriter(store).override('checkout', 'on', by);
      expect(Object.keys(await snapshotFiles(dir))).toEqual(clean);
    });
  });
});

describe('writers on one machine', () => {
  it('10 writer processes that never retry a conflict all succeed: they queue on the lock', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      const helper = new URL('../helpers/concurrent-writer.ts', import.meta.url).pathname;
      const outcomes = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => run(process.execPath, ['--import', 'tsx', helper, path, `w${i}`, '3', 'checkout', '1'])));
      expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
      const entries = await new FileFlagStore({ path, watch: false }).audit();
      expect(entries).toHaveLength(30);
      for (let i = 1; i < entries.length; i++) expect(entries[i]?.before.state).toEqual(entries[i - 1]?.after.state);
    });
  }, 60_000);

  it('never breaks a live writer\'s lock because its timestamps look old (a clock ahead of the writer\'s); breaks a dead one\'s', async () => {
    await withTempDir(async (dir) => {
      const lockPath = join(dir, 'flags.yaml.lock');
      const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
      try {
        await writeFile(lockPath, `${holder.pid}`);
        // Ten minutes old by our clock: what a waiter whose clock runs ahead would see.
        const past = new Date(Date.now() - 10 * 60_000);
        await utimes(lockPath, past, past);
        await expect(withFileLock(lockPath, () => Promise.resolve('taken'), { timeoutMs: 200, staleMs: 50 })).rejects.toBeInstanceOf(LockTimeoutError);
      } finally {
        holder.kill('SIGKILL');
        await new Promise((resolve) => holder.once('exit', resolve));
      }
      // The holder is gone: its lock is broken at once.
      await expect(withFileLock(lockPath, () => Promise.resolve('taken'), { timeoutMs: 2_000 })).resolves.toBe('taken');
    });
  }, 10_000);
});

describe('symlinks and a corrupt state file', () => {
  it('a write to a symlinked flag file updates the file it points to, and the link stays a link', async () => {
    await withTempDir(async (dir) => {
      await mkdir(join(dir, 'real'));
      const target = await fixture(join(dir, 'real'));
      const link = join(dir, 'flags.yaml');
      await symlink(target, link);
      const result = await cliRun(['flags', 'set', 'checkout', 'rollout.percentage', '25', '--store', link, '--reason', 'ramp'], { cwd: dir });
      expect(result.code).toBe(0);
      expect((await lstat(link)).isSymbolicLink()).toBe(true);
      expect(await readFile(target, 'utf8')).toContain('percentage: 25');
    });
  });

  it('with the state file corrupted by hand, a running process still lands a rollback and a new one fails to start with the place', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      const serving = new FileFlagStore({ path, watch: false });
      const writer = new StoreWriter(serving);
      await writer.override('checkout', 'on', by);
      await serving.load();
      await writeFile(serving.statePath, '{"version": 1, "flags": {\n  "checkout": {oops}\n}}\n');
      const fresh = new FileFlagStore({ path, watch: false });
      const error = await fresh.load().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FlagSourceError);
      expect((error as Error).message).toMatch(/flags\.state\.json:2:\d+: not valid JSON/);
      await writer.rollback('checkout', { actor: 'guardian', reason: 'p99 breach' });
      const state = (await new FileFlagStore({ path, watch: false }).load()).state.get('checkout');
      expect(state?.rollback?.actor).toBe('guardian');
      expect(state?.override?.variant).toBe('on');
      expect(await readFile(`${serving.statePath}.corrupt`, 'utf8')).toContain('{oops}');
    });
  });
});

describe('following a flag file that changes under a watcher', () => {
  it('picks up a Kubernetes ConfigMap update: an atomic swap of the ..data symlink', async () => {
    await withTempDir(async (dir) => {
      // The layout the kubelet makes: flags.yaml -> ..data/flags.yaml, ..data -> ..<timestamp>/
      await mkdir(join(dir, '..2026_11_30_01'));
      await writeFile(join(dir, '..2026_11_30_01', 'flags.yaml'), FLAGS);
      await symlink('..2026_11_30_01', join(dir, '..data'));
      await symlink('..data/flags.yaml', join(dir, 'flags.yaml'));
      const store = new FileFlagStore({ path: join(dir, 'flags.yaml'), debounceMs: 1 });
      expect((await store.load()).parsed.definitions.get('checkout')?.rollout?.percentage).toBe(10);
      const changed = nextEvent<StoreEvent>((l) => store.watch(l), (e) => e.type === 'change');
      await mkdir(join(dir, '..2026_11_30_02'));
      await writeFile(join(dir, '..2026_11_30_02', 'flags.yaml'), FLAGS.replace('percentage: 10', 'percentage: 100'));
      await symlink('..2026_11_30_02', join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
      const event = await changed;
      expect(event.type === 'change' && event.snapshot.parsed.definitions.get('checkout')?.rollout?.percentage).toBe(100);
      await store.close();
    });
  });

  it('re-reads now and then, so a change that raised no event (an edit through a hard link elsewhere) is still picked up', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      await mkdir(join(dir, 'elsewhere'));
      const other = join(dir, 'elsewhere', 'same-file.yaml');
      await link(path, other);
      const store = new FileFlagStore({ path, debounceMs: 1, resyncMs: 20 });
      await store.load();
      const changed = nextEvent<StoreEvent>((l) => store.watch(l), (e) => e.type === 'change');
      // Written in place through the other name: the flag file's folder hears nothing.
      const handle = await open(other, 'r+');
      await handle.write(FLAGS.replace('percentage: 10', 'percentage: 55'), 0);
      await handle.close();
      const event = await changed;
      expect(event.type === 'change' && event.snapshot.parsed.definitions.get('checkout')?.rollout?.percentage).toBe(55);
      await store.close();
    });
  });

  it('a provider in ERROR after a bad edit is READY again when the edit is reverted to the very same bytes', async () => {
    await withTempDir(async (dir) => {
      const path = await fixture(dir);
      const provider = new RolloutProvider({ store: new FileFlagStore({ path, debounceMs: 1 }), logger: { warn: () => undefined, error: () => undefined } });
      await OpenFeature.setProviderAndWait('revert', provider);
      const client = OpenFeature.getClient('revert');
      const failed = nextEvent<unknown>((l) => {
        provider.events.addHandler(ProviderEvents.Error, l);
        return () => provider.events.removeHandler(ProviderEvents.Error, l);
      });
      await writeFile(path, 'flags: [');
      await failed;
      const ready = nextEvent<unknown>((l) => {
        provider.events.addHandler(ProviderEvents.Ready, l);
        return () => provider.events.removeHandler(ProviderEvents.Ready, l);
      });
      await writeFile(path, FLAGS);
      await ready;
      expect(client.providerStatus).toBe('READY');
      await OpenFeature.close();
    });
  });
});
