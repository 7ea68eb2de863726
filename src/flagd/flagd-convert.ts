// Our flags <-> flagd's flag-definition JSON (https://flagd.dev/schema/v0/flags.json). Export
// materializes runtime state into what a flagd daemon serves; import maps exactly what our model
// expresses and names everything else by flag, JSON path and reason. Pure: no I/O, no clock.
import { BUCKET_TOTAL, percentageToWeight, weightToPercentage } from '../core/bucketing.js';
import { type JsonValue, canonicalJson, compileFlag } from '../core/compile-flag.js';
import { EMERGENCY_FLAGS, isEmergencyFlag } from '../core/emergency.js';
import { progressiveWeight } from '../core/evaluate.js';
import {
  type Condition,
  type FlagDefinition,
  type FlagDefinitionInput,
  type FlagRuntimeState,
  type TargetingRule,
  flagDefinitionSchema,
  guardSchema,
} from '../core/flag-schema.js';
import { buildFlagSet } from '../core/flag-set.js';
import { type IssuePath, type ParsedFlags, describeIssue, formatIssuePath, toSchemaIssues } from '../core/parse-flags.js';

export const FLAGD_SCHEMA_URL = 'https://flagd.dev/schema/v0/flags.json';

/** flagd metadata keys that carry what flagd has no field for; import reads them back. */
export const FLAGD_METADATA = {
  description: 'rollout-guardian.description',
  /** The baseline, when flagd's defaultVariant is another variant (a rollout with no percentage, an override). */
  baseline: 'rollout-guardian.baseline',
  /** The guard policy, as JSON text (flagd metadata values are scalars). */
  guard: 'rollout-guardian.guard',
  /** The targeting rules' names, as a JSON array (null for an unnamed rule). */
  rules: 'rollout-guardian.rules',
  /** Why a flag serves one variant for now (override, rollback, emergency shutdown); import ignores it. */
  state: 'rollout-guardian.state',
} as const;
const RESERVED_PREFIX = 'rollout-guardian.';

export type FlagdMetadata = Record<string, string | number | boolean>;

export interface FlagdFlag {
  state: 'ENABLED' | 'DISABLED';
  variants: Record<string, JsonValue>;
  defaultVariant?: string | null;
  targeting?: JsonValue;
  metadata?: FlagdMetadata;
}

export interface FlagdDocument {
  $schema?: string;
  flags: Record<string, FlagdFlag>;
  $evaluators?: Record<string, JsonValue>;
  metadata?: FlagdMetadata;
}

/** Something that does not convert: the flag (empty for the document), where, and why. */
export interface ConversionIssue {
  readonly flag: string;
  /** A path in the flagd document (import, flagd store) or in our flag file (export). */
  readonly path: IssuePath;
  readonly message: string;
}

export function describeConversionIssue(issue: ConversionIssue): string {
  return `${formatIssuePath(issue.path)}: ${issue.message}`;
}

type JsonObject = { [key: string]: JsonValue };

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function isScalar(value: unknown): value is string | number | boolean {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
}

// ---------------------------------------------------------------------------------------------
// Conditions. Our conditions compare an attribute's text (numbers and booleans by String()),
// and a missing attribute matches nothing; JSON Logic compares strictly and sees missing as
// null. Each export below is the JSON Logic that decides exactly as evaluate() does for
// string, number, boolean and missing values.

/** A var name in json-logic-engine's path syntax: `.`, `/` and `\` escaped, so it reads one flat key. */
function varOf(attribute: string): JsonObject {
  return { var: attribute.replace(/[\\./]/g, (c) => `\\${c}`) };
}

