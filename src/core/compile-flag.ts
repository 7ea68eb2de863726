// Compiles a flag definition with its runtime state into the form evaluate() walks: every
// outcome that does not depend on the context is decided here once, and the results it can
// return are built here as frozen objects, so an evaluation allocates nothing.
import { type Murmur3State, murmur3Prefix, murmur3Utf8 } from './murmur3.js';
import { percentageToWeight, weightToPercentage } from './bucketing.js';
import type { Condition, FlagDefinition, FlagRuntimeState, FlagValueType } from './flag-schema.js';
import { flagValueType } from './flag-schema.js';
import { ErrorCode, Reason } from './reasons.js';
import { describeIssue, type SchemaIssue } from './parse-flags.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type FlagValue = boolean | string | number | JsonValue[] | { [key: string]: JsonValue };
export type FlagMetadata = Readonly<Record<string, string | number | boolean>>;

/** What an evaluation returns: OpenFeature's ResolutionDetails, structurally. */
export interface EvaluationResult {
  readonly value: FlagValue | null;
  readonly variant?: string;
  readonly reason: Reason;
  readonly errorCode?: ErrorCode;
  readonly errorMessage?: string;
  readonly flagMetadata: FlagMetadata;
}

/** The attributes of an evaluation; `targetingKey` identifies the subject for bucketing. */
export interface EvaluationContext {
  readonly targetingKey?: string;
  readonly [attribute: string]: unknown;
}

export const enum ConditionOp {
  In,
  NotIn,
  Equals,
  StartsWith,
  EndsWith,
}

export interface CompiledCondition {
  readonly attribute: string;
  readonly op: ConditionOp;
  readonly set: ReadonlySet<string> | undefined;
  readonly text: string;
}

export interface CompiledRule {
  readonly conditions: readonly CompiledCondition[];
  readonly result: EvaluationResult;
}

export const enum RolloutKind {
  /** No percentage: one result for every context that reaches the rollout. */
  Static,
  /** A fixed weight. */
  Split,
  /** A weight that moves with time between two instants. */
  Progressive,
}

interface SplitResults {
  readonly weight: number;
  readonly treatment: EvaluationResult;
  readonly baseline: EvaluationResult;
  readonly missingKey: EvaluationResult;
}

export interface CompiledFlag {
  readonly kind: 'flag';
  readonly key: string;
  readonly type: FlagValueType;
  readonly definition: FlagDefinition;
  readonly state: FlagRuntimeState | undefined;
  /** Content hash of definition, state and shutdown: the flag's revision. */
  readonly revision: string;
  /** Decided without the context (shutdown, disabled, override, rollback), or undefined. */
  readonly fixed: EvaluationResult | undefined;
  readonly rules: readonly CompiledRule[];
  readonly rolloutKind: RolloutKind;
  /** For Static rollouts: the result. */
  readonly staticResult: EvaluationResult;
  /** Hash state after the flag key's bytes. */
  readonly prefix: Readonly<Murmur3State>;
  readonly progressive: { readonly fromWeight: number; readonly toWeight: number; readonly startMs: number; readonly endMs: number } | undefined;
  /** Split results for the current weight; replaced when a progressive weight moves. */
  split: SplitResults;
}

export interface InvalidFlag {
  readonly kind: 'invalid';
  readonly key: string;
  readonly issues: readonly SchemaIssue[];
  readonly revision: string;
  readonly result: EvaluationResult;
}

/**
 * Targeting core does not evaluate itself (flagd JSON Logic our model cannot express). The
 * store that found it supplies the evaluator; core keeps the precedence above it.
 */
export interface ExternalEvaluator {
  /** Content hash of what the evaluator evaluates; part of the flag's revision. */
  readonly revision: string;
  /** Results shaped as core's; expected not to throw (core catches anyway). */
  evaluate(context: EvaluationContext, nowMs: number): EvaluationResult;
}

/**
 * A flag whose targeting an ExternalEvaluator decides. `definition` holds what our model does
 * express (variants, baseline, state, metadata), so shutdown, disabled, override and rollback
 * apply before the evaluator exactly as they do for a compiled flag.
 */
