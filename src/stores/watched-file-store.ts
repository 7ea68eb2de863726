// What every store on local files shares: a definitions file with `<name>.state.json` and
// `<name>.audit.jsonl` beside it, reload on change (the last good flags kept through a corrupt
// edit), and writes under a lock file that check the revision and replace files atomically.
// Subclasses say how their definitions file reads and how a write changes it.
import { type FSWatcher, realpathSync, watch as watchDir } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import type { Clock } from '../core/clock.js';
import type { FlagDefinition } from '../core/flag-schema.js';
import type { StateDocument } from './apply-write.js';
import { readAuditLines } from './audit-log.js';
import { withFileLock } from './file-lock.js';
import { DEFAULT_WORKER_TIMEOUT_MS, ParseWorker, type WorkerAnswer } from './parse-worker.js';
import type { JobResult, StreamedField } from './parse-worker-protocol.js';
import { type ParsedTexts, type StoreTexts, parseStateText, readStoreTexts, revisionOf } from './store-texts.js';
import { recoverJournal, removeLeftovers, writeJournaled } from './write-journal.js';
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
import { systemClock } from '../runtime/system-clock.js';
import { CoalescedRun, StoreListeners } from './store-listeners.js';

/** A write worked out against the current texts: what to write, and what to audit. */
export interface PreparedWrite {
  readonly next: StoreTexts;
  readonly entries: readonly Omit<AuditEntry, 'revision'>[];
  /** Other files written with the change (a corrupt state file kept aside). */
  readonly extraFiles?: readonly { readonly path: string; readonly text: string }[];
}

export type { ParsedTexts, StoreTexts };
/** The kind of a store's worker job and what that kind needs. */
export type WorkerJobKind = { readonly kind: 'file' } | { readonly kind: 'flagd'; readonly nowMs: number; readonly rolloutMetadata: boolean };
export type ParsedJobResult = Extract<JobResult, { status: 'parsed' }>;
export { revisionOf };

export interface WatchedFileStoreOptions {
  readonly clock?: Clock;
  /** Reload when the files change (default true). */
  readonly watch?: boolean;
  readonly debounceMs?: number;
  /** How often a watching store reads its files again in case a change raised no event (default 10000). */
  readonly resyncMs?: number;
  readonly lockTimeoutMs?: number;
  /**
   * A reload of a definitions file at least this large is read, parsed and validated in a
   * worker thread, so evaluations never wait for it (default 32 KiB; 0: every file; Infinity: none).
   */
  readonly workerThresholdBytes?: number;
  /** How long the worker may take over one file before it is stopped and the reload refused (default 60000). */
  readonly workerTimeoutMs?: number;
}

/** About 60 flags of YAML: below it, parsing on the event loop costs less than a few milliseconds. */
export const DEFAULT_WORKER_THRESHOLD_BYTES = 32 * 1024;

/** The state document to write next: the write counter moved on, written first so revisionOf finds it. */
export function nextStateText(previous: StateDocument, next: StateDocument): string {
  const { version: _version, revision: _revision, ...rest } = next;
  return `${JSON.stringify({ version: 1, revision: (previous.revision ?? 0) + 1, ...rest }, null, 2)}\n`;
}

export abstract class WatchedFileStore implements FlagStore {
  readonly source: string;
  readonly statePath: string;
  readonly auditPath: string;
  readonly lockPath: string;
  /** Present only while a write is in progress, or after one was cut off: see write-journal.ts. */
  readonly journalPath: string;
  protected readonly clock: Clock;
  private readonly listeners = new StoreListeners();
  private readonly reloads = new CoalescedRun(() => this.reloadOnce(), () => this.closed);
  private readonly debounceMs: number;
  private readonly lockTimeoutMs: number;
  private readonly watchFiles: boolean;
  protected last: StoreSnapshot | undefined;
  private lastBadRevision: string | undefined;
  private watchers: FSWatcher[] | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly resyncMs: number;
  private timer: NodeJS.Timeout | undefined;
  private troubled = false;
  private closed = false;
  /** Files at least this large are read in the worker thread. */
  private readonly workerThresholdBytes: number;
  private readonly workerTimeoutMs: number;
  private worker: ParseWorker | undefined;
  /** Reads in the order they started, and the latest one applied (see applyParsed). */
  private readSeq = 0;
  private appliedSeq = 0;

