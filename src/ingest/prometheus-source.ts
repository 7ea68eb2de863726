// Prometheus as a metric source: once per slot, for each flag whose guard names PromQL, instant
// queries at the slot's end (`increase(...[$__interval])`) give each variant's requests, errors
// and latency buckets, delivered to the cohort windows as CohortAggregates. Queries run on their
// own timer, bounded in number and in time, so a slow Prometheus never holds up the guardian's
// tick. A failed query or an empty answer is a reported source problem, never a number.
import { context, diag } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import type { Clock } from '../core/clock.js';
import type { PrometheusGuard } from '../core/flag-schema.js';
import type { AggregateSink, CohortAggregate, LatencyHistogram } from '../guardian/cohort-aggregate.js';
import type { FlagSource } from '../guardian/rollout-guardian.js';
import { type SourceProblem, SourceProblems } from '../guardian/source-problems.js';
import { requirePositiveInteger } from '../guardian/option-checks.js';
import { systemClock } from '../runtime/system-clock.js';
import type { StoreSnapshot } from '../stores/flag-store.js';
import type { SourceErrorReason } from '../telemetry/names.js';

export interface PrometheusSourceOptions {
  /** Prometheus' base URL, e.g. http://prometheus:9090 (a path prefix such as /prometheus is kept). */
  readonly url: string;
  /** Where the flags and their guards are read (the guardian's store). */
  readonly flags: Pick<FlagSource, 'load' | 'watch'>;
  /** Where aggregates go: the guardian's cohort registry. */
  readonly sink: AggregateSink;
  /** The guardian's slot: one query per metric, flag and slot. */
  readonly slotMs: number;
  /** Where failed queries and empty answers are reported (default: a private one, see `problems`). */
  readonly problems?: SourceProblems;
  readonly clock?: Clock;
  /** Sent with every query, e.g. `{ authorization: 'Bearer ...' }`. */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * How long after a slot ends it is queried (default 15 s): at least Prometheus' scrape
   * interval, so the samples at the slot's end are stored. The guardian's allowed lateness must
   * cover this, the query timeout and half a slot (serve sets it so).
   */
  readonly queryDelayMs?: number;
  /** Limit on one query, Prometheus' own evaluation timeout included (default 5 s). */
  readonly queryTimeoutMs?: number;
  /** Queries in flight at most (default 4). */
  readonly maxConcurrentQueries?: number;
  /** Slots a source that fell behind still queries (default 12); older ones would arrive late. */
  readonly maxCatchUpSlots?: number;
}

export interface PrometheusSourceStats {
  /** Queries sent, answered or not. */
  readonly queries: number;
  /** Aggregates the sink took. */
  readonly delivered: number;
  /** Slots passed over because the source fell more than maxCatchUpSlots behind. */
  readonly skippedSlots: number;
}

/** The default label that names the variant in every query's answer. */
export const DEFAULT_VARIANT_LABEL = 'variant';
const DEFAULT_QUERY_DELAY_MS = 15_000;
const DEFAULT_QUERY_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_CONCURRENT_QUERIES = 4;
const DEFAULT_MAX_CATCH_UP_SLOTS = 12;
const SOURCE = 'prometheus';

interface Sample {
  readonly metric?: Readonly<Record<string, string>>;
  readonly value?: readonly [number, string];
}

type Answer = { readonly ok: true; readonly series: readonly Sample[] } | { readonly ok: false; readonly reason: SourceErrorReason; readonly message: string };

interface Watched {
  readonly guard: PrometheusGuard;
  /** Variants whose numbers the judgment needs: the treatment and the baseline. */
  readonly expected: readonly string[];
  readonly variants: ReadonlySet<string>;
}

/** `slotMs` as a PromQL duration. */
export function promqlDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * A guard's query with its variables filled: `$__interval` (or `${__interval}`) is the slot as a
 * PromQL duration, `$flag` (or `${flag}`) the flag key escaped for a double-quoted string.
 */
export function fillQuery(query: string, flagKey: string, slotMs: number): string {
  const flag = flagKey.replaceAll('\\', '\\\\').replaceAll('"', '\\"');
  const interval = promqlDuration(slotMs);
  return query.replaceAll(/\$\{__interval\}|\$__interval\b/g, interval).replaceAll(/\$\{flag\}|\$flag\b/g, () => flag);
}

