// The flagd store: a flagd flag-definition JSON file (the one a flagd daemon watches) served as
// flagd serves it. Runtime state lives in `<name>.state.json`; what it decides (rollbacks,
// overrides, plan steps) goes to an overlay flagd reads after the user's file, which is never
// rewritten for them: `flagd start --uri file:<name>.json --uri file:<name>.rollout-guardian.flagd.json`.
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { type ExternalEvaluator, type FlagMetadata, canonicalJson, fingerprint } from '../core/compile-flag.js';
import { EMERGENCY_SHUTDOWN, isEmergencyFlag } from '../core/emergency.js';
import {
  type FlagdFlag,
  type FlagdFlagConversion,
  FLAGD_SCHEMA_URL,
  describeConversionIssue,
  fixedVariant,
  fromFlagdFlag,
  staticFlagdFlag,
  toFlagdFlag,
} from '../flagd/flagd-convert.js';
import type { FlagDefinition, FlagDefinitionInput, FlagRuntimeState } from '../core/flag-schema.js';
import { buildFlagSet } from '../core/flag-set.js';
import { type ParsedFlags, type SchemaIssue, parseFlagDocument } from '../core/parse-flags.js';
import { type StateDocument, applyWrite } from './apply-write.js';
import { documentOf, locateIssues } from './flag-file-format.js';
import { flagdLoadIssues, flagdWarnings, parseFlagdDocument } from '../flagd/flagd-evaluator.js';
import { writeFileAtomic } from './atomic-write.js';
import { type AuditEntry, type StoreListener, type StoreSnapshot, type WriteRequest, type WriteResult, FlagSourceError, InvalidWriteError } from './flag-store.js';
import { type ParsedTexts, type PreparedWrite, type StoreTexts, type WatchedFileStoreOptions, WatchedFileStore, revisionOf } from './watched-file-store.js';

/** `flagd:<path>` names a flagd file where a store location is expected. */
export const FLAGD_LOCATION_PREFIX = 'flagd:';

/** What the overlay file's name adds to the flagd file's stem. */
export const FLAGD_OVERLAY_SUFFIX = '.rollout-guardian.flagd.json';

export interface FlagdFileStoreOptions extends WatchedFileStoreOptions {
  /** The flagd flag-definition JSON file (a `flagd:` prefix is accepted and dropped). */
  readonly path: string;
  /**
   * Add our `revision` and `rolloutPercentage` to every result's flagMetadata (default false:
   * a flag's metadata is exactly what flagd serves, the flag set's merged with the flag's).
   */
  readonly rolloutMetadata?: boolean;
}

type Texts = StoreTexts;

/**
 * What an older version of this store kept of a flag it rewrote in the user's file: the flag as
 * its owner wrote it (null: a built-in emergency flag) and the hash of what it wrote instead.
 * Read, never written: while the file still holds the rewritten flag, the owner's is its definition.
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
  /** The overlay flagd must read after the file for it to serve what the state decides. */
  readonly overlayText: string;
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

export class FlagdFileStore extends WatchedFileStore {
  /** The overlay: the guardian's and operators' decisions, as flagd flags that win over the file's. */
  readonly overlayPath: string;
  private readonly rolloutMetadata: boolean;
  /** The overlay the last snapshot needs, and the revision of the texts it was derived from. */
  private pendingOverlay: { text: string; revision: string } | undefined;
  /** The overlay text on disk as far as this store knows (undefined: not read yet). */
  private overlayOnDisk: string | null | undefined;
  private overlaySync: Promise<void> = Promise.resolve();
  private followingOverlay = false;
  private conversions = new Map<string, FlagdFlagConversion>();
  private conversionsMetadata: { value: unknown; text: string } = { value: undefined, text: '' };
  /** Why the overlay could not be written the last time it had to be, or undefined. */
  overlayProblem: string | undefined;

