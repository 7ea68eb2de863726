// Reading flag files: YAML or JSON text to a Document, validated, with every problem
// located as `file:line:col: path: expected ..., got ...` so a user can go straight to it.
import { Document, LineCounter, isAlias, isCollection, isPair, isScalar, parseDocument, stringify } from 'yaml';
import { MAX_NESTING_DEPTH, type ParsedFlags, type SchemaIssue, describeIssue, parseFlagDocument } from '../core/parse-flags.js';

/**
 * What a flag file (or a Redis definitions value) may be. Room for the largest real flag sets
 * (a thousand flags take about 300 KB; a 10,000-flag flagd file about 3.6 MB), low enough that
 * a hostile or runaway file is refused before it is read.
 */
export const FLAG_TEXT_LIMITS = {
  /** Bytes of text. */
  maxBytes: 8 * 1024 * 1024,
  /** Nodes once YAML aliases are expanded: many flags may share `guard: *g`, no file may explode. */
  maxExpandedNodes: 500_000,
  /** Levels of nesting. */
  maxDepth: MAX_NESTING_DEPTH,
} as const;

/** The located refusal of a text over the size limit, or undefined when it is within it. */
export function sizeError(file: string, bytes: number, limit: number = FLAG_TEXT_LIMITS.maxBytes): string | undefined {
  if (bytes <= limit) return undefined;
  return `${file}: the file is ${formatBytes(bytes)}, over the limit of ${formatBytes(limit)} for a flag file; split it, or remove flags no longer in use`;
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

/** `file:line:col: not valid JSON: ...` for text JSON.parse refused: YAML's parser (a superset) says where. */
export function locatedJsonError(text: string, file: string, err: Error): string {
  const lines = new LineCounter();
  const at = /at position (\d+)/.exec(err.message);
  if (at !== null) {
    const offset = Number(at[1]);
    const before = text.slice(0, offset).split('\n');
    return `${file}:${before.length}:${(before.at(-1)?.length ?? 0) + 1}: not valid JSON: ${err.message.replace(/ in JSON at position \d+.*$/, '')}`;
  }
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const first = doc.errors[0];
  const pos = first ? lines.linePos(first.pos[0]) : undefined;
  return `${file}:${pos ? `${pos.line}:${pos.col}` : '1:1'}: not valid JSON: ${(first?.message ?? err.message).split('\n')[0]}`;
}

/** The data of a document whose aliases were bounded by readFlagText (yaml's own guard counts uses, refusing valid files). */
export function documentData(doc: Document): unknown {
  return doc.toJS({ maxAliasCount: -1 });
}

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

function unusable(doc: Document, fileErrors: readonly string[]): ReadFlagText {
  return { doc, parsed: parseFlagDocument({ flags: {} }), fileErrors, flagErrors: new Map() };
}

/**
 * Where the document, its aliases expanded, grows beyond the limits: node count and depth
 * worked out per node once (an alias costs what its anchor costs), without recursion, and
 * without expanding anything; undefined when it is within them.
 */
function expansionError(doc: Document, lines: LineCounter, file: string): string | undefined {
  interface Cost {
    nodes: number;
    depth: number;
  }
  const cost = new Map<unknown, Cost>();
  const anchors = new Map<string, unknown>();
  const open = new Set<unknown>();
  const at = (node: unknown): string => {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    const pos = range ? lines.linePos(range[0]) : undefined;
    return pos ? `${pos.line}:${pos.col}` : '1:1';
  };
  const stack: { node: unknown; done: boolean }[] = [{ node: doc.contents, done: false }];
  while (stack.length > 0) {
    const top = stack.pop() as { node: unknown; done: boolean };
    const node = top.node;
    if (node === null || node === undefined) continue;
    if (!top.done) {
      const anchor = (node as { anchor?: string }).anchor;
      if (anchor) anchors.set(anchor, node);
      if (isAlias(node)) {
        const target = anchors.get(node.source);
        if (target !== undefined && open.has(target)) return `${file}:${at(node)}: the alias *${node.source} refers to a node that contains it; expected an alias to a node defined before it`;
        cost.set(node, cost.get(target) ?? { nodes: 1, depth: 0 });
        continue;
      }
      const children = isPair(node) ? [node.key, node.value] : isCollection(node) ? node.items : [];
      open.add(node);
      stack.push({ node, done: true });
      for (let i = children.length - 1; i >= 0; i--) stack.push({ node: children[i], done: false });
      if (open.size > FLAG_TEXT_LIMITS.maxDepth * 2 + 2) return `${file}:${at(node)}: expected at most ${FLAG_TEXT_LIMITS.maxDepth} levels of nesting (the value nests deeper)`;
      continue;
    }
    open.delete(node);
    const children = isPair(node) ? [node.key, node.value] : isCollection(node) ? node.items : [];
    let nodes = 1;
    let depth = 0;
    for (const child of children) {
      const c = cost.get(child);
      if (c === undefined) continue;
      nodes += c.nodes;
      depth = Math.max(depth, c.depth);
    }
    // A pair is not a level of its own: a map's value sits one level below the map.
    const own = { nodes, depth: isPair(node) ? depth : depth + 1 };
    if (own.nodes > FLAG_TEXT_LIMITS.maxExpandedNodes) {
      return `${file}:${at(node)}: the YAML aliases here expand to over ${FLAG_TEXT_LIMITS.maxExpandedNodes.toLocaleString('en-US')} values; expected a document that stays within that once aliases are expanded (a "billion laughs" file?)`;
    }
    if (own.depth > FLAG_TEXT_LIMITS.maxDepth) return `${file}:${at(node)}: expected at most ${FLAG_TEXT_LIMITS.maxDepth} levels of nesting once aliases are expanded`;
    cost.set(node, own);
  }
  return undefined;
}

/** Brackets deep enough to stop reading at: far past any valid file (64 levels), far short of the parser's stack. */
const MAX_FLOW_DEPTH = 512;

/**
 * Where `[` and `{` nest past MAX_FLOW_DEPTH, found by a scan that skips quoted text: such a
 * file is refused before the parser recurses into it, on any thread and any stack size (in a
 * worker thread, V8 has died of 20,000 brackets instead of throwing).
 */
export function flowDepthError(text: string, file: string): string | undefined {
  let depth = 0;
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      line++;
      lineStart = i + 1;
    } else if (c === 34 || c === 39) {
      // A quoted string: skip to its end ("\" escapes in double quotes, '' in single).
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (c === 34 && d === 92) i++;
        else if (d === c) break;
        else if (d === 10) {
          line++;
          lineStart = i + 1;
        }
      }
    } else if (c === 91 || c === 123) {
      if (++depth > MAX_FLOW_DEPTH) {
        return `${file}:${line}:${i - lineStart + 1}: ${isJsonPath(file) ? 'JSON' : 'YAML'} syntax error: expected at most ${FLAG_TEXT_LIMITS.maxDepth} levels of nesting (the text nests far deeper)`;
      }
    } else if (c === 93 || c === 125) {
      if (depth > 0) depth--;
    }
  }
  return undefined;
}