export class PrometheusSource {
  readonly problems: SourceProblems;
  private readonly queryUrl: string;
  private readonly flags: Pick<FlagSource, 'load' | 'watch'>;
  private readonly sink: AggregateSink;
  private readonly slotMs: number;
  private readonly clock: Clock;
  private readonly headers: Readonly<Record<string, string>>;
  private readonly queryDelayMs: number;
  private readonly queryTimeoutMs: number;
  private readonly maxConcurrentQueries: number;
  private readonly maxCatchUpSlots: number;
  /** flagKey -> end of the last slot queried. */
  private readonly cursors = new Map<string, number>();
  /** flagKey -> series -> the fraction a rounded count left over, carried into the next slot. */
  private readonly carries = new Map<string, Map<string, number>>();
  private readonly waiting: (() => void)[] = [];
  private inFlight = 0;
  private counters = { queries: 0, delivered: 0, skippedSlots: 0 };
  private snapshot: StoreSnapshot | undefined;
  private unwatch: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private closed = false;
  private saidFailure = false;

  constructor(options: PrometheusSourceOptions) {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new TypeError(`PrometheusSource: url must be an absolute http(s) URL such as http://prometheus:9090, got "${options.url}"`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError(`PrometheusSource: url must be http or https, got "${options.url}"`);
    this.queryUrl = `${base.origin}${base.pathname.replace(/\/+$/, '')}/api/v1/query`;
    this.slotMs = requirePositiveInteger('PrometheusSource', 'slotMs', options.slotMs);
    this.queryTimeoutMs = requirePositiveInteger('PrometheusSource', 'queryTimeoutMs', options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS);
    this.maxConcurrentQueries = requirePositiveInteger('PrometheusSource', 'maxConcurrentQueries', options.maxConcurrentQueries ?? DEFAULT_MAX_CONCURRENT_QUERIES);
    this.maxCatchUpSlots = requirePositiveInteger('PrometheusSource', 'maxCatchUpSlots', options.maxCatchUpSlots ?? DEFAULT_MAX_CATCH_UP_SLOTS);
    const delay = options.queryDelayMs ?? DEFAULT_QUERY_DELAY_MS;
    if (!Number.isFinite(delay) || delay < 0) throw new RangeError(`PrometheusSource: queryDelayMs must be 0 or more, got ${delay}`);
    this.queryDelayMs = delay;
    this.flags = options.flags;
    this.sink = options.sink;
    this.problems = options.problems ?? new SourceProblems();
    this.clock = options.clock ?? systemClock;
    this.headers = { ...options.headers };
    this.unwatch = this.flags.watch((event) => {
      if (event.type === 'change') this.snapshot = event.snapshot;
    });
  }

  /** What the guardian's allowed lateness must cover for this source's numbers to count. */
  get latenessNeededMs(): number {
    return this.queryDelayMs + this.queryTimeoutMs + this.slotMs;
  }

  get stats(): PrometheusSourceStats {
    return { ...this.counters };
  }

  /** Polls twice a slot on a timer that does not keep the process alive. */
  start(): void {
    if (this.closed || this.timer !== undefined) return;
    this.timer = setInterval(() => {
      void this.poll();
    }, Math.max(50, Math.floor(this.slotMs / 2)));
    this.timer.unref();
  }

  /**
   * Queries every slot that has ended `queryDelayMs` ago and not been queried yet, for every flag
   * with a Prometheus guard, and delivers what came back. Never rejects; a poll already running
   * is not doubled.
   */
  poll(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.polling ??= this.runPoll()
      .catch((err: unknown) => this.failedOnce(err))
      .finally(() => {
        this.polling = undefined;
      });
    return this.polling;
  }

  /** Stops the timer and waits for a running poll. Idempotent; the source is inert afterwards. */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.unwatch?.();
    this.unwatch = undefined;
    await this.polling;
  }

  /** A poll that failed as a whole (the store could not be read): said once, and the next poll tries again. */
  private failedOnce(err: unknown): void {
    if (this.saidFailure) return;
    this.saidFailure = true;
    diag.error(`rollout-guardian: the Prometheus source could not poll; it retries every poll and says this once: ${err instanceof Error ? err.message : String(err)}`);
  }

