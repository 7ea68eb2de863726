// The plan commands as an SRE runs them, in process, against a real flag file in a
// temporary folder — deploy, status, pause, resume, rollback — and the audit that records it;
// and the same commands through a real serve's control API with --server.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { withTempDir } from '../helpers/temp-dir.js';
import { type CliRun, runCliIn } from '../helpers/cli-in-process.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { BearerAuth } from '../../src/server/bearer-auth.js';
import { RolloutServer } from '../../src/server/rollout-server.js';
import { FileFlagStore } from '../../src/stores/file-store.js';

const FLAGS = `flags:
  new-checkout:
    variants: { on: true, off: false }
    defaultVariant: off
    rollout: { variant: on }
  plain:
    variants: { a: 1, b: 2 }
    defaultVariant: a
`;

function cli(dir: string, ...args: string[]): Promise<CliRun> {
  const mutating = ['deploy', 'pause', 'resume', 'rollback', 'promote', 'abort'].includes(args[0] ?? '');
  return runCliIn(dir, [...args, '--store', join(dir, 'flags.yaml'), ...(mutating ? ['--actor', 'alice'] : [])]);
}

async function inFolder(fn: (dir: string) => Promise<void>): Promise<void> {
  await withTempDir(async (dir) => {
    await writeFile(join(dir, 'flags.yaml'), FLAGS);
    await fn(dir);
  });
}

