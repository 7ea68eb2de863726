// Turns the data of a flag file (already read as YAML or JSON) into validated definitions,
// flag by flag, and describes what is wrong in words a user can act on: the path of the
// bad field, what was expected and what was found.
import type { z } from 'zod';
import { type FlagDefinition, type FlagRuntimeState, flagDefinitionSchema, flagFileEnvelopeSchema, stateFileSchema } from './flag-schema.js';
import { EMERGENCY_FLAGS } from './emergency.js';

export type IssuePath = readonly (string | number)[];

export interface SchemaIssue {
  readonly path: IssuePath;
  readonly message: string;
  /** The offending value, shortened, when there is one. */
  readonly received?: string;
}

export interface ParsedFlags {
  readonly definitions: ReadonlyMap<string, FlagDefinition>;
  /** Flags whose definition is bad: reported as PARSE_ERROR when evaluated. */
  readonly invalid: ReadonlyMap<string, readonly SchemaIssue[]>;
  /** Problems with the file as a whole; when present, nothing in it is usable. */
  readonly fileIssues: readonly SchemaIssue[];
}

/** `flags.new-checkout.rollout.percentage`, quoting keys that would read ambiguously. */
export function formatIssuePath(path: IssuePath): string {
  if (path.length === 0) return '(top level)';
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

export function describeIssue(issue: SchemaIssue): string {
  return `${formatIssuePath(issue.path)}: ${issue.message}${issue.received !== undefined ? `, got ${issue.received}` : ''}`;
}

function shorten(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  let text: string;
  try {
    text = JSON.stringify(value) ?? typeof value;
  } catch {
    text = typeof value;
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function valueAt(root: unknown, path: IssuePath): unknown {
  let node = root;
  for (const part of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[part];
  }
  return node;
}

/** Zod issues as SchemaIssues, paths prefixed with `prefix`, the received value quoted. */
export function toSchemaIssues(error: z.ZodError, input: unknown, prefix: IssuePath = []): SchemaIssue[] {
  return error.issues.map((issue) => {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    let message = issue.message;
    let received: string | undefined;
    if (issue.code === 'unrecognized_keys') {
      message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')} (check the spelling)`;
    } else if (issue.code === 'invalid_type' && valueAt(input, path) === undefined) {
      message = `${message.replace(/^Invalid input: /, '')} (the field is missing)`;
    } else if (!/\bgot\b/.test(message)) {
      received = shorten(valueAt(input, path));
    }
    return { path: [...prefix, ...path], message: message.replace(/^Invalid input: /, ''), received };
  });
}

/** How deep a flag file may nest: far beyond any real flag, far below what overflows a stack. */
export const MAX_NESTING_DEPTH = 64;

/**
 * Keys that name JavaScript's object machinery: assigned into a plain object they vanish or
 * replace its prototype, so a flag or value holding one would silently change. Refused.
 */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * The first forbidden key or over-deep value under `data` (found at `prefix`, which counts
 * toward the depth), as an issue at its path, checked
 * without recursion so a hostile document cannot overflow the stack that checks it.
 */
export function findHostileShape(data: unknown, prefix: IssuePath = [], maxDepth = MAX_NESTING_DEPTH): SchemaIssue | undefined {
  const stack: { value: unknown; path: IssuePath }[] = [{ value: data, path: prefix }];
  while (stack.length > 0) {
    const { value, path } = stack.pop() as { value: unknown; path: IssuePath };
    if (value === null || typeof value !== 'object') continue;
    if (path.length >= maxDepth) {
      return { path, message: `expected at most ${maxDepth} levels of nesting (the value nests deeper)` };
    }
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], path: [...path, i] });
      continue;
    }
    const keys = Object.keys(value);
    for (const key of keys) {
      if (FORBIDDEN_KEYS.has(key)) {
        return { path: [...path, key], message: `expected a key other than ${[...FORBIDDEN_KEYS].map((k) => JSON.stringify(k)).join(', ')} (reserved by JavaScript, refused rather than silently lost)` };
      }
    }
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i] as string;
      stack.push({ value: (value as Record<string, unknown>)[key], path: [...path, key] });
    }
  }
  return undefined;
}

/** Validates each flag on its own and adds the emergency flags the file does not define. */
export function parseFlagDocument(data: unknown): ParsedFlags {
  const definitions = new Map<string, FlagDefinition>();
  const invalid = new Map<string, SchemaIssue[]>();
  // A hostile key or depth inside one flag spoils that flag only; anywhere else, the file.
  const rawFlags = data !== null && typeof data === 'object' && !Array.isArray(data) ? (data as Record<string, unknown>).flags : undefined;
  let input = data ?? {};
  if (rawFlags !== null && typeof rawFlags === 'object' && !Array.isArray(rawFlags)) {
    const kept: Record<string, unknown> = {};
    for (const key of Object.keys(rawFlags)) {
      const raw = (rawFlags as Record<string, unknown>)[key];
      const hostile = FORBIDDEN_KEYS.has(key)
        ? { path: ['flags', key], message: `expected a flag key other than ${[...FORBIDDEN_KEYS].map((k) => JSON.stringify(k)).join(', ')} (reserved by JavaScript, refused rather than silently lost)` }
        : findHostileShape(raw, ['flags', key]);
      if (hostile !== undefined) invalid.set(key, [hostile]);
      else kept[key] = raw;
    }
    input = { ...(data as Record<string, unknown>), flags: kept };
  }
  const outside = findHostileShape({ ...(input as Record<string, unknown>), flags: {} });
  if (outside !== undefined && typeof input === 'object') return { definitions: new Map(), invalid: new Map(), fileIssues: [outside] };
  const envelope = flagFileEnvelopeSchema.safeParse(input);
  if (!envelope.success) {
    return { definitions, invalid: new Map(), fileIssues: toSchemaIssues(envelope.error, data) };
  }
  for (const [key, raw] of Object.entries(envelope.data.flags)) {
    const parsed = flagDefinitionSchema.safeParse(raw);
    if (parsed.success) definitions.set(key, parsed.data);
    else invalid.set(key, toSchemaIssues(parsed.error, raw, ['flags', key]));
  }
  for (const [key, definition] of EMERGENCY_FLAGS) {
    if (invalid.has(key)) continue;
    const defined = definitions.get(key);
    if (defined === undefined) definitions.set(key, definition);
    else if (typeof defined.variants[defined.defaultVariant] !== 'boolean') {
      definitions.delete(key);
      invalid.set(key, [{ path: ['flags', key, 'variants'], message: 'expected boolean variants: this is an emergency flag' }]);
    }
  }
  return { definitions, invalid, fileIssues: [] };
}

export interface ParsedState {
  readonly flags: ReadonlyMap<string, FlagRuntimeState>;
  readonly issues: readonly SchemaIssue[];
  /** The whole state document, unknown fields kept, for writers to carry forward. */
  readonly raw: Record<string, unknown>;
}

/** Validates a runtime-state document; an absent document is an empty state. */
export function parseStateDocument(data: unknown): ParsedState {
  const input = data ?? { version: 1, flags: {} };
  const hostile = findHostileShape(input);
  if (hostile !== undefined) return { flags: new Map(), issues: [hostile], raw: { version: 1, flags: {} } };
  const parsed = stateFileSchema.safeParse(input);
  if (!parsed.success) return { flags: new Map(), issues: toSchemaIssues(parsed.error, input), raw: { version: 1, flags: {} } };
  return { flags: new Map(Object.entries(parsed.data.flags)), issues: [], raw: parsed.data };
}
