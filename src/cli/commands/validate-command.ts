// `validate [file]`: the flag file (and its runtime state file, when there is one) checked
// against the schema; every problem as `file:line:col: path: expected ..., got ...`.
import { readFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseStateDocument, describeIssue } from '../../core/parse-flags.js';
import { FLAGS_ENV_VAR, FileFlagStore } from '../../stores/file-store.js';
import { FLAGD_LOCATION_PREFIX, FlagdFileStore } from '../../stores/flagd-store.js';
import { documentData, readFlagText } from '../../stores/flag-file-format.js';
import { CliError, ExitCode } from '../cli-error.js';
import type { CliIo } from '../cli-io.js';
import { jsonText } from '../format.js';
import { flagFilePath } from '../store-location.js';
import { type CommandContext, type StoreOptions, withJsonOption, withStoreOption } from './command-context.js';

/** One problem: `flag` is null for problems with the file as a whole or its state file. */
export interface ValidationError {
  readonly flag: string | null;
  readonly message: string;
}

/** What `validate --json` prints. */
export interface ValidationReport {
  readonly file: string;
  readonly valid: boolean;
  /** Flags the file defines, valid or not. */
  readonly flagCount: number;
  readonly errors: readonly ValidationError[];
  /** For a flagd file: what flagd's strict schema finds; flagd serves these flags anyway. */
  readonly warnings?: readonly ValidationError[];
}

/** A path as the user would type it: relative when under cwd. */
function displayPath(path: string, io: CliIo): string {
  const rel = relative(io.cwd, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

function stateErrors(text: string, file: string, definitions: ReturnType<typeof readFlagText>['parsed']['definitions']): ValidationError[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return [{ flag: null, message: `${file}: not valid JSON: ${(err as Error).message}` }];
  }
  const state = parseStateDocument(data);
  if (state.issues.length > 0) return state.issues.map((issue) => ({ flag: null, message: `${file}: ${describeIssue(issue)}` }));
  const errors: ValidationError[] = [];
  for (const [key, flagState] of state.flags) {
    const variants = Object.keys(definitions.get(key)?.variants ?? {});
    const pinned = flagState.override?.variant;
    if (pinned !== undefined && variants.length > 0 && !variants.includes(pinned)) {
      errors.push({
        flag: key,
        message: `${file}: flags.${key}.override.variant: expected one of the variants: ${variants.join(', ')}, got ${JSON.stringify(pinned)} (the override is ignored)`,
      });
    }
  }
  return errors;
}

export async function validateFile(path: string, io: CliIo): Promise<ValidationReport> {
  const file = displayPath(path, io);
  const text = await readOptional(path);
  if (text === undefined) {
    throw new CliError(`flag file ${file} does not exist; create it, name it (rollout-guardian validate <file>), pass --store <path>, or set ${FLAGS_ENV_VAR}`);
  }
  const read = readFlagText(text, file);
  const errors: ValidationError[] = read.fileErrors.map((message) => ({ flag: null, message }));
  for (const [flag, lines] of read.flagErrors) errors.push(...lines.map((message) => ({ flag, message })));
  const data: unknown = read.fileErrors.length === 0 ? documentData(read.doc) : undefined;
  const flags = (data as { flags?: unknown } | null | undefined)?.flags;
  const flagCount = flags !== null && typeof flags === 'object' ? Object.keys(flags).length : 0;
  const statePath = new FileFlagStore({ path, watch: false }).statePath;
  const stateText = await readOptional(statePath);
  if (stateText !== undefined) errors.push(...stateErrors(stateText, displayPath(statePath, io), read.parsed.definitions));
  return { file, valid: errors.length === 0, flagCount, errors };
}

/** A flagd file: errors for what flagd cannot load, warnings for what only its strict schema refuses. */
export async function validateFlagdFile(path: string, io: CliIo): Promise<ValidationReport> {
  const store = new FlagdFileStore({ path, watch: false });
  try {
    const file = displayPath(store.source, io);
    let checked: { errors: string[]; flagCount: number };
    try {
      checked = await store.check();
    } catch (err) {
      throw new CliError((err as Error).message);
    }
    const warnings = [...(await store.schemaWarnings())].flatMap(([flag, lines]) => lines.map((message) => ({ flag: flag === '' ? null : flag, message })));
    const errors = checked.errors.map((message) => ({ flag: null, message }));
    return { file, valid: errors.length === 0, flagCount: checked.flagCount, errors, warnings };
  } finally {
    await store.close();
  }
}

export function registerValidate(program: Command, ctx: CommandContext): void {
  const command = program
    .command('validate')
    .description('check a flag file (and its .state.json) against the schema; exit 1 with file:line:col, field and expectation per problem')
    .argument('[file]', 'the flag file (default: --store, $ROLLOUT_GUARDIAN_FLAGS, then ./flags.yaml)');
  withJsonOption(withStoreOption(command)).action(async (file: string | undefined, options: StoreOptions) => {
    const { io } = ctx;
    const named = file ?? options.store;
    const report = named?.startsWith(FLAGD_LOCATION_PREFIX) === true ? await validateFlagdFile(resolve(io.cwd, named.slice(FLAGD_LOCATION_PREFIX.length)), io) : await validateFile(flagFilePath(named, io), io);
    const warnings = report.warnings ?? [];
    if (!report.valid) ctx.exitCode = ExitCode.FAILURE;
    if (options.json) {
      io.stdout.write(jsonText(report));
    } else if (report.valid) {
      const warned = warnings.length > 0 ? `, ${warnings.length} flagd schema warning${warnings.length === 1 ? '' : 's'} (flagd serves these flags anyway; its strict mode would refuse them):\n${warnings.map((w) => `  ${w.message}\n`).join('')}` : ')\n';
      io.stdout.write(`${report.file}: valid (${report.flagCount} flag${report.flagCount === 1 ? '' : 's'}${warnings.length > 0 ? ')' : ''}${warned}`);
    } else {
      const count = report.errors.length;
      const flagged = report.errors.some((e) => e.flag !== null) ? '; the flags named resolve with PARSE_ERROR until fixed' : '';
      io.stderr.write(`${report.errors.map((e) => e.message).join('\n')}\n${report.file}: ${count} problem${count === 1 ? '' : 's'}${flagged}\n`);
    }
  });
}
