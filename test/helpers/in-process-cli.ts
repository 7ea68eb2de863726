// The CLI run in this process through runCli, with its output captured: as fast as a function
// call, and what it prints is what a user would see.
import { runCli } from '../../src/cli/program.js';
import type { CliIo } from '../../src/cli/cli-io.js';
import { FakeClock } from './fake-clock.js';

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function cliRun(argv: readonly string[], options: { cwd: string; env?: Record<string, string | undefined>; clock?: FakeClock }): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    env: options.env ?? {},
    cwd: options.cwd,
    clock: options.clock ?? new FakeClock(Date.parse('2026-11-30T00:00:00Z')),
    username: 'tester',
    version: '0.0.0-test',
  };
  const code = await runCli(argv, io);
  return { code, stdout, stderr };
}