  protected constructor(source: string, options: WatchedFileStoreOptions) {
    this.source = source;
    const stem = join(dirname(source), basename(source, extname(source)));
    this.statePath = `${stem}.state.json`;
    this.auditPath = `${stem}.audit.jsonl`;
    this.lockPath = `${source}.lock`;
    this.journalPath = `${stem}.journal.json`;
    this.clock = options.clock ?? systemClock;
    this.debounceMs = options.debounceMs ?? 25;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
    this.watchFiles = options.watch ?? true;
    this.resyncMs = options.resyncMs ?? 10_000;
    this.workerThresholdBytes = options.workerThresholdBytes ?? DEFAULT_WORKER_THRESHOLD_BYTES;
    this.workerTimeoutMs = options.workerTimeoutMs ?? DEFAULT_WORKER_TIMEOUT_MS;
  }

  /** The texts as a snapshot, or located errors when the files cannot be used. */
  protected abstract parse(texts: StoreTexts): ParsedTexts;

  /** The request applied to the current texts; throws (InvalidWriteError, ...) to refuse it. */
  protected abstract prepareWrite(texts: StoreTexts, request: WriteRequest): PreparedWrite;

  /** What to tell a user whose definitions file does not exist. */
  protected abstract missingFileMessage(): string;

  async load(): Promise<StoreSnapshot> {
    this.assertOpen();
    // A write cut off by a dead process is undone before anyone reads its half, and what it
    // left behind (temp files, its lock) is cleared; once, when the store is first read.
    if (this.last === undefined && (await this.leftBehind())) await this.recover();
    if (await this.readsOffThread()) return this.loadInWorker();
    let texts: StoreTexts;
    try {
      texts = await this.readTexts();
    } catch (err) {
      if (this.last) return this.last;
      throw err;
    }
    const result = this.parseSafely(texts);
    if (result.ok) {
      this.last = result.snapshot;
      return result.snapshot;
    }
    // The last good flags at the revision the files have now: a read-modify-write (a
    // guardian's rollback) then lands instead of conflicting while the files stay bad.
    if (this.last) return { ...this.last, revision: revisionOf(texts), problem: `${this.source} is invalid; the last good flags keep serving:\n  ${result.errors.join('\n  ')}` };
    throw new FlagSourceError(`${this.source} is invalid:\n  ${result.errors.join('\n  ')}`, this.source);
  }

  watch(listener: StoreListener): () => void {
    this.assertOpen();
    const remove = this.listeners.add(listener);
    if (this.watchFiles && this.watchers === undefined) this.startWatching();
    return remove;
  }

  /** Reads the files again and tells the listeners what changed. Never rejects. */
  reload(): Promise<void> {
    return this.reloads.run();
  }

  async write(request: WriteRequest): Promise<WriteResult> {
    return this.writeUnderLock((current) => {
      if (request.expectedRevision !== undefined && request.expectedRevision !== current.revision) {
        throw new RevisionConflictError(request.expectedRevision, current.revision);
      }
      return request;
    });
  }

  /**
   * A read-modify-write under the lock: `build` sees the store as it is now and returns the
   * write. Writers on one machine queue for the lock instead of failing on a stale revision.
   */
  async update(build: (current: StoreSnapshot) => WriteRequest): Promise<WriteResult> {
    return this.writeUnderLock(build);
  }

