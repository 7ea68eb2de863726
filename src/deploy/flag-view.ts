// One flag as the CLI shows it, in text and in --json: its definition, its runtime state and
// what the two make of the rollout now. `flags list` and `flags get` share this shape, and so
// does the control API's GET /api/v1/flags.
import { percentageToWeight, weightToPercentage } from '../core/bucketing.js';
import type { CompiledFlag, FlagValue } from '../core/compile-flag.js';
import { EMERGENCY_FLAGS } from '../core/emergency.js';
import { progressiveWeight } from '../core/evaluate.js';
import type { FlagValueType } from '../core/flag-schema.js';
import { type FlagSet, buildFlagSet } from '../core/flag-set.js';
import { describeIssue } from '../core/parse-flags.js';
import type { StoreSnapshot } from '../stores/flag-store.js';
import { percentText } from './change-text.js';

export interface RolloutView {
  readonly variant: string;
  /** `all`: no percentage, every context gets the variant. */
  readonly kind: 'all' | 'percentage' | 'progressive';
  /** The percentage the file sets, for kind `percentage`. */
  readonly percentage: number | null;
  readonly progressive: { readonly from: number; readonly to: number; readonly start: string; readonly end: string } | null;
  /** The share the treatment gets now, runtime state applied: 0 when rolled back. */
  readonly currentPercentage: number;
}

export interface StampView {
  readonly actor: string;
  readonly reason: string;
  readonly at: string;
}

export interface FlagView {
  readonly key: string;
  /** false: the definition is invalid (see errors) and the flag resolves with PARSE_ERROR. */
  readonly valid: boolean;
  /** An emergency flag the file does not define, present with its default definition. */
  readonly builtIn: boolean;
  readonly type: FlagValueType | null;
  readonly state: 'enabled' | 'disabled' | null;
  readonly description: string | null;
  readonly variants: Readonly<Record<string, FlagValue>> | null;
  readonly baseline: string | null;
  readonly rollout: RolloutView | null;
  readonly override: (StampView & { readonly variant: string }) | null;
  readonly rollback: StampView | null;
  /** A percentage set at runtime over the file's, or null. */
  readonly runtimePercentage: number | null;
  /** The rollout in a few words, as `flags list` shows it. */
  readonly summary: string;
  /** For an invalid flag, `file:line:col: path: expected ..., got ...` lines. */
  readonly errors: readonly string[];
  /** The definition as validated (defaults filled in), or as written when invalid. */
  readonly definition: unknown;
  /** Content hash of definition and state. */
  readonly revision: string;
}

export interface FlagListView {
  readonly set: FlagSet;
  readonly flags: readonly FlagView[];
}

function stamp(value: { actor: string; reason: string; at: string } | undefined): StampView | null {
  return value === undefined ? null : { actor: value.actor, reason: value.reason, at: value.at };
}

function rolloutView(flag: CompiledFlag, nowMs: number): RolloutView | null {
  const rollout = flag.definition.rollout;
  if (rollout === undefined) return null;
  const p = rollout.progressive;
  const kind = p !== undefined ? 'progressive' : rollout.percentage !== undefined ? 'percentage' : 'all';
  let current: number;
  if (flag.state?.rollback !== undefined) current = 0;
  else if (flag.state?.percentage !== undefined) current = flag.state.percentage;
  else if (kind === 'progressive') current = weightToPercentage(progressiveWeight(flag, nowMs));
  else if (kind === 'percentage') current = weightToPercentage(percentageToWeight(rollout.percentage ?? 0));
  else current = 100;
  return {
    variant: rollout.variant,
    kind,
    percentage: rollout.percentage ?? null,
    progressive: p === undefined ? null : { from: p.from, to: p.to, start: p.start, end: p.end },
    currentPercentage: current,
  };
}

/** `10% on`, `progressive 0->50% (now 25%)`, `rolled back (file: 10% on)`, `none`. */
export function rolloutSummary(rollout: RolloutView | null, runtimePercentage: number | null, rolledBack: boolean): string {
  if (rollout === null) return 'none';
  let text: string;
  if (rollout.kind === 'all') text = `100% ${rollout.variant}`;
  else if (rollout.kind === 'percentage') text = `${percentText(rollout.percentage ?? 0)} ${rollout.variant}`;
  else {
    const p = rollout.progressive ?? { from: 0, to: 0 };
    text = `progressive ${Number(p.from.toFixed(4))}->${percentText(p.to)}`;
    if (!rolledBack && runtimePercentage === null) text += ` (now ${percentText(rollout.currentPercentage)})`;
  }
  if (rolledBack) return `rolled back (file: ${text})`;
  if (runtimePercentage !== null) return `${percentText(runtimePercentage)} ${rollout.variant} (runtime; file: ${text})`;
  return text;
}

export function flagView(set: FlagSet, snapshot: StoreSnapshot, key: string, nowMs: number, rawDefinition: unknown): FlagView | undefined {
  const entry = set.flags.get(key);
  if (entry === undefined) return undefined;
  const state = snapshot.state.get(key);
  const override = state?.override === undefined ? null : { variant: state.override.variant, ...(stamp(state.override) as StampView) };
  const rollback = stamp(state?.rollback);
  const runtimePercentage = state?.percentage ?? null;
  if (entry.kind === 'invalid') {
    return {
      key,
      valid: false,
      builtIn: false,
      type: null,
      state: null,
      description: null,
      variants: null,
      baseline: null,
      rollout: null,
      summary: 'invalid',
      override,
      rollback,
      runtimePercentage,
      errors: snapshot.flagErrors?.get(key) ?? entry.issues.map(describeIssue),
      revision: entry.revision,
      definition: rawDefinition ?? null,
    };
  }
  const definition = entry.definition;
  // An external (flagd-evaluated) flag has no rollout our model describes.
  const rollout = entry.kind === 'flag' ? rolloutView(entry, nowMs) : null;
  return {
    key,
    valid: true,
    builtIn: snapshot.parsed.definitions.get(key) === EMERGENCY_FLAGS.get(key),
    type: entry.type,
    state: definition.state,
    description: definition.description ?? null,
    variants: definition.variants,
    baseline: definition.defaultVariant,
    rollout,
    summary: rolloutSummary(rollout, runtimePercentage, rollback !== null),
    override,
    rollback,
    runtimePercentage,
    errors: [],
    revision: entry.revision,
    definition,
  };
}

/** Every flag: the file's in order, then its invalid ones, then the built-in emergency flags. */
export function flagListView(snapshot: StoreSnapshot, nowMs: number, rawDefinitions: Readonly<Record<string, unknown>>): FlagListView {
  const { set } = buildFlagSet(snapshot.parsed, snapshot.state, nowMs, undefined, snapshot.external);
  const builtIn = (key: string) => snapshot.parsed.definitions.get(key) === EMERGENCY_FLAGS.get(key);
  const definitionKeys = [...snapshot.parsed.definitions.keys()];
  const keys = [...definitionKeys.filter((k) => !builtIn(k)), ...snapshot.parsed.invalid.keys(), ...definitionKeys.filter(builtIn)];
  const flags = keys.map((key) => flagView(set, snapshot, key, nowMs, rawDefinitions[key]));
  return { set, flags: flags.filter((f): f is FlagView => f !== undefined) };
}