  private async runPoll(): Promise<void> {
    const dueMs = Math.floor((this.clock.now() - this.queryDelayMs) / this.slotMs) * this.slotMs;
    this.snapshot ??= await this.flags.load();
    const watched = watchedFlags(this.snapshot);
    for (const flagKey of this.cursors.keys()) {
      if (watched.has(flagKey)) continue;
      this.cursors.delete(flagKey);
      this.carries.delete(flagKey);
      this.problems.settle(flagKey, SOURCE, []);
    }
    await Promise.all([...watched].map(([flagKey, flag]) => this.pollFlag(flagKey, flag, dueMs)));
  }

  /** The flag's due slots, oldest first, so the newest slot's problems are the ones that stand. */
  private async pollFlag(flagKey: string, flag: Watched, dueMs: number): Promise<void> {
    let throughMs = this.cursors.get(flagKey) ?? dueMs - this.slotMs;
    // A clock stepped back: wait for the new present rather than query the future.
    if (throughMs > dueMs) {
      throughMs = dueMs;
      this.cursors.set(flagKey, dueMs);
    }
    const oldestMs = dueMs - this.maxCatchUpSlots * this.slotMs;
    if (throughMs < oldestMs) {
      this.counters.skippedSlots += (oldestMs - throughMs) / this.slotMs;
      throughMs = oldestMs;
    }
    for (let endMs = throughMs + this.slotMs; endMs <= dueMs; endMs += this.slotMs) {
      if (this.closed) return;
      await this.querySlot(flagKey, flag, endMs);
      this.cursors.set(flagKey, endMs);
    }
  }

  private async querySlot(flagKey: string, flag: Watched, endMs: number): Promise<void> {
    const { guard } = flag;
    const at = new Date(endMs).toISOString();
    const run = (query: string) => this.query(fillQuery(query, flagKey, this.slotMs), endMs / 1000);
    const [requests, errors, latency] = await Promise.all([run(guard.requests), run(guard.errors), guard.latencyBuckets === undefined ? undefined : run(guard.latencyBuckets)]);
    const problems: SourceProblem[] = [];
    const problem = (reason: SourceErrorReason, message: string) => problems.push({ source: SOURCE, reason, message: `Prometheus ${message} (slot ending ${at})`, slotEndMs: endMs });
    const label = guard.variantLabel ?? DEFAULT_VARIANT_LABEL;
    for (const [name, answer] of [['requests', requests], ['errors', errors], ['latencyBuckets', latency]] as const) {
      if (answer !== undefined && !answer.ok) problem(answer.reason, `query for ${name} failed: ${answer.message}`);
    }
    if (!requests.ok || !errors.ok) {
      // Requests without their errors would read as error-free: nothing is delivered.
      this.problems.settle(flagKey, SOURCE, problems);
      return;
    }
    const requestCounts = this.sumByVariant('requests', requests.series, label, undefined, problem);
    const errorCounts = this.sumByVariant('errors', errors.series, label, undefined, problem);
    const buckets = latency?.ok ? this.sumByVariant('latencyBuckets', latency.series, label, 'le', problem) : undefined;
    if (requests.series.length === 0) problem('empty', 'query for requests returned no series: is the metric scraped, and do its labels match?');
    else {
      for (const variant of flag.expected) if (!requestCounts.has(variant)) problem('empty', `has no samples for variant "${variant}" in the requests query`);
    }
    if (buckets !== undefined && latency?.ok === true && latency.series.length === 0) problem('empty', 'query for latencyBuckets returned no series');
    for (const [variant, total] of requestCounts) {
      if (!flag.variants.has(variant)) continue;
      const failedTotal = errorCounts.get(variant);
      if (failedTotal === undefined) {
        problem('empty', `errors query has no series for variant "${variant}": write it so a variant without errors answers 0 (see docs/prometheus-source.md)`);
        continue;
      }
      let histogram: LatencyHistogram | undefined;
      if (buckets !== undefined) {
        const cumulative = buckets.get(variant);
        if (cumulative === undefined) {
          if (latency?.ok === true && latency.series.length > 0) problem('empty', `latencyBuckets query has no series for variant "${variant}"`);
        } else {
          histogram = this.histogram(flagKey, variant, cumulative, guard.latencyUnit ?? 's', problem);
        }
      }
      const n = this.whole(flagKey, `${variant}\u0000requests`, total);
      let e = this.whole(flagKey, `${variant}\u0000errors`, failedTotal);
      if (e > n) {
        // Extrapolated errors may round above the requests: the excess waits for the next slot.
        this.carry(flagKey, `${variant}\u0000errors`, e - n);
        e = n;
      }
      // Dated a millisecond before the slot's end: counted in the slot it measured, not the next.
      const atMs = endMs - 1;
      const aggregate: CohortAggregate = histogram === undefined ? { flagKey, variant, atMs, requests: n, errors: e, source: SOURCE } : { flagKey, variant, atMs, requests: n, errors: e, latency: histogram, source: SOURCE };
      const refused = this.sink.recordAggregate(aggregate);
      if (refused === undefined) this.counters.delivered++;
      else if (refused === 'late') problem('late', `numbers for variant "${variant}" arrived after the guardian judged their slot: give the guardian an allowed lateness above the query delay plus the query timeout`);
      else if (refused === 'invalid') problem('malformed', `numbers for variant "${variant}" were refused as invalid`);
      else if (refused === 'other-source') problem('refused', `numbers for variant "${variant}" were refused: another source (spans, or OTLP metrics) already feeds this cohort, and one source per cohort keeps requests from being counted twice; give the flag one source`);
      else problem('refused', `numbers for variant "${variant}" were refused (${refused})`);
    }
    this.problems.settle(flagKey, SOURCE, problems);
  }

