// A lock file beside the flag file so writers in separate processes take turns. The lock
// appears with its owner's pid already in it (written to a temp file, then hard-linked into
// place, which fails if the lock exists), so no one ever sees an empty lock. A lock whose
// owner is dead, or older than `staleMs`, is broken.
import { randomBytes } from 'node:crypto';
import { link, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

export interface FileLockOptions {
  readonly timeoutMs?: number;
  readonly staleMs?: number;
}

export class LockTimeoutError extends Error {
  override readonly name = 'LockTimeoutError';
}

function ownerAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function breakIfStale(lockPath: string, staleMs: number): Promise<void> {
  try {
    const info = await stat(lockPath);
    const owner = Number.parseInt(await readFile(lockPath, 'utf8'), 10);
    if (ownerAlive(owner) && Date.now() - info.mtimeMs <= staleMs) return;
    // Move it aside, then make sure what moved is the lock judged stale, not a fresh one.
    const aside = `${lockPath}.stale-${randomBytes(4).toString('hex')}`;
    await rename(lockPath, aside);
    const moved = await stat(aside);
    if (moved.ino !== info.ino) await link(aside, lockPath).catch(() => undefined);
    await unlink(aside);
  } catch {
    // Gone already, or taken meanwhile: try again.
  }
}

async function tryAcquire(lockPath: string): Promise<boolean> {
  const tmp = `${lockPath}.${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, String(process.pid));
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
  const started = Date.now();
  let waitMs = 2;
  while (!(await tryAcquire(lockPath))) {
    if (Date.now() - started > timeoutMs) {
      throw new LockTimeoutError(`another writer holds ${lockPath} (waited ${timeoutMs} ms); if no writer is running, delete that file`);
    }
    await breakIfStale(lockPath, staleMs);
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