export function readFlagText(text: string, file: string): ReadFlagText {
  const lines = new LineCounter();
  const tooBig = sizeError(file, Buffer.byteLength(text, 'utf8'));
  if (tooBig !== undefined) return unusable(new Document(null), [tooBig]);
  const tooDeep = flowDepthError(text, file);
  if (tooDeep !== undefined) return unusable(new Document(null), [tooDeep]);
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const fileErrors = doc.errors.map((e) => {
      // prettyErrors: false leaves linePos unset; the LineCounter knows where e.pos is.
      const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
      // yaml turns a stack overflow on absurd nesting into a parse error; say what it means.
      const message = /call stack/i.test(e.message) ? `expected at most ${FLAG_TEXT_LIMITS.maxDepth} levels of nesting (the text nests far deeper)` : e.message.split('\n')[0];
      return `${file}:${pos ? `${pos.line}:${pos.col}` : '1:1'}: ${isJsonPath(file) ? 'JSON' : 'YAML'} syntax error: ${message}`;
    });
    return unusable(doc, fileErrors);
  }
  const expansion = expansionError(doc, lines, file);
  if (expansion !== undefined) return unusable(doc, [expansion]);
  let data: unknown;
  try {
    data = documentData(doc);
  } catch (err) {
    // Whatever else yaml refuses to build (an alias before its anchor, ...), refused here.
    return unusable(doc, [`${file}:1:1: ${(err as Error).message}`]);
  }
  const parsed = parseFlagDocument(data === null || data === undefined ? {} : data);
  const fileErrors = parsed.fileIssues.length > 0 ? locateIssues(file, doc, lines, parsed.fileIssues) : [];
  const flagErrors = new Map([...parsed.invalid].map(([key, issues]) => [key, locateIssues(file, doc, lines, issues)]));
  return { doc, parsed, fileErrors, flagErrors };
}

/** The text to write back: YAML keeps comments and order; JSON keeps order and indentation. */
export function renderFlagText(doc: Document, path: string, previousText: string): string {
  if (!isJsonPath(path)) return doc.toString({ lineWidth: 0 });
  const indent = /\n([ \t]+)\S/.exec(previousText)?.[1] ?? '  ';
  return `${JSON.stringify(documentData(doc), null, indent)}\n`;
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
