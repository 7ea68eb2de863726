// Whole-file writes that a reader never sees half done: a temp file in the same folder,
// flushed, then renamed over the target (rename is atomic within a file system). A symlink is
// followed, so the file it points to is replaced and the link stays a link.
import { randomBytes } from 'node:crypto';
import { open, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The file a write to `path` should replace: its symlinks resolved; `path` itself when it does not exist yet. */
export async function realTarget(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return path;
    throw err;
  }
}

/** The temp file name a write of `path` uses; it carries the pid so a dead writer's leftovers can be told apart. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const target = await realTarget(path);
  const tmp = tempPathFor(target);
  const mode = await stat(target).then(
    (s) => s.mode & 0o777,
    () => 0o644,
  );
  try {
    const handle = await open(tmp, 'w', mode);
    try {
      await handle.writeFile(data, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, target);
  } catch (err) {
    // A full disk or a failed rename leaves no temp file behind.
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
