// The flagd store: a flagd flag-definition JSON file (the one a flagd daemon watches) read and
// written as our store. Runtime state lives in `<name>.state.json` beside it, as for the file
// store, and every write re-materializes the JSON so the daemon follows what the state decides.
import { basename, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { type FlagMetadata, canonicalJson, fingerprint } from '../core/compile-flag.js';
import { isEmergencyFlag } from '../core/emergency.js';
import {
  type FlagdFlag,
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
import { flagdLoadIssues, flagdWarnings, parseFlagdDocument, validateFlagdText } from '../flagd/flagd-evaluator.js';
import { type AuditEntry, type StoreSnapshot, type WriteRequest, FlagSourceError, InvalidWriteError } from './flag-store.js';
import { type ParsedTexts, type PreparedWrite, type StoreTexts, type WatchedFileStoreOptions, WatchedFileStore, revisionOf } from './watched-file-store.js';

/** `flagd:<path>` names a flagd file where a store location is expected. */
export const FLAGD_LOCATION_PREFIX = 'flagd:';

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

export class FlagdFileStore extends WatchedFileStore {
  private readonly rolloutMetadata: boolean;

  constructor(options: FlagdFileStoreOptions) {
    const path = options.path.startsWith(FLAGD_LOCATION_PREFIX) ? options.path.slice(FLAGD_LOCATION_PREFIX.length) : options.path;
    super(resolve(path), options);
    this.rolloutMetadata = options.rolloutMetadata ?? false;
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
    return parsed.ok ? { ok: true, snapshot: parsed.model.snapshot } : parsed;
  }

  protected prepareWrite(texts: StoreTexts, request: WriteRequest): PreparedWrite {
    const parsed = this.parseModel(texts);
    if (!parsed.ok) throw new FlagSourceError(`${this.source} is invalid, so nothing can be written until it is fixed:\n  ${parsed.errors.join('\n  ')}`, this.source);
    const next = this.applyRequest(parsed.model, texts, request);
    return { next: { flags: next.flags, state: next.state }, entries: next.entries };
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
      const conversion = fromFlagdFlag(key, original, { metadata: data.metadata });
      if (conversion.definition !== undefined) {
        inputs[key] = conversion.definition;
      } else {
        // Served by flagd's semantics; a shadow (variants, baseline, state) lets state apply around it.
        if (conversion.shadow !== undefined) inputs[key] = conversion.shadow;
        externalFlags[key] = original;
      }
    }
    const fromInputs = parseFlagDocument({ flags: inputs });
    const allInvalid = new Map<string, readonly SchemaIssue[]>([...fromInputs.invalid, ...invalid]);
    const parsed: ParsedFlags = { definitions: fromInputs.definitions, invalid: allInvalid, fileIssues: [] };
    const external = parseFlagdDocument({ ...context, flags: externalFlags }, { extraMetadata: (_key, revision) => ({ revision }) }).evaluators;
    const state = new Map(Object.entries(stateDoc.flags));
    // What a flagd daemon serves: the file as it stands, each flag as flagd evaluates it; our
    // revision and rollout percentage only when asked for (flagd's metadata is flagd's).
    const extraMetadata = this.rolloutMetadata ? (key: string, revision: string) => rolloutExtras(parsed.definitions.get(key), state.get(key), revision) : undefined;
    const served = parseFlagdDocument({ ...context, flags: data.flags }, { extraMetadata });
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
    return { ok: true, model: { snapshot, stateDoc, data, originals, inputs, external: new Set(Object.keys(externalFlags)) } };
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
