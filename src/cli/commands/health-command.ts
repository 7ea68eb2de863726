// `health [--json]`: is the rollout system sound? The flag file valid, the store reachable,
// plans consistent with the state they drive, and — from a running `serve` — the guardian
// ticking and telemetry arriving. Exit code 1 when anything is unhealthy.
import type { Command } from 'commander';
import type { FlagRuntimeState } from '../../core/flag-schema.js';
import type { StoreSnapshot } from '../../stores/flag-store.js';
import { ExitCode } from '../cli-error.js';
import { jsonText, table } from '../format.js';
import { withStore } from '../store-location.js';
import { type CommandContext, type StoreOptions, withJsonOption, withStoreOption } from './command-context.js';
import { SERVER_ENV_VAR, fetchServerStatus, withServerOption } from './status-command.js';

export type CheckStatus = 'ok' | 'fail' | 'skipped';

export interface HealthCheckResult {
  readonly name: string;
  readonly status: CheckStatus;
  readonly detail: string;
}

/** What `health --json` prints. */
export interface HealthReport {
  readonly healthy: boolean;
  readonly checks: readonly HealthCheckResult[];
}

function planProblems(flag: string, state: FlagRuntimeState, snapshot: StoreSnapshot): string[] {
  const plan = state.plan;
  if (plan === undefined) return [];
  const problems: string[] = [];
  const step = plan.steps[plan.stepIndex];
  if (step === undefined) problems.push(`${flag}: plan step ${plan.stepIndex + 1} does not exist (it has ${plan.steps.length})`);
  const live = plan.status === 'running' || plan.status === 'paused';
  if (live && step !== undefined && state.percentage !== step.percentage) problems.push(`${flag}: plan is at ${step.percentage}% but the flag serves ${state.percentage ?? 'its file percentage'}`);
  if (live && state.rollback !== undefined) problems.push(`${flag}: plan is ${plan.status} on a rolled-back flag`);
  if (plan.status === 'paused' && plan.pausedAt === undefined) problems.push(`${flag}: plan is paused with no pause time`);
  const definition = snapshot.parsed.definitions.get(flag);
  if (live && (definition?.rollout === undefined || definition.rollout.variant === definition.defaultVariant)) problems.push(`${flag}: plan is ${plan.status} but the flag has no treatment`);
  return problems;
}

