// `flags list|get|set|override|clear-override|reset-state`: read flags with their runtime
// state, and change them through StoreWriter so every change carries an actor and a reason
// and lands in the audit log.
import { type Command, InvalidArgumentError } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { StoreSnapshot, WriteResult } from '../../stores/flag-store.js';
import type { MutationReport } from '../../deploy/operator-actions.js';
import { type ActionOptions, performAction, withActionServerOption } from '../control-client.js';
import { FlagdFileStore } from '../../stores/flagd-store.js';
import { type OpenedStore, storedDefinitions } from '../../stores/open-store.js';
import { StoreWriter, knownFlag } from '../../stores/store-writer.js';
import type { Attribution } from '../../stores/flag-store.js';
import { type FlagView, flagListView } from '../../deploy/flag-view.js';
import { differenceLines, differences, fields, jsonText, percentText, table, valueText, yamlBlock } from '../format.js';
import { stateLocation, withStore } from '../store-location.js';
import {
  type CommandContext,
  type MutationOptions,
  type StoreOptions,
  DEFAULT_REASON,
  withAttributionOptions,
  withJsonOption,
  withStoreOption,
} from './command-context.js';

/** `rollout.percentage`, `targeting[0].variant` or `targeting.0.variant` as a field path. */
export function parseFieldPath(text: string): (string | number)[] {
  const path: (string | number)[] = [];
  for (const part of text.split('.')) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (m === null || (m[1] === '' && m[2] === '')) {
      throw new InvalidArgumentError(`expected a field path such as rollout.percentage or targeting[0].variant, got "${text}"`);
    }
    const name = m[1] as string;
    if (name !== '') path.push(/^\d+$/.test(name) ? Number(name) : name);
    for (const index of (m[2] as string).matchAll(/\[(\d+)\]/g)) path.push(Number(index[1]));
  }
  return path;
}

/** The value as YAML, so `25`, `true`, `[a, b]` and `{variant: on}` mean what they say. */
export function parseFieldValue(text: string): unknown {
  try {
    return parseYaml(text) as unknown;
  } catch (err) {
    throw new InvalidArgumentError(`cannot read it as YAML (${(err as Error).message.split('\n')[0]}); quote a string, e.g. '"a: b"'`);
  }
}

/** The flags as written, for showing an invalid flag's definition. */
async function rawDefinitions(store: OpenedStore, snapshot: StoreSnapshot): Promise<Record<string, unknown>> {
  if (snapshot.parsed.invalid.size === 0) return {};
  try {
    return await storedDefinitions(store);
  } catch {
    return {};
  }
}

function stampText(s: { actor: string; reason: string; at: string }): string {
  return `by ${s.actor} at ${s.at} (${JSON.stringify(s.reason)})`;
}

function listText(views: readonly FlagView[], shutdown: boolean): string {
  const rows = views.map((f) => [
    f.key,
    f.type ?? '-',
    f.valid ? (f.state ?? '-') : 'INVALID',
    f.variants === null ? '-' : Object.keys(f.variants).join(', '),
    f.baseline ?? '-',
    f.valid ? f.summary : '-',
    f.override === null ? '-' : `${f.override.variant} (by ${f.override.actor})`,
  ]);
  let out = shutdown ? 'emergency_shutdown is ON: every rollout serves its baseline\n\n' : '';
  out += table(['KEY', 'TYPE', 'STATE', 'VARIANTS', 'BASELINE', 'ROLLOUT', 'OVERRIDE'], rows);
  const invalid = views.filter((f) => !f.valid);
  if (invalid.length > 0) {
    out += `\ninvalid flags (they resolve with PARSE_ERROR until fixed):\n`;
    for (const f of invalid) out += f.errors.map((e) => `  ${e}\n`).join('');
  }
  return out;
}

