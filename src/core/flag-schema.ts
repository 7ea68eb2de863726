// The flag file as users write it (definitions) and the runtime state the system keeps
// beside it, as zod schemas. Everything that enters from a file or the network is
// validated here; the rest of the code trusts the inferred types.
import { z } from 'zod';
import { parseDurationMs } from './duration.js';

/** Percentages resolve to 1/10,000 of a percent: weights out of 1,000,000 (see bucketing.ts). */
const PERCENTAGE_STEP = 0.0001;

const percentage = z
  .number({ error: 'expected a percentage from 0 to 100 (a number)' })
  .min(0, { error: 'expected a percentage from 0 to 100' })
  .max(100, { error: 'expected a percentage from 0 to 100' })
  .refine((p) => Math.abs(Math.round(p / PERCENTAGE_STEP) * PERCENTAGE_STEP - p) < 1e-9, {
    error: 'expected at most 4 decimal places (the resolution is 0.0001%)',
  });

const duration = z.union([z.string(), z.number()], { error: 'expected a duration such as 30s, 5m, 1h30m or 7d' }).refine(
  (d) => parseDurationMs(d) !== undefined,
  { error: 'expected a duration such as 30s, 5m, 1h30m or 7d' },
);

const isoDateTime = z.iso.datetime({ offset: true, error: 'expected an ISO 8601 date-time such as 2026-05-01T09:00:00Z' });

const scalar = z.union([z.string(), z.number(), z.boolean()], { error: 'expected a string, number or boolean' });

const variantValue = z.union([z.boolean(), z.string(), z.number(), z.array(z.json()), z.record(z.string(), z.json())], {
  error: 'expected a variant value: boolean, string, number or object',
});

const conditionOperators = ['in', 'notIn', 'equals', 'startsWith', 'endsWith'] as const;

export const conditionSchema = z
  .strictObject({
    attribute: z.string({ error: 'expected the name of a context attribute (targetingKey counts as one)' }).min(1),
    in: z.array(scalar).min(1, { error: 'expected a non-empty list' }).optional(),
    notIn: z.array(scalar).min(1, { error: 'expected a non-empty list' }).optional(),
    equals: scalar.optional(),
    startsWith: z.string().min(1).optional(),
    endsWith: z.string().min(1).optional(),
  })
  .superRefine((c, ctx) => {
    const used = conditionOperators.filter((op) => c[op] !== undefined);
    if (used.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: `expected exactly one operator of ${conditionOperators.join(', ')}${used.length > 1 ? `, got ${used.join(' and ')}` : ''}`,
      });
    }
  });

export const targetingRuleSchema = z.strictObject({
  name: z.string().optional(),
  when: z.union([conditionSchema, z.array(conditionSchema).min(1)], {
    error: 'expected a condition {attribute, in|notIn|equals|startsWith|endsWith} or a list of them (all must match)',
  }),
  variant: z.string({ error: 'expected the name of a variant' }),
});

export const progressiveSchema = z
  .strictObject({
    from: percentage.default(0),
    to: percentage.default(100),
    start: isoDateTime,
    end: isoDateTime,
  })
  // Written so an unparsable start or end (already reported on its own field) is not also
  // reported here.
  .refine((p) => !(Date.parse(p.end) <= Date.parse(p.start)), { error: 'expected end to be after start', path: ['end'] });

export const rolloutSchema = z
  .strictObject({
    variant: z.string({ error: 'expected the name of the treatment variant' }),
    percentage: percentage.optional(),
    progressive: progressiveSchema.optional(),
  })
  .refine((r) => r.percentage === undefined || r.progressive === undefined, {
    error: 'expected either percentage or progressive, not both',
  });

/** Prometheus label names: what `variantLabel` may be. */
const PROMETHEUS_LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const promql = z.string({ error: 'expected a PromQL query (a string)' }).trim().min(1, { error: 'expected a PromQL query, not an empty string' });

/**
 * Where a guard's numbers come from when they are in Prometheus: one instant query per slot for
 * each, grouped by the variant label; `$__interval` is the slot as a PromQL duration and `$flag`
 * the flag key (see docs/prometheus-source.md).
 */
