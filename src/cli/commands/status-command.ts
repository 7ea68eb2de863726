// `status [flag] [--json] [--watch]`: per flag the plan step, percentage and next step time,
// and — read from a running `serve` — the guardian's verdict with treatment vs baseline
// error rate, P95, P99 and sample counts. --watch redraws it with a progress bar.
import { setTimeout as delay } from 'node:timers/promises';
import { type Command, Option } from 'commander';
import { durationArgument } from '../arguments.js';
import { formatDurationMs } from '../../core/duration.js';
import { type CohortView, type FlagStatusView, rolloutStatus } from '../../deploy/rollout-status.js';
import { knownFlag } from '../../stores/store-writer.js';
import { CliError } from '../cli-error.js';
import { jsonText } from '../format.js';
import { withStore } from '../store-location.js';
import { type CommandContext, type StoreOptions, withJsonOption, withStoreOption } from './command-context.js';

export const SERVER_ENV_VAR = 'ROLLOUT_GUARDIAN_SERVER';

interface StatusOptions extends StoreOptions {
  readonly server?: string;
  readonly watch?: boolean;
  readonly interval: number;
  readonly iterations?: number;
}

/** What `status --json` prints. */
export interface StatusReport {
  readonly source: string;
  readonly generatedAt: string;
  /** Where the guardian's numbers came from, or null when no server was asked. */
  readonly server: string | null;
  readonly flags: readonly FlagStatusView[];
}

export function withServerOption(command: Command): Command {
  return command.option('--server <url>', `a running rollout-guardian serve, for the guardian's numbers (default: $${SERVER_ENV_VAR})`);
}

/** Reads a serve's /api/status, with `token` (a read token, as serve takes from ROLLOUT_GUARDIAN_TOKEN) when given. */
export async function fetchServerStatus(server: string, token?: string): Promise<{ store: string; generatedAt: string; flags: FlagStatusView[]; [k: string]: unknown }> {
  const url = `${server.replace(/\/+$/, '')}/api/status`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(5_000), ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) });
  } catch (err) {
    throw new CliError(`cannot reach rollout-guardian serve at ${server} (${(err as Error).message}); start it with rollout-guardian serve, or leave out --server for the store alone`);
  }
  if (response.status === 401 || response.status === 403) {
    throw new CliError(`${url} answered ${response.status}: give a token with the read role in $ROLLOUT_GUARDIAN_TOKEN (as serve's --token-file lists it)`);
  }
  if (!response.ok) throw new CliError(`${url} answered ${response.status}; is ${server} a rollout-guardian serve?`);
  return (await response.json()) as { store: string; generatedAt: string; flags: FlagStatusView[] };
}

function pct(x: number | null): string {
  return x === null ? '    -' : `${(x * 100).toFixed(2)}%`.padStart(6);
}

function ms(x: number | null): string {
  return x === null ? '     -' : `${Math.round(x)} ms`.padStart(7);
}

function cohortLine(label: string, c: CohortView | null): string {
  if (c === null) return `${label}  no data\n`;
  return `${label}  err ${pct(c.errorRate)}  p95 ${ms(c.p95Ms)}  p99 ${ms(c.p99Ms)}  n=${c.samples}\n`;
}

function bar(fraction: number, width = 24): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]`;
}

export function statusText(flags: readonly FlagStatusView[], nowMs: number, server: string | null): string {
  if (flags.length === 0) return 'no flag has a rollout or a plan\n';
  let out = '';
  for (const f of flags) {
    const state = f.rolledBack ? 'rolled back' : f.override !== null ? `overridden to ${f.override}` : f.disabled ? 'disabled' : f.plan ? `${f.plan.strategy} plan ${f.plan.status}` : 'no plan';
    const step = f.plan ? `step ${f.plan.step}/${f.plan.steps}` : '';
    const progress = f.plan ? bar((f.plan.step - 1) / Math.max(1, f.plan.steps - 1)) : bar(f.percentage / 100);
    out += `${f.flag}  ${state}  ${step}  ${progress} ${f.percentage}% ${f.treatmentVariant ?? '-'}\n`;
    if (f.plan?.nextPercentage != null) {
      const next = f.plan.nextStepAt === null ? 'when resumed' : `${f.plan.nextStepAt} (in ${formatDurationMs(Math.max(0, Date.parse(f.plan.nextStepAt) - nowMs))}, if healthy)`;
      out += `  next      ${f.plan.nextPercentage}% ${next}\n`;
    }
    if (f.plan?.note) out += `  note      ${f.plan.note}\n`;
    if (f.guardian) {
      out += `  guardian  ${f.guardian.verdict}: ${f.guardian.reason} (judged ${f.guardian.judgedAt})\n`;
      if (f.guardian.warning) out += `  warning   ${f.guardian.warning}\n`;
      out += cohortLine(`            treatment (${f.treatmentVariant ?? '-'})`, f.guardian.treatment);
      out += cohortLine(`            baseline  (${f.baselineVariant})`, f.guardian.baseline);
    } else {
      out += `  guardian  ${server === null ? `not asked: pass --server <url of rollout-guardian serve> (or set $${SERVER_ENV_VAR}) for its numbers` : 'not judging this flag'}\n`;
    }
  }
  return out;
}

export function registerStatus(program: Command, ctx: CommandContext): void {
  const command = withServerOption(
    withJsonOption(withStoreOption(program.command('status').description('rollouts: plan step, percentage, next step, and the guardian’s verdict and numbers').argument('[flag]', 'one flag only'))),
  )
    .option('--watch', 'redraw every --interval until interrupted')
    .option('--interval <duration>', 'how often --watch redraws', durationArgument({ minMs: 200, maxMs: 3_600_000, example: '2s' }), 2_000)
    .addOption(new Option('--iterations <n>', 'stop --watch after n redraws').argParser((t: string) => Number.parseInt(t, 10)).hideHelp());
  command.action(async (flagKey: string | undefined, options: StatusOptions) => {
    const server = options.server ?? ctx.io.env[SERVER_ENV_VAR] ?? null;
    const once = async (): Promise<string> => {
      const nowMs = ctx.io.clock.now();
      let report: StatusReport;
      if (server !== null) {
        const remote = await fetchServerStatus(server, ctx.io.env.ROLLOUT_GUARDIAN_TOKEN);
        report = { source: remote.store, generatedAt: remote.generatedAt, server, flags: remote.flags };
      } else {
        report = await withStore(options.store, ctx.io, async (store) => {
          const snapshot = await store.load();
          if (flagKey !== undefined) knownFlag(snapshot, flagKey);
          return { source: store.source, generatedAt: new Date(nowMs).toISOString(), server: null, flags: rolloutStatus(snapshot, nowMs) };
        });
      }
      if (flagKey !== undefined) {
        const one = report.flags.filter((f) => f.flag === flagKey);
        if (one.length === 0) throw new CliError(`flag "${flagKey}" has no rollout or plan; rollout-guardian flags get ${flagKey} shows it`);
        report = { ...report, flags: one };
      }
      return options.json ? jsonText(report) : `${report.source}  ${report.generatedAt}\n${statusText(report.flags, nowMs, server)}`;
    };
    if (!options.watch) {
      ctx.io.stdout.write(await once());
      return;
    }
    for (let i = 0; options.iterations === undefined || i < options.iterations; i++) {
      if (i > 0) await delay(options.interval);
      const text = await once();
      ctx.io.stdout.write(options.json ? text : `\x1b[2J\x1b[H${text}`);
    }
  });
}
