// A store held in memory, for tests and for embedding flags in code. Same write semantics
// as every other store: revision checks, validation, audit.
import type { Document } from 'yaml';
import type { Clock } from '../core/clock.js';
import type { FlagDefinitionInput, FlagRuntimeState } from '../core/flag-schema.js';
import { parseFlagDocument } from '../core/parse-flags.js';
import {
  type AuditEntry,
  type AuditQuery,
  type FlagStore,
  type StoreListener,
  type StoreSnapshot,
  type WriteRequest,
  type WriteResult,
  RevisionConflictError,
} from './flag-store.js';
import { StoreListeners } from './store-listeners.js';
import { type StateDocument, applyWrite } from './apply-write.js';
import { documentOf } from './flag-file-format.js';
import { selectAudit } from './audit-log.js';
import { systemClock } from '../runtime/system-clock.js';

export interface MemoryFlagStoreOptions {
  readonly flags?: Readonly<Record<string, FlagDefinitionInput>>;
  readonly state?: Readonly<Record<string, FlagRuntimeState>>;
  readonly clock?: Clock;
}

export class MemoryFlagStore implements FlagStore {
  readonly source = 'memory';
  private readonly clock: Clock;
  private readonly listeners = new StoreListeners();
  private readonly auditLog: AuditEntry[] = [];
  private doc: Document;
  private stateDoc: StateDocument;
  private counter = 1;
  private snapshot: StoreSnapshot;
  private closed = false;

  constructor(options: MemoryFlagStoreOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.doc = documentOf({ flags: structuredClone(options.flags ?? {}) });
    this.stateDoc = { version: 1, flags: structuredClone({ ...(options.state ?? {}) }) };
    this.snapshot = this.makeSnapshot();
  }

  load(): Promise<StoreSnapshot> {
    return Promise.resolve(this.snapshot);
  }

  watch(listener: StoreListener): () => void {
    const remove = this.listeners.add(listener);
    return remove;
  }

  write(request: WriteRequest): Promise<WriteResult> {
    try {
      if (this.closed) throw new Error('the memory store is closed');
      const current = String(this.counter);
      if (request.expectedRevision !== undefined && request.expectedRevision !== current) {
        throw new RevisionConflictError(request.expectedRevision, current);
      }
      const doc = this.doc.clone();
      const applied = applyWrite(doc, this.stateDoc, request, this.clock.now());
      this.doc = doc;
      this.stateDoc = applied.stateDoc;
      this.counter++;
      this.snapshot = this.makeSnapshot();
      const entries = applied.entries.map((e) => ({ ...e, revision: this.snapshot.revision }));
      this.auditLog.push(...entries);
      this.listeners.emit({ type: 'change', snapshot: this.snapshot });
      return Promise.resolve({ revision: this.snapshot.revision, entries });
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  audit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    return Promise.resolve(selectAudit(this.auditLog, query));
  }

  close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    return Promise.resolve();
  }

  private makeSnapshot(): StoreSnapshot {
    return {
      revision: String(this.counter),
      parsed: parseFlagDocument(this.doc.toJS()),
      state: new Map(Object.entries(this.stateDoc.flags)),
      source: this.source,
    };
  }

}
