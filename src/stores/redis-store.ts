// The Redis store, one rollout state for a fleet: definitions, state and a revision under one
// key prefix; each write is a compare-and-set script that also appends the audit stream and
// publishes the revision. While Redis is away, reads serve the last snapshot, writes fail fast.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Redis, type RedisOptions } from 'ioredis';
import { Document, YAMLParseError } from 'yaml';
import type { Clock } from '../core/clock.js';
import { type ParsedFlags, type ParsedState, describeIssue, parseFlagDocument, parseStateDocument } from '../core/parse-flags.js';
import {
  type AuditEntry,
  type AuditQuery,
  type FlagStore,
  type StoreListener,
  type StoreSnapshot,
  type WriteRequest,
  type WriteResult,
  FlagSourceError,
  RevisionConflictError,
} from './flag-store.js';
import { CoalescedRun, StoreListeners } from './store-listeners.js';
import { type StateDocument, applyWrite } from './apply-write.js';
import { selectAudit } from './audit-log.js';
import { documentOf, readFlagText, sizeError } from './flag-file-format.js';
import { StoreLocationError } from './store-location-error.js';
import { systemClock } from '../runtime/system-clock.js';

export const DEFAULT_KEY_PREFIX = 'rollout-guardian';
/** Query parameters a store URL may carry besides what ioredis reads from the URL itself. */
const REDIS_URL_PARAMETERS = ['prefix', 'ca'] as const;

/** Who holds the guardian lease and with which fencing token: what a fenced write must still match. */
export interface LeaseFence {
  readonly owner: string;
  readonly token: number;
}

/** A fenced write met a lease held by another replica (or by none): nothing was written. */
export class NotLeaseHolderError extends Error {
  override readonly name = 'NotLeaseHolderError';
  constructor(
    readonly source: string,
    readonly holder: string | undefined,
    readonly token: number | undefined,
  ) {
    super(`this replica no longer holds the guardian lease on ${source} (${holder === undefined ? 'no one holds it' : `${holder} holds it with token ${token ?? '?'}`}); nothing was written`);
  }
}

export interface RedisFlagStoreOptions {
  /** `redis://[[user]:password@]host[:port][/db][?prefix=NAME][&ca=PEM-FILE]`; `rediss://` for TLS. */
  readonly url: string;
  /** Starts every key, so environments can share one Redis (default: the URL's `prefix`, else `rollout-guardian`). */
  readonly keyPrefix?: string;
  /** Over the URL's user name and password. */
  readonly username?: string;
  readonly password?: string;
  /** TLS settings (ca, cert, key, servername, ...); given with a redis:// URL they turn TLS on too. */
  readonly tls?: ConnectionOptions;
  readonly clock?: Clock;
  /** How often watchers re-read the store in case a change message was missed (default 5000). */
  readonly resyncMs?: number;
  /** How long the first connection may take (default 5000). */
  readonly connectTimeoutMs?: number;
  /** Limit on one command, so a hung Redis reads as unavailable (default 2000). */
  readonly commandTimeoutMs?: number;
  /** Passed to ioredis over the store's own settings; for what the options above do not cover. */
  readonly redisOptions?: RedisOptions;
}

/** Where everything lives in Redis; the channel carries each new revision. */
export interface RedisKeys {
  readonly revision: string;
  readonly definitions: string;
  readonly state: string;
  readonly audit: string;
  readonly changes: string;
  /** The guardian lease (src/stores/redis-lease.ts): a hash of owner, fencing token, version, TTL. */
  readonly lease: string;
}

export function redisKeys(prefix: string): RedisKeys {
  return {
    revision: `${prefix}:revision`,
    definitions: `${prefix}:definitions`,
    state: `${prefix}:state`,
    audit: `${prefix}:audit`,
    changes: `${prefix}:changes`,
    lease: `${prefix}:guardian-lease`,
  };
}

interface RedisLocation {
  readonly tls: boolean;
  readonly host: string;
  readonly port: number;
  readonly db: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly prefix: string | undefined;
  readonly caFile: string | undefined;
}

