// The mutations people and the guardian make, as read-modify-write cycles against any
// FlagStore: each reads the current snapshot, builds its change, writes it with the
// revision it read, and on a conflict reads again, so concurrent writers lose nothing.
import type { Clock } from '../core/clock.js';
import type { FlagRuntimeState } from '../core/flag-schema.js';
import { type Attribution, type FlagStore, type StoreSnapshot, type WriteRequest, type WriteResult, type DefinitionEdit, RevisionConflictError, InvalidWriteError } from './flag-store.js';
import { systemClock } from '../runtime/system-clock.js';

/** Thrown out of a build with nothing to change, to leave a store's update() without writing. */
const NOTHING_TO_WRITE = new Error('nothing to write');

export class UnknownFlagError extends Error {
  override readonly name = 'UnknownFlagError';
  constructor(
    readonly flagKey: string,
    readonly suggestion: string | undefined,
  ) {
    super(`no flag "${flagKey}"${suggestion ? `; did you mean "${suggestion}"?` : ''} (rollout-guardian flags list shows them all)`);
  }
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number;
      row[j] = Math.min(above + 1, (row[j - 1] as number) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] as number;
}

/** The known key closest to `key`, when one is close enough to be a typo. */
export function closestKey(key: string, keys: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of keys) {
    const d = editDistance(key, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

export function knownFlag(snapshot: StoreSnapshot, flagKey: string): void {
  if (!snapshot.parsed.definitions.has(flagKey) && !snapshot.parsed.invalid.has(flagKey)) {
    throw new UnknownFlagError(flagKey, closestKey(flagKey, [...snapshot.parsed.definitions.keys(), ...snapshot.parsed.invalid.keys()]));
  }
}

export interface FlagUpdate {
  readonly state?: FlagRuntimeState | null;
  readonly definitionEdits?: readonly DefinitionEdit[];
}

export class StoreWriter {
  constructor(
    private readonly store: FlagStore,
    private readonly clock: Clock = systemClock,
    private readonly attempts = 10,
  ) {}

  /** Pins a variant for everyone; beats everything but an emergency shutdown. */
  override(flagKey: string, variant: string, by: Attribution): Promise<WriteResult> {
    return this.update(flagKey, 'override', by, (state) => ({ state: { ...state, override: { variant, ...this.stamp(by) } } }));
  }

  clearOverride(flagKey: string, by: Attribution): Promise<WriteResult> {
    return this.update(flagKey, 'clear-override', by, (state) => {
      if (state?.override === undefined) throw new InvalidWriteError(`flag "${flagKey}" has no override to clear`, []);
      const { override: _removed, ...rest } = state;
      return { state: Object.keys(rest).length > 0 ? rest : null };
    });
  }

  /** Sends the flag's treatment to 0%: the baseline serves everyone until the state is reset. */
  rollback(flagKey: string, by: Attribution, evidence?: Readonly<Record<string, unknown>>): Promise<WriteResult> {
    return this.rollbackIf(false, flagKey, by, evidence);
  }

  /**
   * A guardian's rollback: as rollback(), unless the flag is already rolled back (by another
   * replica that acted first, or an operator); then nothing is written and the result carries
   * no audit entries. Decided on the state the write is checked against, so never twice.
   */
  rollbackOnce(flagKey: string, by: Attribution, evidence?: Readonly<Record<string, unknown>>): Promise<WriteResult> {
    return this.rollbackIf(true, flagKey, by, evidence);
  }

  private rollbackIf(once: boolean, flagKey: string, by: Attribution, evidence: Readonly<Record<string, unknown>> | undefined): Promise<WriteResult> {
    return this.update(
      flagKey,
      'rollback',
      by,
      (state) => {
        if (once && state?.rollback !== undefined) return undefined;
        const plan = state?.plan;
        // A rollback ends a plan in the same write, so no one reads a running plan on a rolled-back flag.
        const ended = plan && (plan.status === 'running' || plan.status === 'paused') ? { plan: { ...plan, status: 'rolled-back' as const, endedAt: this.stamp(by).at, note: `rolled back by ${by.actor}: ${by.reason}` } } : {};
        return { state: { ...state, ...ended, rollback: { ...this.stamp(by), ...(evidence ? { evidence: { ...evidence } } : {}) } } };
      },
      evidence,
    );
  }

  /** Sets the runtime percentage of the flag's treatment, over what the file says. */
  setPercentage(flagKey: string, percentage: number, by: Attribution, evidence?: Readonly<Record<string, unknown>>): Promise<WriteResult> {
    return this.update(flagKey, 'set-percentage', by, (state) => ({ state: { ...state, percentage } }), evidence);
  }

  /**
   * Clears all runtime state of a flag (override, rollback, runtime percentage, plan). A flag
   * with none is left alone: nothing is written and the result carries no audit entries.
   */
  resetState(flagKey: string, by: Attribution): Promise<WriteResult> {
    return this.update(flagKey, 'reset-state', by, (state) => (state === undefined ? undefined : { state: null }));
  }

  /** Edits one field of the flag's definition in place (`rollout.percentage` = 25). */
  setDefinition(flagKey: string, path: readonly (string | number)[], value: unknown, by: Attribution): Promise<WriteResult> {
    return this.update(flagKey, 'set', by, () => ({ definitionEdits: [{ path, value }] }));
  }

  private stamp(by: Attribution): { actor: string; reason: string; at: string } {
    return { actor: by.actor, reason: by.reason, at: new Date(this.clock.now()).toISOString() };
  }

  /** A read-modify-write of one flag: `build` sees the current state and returns the change. */
  mutate(
    flagKey: string,
    action: string,
    by: Attribution,
    build: (state: FlagRuntimeState | undefined, snapshot: StoreSnapshot) => FlagUpdate,
    evidence?: Readonly<Record<string, unknown>>,
  ): Promise<WriteResult> {
    return this.update(flagKey, action, by, build, evidence);
  }

  /** `build` returns undefined when there is nothing to do: then nothing is written. */
  private async update(
    flagKey: string,
    action: string,
    by: Attribution,
    build: (state: FlagRuntimeState | undefined, snapshot: StoreSnapshot) => FlagUpdate | undefined,
    evidence?: Readonly<Record<string, unknown>>,
  ): Promise<WriteResult> {
    let unchangedAt: string | undefined;
    const requestFor = (snapshot: StoreSnapshot): WriteRequest => {
      knownFlag(snapshot, flagKey);
      const change = build(snapshot.state.get(flagKey), snapshot);
      if (change === undefined) {
        unchangedAt = snapshot.revision;
        throw NOTHING_TO_WRITE;
      }
      if (change.state === undefined && change.definitionEdits === undefined) {
        throw new InvalidWriteError(`nothing to change on flag "${flagKey}"`, []);
      }
      return { actor: by.actor, reason: by.reason, action, changes: [{ flagKey, ...change }], ...(evidence ? { evidence } : {}) };
    };
    try {
      // Writers that can queue (the file store's lock) read and write in one turn: no conflicts.
      if (this.store.update !== undefined) return await this.store.update(requestFor);
      for (let attempt = 1; ; attempt++) {
        const snapshot = await this.store.load();
        try {
          return await this.store.write({ ...requestFor(snapshot), expectedRevision: snapshot.revision });
        } catch (err) {
          if (!(err instanceof RevisionConflictError) || attempt >= this.attempts) throw err;
        }
      }
    } catch (err) {
      if (err === NOTHING_TO_WRITE) return { revision: unchangedAt ?? '', entries: [] };
      throw err;
    }
  }
}
