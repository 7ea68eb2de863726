// Text and JSON output: aligned tables, values as JSON, percentages, targeting conditions,
// and before -> after lines for the audit log (those four live in deploy/change-text.ts, which
// the control API shares). Pure functions of their arguments.
import { stringify } from 'yaml';
import type { Condition } from '../core/flag-schema.js';
import { valueText } from '../deploy/change-text.js';

// Shared with the control API, which answers with the text the CLI prints.
export { type Difference, differenceLines, differences, percentText, table, valueText } from '../deploy/change-text.js';

/** The one JSON document a --json command prints. */
export function jsonText(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** `label   value` lines with the labels aligned. */
export function fields(entries: readonly (readonly [string, string])[], indent = ''): string {
  const width = Math.max(...entries.map(([label]) => label.length));
  return entries.map(([label, value]) => `${indent}${label.padEnd(width)}  ${value}`.trimEnd()).join('\n').concat('\n');
}

/** A value as an indented YAML block. */
export function yamlBlock(value: unknown, indent = '  '): string {
  return stringify(value, { lineWidth: 0 })
    .trimEnd()
    .split('\n')
    .map((line) => `${indent}${line}`)
    .join('\n')
    .concat('\n');
}

const OPERATORS = ['in', 'notIn', 'equals', 'startsWith', 'endsWith'] as const;
export type ConditionOperator = (typeof OPERATORS)[number];

export function conditionOperator(condition: Condition): { operator: ConditionOperator; expected: unknown } {
  for (const operator of OPERATORS) if (condition[operator] !== undefined) return { operator, expected: condition[operator] };
  return { operator: 'endsWith', expected: condition.endsWith };
}

/** `region in [eu-west-1]`, `email endsWith "@example.com"`. */
export function conditionText(c: { readonly attribute: string; readonly operator: ConditionOperator; readonly expected: unknown }): string {
  const shown = Array.isArray(c.expected) ? `[${c.expected.map(String).join(', ')}]` : valueText(c.expected);
  return `${c.attribute} ${c.operator} ${shown}`;
}