export const prometheusGuardSchema = z.strictObject({
  requests: promql,
  errors: promql,
  latencyBuckets: promql.optional(),
  latencyUnit: z.enum(['s', 'ms'], { error: 'expected the unit of the le label: s (seconds, the Prometheus convention) or ms' }).optional(),
  variantLabel: z.string().regex(PROMETHEUS_LABEL_NAME, { error: 'expected a Prometheus label name such as variant or feature_flag_variant' }).optional(),
});

export const guardSchema = z.strictObject({
  enabled: z.boolean().optional(),
  maxErrorRate: z.number().min(0).max(1, { error: 'expected an error rate from 0 to 1 (0.01 is 1%)' }).optional(),
  maxP95Ms: z.number().positive({ error: 'expected milliseconds greater than 0' }).optional(),
  maxP99Ms: z.number().positive({ error: 'expected milliseconds greater than 0' }).optional(),
  sustainFor: duration.optional(),
  minSamples: z.int().min(1).optional(),
  confidence: z.number().min(0.5).max(0.999999, { error: 'expected a confidence below 1, such as 0.99' }).optional(),
  healthCheckFailures: z.int().min(1).optional(),
  fastPath: z.boolean().optional(),
  conversions: z
    .array(
      z.strictObject({
        event: z.string({ error: 'expected the name of a tracked event, as passed to track()' }).min(1).max(200),
        maxDropPct: z.number().gt(0, { error: 'expected a percentage greater than 0, such as 5' }).lt(100, { error: 'expected a percentage below 100, such as 5' }),
      }),
    )
    .max(8, { error: 'expected at most 8 conversion checks per flag' })
    .optional(),
  /** Warning levels: judged like the limits above, they notify and never roll back. */
  warn: z
    .strictObject({
      enabled: z.boolean().optional(),
      maxErrorRate: z.number().min(0).max(1, { error: 'expected an error rate from 0 to 1 (0.005 is 0.5%)' }).optional(),
      maxP95Ms: z.number().positive({ error: 'expected milliseconds greater than 0' }).optional(),
      maxP99Ms: z.number().positive({ error: 'expected milliseconds greater than 0' }).optional(),
    })
    .optional(),
  relative: z
    .strictObject({
      maxErrorRateIncrease: z.number().min(0).max(1).optional(),
      maxP95IncreasePct: z.number().min(0).optional(),
      maxP99IncreasePct: z.number().min(0).optional(),
      ceiling: z.boolean().optional(),
    })
    .optional(),
  prometheus: prometheusGuardSchema.optional(),
});

const variantValueType = (v: unknown): FlagValueType =>
  typeof v === 'boolean' ? 'boolean' : typeof v === 'string' ? 'string' : typeof v === 'number' ? 'number' : 'object';

export const flagDefinitionSchema = z
  .strictObject({
    description: z.string().optional(),
    variants: z
      .record(z.string(), variantValue, { error: 'expected a map of variant names to values' })
      .refine((v) => Object.keys(v).length > 0, { error: 'expected at least one variant' }),
    defaultVariant: z.string({ error: 'expected the name of the baseline variant' }),
    state: z.enum(['enabled', 'disabled'], { error: 'expected enabled or disabled' }).default('enabled'),
    rollout: rolloutSchema.optional(),
    targeting: z.array(targetingRuleSchema, { error: 'expected a list of targeting rules' }).optional(),
    guard: guardSchema.optional(),
    metadata: z.record(z.string(), scalar).optional(),
  })
  .superRefine((f, ctx) => {
    const names = Object.keys(f.variants);
    // No variants is reported once, not again for every field that names one.
    if (names.length === 0) return;
    const known = (v: string) => Object.hasOwn(f.variants, v);
    const expected = `expected one of the variants: ${names.join(', ')}`;
    if (!known(f.defaultVariant)) ctx.addIssue({ code: 'custom', path: ['defaultVariant'], message: expected, input: f.defaultVariant });
    if (f.rollout && !known(f.rollout.variant)) {
      ctx.addIssue({ code: 'custom', path: ['rollout', 'variant'], message: expected, input: f.rollout.variant });
    } else if (f.rollout && f.rollout.variant === f.defaultVariant && (f.rollout.percentage !== undefined || f.rollout.progressive)) {
      ctx.addIssue({
        code: 'custom',
        path: ['rollout', 'variant'],
        message: 'expected a treatment variant other than defaultVariant (the baseline)',
        input: f.rollout.variant,
      });
    }
    f.targeting?.forEach((rule, i) => {
      if (!known(rule.variant)) ctx.addIssue({ code: 'custom', path: ['targeting', i, 'variant'], message: expected, input: rule.variant });
    });
    const types = new Set(Object.values(f.variants).map(variantValueType));
    if (types.size > 1) {
      ctx.addIssue({ code: 'custom', path: ['variants'], message: `expected every variant to have the same type, got ${[...types].join(' and ')}` });
    }
  });

