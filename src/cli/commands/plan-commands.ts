// `deploy`, `rollback`, `pause`, `resume`, `promote`, `abort`: the operator's plan commands.
// Each is one audited write through PlanWriter, needs a --reason (but a deploy --dry-run,
// which writes nothing), and on a refusal says what to type instead.
import { type Command, InvalidArgumentError, Option } from 'commander';
import { durationArgument } from '../arguments.js';
import { formatDurationMs } from '../../core/duration.js';
import type { PlanState } from '../../core/flag-schema.js';
import { type PlanStep, type Strategy, PlanError, STRATEGIES, planSchedule, planSteps } from '../../deploy/plan.js';
import { PlanWriter } from '../../deploy/plan-writer.js';
import { knownFlag } from '../../stores/store-writer.js';
import type { WriteResult } from '../../stores/flag-store.js';
import { CliError, usageError } from '../cli-error.js';
import { differenceLines, differences, jsonText, percentText, table } from '../format.js';
import { withStore } from '../store-location.js';
import { type CommandContext, type MutationOptions, withJsonOption, withStoreOption } from './command-context.js';
import { type MutationReport, attribution } from './flags-command.js';

interface DeployOptions extends MutationOptions {
  readonly strategy: Strategy;
  readonly steps?: readonly number[];
  readonly stepDuration?: number;
  readonly dryRun?: boolean;
}

function parseSteps(text: string): number[] {
  const steps = text.split(',').map((s) => Number(s.trim()));
  if (steps.length === 0 || steps.some((n) => !Number.isFinite(n))) throw new InvalidArgumentError(`expected percentages separated by commas, such as 0,20,50,100, got "${text}"`);
  return steps;
}

/** A step is judged for at least a minute, and a plan ends within a year. */
const parseDuration = durationArgument({ minMs: 60_000, maxMs: 365 * 86_400_000, example: '30m, 6h or 1d' });

// deploy checks --reason itself: a --dry-run writes nothing, so it needs none.
function withPlanAttribution(command: Command, reason: 'required' | 'unless-dry-run' = 'required'): Command {
  const withActor = command.option('--actor <name>', 'who does it, for the audit log (default: your OS user name)');
  return reason === 'required'
    ? withActor.requiredOption('--reason <text>', 'why, for the audit log (required)')
    : withActor.option('--reason <text>', 'why, for the audit log (required unless --dry-run)');
}

function scheduleText(plan: PlanState, nowMs: number): string {
  const rows = planSchedule(plan, nowMs).map((s) => [
    `${s.index + 1}`,
    percentText(s.percentage),
    s.state === 'done' ? 'done' : s.state === 'current' ? `now (since ${new Date(s.startsAtMs).toISOString()})` : `${new Date(s.startsAtMs).toISOString()}  (in ${formatDurationMs(Math.max(0, s.startsAtMs - nowMs))})`,
    formatDurationMs(plan.steps[s.index]?.holdMs ?? 0),
  ]);
  return table(['STEP', 'PERCENT', 'STARTS (if every step stays healthy)', 'MONITORED'], rows);
}

function report(ctx: CommandContext, options: MutationOptions, store: string, flagKey: string, action: string, result: WriteResult, extra = ''): void {
  const entry = result.entries.find((e) => e.flagKey === flagKey) ?? null;
  const out: MutationReport = { store, action, flag: flagKey, changed: entry !== null, revision: result.revision, entry };
  if (options.json) {
    ctx.io.stdout.write(jsonText(out));
    return;
  }
  // The schedule says more than a diff of a new plan object would.
  const diffs = entry ? differences(entry.before.state, entry.after.state, 'state').filter((d) => !d.path.startsWith('state.plan.steps') && !(extra !== '' && d.path === 'state.plan')) : [];
  ctx.io.stdout.write(`${flagKey}: ${action} by ${entry?.actor ?? '?'} (${JSON.stringify(entry?.reason ?? '')}), recorded in the audit log\n${differenceLines(diffs)}${extra}`);
}

async function planCommand(ctx: CommandContext, options: MutationOptions, flagKey: string, action: string, run: (plans: PlanWriter) => Promise<WriteResult>): Promise<void> {
  await withStore(options.store, ctx.io, async (store) => {
    knownFlag(await store.load(), flagKey);
    let result: WriteResult;
    try {
      result = await run(new PlanWriter(store, ctx.io.clock));
    } catch (err) {
      if (err instanceof PlanError) throw new CliError(err.message);
      throw err;
    }
    report(ctx, options, store.source, flagKey, action, result);
  });
}