/** flagd's strict-schema findings: warnings, since flagd (and this store) serve the flags anyway. */
export function flagdWarningsText(warnings: readonly string[]): string {
  if (warnings.length === 0) return '';
  return `\nflagd schema warnings (flagd serves these flags anyway; its strict mode would refuse them):\n${warnings.map((w) => `  ${w}\n`).join('')}`;
}

function getText(f: FlagView, stateWhere: string): string {
  let out: string;
  if (!f.valid) {
    out = `${f.key}: INVALID, resolves with PARSE_ERROR until fixed\n${f.errors.map((e) => `  ${e}\n`).join('')}`;
    out += `definition (as written):\n${f.definition === null ? '  (none)\n' : yamlBlock(f.definition)}`;
  } else {
    const variants = Object.entries(f.variants ?? {}).map(([name, value]) => `${name} = ${valueText(value)}`);
    out = `${f.key}${f.builtIn ? ' (built-in emergency flag)' : ''}\n`;
    out += fields(
      [
        ...(f.description !== null ? [['description', f.description] as const] : []),
        ['type', f.type ?? '-'],
        ['state', f.state ?? '-'],
        ['variants', variants.join(', ')],
        ['baseline', f.baseline ?? '-'],
        ['rollout', f.summary],
        ['override', f.override === null ? 'none' : `"${f.override.variant}" ${stampText(f.override)}`],
        ['rollback', f.rollback === null ? 'none' : stampText(f.rollback)],
        ['percentage', f.runtimePercentage === null ? 'none (the file decides)' : `${percentText(f.runtimePercentage)} (runtime)`],
        ['revision', f.revision],
      ],
      '  ',
    );
    out += `definition:\n${yamlBlock(f.definition)}`;
  }
  const state = { override: f.override ?? undefined, rollback: f.rollback ?? undefined, percentage: f.runtimePercentage ?? undefined };
  const hasState = f.override !== null || f.rollback !== null || f.runtimePercentage !== null;
  out += `runtime state (${stateWhere}):\n${hasState ? yamlBlock(state) : '  none\n'}`;
  return out;
}

async function loadView(store: OpenedStore, ctx: CommandContext) {
  const snapshot = await store.load();
  return { snapshot, ...flagListView(snapshot, ctx.io.clock.now(), await rawDefinitions(store, snapshot)) };
}

export function attribution(options: MutationOptions, ctx: CommandContext): Attribution {
  return { actor: options.actor ?? (ctx.io.username || 'cli'), reason: options.reason ?? DEFAULT_REASON };
}

type Change = (writer: StoreWriter, by: Attribution, snapshot: StoreSnapshot) => Promise<WriteResult | undefined>;

/** Runs one change and reports it; a change that returns undefined found nothing to do. */
async function mutate(ctx: CommandContext, options: MutationOptions, flagKey: string, action: string, change: Change): Promise<void> {
  const { io } = ctx;
  const by = attribution(options, ctx);
  await withStore(options.store, io, async (store) => {
    const snapshot = await store.load();
    const result = await change(new StoreWriter(store, io.clock), by, snapshot);
    const entry = result?.entries.find((e) => e.flagKey === flagKey) ?? null;
    const report: MutationReport = { store: store.source, action, flag: flagKey, changed: entry !== null, revision: result?.revision ?? snapshot.revision, entry };
    if (options.json) {
      io.stdout.write(jsonText(report));
    } else if (entry === null) {
      io.stdout.write(`${flagKey}: nothing to ${action}; nothing was written\n`);
    } else {
      const diffs = [...differences(entry.before.definition, entry.after.definition, 'definition'), ...differences(entry.before.state, entry.after.state, 'state')];
      io.stdout.write(`${flagKey}: ${action} by ${entry.actor} (${JSON.stringify(entry.reason)}), recorded in the audit log\n${differenceLines(diffs)}`);
    }
    noteDefaultReason(ctx, options, entry !== null);
  });
}

function noteDefaultReason(ctx: CommandContext, options: MutationOptions, written: boolean): void {
  if (written && options.reason === undefined) {
    ctx.io.stderr.write(`note: no --reason given, so the audit log says "${DEFAULT_REASON}"; next time say why with --reason "..."\n`);
  }
}

