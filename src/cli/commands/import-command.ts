// `import --from flagd <file>`: a flagd flag-definition file as a rollout-guardian flag file.
// What maps exactly is converted; every flag that does not is left out and named with the JSON
// path and the reason. Only input that cannot be read at all fails the command.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { parse as parseYaml, stringify } from 'yaml';
import { FLAG_FILE_SCHEMA_URL } from '../../core/flag-schema.js';
import { describeConversionIssue, fromFlagdDocument } from '../../flagd/flagd-convert.js';
import { formatIssuePath } from '../../core/parse-flags.js';
import { writeFileAtomic } from '../../stores/atomic-write.js';
import { isJsonPath } from '../../stores/flag-file-format.js';
import { CliError } from '../cli-error.js';
import { jsonText } from '../format.js';
import { type CommandContext, withJsonOption } from './command-context.js';

interface ImportOptions {
  readonly from: 'flagd';
  readonly out?: string;
  readonly json?: boolean;
}

/** What `import --json` prints. */
export interface ImportReport {
  readonly file: string;
  readonly from: 'flagd';
  /** Where the flag file was written, or null when it went to stdout (--json: only in `flags`). */
  readonly out: string | null;
  readonly converted: readonly string[];
  /** The converted flags, as the flag file's `flags`. */
  readonly flags: Readonly<Record<string, unknown>>;
  /** Everything that did not convert; the flags named are left out. */
  readonly issues: readonly { readonly flag: string; readonly path: string; readonly message: string }[];
}

function parseFrom(text: string): 'flagd' {
  if (text !== 'flagd') throw new InvalidArgumentError(`expected flagd (a flagd flag-definition file), got "${text}"`);
  return text;
}

function readDocument(path: string, text: string): unknown {
  // flagd reads YAML flag files too; JSON is its usual form.
  if (/\.ya?ml$/i.test(path)) {
    try {
      return parseYaml(text) as unknown;
    } catch (err) {
      throw new CliError(`${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new CliError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
}

function flagFileText(flags: Readonly<Record<string, unknown>>, out: string | undefined, from: string): string {
  if (out !== undefined && isJsonPath(out)) return jsonText({ $schema: FLAG_FILE_SCHEMA_URL, flags });
  return `# Imported from ${from} by rollout-guardian import --from flagd.\n${stringify({ flags }, { lineWidth: 0 })}`;
}

export function registerImport(program: Command, ctx: CommandContext): void {
  const command = program
    .command('import')
    .description('convert a flagd flag-definition file into a rollout-guardian flag file; what does not map is named with its JSON path and left out')
    .requiredOption('--from <format>', 'the format of <file>: flagd', parseFrom)
    .argument('<file>', 'the flagd flag-definition file (JSON, or YAML)')
    .option('--out <file>', 'write the flag file here (YAML; JSON for a .json name) instead of stdout');
  withJsonOption(command).action(async (file: string, options: ImportOptions) => {
    const { io } = ctx;
    const path = resolve(io.cwd, file);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new CliError((err as NodeJS.ErrnoException).code === 'ENOENT' ? `${path} does not exist` : `cannot read ${path}: ${(err as Error).message}`);
    }
    const imported = fromFlagdDocument(readDocument(path, text));
    if (imported.unreadable) throw new CliError(`${path} is not a flagd flag-definition file: ${imported.issues.map(describeConversionIssue).join('; ')}`);
    const out = options.out === undefined ? undefined : resolve(io.cwd, options.out);
    const fileText = flagFileText(imported.flags, out, file);
    if (out !== undefined) {
      try {
        await writeFileAtomic(out, fileText);
      } catch (err) {
        throw new CliError(`cannot write ${out}: ${(err as Error).message}`);
      }
    }
    const converted = Object.keys(imported.flags);
    const left = new Set(imported.issues.map((i) => i.flag));
    if (options.json) {
      const report: ImportReport = {
        file: path,
        from: 'flagd',
        out: out ?? null,
        converted,
        flags: imported.flags,
        issues: imported.issues.map((i) => ({ flag: i.flag, path: formatIssuePath(i.path), message: i.message })),
      };
      io.stdout.write(jsonText(report));
    } else if (out === undefined) {
      io.stdout.write(fileText);
    }
    if (!options.json) {
      for (const issue of imported.issues) io.stderr.write(`not converted: ${describeConversionIssue(issue)}\n`);
      const summary = `${converted.length} flag${converted.length === 1 ? '' : 's'} converted${out === undefined ? '' : ` to ${out}`}`;
      const line = `${summary}${left.size > 0 ? `; ${left.size} left out (${[...left].join(', ')}), see the lines above` : ''}\n`;
      // The summary goes with the output: stdout when the flag file went to a file, else stderr.
      (out === undefined ? io.stderr : io.stdout).write(line);
    }
  });
}
