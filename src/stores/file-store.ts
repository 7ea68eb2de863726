// The file store: definitions in the user's YAML or JSON file, runtime state in
// `<name>.state.json` beside it, the audit log in `<name>.audit.jsonl`. Reloads on change;
// a corrupt edit keeps the last good flags and says where the file is bad; a definition edit
// changes only the edited values, keeping the file's comments and key order.
import { resolve } from 'node:path';
import { type Document, parseDocument } from 'yaml';
import { canonicalJson } from '../core/compile-flag.js';
import type { WriteRequest } from './flag-store.js';
import { FlagSourceError } from './flag-store.js';
import { applyWrite } from './apply-write.js';
import { documentData, readFlagText, renderFlagText, spliceScalarEdits } from './flag-file-format.js';
import { parseFlagFileTexts } from './store-texts.js';
import { type ParsedTexts, type PreparedWrite, type StoreTexts, type WatchedFileStoreOptions, type WorkerJobKind, WatchedFileStore, nextStateText } from './watched-file-store.js';

export const FLAGS_ENV_VAR = 'ROLLOUT_GUARDIAN_FLAGS';
export const DEFAULT_FLAGS_FILE = 'flags.yaml';

/** The flag file: the option, else ROLLOUT_GUARDIAN_FLAGS, else flags.yaml. */
export function resolveFlagsPath(path: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  return resolve(path ?? (env[FLAGS_ENV_VAR] || DEFAULT_FLAGS_FILE));
}

export interface FileFlagStoreOptions extends WatchedFileStoreOptions {
  /** The flag file; defaults to ROLLOUT_GUARDIAN_FLAGS, then flags.yaml. */
  readonly path?: string;
  /** Where the default path is looked up; process.env unless given. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export class FileFlagStore extends WatchedFileStore {
  constructor(options: FileFlagStoreOptions = {}) {
    super(resolveFlagsPath(options.path, options.env ?? process.env), options);
  }

  protected missingFileMessage(): string {
    return `flag file ${this.source} does not exist; create it, pass --store <path>, or set ${FLAGS_ENV_VAR}`;
  }

  protected parse(texts: StoreTexts): ParsedTexts {
    return parseFlagFileTexts(this.source, this.statePath, texts);
  }

  protected workerJob(): WorkerJobKind {
    return { kind: 'file' };
  }

  protected prepareWrite(texts: StoreTexts, request: WriteRequest): PreparedWrite {
    const { doc } = readFlagText(texts.flags, this.source);
    let stateDoc = this.parseState(texts.state);
    let aside: { path: string; text: string } | undefined;
    if (typeof stateDoc === 'string') {
      // A hand-corrupted state file: a process that knows the last good state writes on from
      // it (a rollback must land), keeping the corrupt text beside it; one that does not, refuses.
      if (this.last === undefined || texts.state === undefined) {
        throw new FlagSourceError(`${stateDoc}; nothing was written: fix the state file, or move it aside to start with no runtime state`, this.statePath);
      }
      stateDoc = { version: 1, flags: Object.fromEntries(this.last.state) };
      aside = { path: `${this.statePath}.corrupt`, text: texts.state };
    }
    const applied = applyWrite(doc, stateDoc, request, this.clock.now(), this.last?.parsed);
    return {
      next: {
        flags: applied.definitionsChanged ? this.renderEdited(texts.flags, doc, request) : texts.flags,
        state: nextStateText(stateDoc, applied.stateDoc),
      },
      entries: applied.entries,
      ...(aside !== undefined ? { extraFiles: [aside] } : {}),
    };
  }

  /** The edited file: the old text with new values spliced in where possible, else re-rendered. */
  private renderEdited(text: string, doc: Document, request: WriteRequest): string {
    const edits = request.changes.flatMap((c) => (c.definitionEdits ?? []).map((e) => ({ path: ['flags', c.flagKey, ...e.path], value: e.value })));
    const spliced = spliceScalarEdits(text, this.source, edits);
    if (spliced !== undefined && canonicalJson(documentData(parseDocument(spliced))) === canonicalJson(documentData(doc))) return spliced;
    return renderFlagText(doc, this.source, text);
  }
}
