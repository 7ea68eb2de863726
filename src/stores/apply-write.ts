// Applies a WriteRequest to a flag document and a state document, validates the outcome
// and describes it for the audit log. Shared by every store so a write means the same
// thing everywhere; the YAML Document keeps a file's comments and key order on edit.
import { type Document, isScalar } from 'yaml';
import { type ParsedFlags, type SchemaIssue, describeIssue, parseFlagDocument, toSchemaIssues } from '../core/parse-flags.js';
import { documentData } from './flag-file-format.js';
import { type FlagDefinition, type FlagRuntimeState, stateFileSchema } from '../core/flag-schema.js';
import { type AuditEntry, type FlagAuditView, type WriteRequest, InvalidWriteError } from './flag-store.js';

export interface StateDocument {
  version: 1;
  /** Counts writes, so a revision never repeats even when content does. */
  revision?: number;
  flags: Record<string, FlagRuntimeState>;
  [field: string]: unknown;
}

export interface AppliedWrite {
  readonly definitionsChanged: boolean;
  readonly stateChanged: boolean;
  readonly parsed: ParsedFlags;
  readonly stateDoc: StateDocument;
  readonly state: ReadonlyMap<string, FlagRuntimeState>;
  readonly entries: readonly Omit<AuditEntry, 'revision'>[];
}

export function emptyStateDocument(): StateDocument {
  return { version: 1, flags: {} };
}

function plain(node: unknown): unknown {
  if (node !== null && typeof node === 'object' && 'toJSON' in node) return (node as { toJSON(): unknown }).toJSON();
  return node ?? null;
}

function flagPath(flagKey: string, path: readonly (string | number)[]): (string | number)[] {
  return ['flags', flagKey, ...path];
}

function refuse(message: string, issues: readonly SchemaIssue[]): never {
  throw new InvalidWriteError(issues.length > 0 ? `${message}: ${issues.map(describeIssue).join('; ')}` : message, issues);
}

function checkState(flagKey: string, state: FlagRuntimeState, definition: FlagDefinition | undefined): void {
  if (definition === undefined) refuse(`flag "${flagKey}" does not exist`, []);
  const variants = Object.keys(definition.variants);
  if (state.override !== undefined && !variants.includes(state.override.variant)) {
    refuse(`flag "${flagKey}" has no variant "${state.override.variant}"; expected one of: ${variants.join(', ')}`, []);
  }
  if (state.percentage !== undefined && definition.rollout === undefined) {
    refuse(`flag "${flagKey}" has no rollout block, so a percentage has no treatment variant to apply to; add rollout.variant first`, []);
  }
}

/**
 * Edits `doc` in place and returns the new state document. Throws InvalidWriteError, having
 * changed nothing the caller will persist, when the result would be invalid.
 */
export function applyWrite(
  doc: Document,
  stateDoc: StateDocument,
  request: WriteRequest,
  nowMs: number,
  lastGood?: ParsedFlags,
): AppliedWrite {
  if (request.actor.trim() === '') refuse('a write needs an actor', []);
  if (request.reason.trim() === '') refuse('a write needs a reason', []);
  const docUsable = doc.errors.length === 0;
  const before = docUsable ? parseFlagDocument(documentData(doc)) : undefined;
  const definitionsFrom = before !== undefined && before.fileIssues.length === 0 ? before : lastGood;
  const nextState: StateDocument = { ...stateDoc, flags: { ...stateDoc.flags } };
  const views: { flagKey: string; before: FlagAuditView }[] = [];
  let definitionsChanged = false;
  let stateChanged = false;

  for (const change of request.changes) {
    const key = change.flagKey;
    const rawBefore: unknown = docUsable ? doc.getIn(flagPath(key, [])) : undefined;
    views.push({
      flagKey: key,
      before: {
        definition: plain(rawBefore),
        state: stateDoc.flags[key] ?? null,
      },
    });
    if (change.definitionEdits !== undefined && change.definitionEdits.length > 0) {
      if (!docUsable || before === undefined || before.fileIssues.length > 0) {
        refuse(`the flag file is invalid, so definitions cannot be edited; fix it first`, before?.fileIssues ?? []);
      }
      for (const edit of change.definitionEdits) {
        const path = flagPath(key, edit.path);
        const existing: unknown = doc.getIn(path, true);
        if (edit.value === undefined) doc.deleteIn(path);
        else if (isScalar(existing) && (edit.value === null || typeof edit.value !== 'object')) existing.value = edit.value; // keeps its comment
        else doc.setIn(path, doc.createNode(edit.value));
      }
      definitionsChanged = true;
    }
    if (change.state === null) {
      if (key in nextState.flags) stateChanged = true;
      delete nextState.flags[key];
    } else if (change.state !== undefined) {
      nextState.flags[key] = change.state;
      stateChanged = true;
    }
  }

  const parsed = definitionsChanged ? parseFlagDocument(documentData(doc)) : (definitionsFrom ?? parseFlagDocument({ flags: {} }));
  if (definitionsChanged) {
    if (parsed.fileIssues.length > 0) refuse('the edit would make the flag file invalid', parsed.fileIssues);
    for (const change of request.changes) {
      const issues = parsed.invalid.get(change.flagKey);
      if (change.definitionEdits && issues) refuse(`the edit would make flag "${change.flagKey}" invalid`, issues);
    }
  }
  const checked = stateFileSchema.safeParse(nextState);
  if (!checked.success) refuse('the new runtime state is invalid', toSchemaIssues(checked.error, nextState));
  for (const change of request.changes) {
    const s = nextState.flags[change.flagKey];
    if (s !== undefined && change.state !== undefined) checkState(change.flagKey, s, parsed.definitions.get(change.flagKey));
  }

  const time = new Date(nowMs).toISOString();
  const entries = views.map(({ flagKey, before: b }) => {
    const after: FlagAuditView = {
      definition: definitionsChanged ? plain(doc.getIn(flagPath(flagKey, []))) : b.definition,
      state: nextState.flags[flagKey] ?? null,
    };
    return {
      time,
      actor: request.actor,
      reason: request.reason,
      action: request.action,
      flagKey,
      before: b,
      after,
      ...(request.evidence !== undefined ? { evidence: request.evidence } : {}),
    };
  });
  return { definitionsChanged, stateChanged, parsed, stateDoc: nextState, state: new Map(Object.entries(nextState.flags)), entries };
}
