// `eval <flag> --context '{...}'`: evaluates a flag as the provider would, now (or --at a
// given time), and says why: the rule that matched, the bucket, the state that decided it.
import { type Command, InvalidArgumentError } from 'commander';
import { instantArgument } from '../arguments.js';
import type { EvaluationContext, EvaluationResult, FlagMetadata, FlagValue } from '../../core/compile-flag.js';
import { evaluate } from '../../core/evaluate.js';
import { buildFlagSet } from '../../core/flag-set.js';
import { Reason } from '../../core/reasons.js';
import { knownFlag } from '../../stores/store-writer.js';
import { ExitCode } from '../cli-error.js';
import { type BucketView, type RuleCheck, bucketView, checkRules, conditionOutcome, explain, ruleLabel } from '../explain.js';
import { conditionText, fields, jsonText, valueText } from '../format.js';
import { withStore } from '../store-location.js';
import { type CommandContext, type StoreOptions, withJsonOption, withStoreOption } from './command-context.js';

export const CONTEXT_EXAMPLE = `--context '{"targetingKey":"user-1","region":"eu-west-1"}'`;

interface EvalOptions extends StoreOptions {
  readonly context?: EvaluationContext;
  readonly at?: number;
}

/** What `eval --json` prints. */
export interface EvaluationReport {
  readonly flag: string;
  /** The instant evaluated, ISO 8601. */
  readonly at: string;
  readonly context: EvaluationContext;
  readonly value: FlagValue | null;
  readonly variant: string | null;
  readonly reason: string;
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  readonly metadata: FlagMetadata;
  /** The targeting rule that decided the result (reason TARGETING_MATCH), or null. */
  readonly rule: { readonly index: number; readonly name: string | null; readonly variant: string } | null;
  /** For a SPLIT: where the targeting key fell. */
  readonly bucket: BucketView | null;
  readonly explanation: string;
  /** For an invalid flag: where its definition is wrong, `file:line:col: path: expected ...`. */
  readonly errors: readonly string[];
  /** Every targeting rule checked against the context, first match wins. */
  readonly rules: readonly RuleCheck[];
}

export function parseContext(text: string): EvaluationContext {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`it is not valid JSON (${(err as Error).message}); pass one JSON object in single quotes, e.g. ${CONTEXT_EXAMPLE}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new InvalidArgumentError(`expected a JSON object of attributes, e.g. ${CONTEXT_EXAMPLE}`);
  }
  const key = (data as Record<string, unknown>).targetingKey;
  if (key !== undefined && typeof key !== 'string') throw new InvalidArgumentError(`targetingKey must be a string, e.g. ${CONTEXT_EXAMPLE}`);
  return data as EvaluationContext;
}


function reportText(r: EvaluationReport): string {
  const meta = Object.entries(r.metadata).map(([k, v]) => `${k}=${typeof v === 'string' ? v : valueText(v)}`);
  const matched = r.rule === null ? undefined : r.rules[r.rule.index];
  let out = fields([
    ['flag', r.flag],
    ['value', valueText(r.value)],
    ['variant', r.variant ?? '-'],
    ['reason', r.errorCode === null ? r.reason : `${r.reason} (${r.errorCode})`],
    ...(matched !== undefined ? [['rule', `${ruleLabel(matched)}: ${matched.conditions.map(conditionText).join(' and ')}`] as const] : []),
    ['metadata', meta.join(', ')],
    ['why', r.explanation],
  ]);
  if (r.errors.length > 0) out += `errors:\n${r.errors.map((e) => `  ${e}\n`).join('')}`;
  if (r.rules.length > 0) {
    out += 'targeting rules (first match wins):\n';
    for (const rule of r.rules) {
      const outcome = rule.matched ? 'matches' : `no match: ${rule.conditions.filter((c) => !c.matched).map(conditionOutcome).join(', ')}`;
      out += `  ${ruleLabel(rule)} -> ${rule.variant}: ${outcome}\n`;
    }
  }
  return out;
}

export function registerEval(program: Command, ctx: CommandContext): void {
  const command = program
    .command('eval')
    .description('evaluate a flag for a context and explain the result: value, variant, reason, metadata, the rule that matched')
    .argument('<flag>', 'the flag key')
    .option('--context <json>', `the evaluation context as a JSON object, e.g. ${CONTEXT_EXAMPLE}`, parseContext)
    .option('--at <time>', 'evaluate at this instant instead of now: ISO 8601 such as 2026-11-08T09:00:00Z, or relative such as +2h (progressive rollouts move with time)', instantArgument(() => ctx.io.clock.now()));
  withJsonOption(withStoreOption(command)).action(async (flagKey: string, options: EvalOptions) => {
    const { io } = ctx;
    const nowMs = options.at ?? io.clock.now();
    const context = options.context ?? {};
    await withStore(options.store, io, async (store) => {
      const snapshot = await store.load();
      const served = snapshot.serving?.get(flagKey);
      let result: EvaluationResult;
      let detail: Pick<EvaluationReport, 'rule' | 'bucket' | 'explanation' | 'errors' | 'rules'>;
      if (served !== undefined) {
        // A store with its own serving semantics (a flagd file) answers as the provider does.
        result = served.evaluate(context, nowMs);
        const explanation =
          result.value === null
            ? `served as a flagd daemon serves it: no variant, so the caller's default value (${result.reason})`
            : `served as a flagd daemon serves it (flagd's targeting rules): variant ${result.variant ?? '-'} (${result.reason})`;
        detail = { rule: null, bucket: null, explanation, errors: [], rules: [] };
      } else {
        knownFlag(snapshot, flagKey);
        const { set } = buildFlagSet(snapshot.parsed, snapshot.state, nowMs, undefined, snapshot.external);
        const entry = set.flags.get(flagKey);
        if (entry === undefined) throw new Error(`flag "${flagKey}" is known but was not compiled`);
        result = evaluate(entry, context, nowMs);
        const rules = entry.kind === 'flag' ? checkRules(entry.definition.targeting ?? [], context) : [];
        const match = result.reason === Reason.TARGETING_MATCH ? rules.find((r) => r.matched) : undefined;
        const bucket = bucketView(flagKey, context, result);
        detail = {
          rule: match === undefined ? null : { index: match.index, name: match.name, variant: match.variant },
          bucket: bucket ?? null,
          explanation: explain(entry, result, match, bucket),
          errors: entry.kind === 'invalid' ? (snapshot.flagErrors?.get(flagKey) ?? []) : [],
          rules,
        };
      }
      const report: EvaluationReport = {
        flag: flagKey,
        at: new Date(nowMs).toISOString(),
        context,
        value: result.value,
        variant: result.variant ?? null,
        reason: result.reason,
        errorCode: result.errorCode ?? null,
        errorMessage: result.errorMessage ?? null,
        metadata: result.flagMetadata,
        ...detail,
      };
      io.stdout.write(options.json ? jsonText(report) : reportText(report));
      // A script that asks for a flag should notice that it does not resolve.
      if (result.reason === Reason.ERROR) ctx.exitCode = ExitCode.FAILURE;
    });
  });
}
