// `deploy`, `rollback`, `pause`, `resume`, `promote`, `abort`: the operator's plan commands.
// Each is one audited write (deploy/operator-actions.ts, on the store or through serve's control
// API with --server), needs a --reason (but a deploy --dry-run, which writes nothing), and on a
// refusal says what to type instead.
import { type Command, InvalidArgumentError, Option } from 'commander';
import { durationArgument } from '../arguments.js';
import { formatDurationMs } from '../../core/duration.js';
import { type PlanStep, type Strategy, PlanError, STRATEGIES, planSteps } from '../../deploy/plan.js';
import type { PlanCommand } from '../../deploy/operator-actions.js';
import { usageError } from '../cli-error.js';
import { type ActionOptions, performAction, withActionServerOption } from '../control-client.js';
import { withJsonOption, withStoreOption, type CommandContext } from './command-context.js';
import { attribution } from './flags-command.js';

interface DeployOptions extends ActionOptions {
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

export function registerPlanCommands(program: Command, ctx: CommandContext): void {
  withActionServerOption(
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
    const custom = options.steps !== undefined && options.stepDuration !== undefined ? { steps: options.steps, stepDurationMs: options.stepDuration } : undefined;
    let steps: PlanStep[];
    try {
      steps = planSteps(options.strategy, custom);
    } catch (err) {
      if (err instanceof PlanError) throw usageError(err.message);
      throw err;
    }
    if (options.strategy === 'instant') {
      ctx.io.stderr.write('warning: instant sends everyone to the treatment after one minute, with no gradual exposure; the guardian can still roll it back\n');
    }
    await performAction(ctx, options, flagKey, { action: 'deploy', strategy: options.strategy, steps, dryRun: options.dryRun === true, custom }, attribution(options, ctx));
  });

  const simple: [PlanCommand, string][] = [
    ['rollback', 'send everyone to the baseline now and end the plan as rolled back'],
    ['pause', "pause the flag's plan: the step's clock stops until resume"],
    ['resume', "resume the flag's paused plan"],
    ['promote', "skip the flag's plan to its last step now"],
    ['abort', "stop the flag's plan and send its treatment back to 0%"],
  ];
  for (const [name, description] of simple) {
    withActionServerOption(withJsonOption(withStoreOption(withPlanAttribution(program.command(name).description(description).argument('<flag>', 'the flag key'))))).action(
      async (flagKey: string, options: ActionOptions) => {
        await performAction(ctx, options, flagKey, { action: name }, attribution(options, ctx));
      },
    );
  }
}