/** json-logic-engine's splitPath: the keys a var name reads, escapes resolved. */
function splitVarPath(name: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i] as string;
    const next = name[i + 1];
    if (c === '\\' && (next === '.' || next === '/' || next === '\\')) {
      current += next;
      i++;
    } else if (c === '.') {
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

/** The number whose String() is `text`, when there is one (JSON cannot carry NaN or Infinity). */
function canonicalNumber(text: string): number | undefined {
  const n = Number(text);
  return text.trim() !== '' && Number.isFinite(n) && String(n) === text ? n : undefined;
}

/** Every JSON value whose text is `text`: the string, and the number or boolean it spells. */
function textForms(text: string): (string | number | boolean)[] {
  const forms: (string | number | boolean)[] = [text];
  const n = canonicalNumber(text);
  if (n !== undefined) forms.push(n);
  if (text === 'true' || text === 'false') forms.push(text === 'true');
  return forms;
}

/** `values` with every other form of each appended after it: strict `in` then matches by text. */
function withTextForms(values: readonly (string | number | boolean)[]): (string | number | boolean)[] {
  const out: (string | number | boolean)[] = [];
  for (const value of values) {
    for (const form of [value, ...textForms(String(value))]) if (!out.includes(form)) out.push(form);
  }
  return out;
}

// Characters that occur in String() of some number or boolean. A prefix or suffix made only of
// them could match a number's or boolean's text, so it needs the coercing form.
const NUMBER_OR_BOOLEAN_TEXT = /^[0-9.e+\-InfityNaruls]+$/;

function conditionLogic(c: Condition): JsonObject {
  const v = varOf(c.attribute);
  const present = { '!==': [v, null] };
  if (c.in !== undefined) return { in: [v, withTextForms(c.in)] };
  if (c.notIn !== undefined) return { and: [present, { '!': { in: [v, withTextForms(c.notIn)] } }] };
  if (c.equals !== undefined) {
    const forms = withTextForms([c.equals]);
    return forms.length === 1 ? { '===': [v, c.equals] } : { or: forms.map((f) => ({ '===': [v, f] })) };
  }
  const [op, text] = c.startsWith !== undefined ? (['starts_with', c.startsWith] as const) : (['ends_with', c.endsWith ?? ''] as const);
  // flagd's starts_with/ends_with see only strings; `cat` turns a number or boolean into its text.
  return NUMBER_OR_BOOLEAN_TEXT.test(text) ? { and: [present, { [op]: [{ cat: [v] }, text] }] } : { [op]: [v, text] };
}

function ruleLogic(rule: TargetingRule): JsonObject {
  return Array.isArray(rule.when) ? { and: rule.when.map(conditionLogic) } : conditionLogic(rule.when);
}

// ---------------------------------------------------------------------------------------------
// Rollouts. The treatment comes first in `fractional`, so it owns buckets [0, W) out of
// 1,000,000, as in bucketing.ts; flagd's fractional returns null without a targetingKey, and
// flagd then serves the defaultVariant (the baseline), as evaluate() does.

function fractionalLogic(treatment: string, baseline: string, weight: JsonValue, rest: JsonValue): JsonObject {
  return { fractional: [[treatment, weight], [baseline, rest]] };
}

interface ProgressiveWeights {
  readonly fromWeight: number;
  readonly toWeight: number;
  readonly startMs: number;
  readonly endMs: number;
}

const TIMESTAMP_MS = { '*': [{ var: '$flagd.timestamp' }, 1000] };

/**
 * The weight of a progressive rollout at flagd's `$flagd.timestamp` (whole seconds), computed
 * with the same double operations in the same order as evaluate()'s progressiveWeight, so a
 * flagd daemon and this provider agree exactly at every whole second.
 */
function progressiveWeightLogic(p: ProgressiveWeights): JsonObject {
  const quotient = { '/': [{ '*': [p.toWeight - p.fromWeight, { '-': [TIMESTAMP_MS, p.startMs] }] }, p.endMs - p.startMs] };
  const truncated = { '-': [quotient, { '%': [quotient, 1] }] }; // Math.trunc: x - x % 1 is exact
  return { if: [{ '<=': [TIMESTAMP_MS, p.startMs] }, p.fromWeight, { '>=': [TIMESTAMP_MS, p.endMs] }, p.toWeight, { '+': [p.fromWeight, truncated] }] };
}

function progressiveLogic(treatment: string, baseline: string, p: ProgressiveWeights): JsonObject {
  const weight = progressiveWeightLogic(p);
  return fractionalLogic(treatment, baseline, weight, { '-': [BUCKET_TOTAL, weight] });
}

// ---------------------------------------------------------------------------------------------
// Export

export interface FlagdFlagExportOptions {
  /** `emergency_shutdown` is on (and this is not an emergency flag): serve the baseline. */
  readonly shutdown: boolean;
  /** Export a time-based rollout as its weight at this instant instead of the $flagd.timestamp ramp. */
  readonly freezeAtMs?: number;
}

export interface FlagdFlagExport {
  /** Undefined when the flag cannot be exported (see skipped). */
  readonly flag: FlagdFlag | undefined;
  readonly skipped: readonly ConversionIssue[];
  readonly notes: readonly ConversionIssue[];
}

/** The variant a flag serves to everyone because of runtime state or shutdown, if any, and why. */
export function fixedVariant(definition: FlagDefinition, state: FlagRuntimeState | undefined, shutdown: boolean): { variant: string; note: string } | undefined {
  // A shutdown gives flagd clients the baseline itself, where DISABLED would give them their code default.
  if (shutdown) return { variant: definition.defaultVariant, note: 'emergency shutdown: serving the baseline' };
  if (definition.state === 'disabled') return undefined; // exported as DISABLED, whatever the state
  const override = state?.override;
  if (override !== undefined && Object.hasOwn(definition.variants, override.variant)) {
    return { variant: override.variant, note: `overridden to "${override.variant}" by ${override.actor}` };
  }
  if (state?.rollback !== undefined) return { variant: definition.defaultVariant, note: `rolled back by ${state.rollback.actor}` };
  return undefined;
}

function userMetadata(definition: FlagDefinition): FlagdMetadata {
  const metadata: FlagdMetadata = { ...(definition.metadata ?? {}) };
  if (definition.description !== undefined) metadata[FLAGD_METADATA.description] = definition.description;
  if (definition.guard !== undefined) metadata[FLAGD_METADATA.guard] = JSON.stringify(definition.guard);
  const rules = definition.targeting ?? [];
  if (rules.some((r) => r.name !== undefined)) metadata[FLAGD_METADATA.rules] = JSON.stringify(rules.map((r) => r.name ?? null));
  return metadata;
}

/**
 * A flagd flag that serves `variant` to everyone (no targeting): how runtime state that fixes a
 * flag's outcome is materialized. It keeps the flag's variants and metadata; flagd answers STATIC.
 */
export function staticFlagdFlag(base: FlagdFlag, baseline: string, variant: string, note: string): FlagdFlag {
  const metadata: FlagdMetadata = { ...(base.metadata ?? {}) };
  delete metadata[FLAGD_METADATA.baseline];
  if (variant !== baseline) metadata[FLAGD_METADATA.baseline] = baseline;
  metadata[FLAGD_METADATA.state] = note;
  return { state: 'ENABLED', variants: base.variants, defaultVariant: variant, metadata };
}

/** One of our flags, runtime state materialized, as a flagd flag. */
export function toFlagdFlag(key: string, definition: FlagDefinition, state: FlagRuntimeState | undefined, options: FlagdFlagExportOptions): FlagdFlagExport {
  const path = ['flags', key];
  const skipped: ConversionIssue[] = [];
  const notes: ConversionIssue[] = [];
  for (const [name, value] of Object.entries(definition.variants)) {
    if (Array.isArray(value)) {
      skipped.push({ flag: key, path: [...path, 'variants', name], message: 'a list value; flagd variants are booleans, strings, numbers or objects' });
    }
  }
  if (skipped.length > 0) return { flag: undefined, skipped, notes };
  for (const name of Object.keys(definition.metadata ?? {})) {
    if (name.startsWith(RESERVED_PREFIX)) {
      notes.push({ flag: key, path: [...path, 'metadata', name], message: `exported, but keys starting "${RESERVED_PREFIX}" are rollout-guardian's own: import leaves it out` });
    }
  }
  (definition.targeting ?? []).forEach((rule, r) => {
    (Array.isArray(rule.when) ? rule.when : [rule.when]).forEach((c, i) => {
      if (/[\\./]/.test(c.attribute)) {
        notes.push({
          flag: key,
          path: [...path, 'targeting', r, 'when', ...(Array.isArray(rule.when) ? [i] : []), 'attribute'],
          message: `"${c.attribute}" is escaped as one key for flagd-core's JSON Logic (${JSON.stringify(varOf(c.attribute).var)}); other JSON Logic engines may read it as a nested path`,
        });
      }
    });
  });

  const variants = definition.variants as Record<string, JsonValue>;
  const metadata = userMetadata(definition);
  const base: FlagdFlag = { state: definition.state === 'disabled' ? 'DISABLED' : 'ENABLED', variants, defaultVariant: definition.defaultVariant };
  const fixed = fixedVariant(definition, state, options.shutdown);
  if (fixed !== undefined) return { flag: staticFlagdFlag({ ...base, metadata }, definition.defaultVariant, fixed.variant, fixed.note), skipped, notes };

  const baseline = definition.defaultVariant;
  const rollout = definition.rollout;
  let tail: JsonValue | undefined;
  if (rollout !== undefined) {
    const weight = (w: number): JsonObject => fractionalLogic(rollout.variant, baseline, w, BUCKET_TOTAL - w);
    if (state?.percentage !== undefined) {
      tail = weight(percentageToWeight(state.percentage));
    } else if (rollout.progressive !== undefined) {
      const p = rollout.progressive;
      tail =
        options.freezeAtMs !== undefined
          ? weight(progressiveWeight(compileFlag(key, definition, undefined, { shutdown: false }), options.freezeAtMs))
          : progressiveLogic(rollout.variant, baseline, {
              fromWeight: percentageToWeight(p.from),
              toWeight: percentageToWeight(p.to),
              startMs: Date.parse(p.start),
              endMs: Date.parse(p.end),
            });
    } else if (rollout.percentage !== undefined) {
      tail = weight(percentageToWeight(rollout.percentage));
    } else {
      // Everyone who reaches the rollout gets the variant: flagd's defaultVariant, the baseline kept in metadata.
      base.defaultVariant = rollout.variant;
      metadata[FLAGD_METADATA.baseline] = baseline;
    }
  }
  const rules = definition.targeting ?? [];
  let targeting: JsonValue | undefined;
  if (rules.length > 0) targeting = { if: [...rules.flatMap((r) => [ruleLogic(r), r.variant]), ...(tail === undefined ? [] : [tail])] };
  else targeting = tail;
  const flag: FlagdFlag = { ...base, ...(targeting !== undefined ? { targeting } : {}), ...(Object.keys(metadata).length > 0 ? { metadata } : {}) };
  return { flag, skipped, notes };
}

export interface FlagdExportOptions {
  /** The instant that decides emergency_shutdown and, with freezeProgressive, time-based rollouts. */
  readonly nowMs: number;
  /** Time-based rollouts as their weight at nowMs (a fixed fractional) instead of the $flagd.timestamp ramp. */
  readonly freezeProgressive?: boolean;
}

export interface FlagdExport {
  readonly document: FlagdDocument;
  /** Flags left out, and why. */
  readonly skipped: readonly ConversionIssue[];
  /** Exported, with something a flagd daemon may read otherwise (the message says what). */
  readonly notes: readonly ConversionIssue[];
}

/** Every flag, the emergency flags included, with runtime state and shutdown materialized. */
export function toFlagdDocument(parsed: ParsedFlags, state: ReadonlyMap<string, FlagRuntimeState>, options: FlagdExportOptions): FlagdExport {
  const shutdown = buildFlagSet(parsed, state, options.nowMs).set.shutdown;
  const flags: Record<string, FlagdFlag> = {};
  const skipped: ConversionIssue[] = [];
  const notes: ConversionIssue[] = [];
  for (const [key, definition] of parsed.definitions) {
    const exported = toFlagdFlag(key, definition, state.get(key), {
      shutdown: shutdown && !isEmergencyFlag(key),
      ...(options.freezeProgressive === true ? { freezeAtMs: options.nowMs } : {}),
    });
    if (exported.flag !== undefined) flags[key] = exported.flag;
    skipped.push(...exported.skipped);
    notes.push(...exported.notes);
  }
  for (const [key, issues] of parsed.invalid) {
    skipped.push({ flag: key, path: ['flags', key], message: `the definition is invalid: ${issues.map(describeIssue).join('; ')}` });
  }
  return { document: { $schema: FLAGD_SCHEMA_URL, flags }, skipped, notes };
}

// ---------------------------------------------------------------------------------------------
// Import

type Path = (string | number)[];

class Issues {
  readonly list: ConversionIssue[] = [];
  constructor(readonly flag: string) {}
  add(path: Path, message: string): undefined {
    this.list.push({ flag: this.flag, path, message });
    return undefined;
  }
}

/** A JSON Logic node with one operator: its name and its arguments as a list. */
function operation(node: unknown): { op: string; args: unknown[]; raw: unknown } | undefined {
  if (!isObject(node)) return undefined;
  const keys = Object.keys(node);
  if (keys.length !== 1) return undefined;
  const op = keys[0] as string;
  const raw = node[op];
  return { op, args: Array.isArray(raw) ? raw : [raw], raw };
}

const OPERATOR_HINTS: Readonly<Record<string, string>> = {
  sem_ver: 'sem_ver compares versions; rollout-guardian conditions compare text',
  '!': 'a negation also matches contexts without the attribute; rollout-guardian conditions never do (write {"and": [{"!==": [{"var": ...}, null]}, {"!": {"in": ...}}]} for notIn)',
  '!=': 'an inequality also matches contexts without the attribute; rollout-guardian conditions never do',
  '!==': 'an inequality also matches contexts without the attribute; rollout-guardian conditions never do',
  '<': 'numeric comparisons have no rollout-guardian equivalent',
  '<=': 'numeric comparisons have no rollout-guardian equivalent',
  '>': 'numeric comparisons have no rollout-guardian equivalent',
  '>=': 'numeric comparisons have no rollout-guardian equivalent',
  fractional: 'a fractional split inside a condition has no rollout-guardian equivalent',
};

function unsupportedOperator(node: unknown, path: Path, issues: Issues): undefined {
  const op = operation(node)?.op;
  if (op === undefined) return issues.add(path, `${JSON.stringify(node)} is not a condition rollout-guardian can express`);
  return issues.add([...path, op], OPERATOR_HINTS[op] ?? `the JSON Logic operator "${op}" has no rollout-guardian equivalent`);
}

/** The flat attribute a `{"var": ...}` reads, or undefined (with an issue) when it reads something else. */
function attributeOf(node: unknown, path: Path, issues: Issues): string | undefined {
  const op = operation(node);
  if (op?.op !== 'var') return issues.add(path, `expected {"var": "<attribute>"}, got ${JSON.stringify(node)}`);
  const name = typeof op.raw === 'string' ? op.raw : op.args.length === 1 && typeof op.args[0] === 'string' ? op.args[0] : undefined;
  if (name === undefined) return issues.add([...path, 'var'], 'a var with a default value or a computed name has no rollout-guardian equivalent');
  const parts = splitVarPath(name);
  if (parts[0]?.startsWith('$flagd') === true) return issues.add([...path, 'var'], `${JSON.stringify(name)} is flagd's own property, not an attribute of the context`);
  if (parts.length !== 1 || parts[0] === '') {
    return issues.add([...path, 'var'], `${JSON.stringify(name)} reads a nested path; rollout-guardian attributes are flat names`);
  }
  return parts[0];
}

function isVar(node: unknown): boolean {
  return operation(node)?.op === 'var';
}

/** The scalars of a list, deduplicated by text (our `in` compares text); undefined when not all scalars. */
function scalarList(node: unknown): (string | number | boolean)[] | undefined {
  if (!Array.isArray(node) || node.length === 0 || !node.every(isScalar)) return undefined;
  const out: (string | number | boolean)[] = [];
  const seen = new Set<string>();
  for (const v of node) {
    if (!seen.has(String(v))) {
      seen.add(String(v));
      out.push(v);
    }
  }
  return out;
}

/** Whether a strict JSON Logic `in` over `list` matches exactly the texts our `in` matches. */
function closedUnderTextForms(list: readonly unknown[]): boolean {
  return list.every((v) => isScalar(v) && textForms(String(v)).every((f) => list.includes(f)));
}

const STRICT_IN =
  'flagd compares strictly ("42" does not match the number 42); rollout-guardian compares text, so list every form (export writes both)';

function membership(op: 'in' | 'notIn', varNode: unknown, listNode: unknown, path: Path, issues: Issues): Condition | undefined {
  const attribute = attributeOf(varNode, [...path, 0], issues);
  const list = scalarList(listNode);
  if (list === undefined) {
    return issues.add([...path, 1], typeof listNode === 'string' ? `a substring test has no rollout-guardian equivalent` : 'expected a non-empty list of strings, numbers or booleans');
  }
  if (!closedUnderTextForms(listNode as unknown[])) return issues.add([...path, 1], STRICT_IN);
  return attribute === undefined ? undefined : op === 'in' ? { attribute, in: list } : { attribute, notIn: list };
}

function affix(op: string, varNode: unknown, text: unknown, coerced: boolean, path: Path, issues: Issues): Condition | undefined {
  const attribute = attributeOf(varNode, [...path, 0], issues);
  if (typeof text !== 'string' || text === '') return issues.add([...path, 1], 'expected a non-empty string');
  if (!coerced && NUMBER_OR_BOOLEAN_TEXT.test(text)) {
    return issues.add(path, `flagd's ${op} sees only strings; rollout-guardian also matches numbers and booleans by their text (write {"${op}": [{"cat": [{"var": ...}]}, ...]} guarded by {"!==": [{"var": ...}, null]})`);
  }
  if (attribute === undefined) return undefined;
  return op === 'starts_with' ? { attribute, startsWith: text } : { attribute, endsWith: text };
}

/** `{"!==": [{"var": a}, null]}` (or `!=`, either order): the attribute a, or undefined. */
function presenceOf(node: unknown): unknown {
  const op = operation(node);
  if ((op?.op !== '!==' && op?.op !== '!=') || op.args.length !== 2) return undefined;
  const [a, b] = op.args;
  if (b === null && isVar(a)) return a;
  if (a === null && isVar(b)) return b;
  return undefined;
}

const NO_MATCH = Symbol('no single condition');

/** One of our conditions, undefined when it is one but does not map (issue added), or NO_MATCH. */
function singleCondition(node: unknown, path: Path, issues: Issues): Condition | undefined | typeof NO_MATCH {
  const o = operation(node);
  if (o === undefined) return NO_MATCH;
  const at = [...path, o.op];
  switch (o.op) {
    case 'in':
      if (o.args.length === 2 && isVar(o.args[0])) return membership('in', o.args[0], o.args[1], at, issues);
      return issues.add(at, 'only {"in": [{"var": "<attribute>"}, [values]]} has a rollout-guardian equivalent');
    case '===':
    case '==': {
      const [a, b] = o.args;
      const varNode = isVar(a) ? a : isVar(b) ? b : undefined;
      const literal = varNode === a ? b : a;
      if (o.args.length !== 2 || varNode === undefined || !isScalar(literal)) return issues.add(at, 'expected a comparison of {"var": "<attribute>"} with a string, number or boolean');
      const attribute = attributeOf(varNode, [...at, varNode === a ? 0 : 1], issues);
      const exact =
        o.op === '===' ? textForms(String(literal)).length === 1 && typeof literal === 'string' : typeof literal === 'string' && Number.isNaN(Number(literal)) && textForms(literal).length === 1;
      if (!exact) {
        return issues.add(at, `flagd's "${o.op}" and rollout-guardian's text comparison differ for ${JSON.stringify(literal)} (numbers and booleans); export writes {"or": [{"===": ...}, ...]} over every form`);
      }
      return attribute === undefined ? undefined : { attribute, equals: literal };
    }
    case 'or': {
      // Export's equals over several forms of one text: {"or": [{"===": [v, "42"]}, {"===": [v, 42]}]}.
      const pairs = o.args.map((arg) => {
        const eq = operation(arg);
        return eq?.op === '===' && eq.args.length === 2 && isVar(eq.args[0]) && isScalar(eq.args[1]) ? { v: eq.args[0], literal: eq.args[1] } : undefined;
      });
      if (pairs.length < 2 || pairs.some((p) => p === undefined)) return NO_MATCH;
      const first = pairs[0] as { v: unknown; literal: string | number | boolean };
      const literals = pairs.map((p) => p?.literal);
      const sameVar = pairs.every((p) => canonicalJson(p?.v) === canonicalJson(first.v));
      const forms = textForms(String(first.literal));
      if (!sameVar || literals.length !== forms.length || !forms.every((f) => literals.includes(f))) return NO_MATCH;
      const attribute = attributeOf(first.v, [...at, 0, '===', 0], issues);
      return attribute === undefined ? undefined : { attribute, equals: first.literal };
    }
    case 'and': {
      // Export's notIn and coerced starts_with/ends_with: the attribute present, then the test.
      if (o.args.length !== 2) return NO_MATCH;
      const v = presenceOf(o.args[0]);
      const test = operation(o.args[1]);
      if (v === undefined || test === undefined) return NO_MATCH;
      const testPath = [...at, 1, test.op];
      if (test.op === '!') {
        const inner = operation(test.args[0]);
        if (inner?.op !== 'in' || inner.args.length !== 2 || canonicalJson(inner.args[0]) !== canonicalJson(v)) return NO_MATCH;
        return membership('notIn', inner.args[0], inner.args[1], [...testPath, 'in'], issues);
      }
      if ((test.op === 'starts_with' || test.op === 'ends_with') && test.args.length === 2) {
        const cat = operation(test.args[0]);
        if (cat?.op !== 'cat' || cat.args.length !== 1 || canonicalJson(cat.args[0]) !== canonicalJson(v)) return NO_MATCH;
        return affix(test.op, cat.args[0], test.args[1], true, testPath, issues);
      }
      return NO_MATCH;
    }
    case 'starts_with':
    case 'ends_with':
      if (o.args.length === 2 && isVar(o.args[0])) return affix(o.op, o.args[0], o.args[1], false, at, issues);
      return issues.add(at, `only {"${o.op}": [{"var": "<attribute>"}, "<text>"]} has a rollout-guardian equivalent`);
    default:
      return NO_MATCH;
  }
}

/** A rule's `when`: one condition, or the list of an `and`. */
function whenOf(node: unknown, path: Path, issues: Issues): Condition | Condition[] | undefined {
  const single = singleCondition(node, path, issues);
  if (single !== NO_MATCH) return single;
  const o = operation(node);
  if (o?.op === 'and' && o.args.length > 0) {
    const parts = o.args.map((arg, i) => whenOf(arg, [...path, 'and', i], issues));
    if (parts.some((p) => p === undefined)) return undefined;
    return (parts as (Condition | Condition[])[]).flat();
  }
  return unsupportedOperator(node, path, issues);
}

/** The `when`s of the rules a condition makes: an `or` of conjunctions becomes one rule each. */
function whensOf(node: unknown, path: Path, issues: Issues): (Condition | Condition[])[] | undefined {
  const single = singleCondition(node, path, issues);
  if (single !== NO_MATCH) return single === undefined ? undefined : [single];
  const o = operation(node);
  if (o?.op === 'or' && o.args.length > 0) {
    const whens = o.args.map((arg, i) => whenOf(arg, [...path, 'or', i], issues));
    return whens.some((w) => w === undefined) ? undefined : (whens as (Condition | Condition[])[]);
  }
  const when = whenOf(node, path, issues);
  return when === undefined ? undefined : [when];
}

type Tail =
  | { readonly kind: 'none' }
  | { readonly kind: 'variant'; readonly variant: string }
  | { readonly kind: 'percentage'; readonly variant: string; readonly percentage: number }
  | { readonly kind: 'progressive'; readonly variant: string; readonly from: number; readonly to: number; readonly start: string; readonly end: string };

/** An instant as an ISO string in UTC, without milliseconds when it has none. */
function isoInstant(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

const MAX_FLAGD_WEIGHT = 2_147_483_647;

function progressiveOf(fractional: unknown, treatment: string, baseline: string, weightNode: unknown): Tail | undefined {
  const o = operation(weightNode);
  if (o?.op !== 'if' || o.args.length !== 5) return undefined;
  const start = operation(o.args[0])?.args[1];
  const end = operation(o.args[2])?.args[1];
  const [from, to] = [o.args[1], o.args[3]];
  if (typeof start !== 'number' || typeof end !== 'number' || typeof from !== 'number' || typeof to !== 'number') return undefined;
  if (!(end > start) || !Number.isInteger(start) || !Number.isInteger(end)) return undefined;
  if (![from, to].every((w) => Number.isInteger(w) && w >= 0 && w <= BUCKET_TOTAL)) return undefined;
  const expected = progressiveLogic(treatment, baseline, { fromWeight: from, toWeight: to, startMs: start, endMs: end });
  if (canonicalJson(expected) !== canonicalJson(fractional)) return undefined;
  return { kind: 'progressive', variant: treatment, from: weightToPercentage(from), to: weightToPercentage(to), start: isoInstant(start), end: isoInstant(end) };
}

function fractionalOf(node: unknown, args: unknown[], path: Path, baseline: string, issues: Issues): Tail | undefined {
  if (args.length === 0) return issues.add(path, 'a fractional without buckets');
  if (!Array.isArray(args[0])) {
    return issues.add([...path, 0], `buckets by ${JSON.stringify(args[0])} rather than by the targetingKey; rollout-guardian always buckets by flag key + targetingKey`);
  }
  const buckets: { variant: string; weight: unknown }[] = [];
  for (const [i, bucket] of args.entries()) {
    if (!Array.isArray(bucket) || bucket.length < 1 || bucket.length > 2 || typeof bucket[0] !== 'string') {
      return issues.add([...path, i], 'expected a bucket ["<variant>", <weight>]; a computed variant has no rollout-guardian equivalent');
    }
    buckets.push({ variant: bucket[0], weight: bucket.length === 2 ? bucket[1] : 1 });
  }
  if (buckets.length > 2) {
    return issues.add(path, `splits among ${buckets.length} variants (${buckets.map((b) => b.variant).join(', ')}); a rollout-guardian rollout has one treatment and the baseline`);
  }
  const [first, second] = buckets as [{ variant: string; weight: unknown }, { variant: string; weight: unknown } | undefined];
  if (second === undefined) {
    if (typeof first.weight !== 'number' || !Number.isInteger(first.weight)) return issues.add([...path, 0, 1], 'expected an integer weight');
    return first.variant === baseline || first.weight <= 0 ? { kind: 'none' } : { kind: 'percentage', variant: first.variant, percentage: 100 };
  }
  if (second.variant !== baseline || first.variant === baseline) {
    return issues.add(
      path,
      first.variant === baseline
        ? `gives the defaultVariant "${baseline}" the lower buckets; a rollout-guardian treatment owns buckets [0, W), so converting would move users between variants`
        : `splits between "${first.variant}" and "${second.variant}", and the second is not the defaultVariant "${baseline}" (the baseline, which a rollout-guardian rollout falls back to)`,
    );
  }
  if (typeof first.weight !== 'number' || typeof second.weight !== 'number') {
    return progressiveOf(node, first.variant, baseline, first.weight) ?? issues.add([...path, 0, 1], 'computed weights other than the linear ramp export writes have no rollout-guardian equivalent');
  }
  const [wt, wb] = [first.weight, second.weight];
  if (![wt, wb].every((w) => Number.isInteger(w) && w >= 0)) return issues.add(path, 'expected non-negative integer weights');
  const total = wt + wb;
  if (total === 0) return { kind: 'none' };
  if (total > MAX_FLAGD_WEIGHT) return issues.add(path, `weights sum to more than ${MAX_FLAGD_WEIGHT}, which flagd refuses`);
  if ((wt * BUCKET_TOTAL) % total !== 0) {
    return issues.add(
      path,
      `weights ${wt}:${wb} give "${first.variant}" ${(wt / total) * 100}%, not a whole number of 0.0001% steps (rollout-guardian's resolution); the nearest would move some users`,
    );
  }
  return { kind: 'percentage', variant: first.variant, percentage: weightToPercentage((wt * BUCKET_TOTAL) / total) };
}

function tailOf(node: unknown, path: Path, baseline: string, variants: Record<string, unknown>, issues: Issues): Tail | undefined {
  if (node === null || node === undefined) return { kind: 'none' };
  if (typeof node === 'string') {
    if (!Object.hasOwn(variants, node)) return issues.add(path, `returns "${node}", which is not one of the variants`);
    return { kind: 'variant', variant: node };
  }
  const o = operation(node);
  if (o?.op === 'fractional') {
    const tail = fractionalOf(node, o.args, [...path, 'fractional'], baseline, issues);
    if (tail !== undefined && tail.kind !== 'none' && !Object.hasOwn(variants, tail.variant)) {
      return issues.add([...path, 'fractional'], `"${tail.variant}" is not one of the variants`);
    }
    return tail;
  }
  return unsupportedOperator(node, path, issues);
}

interface ParsedTargeting {
  readonly rules: { when: Condition | Condition[]; variant: string }[];
  readonly tail: Tail;
}

/** A chain of `if`s (conditions and variant names), ending in nothing, a variant or a rollout. */
function targetingOf(node: unknown, path: Path, baseline: string, variants: Record<string, unknown>, issues: Issues): ParsedTargeting | undefined {
  const rules: ParsedTargeting['rules'] = [];
  let failed = false;
  let current = node;
  let at = path;
  for (;;) {
    const o = operation(current);
    if (o?.op !== 'if' || !Array.isArray(o.raw)) break;
    const args = o.raw as unknown[];
    for (let i = 0; i + 1 < args.length; i += 2) {
      const whens = whensOf(args[i], [...at, 'if', i], issues);
      const variant = args[i + 1];
      if (typeof variant !== 'string' || !Object.hasOwn(variants, variant)) {
        issues.add([...at, 'if', i + 1], typeof variant === 'string' ? `returns "${variant}", which is not one of the variants` : 'a computed variant has no rollout-guardian equivalent');
        failed = true;
      } else if (whens === undefined) {
        failed = true;
      } else {
        for (const when of whens) rules.push({ when, variant });
      }
    }
    if (args.length % 2 === 0) {
      current = null;
      break;
    }
    at = [...at, 'if', args.length - 1];
    current = args[args.length - 1];
  }
  const tail = tailOf(current, at, baseline, variants, issues);
  return failed || tail === undefined ? undefined : { rules, tail };
}

/** The first `{"$ref": name}` in a JSON Logic tree, with its path. */
function findRef(node: unknown, path: Path): { ref: string; path: Path } | undefined {
  if (Array.isArray(node)) {
    for (const [i, item] of node.entries()) {
      const found = findRef(item, [...path, i]);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (!isObject(node)) return undefined;
  if (typeof node.$ref === 'string') return { ref: node.$ref, path: [...path, '$ref'] };
  for (const [k, value] of Object.entries(node)) {
    const found = findRef(value, [...path, k]);
    if (found !== undefined) return found;
  }
  return undefined;
}

export interface FlagdFlagConversion {
  /** The flag in our model (flag-file input form), when it maps exactly. */
  readonly definition: FlagDefinitionInput | undefined;
  /**
   * Variants, baseline, state and metadata alone, when those map but the targeting does not:
   * what a store needs to apply state around flagd-core's evaluation of the targeting.
   */
  readonly shadow: FlagDefinitionInput | undefined;
  /** Why the flag (or, with a shadow, its targeting) does not map; empty when `definition` is set. */
  readonly issues: readonly ConversionIssue[];
}

export interface FlagdFlagContext {
  /** The document's top-level metadata, which flagd merges under every flag's. */
  readonly metadata?: unknown;
}

function schemaIssues(key: string, input: FlagDefinitionInput, issues: Issues): boolean {
  const parsed = flagDefinitionSchema.safeParse(input);
  if (parsed.success) return true;
  for (const issue of toSchemaIssues(parsed.error, input)) {
    issues.add(['flags', key, ...issue.path], `rollout-guardian cannot hold it: ${issue.message}${issue.received !== undefined ? `, got ${issue.received}` : ''}`);
  }
  return false;
}

/** One flagd flag in our model: exactly, or as a shadow with the reasons its targeting does not map. */
export function fromFlagdFlag(key: string, raw: unknown, context: FlagdFlagContext = {}): FlagdFlagConversion {
  const issues = new Issues(key);
  const path: Path = ['flags', key];
  const none = (): FlagdFlagConversion => ({ definition: undefined, shadow: undefined, issues: issues.list });
  if (!isObject(raw)) {
    issues.add(path, 'expected a flag object {state, variants, defaultVariant, targeting?}');
    return none();
  }
  if (raw.state !== 'ENABLED' && raw.state !== 'DISABLED') issues.add([...path, 'state'], 'expected ENABLED or DISABLED');
  const variants = raw.variants;
  if (!isObject(variants) || Object.keys(variants).length === 0) {
    issues.add([...path, 'variants'], 'expected a non-empty map of variant names to values');
    return none();
  }
  for (const [name, value] of Object.entries(variants)) {
    if (!isScalar(value) && !isObject(value)) issues.add([...path, 'variants', name], 'expected a boolean, string, number or object value');
  }
  const defaultVariant = raw.defaultVariant;
  if (typeof defaultVariant !== 'string') {
    issues.add(
      [...path, 'defaultVariant'],
      'no defaultVariant (flagd then serves the caller\'s default); rollout-guardian needs a baseline variant, which is also what a rollback returns to',
    );
  } else if (!Object.hasOwn(variants, defaultVariant)) {
    issues.add([...path, 'defaultVariant'], `"${defaultVariant}" is not one of the variants`);
  }
  const merged: Record<string, unknown> = { ...(isObject(context.metadata) ? context.metadata : {}), ...(isObject(raw.metadata) ? raw.metadata : {}) };
  const metadata: Record<string, string | number | boolean> = {};
  for (const [name, value] of Object.entries(merged)) {
    if (name.startsWith(RESERVED_PREFIX)) continue;
    if (isScalar(value)) metadata[name] = value;
    else issues.add([...path, 'metadata', name], 'expected a string, number or boolean');
  }
  const description = merged[FLAGD_METADATA.description];
  let guard: unknown;
  const guardText = merged[FLAGD_METADATA.guard];
  if (guardText !== undefined) {
    try {
      if (typeof guardText !== 'string') throw new TypeError('not text');
      const parsed = guardSchema.safeParse(JSON.parse(guardText));
      if (parsed.success) guard = parsed.data;
      else issues.add([...path, 'metadata', FLAGD_METADATA.guard], `not a valid guard policy: ${toSchemaIssues(parsed.error, guardText).map(describeIssue).join('; ')}`);
    } catch {
      issues.add([...path, 'metadata', FLAGD_METADATA.guard], 'expected the guard policy as JSON text');
    }
  }
  if (issues.list.length > 0 || typeof defaultVariant !== 'string') return none();

  const shadow: FlagDefinitionInput = {
    ...(typeof description === 'string' ? { description } : {}),
    variants: variants as FlagDefinitionInput['variants'],
    defaultVariant,
    ...(raw.state === 'DISABLED' ? { state: 'disabled' as const } : {}),
    ...(guard !== undefined ? { guard: guard as FlagDefinitionInput['guard'] } : {}),
    ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
  };
  // The shadow is checked only when it is needed: a definition that passes implies it passes.
  const withShadow = (): FlagdFlagConversion => {
    const shadowIssues = new Issues(key);
    if (!schemaIssues(key, shadow, shadowIssues)) return { definition: undefined, shadow: undefined, issues: shadowIssues.list };
    return { definition: undefined, shadow, issues: issues.list };
  };

  const targeting = raw.targeting;
  const ref = findRef(targeting, [...path, 'targeting']);
  if (ref !== undefined) {
    issues.add(ref.path, `uses the shared evaluator "${ref.ref}" ($evaluators); rollout-guardian has no shared evaluators`);
    return withShadow();
  }
  const empty = targeting === undefined || targeting === null || (isObject(targeting) && Object.keys(targeting).length === 0);
  const parsed = empty ? { rules: [], tail: { kind: 'none' } as Tail } : targetingOf(targeting, [...path, 'targeting'], defaultVariant, variants, issues);
  if (parsed === undefined) return withShadow();

  // Export's encoding of a rollout with no percentage: flagd's defaultVariant serves, the baseline in metadata.
  const baselineMeta = merged[FLAGD_METADATA.baseline];
  let baseline = defaultVariant;
  let tail = parsed.tail;
  if (typeof baselineMeta === 'string') {
    if (!Object.hasOwn(variants, baselineMeta)) {
      issues.add([...path, 'metadata', FLAGD_METADATA.baseline], `"${baselineMeta}" is not one of the variants`);
    } else if (tail.kind !== 'none') {
      issues.add([...path, 'metadata', FLAGD_METADATA.baseline], 'a baseline other than the defaultVariant together with a rollout in the targeting has no rollout-guardian equivalent');
    } else {
      baseline = baselineMeta;
      tail = { kind: 'variant', variant: defaultVariant };
    }
  }
  if (issues.list.length > 0) return withShadow();

  let names: unknown;
  const namesText = merged[FLAGD_METADATA.rules];
  try {
    names = typeof namesText === 'string' ? JSON.parse(namesText) : null;
  } catch {
    names = null; // names are cosmetic: a bad list is ignored, not a reason to refuse the flag
  }
  const nameOf = (i: number): string | undefined =>
    Array.isArray(names) && names.length === parsed.rules.length && typeof names[i] === 'string' ? names[i] : undefined;
  const rules = parsed.rules.map((r, i) => {
    const name = nameOf(i);
    return { ...(name !== undefined ? { name } : {}), when: r.when, variant: r.variant };
  });
  let rollout: FlagDefinitionInput['rollout'];
  // `"else": "<defaultVariant>"` serves what no rollout would serve anyway; export's own
  // rollout-to-the-baseline comes back through the baseline metadata above.
  if (tail.kind === 'variant' && (tail.variant !== baseline || typeof baselineMeta === 'string')) rollout = { variant: tail.variant };
  else if (tail.kind === 'percentage') rollout = { variant: tail.variant, percentage: tail.percentage };
  else if (tail.kind === 'progressive') rollout = { variant: tail.variant, progressive: { from: tail.from, to: tail.to, start: tail.start, end: tail.end } };

  const definition: FlagDefinitionInput = {
    ...(shadow.description !== undefined ? { description: shadow.description } : {}),
    variants: shadow.variants,
    defaultVariant: baseline,
    ...(shadow.state !== undefined ? { state: shadow.state } : {}),
    ...(rollout !== undefined ? { rollout } : {}),
    ...(rules.length > 0 ? { targeting: rules } : {}),
    ...(shadow.guard !== undefined ? { guard: shadow.guard } : {}),
    ...(shadow.metadata !== undefined ? { metadata: shadow.metadata } : {}),
  };
  if (!schemaIssues(key, definition, issues)) return withShadow();
  return { definition, shadow, issues: [] };
}

export interface FlagdImport {
  /** The flags that map exactly, as a flag file's `flags`, in the document's order. */
  readonly flags: Record<string, FlagDefinitionInput>;
  /** Everything that does not map, by flag, JSON path and reason; those flags are left out. */
  readonly issues: readonly ConversionIssue[];
  /** The document is not a flagd flag-definition document at all. */
  readonly unreadable: boolean;
}

/**
 * A flagd document in our model. Emergency flags equal to the built-in ones are left out (every
 * configuration has them); flags using `$ref`, sem_ver, other JSON Logic, multi-variant or
 * offset fractional splits are reported, not converted.
 */
export function fromFlagdDocument(data: unknown): FlagdImport {
  if (!isObject(data) || !isObject(data.flags)) {
    const issue = { flag: '', path: isObject(data) ? ['flags'] : [], message: 'expected a flagd flag-definition document: an object with a "flags" map' };
    return { flags: {}, issues: [issue], unreadable: true };
  }
  const flags: Record<string, FlagDefinitionInput> = {};
  const issues: ConversionIssue[] = [];
  for (const [key, raw] of Object.entries(data.flags)) {
    const conversion = fromFlagdFlag(key, raw, { metadata: data.metadata });
    issues.push(...conversion.issues);
    const definition = conversion.definition;
    if (definition === undefined) continue;
    const builtIn = EMERGENCY_FLAGS.get(key);
    if (builtIn !== undefined && canonicalJson(flagDefinitionSchema.parse(definition)) === canonicalJson(builtIn)) continue;
    flags[key] = definition;
  }
  return { flags, issues, unreadable: false };
}
