// The audit log as JSON lines: one entry per flag per write, appended under the store's
// lock. Reading skips a torn or foreign line rather than failing the whole log.
import { readFile } from 'node:fs/promises';
import type { AuditEntry, AuditQuery } from './flag-store.js';

export function selectAudit(entries: readonly AuditEntry[], query: AuditQuery): AuditEntry[] {
  const matching = query.flagKey === undefined ? [...entries] : entries.filter((e) => e.flagKey === query.flagKey);
  return query.limit === undefined ? matching : matching.slice(Math.max(0, matching.length - query.limit));
}

export async function readAuditLines(path: string, query: AuditQuery): Promise<AuditEntry[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const entries: AuditEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      entries.push(JSON.parse(line) as AuditEntry);
    } catch {
      // A line torn by a crash mid-append: skip it, keep the rest.
    }
  }
  return selectAudit(entries, query);
}