  constructor(options: FlagdFileStoreOptions) {
    const path = options.path.startsWith(FLAGD_LOCATION_PREFIX) ? options.path.slice(FLAGD_LOCATION_PREFIX.length) : options.path;
    super(resolve(path), options);
    this.overlayPath = join(dirname(this.source), `${basename(this.source, extname(this.source))}${FLAGD_OVERLAY_SUFFIX}`);
    this.rolloutMetadata = options.rolloutMetadata ?? false;
  }

  /** Loads the flags and brings the overlay up to date with them. */
  override async load(): Promise<StoreSnapshot> {
    const snapshot = await super.load();
    await this.syncOverlay();
    return snapshot;
  }

  /** Writes state (and, for a definition edit, the file); then the overlay flagd follows. */
  override async write(request: WriteRequest): Promise<WriteResult> {
    const result = await super.write(request);
    await this.syncOverlay();
    return result;
  }

  /** A read-modify-write under the store's lock (what StoreWriter uses); then the overlay flagd follows. */
  override async update(build: (current: StoreSnapshot) => WriteRequest): Promise<WriteResult> {
    const result = await super.update(build);
    await this.syncOverlay();
    return result;
  }

  override watch(listener: StoreListener): () => void {
    if (!this.followingOverlay) {
      // A reload (a hand edit, another process's write) can change the overlay too.
      this.followingOverlay = true;
      super.watch((event) => {
        if (event.type === 'change') void this.syncOverlay();
      });
    }
    return super.watch(listener);
  }