  /**
   * Finishes what a writer that died left behind: undoes a half-made write (its journal is
   * still there) and removes its temp files. Takes the lock; a no-op while another writer
   * holds it, since that writer does the same.
   */
  async recover(): Promise<void> {
    this.assertOpen();
    await withFileLock(this.lockPath, () => this.recoverUnderLock(), { timeoutMs: 0 }).catch(() => undefined);
  }

  /** Whether a writer that died left a journal, a lock or temp files beside the files. */
  private async leftBehind(): Promise<boolean> {
    const names = [basename(this.journalPath), basename(this.lockPath), `.${basename(this.source)}.`, `.${basename(this.statePath)}.`];
    try {
      return (await readdir(dirname(this.source))).some((entry) => names.some((n) => entry.startsWith(n)));
    } catch {
      return false;
    }
  }

  private async recoverUnderLock(): Promise<void> {
    await recoverJournal(this.journalPath);
    await removeLeftovers([this.source, this.statePath, this.journalPath, this.lockPath]);
  }

  private async writeUnderLock(build: (current: StoreSnapshot) => WriteRequest): Promise<WriteResult> {
    this.assertOpen();
    const result = await withFileLock(
      this.lockPath,
      async () => {
        await this.recoverUnderLock();
        const texts = await this.readTexts();
        const request = build(this.snapshotOf(texts));
        const { next, entries: written, extraFiles = [] } = this.prepareWrite(texts, request);
        const revision = revisionOf(next);
        const entries: AuditEntry[] = written.map((e) => ({ ...e, revision }));
        const files = [
          ...extraFiles,
          ...(next.flags !== texts.flags ? [{ path: this.source, text: next.flags }] : []),
          ...(next.state !== undefined && next.state !== texts.state ? [{ path: this.statePath, text: next.state }] : []),
        ];
        await writeJournaled(this.journalPath, files, this.auditPath, entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
        return { revision, entries, next };
      },
      { timeoutMs: this.lockTimeoutMs },
    );
    // Our own listeners see the write at once; the watcher's later reload finds no change. A
    // large file is parsed again in the worker thread (it reads what was just written).
    if (await this.readsOffThread()) await this.reload();
    else await this.applyTexts(result.next);
    return { revision: result.revision, entries: result.entries };
  }

  /** The store as the texts say; when they are unusable, the last good flags at the revision they have now, so a rollback can land. */
  private snapshotOf(texts: StoreTexts): StoreSnapshot {
    const parsed = this.parseSafely(texts);
    if (parsed.ok) return parsed.snapshot;
    if (this.last !== undefined) return { ...this.last, revision: revisionOf(texts) };
    throw new FlagSourceError(`${this.source} is invalid:\n  ${parsed.errors.join('\n  ')}`, this.source);
  }

  async audit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    return readAuditLines(this.auditPath, query);
  }

