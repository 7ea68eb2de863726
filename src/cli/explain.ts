// Why an evaluation came out as it did, for `eval`: which targeting rule matched (each rule is
// re-checked with core's own compileCondition and conditionMatches, since evaluate() returns
// only the result), the bucket a targeting key falls in, and the runtime state that decided it.
import { BUCKET_TOTAL, bucketFor, percentageToWeight } from '../core/bucketing.js';
import { type EvaluationContext, type EvaluationResult, type FlagEntry, compileCondition } from '../core/compile-flag.js';
import { attributeText, conditionMatches } from '../core/evaluate.js';
import type { Condition, TargetingRule } from '../core/flag-schema.js';
import { Reason } from '../core/reasons.js';
import { type ConditionOperator, conditionOperator, percentText, valueText } from './format.js';

export interface ConditionCheck {
  readonly attribute: string;
  readonly operator: ConditionOperator;
  readonly expected: unknown;
  /** The context's value as compared (numbers and booleans as text); null when absent. */
  readonly actual: string | null;
  readonly matched: boolean;
}

export interface RuleCheck {
  /** Position in the flag's `targeting` list, as in `targeting[0]`. */
  readonly index: number;
  readonly name: string | null;
  readonly variant: string;
  /** Every condition holds for the context (whether or not the rule was reached). */
  readonly matched: boolean;
  readonly conditions: readonly ConditionCheck[];
}

export interface BucketView {
  readonly targetingKey: string;
  readonly bucket: number;
  readonly total: number;
  /** The treatment owns buckets [0, treatmentBuckets). */
  readonly treatmentBuckets: number;
  readonly inTreatment: boolean;
}

function checkCondition(condition: Condition, context: EvaluationContext): ConditionCheck {
  const { operator, expected } = conditionOperator(condition);
  const actual = attributeText(context, condition.attribute) ?? null;
  return { attribute: condition.attribute, operator, expected, actual, matched: conditionMatches(compileCondition(condition), context) };
}

export function checkRules(rules: readonly TargetingRule[], context: EvaluationContext): RuleCheck[] {
  return rules.map((rule, index) => {
    const conditions = (Array.isArray(rule.when) ? rule.when : [rule.when]).map((c) => checkCondition(c, context));
    return { index, name: rule.name ?? null, variant: rule.variant, matched: conditions.every((c) => c.matched), conditions };
  });
}

export function ruleLabel(rule: RuleCheck): string {
  return `targeting[${rule.index}]${rule.name === null ? '' : ` "${rule.name}"`}`;
}

export function conditionOutcome(c: ConditionCheck): string {
  return c.actual === null ? `${c.attribute} is not in the context` : `${c.attribute} is ${valueText(c.actual)}`;
}

export function bucketView(flagKey: string, context: EvaluationContext, result: EvaluationResult): BucketView | undefined {
  const key = context.targetingKey;
  const pct = result.flagMetadata.rolloutPercentage;
  if (result.reason !== Reason.SPLIT || typeof key !== 'string' || typeof pct !== 'number') return undefined;
  const bucket = bucketFor(flagKey, key);
  const treatmentBuckets = percentageToWeight(pct);
  return { targetingKey: key, bucket, total: BUCKET_TOTAL, treatmentBuckets, inTreatment: bucket < treatmentBuckets };
}

/** One or two sentences on why `result` came out as it did. */
export function explain(entry: FlagEntry, result: EvaluationResult, match: RuleCheck | undefined, bucket: BucketView | undefined): string {
  if (entry.kind === 'invalid') return `the flag's definition is invalid, so it resolves with PARSE_ERROR (run rollout-guardian validate)`;
  const key = entry.key;
  const baseline = `the baseline "${entry.definition.defaultVariant}"`;
  const rollout = entry.definition.rollout;
  const meta = result.flagMetadata;
  switch (result.reason) {
    case Reason.ERROR:
      return result.errorMessage ?? 'the evaluation failed';
    case Reason.DISABLED:
      return meta.emergencyShutdown === true
        ? `emergency_shutdown is on: every rollout serves its baseline, so this flag serves ${baseline}`
        : `the flag is disabled (state: disabled), so it serves ${baseline}`;
    case Reason.TARGETING_MATCH:
      if (match === undefined) return 'a targeting rule matched';
      return `${ruleLabel(match)} matched (${match.conditions.map(conditionOutcome).join(', ')}), so it serves "${match.variant}"; rules come before the rollout`;
    case Reason.SPLIT:
      if (bucket === undefined) return `the percentage rollout chose "${result.variant ?? ''}"`;
      return (
        `targetingKey ${valueText(bucket.targetingKey)} falls in bucket ${bucket.bucket} of ${bucket.total}; ` +
        `the treatment "${rollout?.variant ?? ''}" owns buckets below ${bucket.treatmentBuckets} (${percentText(Number(meta.rolloutPercentage))}), ` +
        `so this context gets ${bucket.inTreatment ? `the treatment "${rollout?.variant ?? ''}"` : baseline}`
      );
    case Reason.STATIC: {
      const override = entry.state?.override;
      if (meta.overridden === true && override !== undefined) {
        return `manual override to "${override.variant}" by ${override.actor} at ${override.at} ("${override.reason}"); it beats targeting and rollout (rollout-guardian flags clear-override ${key} removes it)`;
      }
      if (rollout === undefined) return `the flag has no rollout, so every context gets ${baseline}`;
      return `the rollout has no percentage, so every context gets "${rollout.variant}"`;
    }
    case Reason.DEFAULT: {
      const rollback = entry.state?.rollback;
      if (meta.rolledBack === true && rollback !== undefined) {
        return `rolled back by ${rollback.actor} at ${rollback.at} ("${rollback.reason}"): ${baseline} serves everyone until rollout-guardian flags reset-state ${key}`;
      }
      return `no targetingKey in the context: a percentage rollout serves ${baseline} to every context without one (add "targetingKey" to --context)`;
    }
  }
}