export function registerHealth(program: Command, ctx: CommandContext): void {
  withServerOption(withJsonOption(withStoreOption(program.command('health').description('check the flag file, the store, the plans and (with --server) the guardian and telemetry; exit 1 when unhealthy')))).action(
    async (options: StoreOptions & { server?: string }) => {
      const checks: HealthCheckResult[] = [];
      await withStore(options.store, ctx.io, async (store) => {
        let snapshot: StoreSnapshot | undefined;
        try {
          snapshot = await store.load();
          checks.push({ name: 'store reachable', status: 'ok', detail: store.source });
        } catch (err) {
          checks.push({ name: 'store reachable', status: 'fail', detail: (err as Error).message });
        }
        if (snapshot !== undefined) {
          const invalid = [...(snapshot.flagErrors ?? new Map<string, readonly string[]>()).values()].flat();
          checks.push(
            invalid.length === 0 && snapshot.parsed.invalid.size === 0
              ? { name: 'flag file valid', status: 'ok', detail: `${snapshot.parsed.definitions.size} flags` }
              : { name: 'flag file valid', status: 'fail', detail: invalid.join('; ') || [...snapshot.parsed.invalid.keys()].join(', ') },
          );
          const problems = [...snapshot.state].flatMap(([flag, state]) => planProblems(flag, state, snapshot));
          const plans = [...snapshot.state.values()].filter((s) => s.plan !== undefined).length;
          checks.push(problems.length === 0 ? { name: 'plans consistent', status: 'ok', detail: `${plans} plans` } : { name: 'plans consistent', status: 'fail', detail: problems.join('; ') });
        }
      });
      const server = options.server ?? ctx.io.env[SERVER_ENV_VAR];
      if (server === undefined) {
        const detail = `pass --server <url of rollout-guardian serve> (or set $${SERVER_ENV_VAR})`;
        checks.push({ name: 'guardian ticking', status: 'skipped', detail }, { name: 'telemetry arriving', status: 'skipped', detail });
      } else {
        try {
          const status = await fetchServerStatus(server, ctx.io.env.ROLLOUT_GUARDIAN_TOKEN);
          const slotMs = Number(status.slotMs);
          const last = typeof status.guardianLastTick === 'string' ? Date.parse(status.guardianLastTick) : undefined;
          const age = last === undefined ? undefined : Date.parse(status.generatedAt) - last;
          checks.push(
            age !== undefined && age <= 3 * slotMs
              ? { name: 'guardian ticking', status: 'ok', detail: `last tick ${age} ms ago` }
              : { name: 'guardian ticking', status: 'fail', detail: age === undefined ? 'the guardian has not ticked yet' : `last tick ${age} ms ago (more than 3 slots of ${slotMs} ms)` },
          );
          const recent = Number(status.recentOutcomes);
          const causes = ingestCauses(status.ingest);
          checks.push(
            recent > 0
              ? { name: 'telemetry arriving', status: 'ok', detail: `${recent} outcomes in the last ${Number(status.recentWindowMs) / 1000} s${causes === '' ? '' : `; also refused so far: ${causes}`}` }
              : {
                  name: 'telemetry arriving',
                  status: 'fail',
                  detail: `no outcomes in the last ${Number(status.recentWindowMs) / 1000} s: ${causes === '' ? `are the apps sending OTLP traces to ${server}/v1/traces?` : `refused so far: ${causes}`}`,
                },
          );
          if (typeof status.storeTrouble === 'string') checks.push({ name: 'server store', status: 'fail', detail: status.storeTrouble });
        } catch (err) {
          checks.push({ name: 'guardian ticking', status: 'fail', detail: (err as Error).message }, { name: 'telemetry arriving', status: 'fail', detail: 'no server to ask' });
        }
      }
      const healthy = checks.every((c) => c.status !== 'fail');
      const report: HealthReport = { healthy, checks };
      ctx.io.stdout.write(options.json ? jsonText(report) : `${table(['CHECK', 'STATUS', 'DETAIL'], checks.map((c) => [c.name, c.status, c.detail]))}${healthy ? 'healthy\n' : 'UNHEALTHY\n'}`);
      if (!healthy) ctx.exitCode = ExitCode.FAILURE;
    },
  );
}

/** What to do about each kind of refusal OTLP ingest has counted, for `health`. */
const REFUSAL_HINTS: Record<string, string> = {
  unsupported_media_type: 'send OTLP as http/protobuf or http/json (or gRPC)',
  malformed: 'a payload that is not OTLP; check the exporter',
  unauthenticated: 'give the exporters the token: OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<token>',
  too_large: 'lower the exporter batch size or raise serve --max-body-bytes',
  busy: 'too many large bodies at once; the exporters retry',
};

/** The causes behind "the app sends, the guardian hears nothing", from /api/status's ingest counts. */
function ingestCauses(ingest: unknown): string {
  if (typeof ingest !== 'object' || ingest === null) return '';
  const stats = ingest as { refusedRequests?: Record<string, number>; late?: number; future?: number; unattributable?: number };
  const parts: string[] = [];
  for (const [reason, count] of Object.entries(stats.refusedRequests ?? {})) {
    if (count > 0) parts.push(`${count} request(s) ${reason.replaceAll('_', ' ')} (${REFUSAL_HINTS[reason] ?? 'see /metrics'})`);
  }
  if ((stats.late ?? 0) > 0) parts.push(`${stats.late} late outcome(s) (raise serve --allowed-lateness, or check the senders' clocks)`);
  if ((stats.future ?? 0) > 0) parts.push(`${stats.future} future-dated outcome(s) (a sender's clock is ahead)`);
  if ((stats.unattributable ?? 0) > 0) parts.push(`${stats.unattributable} evaluation(s) without a variant (the producer must record feature_flag.result.variant)`);
  return parts.join('; ');
}
