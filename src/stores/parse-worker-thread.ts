// The worker thread's side: reads a store's files, parses and validates them (and, for a flagd
// file, converts and materializes it), and answers with plain data in parts the store takes
// one turn at a time. Jobs run one after another; nothing here touches the store's own state.
import { parentPort } from 'node:worker_threads';
import { FlagSourceError } from './flag-store.js';
import { FlagdModelReader } from './flagd-model.js';
import type { JobResult, ParseJob, StreamedField, WorkerReply, WorkerRequest } from './parse-worker-protocol.js';
import { parseFlagFileTexts, readStoreTexts, revisionOf } from './store-texts.js';

/** Entries per part: a few hundred flags clone in well under a millisecond. */
const PART_ENTRIES = 250;

let flagdReader: FlagdModelReader | undefined;
const acks = new Map<number, () => void>();
let queue: Promise<void> = Promise.resolve();

function post(reply: WorkerReply): void {
  parentPort?.postMessage(reply);
}

async function stream(id: number, field: StreamedField, entries: readonly unknown[]): Promise<void> {
  for (let start = 0; start < entries.length; start += PART_ENTRIES) {
    const taken = new Promise<void>((resolve) => acks.set(id, resolve));
    post({ id, type: 'part', field, entries: entries.slice(start, start + PART_ENTRIES) });
    await taken;
  }
}

async function run(id: number, job: ParseJob): Promise<JobResult> {
  let texts;
  try {
    texts = await readStoreTexts(job.source, job.statePath, job.missingMessage);
  } catch (err) {
    const path = err instanceof FlagSourceError ? err.source : job.source;
    return { status: 'unreadable', message: (err as Error).message, path };
  }
  const revision = revisionOf(texts);
  if (job.known.includes(revision)) return { status: 'known', revision };
  if (job.kind === 'file') {
    const parsed = parseFlagFileTexts(job.source, job.statePath, texts);
    if (!parsed.ok) return { status: 'invalid', revision, errors: parsed.errors };
    const { snapshot } = parsed;
    await stream(id, 'definitions', [...snapshot.parsed.definitions]);
    return { status: 'parsed', revision, invalid: snapshot.parsed.invalid, fileIssues: snapshot.parsed.fileIssues, state: snapshot.state, flagErrors: snapshot.flagErrors ?? new Map() };
  }
  if (flagdReader?.source !== job.source || flagdReader.rolloutMetadata !== job.rolloutMetadata) flagdReader = new FlagdModelReader(job.source, job.statePath, job.rolloutMetadata);
  const parsed = flagdReader.read(texts, job.nowMs);
  if (!parsed.ok) return { status: 'invalid', revision, errors: parsed.errors };
  const { model } = parsed;
  await stream(id, 'definitions', [...model.snapshot.parsed.definitions]);
  await stream(id, 'externalFlags', Object.entries(model.externalFlags));
  await stream(id, 'servedFlags', Object.entries(model.servedFlags));
  return {
    status: 'parsed',
    revision,
    invalid: model.snapshot.parsed.invalid,
    fileIssues: model.snapshot.parsed.fileIssues,
    state: model.snapshot.state,
    flagErrors: model.snapshot.flagErrors ?? new Map(),
    overlayText: model.overlayText,
    context: model.context,
  };
}

parentPort?.on('message', (request: WorkerRequest) => {
  if ('ack' in request) {
    const resolve = acks.get(request.id);
    acks.delete(request.id);
    resolve?.();
    return;
  }
  queue = queue.then(async () => {
    try {
      post({ id: request.id, type: 'done', result: await run(request.id, request.job) });
    } catch (err) {
      // A bug or a stack overflow while parsing: the store reports it, the thread lives on.
      post({ id: request.id, type: 'failed', message: `${request.job.source}: cannot be read as flags: ${err instanceof Error ? err.message : String(err)}` });
    }
  });
});
