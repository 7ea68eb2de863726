// What a file store's texts read as, with no store around them: the revision of a pair of
// texts, the runtime-state document, and a flag file's snapshot. Pure of any store's state,
// so the worker thread (parse-worker-thread.ts) and the main thread read files alike.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { describeIssue, parseStateDocument } from '../core/parse-flags.js';
import { type StateDocument, emptyStateDocument } from './apply-write.js';
import { type StoreSnapshot, FlagSourceError } from './flag-store.js';
import { locatedJsonError, readFlagText, sizeError } from './flag-file-format.js';

export interface StoreTexts {
  readonly flags: string;
  readonly state: string | undefined;
}

export type ParsedTexts = { readonly ok: true; readonly snapshot: StoreSnapshot } | { readonly ok: false; readonly errors: readonly string[] };

/** `<writes>-<content hash>`: the count makes every write's revision new, the hash catches hand edits. */
export function revisionOf(texts: StoreTexts): string {
  const hash = createHash('sha256')
    .update(texts.flags)
    .update('\0')
    .update(texts.state ?? '')
    .digest('hex')
    .slice(0, 12);
  const count = texts.state === undefined ? 0 : Number(/"revision":\s*(\d+)/.exec(texts.state)?.[1] ?? 0);
  return `${count}-${hash}`;
}

/** The state document, or a message saying what is wrong with it. */
export function parseStateText(text: string | undefined, statePath: string): StateDocument | string {
  if (text === undefined) return emptyStateDocument();
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return locatedJsonError(text, statePath, err as Error);
  }
  const state = parseStateDocument(data);
  if (state.issues.length > 0) return `${statePath} is invalid: ${state.issues.map(describeIssue).join('; ')}`;
  return state.raw as StateDocument;
}

/** A YAML or JSON flag file and its state file as a snapshot, or every located problem that makes them unusable. */
export function parseFlagFileTexts(source: string, statePath: string, texts: StoreTexts): ParsedTexts {
  const read = readFlagText(texts.flags, source);
  const stateDoc = parseStateText(texts.state, statePath);
  const errors = typeof stateDoc === 'string' ? [...read.fileErrors, stateDoc] : read.fileErrors;
  if (errors.length > 0 || typeof stateDoc === 'string') return { ok: false, errors };
  const snapshot: StoreSnapshot = {
    revision: revisionOf(texts),
    parsed: read.parsed,
    state: new Map(Object.entries(stateDoc.flags)),
    source,
    flagErrors: read.flagErrors,
  };
  return { ok: true, snapshot };
}

/** The definitions file (refused before it is read when over the size limit) and the state file beside it. */
export async function readStoreTexts(source: string, statePath: string, missingMessage: string): Promise<StoreTexts> {
  let flags: string;
  try {
    // Refused before it is read: a huge file would stall the process that reads it.
    const tooBig = sizeError(source, (await stat(source)).size);
    if (tooBig !== undefined) throw new FlagSourceError(tooBig, source);
    flags = await readFile(source, 'utf8');
  } catch (err) {
    if (err instanceof FlagSourceError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new FlagSourceError(code === 'ENOENT' ? missingMessage : `cannot read ${source}: ${(err as Error).message}`, source);
  }
  const state = await readFile(statePath, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new FlagSourceError(`cannot read ${statePath}: ${err.message}`, statePath);
  });
  return { flags, state };
}