/** The parts of a redis:// or rediss:// URL; throws StoreLocationError for anything else. */
export function parseRedisUrl(url: string): RedisLocation {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StoreLocationError(`"${url}" is not a valid URL; expected redis://[:password@]host[:port][/db][?prefix=NAME]`, url);
  }
  const scheme = parsed.protocol.slice(0, -1).toLowerCase();
  if (scheme !== 'redis' && scheme !== 'rediss') throw new StoreLocationError(`expected a redis:// or rediss:// URL, got ${scheme}://`, url);
  if (parsed.hostname === '') throw new StoreLocationError(`the URL names no host; expected ${scheme}://host[:port]`, url);
  const dbText = parsed.pathname.replace(/^\//, '');
  if (!/^\d*$/.test(dbText)) throw new StoreLocationError(`the URL's path must be a database number, got "/${dbText}"`, url);
  for (const name of parsed.searchParams.keys()) {
    if (!(REDIS_URL_PARAMETERS as readonly string[]).includes(name)) {
      throw new StoreLocationError(`unknown parameter "${name}" in the URL; supported: ${REDIS_URL_PARAMETERS.join(', ')}`, url);
    }
  }
  const prefix = parsed.searchParams.get('prefix') ?? undefined;
  if (prefix === '') throw new StoreLocationError('the key prefix may not be empty', url);
  return {
    tls: scheme === 'rediss',
    // WHATWG keeps an IPv6 host in brackets; sockets want it bare.
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port === '' ? 6379 : Number(parsed.port),
    db: dbText === '' ? 0 : Number(dbText),
    username: parsed.username === '' ? undefined : decodeURIComponent(parsed.username),
    password: parsed.password === '' ? undefined : decodeURIComponent(parsed.password),
    prefix,
    caFile: parsed.searchParams.get('ca') ?? undefined,
  };
}

/** The URL without credentials or TLS files: safe for messages, audit and `--json`. */
function displayUrl(location: RedisLocation, tls: boolean, prefix: string): string {
  const host = location.host.includes(':') ? `[${location.host}]` : location.host;
  const db = location.db === 0 ? '' : `/${location.db}`;
  const query = prefix === DEFAULT_KEY_PREFIX ? '' : `${db === '' ? '/' : ''}?prefix=${encodeURIComponent(prefix)}`;
  return `${tls ? 'rediss' : 'redis'}://${host}:${location.port}${db}${query}`;
}

// Compare-and-set on the revision. Everything is checked before the first mutation, because
// Redis does not roll a script back when it fails halfway. The audit entries already carry the
// revision this write produces: it can only be the expected one plus one.
// A fenced write (the acting guardian's) lands only while the lease still names its owner and
// fencing token: checked here, in the same script, so a replica that lost the lease while a
// write was on its way (paused, partitioned) cannot land it.
// KEYS: revision, definitions, state, audit, lease. ARGV: expected revision, definitions JSON
// ('' to keep them), state JSON, channel, fence owner ('' for an unfenced write), fence token,
// then a flag key and an audit entry (JSON) per entry.
const WRITE_SCRIPT = `
if ARGV[5] ~= '' then
  local owner = redis.call('HGET', KEYS[5], 'owner') or ''
  local token = redis.call('HGET', KEYS[5], 'token') or ''
  if owner ~= ARGV[5] or token ~= ARGV[6] then return {'fenced', owner .. ' ' .. token} end
end
local current = redis.call('GET', KEYS[1]) or '0'
if current ~= ARGV[1] then return {'conflict', current} end
if not string.match(current, '^%d+$') then return redis.error_reply(KEYS[1] .. ' holds "' .. current .. '", not a revision number') end
local auditType = redis.call('TYPE', KEYS[4]).ok
if auditType ~= 'none' and auditType ~= 'stream' then return redis.error_reply(KEYS[4] .. ' is a ' .. auditType .. ', not a stream') end
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2]) end
redis.call('SET', KEYS[3], ARGV[3])
local revision = redis.call('INCR', KEYS[1])
for i = 7, #ARGV, 2 do
  redis.call('XADD', KEYS[4], '*', 'flag', ARGV[i], 'entry', ARGV[i + 1])
end
redis.call('PUBLISH', ARGV[4], revision)
return {'ok', tostring(revision)}
`;

type WriteOutcome = [status: 'ok' | 'conflict' | 'fenced', detail: string];
type CasClient = Redis & { rolloutGuardianWrite(...args: string[]): Promise<WriteOutcome> };

/** The three values that make up the store, read in one MGET so they belong together. */
interface Stored {
  readonly revision: string | null;
  readonly definitions: string | null;
  readonly state: string | null;
}

