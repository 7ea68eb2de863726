// Running the built CLI (dist/cli/main.js, which the test command builds first) as a user
// would: a child process in a folder, with ROLLOUT_GUARDIAN_FLAGS cleared so the developer's
// own environment cannot leak into a test.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const CLI_MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Fails with what to do when the binary has not been built. */
export function requireBuiltCli(): void {
  if (!existsSync(CLI_MAIN)) throw new Error(`${CLI_MAIN} is missing: run \`npm run build\` before these tests (npm test does)`);
}

export function runCli(cwd: string, args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<CliRun> {
  const { ROLLOUT_GUARDIAN_FLAGS: _ignored, ...inherited } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_MAIN, ...args], { cwd, env: { ...inherited, ...env }, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}
