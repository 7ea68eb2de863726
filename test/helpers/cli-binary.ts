// Running the built CLI (dist/cli/main.js, which the test command builds first) as a user
// would: a child process in a folder, with ROLLOUT_GUARDIAN_FLAGS cleared so the developer's
// own environment cannot leak into a test.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
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

/** A `serve` started from the built CLI, once it has printed where it listens. */
export interface ServeProcess {
  readonly url: string;
  /** What it has printed so far on stdout and stderr. */
  readonly out: () => string;
  readonly err: () => string;
  /** Sends SIGTERM and resolves with the exit code once it has exited. */
  readonly stop: () => Promise<number | null>;
}

/** Starts `rollout-guardian serve ARGS` and resolves once it prints its URL and its OTLP line; rejects if it exits first. */
export async function startServe(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<ServeProcess> {
  const child = spawn(process.execPath, [CLI_MAIN, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (err += chunk));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      const m = /serve on (http:\/\/[\d.]+:\d+)/.exec(out);
      if (m && out.includes('OTLP:')) resolve(m[1] as string);
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${out}${err}`)));
  });
  return {
    url,
    out: () => out,
    err: () => err,
    stop: async () => {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}