type Decoded = { ok: true; snapshot: StoreSnapshot } | { ok: false; errors: string[] };

/** A write that did not conflict is retried this often when the caller named no revision. */
const WRITE_ATTEMPTS = 10;
const AUDIT_PAGE = 1_000;

function fingerprintOf(stored: Stored): string {
  return `${stored.revision ?? ''}\0${stored.definitions ?? ''}\0${stored.state ?? ''}`;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function auditEntryOf(fields: readonly string[]): AuditEntry | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] !== 'entry') continue;
    try {
      return JSON.parse(fields[i + 1] as string) as AuditEntry;
    } catch {
      return undefined; // someone else's entry: skipped, as a torn line is in the file log
    }
  }
  return undefined;
}

export class RedisFlagStore implements FlagStore {
  readonly source: string;
  readonly keyPrefix: string;
  readonly keys: RedisKeys;
  private readonly clock: Clock;
  private readonly resyncMs: number;
  private readonly client: CasClient;
  private readonly listeners = new StoreListeners();
  private subscriber: Redis | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** The last good snapshot and what it was read from: served while Redis is away or bad. */
  private last: StoreSnapshot | undefined;
  private lastFingerprint: string | undefined;
  /** What watchers were last told, so a resync that finds nothing new stays quiet. */
  private toldFingerprint: string | undefined;
  private toldBadFingerprint: string | undefined;
  private lastError: Error | undefined;
  private connecting: Promise<void> | undefined;
  private readonly refreshes = new CoalescedRun(() => this.refreshOnce(), () => this.closed);
  private wasReady = false;
  private troubled = false;
  private closed = false;

