// Reads the committed dashboards in dashboards/ as Grafana would, and lists every query they
// make: panel targets, the flag variable's label_values() and the rollback annotation. Both
// dashboard tests use it, so what the static test checks is what the Prometheus test runs.
import { readFileSync, readdirSync } from 'node:fs';

export const DASHBOARDS_DIR = new URL('../../dashboards/', import.meta.url);

export type JsonObject = Record<string, unknown>;

export interface DashboardFile {
  readonly file: string;
  readonly text: string;
  readonly model: JsonObject;
}

export type DashboardQuery =
  /** A PromQL expression Grafana runs over the dashboard's time range. */
  | { readonly kind: 'range'; readonly where: string; readonly expr: string }
  /** An annotation query: a range query whose points above 0 become events. */
  | { readonly kind: 'annotation'; readonly where: string; readonly expr: string }
  /** A variable's label_values(metric, label): Grafana asks /api/v1/label/<label>/values. */
  | { readonly kind: 'label-values'; readonly where: string; readonly metric: string; readonly label: string };

export function loadDashboards(): DashboardFile[] {
  return readdirSync(DASHBOARDS_DIR)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((file) => {
      const text = readFileSync(new URL(file, DASHBOARDS_DIR), 'utf8');
      return { file, text, model: JSON.parse(text) as JsonObject };
    });
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `value` as an array of objects, or [] when it is not one. */
export function objects(value: unknown): JsonObject[] {
  return Array.isArray(value) ? value.filter(isObject) : [];
}

/** Every panel, those inside collapsed rows included. */
export function panelsOf(model: JsonObject): JsonObject[] {
  return objects(model.panels).flatMap((panel) => [panel, ...objects(panel.panels)]);
}

export function variablesOf(model: JsonObject): JsonObject[] {
  return isObject(model.templating) ? objects(model.templating.list) : [];
}

export function annotationsOf(model: JsonObject): JsonObject[] {
  return isObject(model.annotations) ? objects(model.annotations.list) : [];
}

const LABEL_VALUES = /^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/;

export function queriesOf(dashboard: DashboardFile): DashboardQuery[] {
  const queries: DashboardQuery[] = [];
  const name = String(dashboard.model.title);
  for (const panel of panelsOf(dashboard.model)) {
    for (const target of objects(panel.targets)) {
      queries.push({ kind: 'range', where: `${name}: panel ${String(panel.id)} "${String(panel.title)}" ${String(target.refId)}`, expr: String(target.expr) });
    }
  }
  for (const variable of variablesOf(dashboard.model)) {
    if (variable.type !== 'query') continue;
    const query = isObject(variable.query) ? variable.query.query : variable.query;
    const match = LABEL_VALUES.exec(String(query));
    if (match === null) throw new Error(`${name}: variable ${String(variable.name)}: expected label_values(metric, label), got ${String(query)}`);
    queries.push({ kind: 'label-values', where: `${name}: variable $${String(variable.name)}`, metric: match[1] as string, label: match[2] as string });
  }
  for (const annotation of annotationsOf(dashboard.model)) {
    queries.push({ kind: 'annotation', where: `${name}: annotation "${String(annotation.name)}"`, expr: String(annotation.expr) });
  }
  return queries;
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects: identifiers left once strings, label matchers,
 * ranges, grouping clauses and offsets are taken out, that are neither keywords nor functions.
 */
export function metricNamesIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+\S+/g, ' ');
  const names: string[] = [];
  for (const match of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = match[0];
    const next = bare.slice((match.index ?? 0) + word.length).trimStart();
    if (KEYWORDS.has(word.toLowerCase()) || next.startsWith('(')) continue;
    names.push(word);
  }
  return names;
}

/** The label names an expression matches on or groups by. */
export function labelNamesIn(expr: string): string[] {
  const names: string[] = [];
  const unquoted = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  for (const [, matchers] of unquoted.matchAll(/\{([^}]*)\}/g)) {
    for (const [, label] of (matchers ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) names.push(label as string);
  }
  for (const [, list] of unquoted.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    names.push(
      ...(list ?? '')
        .split(',')
        .map((label) => label.trim())
        .filter((label) => label !== ''),
    );
  }
  return names;
}

/** The labels a legend or annotation template prints: `{{label}}`. */
export function templateLabels(template: string): string[] {
  return [...template.matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g)].map((m) => m[1] as string);
}
