// `copy --from <store> --to <store>`: the flags and their runtime state (overrides, rollbacks,
// plan state) from one store into another, file to Redis and back, as one audited write on
// the target that makes it match the source; `--dry-run` says what would change.
import { access, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { canonicalJson } from '../../core/compile-flag.js';
import type { FlagRuntimeState } from '../../core/flag-schema.js';
import { parseFlagDocument } from '../../core/parse-flags.js';
import { type AuditEntry, type FlagChange, type StoreSnapshot, type WriteResult, RevisionConflictError } from '../../stores/flag-store.js';
import { FileFlagStore } from '../../stores/file-store.js';
import { isJsonPath } from '../../stores/flag-file-format.js';
import { type OpenedStore, storedDefinitions } from '../../stores/open-store.js';
import { CliError, usageError } from '../cli-error.js';
import { jsonText, table } from '../format.js';
import { openLocation } from '../store-location.js';
import { type CommandContext, type MutationOptions, DEFAULT_REASON, withAttributionOptions, withJsonOption } from './command-context.js';

interface CopyOptions extends MutationOptions {
  readonly from: string;
  readonly to: string;
  readonly dryRun?: boolean;
}

/** What the copy does to one flag on the target. */
export interface CopyItem {
  readonly flag: string;
  readonly definition: 'added' | 'changed' | 'removed' | 'unchanged';
  readonly state: 'set' | 'cleared' | 'unchanged';
}

/** What `copy --json` prints. */
export interface CopyReport {
  readonly from: string;
  readonly to: string;
  readonly dryRun: boolean;
  /** Whether anything was written (with --dry-run: would be). */
  readonly changed: boolean;
  /** The target's revision after the copy; as read when nothing was written. */
  readonly revision: string;
  /** Only the flags that differ(ed). */
  readonly flags: readonly CopyItem[];
  /** The audit entries the write produced, one per flag; empty for a dry run. */
  readonly entries: readonly AuditEntry[];
}

/** A conflicting writer on the target is waited out this often before giving up. */
const ATTEMPTS = 10;

interface Side {
  readonly snapshot: StoreSnapshot;
  readonly definitions: Record<string, unknown>;
}

async function read(store: OpenedStore): Promise<Side> {
  const snapshot = await store.load();
  return { snapshot, definitions: await storedDefinitions(store) };
}

/** The changes that make `target` match `source`, whole flags at a time. */
export function copyChanges(source: Side, target: Side): { items: CopyItem[]; changes: FlagChange[] } {
  const keys = new Set([...Object.keys(source.definitions), ...source.snapshot.state.keys(), ...Object.keys(target.definitions), ...target.snapshot.state.keys()]);
  const items: CopyItem[] = [];
  const changes: FlagChange[] = [];
  for (const key of keys) {
    const inSource = Object.hasOwn(source.definitions, key);
    const inTarget = Object.hasOwn(target.definitions, key);
    const definition: CopyItem['definition'] = inSource
      ? !inTarget
        ? 'added'
        : canonicalJson(source.definitions[key]) === canonicalJson(target.definitions[key])
          ? 'unchanged'
          : 'changed'
      : inTarget
        ? 'removed'
        : 'unchanged';
    // State left behind for a flag the source no longer has is not carried over.
    const wanted: FlagRuntimeState | null = source.snapshot.parsed.definitions.has(key) ? (source.snapshot.state.get(key) ?? null) : null;
    const current = target.snapshot.state.get(key) ?? null;
    const state: CopyItem['state'] = canonicalJson(wanted) === canonicalJson(current) ? 'unchanged' : wanted === null ? 'cleared' : 'set';
    if (definition === 'unchanged' && state === 'unchanged') continue;
    items.push({ flag: key, definition, state });
    changes.push({
      flagKey: key,
      ...(definition === 'unchanged' ? {} : { definitionEdits: [{ path: [], value: definition === 'removed' ? undefined : source.definitions[key] }] }),
      ...(state === 'unchanged' ? {} : { state: wanted }),
    });
  }
  return { items, changes };
}

/** A target flag file that does not exist yet is created empty (on a dry run, read as empty). */
async function prepareTarget(store: OpenedStore, dryRun: boolean): Promise<Side | undefined> {
  if (!(store instanceof FileFlagStore)) return undefined;
  try {
    await access(store.source);
    return undefined;
  } catch {
    if (dryRun) return { snapshot: { revision: '0', parsed: parseFlagDocument({ flags: {} }), state: new Map(), source: store.source }, definitions: {} };
    await writeFile(store.source, isJsonPath(store.source) ? '{ "flags": {} }\n' : 'flags: {}\n', { flag: 'wx' });
    return undefined;
  }
}

function refuseInvalidSource(source: Side): void {
  const invalid = [...source.snapshot.parsed.invalid.keys()];
  if (invalid.length === 0) return;
  const lines = invalid.flatMap((key) => source.snapshot.flagErrors?.get(key) ?? [`flag "${key}" is invalid`]);
  throw new CliError(`${source.snapshot.source} has invalid flags, so it is not copied; fix them first (nothing was written):${lines.map((l) => `\n  ${l}`).join('')}`);
}

function reportText(report: CopyReport): string {
  if (report.flags.length === 0) return `${report.to} already matches ${report.from}; nothing was written\n`;
  const n = report.flags.length;
  const head = report.dryRun
    ? `a copy from ${report.from} to ${report.to} would change ${n} flag${n === 1 ? '' : 's'} (dry run: nothing was written):`
    : `copied ${n} flag${n === 1 ? '' : 's'} from ${report.from} to ${report.to} (revision ${report.revision}), recorded in the audit log:`;
  const rows = report.flags.map((f) => [f.flag, f.definition === 'unchanged' ? '-' : f.definition, f.state === 'unchanged' ? '-' : f.state]);
  return `${head}\n${table(['FLAG', 'DEFINITION', 'STATE'], rows)}`;
}

export function registerCopy(program: Command, ctx: CommandContext): void {
  const command = program
    .command('copy')
    .description('make one store match another: flags and runtime state (overrides, rollbacks, plans), file to Redis and back, as one audited write')
    .requiredOption('--from <store>', 'the store to copy from: a flag file or a redis[s]:// URL')
    .requiredOption('--to <store>', 'the store to make match it: a flag file (created when missing) or a redis[s]:// URL')
    .option('--dry-run', 'say what would change, and write nothing');
  withJsonOption(withAttributionOptions(command)).action(async (options: CopyOptions) => {
    const { io } = ctx;
    const by = { actor: options.actor ?? (io.username || 'cli'), reason: options.reason ?? DEFAULT_REASON };
    const sourceStore = openLocation(options.from, '--from', io);
    const targetStore = openLocation(options.to, '--to', io);
    try {
      if (sourceStore.source === targetStore.source) throw usageError(`--from and --to name the same store (${sourceStore.source}); nothing to copy`);
      const source = await read(sourceStore);
      refuseInvalidSource(source);
      const emptyTarget = await prepareTarget(targetStore, options.dryRun === true);
      let report: CopyReport | undefined;
      for (let attempt = 1; report === undefined; attempt++) {
        const target = emptyTarget ?? (await read(targetStore));
        const { items, changes } = copyChanges(source, target);
        const base = { from: sourceStore.source, to: targetStore.source, dryRun: options.dryRun === true };
        if (options.dryRun || changes.length === 0) {
          report = { ...base, changed: changes.length > 0, revision: target.snapshot.revision, flags: items, entries: [] };
          continue;
        }
        let result: WriteResult;
        try {
          result = await targetStore.write({
            ...by,
            action: 'copy',
            expectedRevision: target.snapshot.revision,
            changes,
            evidence: { copiedFrom: sourceStore.source, sourceRevision: source.snapshot.revision },
          });
        } catch (err) {
          // Someone wrote to the target meanwhile: compare again against what is there now.
          if (err instanceof RevisionConflictError && attempt < ATTEMPTS) continue;
          throw err;
        }
        report = { ...base, changed: true, revision: result.revision, flags: items, entries: result.entries };
      }
      io.stdout.write(options.json ? jsonText(report) : reportText(report));
      if (report.entries.length > 0 && options.reason === undefined) {
        io.stderr.write(`note: no --reason given, so the audit log says "${DEFAULT_REASON}"; next time say why with --reason "..."\n`);
      }
    } finally {
      await Promise.all([sourceStore.close(), targetStore.close()]);
    }
  });
}