  /**
   * Sums an answer's series by the variant label (and by `le` when `by` says so), so `sum by` in
   * the query is optional; a series without the label or with a value that is not a number is
   * reported and left out.
   */
  private sumByVariant(name: string, series: readonly Sample[], label: string, by: 'le', problem: (reason: SourceErrorReason, message: string) => void): Map<string, Map<number, number>>;
  private sumByVariant(name: string, series: readonly Sample[], label: string, by: undefined, problem: (reason: SourceErrorReason, message: string) => void): Map<string, number>;
  private sumByVariant(name: string, series: readonly Sample[], label: string, by: 'le' | undefined, problem: (reason: SourceErrorReason, message: string) => void): Map<string, number> | Map<string, Map<number, number>> {
    const totals = new Map<string, number>();
    const byLe = new Map<string, Map<number, number>>();
    let unlabelled = false;
    let notNumber: string | undefined;
    let badLe: string | undefined;
    for (const sample of series) {
      const variant = sample.metric?.[label];
      if (variant === undefined) {
        unlabelled = true;
        continue;
      }
      const text = sample.value?.[1];
      const value = typeof text === 'string' ? Number(text) : Number.NaN;
      if (!Number.isFinite(value)) {
        notNumber ??= String(text);
        continue;
      }
      if (by === undefined) {
        totals.set(variant, (totals.get(variant) ?? 0) + value);
        continue;
      }
      const leText = sample.metric?.le;
      const le = leText === '+Inf' ? Number.POSITIVE_INFINITY : leText === undefined ? Number.NaN : Number(leText);
      if (Number.isNaN(le)) {
        badLe ??= leText ?? '(none)';
        continue;
      }
      let cumulative = byLe.get(variant);
      if (cumulative === undefined) {
        cumulative = new Map();
        byLe.set(variant, cumulative);
      }
      cumulative.set(le, (cumulative.get(le) ?? 0) + value);
    }
    if (unlabelled) problem('malformed', `${name} answer has a series without the "${label}" label: group it with sum by (${label}${by === undefined ? '' : ', le'})`);
    if (notNumber !== undefined) problem('malformed', `${name} answer has a value that is not a number (${notNumber})`);
    if (badLe !== undefined) problem('malformed', `${name} answer has a series whose le label is not a bucket bound (${badLe})`);
    return by === undefined ? totals : byLe;
  }

  /** Cumulative `le` buckets as per-bucket counts in milliseconds, `+Inf` last. */
  private histogram(flagKey: string, variant: string, cumulative: ReadonlyMap<number, number>, unit: 's' | 'ms', problem: (reason: SourceErrorReason, message: string) => void): LatencyHistogram | undefined {
    if (!cumulative.has(Number.POSITIVE_INFINITY)) {
      problem('malformed', `latencyBuckets answer for variant "${variant}" has no le="+Inf" bucket`);
      return undefined;
    }
    const les = [...cumulative.keys()].sort((a, b) => a - b);
    const boundsMs: number[] = [];
    const counts: number[] = [];
    let below = 0;
    for (const le of les) {
      // Extrapolated increases can dip below the bucket before: a count is never negative.
      const atOrBelow = Math.max(below, cumulative.get(le) ?? 0);
      counts.push(this.whole(flagKey, `${variant}\u0000le\u0000${le}`, atOrBelow - below));
      below = atOrBelow;
      // Bounds in ms to a nanosecond, so 0.5 s is exactly the 500 ms a limit names.
      if (le !== Number.POSITIVE_INFINITY) boundsMs.push(unit === 's' ? Math.round(le * 1e9) / 1e6 : le);
    }
    return { boundsMs, counts };
  }