  /**
   * Writes the overlay the last snapshot needs, if it differs from the file on disk. Never
   * rejects: a failure is kept in overlayProblem and retried on the next load, write or change.
   */
  private syncOverlay(): Promise<void> {
    this.overlaySync = this.overlaySync.then(async () => {
      const pending = this.pendingOverlay;
      if (pending === undefined) return;
      try {
        this.overlayOnDisk ??= await readFile(this.overlayPath, 'utf8').catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return null;
          throw err;
        });
        if (this.overlayOnDisk === pending.text) {
          this.overlayProblem = undefined;
          return;
        }
        // Derived from texts that are no longer current: the newer change brings its own overlay.
        if (revisionOf(await this.readTexts()) !== pending.revision) return;
        await writeFileAtomic(this.overlayPath, pending.text);
        this.overlayOnDisk = pending.text;
        this.overlayProblem = undefined;
      } catch (err) {
        this.overlayOnDisk = undefined;
        this.overlayProblem = `cannot write the flagd overlay ${this.overlayPath}: ${(err as Error).message}`;
      }
    });
    return this.overlaySync;
  }

  /**
   * The flags in our model, as `copy` carries them: a flag our model expresses as its
   * definition; one whose targeting flagd-core evaluates, or one that is invalid, as its flagd
   * JSON, which another store refuses rather than losing that targeting.
   */
  async storedDefinitions(): Promise<Record<string, unknown>> {
    const texts = await this.readTexts();
    const parsed = this.parseModel(texts);
    if (!parsed.ok) throw new FlagSourceError(`${this.source} is invalid:\n  ${parsed.errors.join('\n  ')}`, this.source);
    const { model } = parsed;
    const out: Record<string, unknown> = {};
    for (const [key, original] of model.originals) {
      if (original === null) continue;
      out[key] = model.external.has(key) || !Object.hasOwn(model.inputs, key) ? original : model.inputs[key];
    }
    return out;
  }

  /**
   * The file checked without writing anything (no overlay): located errors for what flagd
   * cannot load, and how many flags the file defines.
   */
  async check(): Promise<{ errors: string[]; flagCount: number }> {
    const parsed = this.parseModel(await this.readTexts());
    if (!parsed.ok) return { errors: parsed.errors, flagCount: 0 };
    const errors = [...(parsed.model.snapshot.flagErrors?.values() ?? [])].flat();
    return { errors, flagCount: parsed.model.originals.size };
  }

  /**
   * What flagd's strict schema finds in the file, per flag (key '' for the document as a whole),
   * as located lines. flagd serves these flags anyway, and so does this store: they are warnings.
   */
  async schemaWarnings(): Promise<Map<string, string[]>> {
    const texts = await this.readTexts();
    let data: unknown;
    try {
      data = JSON.parse(texts.flags);
    } catch {
      return new Map(); // not JSON at all: load() says where
    }
    if (!isObject(data) || !isObject(data.flags)) return new Map();
    const found = flagdWarnings({ flags: data.flags, $evaluators: data.$evaluators, metadata: data.metadata });
    if (found.size === 0) return new Map();
    const lines = new LineCounter();
    const located = parseDocument(texts.flags, { lineCounter: lines, prettyErrors: false });
    return new Map([...found].map(([key, issues]) => [key, locateIssues(this.source, located, lines, issues.map((i) => ({ path: i.path, message: i.message })))]));
  }

  protected missingFileMessage(): string {
    return `flagd file ${this.source} does not exist; create it (rollout-guardian export --format flagd --out ${basename(this.source)}) or name another`;
  }

  protected parse(texts: StoreTexts): ParsedTexts {
    const parsed = this.parseModel(texts);
    if (!parsed.ok) return parsed;
    this.pendingOverlay = { text: parsed.model.overlayText, revision: parsed.model.snapshot.revision };
    return { ok: true, snapshot: parsed.model.snapshot };
  }

  protected prepareWrite(texts: StoreTexts, request: WriteRequest): PreparedWrite {
    const parsed = this.parseModel(texts);
    if (!parsed.ok) throw new FlagSourceError(`${this.source} is invalid, so nothing can be written until it is fixed:\n  ${parsed.errors.join('\n  ')}`, this.source);
    const next = this.applyRequest(parsed.model, texts, request);
    return { next: { flags: next.flags, state: next.state }, entries: next.entries };
  }

  /** The write applied: new state and, for an explicit definition edit, that flag rewritten in the file. */
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
      if (change.state !== undefined && change.state !== null && !Object.hasOwn(model.inputs, change.flagKey) && !isEmergencyFlag(change.flagKey)) {
        throw new InvalidWriteError(
          `flag "${change.flagKey}" has no baseline rollout-guardian can hold (no defaultVariant, or metadata or variants its model cannot read), so it cannot be rolled back, overridden or stepped; fix it in ${this.source}`,
          [],
        );
      }
    }
    const doc = documentOf({ flags: structuredClone(model.inputs) });
    const applied = applyWrite(doc, model.stateDoc, request, this.clock.now(), model.snapshot.parsed);
    const fileFlags: Record<string, unknown> = isObject(model.data.flags) ? { ...model.data.flags } : {};
    let edited = false;
    if (applied.definitionsChanged) {
      // An explicit edit of a definition is the owner's change: it goes to their file.
      for (const change of request.changes) {
        if ((change.definitionEdits?.length ?? 0) === 0) continue;
        edited = true;
        const definition = applied.parsed.definitions.get(change.flagKey);
        if (definition === undefined) {
          delete fileFlags[change.flagKey];
          continue;
        }
        const exported = toFlagdFlag(change.flagKey, definition, undefined, { shutdown: false });
        if (exported.flag === undefined) {
          throw new InvalidWriteError(`the edit cannot be written as flagd JSON: ${exported.skipped.map(describeConversionIssue).join('; ')}`, []);
        }
        fileFlags[change.flagKey] = exported.flag;
      }
    }
    const nextData = { ...model.data, flags: fileFlags };
    const flagsText = !edited || canonicalJson(model.data) === canonicalJson(nextData) ? texts.flags : `${JSON.stringify(nextData, null, indentOf(texts.flags))}\n`;
    // revision second, so the revision count is the first "revision" in the text (see revisionOf).
    // Records of flags an older version rewrote in the file are dropped: the overlay replaces them.
    const { version: _version, revision: _revision, flagd: _records, ...rest } = applied.stateDoc;
    const stateOut: StateDocument = { version: 1, revision: (model.stateDoc.revision ?? 0) + 1, ...rest };
    if (isObject(_records) && Object.keys(_records).length > 0 && !edited) stateOut.flagd = _records;
    return { flags: flagsText, state: `${JSON.stringify(stateOut, null, 2)}\n`, entries: [...applied.entries] };
  }

  /**
   * Every flag as a flagd daemon must serve it: its owner's JSON, unless runtime state or an
   * emergency shutdown fixes its outcome (then a flag that serves one variant) or sets a
   * runtime percentage (then its fractional weights rewritten).
   */
  private materialize(
    fileFlags: Readonly<Record<string, unknown>>,
    originals: ReadonlyMap<string, FlagdFlag | null>,
    parsed: ParsedFlags,
    state: ReadonlyMap<string, FlagRuntimeState>,
    external: ReadonlyMap<string, ExternalEvaluator>,
  ): Record<string, FlagdFlag> {
    // Only emergency_shutdown decides the shutdown: compile that one flag, not the whole file.
    const shutdownDefinition = parsed.definitions.get(EMERGENCY_SHUTDOWN);
    const shutdownOnly: ParsedFlags = { definitions: new Map(shutdownDefinition === undefined ? [] : [[EMERGENCY_SHUTDOWN, shutdownDefinition]]), invalid: new Map(), fileIssues: [] };
    const shutdown = buildFlagSet(shutdownOnly, state, this.clock.now(), undefined, external).set.shutdown;
    // The file's flags in order, then built-in emergency flags state may need.
    const keys = new Set([...Object.keys(fileFlags), ...[...parsed.definitions.keys()].filter(isEmergencyFlag)]);
    const flags: Record<string, FlagdFlag> = {};
    for (const key of keys) {
      const original = originals.get(key) ?? null;
      const definition = parsed.definitions.get(key);
      const kept = (fileFlags[key] as FlagdFlag | undefined) ?? null;
      const out = definition === undefined ? kept : this.served(key, original, definition, state.get(key), shutdown, external.has(key));
      if (out !== null) flags[key] = out;
    }
    return flags;
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

  /**
   * A flag in our model, from the last parse when the flag and the set's metadata read the same:
   * an edit of one flag in a large file converts that flag, not all of them.
   */
  private convert(key: string, flag: unknown, setMetadata: unknown, used: Map<string, FlagdFlagConversion>): FlagdFlagConversion {
    if (setMetadata !== this.conversionsMetadata.value) {
      this.conversionsMetadata = { value: setMetadata, text: JSON.stringify(setMetadata) ?? '' };
    }
    const id = `${key}\u0000${JSON.stringify(flag)}\u0000${this.conversionsMetadata.text}`;
    const conversion = this.conversions.get(id) ?? fromFlagdFlag(key, flag, { metadata: setMetadata });
    used.set(id, conversion);
    return conversion;
  }

  /** The files as a model: located errors for the file as a whole, per-flag problems as invalid flags. */
  private parseModel(texts: Texts): Parsed {
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
    const context = { ...(data.$evaluators !== undefined ? { $evaluators: data.$evaluators } : {}), ...(data.metadata !== undefined ? { metadata: data.metadata } : {}) };

    // The model (for writes, plans, the guardian): each flag as its owner wrote it, in our terms where it maps.
    const conversions = new Map<string, FlagdFlagConversion>();
    const originals = new Map<string, FlagdFlag | null>();
    const inputs: Record<string, FlagDefinitionInput> = {};
    const externalFlags: Record<string, unknown> = {};
    const invalid = new Map<string, SchemaIssue[]>();
    for (const [key, fileFlag] of Object.entries(data.flags)) {
      const record = records[key];
      const original = record !== undefined && fingerprint(fileFlag) === record.written ? record.original : (fileFlag as FlagdFlag);
      originals.set(key, original);
      if (original === null) continue; // a built-in emergency flag the store wrote; its definition is the built-in one
      const problems = flagdLoadIssues(key, original);
      if (problems.length > 0) {
        invalid.set(key, problems.map((p) => ({ path: p.path, message: p.message })));
        continue;
      }
      const conversion = this.convert(key, original, data.metadata, conversions);
      if (conversion.definition !== undefined) {
        inputs[key] = conversion.definition;
      } else {
        // Served by flagd's semantics; a shadow (variants, baseline, state) lets state apply around it.
        if (conversion.shadow !== undefined) inputs[key] = conversion.shadow;
        externalFlags[key] = original;
      }
    }
    this.conversions = conversions; // what this parse used: the cache holds no flag the file dropped
    const fromInputs = parseFlagDocument({ flags: inputs });
    const allInvalid = new Map<string, readonly SchemaIssue[]>([...fromInputs.invalid, ...invalid]);
    const parsed: ParsedFlags = { definitions: fromInputs.definitions, invalid: allInvalid, fileIssues: [] };
    const external = parseFlagdDocument({ ...context, flags: externalFlags }, { extraMetadata: (_key, revision) => ({ revision }) }).evaluators;
    const state = new Map(Object.entries(stateDoc.flags));
    // The overlay: each flag whose served form is not the file's (state or shutdown decide it).
    const fileFlags = data.flags;
    const materialized = this.materialize(fileFlags, originals, parsed, state, external);
    const overlay: Record<string, FlagdFlag> = {};
    for (const [key, flag] of Object.entries(materialized)) {
      // Most flags are served as the file has them (the very object): no hashing needed to tell.
      if (flag === fileFlags[key]) continue;
      if (!Object.hasOwn(fileFlags, key) || fingerprint(flag) !== fingerprint(fileFlags[key])) overlay[key] = flag;
    }
    // The overlay carries the file's flag-set metadata and evaluators, so its flags read them as the file's do.
    const overlayText = `${JSON.stringify({ $schema: FLAGD_SCHEMA_URL, ...context, flags: overlay }, null, 2)}\n`;
    // What a flagd daemon serves: the file, then the overlay (a later source wins flag by flag);
    // our revision and rollout percentage only when asked for (flagd's metadata is flagd's).
    const extraMetadata = this.rolloutMetadata ? (key: string, revision: string) => rolloutExtras(parsed.definitions.get(key), state.get(key), revision) : undefined;
    const served = parseFlagdDocument({ ...context, flags: { ...fileFlags, ...overlay } }, { extraMetadata });
    let flagErrors = new Map<string, readonly string[]>();
    if (allInvalid.size > 0) {
      // Locating costs a YAML parse of the whole file: only when there is something to locate.
      const lines = new LineCounter();
      const located = parseDocument(texts.flags, { lineCounter: lines, prettyErrors: false });
      flagErrors = new Map([...allInvalid].map(([key, issues]) => [key, locateIssues(this.source, located, lines, issues)]));
    }
    const snapshot: StoreSnapshot = {
      revision: revisionOf(texts),
      parsed,
      state,
      source: this.source,
      flagErrors,
      external,
      serving: served.evaluators,
    };
    return { ok: true, model: { snapshot, stateDoc, data, originals, inputs, external: new Set(Object.keys(externalFlags)), overlayText } };
  }
}

/** Our revision and, for a rollout our model reads, its current percentage: the opt-in extras. */
function rolloutExtras(definition: FlagDefinition | undefined, state: FlagRuntimeState | undefined, revision: string): FlagMetadata {
  const rollout = definition?.rollout;
  if (rollout === undefined || rollout.progressive !== undefined) return { revision };
  const percentage = state?.rollback !== undefined ? 0 : (state?.percentage ?? rollout.percentage ?? 100);
  return { revision, rolloutPercentage: percentage };
}

function indentOf(text: string): string {
  return /\n([ \t]+)\S/.exec(text)?.[1] ?? '  ';
}
