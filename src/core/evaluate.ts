// evaluate(): the whole flag semantics for one context at one instant. Pure, allocation-free
// on every path but a progressive weight step, and it never throws.
import { inTreatment } from './bucketing.js';
import { murmur3Finish } from './murmur3.js';
import {
  type CompiledCondition,
  type EvaluationContext,
  type EvaluationResult,
  type FlagEntry,
  type CompiledFlag,
  type ExternalFlag,
  ConditionOp,
  RolloutKind,
  splitResults,
} from './compile-flag.js';
import { ErrorCode, Reason } from './reasons.js';

const EMPTY_CONTEXT: EvaluationContext = Object.freeze({});

/** An attribute as conditions compare it: strings as they are, numbers and booleans as text, anything else absent. */
export function attributeText(context: EvaluationContext, attribute: string): string | undefined {
  const v = context[attribute];
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/**
 * A missing attribute matches no operator, `notIn` included (a canary never widens by accident).
 * Exported so `eval`'s explanation checks rules with this very function.
 */
export function conditionMatches(c: CompiledCondition, context: EvaluationContext): boolean {
  const text = attributeText(context, c.attribute);
  if (text === undefined) return false;
  switch (c.op) {
    case ConditionOp.In:
      return (c.set as ReadonlySet<string>).has(text);
    case ConditionOp.NotIn:
      return !(c.set as ReadonlySet<string>).has(text);
    case ConditionOp.Equals:
      return text === c.text;
    case ConditionOp.StartsWith:
      return text.startsWith(c.text);
    case ConditionOp.EndsWith:
      return text.endsWith(c.text);
  }
}

/** The weight of a progressive rollout at `nowMs`, linear between start and end. */
export function progressiveWeight(flag: CompiledFlag, nowMs: number): number {
  const p = flag.progressive;
  if (p === undefined) return flag.split.weight;
  if (nowMs <= p.startMs) return p.fromWeight;
  if (nowMs >= p.endMs) return p.toWeight;
  return p.fromWeight + Math.trunc(((p.toWeight - p.fromWeight) * (nowMs - p.startMs)) / (p.endMs - p.startMs));
}

function evaluateFlag(flag: CompiledFlag, context: EvaluationContext, nowMs: number): EvaluationResult {
  if (flag.fixed !== undefined) return flag.fixed;
  const rules = flag.rules;
  for (let r = 0; r < rules.length; r++) {
    const rule = rules[r] as (typeof rules)[number];
    const conditions = rule.conditions;
    let all = true;
    for (let c = 0; c < conditions.length && all; c++) all = conditionMatches(conditions[c] as CompiledCondition, context);
    if (all) return rule.result;
  }
  if (flag.rolloutKind === RolloutKind.Static) return flag.staticResult;
  let split = flag.split;
  if (flag.rolloutKind === RolloutKind.Progressive) {
    const weight = progressiveWeight(flag, nowMs);
    if (weight !== split.weight) split = flag.split = splitResults(flag, weight);
  }
  const key = context.targetingKey;
  if (typeof key !== 'string' || key.length === 0) return split.missingKey;
  return inTreatment(murmur3Finish(flag.prefix, key), split.weight) ? split.treatment : split.baseline;
}

/**
 * Resolves a flag for a context at `nowMs`. Precedence: emergency shutdown, disabled, manual
 * override, rollback, targeting rules (first match), rollout, default.
 */
export function evaluate(flag: FlagEntry, context: EvaluationContext | undefined, nowMs: number): EvaluationResult {
  // One test keeps compiled flags, the hot path, exactly as fast as before external flags.
  if (flag.kind !== 'flag') return flag.kind === 'invalid' ? flag.result : evaluateExternal(flag, context ?? EMPTY_CONTEXT, nowMs);
  try {
    return evaluateFlag(flag, context ?? EMPTY_CONTEXT, nowMs);
  } catch (err) {
    return { value: null, reason: Reason.ERROR, errorCode: ErrorCode.GENERAL, errorMessage: String(err), flagMetadata: { revision: flag.revision } };
  }
}

/** Shutdown, disabled, override and rollback first, as for any flag; then the evaluator. */
function evaluateExternal(flag: ExternalFlag, context: EvaluationContext, nowMs: number): EvaluationResult {
  if (flag.fixed !== undefined) return flag.fixed;
  try {
    return flag.evaluator.evaluate(context, nowMs);
  } catch (err) {
    return { value: null, reason: Reason.ERROR, errorCode: ErrorCode.GENERAL, errorMessage: String(err), flagMetadata: { revision: flag.revision } };
  }
}
