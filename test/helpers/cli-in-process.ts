// Running the CLI in the test's own process through runCli(argv, io), with an io that
// captures stdout and stderr as strings and fixes what main.ts would read from the process:
// env (empty unless given), cwd, the OS user and the clock (a fake one, so stamps and
// progressive percentages do not depend on when the test runs).
import type { Clock } from '../../src/core/clock.js';
import type { CliIo } from '../../src/cli/cli-io.js';
import { runCli } from '../../src/cli/program.js';
import { FakeClock } from './fake-clock.js';

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CapturedIo extends CliIo {
  /** Everything written to stdout so far. */
  readonly out: () => string;
  /** Everything written to stderr so far. */
  readonly err: () => string;
}

export interface CliRunOptions {
  readonly env?: Readonly<Record<string, string>>;
  readonly clock?: Clock;
  /** The OS user, the default --actor. */
  readonly username?: string;
}

export const TEST_CLI_VERSION = '0.0.0-test';

export function capturedIo(cwd: string, options: CliRunOptions = {}): CapturedIo {
  let out = '';
  let err = '';
  return {
    stdout: { write: (text: string) => (out += text) },
    stderr: { write: (text: string) => (err += text) },
    env: { ...options.env },
    cwd,
    clock: options.clock ?? new FakeClock(),
    username: options.username ?? 'tester',
    version: TEST_CLI_VERSION,
    out: () => out,
    err: () => err,
  };
}

/** Runs `rollout-guardian <args>` in the folder `cwd` and returns its exit code and output. */
export async function runCliIn(cwd: string, args: readonly string[], options: CliRunOptions = {}): Promise<CliRun> {
  const io = capturedIo(cwd, options);
  const code = await runCli(args, io);
  return { code, stdout: io.out(), stderr: io.err() };
}
