// Where the flags live: --store, else ROLLOUT_GUARDIAN_FLAGS, else flags.yaml, relative to
// the injected cwd. A path or file:// URL is a flag file, a redis:// or rediss:// URL a Redis
// store; every command opens it through openStore, so each one serves both.
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_FLAGS_FILE, FLAGS_ENV_VAR, resolveFlagsPath } from '../stores/file-store.js';
import { type OpenedStore, openStore, storeScheme } from '../stores/open-store.js';
import { RedisFlagStore } from '../stores/redis-store.js';
import { StoreLocationError } from '../stores/store-location-error.js';
import { FLAGD_LOCATION_PREFIX } from '../stores/flagd-store.js';
import type { CliIo } from './cli-io.js';
import { usageError } from './cli-error.js';

interface NamedLocation {
  readonly location: string;
  /** Where it came from, for messages: --store, the environment variable, or the default. */
  readonly from: string;
}

function named(option: string | undefined, io: CliIo): NamedLocation {
  const location = option ?? (io.env[FLAGS_ENV_VAR] || DEFAULT_FLAGS_FILE);
  return { location, from: option !== undefined ? '--store' : io.env[FLAGS_ENV_VAR] ? FLAGS_ENV_VAR : 'the default' };
}

/** The location with any password in it masked, for messages. */
export function redactLocation(location: string): string {
  return location.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:)[^@/]*@/i, '$1***@');
}

/** Opens `location` (for one command, without a watcher, unless `watch`); a location that names no store is a usage error. */
export function openLocation(location: string, from: string, io: CliIo, watch = false): OpenedStore {
  try {
    return openStore(location, { cwd: io.cwd, env: io.env, clock: io.clock, watch });
  } catch (err) {
    if (err instanceof StoreLocationError) throw usageError(`${err.message} (${redactLocation(location)}, from ${from})`);
    throw err;
  }
}

/** The store that `option` (or the environment, or the default) names, closed when `fn` settles. */
export async function withStore<T>(option: string | undefined, io: CliIo, fn: (store: OpenedStore) => Promise<T>): Promise<T> {
  const { location, from } = named(option, io);
  const store = openLocation(location, from, io);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** The absolute path of the flag file `option` names, for commands that read the file itself. */
export function flagFilePath(option: string | undefined, io: CliIo): string {
  const { location, from } = named(option, io);
  if (location.startsWith(FLAGD_LOCATION_PREFIX)) {
    throw usageError(`this command needs a YAML or JSON flag file, and ${location} (from ${from}) is a flagd file; rollout-guardian flags list --store ${location} shows each flag checked against flagd's schema`);
  }
  const scheme = storeScheme(location);
  if (scheme === 'file') return fileURLToPath(location);
  if (scheme !== undefined) {
    const redis = scheme === 'redis' || scheme === 'rediss' ? '; a Redis store is validated on every write, and `flags list --store <url>` shows any invalid flag in it' : '';
    throw usageError(`this command needs a YAML or JSON flag file, and ${redactLocation(location)} (from ${from}) is a ${scheme}:// store${redis}`);
  }
  // resolveFlagsPath resolves against process.cwd(); anchoring at the injected cwd first
  // keeps its precedence and makes the result absolute either way.
  return resolveFlagsPath(resolve(io.cwd, location), io.env);
}

/** Where a store keeps its runtime state, as `flags get` names it. */
export function stateLocation(store: OpenedStore): string {
  return store instanceof RedisFlagStore ? `${store.keys.state} in ${store.source}` : basename(store.statePath);
}

/** Where a store keeps its audit log, for messages. */
export function auditLocation(store: OpenedStore): string {
  return store instanceof RedisFlagStore ? `${store.keys.audit} in ${store.source}` : store.auditPath;
}
