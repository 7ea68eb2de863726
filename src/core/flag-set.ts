// A whole configuration compiled at once: definitions overlaid with runtime state, the
// emergency shutdown applied, and the flags that changed between two sets named by their
// revisions (content hashes), as OpenFeature's flagsChanged wants.
import type { FlagDefinition, FlagRuntimeState } from './flag-schema.js';
import type { ParsedFlags, SchemaIssue } from './parse-flags.js';
import { type CompiledFlag, type ExternalEvaluator, type FlagEntry, compileFlag, externalFlag, invalidFlag } from './compile-flag.js';
import { evaluate } from './evaluate.js';
import { EMERGENCY_SHUTDOWN, isEmergencyFlag } from './emergency.js';

export interface FlagSet {
  readonly flags: ReadonlyMap<string, FlagEntry>;
  /** `emergency_shutdown` is on. */
  readonly shutdown: boolean;
}

export interface BuiltFlagSet {
  readonly set: FlagSet;
  /** Flags whose new definition is bad and whose last good definition keeps serving. */
  readonly retained: ReadonlyMap<string, readonly SchemaIssue[]>;
}

function isOn(definition: FlagDefinition | undefined, state: FlagRuntimeState | undefined, nowMs: number, evaluator: ExternalEvaluator | undefined): boolean {
  if (definition === undefined) return false;
  const entry =
    evaluator === undefined
      ? compileFlag(EMERGENCY_SHUTDOWN, definition, state, { shutdown: false })
      : externalFlag(EMERGENCY_SHUTDOWN, definition, state, evaluator, { shutdown: false });
  return evaluate(entry, undefined, nowMs).value === true;
}

/**
 * Compiles definitions with state. A flag whose definition turned bad keeps its last good
 * definition from `previous` (and is listed in `retained`); one never seen good is invalid.
 * A flag with an evaluator in `external` is decided by it below the precedence of state.
 */
export function buildFlagSet(
  parsed: ParsedFlags,
  state: ReadonlyMap<string, FlagRuntimeState>,
  nowMs: number,
  previous?: FlagSet,
  external?: ReadonlyMap<string, ExternalEvaluator>,
): BuiltFlagSet {
  const steps = buildFlagSetInSteps(parsed, state, nowMs, previous, external, Number.POSITIVE_INFINITY);
  let step = steps.next();
  while (step.done !== true) step = steps.next();
  return step.value;
}

/**
 * buildFlagSet a part at a time: the generator pauses after every `flagsPerStep` flags, so a
 * caller can let other work run between parts of a large set (the set exists only at the end).
 */
export function* buildFlagSetInSteps(
  parsed: ParsedFlags,
  state: ReadonlyMap<string, FlagRuntimeState>,
  nowMs: number,
  previous: FlagSet | undefined,
  external: ReadonlyMap<string, ExternalEvaluator> | undefined,
  flagsPerStep: number,
): Generator<void, BuiltFlagSet, void> {
  const definitions = new Map(parsed.definitions);
  const evaluators = new Map(external ?? []);
  const retained = new Map<string, readonly SchemaIssue[]>();
  for (const [key, issues] of parsed.invalid) {
    const last = previous?.flags.get(key);
    if (last !== undefined && last.kind !== 'invalid') {
      definitions.set(key, last.definition);
      if (last.kind === 'external') evaluators.set(key, last.evaluator);
      retained.set(key, issues);
    }
  }
  const shutdown = isOn(definitions.get(EMERGENCY_SHUTDOWN), state.get(EMERGENCY_SHUTDOWN), nowMs, evaluators.get(EMERGENCY_SHUTDOWN));
  const flags = new Map<string, FlagEntry>();
  let inStep = 0;
  for (const [key, definition] of definitions) {
    if (++inStep > flagsPerStep) {
      inStep = 1;
      yield;
    }
    const options = { shutdown: shutdown && !isEmergencyFlag(key) };
    const evaluator = evaluators.get(key);
    flags.set(key, evaluator === undefined ? compileFlag(key, definition, state.get(key), options) : externalFlag(key, definition, state.get(key), evaluator, options));
  }
  for (const [key, issues] of parsed.invalid) {
    if (!flags.has(key)) flags.set(key, invalidFlag(key, issues));
  }
  return { set: { flags, shutdown }, retained };
}

/** Keys whose definition or runtime state differs between two sets, added and removed included. */
export function changedFlags(previous: FlagSet | undefined, next: FlagSet): string[] {
  const changed: string[] = [];
  for (const [key, entry] of next.flags) {
    if (previous?.flags.get(key)?.revision !== entry.revision) changed.push(key);
  }
  if (previous !== undefined) {
    for (const key of previous.flags.keys()) if (!next.flags.has(key)) changed.push(key);
  }
  return changed;
}

export function isCompiled(entry: FlagEntry | undefined): entry is CompiledFlag {
  return entry?.kind === 'flag';
}