// A lone surrogate has no UTF-8 form, so such a key could not hash as flagd hashes it.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const flagKey = z
  .string()
  .min(1, { error: 'expected a non-empty flag key' })
  .refine((k) => !LONE_SURROGATE.test(k), { error: 'expected a flag key of well-formed Unicode text' });

export const FLAG_FILE_SCHEMA_URL = 'https://rollout-guardian.dev/schema/v1/flags.json';

/** The file with every flag checked: used for the exported JSON Schema and for `validate`. */
export const flagFileSchema = z.strictObject({
  $schema: z.string().optional(),
  flags: z.record(flagKey, flagDefinitionSchema, { error: 'expected a map of flag keys to flag definitions' }),
});

/** The file's outer shape only: each flag is parsed on its own so one bad flag spoils nothing else. */
export const flagFileEnvelopeSchema = z.strictObject({
  $schema: z.string().optional(),
  flags: z.record(flagKey, z.unknown(), { error: 'expected a map of flag keys to flag definitions' }),
});

export type FlagValueType = 'boolean' | 'string' | 'number' | 'object';
export type FlagDefinition = z.output<typeof flagDefinitionSchema>;
export type FlagDefinitionInput = z.input<typeof flagDefinitionSchema>;
export type TargetingRule = z.output<typeof targetingRuleSchema>;
export type Condition = z.output<typeof conditionSchema>;
export type Rollout = z.output<typeof rolloutSchema>;
export type GuardPolicyInput = z.output<typeof guardSchema>;
export type PrometheusGuard = z.output<typeof prometheusGuardSchema>;
export type FlagFile = z.output<typeof flagFileSchema>;

export function flagValueType(value: unknown): FlagValueType {
  return variantValueType(value);
}

// Runtime state: what the system decides (overrides, rollbacks, runtime percentages, plan
// state). Loose objects keep fields a newer version wrote, so an older writer loses nothing.
const actorStamp = { actor: z.string(), reason: z.string(), at: isoDateTime };

export const planStatuses = ['running', 'paused', 'completed', 'aborted', 'rolled-back'] as const;

/** A deployment plan's state: what a process killed mid-plan needs to resume at the right step and time. */
export const planStateSchema = z.looseObject({
  strategy: z.enum(['safe', 'fast', 'instant', 'custom']),
  steps: z.array(z.strictObject({ percentage, holdMs: z.number().int().min(0) })).min(1),
  stepIndex: z.number().int().min(0),
  status: z.enum(planStatuses),
  startedAt: isoDateTime,
  /** When the current step began. */
  stepStartedAt: isoDateTime,
  /** Time the current step spent paused, which does not count toward its hold. */
  pausedMs: z.number().min(0),
  pausedAt: isoDateTime.optional(),
  endedAt: isoDateTime.optional(),
  /** Why the plan holds or ended, in words, for `status`. */
  note: z.string().optional(),
});

export const flagRuntimeStateSchema = z.looseObject({
  override: z.looseObject({ variant: z.string(), ...actorStamp }).optional(),
  rollback: z.looseObject({ ...actorStamp, evidence: z.record(z.string(), z.unknown()).optional() }).optional(),
  percentage: percentage.optional(),
  plan: planStateSchema.optional(),
});

export const stateFileSchema = z.looseObject({
  version: z.literal(1),
  flags: z.record(z.string(), flagRuntimeStateSchema),
});

export type FlagRuntimeState = z.output<typeof flagRuntimeStateSchema>;
export type PlanState = z.output<typeof planStateSchema>;
export type PlanStatus = (typeof planStatuses)[number];
export type StateFile = z.output<typeof stateFileSchema>;
