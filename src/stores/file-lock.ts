// A lock file beside the flag file so writers in separate processes take turns: created
// with O_EXCL, holding the owner's pid; a lock whose owner is dead or that is older than
// `staleMs` is broken.
import { open, readFile, stat, unlink } from 'node:fs/promises';
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
    const [text, info] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)]);
    if (!ownerAlive(Number.parseInt(text, 10)) || Date.now() - info.mtimeMs > staleMs) await unlink(lockPath);
  } catch {
    // Gone already, or being written: try again.
  }
}

/** Runs `fn` while holding the lock at `lockPath`. */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const staleMs = options.staleMs ?? 30_000;
  const started = Date.now();
  let waitMs = 2;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx');
      try {
        await handle.writeFile(String(process.pid));
      } finally {
        await handle.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (Date.now() - started > timeoutMs) {
        throw new LockTimeoutError(`another writer holds ${lockPath} (waited ${timeoutMs} ms); if no writer is running, delete that file`);
      }
      await breakIfStale(lockPath, staleMs);
      // Waiting on another process's lock, with jitter so writers do not march in step.
      await delay(waitMs + Math.floor(Math.random() * waitMs));
      waitMs = Math.min(waitMs * 2, 50);
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => undefined);
  }
}