export interface ExternalFlag {
  readonly kind: 'external';
  readonly key: string;
  readonly type: FlagValueType;
  readonly definition: FlagDefinition;
  readonly state: FlagRuntimeState | undefined;
  readonly revision: string;
  /** Decided without the context (shutdown, disabled, override, rollback), or undefined. */
  readonly fixed: EvaluationResult | undefined;
  readonly evaluator: ExternalEvaluator;
}

export type FlagEntry = CompiledFlag | InvalidFlag | ExternalFlag;

export interface CompileOptions {
  /** `emergency_shutdown` is on: the flag serves its baseline. */
  readonly shutdown: boolean;
  /** The revision of an external evaluator, folded into the flag's revision. */
  readonly externalRevision?: string;
}

/** JSON with object keys sorted, so a reordered file does not read as a change. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

export function fingerprint(value: unknown): string {
  const text = canonicalJson(value);
  return hex8(murmur3Utf8(text)) + hex8(murmur3Utf8(`#${text}`));
}

export function compileCondition(c: Condition): CompiledCondition {
  if (c.in !== undefined) return { attribute: c.attribute, op: ConditionOp.In, set: new Set(c.in.map(String)), text: '' };
  if (c.notIn !== undefined) return { attribute: c.attribute, op: ConditionOp.NotIn, set: new Set(c.notIn.map(String)), text: '' };
  if (c.equals !== undefined) return { attribute: c.attribute, op: ConditionOp.Equals, set: undefined, text: String(c.equals) };
  if (c.startsWith !== undefined) return { attribute: c.attribute, op: ConditionOp.StartsWith, set: undefined, text: c.startsWith };
  return { attribute: c.attribute, op: ConditionOp.EndsWith, set: undefined, text: c.endsWith ?? '' };
}

function freezeResult(value: FlagValue, variant: string, reason: Reason, flagMetadata: FlagMetadata): EvaluationResult {
  return Object.freeze({ value, variant, reason, flagMetadata });
}

export function compileFlag(key: string, definition: FlagDefinition, state: FlagRuntimeState | undefined, options: CompileOptions): CompiledFlag {
  // An absent externalRevision drops out of the canonical JSON: ordinary revisions are unchanged.
  const revision = fingerprint({ definition, state, shutdown: options.shutdown, external: options.externalRevision });
  const variants = definition.variants as Record<string, FlagValue>;
  const baselineVariant = definition.defaultVariant;
  const baselineValue = variants[baselineVariant] as FlagValue;
  const rollout = definition.rollout;
  const userMetadata = definition.metadata ?? {};
  const metadata = (rolloutPercentage: number, extra?: Record<string, boolean | string>): FlagMetadata =>
    Object.freeze({ ...userMetadata, revision, rolloutPercentage, ...extra });

  let fixed: EvaluationResult | undefined;
  if (options.shutdown) {
    fixed = freezeResult(baselineValue, baselineVariant, Reason.DISABLED, metadata(0, { emergencyShutdown: true }));
  } else if (definition.state === 'disabled') {
    fixed = freezeResult(baselineValue, baselineVariant, Reason.DISABLED, metadata(0));
  } else if (state?.override !== undefined && Object.hasOwn(variants, state.override.variant)) {
    const v = state.override.variant;
    const pct = rollout && v === rollout.variant ? 100 : 0;
    fixed = freezeResult(variants[v] as FlagValue, v, Reason.STATIC, metadata(pct, { overridden: true }));
  } else if (state?.rollback !== undefined) {
    fixed = freezeResult(baselineValue, baselineVariant, Reason.DEFAULT, metadata(0, { rolledBack: true }));
  }

  const runtimePct = state?.percentage;
  let rolloutKind = RolloutKind.Static;
  let progressive: CompiledFlag['progressive'];
  let weight = 0;
  let staticResult: EvaluationResult;
  if (rollout === undefined) {
    staticResult = freezeResult(baselineValue, baselineVariant, Reason.STATIC, metadata(0));
  } else if (runtimePct !== undefined) {
    rolloutKind = RolloutKind.Split;
    weight = percentageToWeight(runtimePct);
  } else if (rollout.progressive !== undefined) {
    const p = rollout.progressive;
    rolloutKind = RolloutKind.Progressive;
    progressive = {
      fromWeight: percentageToWeight(p.from),
      toWeight: percentageToWeight(p.to),
      startMs: Date.parse(p.start),
      endMs: Date.parse(p.end),
    };
    weight = progressive.fromWeight;
  } else if (rollout.percentage !== undefined) {
    rolloutKind = RolloutKind.Split;
    weight = percentageToWeight(rollout.percentage);
  }
  if (rollout !== undefined && rolloutKind === RolloutKind.Static) {
    staticResult = freezeResult(variants[rollout.variant] as FlagValue, rollout.variant, Reason.STATIC, metadata(100));
  } else {
    staticResult ??= freezeResult(baselineValue, baselineVariant, Reason.DEFAULT, metadata(weightToPercentage(weight)));
  }

  const ruleMetadata = metadata(rolloutKind === RolloutKind.Static ? (rollout ? 100 : 0) : weightToPercentage(weight));
  const rules = (definition.targeting ?? []).map((rule) => ({
    conditions: (Array.isArray(rule.when) ? rule.when : [rule.when]).map(compileCondition),
    result: freezeResult(variants[rule.variant] as FlagValue, rule.variant, Reason.TARGETING_MATCH, ruleMetadata),
  }));

  const flag: CompiledFlag = {
    kind: 'flag',
    key,
    type: flagValueType(baselineValue),
    definition,
    state,
    revision,
    fixed,
    rules,
    rolloutKind,
    staticResult,
    prefix: murmur3Prefix(key),
    progressive,
    split: undefined as unknown as SplitResults,
  };
  flag.split = splitResults(flag, weight);
  return flag;
}

/** The three results a split can return at `weight`; built once per weight. */
export function splitResults(flag: CompiledFlag, weight: number): SplitResults {
  const { definition, revision } = flag;
  const variants = definition.variants as Record<string, FlagValue>;
  const treatmentVariant = definition.rollout?.variant ?? definition.defaultVariant;
  const baselineVariant = definition.defaultVariant;
  const meta = Object.freeze({ ...(definition.metadata ?? {}), revision, rolloutPercentage: weightToPercentage(weight) });
  const baselineValue = variants[baselineVariant] as FlagValue;
  return {
    weight,
    treatment: freezeResult(variants[treatmentVariant] as FlagValue, treatmentVariant, Reason.SPLIT, meta),
    baseline: freezeResult(baselineValue, baselineVariant, Reason.SPLIT, meta),
    // No targeting key: the baseline, never a coin flip.
    missingKey: freezeResult(baselineValue, baselineVariant, Reason.DEFAULT, meta),
  };
}

/** The flag `evaluator` decides, with the precedence of state and shutdown compiled as usual. */
export function externalFlag(
  key: string,
  definition: FlagDefinition,
  state: FlagRuntimeState | undefined,
  evaluator: ExternalEvaluator,
  options: CompileOptions,
): ExternalFlag {
  const compiled = compileFlag(key, definition, state, { shutdown: options.shutdown, externalRevision: evaluator.revision });
  return { kind: 'external', key, type: compiled.type, definition, state, revision: compiled.revision, fixed: compiled.fixed, evaluator };
}

export function invalidFlag(key: string, issues: readonly SchemaIssue[]): InvalidFlag {
  const message = `flag "${key}" is invalid: ${issues.map(describeIssue).join('; ')}`;
  const revision = fingerprint({ invalid: issues });
  return {
    kind: 'invalid',
    key,
    issues,
    revision,
    result: Object.freeze({ value: null, reason: Reason.ERROR, errorCode: ErrorCode.PARSE_ERROR, errorMessage: message, flagMetadata: Object.freeze({ revision }) }),
  };
}
