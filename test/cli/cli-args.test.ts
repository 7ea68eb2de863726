// Command-line arguments with bounds, and `serve` failing fast: a duration a timer cannot hold,
// a number taken for a time, a step duration silently stretched, a Redis that refuses us.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planSteps } from '../../src/deploy/plan.js';
import { cliRun } from '../helpers/in-process-cli.js';
import { RedisServer } from '../helpers/redis-server.js';
import { withTempDir } from '../helpers/temp-dir.js';

const FLAGS = `flags:
  checkout:
    variants: { on: true, off: false }
    defaultVariant: off
    rollout: { variant: on, percentage: 10 }
`;

async function inDir<T>(fn: (dir: string, store: string) => Promise<T>): Promise<T> {
  return withTempDir(async (dir) => {
    const store = join(dir, 'flags.yaml');
    await writeFile(store, FLAGS);
    return fn(dir, store);
  });
}

/** The built binary, to see the process itself exit (an in-process run returns even when handles stay open). */
function binary(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [new URL('../../dist/cli/main.js', import.meta.url).pathname, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}

describe('duration and time arguments', () => {
  it('refuses a slot a timer cannot hold, saying the range and what to type', async () => {
    await inDir(async (dir, store) => {
      const run = await cliRun(['serve', '--slot', '25d', '--store', store], { cwd: dir });
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/"25d" is out of range; expected a duration from 100ms to 1h, such as 5s/);
      const interval = await cliRun(['status', '--watch', '--interval', '30d', '--store', store], { cwd: dir });
      expect(interval.code).toBe(2);
      expect(interval.stderr).toMatch(/"30d" is out of range; expected a duration from 200ms to 1h, such as 2s/);
    });
  });

  it('refuses a bare number as a time, and takes ISO 8601 or a time relative to now', async () => {
    await inDir(async (dir, store) => {
      for (const args of [['eval', 'checkout', '--at', '1'], ['export', '--format', 'flagd', '--at', '2026']]) {
        const run = await cliRun([...args, '--store', store], { cwd: dir });
        expect(run.code).toBe(2);
        expect(run.stderr).toMatch(/is not a time; expected an ISO 8601 date-time with a zone such as 2026-11-08T09:00:00Z, or a time relative to now such as \+10m or -1h/);
      }
      expect((await cliRun(['eval', 'checkout', '--at', '+10m', '--store', store], { cwd: dir })).code).toBe(0);
      expect((await cliRun(['eval', 'checkout', '--at', '2026-11-08T09:00:00Z', '--store', store], { cwd: dir })).code).toBe(0);
      expect((await cliRun(['export', '--format', 'flagd', '--at', 'now', '--store', store], { cwd: dir })).code).toBe(0);
    });
  });

  it('holds each step of a custom plan for exactly --step-duration, 1m included', async () => {
    expect(planSteps('custom', { steps: [0, 50, 100], stepDurationMs: 60_000 }).map((s) => s.holdMs)).toEqual([60_000, 60_000, 0]);
    await inDir(async (dir, store) => {
      const run = await cliRun(['deploy', 'checkout', '--strategy', 'custom', '--steps', '0,50,100', '--step-duration', '1m', '--dry-run', '--reason', 'x', '--store', store], { cwd: dir });
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^2 +50% +.*\(in 1m\) +1m$/m);
      const tooLong = await cliRun(['deploy', 'checkout', '--strategy', 'custom', '--steps', '0,100', '--step-duration', '400d', '--dry-run', '--reason', 'x', '--store', store], { cwd: dir });
      expect(tooLong.code).toBe(2);
      expect(tooLong.stderr).toMatch(/"400d" is out of range; expected a duration from 1m to 365d, such as 30m, 6h or 1d/);
    });
  });
});

describe('serve on a Redis it cannot use', () => {
  it('exits 1 with one error line when Redis refuses the connection or the password', async () => {
    const unreachable = await binary(['serve', '--port', '0', '--store', 'redis://127.0.0.1:1']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^error: Redis at redis:\/\/127\.0\.0\.1:1 is unreachable: connect ECONNREFUSED.*; nothing was read or written$/m);
    const redis = await RedisServer.start({ password: 'right' });
    try {
      const wrong = await binary(['serve', '--port', '0', '--store', `redis://:wrong@127.0.0.1:${redis.port}`]);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/^error: Redis at redis:\/\/127\.0\.0\.1:\d+ is unreachable: WRONGPASS/m);
      expect(wrong.stderr).not.toContain('wrong@');
    } finally {
      await redis.dispose();
    }
  }, 30_000);
});
