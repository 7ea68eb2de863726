// The flagd store: a flagd flag-definition JSON file (the one a flagd daemon watches) served as
// flagd serves it. Runtime state lives in `<name>.state.json`; what it decides (rollbacks,
// overrides, plan steps) goes to an overlay flagd reads after the user's file, which is never
// rewritten for them: `flagd start --uri file:<name>.json --uri file:<name>.rollout-guardian.flagd.json`.
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { type ExternalEvaluator, type FlagMetadata, canonicalJson } from '../core/compile-flag.js';
import { isEmergencyFlag } from '../core/emergency.js';
import { describeConversionIssue, toFlagdFlag } from '../flagd/flagd-convert.js';
import { type StateDocument, applyWrite } from './apply-write.js';
import { documentOf, locateIssues } from './flag-file-format.js';
import { flagdWarnings, parseFlagdDocument } from '../flagd/flagd-evaluator.js';
import { writeFileAtomic } from './atomic-write.js';
import { type AuditEntry, type StoreListener, type StoreSnapshot, type WriteRequest, type WriteResult, FlagSourceError, InvalidWriteError } from './flag-store.js';
import { type FlagdModel, type FlagdParsed, FlagdModelReader, rolloutExtras } from './flagd-model.js';
import type { StreamedField } from './parse-worker-protocol.js';
import { type ParsedJobResult, type ParsedTexts, type PreparedWrite, type StoreTexts, type WatchedFileStoreOptions, type WorkerJobKind, WatchedFileStore, revisionOf } from './watched-file-store.js';

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
  private readonly reader: FlagdModelReader;
  /** Why the overlay could not be written the last time it had to be, or undefined. */
  overlayProblem: string | undefined;

  constructor(options: FlagdFileStoreOptions) {
    const path = options.path.startsWith(FLAGD_LOCATION_PREFIX) ? options.path.slice(FLAGD_LOCATION_PREFIX.length) : options.path;
    super(resolve(path), options);
    this.overlayPath = join(dirname(this.source), `${basename(this.source, extname(this.source))}${FLAGD_OVERLAY_SUFFIX}`);
    this.rolloutMetadata = options.rolloutMetadata ?? false;
    this.reader = new FlagdModelReader(this.source, this.statePath, this.rolloutMetadata);
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

  protected workerJob(): WorkerJobKind {
    return { kind: 'flagd', nowMs: this.clock.now(), rolloutMetadata: this.rolloutMetadata };
  }

  /**
   * The worker's model with what cannot cross threads added: the evaluators flagd's semantics
   * need, built a few hundred flags per turn of the event loop.
   */
  protected override async fromWorker(result: ParsedJobResult, streamed: ReadonlyMap<StreamedField, unknown[]>): Promise<StoreSnapshot> {
    const base = await super.fromWorker(result, streamed);
    const context = result.context ?? {};
    const state = result.state;
    const definitions = base.parsed.definitions;
    const external = await evaluatorsInTurns(context, streamed.get('externalFlags'), (_key, revision) => ({ revision }));
    const extraMetadata = this.rolloutMetadata ? (key: string, revision: string) => rolloutExtras(definitions.get(key), state.get(key), revision) : undefined;
    const serving = await evaluatorsInTurns(context, streamed.get('servedFlags'), extraMetadata);
    this.pendingOverlay = { text: result.overlayText ?? '', revision: result.revision };
    return { ...base, external, serving };
  }

  protected prepareWrite(texts: StoreTexts, request: WriteRequest): PreparedWrite {
    const parsed = this.parseModel(texts);
    if (!parsed.ok) throw new FlagSourceError(`${this.source} is invalid, so nothing can be written until it is fixed:\n  ${parsed.errors.join('\n  ')}`, this.source);
    const next = this.applyRequest(parsed.model, texts, request);
    return { next: { flags: next.flags, state: next.state }, entries: next.entries };
  }

  /** The write applied: new state and, for an explicit definition edit, that flag rewritten in the file. */
  private applyRequest(model: FlagdModel, texts: StoreTexts, request: WriteRequest): StoreTexts & { entries: Omit<AuditEntry, 'revision'>[] } {
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

  private parseModel(texts: StoreTexts): FlagdParsed {
    return this.reader.read(texts, this.clock.now());
  }
}

/** Flags per turn of the event loop while evaluators are built on it. */
const EVALUATORS_PER_TURN = 500;

/** parseFlagdDocument over `entries`, a part at a time, yielding the event loop between parts. */
async function evaluatorsInTurns(
  context: { readonly $evaluators?: unknown; readonly metadata?: unknown },
  entries: readonly unknown[] | undefined,
  extraMetadata: ((key: string, revision: string) => FlagMetadata) | undefined,
): Promise<Map<string, ExternalEvaluator>> {
  const evaluators = new Map<string, ExternalEvaluator>();
  const all = (entries ?? []) as [string, unknown][];
  for (let start = 0; start < all.length; start += EVALUATORS_PER_TURN) {
    if (start > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const flags = Object.fromEntries(all.slice(start, start + EVALUATORS_PER_TURN));
    const parsed = parseFlagdDocument({ ...context, flags }, extraMetadata !== undefined ? { extraMetadata } : {});
    for (const [key, evaluator] of parsed.evaluators) evaluators.set(key, evaluator);
  }
  return evaluators;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function indentOf(text: string): string {
  return /\n([ \t]+)\S/.exec(text)?.[1] ?? '  ';
}
