// The guardian lease on a Redis store: of the `serve` replicas on one store, one holds the
// lease and acts (rollbacks, plan steps); the others stand by, judging, and take over when the
// holder stops renewing. Writes made under the lease are fenced by its token (redis-store.ts).
//
// Time: expiry is never compared across hosts. A standby notes, on its own clock, when it last
// saw the lease record change (every renewal bumps its version) and takes over only once it
// has seen no change for the holder's TTL; the holder counts its TTL from when it sent the
// renewal. Both measure durations, each on one clock, so only clock rates must agree, never
// clock readings (Kubernetes' leader election works the same way; see docs/fleet.md).
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import type { AuditQuery, AuditEntry, FlagStore, Lease, StoreListener, StoreSnapshot, WriteRequest, WriteResult } from './flag-store.js';
import { type LeaseFence, type RedisFlagStore, NotLeaseHolderError } from './redis-store.js';
import { systemClock } from '../runtime/system-clock.js';

// KEYS: lease. ARGV: owner, the token this owner holds ('' for none), TTL in ms, the version a
// standby has seen unchanged for a whole TTL ('' for none). Renews the owner's own lease, takes
// a free or expired one with the next fencing token, or says who holds it. The record never
// expires in Redis: its token must keep growing across holders.
const ACQUIRE_SCRIPT = `
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
local token = tonumber(redis.call('HGET', KEYS[1], 'token') or '0')
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if owner ~= '' and owner == ARGV[1] and tostring(token) == ARGV[2] then
  version = version + 1
  redis.call('HSET', KEYS[1], 'version', version, 'ttlMs', ARGV[3])
  return {'held', owner, token, version, ARGV[3]}
end
if owner == '' or (ARGV[4] ~= '' and tostring(version) == ARGV[4]) then
  token = token + 1
  version = version + 1
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token, 'version', version, 'ttlMs', ARGV[3])
  return {'acquired', ARGV[1], token, version, ARGV[3]}
end
return {'other', owner, token, version, redis.call('HGET', KEYS[1], 'ttlMs') or '0'}
`;

// KEYS: lease. ARGV: owner, token. Frees the lease if this owner still holds it; the token
// and version stay, so the next holder's token is higher and standbys see the change.
const RELEASE_SCRIPT = `
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] and redis.call('HGET', KEYS[1], 'token') == ARGV[2] then
  redis.call('HSET', KEYS[1], 'owner', '')
  redis.call('HINCRBY', KEYS[1], 'version', 1)
  return 1
end
return 0
`;

type AcquireReply = [status: 'held' | 'acquired' | 'other', owner: string, token: number, version: number, ttlMs: string];

export interface RedisLeaseOptions {
  readonly store: RedisFlagStore;
  /** The guardian's slot: renewals every half slot, a TTL of one and a half. */
  readonly slotMs: number;
  readonly clock?: Clock;
  /** This replica's name in the lease, the status and logs (default host:pid:random). */
  readonly owner?: string;
  /** Where lease acquired, lost and released lines go. */
  readonly log?: (line: string) => void;
}

/** What /api/status says about the lease. */
export interface LeaseStatus {
  /** `lease`: replicas on a Redis store share one; `sole`: the only guardian of its store; `dry-run`: never acts. */
  readonly mode: 'lease' | 'sole' | 'dry-run';
  readonly acting: boolean;
  /** This replica's name in the lease. */
  readonly replica: string | null;
  /** Who holds it as last seen (null: no one, or not known yet). */
  readonly holder: string | null;
  readonly token: number | null;
  readonly ttlMs: number | null;
  readonly renewEveryMs: number | null;
}

interface Observed {
  readonly holder: string;
  readonly token: number;
  readonly version: number;
  readonly ttlMs: number;
  /** When this replica first saw this version, on its own clock. */
  readonly atMs: number;
}

