// The text of a change as operators read it: values as JSON, percentages, aligned tables and
// before -> after lines. Pure functions, shared by the CLI and the control API (which answers
// with the very text the CLI prints).

/** A value as it would be written in JSON: strings quoted, objects compact. */
export function valueText(value: unknown): string {
  return value === undefined ? 'none' : JSON.stringify(value);
}

/** `10%`, `0.1%`, `12.3456%`: at most the four decimals percentages resolve to. */
export function percentText(percentage: number): string {
  return `${Number(percentage.toFixed(4))}%`;
}

/** Rows padded into columns under a header; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)));
  return all
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}

export interface Difference {
  readonly path: string;
  readonly before: unknown;
  readonly after: unknown;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * The values that differ between two JSON values, as paths (`rollout.percentage`,
 * `targeting[0].variant`); null counts as absent. An object that appears or disappears is
 * shown whole, one level below where its parent did.
 */
export function differences(before: unknown, after: unknown, path = '', expandAbsent = true): Difference[] {
  const b = before ?? undefined;
  const a = after ?? undefined;
  const bothObjects = isPlainObject(b) && isPlainObject(a);
  const oneAbsent = expandAbsent && ((b === undefined && isPlainObject(a)) || (a === undefined && isPlainObject(b)));
  if (bothObjects || oneAbsent) {
    const bo = (b ?? {});
    const ao = (a ?? {});
    const keys = [...new Set([...Object.keys(bo), ...Object.keys(ao)])];
    return keys.flatMap((key) => differences(bo[key], ao[key], path === '' ? key : `${path}.${key}`, bothObjects));
  }
  if (Array.isArray(b) && Array.isArray(a) && b.length === a.length) {
    return b.flatMap((item: unknown, i) => differences(item, a[i], `${path}[${i}]`, true));
  }
  return JSON.stringify(b) === JSON.stringify(a) ? [] : [{ path, before: b, after: a }];
}

export function differenceLines(diffs: readonly Difference[], indent = '  '): string {
  if (diffs.length === 0) return `${indent}(no change)\n`;
  return diffs.map((d) => `${indent}${d.path}: ${valueText(d.before)} -> ${valueText(d.after)}\n`).join('');
}