  constructor(options: RedisFlagStoreOptions) {
    const location = parseRedisUrl(options.url);
    this.keyPrefix = options.keyPrefix ?? location.prefix ?? DEFAULT_KEY_PREFIX;
    if (this.keyPrefix === '') throw new StoreLocationError('the key prefix may not be empty', options.url);
    this.keys = redisKeys(this.keyPrefix);
    this.clock = options.clock ?? systemClock;
    this.resyncMs = options.resyncMs ?? 5_000;
    const useTls = location.tls || options.tls !== undefined;
    this.source = displayUrl(location, useTls, this.keyPrefix);
    let ca: string | undefined;
    if (location.caFile !== undefined) {
      try {
        ca = readFileSync(location.caFile, 'utf8');
      } catch (err) {
        throw new StoreLocationError(`cannot read the CA file ${location.caFile} named by the URL: ${messageOf(err)}`, options.url);
      }
    }
    this.client = new Redis({
      host: location.host,
      port: location.port,
      db: location.db,
      username: options.username ?? location.username,
      password: options.password ?? location.password,
      ...(useTls ? { tls: { ...(ca !== undefined ? { ca } : {}), ...options.tls } } : {}),
      connectionName: 'rollout-guardian',
      // Connect on first use, never in the constructor.
      lazyConnect: true,
      // While Redis is away a command fails at once instead of waiting in a queue: writes say
      // so to their caller, reads fall back to the last snapshot.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // A write cut off mid-flight is not sent again behind the caller's back.
      autoResendUnfulfilledCommands: false,
      connectTimeout: options.connectTimeoutMs ?? 5_000,
      commandTimeout: options.commandTimeoutMs ?? 2_000,
      // Keep trying for as long as the store is open: 100 ms, doubling, at most 1 s apart.
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 1_000),
      ...options.redisOptions,
    }) as CasClient;
    this.client.defineCommand('rolloutGuardianWrite', { numberOfKeys: 5, lua: WRITE_SCRIPT });
    this.client.on('error', (error: Error) => {
      this.lastError = error;
    });
    this.client.on('close', () => this.connectionLost());
    this.client.on('ready', () => {
      this.wasReady = true;
      this.lastError = undefined;
      if (this.subscriber !== undefined) void this.refresh();
    });
  }

  async load(): Promise<StoreSnapshot> {
    this.assertOpen();
    let stored: Stored;
    try {
      await this.connected();
      stored = await this.read();
    } catch (err) {
      // The provider keeps serving; a command line has nothing to serve and says why.
      if (this.last) return this.last;
      throw this.unreachable(err, 'nothing was read or written');
    }
    const decoded = this.decodeSafely(stored);
    if (decoded.ok) {
      this.keep(decoded.snapshot, stored);
      return decoded.snapshot;
    }
    if (this.last) return this.lastGoodNow(this.last, stored, decoded.errors);
    throw new FlagSourceError(`${this.source} is invalid:\n  ${decoded.errors.join('\n  ')}`, this.source);
  }

  watch(listener: StoreListener): () => void {
    this.assertOpen();
    const remove = this.listeners.add(listener);
    if (this.subscriber === undefined) this.startWatching();
    return remove;
  }

  /**
   * `fence`: land the write only while this replica holds the guardian lease with that token
   * (RedisLease passes it); otherwise NotLeaseHolderError and nothing is written.
   */
  async write(request: WriteRequest, fence?: LeaseFence): Promise<WriteResult> {
    this.assertOpen();
    for (let attempt = 1; ; attempt++) {
      let stored: Stored;
      try {
        await this.connected();
        stored = await this.read();
      } catch (err) {
        throw this.unreachable(err, 'nothing was written');
      }
      const current = stored.revision ?? '0';
      if (request.expectedRevision !== undefined && request.expectedRevision !== current) {
        throw new RevisionConflictError(request.expectedRevision, current);
      }
      if (!/^\d+$/.test(current)) {
        throw new FlagSourceError(`${this.keys.revision} in ${this.source} holds "${current}", not a revision number; nothing was written`, this.source);
      }
      const revision = String(Number(current) + 1);
      if (stored.definitions === null && !createsDefinitions(request)) {
      // A Redis that restarted without its data: writing now would store `{"flags":{}}` over
      // definitions this process never read, and every instance would lose every flag.
      throw new FlagSourceError(`${this.emptyMessage()}; nothing was written`, this.source);
    }
    const { args, entries } = this.prepare(stored, request, revision, fence);
      let outcome: WriteOutcome;
      try {
        outcome = await this.client.rolloutGuardianWrite(this.keys.revision, this.keys.definitions, this.keys.state, this.keys.audit, this.keys.lease, current, ...args);
      } catch (err) {
        if (err instanceof Error && err.name === 'ReplyError') {
          throw new FlagSourceError(`${this.source} refused the write: ${err.message}; nothing was written`, this.source);
        }
        // Sent but unanswered: the script may have run. The audit log says whether it did.
        throw new FlagSourceError(
          `Redis at ${this.source} became unreachable during the write (${messageOf(err)}); it may or may not have landed: check with rollout-guardian audit`,
          this.source,
        );
      }
      if (outcome[0] === 'ok') return { revision: outcome[1], entries };
      if (outcome[0] === 'fenced') {
        const [holder = '', token = ''] = outcome[1].split(' ');
        throw new NotLeaseHolderError(this.source, holder === '' ? undefined : holder, token === '' ? undefined : Number(token));
      }
      // Without an expected revision the caller asked for "apply to whatever is there", as the
      // file store does under its lock: read again and re-apply, validation included.
      if (request.expectedRevision !== undefined || attempt >= WRITE_ATTEMPTS) {
        throw new RevisionConflictError(request.expectedRevision ?? current, outcome[1]);
      }
    }
  }

  async audit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    this.assertOpen();
    try {
      await this.connected();
      return query.limit === undefined ? await this.auditForward(query) : await this.auditBackward(query, query.limit);
    } catch (err) {
      throw this.unreachable(err, 'nothing was read');
    }
  }

  /** The flags as stored, before defaults are filled in: what `copy` carries and `flags get` shows. */
  async rawDefinitions(): Promise<Record<string, unknown>> {
    this.assertOpen();
    let text: string | null;
    try {
      await this.connected();
      text = await this.client.get(this.keys.definitions);
    } catch (err) {
      throw this.unreachable(err, 'nothing was read');
    }
    if (text === null) return {};
    try {
      const flags = (JSON.parse(text) as { flags?: unknown } | null)?.flags;
      return flags !== null && typeof flags === 'object' ? (flags as Record<string, unknown>) : {};
    } catch {
      return {};
    }
  }

  /**
   * Runs a Lua script on the store's connection (the guardian lease's, in redis-lease.ts):
   * fails at once while Redis is away, like every other command.
   */
  async runScript(lua: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    this.assertOpen();
    await this.connected();
    return this.client.eval(lua, keys.length, ...keys, ...args);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.resyncTimer = undefined;
    this.listeners.clear();
    await this.refreshes.inFlight;
    await Promise.all([hangUp(this.client), this.subscriber ? hangUp(this.subscriber) : undefined]);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`the Redis store for ${this.source} is closed`);
  }

  /**
   * Resolves once the connection is ready. The first connection is waited for; after that, or
   * once it has failed, a connection that is not ready fails at once: ioredis keeps retrying
   * in the background, and the caller hears now rather than after a timeout.
   */
  private connected(): Promise<void> {
    const status = this.client.status;
    if (status === 'ready') return Promise.resolve();
    if (this.wasReady || status === 'reconnecting' || status === 'close' || status === 'end') {
      return Promise.reject(this.lastError ?? new Error(`the connection is ${status === 'end' ? 'closed' : 'down'}`));
    }
    return (this.connecting ??= firstConnection(this.client, () => this.lastError).finally(() => {
      this.connecting = undefined;
    }));
  }

  private async read(): Promise<Stored> {
    const [revision = null, definitions = null, state = null] = await this.client.mget(this.keys.revision, this.keys.definitions, this.keys.state);
    return { revision, definitions, state };
  }

  private unreachable(err: unknown, outcome: string): FlagSourceError {
    if (err instanceof FlagSourceError) return err;
    return new FlagSourceError(`Redis at ${this.source} is unreachable: ${messageOf(err)}; ${outcome}`, this.source);
  }

  /** The arguments of the write script after `request` is applied to what is stored. */
  private prepare(stored: Stored, request: WriteRequest, revision: string, fence: LeaseFence | undefined): { args: string[]; entries: AuditEntry[] } {
    const state = this.decodeState(stored.state);
    if (!state.ok) throw new FlagSourceError(`${this.source} is invalid; nothing was written:\n  ${state.errors.join('\n  ')}`, this.source);
    const definitions = this.decodeDefinitions(stored.definitions);
    const doc = definitions.ok ? documentOf(definitions.data) : brokenDocument(definitions.errors);
    const applied = applyWrite(doc, state.parsed.raw as StateDocument, request, this.clock.now(), this.last?.parsed);
    const entries: AuditEntry[] = applied.entries.map((e) => ({ ...e, revision }));
    // The revision lives in its own key; a state document copied from a file may carry one.
    const { revision: _fileRevision, ...stateOut } = applied.stateDoc;
    const definitionsOut = applied.definitionsChanged || stored.definitions === null ? JSON.stringify(doc.toJS() ?? { flags: {} }) : '';
    const args = [definitionsOut, JSON.stringify(stateOut), this.keys.changes, fence?.owner ?? '', fence === undefined ? '' : String(fence.token)];
    for (const entry of entries) args.push(entry.flagKey, JSON.stringify(entry));
    return { args, entries };
  }

  /** decode(), with anything it throws turned into a refusal: a watcher must never die of a hand-edited key. */
  private decodeSafely(stored: Stored): Decoded {
    try {
      return this.decode(stored);
    } catch (err) {
      return { ok: false, errors: [`${this.source}: cannot be read as flags: ${messageOf(err)}`] };
    }
  }

  private emptyMessage(): string {
    return `${this.source} is empty: it holds no flag definitions (${this.keys.definitions}); a new store, or Redis restarted without its data? Load them first: rollout-guardian copy --from flags.yaml --to ${this.source}`;
  }

  private decode(stored: Stored): Decoded {
    // A Redis that restarted without its data, or was flushed, holds no revision: serving
    // nothing would turn every flag into FLAG_NOT_FOUND across the fleet.
    if (stored.revision === null && this.last !== undefined && this.last.revision !== '0') {
      return {
        ok: false,
        errors: [
          `${this.source} holds no flags any more (it was at revision ${this.last.revision}): flushed, or restarted without persistence? ` +
            `Write them again, e.g. rollout-guardian copy --from flags.yaml --to ${this.source}`,
        ],
      };
    }
    const definitions = this.decodeDefinitions(stored.definitions);
    const state = this.decodeState(stored.state);
    if (!definitions.ok || !state.ok) return { ok: false, errors: [...(definitions.ok ? [] : definitions.errors), ...(state.ok ? [] : state.errors)] };
    const where = `${this.source} ${this.keys.definitions}`;
    const snapshot: StoreSnapshot = {
      revision: stored.revision ?? '0',
      parsed: definitions.parsed,
      state: state.parsed.flags,
      source: this.source,
      flagErrors: new Map([...definitions.parsed.invalid].map(([key, issues]) => [key, issues.map((issue) => `${where}: ${describeIssue(issue)}`)])),
      ...(stored.definitions === null ? { problem: this.emptyMessage() } : {}),
    };
    return { ok: true, snapshot };
  }

  private decodeDefinitions(text: string | null): { ok: true; data: unknown; parsed: ParsedFlags } | { ok: false; errors: string[] } {
    const tooBig = text === null ? undefined : sizeError(this.keys.definitions, Buffer.byteLength(text, 'utf8'));
    if (tooBig !== undefined) return { ok: false, errors: [tooBig] };
    const data = text === null ? { flags: {} } : safeJson(text);
    if (data === undefined) {
      // Read as YAML (a superset of JSON) only to say where the text breaks.
      const located = readFlagText(text as string, this.keys.definitions).fileErrors;
      return { ok: false, errors: located.length > 0 ? [...located] : [`${this.keys.definitions}: not valid JSON`] };
    }
    const parsed = parseFlagDocument(data);
    if (parsed.fileIssues.length > 0) return { ok: false, errors: parsed.fileIssues.map((issue) => `${this.keys.definitions}: ${describeIssue(issue)}`) };
    return { ok: true, data, parsed };
  }

  private decodeState(text: string | null): { ok: true; parsed: ParsedState } | { ok: false; errors: string[] } {
    const data = text === null ? undefined : safeJson(text);
    if (text !== null && data === undefined) return { ok: false, errors: [`${this.keys.state}: not valid JSON`] };
    const parsed = parseStateDocument(data);
    if (parsed.issues.length > 0) return { ok: false, errors: parsed.issues.map((issue) => `${this.keys.state}: ${describeIssue(issue)}`) };
    return { ok: true, parsed };
  }

  /**
   * The last good definitions with the state and revision stored now: evaluation goes on as
   * before, and a read-modify-write (a guardian's rollback) is checked against the revision it
   * will meet, so it lands instead of conflicting for as long as the definitions stay broken.
   */
  private lastGoodNow(last: StoreSnapshot, stored: Stored, errors: readonly string[]): StoreSnapshot {
    const problem = `${this.source} is invalid; the last good flags keep serving:\n  ${errors.join('\n  ')}`;
    const state = this.decodeState(stored.state);
    if (!state.ok) return { ...last, problem };
    return { ...last, revision: stored.revision ?? '0', state: state.parsed.flags, problem };
  }

  private keep(snapshot: StoreSnapshot, stored: Stored): void {
    this.last = snapshot;
    this.lastFingerprint = fingerprintOf(stored);
  }

  private startWatching(): void {
    // Watchers hear of changes relative to what load() gave them.
    this.toldFingerprint = this.lastFingerprint;
    const subscriber = this.client.duplicate({ connectionName: 'rollout-guardian-changes' });
    this.subscriber = subscriber;
    subscriber.on('error', (error: Error) => {
      this.lastError = error;
    });
    subscriber.on('close', () => this.connectionLost());
    subscriber.on('ready', () => {
      // ioredis re-subscribes on its own right after this event; subscribing here as well
      // covers a first subscription that never happened, and its reply tells us that no
      // change can slip between the subscription and the resync that follows it.
      queueMicrotask(() => void this.subscribeAndResync(subscriber));
    });
    // The message carries the new revision; reading the store is as cheap as comparing it.
    subscriber.on('message', () => void this.refresh());
    subscriber.connect().catch(() => undefined); // the outcome arrives as 'ready' or 'close'
    this.resyncTimer = setInterval(() => void this.refresh(), this.resyncMs);
    this.resyncTimer.unref();
  }

  private async subscribeAndResync(subscriber: Redis): Promise<void> {
    if (this.closed) return;
    try {
      await subscriber.subscribe(this.keys.changes);
    } catch (err) {
      this.connectionLost(err);
      return;
    }
    await this.refresh();
  }

  /** Either connection dropped: watchers hear it once, the last snapshot keeps serving. */
  private connectionLost(err?: unknown): void {
    if (this.closed || this.subscriber === undefined || this.troubled) return;
    this.troubled = true;
    this.listeners.emit({ type: 'unavailable', error: this.unreachable(err ?? this.lastError ?? new Error('the connection closed'), 'serving the last snapshot') });
  }

  /** Reads the store and tells watchers what changed. Never rejects; never runs twice at once. */
  private refresh(): Promise<void> {
    return this.refreshes.run();
  }

  private async refreshOnce(): Promise<void> {
    if (this.closed) return;
    let stored: Stored;
    try {
      await this.connected();
      stored = await this.read();
    } catch (err) {
      this.connectionLost(err);
      return;
    }
    // Available again only once changes can be heard: the subscription is part of it.
    if (this.troubled && this.subscriber?.status === 'ready') {
      this.troubled = false;
      this.listeners.emit({ type: 'available' });
    }
    const fingerprint = fingerprintOf(stored);
    if (fingerprint === this.toldFingerprint || fingerprint === this.toldBadFingerprint) return;
    const decoded = this.decodeSafely(stored);
    if (!decoded.ok) {
      this.toldBadFingerprint = fingerprint;
      this.listeners.emit({
        type: 'invalid',
        source: this.source,
        issues: [],
        message: `${this.source} is invalid; the last good flags keep serving:\n  ${decoded.errors.join('\n  ')}`,
      });
      return;
    }
    this.toldBadFingerprint = undefined;
    this.toldFingerprint = fingerprint;
    this.keep(decoded.snapshot, stored);
    this.listeners.emit({ type: 'change', snapshot: decoded.snapshot });
  }


  private async auditForward(query: AuditQuery): Promise<AuditEntry[]> {
    const entries: AuditEntry[] = [];
    let from = '-';
    for (;;) {
      const page = await this.client.xrange(this.keys.audit, from, '+', 'COUNT', AUDIT_PAGE);
      for (const [, fields] of page) {
        const entry = auditEntryOf(fields);
        if (entry !== undefined && (query.flagKey === undefined || entry.flagKey === query.flagKey)) entries.push(entry);
      }
      if (page.length < AUDIT_PAGE) return entries;
      from = `(${(page[page.length - 1] as [string, string[]])[0]}`;
    }
  }

  /** The newest `limit` matching entries, read from the end so a long log is not read whole. */
  private async auditBackward(query: AuditQuery, limit: number): Promise<AuditEntry[]> {
    const newestFirst: AuditEntry[] = [];
    let to = '+';
    while (newestFirst.length < limit) {
      const page = await this.client.xrevrange(this.keys.audit, to, '-', 'COUNT', AUDIT_PAGE);
      for (const [, fields] of page) {
        const entry = auditEntryOf(fields);
        if (entry !== undefined && (query.flagKey === undefined || entry.flagKey === query.flagKey)) newestFirst.push(entry);
      }
      if (page.length < AUDIT_PAGE) break;
      to = `(${(page[page.length - 1] as [string, string[]])[0]}`;
    }
    return selectAudit(newestFirst.reverse(), query);
  }
}

