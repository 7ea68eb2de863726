// The boundary every backend implements. Definitions (what users write) and runtime state
// (what the system decides) travel apart; every mutation carries an actor and a reason, is
// refused when its expected revision is stale, and lands in the audit log.
import type { ExternalEvaluator } from '../core/compile-flag.js';
import type { FlagRuntimeState } from '../core/flag-schema.js';
import type { ParsedFlags, SchemaIssue } from '../core/parse-flags.js';

/** Who changed something and why: every mutation carries one. */
export interface Attribution {
  readonly actor: string;
  readonly reason: string;
}

export interface StoreSnapshot {
  /** Opaque; changes whenever definitions or state change. Pass it back as expectedRevision. */
  readonly revision: string;
  readonly parsed: ParsedFlags;
  readonly state: ReadonlyMap<string, FlagRuntimeState>;
  /** Where the flags come from (a path or URL), for messages. */
  readonly source: string;
  /** For each invalid flag, where and why, as `file:line:col: path: expected ...` lines. */
  readonly flagErrors?: ReadonlyMap<string, readonly string[]>;
  /**
   * Flags whose targeting our model cannot express (flagd JSON Logic), each with the
   * evaluator that decides it; their entry in `parsed.definitions` holds the rest.
   */
  readonly external?: ReadonlyMap<string, ExternalEvaluator>;
  /**
   * Why the store is not fit to serve as it is: empty (a Redis restarted without its data),
   * or unusable so these are the last good flags. Readiness checks report it.
   */
  readonly problem?: string;
  /**
   * For a source with its own serving semantics (a flagd file): how each flag is served, runtime
   * state already materialized into it. The provider answers these flags from here rather than
   * from the model; a result with value null and no error code means the caller's default.
   */
  readonly serving?: ReadonlyMap<string, ExternalEvaluator>;
}

export type StoreEvent =
  | { readonly type: 'change'; readonly snapshot: StoreSnapshot }
  /** The source changed but cannot be used; the last good flags keep serving. */
  | { readonly type: 'invalid'; readonly source: string; readonly issues: readonly SchemaIssue[]; readonly message: string }
  /** The source cannot be reached; the last snapshot keeps serving. */
  | { readonly type: 'unavailable'; readonly error: Error }
  | { readonly type: 'available' };

export type StoreListener = (event: StoreEvent) => void;

export interface DefinitionEdit {
  /** Path inside the flag's definition, such as ['rollout', 'percentage']. */
  readonly path: readonly (string | number)[];
  /** The new value; undefined deletes the field. */
  readonly value: unknown;
}

export interface FlagChange {
  readonly flagKey: string;
  /** The flag's new runtime state; null clears it; undefined leaves it as it is. */
  readonly state?: FlagRuntimeState | null;
  /** Edits to the definition, applied in place so the file keeps its comments and order. */
  readonly definitionEdits?: readonly DefinitionEdit[];
}

export interface WriteRequest {
  readonly actor: string;
  readonly reason: string;
  /** A short verb for the audit log: override, rollback, set, ... */
  readonly action: string;
  /** Refuse the write (RevisionConflictError) unless the store is still at this revision. */
  readonly expectedRevision?: string;
  readonly changes: readonly FlagChange[];
  /** The numbers a decision was based on, kept with the audit entry. */
  readonly evidence?: Readonly<Record<string, unknown>>;
}

export interface FlagAuditView {
  readonly definition: unknown;
  readonly state: FlagRuntimeState | null;
}

export interface AuditEntry {
  readonly time: string;
  readonly actor: string;
  readonly reason: string;
  readonly action: string;
  readonly flagKey: string;
  readonly before: FlagAuditView;
  readonly after: FlagAuditView;
  /** The store revision the write produced. */
  readonly revision: string;
  readonly evidence?: Readonly<Record<string, unknown>>;
}

export interface WriteResult {
  readonly revision: string;
  readonly entries: readonly AuditEntry[];
}

export interface AuditQuery {
  readonly flagKey?: string;
  /** The newest `limit` entries. */
  readonly limit?: number;
}

export interface FlagStore {
  readonly source: string;
  /** The current flags and state; the last good ones when the source turned bad. */
  load(): Promise<StoreSnapshot>;
  /** Calls `listener` on every change or trouble; returns the function that stops it. */
  watch(listener: StoreListener): () => void;
  write(request: WriteRequest): Promise<WriteResult>;
  /**
   * A read-modify-write the store serializes itself (the file store, under its lock): `build`
   * sees the store as it is at that moment. Stores without it are written with compare-and-set.
   */
  update?(build: (current: StoreSnapshot) => WriteRequest): Promise<WriteResult>;
  audit(query?: AuditQuery): Promise<AuditEntry[]>;
  /** Idempotent; the store is inert afterwards. */
  close(): Promise<void>;
}

/**
 * Whether this process may act on the store now (write rollbacks, advance plans). Replicas of
 * `serve` on one Redis store share a lease and one of them acts at a time (docs/fleet.md); the
 * guardian and the plan runner ask before every write, and keep judging either way.
 */
export interface Lease {
  readonly acting: boolean;
}

export class RevisionConflictError extends Error {
  override readonly name = 'RevisionConflictError';
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`the flags changed since they were read (expected revision ${expected}, found ${actual}); read them again and retry`);
  }
}

/** The write would leave a definition or the state invalid; nothing was written. */
export class InvalidWriteError extends Error {
  override readonly name = 'InvalidWriteError';
  constructor(
    message: string,
    readonly issues: readonly SchemaIssue[],
  ) {
    super(message);
  }
}

/** The flag source is unusable (missing, unreadable or invalid as a whole). */
export class FlagSourceError extends Error {
  override readonly name = 'FlagSourceError';
  constructor(
    message: string,
    readonly source: string,
    readonly issues: readonly SchemaIssue[] = [],
  ) {
    super(message);
  }
}
