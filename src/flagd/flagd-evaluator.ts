// flagd's evaluation semantics behind our interfaces: a flagd document parsed once and each flag
// served exactly as @openfeature/flagd-core 4.x does in its default (non-strict) mode, except
// that `fractional` hashes the UTF-8 bytes (as the Go flagd daemon does) and time is injected.
// Also flagd's own schema (flagd-core's strict validation) for warnings. Core never imports it.
import type { Logger } from '@openfeature/core';
import { MemoryStorage } from '@openfeature/flagd-core';
import { LogicEngine } from 'json-logic-engine';
import { type SemVer, coerce, compare as compareVersions, parse as parseVersion } from 'semver';
import type { EvaluationContext, EvaluationResult, ExternalEvaluator, FlagMetadata, FlagValue } from '../core/compile-flag.js';
import { fingerprint } from '../core/compile-flag.js';
import { type Murmur3State, murmur3Finish, murmur3Prefix, murmur3Utf8 } from '../core/murmur3.js';
import { ErrorCode, Reason } from '../core/reasons.js';

// flagd-core logs schema warnings and per-evaluation debug lines; we report problems ourselves.
const SILENT: Logger = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
};

export interface FlagdSchemaIssue {
  /** Where in the document, from the validator's JSON pointer. */
  readonly path: readonly (string | number)[];
  readonly message: string;
}

interface AjvError {
  readonly instancePath?: string;
  readonly message?: string;
  readonly params?: Record<string, unknown>;
}