/** Whether the write brings whole definitions of its own (as `copy` does), so an empty store may take it. */
function createsDefinitions(request: WriteRequest): boolean {
  return request.changes.some((c) => c.definitionEdits?.some((e) => e.path.length === 0 && e.value !== undefined) === true);
}

/**
 * A document marked broken, so that, as for a corrupt flag file, applyWrite lets state-only
 * writes (a rollback) go ahead on the last good definitions and refuses definition edits.
 */
function brokenDocument(errors: readonly string[]): Document {
  const doc = new Document(null);
  doc.errors.push(new YAMLParseError([0, 0], 'IMPOSSIBLE', errors.join('; ')));
  return doc;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Waits for a new connection's first outcome: ready, or the error that closed it. */
function firstConnection(client: Redis, lastError: () => Error | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onReady = (): void => {
      client.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      client.off('ready', onReady);
      reject(lastError() ?? new Error('the connection closed'));
    };
    client.once('ready', onReady);
    client.once('close', onClose);
    if (client.status === 'wait') client.connect().catch(() => undefined); // the outcome arrives as an event
  });
}

/** QUIT when connected, so replies in flight arrive; otherwise drop the socket and stop retrying. */
async function hangUp(client: Redis): Promise<void> {
  if (client.status === 'ready') {
    try {
      await client.quit();
      return;
    } catch {
      // fall through to a hard disconnect
    }
  }
  client.disconnect();
}