describe('rollout-guardian plan commands', () => {
  it('deploys, shows status, pauses, resumes and rolls back, all in the audit log', async () => {
    await inFolder(async (dir) => {
      const deploy = await cli(dir, 'deploy', 'new-checkout', '--strategy', 'custom', '--steps', '5,25,100', '--step-duration', '2h', '--reason', 'release 42');
      expect(deploy.code).toBe(0);
      expect(deploy.stdout).toContain('new-checkout: deploy by alice ("release 42")');
      expect(deploy.stdout).toMatch(/2\s+25%\s+\S+\s+\(in 2h\)/);

      const status = await cli(dir, 'status', '--json');
      expect(status.code).toBe(0);
      const report = JSON.parse(status.stdout) as { server: null; flags: { flag: string; percentage: number; plan: { strategy: string; status: string; step: number; steps: number; nextPercentage: number; nextStepAt: string } }[] };
      expect(report.server).toBeNull();
      expect(report.flags).toHaveLength(1);
      expect(report.flags[0]).toMatchObject({ flag: 'new-checkout', percentage: 5, plan: { strategy: 'custom', status: 'running', step: 1, steps: 3, nextPercentage: 25 } });

      expect((await cli(dir, 'pause', 'new-checkout', '--reason', 'checking a dashboard')).code).toBe(0);
      const paused = await cli(dir, 'status', 'new-checkout');
      expect(paused.stdout).toMatch(/new-checkout\s+custom plan paused\s+step 1\/3/);
      expect(paused.stdout).toContain('next      25% when resumed');
      expect((await cli(dir, 'resume', 'new-checkout', '--reason', 'all good')).code).toBe(0);

      const rollback = await cli(dir, 'rollback', 'new-checkout', '--reason', 'INC-7: checkout errors');
      expect(rollback.code).toBe(0);
      const after = JSON.parse((await cli(dir, 'status', '--json')).stdout) as { flags: { rolledBack: boolean; percentage: number; plan: { status: string } }[] };
      expect(after.flags[0]).toMatchObject({ rolledBack: true, percentage: 0, plan: { status: 'rolled-back' } });

      const audit = JSON.parse((await cli(dir, 'audit', '--flag', 'new-checkout', '--json')).stdout) as { entries: { action: string; actor: string; reason: string }[] };
      expect(audit.entries.map((e) => e.action)).toEqual(['deploy', 'pause', 'resume', 'rollback']);
      expect(audit.entries.every((e) => e.actor === 'alice')).toBe(true);
      expect(audit.entries[3]?.reason).toBe('INC-7: checkout errors');
      // Runtime state only: the user's YAML is untouched.
      expect(await readFile(join(dir, 'flags.yaml'), 'utf8')).toBe(FLAGS);
    });
  });

  it('says what to type instead for every mistake, exiting non-zero without a stack trace', async () => {
    await inFolder(async (dir) => {
      const cases: [string[], number, RegExp][] = [
        [['deploy', 'new-chekout', '--strategy', 'safe', '--reason', 'x'], 1, /no flag "new-chekout"; did you mean "new-checkout"\?/],
        [['deploy', 'new-checkout', '--strategy', 'slow', '--reason', 'x'], 2, /argument 'slow' is invalid\. Allowed choices are safe, fast, instant, custom/],
        [['deploy', 'new-checkout', '--strategy', 'custom', '--steps', '0,50,100', '--step-duration', '6x', '--reason', 'x'], 2, /"6x" is not a duration; write it like 30m, 6h or 1d/],
        [['deploy', 'new-checkout', '--strategy', 'custom', '--reason', 'x'], 2, /--strategy custom needs --steps and --step-duration, such as --steps 0,20,50,100 --step-duration 6h/],
        [['deploy', 'new-checkout', '--strategy', 'safe'], 2, /required option '--reason <text>' not specified/],
        [['deploy', 'plain', '--strategy', 'safe', '--reason', 'x'], 1, /has no treatment to roll out; add one to its definition/],
        [['pause', 'new-checkout', '--reason', 'x'], 1, /has no plan; start one with rollout-guardian deploy new-checkout --strategy safe/],
      ];
      for (const [args, code, message] of cases) {
        const run = await cli(dir, ...args);
        expect({ args, code: run.code }).toEqual({ args, code });
        expect(run.stderr).toMatch(message);
        expect(run.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
      }
      expect((await cli(dir, 'deploy', 'new-checkout', '--strategy', 'fast', '--reason', 'go')).code).toBe(0);
      const again = await cli(dir, 'deploy', 'new-checkout', '--strategy', 'safe', '--reason', 'again');
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/a plan is already running for "new-checkout" \(fast plan, step 1 of 4, 0%\); see rollout-guardian status new-checkout, or stop it first with rollout-guardian abort new-checkout/);
      const instant = await cli(dir, 'deploy', 'plain', '--strategy', 'instant', '--reason', 'x', '--dry-run');
      expect(instant.stderr).toContain('warning: instant sends everyone to the treatment after one minute');
    });
  });

  it('shows a dry-run schedule and writes nothing, without asking for a reason', async () => {
    await inFolder(async (dir) => {
      const run = await cli(dir, 'deploy', 'new-checkout', '--strategy', 'safe', '--dry-run');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('dry run of a safe plan; nothing was written');
      expect(run.stdout).toMatch(/7\s+100%\s+\S+\s+\(in 7d\)/);
      expect((await cli(dir, 'audit', '--json')).stdout).not.toContain('deploy');
      await expect(readFile(join(dir, 'flags.state.json'), 'utf8')).rejects.toThrow(/ENOENT/);
    });
  });

  it('reports health and exits 1 when a plan is inconsistent with its flag', async () => {
    await inFolder(async (dir) => {
      expect((await cli(dir, 'deploy', 'new-checkout', '--strategy', 'fast', '--reason', 'go')).code).toBe(0);
      const healthy = await cli(dir, 'health', '--json');
      expect(healthy.code).toBe(0);
      expect(JSON.parse(healthy.stdout)).toMatchObject({ healthy: true, checks: [{ name: 'store reachable', status: 'ok' }, { name: 'flag file valid', status: 'ok' }, { name: 'plans consistent', status: 'ok' }, { status: 'skipped' }, { status: 'skipped' }] });
      const statePath = join(dir, 'flags.state.json');
      const state = JSON.parse(await readFile(statePath, 'utf8')) as { flags: Record<string, { percentage: number }> };
      state.flags['new-checkout']!.percentage = 60;
      await writeFile(statePath, JSON.stringify(state));
      const unhealthy = await cli(dir, 'health');
      expect(unhealthy.code).toBe(1);
      expect(unhealthy.stdout).toMatch(/plans consistent\s+fail\s+new-checkout: plan is at 0% but the flag serves 60/);
      expect(unhealthy.stdout).toContain('UNHEALTHY');
    });
  });
});

