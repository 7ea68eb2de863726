// The rollout-guardian command line: builds the commander program over an injected io and
// runs it to an exit code. Expected errors become one `error: ...` line with a hint; usage
// errors exit 2, failures 1.
import { Command, CommanderError } from 'commander';
import type { CliIo } from './cli-io.js';
import { ExitCode, expectedError } from './cli-error.js';
import type { CommandContext } from './commands/command-context.js';
import { registerAudit } from './commands/audit-command.js';
import { registerEval } from './commands/eval-command.js';
import { registerFlags } from './commands/flags-command.js';
import { registerSchema } from './commands/schema-command.js';
import { registerValidate } from './commands/validate-command.js';
import { registerPlanCommands } from './commands/plan-commands.js';
import { registerStatus } from './commands/status-command.js';
import { registerHealth } from './commands/health-command.js';
import { registerServe } from './commands/serve-command.js';
import { registerCopy } from './commands/copy-command.js';
import { registerExport } from './commands/export-command.js';
import { registerImport } from './commands/import-command.js';

export const CLI_NAME = 'rollout-guardian';

const HELP_FOOTER = `
Exit codes: 0 ok; 1 the command failed (invalid file, unknown flag, refused write);
2 the command line is wrong (unknown command or option, bad argument).
Every command reads the flag file from --store, else $ROLLOUT_GUARDIAN_FLAGS, else ./flags.yaml.`;

function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function hintAfterErrors(command: Command): void {
  command.showHelpAfterError(`(run "${commandPath(command)} --help" for usage)`);
  for (const sub of command.commands) hintAfterErrors(sub);
}

export function buildProgram(ctx: CommandContext): Command {
  const { io } = ctx;
  const program = new Command(CLI_NAME)
    .description('Guarded progressive feature-flag rollouts: validate flag files, inspect and change flags, read the audit log, explain evaluations.')
    .version(io.version, '-V, --version')
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .exitOverride()
    .addHelpText('after', HELP_FOOTER);
  registerValidate(program, ctx);
  registerFlags(program, ctx);
  registerAudit(program, ctx);
  registerEval(program, ctx);
  registerSchema(program, ctx);
  registerPlanCommands(program, ctx);
  registerStatus(program, ctx);
  registerHealth(program, ctx);
  registerServe(program, ctx);
  registerCopy(program, ctx);
  registerExport(program, ctx);
  registerImport(program, ctx);
  hintAfterErrors(program);
  return program;
}

/** Runs the command line `argv` (without node and the script) and returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const ctx: CommandContext = { io, exitCode: ExitCode.OK };
  try {
    await buildProgram(ctx).parseAsync([...argv], { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    // commander has printed its own message (and the hint) already.
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    const expected = expectedError(err);
    if (expected !== undefined) {
      io.stderr.write(`error: ${expected.message}\n`);
      return expected.exitCode;
    }
    io.stderr.write(`error: unexpected failure, please report it with the command you ran:\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return ExitCode.FAILURE;
  }
}
