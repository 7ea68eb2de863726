// Reading flag files: YAML or JSON text to a Document, validated, with every problem
// located as `file:line:col: path: expected ..., got ...` so a user can go straight to it.
import { Document, LineCounter, isScalar, parseDocument, stringify } from 'yaml';
import { type ParsedFlags, type SchemaIssue, describeIssue, parseFlagDocument } from '../core/parse-flags.js';

export interface ReadFlagText {
  readonly doc: Document;
  readonly parsed: ParsedFlags;
  /** File-level problems, located; when non-empty the file is unusable. */
  readonly fileErrors: readonly string[];
  /** Per-flag problems, located. */
  readonly flagErrors: ReadonlyMap<string, readonly string[]>;
}

export function isJsonPath(path: string): boolean {
  return path.toLowerCase().endsWith('.json');
}

function locate(doc: Document, lines: LineCounter, path: readonly (string | number)[]): string {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | undefined)?.range;
    if (range !== undefined) {
      const { line, col } = lines.linePos(range[0]);
      return `${line}:${col}`;
    }
  }
  return '1:1';
}

/** `file:line:col: message` for each issue. */
export function locateIssues(file: string, doc: Document, lines: LineCounter, issues: readonly SchemaIssue[]): string[] {
  return issues.map((issue) => `${file}:${locate(doc, lines, issue.path)}: ${describeIssue(issue)}`);
}

export function readFlagText(text: string, file: string): ReadFlagText {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const fileErrors = doc.errors.map((e) => {
      // prettyErrors: false leaves linePos unset; the LineCounter knows where e.pos is.
      const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
      return `${file}:${pos ? `${pos.line}:${pos.col}` : '1:1'}: ${isJsonPath(file) ? 'JSON' : 'YAML'} syntax error: ${e.message.split('\n')[0]}`;
    });
    return { doc, parsed: parseFlagDocument({ flags: {} }), fileErrors, flagErrors: new Map() };
  }
  const data: unknown = doc.toJS();
  const parsed = parseFlagDocument(data === null || data === undefined ? {} : data);
  const fileErrors = parsed.fileIssues.length > 0 ? locateIssues(file, doc, lines, parsed.fileIssues) : [];
  const flagErrors = new Map([...parsed.invalid].map(([key, issues]) => [key, locateIssues(file, doc, lines, issues)]));
  return { doc, parsed, fileErrors, flagErrors };
}

/** The text to write back: YAML keeps comments and order; JSON keeps order and indentation. */
export function renderFlagText(doc: Document, path: string, previousText: string): string {
  if (!isJsonPath(path)) return doc.toString({ lineWidth: 0 });
  const indent = /\n([ \t]+)\S/.exec(previousText)?.[1] ?? '  ';
  return `${JSON.stringify(doc.toJS(), null, indent)}\n`;
}

/** A new document for data that has no text yet (memory store, new files). */
export function documentOf(data: unknown): Document {
  return new Document(data);
}

export interface ScalarEdit {
  readonly path: readonly (string | number)[];
  readonly value: unknown;
}

/**
 * The text with each edit spliced in where the old scalar stood, so the diff is the changed
 * values alone (alignment, quoting elsewhere and comments untouched); undefined when an
 * edit adds, removes or replaces a collection and the document must be re-rendered.
 */
export function spliceScalarEdits(text: string, path: string, edits: readonly ScalarEdit[]): string | undefined {
  const doc = parseDocument(text, { keepSourceTokens: false });
  if (doc.errors.length > 0) return undefined;
  const splices: { start: number; end: number; text: string }[] = [];
  for (const edit of edits) {
    const node: unknown = doc.getIn(edit.path, true);
    if (!isScalar(node) || node.range == null || edit.value === undefined || (edit.value !== null && typeof edit.value === 'object')) return undefined;
    const rendered = isJsonPath(path) ? JSON.stringify(edit.value) : stringify(edit.value).trimEnd();
    if (rendered.includes('\n')) return undefined;
    splices.push({ start: node.range[0], end: node.range[1], text: rendered });
  }
  splices.sort((a, b) => b.start - a.start);
  let out = text;
  for (const s of splices) out = out.slice(0, s.start) + s.text + out.slice(s.end);
  return out;
}
