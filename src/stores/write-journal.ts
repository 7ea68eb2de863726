// A change to the store's files and its audit entries as one unit: before anything changes,
// each file about to be replaced keeps its old content under a hard link and a journal names
// them; the journal is removed once the files and the audit entries are all written. A write
// that fails is undone at once; one whose process died is undone by the next write or open
// (the journal is still there), so a change never lives without its audit entry.
// Runs under the store's lock: one journal at a time.
import { randomBytes } from 'node:crypto';
import { link, open, readFile, readdir, rename, stat, truncate, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { realTarget, writeFileAtomic } from './atomic-write.js';
import { processAlive } from './file-lock.js';

export interface JournaledFile {
  readonly path: string;
  readonly text: string;
}

interface JournalRecord {
  readonly version: 1;
  readonly pid: number;
  /** Each file replaced, with the hard link that keeps its old content (null: it did not exist). */
  readonly files: readonly { readonly path: string; readonly backup: string | null }[];
  readonly auditPath: string;
  /** The audit log's size before the write: the undo cuts it back to this. */
  readonly auditSize: number;
}

/** The write failed and was undone: nothing changed, no audit entry was written. */
export class WriteNotAppliedError extends Error {
  override readonly name = 'WriteNotAppliedError';
}

/**
 * The write failed and could not be undone at once: the journal stays, and the next write or
 * open of the store undoes it. Until then a reader may see the change without its entry.
 */
export class WriteIncompleteError extends Error {
  override readonly name = 'WriteIncompleteError';
}

function backupPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.backup`);
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

async function removeBackups(backups: readonly { readonly backup: string | null }[]): Promise<void> {
  for (const b of backups) if (b.backup !== null) await removeQuietly(b.backup);
}

async function undo(record: JournalRecord): Promise<void> {
  for (const file of record.files) {
    if (file.backup === null) await unlink(file.path).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
    else await rename(file.backup, file.path).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  }
  if ((await sizeOf(record.auditPath)) > record.auditSize) await truncate(record.auditPath, record.auditSize);
}

/**
 * Replaces the files and appends `auditText` as one unit. Throws WriteNotAppliedError when it
 * failed and nothing changed, WriteIncompleteError when even the undo failed.
 */
export async function writeJournaled(journalPath: string, files: readonly JournaledFile[], auditPath: string, auditText: string): Promise<void> {
  // The audit log first: an audit entry that cannot be written stops the change before it starts.
  let audit;
  try {
    audit = await open(auditPath, 'a');
  } catch (err) {
    throw new WriteNotAppliedError(`cannot write the audit log ${auditPath} (${(err as Error).message}), so the change was not applied; nothing changed`);
  }
  const backups: { path: string; backup: string | null }[] = [];
  try {
    const auditSize = (await audit.stat()).size;
    try {
      for (const file of files) {
        const path = await realTarget(file.path);
        const backup = backupPath(path);
        try {
          await link(path, backup);
          backups.push({ path, backup });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          backups.push({ path, backup: null });
        }
      }
      const record: JournalRecord = { version: 1, pid: process.pid, files: backups, auditPath, auditSize };
      await writeFileAtomic(journalPath, `${JSON.stringify(record)}\n`);
    } catch (err) {
      await removeBackups(backups);
      throw new WriteNotAppliedError(`cannot prepare the write (${(err as Error).message}), so the change was not applied; nothing changed`);
    }
    const record: JournalRecord = { version: 1, pid: process.pid, files: backups, auditPath, auditSize };
    try {
      for (const file of files) await writeFileAtomic(file.path, file.text);
      await audit.appendFile(auditText, 'utf8');
      await audit.sync();
    } catch (err) {
      const cause = (err as Error).message;
      try {
        await undo(record);
        await unlink(journalPath);
      } catch (undoErr) {
        throw new WriteIncompleteError(
          `the write failed (${cause}) and undoing it failed too (${(undoErr as Error).message}); the next write or open of the store undoes it (journal ${journalPath})`,
        );
      }
      throw new WriteNotAppliedError(`the write failed (${cause}), so the change was undone and not applied; no audit entry was written`);
    }
    // The commit point: from here the change and its entries stand.
    await unlink(journalPath);
    await removeBackups(backups);
  } finally {
    await audit.close();
  }
}

/** Undoes the write a journal names, left by a process that died or failed mid-write. True if there was one. */
export async function recoverJournal(journalPath: string): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(journalPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  let record: JournalRecord | undefined;
  try {
    record = JSON.parse(text) as JournalRecord;
  } catch {
    record = undefined; // torn before its rename: nothing was changed after it
  }
  if (record !== undefined && Array.isArray(record.files)) await undo(record);
  await unlink(journalPath);
  return true;
}

/**
 * Removes temp and backup files that writes to `targets` left behind when their process died
 * (their name carries the pid). Call under the lock.
 */
export async function removeLeftovers(targets: readonly string[]): Promise<number> {
  let removed = 0;
  const byDir = new Map<string, string[]>();
  for (const target of targets) byDir.set(dirname(target), [...(byDir.get(dirname(target)) ?? []), basename(target)]);
  for (const [dir, names] of byDir) {
    let entries: string[];
    try {
      entries = await readdir(dir);
    } catch {
      continue;
    }
    for (const entry of entries) {
      // `.<name>.<pid>.<hex>.tmp|backup` of a write, `<name>.<pid>-<hex>` of a lock being taken,
      // `<name>.stale-<hex>` of a lock being broken.
      const match = /^\.(.+)\.(\d+)\.[0-9a-f]{8}\.(?:tmp|backup)$/.exec(entry) ?? /^(.+)\.(\d+)-[0-9a-f]{8}$/.exec(entry) ?? /^(.+)\.stale-()[0-9a-f]{8}$/.exec(entry);
      if (match === null || !names.includes(match[1] as string)) continue;
      const pid = Number(match[2]);
      // Ours are in use (another store of this process may be taking the lock right now).
      if (match[2] !== '' && (pid === process.pid || processAlive(pid))) continue;
      await removeQuietly(join(dir, entry));
      removed++;
    }
  }
  return removed;
}
