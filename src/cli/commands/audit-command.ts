// `audit [--flag KEY] [--limit N]`: who changed what, when and why, with the state before
// and after, oldest first.
import { type Command, InvalidArgumentError } from 'commander';
import type { AuditEntry } from '../../stores/flag-store.js';
import { knownFlag } from '../../stores/store-writer.js';
import { differenceLines, differences, jsonText } from '../format.js';
import { auditLocation, withStore } from '../store-location.js';
import { type CommandContext, type StoreOptions, withJsonOption, withStoreOption } from './command-context.js';

interface AuditOptions extends StoreOptions {
  readonly flag?: string;
  readonly limit?: number;
}

function positiveInteger(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a whole number of entries from 1 up, got "${text}"`);
  return n;
}

function entryText(e: AuditEntry): string {
  const diffs = [...differences(e.before.definition, e.after.definition, 'definition'), ...differences(e.before.state, e.after.state, 'state')];
  const evidence = e.evidence === undefined ? '' : `  evidence: ${JSON.stringify(e.evidence)}\n`;
  return `${e.time}  ${e.action}  ${e.flagKey}  by ${e.actor}: ${JSON.stringify(e.reason)}\n${differenceLines(diffs)}${evidence}`;
}

export function registerAudit(program: Command, ctx: CommandContext): void {
  const command = program
    .command('audit')
    .description('the audit log: every change with actor, reason and the definition and state before and after, oldest first')
    .option('--flag <key>', 'only the entries of this flag')
    .option('--limit <n>', 'only the newest n entries', positiveInteger);
  withJsonOption(withStoreOption(command)).action(async (options: AuditOptions) => {
    const { io } = ctx;
    await withStore(options.store, io, async (store) => {
      const entries = await store.audit({ flagKey: options.flag, limit: options.limit });
      // No history for a key that is not a flag either: most likely a typo.
      if (entries.length === 0 && options.flag !== undefined) knownFlag(await store.load(), options.flag);
      if (options.json) io.stdout.write(jsonText({ store: store.source, entries }));
      else if (entries.length === 0) io.stdout.write(`no audit entries${options.flag === undefined ? '' : ` for flag "${options.flag}"`} in ${auditLocation(store)}\n`);
      else io.stdout.write(entries.map(entryText).join('\n'));
    });
  });
}
