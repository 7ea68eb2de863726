// Where the flags live: --store, else ROLLOUT_GUARDIAN_FLAGS, else flags.yaml, relative to
// the injected cwd. Only flag files are served for now; a URL says so instead of being
// taken for a file name.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_FLAGS_FILE, FLAGS_ENV_VAR, FileFlagStore, resolveFlagsPath } from '../stores/file-store.js';
import type { CliIo } from './cli-io.js';
import { usageError } from './cli-error.js';

const URL_SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/** The absolute path of the flag file `option` (or the environment, or the default) names. */
export function flagFilePath(option: string | undefined, io: CliIo): string {
  const location = option ?? (io.env[FLAGS_ENV_VAR] || DEFAULT_FLAGS_FILE);
  const from = option !== undefined ? '--store' : io.env[FLAGS_ENV_VAR] ? FLAGS_ENV_VAR : 'the default';
  const scheme = URL_SCHEME.exec(location)?.[1]?.toLowerCase();
  if (scheme === 'file') return fileURLToPath(location);
  if (scheme !== undefined) {
    throw usageError(`${scheme}:// stores are not supported yet (${location}, from ${from}); pass --store <path> to a YAML or JSON flag file`);
  }
  // resolveFlagsPath resolves against process.cwd(); anchoring at the injected cwd first
  // keeps its precedence and makes the result absolute either way.
  return resolveFlagsPath(resolve(io.cwd, location), io.env);
}

/** A file store for one command: no watcher, closed when `fn` settles. */
export async function withFileStore<T>(option: string | undefined, io: CliIo, fn: (store: FileFlagStore) => Promise<T>): Promise<T> {
  const store = new FileFlagStore({ path: flagFilePath(option, io), env: io.env, clock: io.clock, watch: false });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
