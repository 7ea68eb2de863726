// Exit codes and the errors the CLI expects: each becomes one `error: ...` line on stderr
// that says what to do instead, never a stack trace. Anything else is a bug and says so.
import { FlagSourceError, InvalidWriteError, RevisionConflictError } from '../stores/flag-store.js';
import { LockTimeoutError } from '../stores/file-lock.js';
import { UnknownFlagError } from '../stores/store-writer.js';
import { WriteIncompleteError, WriteNotAppliedError } from '../stores/write-journal.js';

export const ExitCode = {
  OK: 0,
  /** The command ran and failed: invalid file, unknown flag, refused write, ... */
  FAILURE: 1,
  /** The command line itself is wrong: unknown command or option, bad argument. */
  USAGE: 2,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: ExitCode = ExitCode.FAILURE,
  ) {
    super(message);
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, ExitCode.USAGE);
}

const EXPECTED = [UnknownFlagError, InvalidWriteError, FlagSourceError, RevisionConflictError, LockTimeoutError, WriteNotAppliedError, WriteIncompleteError];

/** The message and exit code of an expected error; undefined for a bug. */
export function expectedError(err: unknown): { message: string; exitCode: ExitCode } | undefined {
  if (err instanceof CliError) return { message: err.message, exitCode: err.exitCode };
  if (EXPECTED.some((kind) => err instanceof kind)) return { message: (err as Error).message, exitCode: ExitCode.FAILURE };
  return undefined;
}
