// The messages between a file store and its worker thread (parse-worker.ts, parse-worker-thread.ts).
// Everything in them survives structured cloning: plain data, Maps and Sets, no functions.
import type { SchemaIssue } from '../core/parse-flags.js';
import type { FlagRuntimeState } from '../core/flag-schema.js';

/** What to read and how: the worker reads the files itself, so their text never crosses the event loop. */
export type ParseJob = {
  readonly source: string;
  readonly statePath: string;
  /** Said when the definitions file does not exist. */
  readonly missingMessage: string;
  /** Revisions the store already knows (its last good, its last refused): answered without parsing. */
  readonly known: readonly string[];
} & ({ readonly kind: 'file' } | { readonly kind: 'flagd'; readonly nowMs: number; readonly rolloutMetadata: boolean });

/** The worker's answer, large maps apart (they arrive before it in `part` messages). */
export type JobResult =
  | { readonly status: 'unreadable'; readonly message: string; readonly path: string }
  | { readonly status: 'known'; readonly revision: string }
  | { readonly status: 'invalid'; readonly revision: string; readonly errors: readonly string[] }
  | {
      readonly status: 'parsed';
      readonly revision: string;
      readonly invalid: ReadonlyMap<string, readonly SchemaIssue[]>;
      readonly fileIssues: readonly SchemaIssue[];
      readonly state: ReadonlyMap<string, FlagRuntimeState>;
      readonly flagErrors: ReadonlyMap<string, readonly string[]>;
      /** flagd only: the overlay text, and the file's `$evaluators` and `metadata`. */
      readonly overlayText?: string;
      readonly context?: { readonly $evaluators?: unknown; readonly metadata?: unknown };
    };

/**
 * Fields streamed in parts: `definitions` (every store), `externalFlags` and `servedFlags`
 * (flagd), as [key, value] entries. A part is sent once the store has taken the one before, so
 * the store's thread spends one short turn per part however large the file.
 */
export type StreamedField = 'definitions' | 'externalFlags' | 'servedFlags';

export type WorkerRequest = { readonly id: number; readonly job: ParseJob } | { readonly id: number; readonly ack: true };

export type WorkerReply =
  | { readonly id: number; readonly type: 'part'; readonly field: StreamedField; readonly entries: readonly unknown[] }
  | { readonly id: number; readonly type: 'done'; readonly result: JobResult }
  | { readonly id: number; readonly type: 'failed'; readonly message: string };