  /** The id of the worker thread that reads this store's large files, while one runs (for diagnostics). */
  get workerThreadId(): number | undefined {
    return this.worker?.threadId;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const watcher of this.watchers ?? []) watcher.close();
    this.watchers = undefined;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    if (this.timer) clearTimeout(this.timer);
    this.listeners.clear();
    await this.worker?.close();
    await this.reloads.inFlight;
  }

  protected readTexts(): Promise<StoreTexts> {
    return readStoreTexts(this.source, this.statePath, this.missingFileMessage());
  }

  /** The state document, or a message saying what is wrong with it. */
  protected parseState(text: string | undefined): StateDocument | string {
    return parseStateText(text, this.statePath);
  }

  /** parse(), with anything it throws (a bug, a stack overflow) turned into a refusal: a watcher must never die of a file. */
  private parseSafely(texts: StoreTexts): ParsedTexts {
    try {
      return this.parse(texts);
    } catch (err) {
      return { ok: false, errors: [`${this.source}: cannot be read as flags: ${(err as Error).message}`] };
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`the store for ${this.source} is closed`);
  }

  private startWatching(): void {
    // Our own bookkeeping files change on every write; nothing else in the folder is ignored,
    // because a Kubernetes ConfigMap update renames `..data`, never the flag file's own name.
    const ours = [basename(this.auditPath), basename(this.lockPath), basename(this.journalPath)];
    const ignored = (name: string): boolean => ours.some((o) => name === o || name.startsWith(`${o}.`)) || name.endsWith('.tmp') || name.endsWith('.backup');
    const dirs = new Set([dirname(this.source), dirname(this.statePath)]);
    try {
      // A symlinked file is edited where it really lives: watch there too.
      dirs.add(dirname(realpathSync(this.source)));
    } catch {
      // Not there yet: the folder's events and the periodic re-read find it when it comes.
    }
    this.watchers = [];
    for (const dir of dirs) {
      try {
        const watcher = watchDir(dir, { persistent: false }, (_event, name) => {
          if (name === null || !ignored(name.toString())) this.scheduleReload();
        });
        watcher.on('error', (error) => this.listeners.emit({ type: 'unavailable', error }));
        this.watchers.push(watcher);
      } catch (error) {
        this.listeners.emit({ type: 'unavailable', error: error as Error });
      }
    }
    // A backstop for changes no event announced (network file systems, a file edited through
    // another link): read again now and then; an unchanged file costs a read and a hash.
    this.resyncTimer = setInterval(() => void this.reload(), this.resyncMs);
    this.resyncTimer.unref();
  }

  private scheduleReload(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    // Editors write in several steps; one reload after they settle.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reload();
    }, this.debounceMs);
    this.timer.unref();
  }

  private async reloadOnce(): Promise<void> {
    if (await this.readsOffThread()) return this.reloadInWorker();
    const seq = ++this.readSeq;
    let texts: StoreTexts;
    try {
      texts = await this.readTexts();
    } catch (err) {
      this.onUnreadable(err as Error);
      return;
    }
    await this.applyParsed(seq, revisionOf(texts), () => this.parseSafely(texts));
  }

  /** Whether the definitions file is large enough to be read in the worker thread. */
  private async readsOffThread(): Promise<boolean> {
    if (this.workerThresholdBytes === Number.POSITIVE_INFINITY) return false;
    try {
      return (await stat(this.source)).size >= this.workerThresholdBytes;
    } catch {
      return false; // the main thread's read says what is wrong
    }
  }

  /** load(), the files read, parsed and validated in the worker thread. */
  private async loadInWorker(): Promise<StoreSnapshot> {
    let answer: WorkerAnswer;
    try {
      answer = await this.parseWorker().run({ source: this.source, statePath: this.statePath, missingMessage: this.missingFileMessage(), known: [], ...this.workerJob() });
    } catch (err) {
      if (this.last) return { ...this.last, problem: (err as Error).message };
      throw new FlagSourceError((err as Error).message, this.source);
    }
    const result = answer.result;
    if (result.status === 'unreadable') {
      if (this.last) return this.last;
      throw new FlagSourceError(result.message, result.path);
    }
    if (result.status === 'parsed') {
      const snapshot = await this.fromWorker(result, answer.streamed);
      this.last = snapshot;
      return snapshot;
    }
    const errors = result.status === 'invalid' ? result.errors : [];
    if (this.last) return { ...this.last, revision: result.revision, problem: `${this.source} is invalid; the last good flags keep serving:\n  ${errors.join('\n  ')}` };
    throw new FlagSourceError(`${this.source} is invalid:\n  ${errors.join('\n  ')}`, this.source);
  }

  private parseWorker(): ParseWorker {
    this.worker ??= new ParseWorker(this.source, this.workerTimeoutMs);
    return this.worker;
  }

  /** A reload read, parsed and validated in the worker thread; this thread only swaps the snapshot in. */
  private async reloadInWorker(): Promise<void> {
    const seq = ++this.readSeq;
    const known = [this.last?.revision, this.lastBadRevision].filter((r): r is string => r !== undefined);
    let answer: WorkerAnswer;
    try {
      answer = await this.parseWorker().run({ source: this.source, statePath: this.statePath, missingMessage: this.missingFileMessage(), known, ...this.workerJob() });
    } catch (err) {
      // The thread crashed, hung or was closed: the file's fate is unknown, the last good flags stay.
      if (!this.closed) this.listeners.emit({ type: 'invalid', source: this.source, issues: [], message: (err as Error).message });
      return;
    }
    const result = answer.result;
    if (result.status === 'unreadable') {
      this.onUnreadable(new FlagSourceError(result.message, result.path));
      return;
    }
    if (result.status === 'known' && result.revision !== this.last?.revision && result.revision !== this.lastBadRevision) {
      // Known when asked, no longer (a write landed meanwhile): read it again, parsing this time.
      this.lastBadRevision = undefined;
      void this.reload();
      return;
    }
    await this.applyParsed(seq, result.revision, async () => {
      if (result.status === 'parsed') return { ok: true, snapshot: await this.fromWorker(result, answer.streamed) };
      if (result.status === 'invalid') return { ok: false, errors: result.errors };
      return { ok: false, errors: [] }; // known: applyParsed returns before asking
    });
  }

  /** The kind of job the worker runs for this store, and what it needs beyond the paths. */
  protected abstract workerJob(): WorkerJobKind;

  /** The worker's answer as a snapshot on this thread; a subclass adds what cannot cross threads. */
  protected fromWorker(result: ParsedJobResult, streamed: ReadonlyMap<StreamedField, unknown[]>): Promise<StoreSnapshot> {
    return Promise.resolve({
      revision: result.revision,
      parsed: { definitions: new Map(streamed.get('definitions') as [string, FlagDefinition][] | undefined), invalid: result.invalid, fileIssues: result.fileIssues },
      state: result.state,
      source: this.source,
      flagErrors: result.flagErrors,
    });
  }

  private onUnreadable(error: Error): void {
    if (!this.troubled) {
      this.troubled = true;
      this.listeners.emit({ type: 'unavailable', error });
    }
  }

  private applyTexts(texts: StoreTexts): Promise<void> {
    return this.applyParsed(++this.readSeq, revisionOf(texts), () => this.parseSafely(texts));
  }

  /**
   * Swaps in what texts of `revision` parse to. `seq` orders the reads: a read overtaken by a
   * later one that was already applied (a write's, while the worker parsed) is dropped.
   */
  private async applyParsed(seq: number, revision: string, parse: () => ParsedTexts | Promise<ParsedTexts>): Promise<void> {
    if (seq < this.appliedSeq) return;
    if (this.troubled) {
      this.troubled = false;
      this.listeners.emit({ type: 'available' });
    }
    if (revision === this.lastBadRevision) return;
    if (revision === this.last?.revision) {
      // Reverted to the last good content: watchers that heard it turn bad hear it is good again.
      if (this.lastBadRevision !== undefined) {
        this.lastBadRevision = undefined;
        this.listeners.emit({ type: 'change', snapshot: this.last });
      }
      return;
    }
    let result: ParsedTexts;
    try {
      result = await parse();
    } catch (err) {
      result = { ok: false, errors: [`${this.source}: cannot be read as flags: ${(err as Error).message}`] };
    }
    if (seq < this.appliedSeq || this.closed) return;
    this.appliedSeq = seq;
    if (!result.ok) {
      this.lastBadRevision = revision;
      this.listeners.emit({ type: 'invalid', source: this.source, issues: [], message: `${this.source} is invalid; the last good flags keep serving:\n  ${result.errors.join('\n  ')}` });
      return;
    }
    this.lastBadRevision = undefined;
    this.last = result.snapshot;
    this.listeners.emit({ type: 'change', snapshot: result.snapshot });
  }
}
