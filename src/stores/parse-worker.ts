// The worker thread a file store reads large files in, so a reload never stalls the event
// loop that serves evaluations: one thread per store, started on first use and reused, holding
// the process open only while it works, ended by close(). A crash or a hang becomes a refusal
// the store reports, never a process exit.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { JobResult, ParseJob, StreamedField, WorkerReply } from './parse-worker-protocol.js';

/** How long a worker may take over one file before it is stopped: a maximum-size YAML file takes seconds. */
export const DEFAULT_WORKER_TIMEOUT_MS = 60_000;

/** What the worker answered: the result, and each streamed field's entries in order. */
export interface WorkerAnswer {
  readonly result: JobResult;
  readonly streamed: ReadonlyMap<StreamedField, unknown[]>;
}

interface Pending {
  readonly resolve: (answer: WorkerAnswer) => void;
  readonly reject: (error: Error) => void;
  readonly streamed: Map<StreamedField, unknown[]>;
  readonly timer: NodeJS.Timeout;
}

/**
 * The entry compiled beside this module in dist/; under tsx or vitest, the TypeScript source,
 * loaded through tsx's API registered in the thread (a worker inherits neither vitest's
 * transform nor, on Node 20, a loader given to it with --import).
 */
function startWorker(): Worker {
  // The main thread's stack size (about 1 MB), so deep nesting overflows where it does there.
  // (20,000 brackets killed the process from a worker at 4 MB and at 1 MB alike, in V8's regexp
  // compiler: readFlagText refuses such text before parsing it.)
  const options = { stdout: false, stderr: false, resourceLimits: { stackSizeMb: 1 } };
  const js = new URL('./parse-worker-thread.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return new Worker(js, options);
  const ts = new URL('./parse-worker-thread.ts', import.meta.url).href;
  const tsxApi = new URL('./esm/api/index.mjs', pathToFileURL(createRequire(import.meta.url).resolve('tsx'))).href;
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then(({ register }) => { register(); return import(${JSON.stringify(ts)}); })`;
  return new Worker(bootstrap, { ...options, eval: true });
}

export class ParseWorker {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(
    /** Named in every message: the file the worker reads. */
    private readonly source: string,
    private readonly timeoutMs: number = DEFAULT_WORKER_TIMEOUT_MS,
  ) {}

  /** The job's answer; rejects (never throws) with a located message when the worker fails, hangs or is closed. */
  run(job: ParseJob): Promise<WorkerAnswer> {
    if (this.closed) return Promise.reject(new Error(`${this.source}: the store is closed`));
    let worker: Worker;
    try {
      worker = this.started();
    } catch (err) {
      return Promise.reject(new Error(`${this.source}: cannot start the worker thread that reads the file: ${(err as Error).message}`));
    }
    const id = this.nextId++;
    return new Promise<WorkerAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        // A hung parse cannot be interrupted: the thread goes, the next reload starts another.
        this.fail(`${this.source}: reading the file took over ${this.timeoutMs} ms and was stopped; the last good flags keep serving`);
      }, this.timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, reject, streamed: new Map(), timer });
      // Held open while it works (a one-shot command awaits it), let go when idle.
      worker.ref();
      worker.postMessage({ id, job });
    });
  }

  /** The running thread's id, or undefined when none runs (not started yet, failed, or closed). */
  get threadId(): number | undefined {
    return this.worker?.threadId;
  }

  /** Ends the thread; whatever it was reading is refused. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const worker = this.worker;
    this.fail(`${this.source}: the store was closed while the file was being read`);
    if (worker !== undefined) await worker.terminate();
  }

  private started(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = startWorker();
    // Nothing the store does needs the thread to keep a process alive.
    worker.unref();
    worker.on('message', (reply: WorkerReply) => this.onReply(reply));
    worker.on('error', (err) => {
      if (this.worker === worker) this.fail(`${this.source}: the worker thread reading the file failed: ${err.message}; the last good flags keep serving`);
    });
    worker.on('exit', (code) => {
      if (this.worker === worker) this.fail(`${this.source}: the worker thread reading the file stopped (exit code ${code}); the last good flags keep serving`);
    });
    this.worker = worker;
    return worker;
  }

  private onReply(reply: WorkerReply): void {
    const pending = this.pending.get(reply.id);
    if (pending === undefined) return;
    if (reply.type === 'part') {
      let entries = pending.streamed.get(reply.field);
      if (entries === undefined) pending.streamed.set(reply.field, (entries = []));
      for (const entry of reply.entries) entries.push(entry);
      // The next part only after this thread's event loop has turned: evaluations, timers and
      // I/O waiting behind this part go first.
      const worker = this.worker;
      setImmediate(() => {
        if (this.worker === worker && this.pending.has(reply.id)) worker?.postMessage({ id: reply.id, ack: true });
      });
      return;
    }
    this.pending.delete(reply.id);
    clearTimeout(pending.timer);
    if (this.pending.size === 0) this.worker?.unref();
    if (reply.type === 'failed') pending.reject(new Error(reply.message));
    else pending.resolve({ result: reply.result, streamed: pending.streamed });
  }

  /** Refuses every job in flight and drops the thread (a later job starts a new one). */
  private fail(message: string): void {
    const worker = this.worker;
    this.worker = undefined;
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new Error(message));
    }
    this.pending.clear();
    if (worker !== undefined) void worker.terminate().catch(() => undefined);
  }
}
