// What every command's action receives: the injected io, and the exit code a command sets
// when it ran but found a problem (an invalid file) without throwing.
import type { Command } from 'commander';
import type { CliIo } from '../cli-io.js';

export interface CommandContext {
  readonly io: CliIo;
  exitCode: number;
}

export interface StoreOptions {
  readonly store?: string;
  readonly json?: boolean;
}

export interface MutationOptions extends StoreOptions {
  readonly actor?: string;
  readonly reason?: string;
}

export const DEFAULT_REASON = 'manual change via CLI';

export function withStoreOption(command: Command): Command {
  return command.option(
    '--store <location>',
    'the flags: a YAML or JSON file, redis[s]://[:password@]host[:port][/db][?prefix=NAME], or flagd:<file> for a flagd flag-definition file (default: $ROLLOUT_GUARDIAN_FLAGS, then ./flags.yaml)',
  );
}

export function withJsonOption(command: Command): Command {
  return command.option('--json', 'print one JSON document to stdout (shapes in docs/cli.md)');
}

export function withAttributionOptions(command: Command): Command {
  return command
    .option('--actor <name>', 'who makes the change, for the audit log (default: your OS user name, else "cli")')
    .option('--reason <text>', `why, for the audit log: please always give one (default: "${DEFAULT_REASON}")`);
}
