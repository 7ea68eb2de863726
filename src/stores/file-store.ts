// The file store: definitions in the user's YAML or JSON file, runtime state in
// `<name>.state.json` beside it, the audit log in `<name>.audit.jsonl`. Reloads on change;
// a corrupt edit keeps the last good flags and says where the file is bad; writes take a
// lock, check the revision, and replace files atomically.
import { createHash } from 'node:crypto';
import { type FSWatcher, watch as watchDir } from 'node:fs';
import { appendFile, readFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { Clock } from '../core/clock.js';
import { parseStateDocument } from '../core/parse-flags.js';
import {
  type AuditEntry,
  type AuditQuery,
  type FlagStore,
  type StoreEvent,
  type StoreListener,
  type StoreSnapshot,
  type WriteRequest,
  type WriteResult,
  FlagSourceError,
  RevisionConflictError,
} from './flag-store.js';
import { type StateDocument, applyWrite, emptyStateDocument } from './apply-write.js';
import { readFlagText, renderFlagText, spliceScalarEdits } from './flag-file-format.js';
import { type Document, parseDocument } from 'yaml';
import { canonicalJson } from '../core/compile-flag.js';
import { writeFileAtomic } from './atomic-write.js';
import { withFileLock } from './file-lock.js';
import { systemClock } from './system-clock.js';
import { readAuditLines } from './audit-log.js';

export const FLAGS_ENV_VAR = 'ROLLOUT_GUARDIAN_FLAGS';
export const DEFAULT_FLAGS_FILE = 'flags.yaml';

/** The flag file: the option, else ROLLOUT_GUARDIAN_FLAGS, else flags.yaml. */
export function resolveFlagsPath(path: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  return resolve(path ?? (env[FLAGS_ENV_VAR] || DEFAULT_FLAGS_FILE));
}

export interface FileFlagStoreOptions {
  /** The flag file; defaults to ROLLOUT_GUARDIAN_FLAGS, then flags.yaml. */
  readonly path?: string;
  /** Where the default path is looked up; process.env unless given. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly clock?: Clock;
  /** Reload when the files change (default true). */
  readonly watch?: boolean;
  readonly debounceMs?: number;
  readonly lockTimeoutMs?: number;
}

interface Texts {
  readonly flags: string;
  readonly state: string | undefined;
}

type Parsed = { ok: true; snapshot: StoreSnapshot; stateDoc: StateDocument } | { ok: false; errors: string[] };

export class FileFlagStore implements FlagStore {
  readonly source: string;
  readonly statePath: string;
  readonly auditPath: string;
  readonly lockPath: string;
  private readonly clock: Clock;
  private readonly listeners = new Set<StoreListener>();
  private readonly debounceMs: number;
  private readonly lockTimeoutMs: number;
  private readonly watchFiles: boolean;
  private last: StoreSnapshot | undefined;
  private lastBadRevision: string | undefined;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private reloadAgain = false;
  private troubled = false;
  private closed = false;

  constructor(options: FileFlagStoreOptions = {}) {
    this.source = resolveFlagsPath(options.path, options.env ?? process.env);
    const stem = join(dirname(this.source), basename(this.source, extname(this.source)));
    this.statePath = `${stem}.state.json`;
    this.auditPath = `${stem}.audit.jsonl`;
    this.lockPath = `${this.source}.lock`;
    this.clock = options.clock ?? systemClock;
    this.debounceMs = options.debounceMs ?? 25;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
    this.watchFiles = options.watch ?? true;
  }

  async load(): Promise<StoreSnapshot> {
    this.assertOpen();
    let texts: Texts;
    try {
      texts = await this.readTexts();
    } catch (err) {
      if (this.last) return this.last;
      throw err;
    }
    const result = this.parse(texts);
    if (result.ok) {
      this.last = result.snapshot;
      return result.snapshot;
    }
    if (this.last) return this.last;
    throw new FlagSourceError(`${this.source} is invalid:\n  ${result.errors.join('\n  ')}`, this.source);
  }

  watch(listener: StoreListener): () => void {
    this.assertOpen();
    this.listeners.add(listener);
    if (this.watchFiles && this.watcher === undefined) this.startWatching();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Reads the files again and tells the listeners what changed. Never rejects. */
  reload(): Promise<void> {
    if (this.reloading) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.reloadAgain = false;
        await this.reloadOnce();
      } while (this.reloadAgain && !this.closed);
    })().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  async write(request: WriteRequest): Promise<WriteResult> {
    this.assertOpen();
    const result = await withFileLock(
      this.lockPath,
      async () => {
        const texts = await this.readTexts();
        const current = revisionOf(texts);
        if (request.expectedRevision !== undefined && request.expectedRevision !== current) {
          throw new RevisionConflictError(request.expectedRevision, current);
        }
        const { doc } = readFlagText(texts.flags, this.source);
        const stateDoc = this.parseState(texts.state);
        const applied = applyWrite(doc, stateDoc, request, this.clock.now(), this.last?.parsed);
        const stateOut: StateDocument = { ...applied.stateDoc, revision: (stateDoc.revision ?? 0) + 1 };
        const next: Texts = {
          flags: applied.definitionsChanged ? this.renderEdited(texts.flags, doc, request) : texts.flags,
          state: `${JSON.stringify(stateOut, null, 2)}\n`,
        };
        if (applied.definitionsChanged) await writeFileAtomic(this.source, next.flags);
        await writeFileAtomic(this.statePath, next.state as string);
        const revision = revisionOf(next);
        const entries: AuditEntry[] = applied.entries.map((e) => ({ ...e, revision }));
        if (entries.length > 0) await appendFile(this.auditPath, entries.map((e) => `${JSON.stringify(e)}\n`).join(''), 'utf8');
        return { revision, entries, next };
      },
      { timeoutMs: this.lockTimeoutMs },
    );
    // Our own listeners see the write at once; the watcher's later reload finds no change.
    await this.applyTexts(result.next);
    return { revision: result.revision, entries: result.entries };
  }

  async audit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    return readAuditLines(this.auditPath, query);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.listeners.clear();
    await this.reloading;
  }

  /** The edited file: the old text with new values spliced in where possible, else re-rendered. */
  private renderEdited(text: string, doc: Document, request: WriteRequest): string {
    const edits = request.changes.flatMap((c) => (c.definitionEdits ?? []).map((e) => ({ path: ['flags', c.flagKey, ...e.path], value: e.value })));
    const spliced = spliceScalarEdits(text, this.source, edits);
    if (spliced !== undefined && canonicalJson(parseDocument(spliced).toJS()) === canonicalJson(doc.toJS())) return spliced;
    return renderFlagText(doc, this.source, text);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`the file store for ${this.source} is closed`);
  }

  private startWatching(): void {
    const files = new Set([basename(this.source), basename(this.statePath)]);
    try {
      this.watcher = watchDir(dirname(this.source), { persistent: false }, (_event, name) => {
        if (name === null || files.has(name.toString())) this.scheduleReload();
      });
      this.watcher.on('error', (error) => this.emit({ type: 'unavailable', error }));
    } catch (error) {
      this.emit({ type: 'unavailable', error: error as Error });
    }
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
    let texts: Texts;
    try {
      texts = await this.readTexts();
    } catch (err) {
      if (!this.troubled) {
        this.troubled = true;
        this.emit({ type: 'unavailable', error: err as Error });
      }
      return;
    }
    await this.applyTexts(texts);
  }

  private async applyTexts(texts: Texts): Promise<void> {
    const revision = revisionOf(texts);
    if (this.troubled) {
      this.troubled = false;
      this.emit({ type: 'available' });
    }
    if (revision === this.last?.revision || revision === this.lastBadRevision) return;
    const result = this.parse(texts);
    if (!result.ok) {
      this.lastBadRevision = revision;
      this.emit({
        type: 'invalid',
        source: this.source,
        issues: [],
        message: `${this.source} is invalid; the last good flags keep serving:\n  ${result.errors.join('\n  ')}`,
      });
      return;
    }
    this.lastBadRevision = undefined;
    this.last = result.snapshot;
    this.emit({ type: 'change', snapshot: result.snapshot });
    await Promise.resolve();
  }

  private emit(event: StoreEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own; the others still hear the event.
      }
    }
  }

  private async readTexts(): Promise<Texts> {
    let flags: string;
    try {
      flags = await readFile(this.source, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new FlagSourceError(
        code === 'ENOENT'
          ? `flag file ${this.source} does not exist; create it, pass --store <path>, or set ${FLAGS_ENV_VAR}`
          : `cannot read ${this.source}: ${(err as Error).message}`,
        this.source,
      );
    }
    const state = await readFile(this.statePath, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw new FlagSourceError(`cannot read ${this.statePath}: ${err.message}`, this.statePath);
    });
    return { flags, state };
  }

  private parseState(text: string | undefined): StateDocument {
    if (text === undefined) return emptyStateDocument();
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new FlagSourceError(`${this.statePath}: not valid JSON: ${(err as Error).message}`, this.statePath);
    }
    const state = parseStateDocument(data);
    if (state.issues.length > 0) {
      throw new FlagSourceError(`${this.statePath} is invalid: ${state.issues.map((i) => i.message).join('; ')}`, this.statePath, state.issues);
    }
    return state.raw as StateDocument;
  }

  private parse(texts: Texts): Parsed {
    const read = readFlagText(texts.flags, this.source);
    const errors = [...read.fileErrors];
    let stateDoc: StateDocument = emptyStateDocument();
    try {
      stateDoc = this.parseState(texts.state);
    } catch (err) {
      errors.push((err as Error).message);
    }
    if (errors.length > 0) return { ok: false, errors };
    const snapshot: StoreSnapshot = {
      revision: revisionOf(texts),
      parsed: read.parsed,
      state: new Map(Object.entries(stateDoc.flags)),
      source: this.source,
      flagErrors: read.flagErrors,
    };
    return { ok: true, snapshot, stateDoc };
  }
}

/** `<writes>-<content hash>`: the count makes every write's revision new, the hash catches hand edits. */
function revisionOf(texts: Texts): string {
  const hash = createHash('sha256')
    .update(texts.flags)
    .update('\0')
    .update(texts.state ?? '')
    .digest('hex')
    .slice(0, 12);
  const count = texts.state === undefined ? 0 : Number(/"revision":\s*(\d+)/.exec(texts.state)?.[1] ?? 0);
  return `${count}-${hash}`;
}