function pointerPath(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

/** flagd-core's ParseError carries the validator's errors as JSON text after its message. */
function issuesOf(err: unknown): FlagdSchemaIssue[] {
  const message = err instanceof Error ? err.message : String(err);
  const json = message.indexOf(': [');
  if (json >= 0) {
    try {
      const errors = JSON.parse(message.slice(json + 2)) as AjvError[];
      const seen = new Set<string>();
      const issues: FlagdSchemaIssue[] = [];
      for (const e of errors) {
        const detail = e.params?.additionalProperty !== undefined ? ` (${JSON.stringify(e.params.additionalProperty)})` : '';
        const issue = { path: pointerPath(e.instancePath ?? ''), message: `flagd schema: ${e.message ?? 'invalid'}${detail}` };
        const id = JSON.stringify(issue);
        if (!seen.has(id)) issues.push(issue);
        seen.add(id);
      }
      return issues;
    } catch {
      // Not the validator's list after all: report the message as it is.
    }
  }
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return [{ path: [], message: `flagd: ${message}${cause}` }];
}

/**
 * What flagd's own schema, through flagd-core's strict validation, finds wrong with a flag
 * document, plus targeting flagd-core cannot compile; empty when flagd would accept it all.
 */
export function validateFlagdText(text: string): FlagdSchemaIssue[] {
  const storage = new MemoryStorage(SILENT);
  try {
    storage.setConfigurations(text, true);
  } catch (err) {
    return issuesOf(err);
  }
  const issues: FlagdSchemaIssue[] = [];
  for (const [key, flag] of storage.getFlags()) {
    const probe = flag.evaluate({}, SILENT);
    if ((probe.errorCode as string | undefined) === 'PARSE_ERROR') issues.push({ path: ['flags', key, 'targeting'], message: `flagd: ${probe.errorMessage}` });
  }
  return issues;
}

/**
 * Per flag, what flagd's strict validation finds (warnings: flagd serves these flags anyway).
 * One validation of the whole document; only when it fails is each flag checked alone, so a
 * clean file costs one pass.
 */
export function flagdWarnings(document: FlagdSource): Map<string, FlagdSchemaIssue[]> {
  const warnings = new Map<string, FlagdSchemaIssue[]>();
  const context = { ...(document.$evaluators !== undefined ? { $evaluators: document.$evaluators } : {}), ...(document.metadata !== undefined ? { metadata: document.metadata } : {}) };
  if (validateFlagdText(JSON.stringify({ ...context, flags: document.flags })).length === 0) return warnings;
  // Each flag with the shared evaluators it may $ref, but not the set's metadata, whose findings are the document's.
  const evaluators = document.$evaluators !== undefined ? { $evaluators: document.$evaluators } : {};
  for (const [key, flag] of Object.entries(document.flags)) {
    const issues = validateFlagdText(JSON.stringify({ ...evaluators, flags: { [key]: flag } }));
    if (issues.length > 0) warnings.set(key, issues);
  }
  const whole = validateFlagdText(JSON.stringify({ ...context, flags: {} }));
  if (whole.length > 0) warnings.set('', whole);
  return warnings;
}

// ---------------------------------------------------------------------------------------------
// flagd's JSON Logic operators, as flagd-core 4.0.1 defines them (libs/shared/flagd-core in
// open-feature/js-sdk-contrib): the same argument checks, the same null for a bad rule (which
// falls back to the default variant), the same bucketing arithmetic.

const FLAGD = '$flagd';
/** The flag key's hash state, on the `$flagd` object under a symbol JSON Logic cannot name. */
const PREFIX: unique symbol = Symbol('flagd.keyHash');

function compareStrings(method: 'starts_with' | 'ends_with', data: unknown): boolean | null {
  if (!Array.isArray(data) || data.length !== 2) return null;
  const [text, affix] = data as unknown[];
  if (typeof text !== 'string' || typeof affix !== 'string') return null;
  return method === 'starts_with' ? text.startsWith(affix) : text.endsWith(affix);
}

function normalizeVersion(raw: unknown): SemVer | null {
  const text = String(raw).replace(/^[vV]/, '');
  const strict = parseVersion(text);
  if (strict !== null) return strict;
  // Partial versions ("1", "1.2") only: coerce would read "1" out of "myVersion_1".
  return /^\d+(\.\d+)?$/.test(text) ? coerce(text) : null;
}

function semVer(data: unknown): boolean | null {
  if (!Array.isArray(data) || data.length !== 3) return null;
  const args = data as unknown[];
  const left = normalizeVersion(args[0]);
  const right = normalizeVersion(args[2]);
  if (left === null || right === null) return null;
  const order = compareVersions(left, right);
  switch (String(args[1])) {
    case '=':
      return order === 0;
    case '!=':
      return order !== 0;
    case '<':
      return order < 0;
    case '<=':
      return order <= 0;
    case '>=':
      return order >= 0;
    case '>':
      return order > 0;
    case '^':
      return left.major === right.major;
    case '~':
      return left.major === right.major && left.minor === right.minor;
    default:
      return null;
  }
}

const MAX_WEIGHT = 2_147_483_647;

interface Bucket {
  readonly weight: number;
  readonly variant: string | number | boolean | null;
}

/** flagd-core's toBucketingList: undefined where it throws (the rule then yields null). */
function bucketsOf(entries: readonly unknown[]): { buckets: Bucket[]; total: number } | undefined {
  const buckets: Bucket[] = [];
  let total = 0;
  for (const entry of entries) {
    if (!Array.isArray(entry) || entry.length === 0 || entry.length > 2) return undefined;
    const first: unknown = entry[0];
    let variant: Bucket['variant'];
    if (typeof first === 'string' || typeof first === 'number' || typeof first === 'boolean') variant = first;
    else if (first === null || first === undefined) variant = null;
    else return undefined;
    let weight = 1;
    if (entry.length === 2) {
      const raw: unknown = entry[1];
      if (typeof raw !== 'number' || !Number.isInteger(raw)) return undefined;
      weight = Math.max(0, raw); // a computed ramp may go negative: clamped, as flagd does
    }
    buckets.push({ weight, variant });
    total += weight;
  }
  return { buckets, total };
}

function fractional(data: unknown, context: Record<string, unknown>): string | number | boolean | null {
  if (!Array.isArray(data) || data.length < 1) return null;
  const args = data as unknown[];
  const flagd = context[FLAGD] as { flagKey: string; [PREFIX]?: Readonly<Murmur3State> } | undefined;
  if (flagd === undefined) return null;
  let bucketBy: string;
  let entries: unknown[];
  if (typeof args[0] === 'string') {
    bucketBy = args[0]; // v1: the first argument says what to bucket by
    entries = args.slice(1);
  } else {
    const targetingKey = context.targetingKey;
    if (!targetingKey) return null; // flagd-core's test, falsy values included
    bucketBy = `${flagd.flagKey}${targetingKey as string}`; // a template string, as flagd-core builds it
    entries = args;
  }
  const list = bucketsOf(entries);
  if (list === undefined || list.total > MAX_WEIGHT) return null;
  // The one deliberate difference from flagd-core JS: UTF-8 bytes, as the Go daemon hashes.
  // The flag key's hash state is computed once per flag, so only the targeting key is hashed here.
  const prefix = entries === args ? flagd[PREFIX] : undefined;
  const hash = prefix !== undefined && typeof context.targetingKey === 'string' ? murmur3Finish(prefix, context.targetingKey) : murmur3Utf8(bucketBy);
  const bucket = bucketOf(hash, list.total);
  let sum = 0;
  for (const entry of list.buckets) {
    sum += entry.weight; // at most 2^31: exact
    if (sum > bucket) return entry.variant;
  }
  return null;
}

const TWO_POW_16 = 65536;

/** `(hash * total) >> 32` exactly for any total up to 2^31, in doubles (no BigInt per evaluation). */
function bucketOf(hash: number, total: number): number {
  // hash * total = hi * total * 2^16 + lo * total, each part below 2^48 and so exact; flooring
  // lo * total / 2^16 first cannot change the final floor, as hi * total is an integer.
  const hi = Math.floor(hash / TWO_POW_16);
  const lo = hash % TWO_POW_16;
  return Math.floor((hi * total + Math.floor((lo * total) / TWO_POW_16)) / TWO_POW_16);
}

function flagdEngine(): LogicEngine {
  const engine = new LogicEngine();
  engine.addMethod('starts_with', (data: unknown) => compareStrings('starts_with', data));
  engine.addMethod('ends_with', (data: unknown) => compareStrings('ends_with', data));
  engine.addMethod('sem_ver', (data: unknown) => semVer(data));
  engine.addMethod('fractional', (data: unknown, context: unknown) => fractional(data, context as Record<string, unknown>));
  return engine;
}

// One engine for every flag: the operators are pure and the engine keeps no per-flag state.
const ENGINE = flagdEngine();

// ---------------------------------------------------------------------------------------------
// A flag served as flagd serves it.

/** A flagd flag-definition document, as read. */
export interface FlagdSource {
  readonly flags: Readonly<Record<string, unknown>>;
  readonly $evaluators?: unknown;
  readonly metadata?: unknown;
}

type Targeting = (data: Record<string, unknown>) => unknown;

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * One flag as flagd serves it: DISABLED with no value (the caller's default), the default
 * variant as STATIC without targeting, DEFAULT when targeting yields null (no value when there
 * is no default variant either), TARGETING_MATCH otherwise; errors as flagd-core reports them.
 * A result with value null and no error code means "the caller's default".
 */
export class FlagdFlagEvaluator implements ExternalEvaluator {
  private compiled: Targeting | undefined;
  private parseError: string | undefined;
  private readonly noValue: EvaluationResult;
  private readonly staticResult: EvaluationResult | undefined;

  private hashed: string | undefined;
  private flagdProperties: { readonly flagKey: string; readonly timestamp: number; readonly [PREFIX]: Readonly<Murmur3State> } | undefined;
  /** Results are built once per variant and reason, so an evaluation allocates no result. */
  private readonly results = new Map<string, EvaluationResult>();
  private keyHash: Readonly<Murmur3State> | undefined;

  constructor(
    readonly key: string,
    private readonly variants: ReadonlyMap<string, unknown>,
    private readonly defaultVariant: string | undefined,
    private readonly targeting: unknown,
    /** What the revision hashes: the flag as written and what it shares with the document. */
    private readonly revisionSource: unknown,
    readonly metadata: FlagMetadata,
    disabled: boolean,
  ) {
    this.noValue = Object.freeze({ value: null, reason: Reason.DEFAULT, flagMetadata: metadata });
    // DISABLED is answered before any targeting, with the caller's default and no variant.
    if (disabled) this.staticResult = Object.freeze({ value: null, reason: Reason.DISABLED, flagMetadata: metadata });
    else if (targeting === undefined) this.staticResult = this.resultFor(defaultVariant, Reason.STATIC);
  }

  private get prefix(): Readonly<Murmur3State> {
    this.keyHash ??= murmur3Prefix(this.key);
    return this.keyHash;
  }

  /** Content hash of the flag and what it shares with the document; hashed when first asked for. */
  get revision(): string {
    this.hashed ??= fingerprint(this.revisionSource);
    return this.hashed;
  }

  /** The targeting compiled now (flagd-core compiles when it loads), undefined when it compiles. */
  compileError(): string | undefined {
    this.compile();
    return this.parseError;
  }

  evaluate(context: EvaluationContext, nowMs: number): EvaluationResult {
    if (this.staticResult !== undefined) return this.staticResult;
    const targeting = this.compile();
    if (targeting === undefined) {
      return { value: null, reason: Reason.ERROR, errorCode: ErrorCode.PARSE_ERROR, errorMessage: this.parseError, flagMetadata: this.metadata };
    }
    // flagd's own properties change once a second: the object is reused until then.
    const timestamp = Math.floor(nowMs / 1000);
    let flagd = this.flagdProperties;
    if (flagd?.timestamp !== timestamp) this.flagdProperties = flagd = { flagKey: this.key, timestamp, [PREFIX]: this.prefix };
    let outcome: unknown;
    try {
      outcome = targeting({ ...context, [FLAGD]: flagd });
    } catch {
      return { value: null, reason: Reason.ERROR, errorCode: ErrorCode.GENERAL, errorMessage: `Error evaluating targeting rule for flag '${this.key}'`, flagMetadata: this.metadata };
    }
    if (outcome === null || outcome === undefined) return this.resultFor(this.defaultVariant, Reason.DEFAULT);
    return this.resultFor((outcome as { toString(): string }).toString(), Reason.TARGETING_MATCH); // flagd-core's toString, objects included
  }

  private resultFor(variant: string | undefined, reason: Reason): EvaluationResult {
    if (variant === undefined) return this.noValue;
    const value = this.variants.get(variant);
    if (value === undefined) {
      return { value: null, reason: Reason.ERROR, errorCode: ErrorCode.GENERAL, errorMessage: `Variant '${variant}' not found in flag with key '${this.key}'`, flagMetadata: this.metadata };
    }
    // Variants are few and fixed, so this map stays as small as the flag.
    const id = reason === Reason.TARGETING_MATCH ? variant : `${reason}\u0000${variant}`;
    let result = this.results.get(id);
    if (result === undefined) {
      result = Object.freeze({ value: value as FlagValue, variant, reason, flagMetadata: this.metadata });
      this.results.set(id, result);
    }
    return result;
  }

  /** Compiled on first use, so a reload costs a parse, not a compilation of every rule. */
  private compile(): Targeting | undefined {
    if (this.compiled !== undefined || this.parseError !== undefined) return this.compiled;
    try {
      this.compiled = ENGINE.build(this.targeting) as Targeting;
    } catch {
      this.parseError = `Invalid targeting configuration for flag '${this.key}'`;
    }
    return this.compiled;
  }
}

export interface FlagdParseOptions {
  /** Extra flagMetadata for a flag's results (our revision and rollout percentage, opted in). */
  readonly extraMetadata?: (key: string, revision: string) => FlagMetadata | undefined;
}

export interface ParsedFlagdDocument {
  /** Every flag flagd can load, by key, in the document's order. */
  readonly evaluators: Map<string, FlagdFlagEvaluator>;
  /** Flags flagd cannot load at all (flagd-core refuses the whole document for them; we refuse only the flag). */
  readonly invalid: Map<string, FlagdSchemaIssue[]>;
}

type Expand = (name: string) => unknown;

/** `node` with each `{"$ref": name}` that `bodyOf` knows replaced; untouched parts are shared, not copied. */
function expandNode(node: unknown, bodyOf: Expand): unknown {
  if (Array.isArray(node)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < node.length; i++) {
      const item: unknown = node[i];
      const expanded = expandNode(item, bodyOf);
      if (expanded !== item) (out ??= node.slice())[i] = expanded;
    }
    return out ?? node;
  }
  if (!isObject(node)) return node;
  const keys = Object.keys(node);
  if (keys.length === 1 && keys[0] === '$ref' && typeof node.$ref === 'string') {
    const body = bodyOf(node.$ref);
    if (body !== undefined) return body;
  }
  let out: Record<string, unknown> | undefined;
  for (const key of keys) {
    const expanded = expandNode(node[key], bodyOf);
    if (expanded !== node[key]) (out ??= { ...node })[key] = expanded;
  }
  return out ?? node;
}

/**
 * flagd-core's `$ref` expansion, without re-serializing the document: it replaces the text
 * `{"$ref":"<name>"}` evaluator by evaluator in document order, so a body inserted for one
 * evaluator has its references to later evaluators expanded, and those to earlier ones left.
 */
function refExpander(evaluators: unknown): ((flag: unknown) => unknown) | undefined {
  if (!isObject(evaluators)) return undefined;
  const names = Object.keys(evaluators);
  if (names.length === 0) return undefined;
  const order = new Map(names.map((name, i) => [name, i]));
  const bodies = new Map<string, unknown>();
  for (let i = names.length - 1; i >= 0; i--) {
    const name = names[i] as string;
    bodies.set(name, expandNode(evaluators[name], (ref) => ((order.get(ref) ?? -1) > i ? bodies.get(ref) : undefined)));
  }
  return (flag) => expandNode(flag, (ref) => bodies.get(ref));
}

/** The reasons flagd-core refuses a flag when it loads it (not schema findings: those are warnings). */
export function flagdLoadIssues(key: string, flag: unknown): FlagdSchemaIssue[] {
  const at = ['flags', key];
  if (!isObject(flag)) return [{ path: at, message: 'flagd cannot load it: expected a flag object {state, variants, defaultVariant, targeting?}' }];
  const issues: FlagdSchemaIssue[] = [];
  if (flag.state !== 'ENABLED' && flag.state !== 'DISABLED') issues.push({ path: [...at, 'state'], message: `flagd cannot load it: invalid flag state ${JSON.stringify(flag.state) ?? 'undefined'}, expected ENABLED or DISABLED` });
  if (!isObject(flag.variants)) {
    issues.push({ path: [...at, 'variants'], message: 'flagd cannot load it: expected a map of variant names to values' });
  } else if (typeof flag.defaultVariant === 'string' && flag.defaultVariant !== '' && !Object.hasOwn(flag.variants, flag.defaultVariant)) {
    issues.push({ path: [...at, 'defaultVariant'], message: `flagd cannot load it: default variant "${flag.defaultVariant}" is not one of the variants` });
  }
  return issues;
}

/**
 * A flagd document parsed once: an evaluator for every flag, sharing one JSON Logic engine.
 * Metadata is flagd's: the document's merged under the flag's.
 */
export function parseFlagdDocument(source: FlagdSource, options: FlagdParseOptions = {}): ParsedFlagdDocument {
  const expand = refExpander(source.$evaluators);
  const evaluators = new Map<string, FlagdFlagEvaluator>();
  const invalid = new Map<string, FlagdSchemaIssue[]>();
  const setMetadata = source.metadata;
  // What every flag's revision shares, hashed once rather than once per flag.
  const shared = fingerprint({ evaluators: source.$evaluators, metadata: source.metadata });
  for (const [key, written] of Object.entries(source.flags)) {
    const flag = expand === undefined ? written : expand(written);
    const issues = flagdLoadIssues(key, flag);
    if (issues.length > 0 || !isObject(flag)) {
      invalid.set(key, issues);
      continue;
    }
    const variants = new Map(Object.entries(flag.variants as Record<string, unknown>));
    const defaultVariant = typeof flag.defaultVariant === 'string' && flag.defaultVariant !== '' ? flag.defaultVariant : undefined;
    const targeting = flag.targeting;
    // flagd-core's test: a truthy value with keys (so `{}` and `true` mean no targeting, a string means one).
    const hasTargeting = Boolean(targeting) && Object.keys(targeting as object).length > 0;
    const revisionSource = { flag: source.flags[key], shared };
    const merged = Object.assign({}, setMetadata, flag.metadata) as Record<string, string | number | boolean>;
    const extra = options.extraMetadata?.(key, fingerprint(revisionSource));
    if (extra !== undefined) Object.assign(merged, extra);
    evaluators.set(key, new FlagdFlagEvaluator(key, variants, defaultVariant, hasTargeting ? targeting : undefined, revisionSource, Object.freeze(merged), flag.state === 'DISABLED'));
  }
  return { evaluators, invalid };
}
