// Opens the store a location names: a flag file (a path or a file:// URL) or Redis (redis://,
// rediss://). Composition roots (the CLI, serve) take every --store and ROLLOUT_GUARDIAN_FLAGS
// through here, so a new backend is one more branch, not a change in every command.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../core/clock.js';
import { FileFlagStore } from './file-store.js';
import { FLAGD_LOCATION_PREFIX, FlagdFileStore } from './flagd-store.js';
import { documentData, readFlagText } from './flag-file-format.js';
import { type RedisFlagStoreOptions, RedisFlagStore, parseRedisUrl } from './redis-store.js';
import { StoreLocationError } from './store-location-error.js';

/** The Redis password, for when it should stay out of the URL (and so out of `ps` and shell history). */
export const REDIS_PASSWORD_ENV_VAR = 'ROLLOUT_GUARDIAN_REDIS_PASSWORD';

const URL_SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

export interface OpenStoreOptions {
  /** Relative paths resolve against it (default: the process's working directory). */
  readonly cwd?: string;
  /** Read for ROLLOUT_GUARDIAN_REDIS_PASSWORD only; nothing is read from process.env unless passed. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly clock?: Clock;
  /** File stores: reload when the files change (default true). */
  readonly watch?: boolean;
  /** Redis stores: settings over what the URL says (TLS files, timeouts, ioredis options). */
  readonly redis?: Omit<RedisFlagStoreOptions, 'url' | 'clock'>;
}

export type OpenedStore = FileFlagStore | RedisFlagStore | FlagdFileStore;

/** The scheme of a URL location (lower case), or undefined for a plain path. */
export function storeScheme(location: string): string | undefined {
  return URL_SCHEME.exec(location)?.[1]?.toLowerCase();
}

/** Throws StoreLocationError, before any I/O, for a location that names no supported store. */
export function openStore(location: string, options: OpenStoreOptions = {}): OpenedStore {
  if (location.trim() === '') throw new StoreLocationError('the store location is empty; pass a flag file path or a redis:// URL', location);
  const scheme = storeScheme(location);
  const clock = options.clock !== undefined ? { clock: options.clock } : {};
  // `flagd:<path>`: a flagd flag-definition JSON file (named, not sniffed: opening does no I/O).
  if (location.startsWith(FLAGD_LOCATION_PREFIX)) return new FlagdFileStore({ path: resolve(options.cwd ?? '.', location.slice(FLAGD_LOCATION_PREFIX.length)), watch: options.watch ?? true, ...clock });
  if (scheme === undefined || scheme === 'file') {
    let path: string;
    try {
      path = scheme === 'file' ? fileURLToPath(location) : resolve(options.cwd ?? '.', location);
    } catch (err) {
      throw new StoreLocationError(`${location} is not a usable file URL: ${(err as Error).message}`, location);
    }
    return new FileFlagStore({ path, watch: options.watch ?? true, ...clock });
  }
  if (scheme === 'redis' || scheme === 'rediss') {
    // A password in the URL wins; the environment fills in for one left out of it.
    const fromEnv = options.env?.[REDIS_PASSWORD_ENV_VAR];
    const password = options.redis?.password ?? (fromEnv && parseRedisUrl(location).password === undefined ? fromEnv : undefined);
    return new RedisFlagStore({ ...options.redis, url: location, ...(password ? { password } : {}), ...clock });
  }
  throw new StoreLocationError(
    `${scheme}:// stores are not supported; use a YAML or JSON flag file (a path or file:// URL) or Redis (redis:// or rediss://)`,
    location,
  );
}

/** The flags as stored, before defaults are filled in: what `copy` carries, and `flags get` shows of an invalid flag. */
export async function storedDefinitions(store: OpenedStore): Promise<Record<string, unknown>> {
  if (store instanceof RedisFlagStore) return store.rawDefinitions();
  if (store instanceof FlagdFileStore) return store.storedDefinitions();
  const read = readFlagText(await readFile(store.source, 'utf8'), store.source);
  const data = (read.fileErrors.length === 0 ? documentData(read.doc) : null) as { flags?: unknown } | null;
  const flags = data?.flags;
  return flags !== null && typeof flags === 'object' && !Array.isArray(flags) ? (flags as Record<string, unknown>) : {};
}