export function defaultReplicaName(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

export class RedisLease implements Lease {
  readonly owner: string;
  /** Renew this often: two renewals may fail in a row before the lease lapses. */
  readonly renewEveryMs: number;
  /** How long after a renewal was sent the holder may act on it, and a standby waits. */
  readonly ttlMs: number;
  private readonly store: RedisFlagStore;
  private readonly clock: Clock;
  private readonly log: (line: string) => void;
  private readonly listeners = new Set<(acting: boolean) => void>();
  /** The token this replica holds (or held, while a renewal is failing). */
  private token: number | undefined;
  private validUntilMs = Number.NEGATIVE_INFINITY;
  private observed: Observed | undefined;
  private wasActing = false;
  private troubleSaid = false;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;

  constructor(options: RedisLeaseOptions) {
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? (() => undefined);
    this.owner = options.owner ?? defaultReplicaName();
    if (this.owner === '' || this.owner.includes(' ')) throw new RangeError(`RedisLease: owner must be a non-empty name without spaces, got "${this.owner}"`);
    this.renewEveryMs = Math.max(1, Math.floor(options.slotMs / 2));
    this.ttlMs = 3 * this.renewEveryMs;
  }

  /** True while this replica holds the lease and its last renewal is younger than the TTL. */
  get acting(): boolean {
    return !this.stopped && this.token !== undefined && this.clock.now() < this.validUntilMs;
  }

  /** The owner and token fenced writes carry, while acting. */
  fence(): LeaseFence | undefined {
    return this.acting ? { owner: this.owner, token: this.token as number } : undefined;
  }

  status(): LeaseStatus {
    const acting = this.acting;
    return {
      mode: 'lease',
      acting,
      replica: this.owner,
      holder: acting ? this.owner : this.observed?.holder || null,
      token: acting ? (this.token ?? null) : (this.observed?.token ?? null),
      ttlMs: this.ttlMs,
      renewEveryMs: this.renewEveryMs,
    };
  }

  /** Called with true when this replica starts acting, false when it stops. */
  onChange(listener: (acting: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Renews or competes every half slot on a timer that does not keep the process alive. */
  start(): void {
    if (this.stopped || this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.renewEveryMs);
    this.timer.unref();
  }

  /** One renewal or attempt. Never rejects; a tick already running is not doubled. */
  tick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.ticking ??= this.runTick()
      .catch((err: unknown) => this.log(`guardian lease: ${messageOf(err)}`))
      .finally(() => {
        this.ticking = undefined;
      });
    return this.ticking;
  }

  /** A fenced write was refused: someone else holds the lease now. */
  lost(holder: string | undefined, token: number | undefined): void {
    if (this.token === undefined) return;
    this.token = undefined;
    this.observed = holder === undefined || token === undefined ? undefined : { holder, token, version: -1, ttlMs: this.ttlMs, atMs: this.clock.now() };
    this.changed(`a write was fenced: ${holder === undefined ? 'no one' : `${holder} (token ${token ?? '?'})`} holds the lease`);
  }

  /**
   * Stops renewing without releasing, as a killed process would: the others take over once
   * the TTL has passed. For failover drills and tests.
   */
  abandon(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Releases the lease at once if held, so a standby takes over at its next renewal. Idempotent. */
  async close(): Promise<void> {
    if (this.stopped) return;
    await this.ticking;
    const token = this.token;
    this.abandon();
    this.token = undefined;
    if (token === undefined) return;
    try {
      const released = await this.store.runScript(RELEASE_SCRIPT, [this.store.keys.lease], [this.owner, String(token)]);
      this.log(released === 1 ? `guardian lease released by ${this.owner} (token ${token})` : `guardian lease: ${this.owner} no longer held it at close`);
    } catch (err) {
      this.log(`guardian lease: could not release (${messageOf(err)}); the others take over once its TTL of ${this.ttlMs} ms has passed`);
    }
    this.emit(false);
  }

  /** A FlagStore over the Redis store whose writes carry this lease's fence. */
  fencedStore(): FlagStore {
    return new FencedStore(this.store, this);
  }

  private async runTick(): Promise<void> {
    const sentMs = this.clock.now();
    if (this.token !== undefined && sentMs >= this.validUntilMs && this.wasActing) this.changed(`no renewal for ${this.ttlMs} ms; standing by until one lands`);
    const observed = this.observed;
    const expired = this.token === undefined && observed !== undefined && observed.holder !== '' && sentMs - observed.atMs >= observed.ttlMs ? String(observed.version) : '';
    let reply: AcquireReply;
    try {
      reply = (await this.store.runScript(ACQUIRE_SCRIPT, [this.store.keys.lease], [this.owner, this.token === undefined ? '' : String(this.token), String(this.ttlMs), expired])) as AcquireReply;
    } catch (err) {
      if (!this.troubleSaid) this.log(`guardian lease: cannot reach the store (${messageOf(err)}); ${this.token === undefined ? 'standing by' : `acting until ${this.ttlMs} ms after the last renewal`}, retrying every ${this.renewEveryMs} ms`);
      this.troubleSaid = true;
      return;
    }
    this.troubleSaid = false;
    if (this.stopped) return;
    const [status, holder, token, version, ttlText] = reply;
    if (status === 'other') {
      const before = this.token;
      this.token = undefined;
      if (observed === undefined || observed.version !== version || observed.holder !== holder) {
        this.observed = { holder, token, version, ttlMs: Number(ttlText) || this.ttlMs, atMs: this.clock.now() };
      }
      if (before !== undefined) this.changed(`${holder === '' ? 'no one' : holder} holds the lease now (token ${token})`);
      return;
    }
    const acquired = status === 'acquired';
    this.token = token;
    this.validUntilMs = sentMs + this.ttlMs;
    this.observed = { holder, token, version, ttlMs: this.ttlMs, atMs: this.clock.now() };
    if (acquired || !this.wasActing) this.changed(acquired ? `acquired with token ${token}${observed?.holder ? ` (from ${observed.holder})` : ''}` : 'renewed after a lapse');
  }

  /** Says a change of role once, in the log and to listeners. */
  private changed(why: string): void {
    const acting = this.acting;
    if (acting === this.wasActing) return;
    this.log(`guardian lease ${acting ? 'held' : 'lost'} by ${this.owner}: ${why}; this replica ${acting ? 'acts' : 'stands by (judging, not writing)'}`);
    this.emit(acting);
  }

  private emit(acting: boolean): void {
    this.wasActing = acting;
    for (const listener of this.listeners) {
      try {
        listener(acting);
      } catch {
        // A listener cannot break the lease.
      }
    }
  }
}

/** The Redis store as the acting guardian writes it: every write fenced by the lease. */
class FencedStore implements FlagStore {
  readonly source: string;

  constructor(
    private readonly store: RedisFlagStore,
    private readonly lease: RedisLease,
  ) {
    this.source = store.source;
  }

  load(): Promise<StoreSnapshot> {
    return this.store.load();
  }

  watch(listener: StoreListener): () => void {
    return this.store.watch(listener);
  }

  async write(request: WriteRequest): Promise<WriteResult> {
    const fence = this.lease.fence();
    if (fence === undefined) throw new NotLeaseHolderError(this.store.source, this.lease.status().holder ?? undefined, this.lease.status().token ?? undefined);
    try {
      return await this.store.write(request, fence);
    } catch (err) {
      if (err instanceof NotLeaseHolderError) this.lease.lost(err.holder, err.token);
      throw err;
    }
  }

  audit(query?: AuditQuery): Promise<AuditEntry[]> {
    return this.store.audit(query);
  }

  /** The store belongs to whoever opened it. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
