// What a metric stream tells the guardian about one cohort (flag x variant) over one interval:
// requests, errors and a latency histogram, already counted by someone else (a Collector's
// spanmetrics connector, an application's http.server.request.duration, a Prometheus query).
// Every source lands in the same cohort windows as spans do, so one judge reads them all.

/** Where a cohort's numbers came from; the status, the dashboards and the audit say so. */
export type OutcomeSource = 'spans' | 'otlp-metrics' | 'prometheus' | 'metric-reader';

export const OUTCOME_SOURCES: readonly OutcomeSource[] = ['spans', 'otlp-metrics', 'prometheus', 'metric-reader'];

/**
 * An explicit-bucket latency histogram in milliseconds, as OpenTelemetry and Prometheus count
 * it: bucket i holds observations in (boundsMs[i - 1], boundsMs[i]], the last one everything
 * above the last bound, so `counts.length === boundsMs.length + 1`. Bounds strictly increase.
 */
export interface LatencyHistogram {
  readonly boundsMs: readonly number[];
  readonly counts: readonly number[];
}

/** One cohort's counts over an interval, dated at `atMs` (event time, epoch ms). */
export interface CohortAggregate {
  readonly flagKey: string;
  readonly variant: string;
  /**
   * Counted in the guardian's slot that contains `atMs`, under the same watermark as spans. A
   * source reporting the interval [start, end) passes `end - 1` so the counts land in the slot
   * they were made in rather than the next.
   */
  readonly atMs: number;
  /** Requests in the interval (non-negative; may be 0 when only latency is reported). */
  readonly requests: number;
  /** Of those, failed requests (0 <= errors <= requests). */
  readonly errors: number;
  /** Latency observations in the interval; their total may differ from `requests` (another metric). */
  readonly latency?: LatencyHistogram;
  readonly source: OutcomeSource;
}

/**
 * Why an aggregate was not counted; the cohort registry counts each. `other-source`: the
 * cohort is already fed by another source (spans, or another metric source), and one source
 * per cohort keeps the same requests from being counted twice.
 */
export type AggregateRefusal = 'invalid' | 'late' | 'future' | 'cohort-limit' | 'other-source';

/** Where metric sources deliver; the cohort registry implements it. Never throws. */
export interface AggregateSink {
  /** Counts the aggregate, or says why not. */
  recordAggregate(aggregate: CohortAggregate): AggregateRefusal | undefined;
}
