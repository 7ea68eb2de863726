// What keeps a metric source from delivering a guarded flag's numbers (a failed query, an empty
// result, an answer it cannot read), per flag and source. The guardian shows a standing problem
// in the flag's verdict and never calls the flag healthy while it stands; a missing number is
// neither health nor breach. Every problem is counted by source and reason, each kind logged once.
import { diag } from '@opentelemetry/api';
import type { OutcomeSource } from './cohort-aggregate.js';
import type { Judgment } from './judge.js';
import type { SourceErrorReason } from '../telemetry/names.js';

export interface SourceProblem {
  readonly source: OutcomeSource;
  readonly reason: SourceErrorReason;
  /** What went wrong, in words a status page can show as is. */
  readonly message: string;
  /** The end of the slot whose numbers are missing (event time). */
  readonly slotEndMs: number;
}

/** What the guardian reads: the problems standing for a flag now. */
export interface SourceProblemView {
  problemsFor(flagKey: string): readonly SourceProblem[];
}

export class SourceProblems implements SourceProblemView {
  /** flagKey -> source -> the problems of the source's latest delivery for the flag. */
  private readonly standing = new Map<string, Map<OutcomeSource, readonly SourceProblem[]>>();
  private readonly counts = new Map<string, number>();
  private readonly logged = new Set<string>();

  /**
   * What `source`'s latest delivery for `flagKey` lacked; none resolves the flag's problems from
   * that source. Each problem is counted and each kind (source and reason) logged once.
   */
  settle(flagKey: string, source: OutcomeSource, problems: readonly SourceProblem[]): void {
    let bySource = this.standing.get(flagKey);
    if (problems.length === 0) {
      bySource?.delete(source);
      if (bySource?.size === 0) this.standing.delete(flagKey);
      return;
    }
    if (bySource === undefined) {
      bySource = new Map();
      this.standing.set(flagKey, bySource);
    }
    bySource.set(source, problems);
    for (const problem of problems) {
      const kind = `${problem.source}/${problem.reason}`;
      this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
      if (this.logged.has(kind)) continue;
      this.logged.add(kind);
      diag.warn(`rollout-guardian: ${problem.message} (flag "${flagKey}"; further ${kind} problems are counted in rollout_guardian_source_errors_total, not logged)`);
    }
  }

  problemsFor(flagKey: string): readonly SourceProblem[] {
    const bySource = this.standing.get(flagKey);
    return bySource === undefined ? [] : [...bySource.values()].flat();
  }

  /** Problems reported so far by this source for this reason, for /metrics. */
  count(source: OutcomeSource, reason: SourceErrorReason): number {
    return this.counts.get(`${source}/${reason}`) ?? 0;
  }
}

/**
 * The judgment with the flag's standing source problems in its reason, first. A flag whose
 * numbers are missing is not healthy (it may still be watched or rolled back on the numbers that
 * did arrive): `healthy` becomes `insufficient`, so a plan holds instead of advancing.
 */
export function withSourceProblems(judgment: Judgment, problems: readonly SourceProblem[] | undefined): Judgment {
  if (problems === undefined || problems.length === 0) return judgment;
  const said = problems.map((p) => p.message).join('; ');
  if (judgment.verdict === 'healthy') return { ...judgment, verdict: 'insufficient', reason: `${said}; not judged healthy while numbers are missing (the numbers that arrived: ${judgment.reason})` };
  return { ...judgment, reason: `${said}; ${judgment.reason}` };
}
