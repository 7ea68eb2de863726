// The flagd store: a flagd flag-definition JSON file (the one a flagd daemon watches) read and
// written as our store. Runtime state lives in `<name>.state.json` beside it, as for the file
// store, and every write re-materializes the JSON so the daemon follows what the state decides.
import { createHash } from 'node:crypto';
import { type FSWatcher, watch as watchDir } from 'node:fs';
import { appendFile, readFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { Clock } from '../core/clock.js';
import { type ExternalEvaluator, type FlagMetadata, canonicalJson, fingerprint } from '../core/compile-flag.js';
import { isEmergencyFlag } from '../core/emergency.js';
import {
  type ConversionIssue,
  type FlagdFlag,
  FLAGD_SCHEMA_URL,
  describeConversionIssue,
  fixedVariant,
  fromFlagdFlag,
  staticFlagdFlag,
  toFlagdFlag,
} from '../core/flagd-convert.js';
import type { FlagDefinition, FlagDefinitionInput, FlagRuntimeState } from '../core/flag-schema.js';
import { buildFlagSet } from '../core/flag-set.js';
import { type ParsedFlags, type SchemaIssue, parseFlagDocument, parseStateDocument } from '../core/parse-flags.js';
import { type StateDocument, applyWrite, emptyStateDocument } from './apply-write.js';
import { writeFileAtomic } from './atomic-write.js';
import { readAuditLines } from './audit-log.js';
import { withFileLock } from './file-lock.js';
import { documentOf, locateIssues } from './flag-file-format.js';
import { flagdEvaluators, validateFlagdText } from './flagd-evaluator.js';
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
  InvalidWriteError,
  RevisionConflictError,
} from './flag-store.js';
import { systemClock } from './system-clock.js';

/** `flagd:<path>` names a flagd file where a store location is expected. */
export const FLAGD_LOCATION_PREFIX = 'flagd:';

export interface FlagdFileStoreOptions {
  /** The flagd flag-definition JSON file (a `flagd:` prefix is accepted and dropped). */
  readonly path: string;
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

/**
 * What the store keeps of a flag it rewrote: the flag as its owner wrote it (null: the file did
 * not have it, as a built-in emergency flag) and the hash of what the store wrote instead, so a
 * later hand edit of the flag is taken as the new definition rather than undone.
 */
interface FlagdRecord {
  readonly original: FlagdFlag | null;
  readonly written: string;
}

interface Model {
  readonly snapshot: StoreSnapshot;
  readonly stateDoc: StateDocument;
  /** The file's JSON, flags as they stand in the file. */
  readonly data: Record<string, unknown>;
  /** Per flag: what its owner wrote (restored from the records where the store rewrote it). */
  readonly originals: ReadonlyMap<string, FlagdFlag | null>;
  /** Our definitions, and for external flags their variants, baseline, state and metadata. */
  readonly inputs: Record<string, FlagDefinitionInput>;
  readonly external: ReadonlySet<string>;
}

type Parsed = { ok: true; model: Model } | { ok: false; errors: string[] };

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** `file:line:col` of a JSON.parse error, from the position V8 reports. */
function jsonErrorLine(file: string, text: string, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const position = Number(/position (\d+)/.exec(message)?.[1] ?? 0);
  const before = text.slice(0, position).split('\n');
  return `${file}:${before.length}:${(before.at(-1)?.length ?? 0) + 1}: JSON syntax error: ${message}`;
}

function recordsOf(stateDoc: StateDocument): Record<string, FlagdRecord> {
  const records = stateDoc.flagd;
  if (!isObject(records)) return {};
  const out: Record<string, FlagdRecord> = {};
  for (const [key, record] of Object.entries(records)) {
    if (isObject(record) && typeof record.written === 'string' && (record.original === null || isObject(record.original))) {
      out[key] = { original: record.original as FlagdFlag | null, written: record.written };
    }
  }
  return out;
}

export class FlagdFileStore implements FlagStore {
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