  /**
   * A count as a whole number, the fraction carried to the flag's next slot: increase()
   * extrapolates, and rounding each slot alone would lose a steady trickle of errors.
   */
  private whole(flagKey: string, series: string, value: number): number {
    let carries = this.carries.get(flagKey);
    if (carries === undefined) {
      carries = new Map();
      this.carries.set(flagKey, carries);
    }
    const exact = Math.max(0, value) + (carries.get(series) ?? 0);
    const whole = Math.max(0, Math.round(exact));
    carries.set(series, exact - whole);
    return whole;
  }

  private carry(flagKey: string, series: string, amount: number): void {
    const carries = this.carries.get(flagKey);
    carries?.set(series, (carries.get(series) ?? 0) + amount);
  }

  private async query(expr: string, timeS: number): Promise<Answer> {
    await this.acquire();
    this.counters.queries++;
    try {
      const body = new URLSearchParams({ query: expr, time: String(timeS), timeout: `${this.queryTimeoutMs}ms` });
      // Our own queries are not the application's requests: never traced, never measured.
      const response = await context.with(suppressTracing(context.active()), () =>
        fetch(this.queryUrl, { method: 'POST', headers: { ...this.headers, 'content-type': 'application/x-www-form-urlencoded' }, body, signal: AbortSignal.timeout(this.queryTimeoutMs) }),
      );
      const text = await response.text();
      let answer: { status?: unknown; errorType?: unknown; error?: unknown; data?: { resultType?: unknown; result?: unknown } };
      try {
        answer = JSON.parse(text) as typeof answer;
      } catch {
        return { ok: false, reason: 'query_failed', message: `HTTP ${response.status} from ${this.queryUrl}: ${text.slice(0, 200)}` };
      }
      if (answer.status !== 'success') return { ok: false, reason: 'query_failed', message: `${typeof answer.errorType === 'string' ? answer.errorType : `HTTP ${response.status}`}: ${typeof answer.error === 'string' ? answer.error : text.slice(0, 200)}` };
      const data = answer.data;
      if (data?.resultType !== 'vector' || !Array.isArray(data.result)) return { ok: false, reason: 'malformed', message: `expected an instant vector by variant, got ${String(data?.resultType)}` };
      return { ok: true, series: data.result as Sample[] };
    } catch (err) {
      const error = err as Error & { cause?: { message?: string } };
      if (error.name === 'TimeoutError' || error.name === 'AbortError') return { ok: false, reason: 'timeout', message: `no answer within ${this.queryTimeoutMs} ms` };
      return { ok: false, reason: 'query_failed', message: `cannot reach ${this.queryUrl}: ${error.cause?.message ?? error.message}` };
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.inFlight < this.maxConcurrentQueries) {
      this.inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    // The slot passes straight to the next query waiting, so inFlight stays as it is.
    if (next !== undefined) next();
    else this.inFlight--;
  }
}

/** Flags whose guard names Prometheus queries, live rollouts or not: for telling a user who configured no Prometheus. */
export function flagsWithPrometheusGuards(snapshot: StoreSnapshot): string[] {
  return [...snapshot.parsed.definitions].filter(([, definition]) => definition.guard?.prometheus !== undefined).map(([flagKey]) => flagKey);
}

/** Flags with a live, guarded rollout whose guard names Prometheus queries. */
function watchedFlags(snapshot: StoreSnapshot): Map<string, Watched> {
  const watched = new Map<string, Watched>();
  for (const [flagKey, definition] of snapshot.parsed.definitions) {
    const guard = definition.guard;
    const rollout = definition.rollout;
    if (guard?.prometheus === undefined || guard.enabled === false || definition.state === 'disabled') continue;
    if (rollout === undefined || rollout.variant === definition.defaultVariant) continue;
    const state = snapshot.state.get(flagKey);
    if (state?.rollback !== undefined || state?.override !== undefined) continue;
    watched.set(flagKey, { guard: guard.prometheus, expected: [rollout.variant, definition.defaultVariant], variants: new Set(Object.keys(definition.variants)) });
  }
  return watched;
}
