// A lock file beside the flag file so writers in separate processes take turns. The lock
// appears with its owner's pid already in it (written to a temp file, then hard-linked into
// place, which fails if the lock exists), so no one ever sees an empty lock. A lock whose
// owner is dead is broken; waiters queue behind a live one.
import { randomBytes } from 'node:crypto';
import { link, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';

export interface FileLockOptions {
  readonly timeoutMs?: number;
  readonly staleMs?: number;
}

export class LockTimeoutError extends Error {
  override readonly name = 'LockTimeoutError';
}

/** Whether a process with this pid runs on this machine (EPERM: it does, as another user). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What a lock file says of its owner: `<pid>@<host>` (older locks hold the pid alone). */
function ownerOf(text: string): { pid: number; host: string | undefined } {
  const [pid = '', host] = text.trim().split('@');
  return { pid: Number.parseInt(pid, 10), host };
}

/** One lock as first seen by this waiter: the same file, unchanged, watched on our own clock. */
interface Sighting {
  readonly ino: number;
  readonly mtimeMs: number;
  readonly text: string;
  readonly sinceMs: number;
}

/**
 * Breaks the lock when its owner is dead (a process on this machine that is gone), or when
 * an owner on another machine has held the same lock unchanged for `staleMs` as measured by
 * our own monotonic clock. Never by comparing the lock's timestamps with our clock: a writer
 * whose clock runs ahead must not break the lock of a live one.
 */
async function breakIfStale(lockPath: string, staleMs: number, seen: { last?: Sighting }): Promise<boolean> {
  try {
    const info = await stat(lockPath);
    const text = await readFile(lockPath, 'utf8');
    const owner = ownerOf(text);
    const local = owner.host === undefined || owner.host === hostname();
    const same = seen.last !== undefined && seen.last.ino === info.ino && seen.last.mtimeMs === info.mtimeMs && seen.last.text === text;
    if (!same) seen.last = { ino: info.ino, mtimeMs: info.mtimeMs, text, sinceMs: performance.now() };
    const stale = local ? !processAlive(owner.pid) : performance.now() - (seen.last as Sighting).sinceMs > staleMs;
    if (!stale) return false;
    // Move it aside, then make sure what moved is the lock judged stale, not a fresh one.
    const aside = `${lockPath}.stale-${randomBytes(4).toString('hex')}`;
    await rename(lockPath, aside);
    const moved = await stat(aside);
    if (moved.ino !== info.ino) await link(aside, lockPath).catch(() => undefined);
    await unlink(aside);
    return moved.ino === info.ino;
  } catch {
    // Gone already, or taken meanwhile: try again.
    return false;
  }
}

async function tryAcquire(lockPath: string): Promise<boolean> {
  const tmp = `${lockPath}.${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, `${process.pid}@${hostname()}`);
  try {
    await link(tmp, lockPath);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Runs `fn` while holding the lock at `lockPath`. */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const staleMs = options.staleMs ?? 30_000;
  // Durations on our own monotonic clock: the wall clock may jump, or differ from a writer's.
  const started = performance.now();
  const seen: { last?: Sighting } = {};
  let waitMs = 2;
  while (!(await tryAcquire(lockPath))) {
    // A dead owner's lock is broken and taken at once, even with no time to wait.
    if (await breakIfStale(lockPath, staleMs, seen)) continue;
    if (performance.now() - started > timeoutMs) {
      throw new LockTimeoutError(`another writer holds ${lockPath} (waited ${timeoutMs} ms); if no writer is running, delete that file`);
    }
    // Waiting on another writer, with jitter so writers do not march in step.
    await delay(waitMs + Math.floor(Math.random() * waitMs));
    waitMs = Math.min(waitMs * 2, 50);
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => undefined);
  }
}