  constructor(options: FlagdFileStoreOptions) {
    const path = options.path.startsWith(FLAGD_LOCATION_PREFIX) ? options.path.slice(FLAGD_LOCATION_PREFIX.length) : options.path;
    this.source = resolve(path);
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
      this.last = result.model.snapshot;
      return this.last;
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
        const parsed = this.parse(texts);
        if (!parsed.ok) throw new FlagSourceError(`${this.source} is invalid, so nothing can be written until it is fixed:\n  ${parsed.errors.join('\n  ')}`, this.source);
        const next = this.applyRequest(parsed.model, texts, request);
        if (next.flags !== texts.flags) await writeFileAtomic(this.source, next.flags);
        await writeFileAtomic(this.statePath, next.state as string);
        const revision = revisionOf(next);
        const entries: AuditEntry[] = next.entries.map((e) => ({ ...e, revision }));
        if (entries.length > 0) await appendFile(this.auditPath, entries.map((e) => `${JSON.stringify(e)}\n`).join(''), 'utf8');
        return { revision, entries, next };
      },
      { timeoutMs: this.lockTimeoutMs },
    );
    // Our own listeners see the write at once; the watcher's later reload finds no change.
    await this.applyTexts(result.next);
    return { revision: result.revision, entries: result.entries };
  }

  /**
   * The flags in our model, as `copy` carries them: a flag our model expresses as its
   * definition; one whose targeting flagd-core evaluates, or one that is invalid, as its flagd
   * JSON, which another store refuses rather than losing that targeting.
   */
  async storedDefinitions(): Promise<Record<string, unknown>> {
    const texts = await this.readTexts();
    const parsed = this.parse(texts);
    if (!parsed.ok) throw new FlagSourceError(`${this.source} is invalid:\n  ${parsed.errors.join('\n  ')}`, this.source);
    const { model } = parsed;
    const out: Record<string, unknown> = {};
    for (const [key, original] of model.originals) {
      if (original === null) continue;
      out[key] = model.external.has(key) || !Object.hasOwn(model.inputs, key) ? original : model.inputs[key];
    }
    return out;
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

  /** The write applied: new state, edited definitions, and the flagd JSON re-materialized. */
  private applyRequest(model: Model, texts: Texts, request: WriteRequest): Texts & { entries: Omit<AuditEntry, 'revision'>[] } {
    for (const change of request.changes) {
      if ((change.definitionEdits?.length ?? 0) > 0 && model.external.has(change.flagKey)) {
        throw new InvalidWriteError(
          `flag "${change.flagKey}" uses flagd targeting rollout-guardian does not model (flagd-core evaluates it); edit ${this.source} directly`,
          [],
        );
      }
      if (change.state?.percentage !== undefined && model.external.has(change.flagKey)) {
        throw new InvalidWriteError(
          `flag "${change.flagKey}" uses flagd targeting rollout-guardian does not model, so it has no percentage to set; it can be overridden or rolled back`,
          [],
        );
      }
    }
    const doc = documentOf({ flags: structuredClone(model.inputs) });
    const applied = applyWrite(doc, model.stateDoc, request, this.clock.now(), model.snapshot.parsed);
    const originals = new Map(model.originals);
    if (applied.definitionsChanged) {
      for (const change of request.changes) {
        if ((change.definitionEdits?.length ?? 0) === 0) continue;
        const definition = applied.parsed.definitions.get(change.flagKey);
        if (definition === undefined) {
          originals.set(change.flagKey, null); // the edit removed the flag
          continue;
        }
        const exported = toFlagdFlag(change.flagKey, definition, undefined, { shutdown: false });
        if (exported.flag === undefined) {
          throw new InvalidWriteError(`the edit cannot be written as flagd JSON: ${exported.skipped.map(describeConversionIssue).join('; ')}`, []);
        }
        originals.set(change.flagKey, exported.flag);
      }
    }
    const { flags, records } = this.materialize(model, originals, applied.parsed, applied.state);
    // What this write changes in the file is ours to answer for; the rest is its owner's.
    const fileFlags = isObject(model.data.flags) ? model.data.flags : {};
    const rewritten = Object.fromEntries(Object.entries(flags).filter(([key, flag]) => !Object.hasOwn(fileFlags, key) || fingerprint(flag) !== fingerprint(fileFlags[key])));
    const evaluators = model.data.$evaluators !== undefined ? { $evaluators: model.data.$evaluators } : {}; // a restored flag may $ref them
    const problems = validateFlagdText(JSON.stringify({ ...evaluators, flags: rewritten }));
    if (problems.length > 0) {
      throw new InvalidWriteError(`the flagd JSON this write produces would not pass flagd's schema: ${problems.map((p) => p.message).join('; ')}`, []);
    }
    const nextData = { ...model.data, flags };
    const flagsText = canonicalJson(model.data) === canonicalJson(nextData) ? texts.flags : `${JSON.stringify(nextData, null, indentOf(texts.flags))}\n`;
    // revision second, so the revision count is the first "revision" in the text (see revisionOf).
    const { version: _version, revision: _revision, flagd: _records, ...rest } = applied.stateDoc;
    const stateOut: StateDocument = { version: 1, revision: (model.stateDoc.revision ?? 0) + 1, ...rest };
    if (Object.keys(records).length > 0) stateOut.flagd = records;
    return { flags: flagsText, state: `${JSON.stringify(stateOut, null, 2)}\n`, entries: [...applied.entries] };
  }

  /**
   * The file's flags as a flagd daemon must serve them: each flag its owner's JSON, unless
   * runtime state or an emergency shutdown fixes its outcome (then a flag that serves one
   * variant) or sets a runtime percentage (then its fractional weights rewritten).
   */
  private materialize(
    model: Model,
    originals: ReadonlyMap<string, FlagdFlag | null>,
    parsed: ParsedFlags,
    state: ReadonlyMap<string, FlagRuntimeState>,
  ): { flags: Record<string, FlagdFlag>; records: Record<string, FlagdRecord> } {
    const shutdown = buildFlagSet(parsed, state, this.clock.now(), undefined, model.snapshot.external).set.shutdown;
    const fileFlags = isObject(model.data.flags) ? model.data.flags : {};
    // The file's flags in order, then flags an edit added, then built-in emergency flags state may need.
    const keys = new Set([...Object.keys(fileFlags), ...originals.keys(), ...[...parsed.definitions.keys()].filter(isEmergencyFlag)]);
    const flags: Record<string, FlagdFlag> = {};
    const records: Record<string, FlagdRecord> = {};
    for (const key of keys) {
      const original = originals.get(key) ?? null;
      const definition = parsed.definitions.get(key);
      // A flag we could not read is left as it stands, unless an edit removed it.
      const kept = originals.has(key) && original === null ? null : ((fileFlags[key] as FlagdFlag | undefined) ?? null);
      const out = definition === undefined ? kept : this.served(key, original, definition, state.get(key), shutdown, model.external.has(key));
      if (out !== null) flags[key] = out;
      const differs = out === null ? original !== null : original === null || fingerprint(out) !== fingerprint(original);
      if (definition !== undefined && differs) records[key] = { original, written: fingerprint(out) };
    }
    return { flags, records };
  }

  private served(key: string, original: FlagdFlag | null, definition: FlagDefinition, state: FlagRuntimeState | undefined, shutdown: boolean, external: boolean): FlagdFlag | null {
    const fixed = fixedVariant(definition, state, shutdown && !isEmergencyFlag(key));
    if (fixed !== undefined) {
      const base = original ?? toFlagdFlag(key, definition, undefined, { shutdown: false }).flag;
      return base === undefined ? original : staticFlagdFlag(base, definition.defaultVariant, fixed.variant, fixed.note);
    }
    if (!external && state?.percentage !== undefined) return toFlagdFlag(key, definition, state, { shutdown: false }).flag ?? original;
    return original;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`the flagd store for ${this.source} is closed`);
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
    // Editors and flagd tooling write in several steps; one reload after they settle.
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
    this.last = result.model.snapshot;
    this.emit({ type: 'change', snapshot: result.model.snapshot });
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
          ? `flagd file ${this.source} does not exist; create it (rollout-guardian export --format flagd --out ${basename(this.source)}) or name another`
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

  private parseState(text: string | undefined): StateDocument | string {
    if (text === undefined) return emptyStateDocument();
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      return `${this.statePath}: not valid JSON: ${(err as Error).message}`;
    }
    const state = parseStateDocument(data);
    if (state.issues.length > 0) return `${this.statePath} is invalid: ${state.issues.map((i) => i.message).join('; ')}`;
    return state.raw as StateDocument;
  }

  /** The files as a model: located errors for the file as a whole, per-flag problems as invalid flags. */
  private parse(texts: Texts): Parsed {
    let data: unknown;
    try {
      data = JSON.parse(texts.flags);
    } catch (err) {
      return { ok: false, errors: [jsonErrorLine(this.source, texts.flags, err)] };
    }
    if (!isObject(data) || !isObject(data.flags)) {
      return { ok: false, errors: [`${this.source}:1:1: expected a flagd flag-definition document: an object with a "flags" map ($schema ${FLAGD_SCHEMA_URL})`] };
    }
    const stateDoc = this.parseState(texts.state);
    if (typeof stateDoc === 'string') return { ok: false, errors: [stateDoc] };
    const records = recordsOf(stateDoc);

    const originals = new Map<string, FlagdFlag | null>();
    const inputs: Record<string, FlagDefinitionInput> = {};
    const externalFlags: Record<string, unknown> = {};
    const invalid = new Map<string, SchemaIssue[]>();
    const context = { ...(data.$evaluators !== undefined ? { $evaluators: data.$evaluators } : {}), ...(data.metadata !== undefined ? { metadata: data.metadata } : {}) };
    for (const [key, fileFlag] of Object.entries(data.flags)) {
      const record = records[key];
      const original = record !== undefined && fingerprint(fileFlag) === record.written ? record.original : (fileFlag as FlagdFlag);
      originals.set(key, original);
      if (original === null) continue; // a built-in emergency flag the store wrote; its definition is the built-in one
      const schemaProblems = validateFlagdText(JSON.stringify({ ...context, flags: { [key]: original } }));
      if (schemaProblems.length > 0) {
        invalid.set(key, schemaProblems.map((p) => ({ path: p.path, message: p.message })));
        continue;
      }
      const conversion = fromFlagdFlag(key, original, { metadata: data.metadata });
      if (conversion.definition !== undefined) {
        inputs[key] = conversion.definition;
      } else if (conversion.shadow !== undefined) {
        inputs[key] = conversion.shadow;
        externalFlags[key] = original;
      } else {
        invalid.set(key, conversion.issues.map(toSchemaIssue));
      }
    }
    const fromInputs = parseFlagDocument({ flags: inputs });
    const allInvalid = new Map<string, readonly SchemaIssue[]>([...fromInputs.invalid, ...invalid]);
    const parsed: ParsedFlags = { definitions: fromInputs.definitions, invalid: allInvalid, fileIssues: [] };
    let external: ReadonlyMap<string, ExternalEvaluator>;
    try {
      external = flagdEvaluators({ ...context, flags: externalFlags }, (key, revision) => metadataOf(parsed.definitions.get(key), revision));
    } catch (err) {
      return { ok: false, errors: [`${this.source}: flagd-core cannot load the flags it must evaluate: ${(err as Error).message}`] };
    }
    const lines = new LineCounter();
    const located = parseDocument(texts.flags, { lineCounter: lines, prettyErrors: false });
    const flagErrors = new Map([...allInvalid].map(([key, issues]) => [key, locateIssues(this.source, located, lines, issues)]));
    const snapshot: StoreSnapshot = {
      revision: revisionOf(texts),
      parsed,
      state: new Map(Object.entries(stateDoc.flags)),
      source: this.source,
      flagErrors,
      external,
    };
    return { ok: true, model: { snapshot, stateDoc, data, originals, inputs, external: new Set(Object.keys(externalFlags)) } };
  }
}

function toSchemaIssue(issue: ConversionIssue): SchemaIssue {
  return { path: issue.path, message: issue.message };
}

function metadataOf(definition: FlagDefinition | undefined, revision: string): FlagMetadata {
  return { ...(definition?.metadata ?? {}), revision };
}

function indentOf(text: string): string {
  return /\n([ \t]+)\S/.exec(text)?.[1] ?? '  ';
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