export function registerPlanCommands(program: Command, ctx: CommandContext): void {
  withJsonOption(
    withStoreOption(
      withPlanAttribution(
        program
          .command('deploy')
          .description('start a progressive rollout plan for a flag: it advances only while the guardian judges each step healthy')
          .argument('<flag>', 'the flag key')
          .addOption(new Option('--strategy <name>', 'safe: 0,5,10,25,50,75,100 over 7 days; fast: 0,25,50,100 over 3 days; instant: 100% after 1 minute; custom: --steps and --step-duration').choices(STRATEGIES).makeOptionMandatory())
          .option('--steps <list>', 'custom: the percentages, such as 0,20,50,100', parseSteps)
          .option('--step-duration <duration>', 'custom: how long each step is monitored, such as 6h', parseDuration)
          .option('--dry-run', 'show the schedule and write nothing'),
        'unless-dry-run',
      ),
    ),
  ).action(async (flagKey: string, options: DeployOptions) => {
    if (options.reason === undefined && options.dryRun !== true) {
      throw usageError(`required option '--reason <text>' not specified: say why, for the audit log, such as --reason "release 42" (only --dry-run goes without)`);
    }
    if (options.strategy !== 'custom' && (options.steps !== undefined || options.stepDuration !== undefined)) {
      throw usageError(`--steps and --step-duration go with --strategy custom; for ${options.strategy} drop them, or use --strategy custom --steps ${options.steps?.join(',') ?? '0,20,50,100'} --step-duration ${options.stepDuration !== undefined ? formatDurationMs(options.stepDuration) : '6h'}`);
    }
    if (options.strategy === 'custom' && (options.steps === undefined || options.stepDuration === undefined)) {
      throw usageError('--strategy custom needs --steps and --step-duration, such as --steps 0,20,50,100 --step-duration 6h');
    }
    let steps: PlanStep[];
    try {
      steps = planSteps(options.strategy, options.steps !== undefined && options.stepDuration !== undefined ? { steps: options.steps, stepDurationMs: options.stepDuration } : undefined);
    } catch (err) {
      if (err instanceof PlanError) throw usageError(err.message);
      throw err;
    }
    if (options.strategy === 'instant') {
      ctx.io.stderr.write('warning: instant sends everyone to the treatment after one minute, with no gradual exposure; the guardian can still roll it back\n');
    }
    if (options.dryRun) {
      await withStore(options.store, ctx.io, async (store) => {
        knownFlag(await store.load(), flagKey);
        const plan: PlanState = { strategy: options.strategy, steps, stepIndex: 0, status: 'running', startedAt: new Date(ctx.io.clock.now()).toISOString(), stepStartedAt: new Date(ctx.io.clock.now()).toISOString(), pausedMs: 0 };
        if (options.json) ctx.io.stdout.write(jsonText({ store: store.source, flag: flagKey, dryRun: true, plan, schedule: planSchedule(plan, ctx.io.clock.now()) }));
        else ctx.io.stdout.write(`${flagKey}: dry run of a ${options.strategy} plan; nothing was written\n${scheduleText(plan, ctx.io.clock.now())}Run \`rollout-guardian serve --dry-run\` to have the guardian judge it live without acting.\n`);
      });
      return;
    }
    await withStore(options.store, ctx.io, async (store) => {
      knownFlag(await store.load(), flagKey);
      let result: WriteResult;
      try {
        result = await new PlanWriter(store, ctx.io.clock).deploy(flagKey, options.strategy, steps, attribution(options, ctx));
      } catch (err) {
        if (err instanceof PlanError) throw new CliError(err.message);
        throw err;
      }
      const plan = result.entries[0]?.after.state?.plan;
      report(ctx, options, store.source, flagKey, 'deploy', result, plan ? scheduleText(plan, ctx.io.clock.now()) : '');
    });
  });

  const simple: [string, string, (plans: PlanWriter, flagKey: string, by: ReturnType<typeof attribution>) => Promise<WriteResult>][] = [
    ['rollback', 'send everyone to the baseline now and end the plan as rolled back', (p, f, by) => p.rollback(f, by)],
    ['pause', "pause the flag's plan: the step's clock stops until resume", (p, f, by) => p.pause(f, by)],
    ['resume', "resume the flag's paused plan", (p, f, by) => p.resume(f, by)],
    ['promote', "skip the flag's plan to its last step now", (p, f, by) => p.promote(f, by)],
    ['abort', "stop the flag's plan and send its treatment back to 0%", (p, f, by) => p.abort(f, by)],
  ];
  for (const [name, description, run] of simple) {
    withJsonOption(withStoreOption(withPlanAttribution(program.command(name).description(description).argument('<flag>', 'the flag key')))).action(
      async (flagKey: string, options: MutationOptions) => planCommand(ctx, options, flagKey, name, (plans) => run(plans, flagKey, attribution(options, ctx))),
    );
  }
}