const OPERATOR_TOKEN = 'operator-token-0123456789abcdef';
const READER_TOKEN = 'reader-token-0123456789abcdefgh';

/** A serve on its own copy of FLAGS, with an operate token named alice and a read token. */
async function withServe(fn: (server: RolloutServer, clock: FakeClock) => Promise<void>): Promise<void> {
  await withTempDir(async (dir) => {
    const path = join(dir, 'flags.yaml');
    await writeFile(path, FLAGS);
    const clock = new FakeClock(Date.parse('2026-11-30T08:00:00Z'));
    const auth = new BearerAuth([
      { token: OPERATOR_TOKEN, roles: ['operate'], name: 'alice' },
      { token: READER_TOKEN, roles: ['read'], name: 'dashboard' },
    ]);
    const server = await RolloutServer.start({ store: new FileFlagStore({ path, clock }), port: 0, clock, autoTick: false, auth });
    try {
      await fn(server, clock);
    } finally {
      await server.close();
    }
  });
}

describe('rollout-guardian <command> --server', () => {
  it('acts through serve with the same output and exit codes as on the store, as the token named in the audit log', async () => {
    await withServe(async (server, clock) => {
      await inFolder(async (dir) => {
        const local = (args: string[]) => runCliIn(dir, [...args, '--store', join(dir, 'flags.yaml'), '--actor', 'alice'], { clock });
        const remote = (args: string[]) => runCliIn(dir, [...args, '--server', server.url], { clock, env: { ROLLOUT_GUARDIAN_TOKEN: OPERATOR_TOKEN } });
        const commands: string[][] = [
          ['deploy', 'new-checkout', '--strategy', 'custom', '--steps', '5,25,100', '--step-duration', '2h', '--reason', 'release 42'],
          ['deploy', 'new-checkout', '--strategy', 'safe', '--reason', 'again'],
          ['deploy', 'new-checkout', '--strategy', 'instant', '--dry-run'],
          ['deploy', 'new-checkout', '--strategy', 'custom', '--reason', 'x'],
          ['pause', 'new-checkout', '--reason', 'checking a dashboard'],
          ['pause', 'new-checkout', '--reason', 'twice'],
          ['resume', 'new-checkout', '--reason', 'all good'],
          ['promote', 'new-checkout', '--reason', 'ship it'],
          ['abort', 'new-checkout', '--reason', 'too late'],
          ['rollback', 'new-checkout', '--reason', 'INC-7'],
          ['rollback', 'new-chekout', '--reason', 'typo'],
          // After a rollback: the state goes, with the CLI's default reason and its note on stderr.
          ['flags', 'reset-state', 'new-checkout'],
          ['flags', 'reset-state', 'new-checkout', '--reason', 'again'],
          ['flags', 'reset-state', 'new-chekout', '--reason', 'typo'],
          ['rollback', 'new-checkout', '--reason', 'INC-8'],
          ['flags', 'reset-state', 'new-checkout', '--reason', 'INC-8 fixed'],
          ['flags', 'override', 'new-checkout', 'on', '--reason', 'demo'],
          ['flags', 'override', 'new-checkout', 'maybe', '--reason', 'demo'],
          ['flags', 'clear-override', 'new-checkout'],
          ['flags', 'clear-override', 'new-checkout', '--reason', 'again'],
          ['pause', 'plain', '--reason', 'x', '--json'],
          ['deploy', 'plain', '--strategy', 'fast', '--reason', 'x', '--json'],
        ];
        const codes: number[] = [];
        for (const args of commands) {
          clock.advance(60_000);
          const direct = await local(args);
          const through = await remote(args);
          codes.push(direct.code);
          expect({ args, ...through }).toEqual({ args, ...direct });
        }
        expect(codes).toEqual([0, 1, 0, 2, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 1]);
        const json = async (run: Promise<CliRun>) => {
          const out = (await run).stdout;
          return JSON.parse(out.replaceAll(join(dir, 'flags.yaml'), 'STORE')) as Record<string, unknown>;
        };
        const deployJson = ['deploy', 'new-checkout', '--strategy', 'fast', '--reason', 'again', '--json'];
        const throughJson = await json(remote(deployJson));
        const directJson = await json(local(deployJson));
        expect({ ...throughJson, store: 'STORE' }).toEqual({ ...directJson, store: 'STORE' });
        expect(throughJson).toMatchObject({ action: 'deploy', changed: true, entry: { actor: 'alice', reason: 'again' } });
        const resetJson = ['flags', 'reset-state', 'new-checkout', '--reason', 'plan dropped', '--json'];
        const resetThrough = await json(remote(resetJson));
        const resetDirect = await json(local(resetJson));
        expect({ ...resetThrough, store: 'STORE' }).toEqual({ ...resetDirect, store: 'STORE' });
        expect(resetThrough).toMatchObject({ action: 'reset-state', changed: true, entry: { actor: 'alice', reason: 'plan dropped', after: { state: null } } });
      });
      const audit = (await (await fetch(`${server.url}/api/v1/audit`, { headers: { authorization: `Bearer ${READER_TOKEN}` } })).json()) as { entries: { actor: string }[] };
      expect(audit.entries).toHaveLength(12);
      expect(new Set(audit.entries.map((e) => e.actor))).toEqual(new Set(['alice']));
    });
  });

  it("prints the server's refusal and exits 1: a read token, no token, no server; --store with --server is a usage error", async () => {
    await withServe(async (server) => {
      await inFolder(async (dir) => {
        const asReader = await runCliIn(dir, ['rollback', 'new-checkout', '--reason', 'x', '--server', server.url], { env: { ROLLOUT_GUARDIAN_TOKEN: READER_TOKEN } });
        expect(asReader).toMatchObject({ code: 1, stdout: '' });
        expect(asReader.stderr).toBe('error: the token "dashboard" lacks the operate role (an ingest or read token cannot act); use a token listed with operate\n');
        const anonymous = await runCliIn(dir, ['flags', 'override', 'new-checkout', 'on', '--reason', 'x'], { env: { ROLLOUT_GUARDIAN_SERVER: server.url } });
        expect(anonymous.code).toBe(1);
        expect(anonymous.stderr).toContain("send authorization: Bearer TOKEN (set $ROLLOUT_GUARDIAN_TOKEN to a token serve's --token-file lists with the operate role)");
        const both = await runCliIn(dir, ['pause', 'new-checkout', '--reason', 'x', '--server', server.url, '--store', 'flags.yaml']);
        expect(both.code).toBe(2);
        expect(both.stderr).toContain(`give --server ${server.url} or --store flags.yaml, not both`);
        // reset-state takes the server from $ROLLOUT_GUARDIAN_SERVER too, and refuses --store beside --server.
        const resetAsReader = await runCliIn(dir, ['flags', 'reset-state', 'new-checkout', '--reason', 'x'], { env: { ROLLOUT_GUARDIAN_SERVER: server.url, ROLLOUT_GUARDIAN_TOKEN: READER_TOKEN } });
        expect(resetAsReader).toEqual({ code: 1, stdout: '', stderr: 'error: the token "dashboard" lacks the operate role (an ingest or read token cannot act); use a token listed with operate\n' });
        const resetBoth = await runCliIn(dir, ['flags', 'reset-state', 'new-checkout', '--server', server.url, '--store', 'flags.yaml']);
        expect(resetBoth.code).toBe(2);
        expect(resetBoth.stderr).toContain(`give --server ${server.url} or --store flags.yaml, not both`);
      });
    });
    await inFolder(async (dir) => {
      const away = await runCliIn(dir, ['pause', 'new-checkout', '--reason', 'x', '--server', 'http://127.0.0.1:9']);
      expect(away.code).toBe(1);
      expect(away.stderr).toMatch(/^error: cannot reach rollout-guardian serve at http:\/\/127\.0\.0\.1:9 \(.+\); start it with rollout-guardian serve, or leave out --server/);
      // Nothing reached the store.
      await expect(readFile(join(dir, 'flags.state.json'), 'utf8')).rejects.toThrow(/ENOENT/);
    });
  });
});