export function registerFlags(program: Command, ctx: CommandContext): void {
  const flags = program.command('flags').description('list, show and change flags and their runtime state');

  withJsonOption(withStoreOption(flags.command('list').description('every flag: type, state, variants, baseline, rollout, override; invalid flags with their errors'))).action(
    async (options: StoreOptions) => {
      await withStore(options.store, ctx.io, async (store) => {
        const { snapshot, set, flags: views } = await loadView(store, ctx);
        // flagd serves flags its strict schema finds fault with; so do we, and say so.
        const warnings = store instanceof FlagdFileStore ? [...(await store.schemaWarnings()).values()].flat() : [];
        ctx.io.stdout.write(
          options.json
            ? jsonText({ store: store.source, revision: snapshot.revision, emergencyShutdown: set.shutdown, flags: views, ...(warnings.length > 0 ? { warnings } : {}) })
            : listText(views, set.shutdown) + flagdWarningsText(warnings),
        );
      });
    },
  );

  withJsonOption(withStoreOption(flags.command('get').description('one flag: definition and runtime state (and located errors when invalid)').argument('<flag>', 'the flag key'))).action(
    async (flagKey: string, options: StoreOptions) => {
      await withStore(options.store, ctx.io, async (store) => {
        const { snapshot, set, flags: views } = await loadView(store, ctx);
        knownFlag(snapshot, flagKey);
        const view = views.find((f) => f.key === flagKey) as FlagView;
        ctx.io.stdout.write(
          options.json ? jsonText({ store: store.source, revision: snapshot.revision, emergencyShutdown: set.shutdown, flag: view }) : getText(view, stateLocation(store)),
        );
      });
    },
  );

  const set = flags
    .command('set')
    .description("edit one field of a flag's definition in the flag file, keeping its comments and key order; refused if the flag would become invalid")
    .argument('<flag>', 'the flag key')
    .argument('<path>', 'the field inside the flag, such as rollout.percentage or targeting[0].variant', parseFieldPath)
    .argument('<value>', 'the new value, read as YAML: 25, true, [a, b], {variant: on}; quote strings that look like something else', parseFieldValue);
  withJsonOption(withStoreOption(withAttributionOptions(set))).action(async (flagKey: string, path: (string | number)[], value: unknown, options: MutationOptions) => {
    await mutate(ctx, options, flagKey, 'set', (writer, by) => writer.setDefinition(flagKey, path, value, by));
  });

  const override = flags
    .command('override')
    .description('pin a variant for every context (runtime state beside the flag file; beats everything but emergency_shutdown)')
    .argument('<flag>', 'the flag key')
    .argument('<variant>', 'one of the flag\'s variants');
  withActionServerOption(withJsonOption(withStoreOption(withAttributionOptions(override)))).action(async (flagKey: string, variant: string, options: ActionOptions) => {
    noteDefaultReason(ctx, options, await performAction(ctx, options, flagKey, { action: 'override', variant }, attribution(options, ctx)));
  });

  const clear = flags.command('clear-override').description("remove a flag's manual override").argument('<flag>', 'the flag key');
  withActionServerOption(withJsonOption(withStoreOption(withAttributionOptions(clear)))).action(async (flagKey: string, options: ActionOptions) => {
    noteDefaultReason(ctx, options, await performAction(ctx, options, flagKey, { action: 'clear-override' }, attribution(options, ctx)));
  });

  const reset = flags
    .command('reset-state')
    .description("clear a flag's runtime state: override, rollback and runtime percentage; the file decides again")
    .argument('<flag>', 'the flag key');
  withActionServerOption(withJsonOption(withStoreOption(withAttributionOptions(reset)))).action(async (flagKey: string, options: ActionOptions) => {
    noteDefaultReason(ctx, options, await performAction(ctx, options, flagKey, { action: 'reset-state' }, attribution(options, ctx)));
  });
}
