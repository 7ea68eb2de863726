#!/usr/bin/env node
// The `rollout-guardian` executable: the only place that reads the process (argv, env, cwd,
// the OS user, the wall clock) and sets its exit status.
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { systemClock } from '../runtime/system-clock.js';
import { runCli } from './program.js';

function osUser(): string | undefined {
  try {
    return userInfo().username || undefined;
  } catch {
    return undefined; // no passwd entry, as in some containers
  }
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

// `rollout-guardian flags list | head` closes stdout early; that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

// exitCode rather than exit(): output to a pipe is flushed before the process ends.
process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
  clock: systemClock,
  username: osUser(),
  version: packageVersion(),
});
