// A flagd flag-definition file and its state file read as the flagd store's model: what each
// flag is in our terms, what flagd-core evaluates, and the overlay flagd must read after the
// file. Holds only a conversion cache, so the store and its worker thread read files alike.
import { LineCounter, parseDocument } from 'yaml';
import { type ExternalEvaluator, type FlagMetadata, fingerprint } from '../core/compile-flag.js';
import { EMERGENCY_SHUTDOWN, isEmergencyFlag } from '../core/emergency.js';
import { type FlagdFlag, type FlagdFlagConversion, FLAGD_SCHEMA_URL, fixedVariant, fromFlagdFlag, staticFlagdFlag, toFlagdFlag } from '../flagd/flagd-convert.js';
import type { FlagDefinition, FlagDefinitionInput, FlagRuntimeState } from '../core/flag-schema.js';
import { buildFlagSet } from '../core/flag-set.js';
import { type ParsedFlags, type SchemaIssue, describeIssue, parseFlagDocument } from '../core/parse-flags.js';
import type { StateDocument } from './apply-write.js';
import { flowDepthError, locateIssues } from './flag-file-format.js';
import { flagdLoadIssues, parseFlagdDocument } from '../flagd/flagd-evaluator.js';
import type { StoreSnapshot } from './flag-store.js';
import { type StoreTexts, parseStateText, revisionOf } from './store-texts.js';


/**
 * What an older version of this store kept of a flag it rewrote in the user's file: the flag as
 * its owner wrote it (null: a built-in emergency flag) and the hash of what it wrote instead.
 * Read, never written: while the file still holds the rewritten flag, the owner's is its definition.
 */
interface FlagdRecord {
  readonly original: FlagdFlag | null;
  readonly written: string;
}

export interface FlagdModel {
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
  /** The file's `$evaluators` and `metadata`, which every flag reads. */
  readonly context: { readonly $evaluators?: unknown; readonly metadata?: unknown };
  /** The flags flagd-core's semantics decide (`external` evaluators are built from these). */
  readonly externalFlags: Readonly<Record<string, unknown>>;
  /** Every flag as a flagd daemon serves it: the file's, the overlay's winning (`serving` is built from these). */
  readonly servedFlags: Readonly<Record<string, unknown>>;
}

export type FlagdParsed = { ok: true; model: FlagdModel } | { ok: false; errors: string[] };

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

export class FlagdModelReader {
  private conversions = new Map<string, FlagdFlagConversion>();
  private conversionsMetadata: { value: unknown; text: string } = { value: undefined, text: '' };

  constructor(
    readonly source: string,
    readonly statePath: string,
    /** Our revision and rollout percentage in every served flag's metadata. */
    readonly rolloutMetadata: boolean,
  ) {}

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
    nowMs: number,
  ): Record<string, FlagdFlag> {
    // Only emergency_shutdown decides the shutdown: compile that one flag, not the whole file.
    const shutdownDefinition = parsed.definitions.get(EMERGENCY_SHUTDOWN);
    const shutdownOnly: ParsedFlags = { definitions: new Map(shutdownDefinition === undefined ? [] : [[EMERGENCY_SHUTDOWN, shutdownDefinition]]), invalid: new Map(), fileIssues: [] };
    const shutdown = buildFlagSet(shutdownOnly, state, nowMs, undefined, external).set.shutdown;
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
  read(texts: StoreTexts, nowMs: number): FlagdParsed {
    let data: unknown;
    try {
      data = JSON.parse(texts.flags);
    } catch (err) {
      return { ok: false, errors: [jsonErrorLine(this.source, texts.flags, err)] };
    }
    if (!isObject(data) || !isObject(data.flags)) {
      return { ok: false, errors: [`${this.source}:1:1: expected a flagd flag-definition document: an object with a "flags" map ($schema ${FLAGD_SCHEMA_URL})`] };
    }
    const stateDoc = parseStateText(texts.state, this.statePath);
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
    const materialized = this.materialize(fileFlags, originals, parsed, state, external, nowMs);
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
    if (allInvalid.size > 0 && flowDepthError(texts.flags, this.source) !== undefined) {
      // Too deep for the YAML parser to locate in safely: the paths alone say where.
      flagErrors = new Map([...allInvalid].map(([key, issues]) => [key, issues.map((issue) => `${this.source}: ${describeIssue(issue)}`)]));
    } else if (allInvalid.size > 0) {
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
    const servedFlags = { ...fileFlags, ...overlay };
    return { ok: true, model: { snapshot, stateDoc, data, originals, inputs, external: new Set(Object.keys(externalFlags)), overlayText, context, externalFlags, servedFlags } };
  }
}

/** Our revision and, for a rollout our model reads, its current percentage: the opt-in extras. */
export function rolloutExtras(definition: FlagDefinition | undefined, state: FlagRuntimeState | undefined, revision: string): FlagMetadata {
  const rollout = definition?.rollout;
  if (rollout === undefined || rollout.progressive !== undefined) return { revision };
  const percentage = state?.rollback !== undefined ? 0 : (state?.percentage ?? rollout.percentage ?? 100);
  return { revision, rolloutPercentage: percentage };
}

