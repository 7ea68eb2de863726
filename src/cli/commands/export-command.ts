// `export --format flagd`: the flags, runtime state and emergency shutdown materialized, as
// flagd's flag-definition JSON, checked against flagd's own schema, to stdout or --out; what
// could not be exported, or what a flagd daemon may read otherwise, goes to stderr.
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { instantArgument } from '../arguments.js';
import { describeConversionIssue, toFlagdDocument } from '../../flagd/flagd-convert.js';
import { writeFileAtomic } from '../../stores/atomic-write.js';
import { validateFlagdText } from '../../flagd/flagd-evaluator.js';
import { CliError, ExitCode } from '../cli-error.js';
import { withStore } from '../store-location.js';
import { type CommandContext, type StoreOptions, withStoreOption } from './command-context.js';

interface ExportOptions extends StoreOptions {
  readonly format: 'flagd';
  readonly out?: string;
  readonly at?: number | 'now';
}

function parseFormat(text: string): 'flagd' {
  if (text !== 'flagd') throw new InvalidArgumentError(`expected flagd (flagd's flag-definition JSON), got "${text}"`);
  return text;
}


export function registerExport(program: Command, ctx: CommandContext): void {
  const command = program
    .command('export')
    .description("write the flags as flagd's flag-definition JSON, overrides, rollbacks, runtime percentages and emergency shutdown materialized; exit 1 if a flag could not be exported")
    .requiredOption('--format <format>', "the format to write: flagd (https://flagd.dev/schema/v0/flags.json)", parseFormat)
    .option('--out <file>', 'write to this file (replaced atomically) instead of stdout')
    .option(
      '--at <time>',
      'freeze time-based rollouts at this ISO 8601 instant (or now): a fixed fractional instead of the $flagd.timestamp ramp; also the instant that decides emergency_shutdown',
      instantArgument(() => ctx.io.clock.now(), { allowNow: true }),
    );
  withStoreOption(command).action(async (options: ExportOptions) => {
    const { io } = ctx;
    await withStore(options.store, io, async (store) => {
      const snapshot = await store.load();
      const nowMs = options.at === undefined || options.at === 'now' ? io.clock.now() : options.at;
      const exported = toFlagdDocument(snapshot.parsed, snapshot.state, { nowMs, freezeProgressive: options.at !== undefined });
      const text = `${JSON.stringify(exported.document, null, 2)}\n`;
      const problems = validateFlagdText(text);
      if (problems.length > 0) {
        // Export writes only what flagd's schema allows; a failure here is a bug, not bad input.
        throw new Error(`the exported document does not pass flagd's schema: ${problems.map((p) => p.message).join('; ')}`);
      }
      const count = Object.keys(exported.document.flags).length;
      if (options.out === undefined) {
        io.stdout.write(text);
      } else {
        const out = resolve(io.cwd, options.out);
        try {
          await writeFileAtomic(out, text);
        } catch (err) {
          throw new CliError(`cannot write ${out}: ${(err as Error).message}`);
        }
        io.stdout.write(`wrote ${count} flag${count === 1 ? '' : 's'} from ${store.source} to ${out} as flagd JSON\n`);
      }
      for (const note of exported.notes) io.stderr.write(`note: ${describeConversionIssue(note)}\n`);
      for (const skipped of exported.skipped) io.stderr.write(`not exported: ${describeConversionIssue(skipped)}\n`);
      if (exported.skipped.length > 0) {
        const flags = new Set(exported.skipped.map((s) => s.flag));
        io.stderr.write(`${flags.size} flag${flags.size === 1 ? '' : 's'} left out: a flagd daemon serving this file will not know ${flags.size === 1 ? 'it' : 'them'}\n`);
        ctx.exitCode = ExitCode.FAILURE;
      }
    });
  });
}
