// The Prometheus source against a real Prometheus: a history of per-variant request counters and
// latency histograms, written at fixed timestamps with promtool's backfill so every query has an
// exact answer and no test waits for a scrape; bad PromQL, a Prometheus that is down or silent,
// and series that do not exist each give a reported problem, never a number.
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FlagDefinitionInput, PrometheusGuard } from '../../src/core/flag-schema.js';
import type { AggregateRefusal, AggregateSink, CohortAggregate } from '../../src/guardian/cohort-aggregate.js';
import { CohortRegistry } from '../../src/guardian/cohort-registry.js';
import { RolloutGuardian } from '../../src/guardian/rollout-guardian.js';
import { SourceProblems } from '../../src/guardian/source-problems.js';
import { PrometheusSource, fillQuery } from '../../src/ingest/prometheus-source.js';
import { MemoryFlagStore } from '../../src/stores/memory-store.js';
import { StoreWriter } from '../../src/stores/store-writer.js';
import { RolloutServer } from '../../src/server/rollout-server.js';
import type { RollbackRecord } from '../../src/guardian/rollout-guardian.js';
import type { ServerStatus } from '../../src/server/server-status.js';
import { PROMETHEUS_NAMES } from '../../src/telemetry/names.js';
import { runCliIn } from '../helpers/cli-in-process.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { type PrometheusServer, startPrometheus } from '../helpers/prometheus-server.js';

const SLOT_MS = 5_000;
/** The history's first sample; slot-aligned. */
const T0 = Date.parse('2026-11-27T12:00:00Z');
const HISTORY_S = 900;
const BOUNDS_S = [0.1, 0.25, 0.5, 1];

/** What one variant of one flag serves each second: whole numbers, so every increase is exact. */
interface Traffic {
  readonly requestsPerS: number;
  readonly errorsPerS: number;
  /** Per bucket of BOUNDS_S, +Inf last; sums to requestsPerS. */
  readonly bucketsPerS: readonly number[];
}

const FAST: Traffic = { requestsPerS: 100, errorsPerS: 0, bucketsPerS: [60, 30, 10, 0, 0] };
/** 8% errors against a 1% limit; as fast as the baseline. */
const FAILING: Traffic = { requestsPerS: 100, errorsPerS: 8, bucketsPerS: [60, 30, 10, 0, 0] };
/** No errors, but 20% of requests between 500 ms and 1 s: above a 500 ms P95, within a 1 s P99. */
const SLOW: Traffic = { requestsPerS: 100, errorsPerS: 0, bucketsPerS: [40, 30, 10, 20, 0] };

const HISTORY: Readonly<Record<string, Readonly<Record<string, Traffic>>>> = {
  'new-checkout': { on: FAILING, off: FAST },
  'slow-checkout': { on: SLOW, off: FAST },
  'steady-checkout': { on: FAST, off: FAST },
  // Only the baseline is exposed: the treatment's series do not exist.
  'half-checkout': { off: FAST },
};

/** The history as OpenMetrics, one sample a second from T0: counters by flag, variant and code, and a latency histogram. */
function openMetrics(): string {
  const lines = ['# TYPE http_requests counter'];
  for (const [flag, variants] of Object.entries(HISTORY)) {
    for (const [variant, t] of Object.entries(variants)) {
      const codes: [string, number][] = t.errorsPerS > 0 ? [['200', t.requestsPerS - t.errorsPerS], ['500', t.errorsPerS]] : [['200', t.requestsPerS]];
      for (const [code, perS] of codes) {
        for (let s = 0; s <= HISTORY_S; s++) lines.push(`http_requests_total{flag="${flag}",variant="${variant}",code="${code}"} ${s * perS} ${T0 / 1000 + s}`);
      }
    }
  }
  lines.push('# TYPE http_request_duration_seconds histogram');
  for (const [flag, variants] of Object.entries(HISTORY)) {
    for (const [variant, t] of Object.entries(variants)) {
      for (let s = 0; s <= HISTORY_S; s++) {
        const at = T0 / 1000 + s;
        let cumulative = 0;
        t.bucketsPerS.forEach((perS, i) => {
          cumulative += perS;
          lines.push(`http_request_duration_seconds_bucket{flag="${flag}",variant="${variant}",le="${BOUNDS_S[i] ?? '+Inf'}"} ${s * cumulative} ${at}`);
        });
        lines.push(`http_request_duration_seconds_count{flag="${flag}",variant="${variant}"} ${s * t.requestsPerS} ${at}`);
        lines.push(`http_request_duration_seconds_sum{flag="${flag}",variant="${variant}"} ${s * t.requestsPerS * 0.1} ${at}`);
      }
    }
  }
  lines.push('# EOF');
  return `${lines.join('\n')}\n`;
}

/** The queries the docs give for Flagger-style metrics; errors answer 0 for a variant that never failed. */
const QUERIES = {
  requests: 'sum by (variant) (increase(http_requests_total{flag="$flag"}[$__interval]))',
  errors: 'sum by (variant) (increase(http_requests_total{flag="$flag", code=~"5.."}[$__interval])) or 0 * sum by (variant) (increase(http_requests_total{flag="$flag"}[$__interval]))',
  latencyBuckets: 'sum by (variant, le) (increase(http_request_duration_seconds_bucket{flag="$flag"}[$__interval]))',
  latencyUnit: 's',
} as const;

function guarded(prometheus: PrometheusGuard): FlagDefinitionInput {
  return {
    variants: { on: true, off: false },
    defaultVariant: 'off',
    rollout: { variant: 'on', percentage: 50 },
    guard: { maxErrorRate: 0.01, maxP95Ms: 500, maxP99Ms: 1000, sustainFor: '30s', minSamples: 50, prometheus },
  };
}

/** Every aggregate the source delivered, accepted. */
class RecordingSink implements AggregateSink {
  readonly aggregates: CohortAggregate[] = [];
  recordAggregate(aggregate: CohortAggregate): AggregateRefusal | undefined {
    this.aggregates.push(aggregate);
    return undefined;
  }
  of(flagKey: string): CohortAggregate[] {
    return this.aggregates.filter((a) => a.flagKey === flagKey);
  }
}

/** One slot of `t` ending at `endMs`, as delivered: dated a millisecond before the end, in the slot it measured. */
function slotOf(t: Traffic, flagKey: string, variant: string, endMs: number): CohortAggregate {
  const slotS = SLOT_MS / 1000;
  return {
    flagKey,
    variant,
    atMs: endMs - 1,
    requests: t.requestsPerS * slotS,
    errors: t.errorsPerS * slotS,
    latency: { boundsMs: BOUNDS_S.map((s) => s * 1000), counts: t.bucketsPerS.map((n) => n * slotS) },
    source: 'prometheus',
  };
}

describe('the Prometheus source against a real Prometheus with a backfilled history', () => {
  let prometheus: PrometheusServer | undefined;
  let silent: Server | undefined;

  beforeAll(async () => {
    prometheus = await startPrometheus({ scrapeIntervalS: 1, backfill: openMetrics() });
    // Takes connections and never answers: a Prometheus that hangs.
    silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent?.listen(0, '127.0.0.1', resolve));
  }, 60_000);
  afterAll(async () => {
    silent?.closeAllConnections();
    await new Promise<void>((resolve) => (silent === undefined ? resolve() : silent.close(() => resolve())));
    await prometheus?.stop();
  });

  function source(flags: Record<string, FlagDefinitionInput>, options: { url?: string; queryTimeoutMs?: number; clock?: FakeClock } = {}) {
    const clock = options.clock ?? new FakeClock(T0 + 100_000);
    const store = new MemoryFlagStore({ flags, clock });
    const sink = new RecordingSink();
    const problems = new SourceProblems();
    const prom = new PrometheusSource({ url: options.url ?? (prometheus as PrometheusServer).url, flags: store, sink, slotMs: SLOT_MS, problems, clock, queryDelayMs: 0, queryTimeoutMs: options.queryTimeoutMs ?? 5_000 });
    return { clock, store, sink, problems, prom };
  }

  it("delivers each variant's requests, errors and latency buckets for the slot that just ended, exactly, in milliseconds with +Inf last", async () => {
    const s = source({ 'new-checkout': guarded(QUERIES), 'slow-checkout': guarded(QUERIES), 'steady-checkout': guarded(QUERIES) });
    await s.prom.poll();
    const at = T0 + 100_000;
    const byVariant = (a: CohortAggregate, b: CohortAggregate) => a.variant.localeCompare(b.variant);
    expect(s.sink.of('new-checkout').sort(byVariant)).toEqual([slotOf(FAST, 'new-checkout', 'off', at), slotOf(FAILING, 'new-checkout', 'on', at)]);
    expect(s.sink.of('slow-checkout').sort(byVariant)).toEqual([slotOf(FAST, 'slow-checkout', 'off', at), slotOf(SLOW, 'slow-checkout', 'on', at)]);
    // A variant that never failed has no 5xx series at all; the query's `or 0 * ...` answers 0.
    expect(s.sink.of('steady-checkout').map((a) => [a.variant, a.requests, a.errors])).toEqual(expect.arrayContaining([['on', 500, 0], ['off', 500, 0]]));
    expect(s.problems.problemsFor('new-checkout')).toEqual([]);
    expect(s.prom.stats).toMatchObject({ queries: 9, delivered: 6 });
    await s.prom.shutdown();
  });

  it('queries each slot once, in order, catching up the slots a poll missed and never querying one twice', async () => {
    const s = source({ 'new-checkout': guarded(QUERIES) });
    await s.prom.poll();
    s.clock.advance(3 * SLOT_MS + 2_000);
    await s.prom.poll();
    await s.prom.poll();
    const ends = s.sink.of('new-checkout').filter((a) => a.variant === 'on').map((a) => (a.atMs + 1 - T0) / 1000);
    expect(ends).toEqual([100, 105, 110, 115]);
    await s.prom.shutdown();
  });

  it('reports a flag whose series do not exist as an empty result, and a missing treatment as no samples for it, delivering no numbers for it', async () => {
    const s = source({ 'quiet-checkout': guarded(QUERIES), 'half-checkout': guarded(QUERIES) });
    await s.prom.poll();
    expect(s.sink.of('quiet-checkout')).toEqual([]);
    const quiet = s.problems.problemsFor('quiet-checkout');
    expect(quiet.map((p) => [p.source, p.reason])).toEqual([['prometheus', 'empty'], ['prometheus', 'empty']]);
    expect(quiet[0]?.message).toContain('query for requests returned no series');
    expect(quiet[1]?.message).toContain('query for latencyBuckets returned no series');
    // The baseline's numbers arrive; the treatment's absence is said, not read as zero.
    expect(s.sink.of('half-checkout').map((a) => a.variant)).toEqual(['off']);
    expect(s.problems.problemsFor('half-checkout').map((p) => p.message)).toEqual([expect.stringContaining('has no samples for variant "on"')]);
    expect(s.problems.count('prometheus', 'empty')).toBe(3);
    await s.prom.shutdown();
  });

  it("reports bad PromQL with Prometheus's own error, and delivers nothing for the slot", async () => {
    const s = source({ 'new-checkout': guarded({ ...QUERIES, errors: 'sum by (variant) (increase(http_requests_total{flag="$flag", code=~"5.."}[$__interval])' }) });
    await s.prom.poll();
    expect(s.sink.aggregates).toEqual([]);
    const [problem] = s.problems.problemsFor('new-checkout');
    expect(problem).toMatchObject({ reason: 'query_failed', slotEndMs: T0 + 100_000 });
    expect(problem?.message).toMatch(/^Prometheus query for errors failed: bad_data: .*parse error/);
    expect(s.problems.count('prometheus', 'query_failed')).toBe(1);
    await s.prom.shutdown();
  });

  it('sends its headers with every query, and never more queries at once than maxConcurrentQueries', async () => {
    const seen: (string | undefined)[] = [];
    let inFlight = 0;
    let mostInFlight = 0;
    // A proxy in front of Prometheus, as an authenticating gateway would be.
    const gateway = createServer((request, response) => {
      inFlight++;
      mostInFlight = Math.max(mostInFlight, inFlight);
      seen.push(request.headers.authorization);
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        void fetch(`${(prometheus as PrometheusServer).url}${request.url ?? ''}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: Buffer.concat(chunks) })
          .then(async (answer) => {
            const text = await answer.text();
            inFlight--;
            response.writeHead(answer.status, { 'content-type': 'application/json' }).end(text);
          })
          .catch(() => response.destroy());
      });
    });
    await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
    try {
      const clock = new FakeClock(T0 + 100_000);
      const store = new MemoryFlagStore({ flags: { 'new-checkout': guarded(QUERIES), 'slow-checkout': guarded(QUERIES), 'steady-checkout': guarded(QUERIES) }, clock });
      const sink = new RecordingSink();
      const url = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}/`;
      const prom = new PrometheusSource({ url, flags: store, sink, slotMs: SLOT_MS, clock, queryDelayMs: 0, maxConcurrentQueries: 2, headers: { authorization: 'Bearer s3cret' } });
      await prom.poll();
      expect(seen).toEqual(Array.from({ length: 9 }, () => 'Bearer s3cret'));
      expect(mostInFlight).toBeLessThanOrEqual(2);
      expect(sink.aggregates).toHaveLength(6);
      await prom.shutdown();
    } finally {
      gateway.closeAllConnections();
      await new Promise<void>((resolve) => gateway.close(() => resolve()));
    }
  });

  it('reports a Prometheus that is down, and one that does not answer within the timeout', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const downUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const down = source({ 'new-checkout': guarded(QUERIES) }, { url: downUrl });
    await down.prom.poll();
    expect(down.sink.aggregates).toEqual([]);
    expect(down.problems.problemsFor('new-checkout')[0]?.reason).toBe('query_failed');
    expect(down.problems.problemsFor('new-checkout')[0]?.message).toMatch(/cannot reach .*ECONNREFUSED/);

    const hung = source({ 'new-checkout': guarded(QUERIES) }, { url: `http://127.0.0.1:${(silent?.address() as AddressInfo).port}`, queryTimeoutMs: 200 });
    await hung.prom.poll();
    expect(hung.sink.aggregates).toEqual([]);
    expect(hung.problems.problemsFor('new-checkout')[0]?.reason).toBe('timeout');
    expect(hung.problems.problemsFor('new-checkout')[0]?.message).toContain('no answer within 200 ms');
    await Promise.all([down.prom.shutdown(), hung.prom.shutdown()]);
  });

  it('clears a problem once a later slot is delivered in full', async () => {
    const clock = new FakeClock(T0 + HISTORY_S * 1000 + 60_000);
    const s = source({ 'new-checkout': guarded(QUERIES) }, { clock });
    await s.prom.poll();
    expect(s.problems.problemsFor('new-checkout').map((p) => p.reason)).toEqual(['empty', 'empty']);
    clock.set(T0 + 200_000);
    await s.prom.poll();
    // The clock stepped back: the source waits for the new present, then goes on.
    clock.advance(SLOT_MS);
    await s.prom.poll();
    expect(s.problems.problemsFor('new-checkout')).toEqual([]);
    expect(s.sink.of('new-checkout').map((a) => a.atMs)).toEqual([T0 + 204_999, T0 + 204_999]);
    await s.prom.shutdown();
  });

  it('never lets a failed or empty query read as healthy or as a breach: the verdict says why it cannot judge', async () => {
    const clock = new FakeClock(T0 + 60_000);
    const flags = {
      'broken-query': guarded({ ...QUERIES, requests: 'sum by (variant) (rate(http_requests_total{flag="$flag"}[$__interval]' }),
      'quiet-checkout': guarded(QUERIES),
    };
    const store = new MemoryFlagStore({ flags, clock });
    const registry = new CohortRegistry({ slotMs: SLOT_MS, slotCount: 72 });
    const problems = new SourceProblems();
    const prom = new PrometheusSource({ url: (prometheus as PrometheusServer).url, flags: store, sink: new RecordingSink(), slotMs: SLOT_MS, problems, clock, queryDelayMs: 0 });
    const guardian = new RolloutGuardian({ source: store, writer: new StoreWriter(store, clock), registry, clock, sourceProblems: problems });
    const verdicts = new Set<string>();
    guardian.addListener({ decision: (s) => verdicts.add(s.judgment.verdict) });
    for (let slot = 0; slot < 24; slot++) {
      clock.advance(SLOT_MS);
      await prom.poll();
      await guardian.tick();
    }
    expect([...verdicts]).toEqual(['insufficient']);
    const reasons = new Map(guardian.status().map((s) => [s.flagKey, s.judgment.reason]));
    expect(reasons.get('broken-query')).toMatch(/^Prometheus query for requests failed: bad_data: .*; too few treatment requests/);
    expect(reasons.get('quiet-checkout')).toMatch(/^Prometheus query for requests returned no series: .*; too few treatment requests/);
    expect((await store.load()).state.get('quiet-checkout')?.rollback).toBeUndefined();
    await prom.shutdown();
    await guardian.shutdown();
  });

  it('through serve: rolls back a failing and a slow treatment on exact buckets, keeps a healthy one, and says which flag it cannot judge', async () => {
    const clock = new FakeClock(T0 + 60_000);
    const flags = { 'new-checkout': guarded(QUERIES), 'slow-checkout': guarded(QUERIES), 'steady-checkout': guarded(QUERIES), 'quiet-checkout': guarded(QUERIES) };
    const store = new MemoryFlagStore({ flags, clock });
    const server = await RolloutServer.start({ store, port: 0, clock, slotMs: SLOT_MS, autoTick: false, prometheus: { url: (prometheus as PrometheusServer).url, queryDelayMs: 0 } });
    try {
      const rollbacks: RollbackRecord[] = [];
      const verdicts = new Map<string, Set<string>>();
      server.guardian.addListener({
        rollback: (r) => rollbacks.push(r),
        decision: (d) => verdicts.set(d.flagKey, (verdicts.get(d.flagKey) ?? new Set()).add(d.judgment.verdict)),
      });
      const prom = server.prometheus as PrometheusSource;
      while (clock.now() < T0 + 300_000) {
        clock.advance(SLOT_MS);
        await prom.poll();
        await server.guardian.tick();
      }
      const decided = new Map(rollbacks.map((r) => [r.flagKey, r]));
      expect([...decided.keys()].sort()).toEqual(['new-checkout', 'slow-checkout']);
      expect(decided.get('new-checkout')?.reason).toMatch(/error rate 8\.00% over .* requests, limit 1\.00%/);
      // 500 ms is a bucket bound: the share slower than it is counted, not interpolated.
      const slow = decided.get('slow-checkout')?.evidence.check as { check: string; observed: number; interpolatedBetweenMs?: unknown };
      expect(slow.check).toBe('p95');
      expect(slow.observed).toBe(0.2);
      expect(slow.interpolatedBetweenMs).toBeUndefined();
      const snapshot = await store.load();
      expect(snapshot.state.get('new-checkout')?.rollback?.actor).toBe('rollout-guardian');
      expect(snapshot.state.get('steady-checkout')?.rollback).toBeUndefined();
      expect(snapshot.state.get('quiet-checkout')?.rollback).toBeUndefined();
      expect([...(verdicts.get('steady-checkout') ?? [])]).not.toContain('breaching');
      expect([...(verdicts.get('quiet-checkout') ?? [])]).toEqual(['insufficient']);

      const status = (await (await fetch(`${server.url}/api/status`)).json()) as ServerStatus;
      const view = new Map(status.flags.map((f) => [f.flag, f.guardian]));
      expect(view.get('steady-checkout')).toMatchObject({ verdict: 'healthy', treatment: { sources: ['prometheus'] } });
      expect(view.get('quiet-checkout')?.reason).toMatch(/^Prometheus query for requests returned no series: .*; too few treatment requests/);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const errors = (reason: string) => Number(new RegExp(`^${PROMETHEUS_NAMES.sourceErrors}\\{source="prometheus",reason="${reason}"[^}]*\\} (\\d+)`, 'm').exec(metrics)?.[1]);
      // Two empty answers (requests and latency) each slot for the quiet flag, nothing else.
      expect(errors('empty')).toBeGreaterThan(0);
      expect(errors('query_failed')).toBe(0);
      expect(errors('late')).toBe(0);
    } finally {
      await server.close();
    }
  });

  it('fills $__interval with the slot and $flag with the key, escaped for a PromQL string', () => {
    expect(fillQuery('increase(x{flag="$flag"}[$__interval]) / ${__interval}', 'a"b\\c', 5_000)).toBe('increase(x{flag="a\\"b\\\\c"}[5s]) / 5s');
    expect(fillQuery('increase(x{flag="${flag}"}[$__interval])', 'k', 1_500)).toBe('increase(x{flag="k"}[1500ms])');
  });
});

/**
 * A checkout service as an application would run it: real HTTP requests per flag and variant,
 * counted and timed, exposed on /metrics in the Prometheus text format for a real scrape. Every
 * `failEvery`th request of a failing cohort answers 500.
 */
function checkoutService(failEvery: Readonly<Record<string, number>>): { server: Server; metricsUrl: () => string; checkoutUrl: () => string } {
  const bounds = [0.005, 0.025, 0.1, 0.5, 1];
  const counts = new Map<string, { ok: number; failed: number; buckets: number[]; sum: number }>();
  const cohort = (flag: string, variant: string) => {
    const key = `${flag}/${variant}`;
    let c = counts.get(key);
    if (c === undefined) {
      c = { ok: 0, failed: 0, buckets: bounds.map(() => 0), sum: 0 };
      counts.set(key, c);
    }
    return c;
  };
  // Every series exists from the start, at 0, as client libraries create them: the first requests count.
  for (const flag of ['new-checkout', 'steady-checkout']) for (const variant of ['on', 'off']) cohort(flag, variant);
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname === '/metrics') {
      const lines = ['# TYPE http_requests_total counter'];
      for (const [key, c] of counts) {
        const [flag, variant] = key.split('/');
        lines.push(`http_requests_total{flag="${flag}",variant="${variant}",code="200"} ${c.ok}`, `http_requests_total{flag="${flag}",variant="${variant}",code="500"} ${c.failed}`);
      }
      lines.push('# TYPE http_request_duration_seconds histogram');
      for (const [key, c] of counts) {
        const [flag, variant] = key.split('/');
        const labels = `flag="${flag}",variant="${variant}"`;
        bounds.forEach((le, i) => lines.push(`http_request_duration_seconds_bucket{${labels},le="${le}"} ${c.buckets[i]}`));
        lines.push(`http_request_duration_seconds_bucket{${labels},le="+Inf"} ${c.ok + c.failed}`, `http_request_duration_seconds_sum{${labels}} ${c.sum}`, `http_request_duration_seconds_count{${labels}} ${c.ok + c.failed}`);
      }
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`${lines.join('\n')}\n`);
      return;
    }
    const started = process.hrtime.bigint();
    const flag = url.searchParams.get('flag') ?? '';
    const variant = url.searchParams.get('variant') ?? '';
    const c = cohort(flag, variant);
    const n = c.ok + c.failed + 1;
    const every = failEvery[`${flag}/${variant}`];
    const failed = every !== undefined && n % every === 0;
    response.writeHead(failed ? 500 : 200).end(failed ? 'payment service unavailable' : 'ok');
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (failed) c.failed++;
    else c.ok++;
    c.sum += seconds;
    bounds.forEach((le, i) => {
      if (seconds <= le) c.buckets[i] = (c.buckets[i] ?? 0) + 1;
    });
  });
  const base = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, metricsUrl: () => `${base()}/metrics`, checkoutUrl: () => `${base()}/checkout` };
}

describe('the Prometheus source against a real Prometheus scraping a real service', () => {
  const SCRAPE_SLOT_MS = 3_000;
  const PER_BURST = 75;
  const BURSTS = 4;
  const service = checkoutService({ 'new-checkout/on': 4 });
  let prometheus: PrometheusServer | undefined;

  beforeAll(async () => {
    await new Promise<void>((resolve) => service.server.listen(0, '127.0.0.1', resolve));
    prometheus = await startPrometheus({ target: service.metricsUrl(), scrapeIntervalS: 1 });
  }, 60_000);
  afterAll(async () => {
    await prometheus?.stop();
    service.server.closeAllConnections();
    await new Promise<void>((resolve) => service.server.close(() => resolve()));
  });

  it('rolls back the treatment failing one request in four and not the healthy one, on what Prometheus scraped', async () => {
    const prom = prometheus as PrometheusServer;
    await prom.nextScrape();
    // Prometheus stamps samples with its own clock: the guardian's fake clock is set to it, and
    // walked over the stored traffic slot by slot once all of it has been scraped.
    const fromMs = Date.now();
    for (let burst = 0; burst < BURSTS; burst++) {
      await Promise.all(
        ['new-checkout', 'steady-checkout'].flatMap((flag) =>
          ['on', 'off'].flatMap((variant) =>
            Array.from({ length: PER_BURST }, async () => {
              const response = await fetch(`${service.checkoutUrl()}?flag=${flag}&variant=${variant}`);
              await response.text();
            }),
          ),
        ),
      );
      await prom.nextScrape();
    }
    await prom.nextScrape();
    const toMs = Date.now();

    const clock = new FakeClock(Math.floor(fromMs / SCRAPE_SLOT_MS) * SCRAPE_SLOT_MS);
    const store = new MemoryFlagStore({ flags: { 'new-checkout': guarded(QUERIES), 'steady-checkout': guarded(QUERIES) }, clock });
    const registry = new CohortRegistry({ slotMs: SCRAPE_SLOT_MS, slotCount: 72 });
    const problems = new SourceProblems();
    const source = new PrometheusSource({ url: prom.url, flags: store, sink: registry, slotMs: SCRAPE_SLOT_MS, problems, clock, queryDelayMs: 0 });
    const guardian = new RolloutGuardian({ source: store, writer: new StoreWriter(store, clock), registry, clock, sourceProblems: problems });
    const rollbacks: RollbackRecord[] = [];
    const verdicts = new Map<string, Set<string>>();
    guardian.addListener({
      rollback: (r) => rollbacks.push(r),
      decision: (d) => verdicts.set(d.flagKey, (verdicts.get(d.flagKey) ?? new Set()).add(d.judgment.verdict)),
    });
    while (clock.now() + SCRAPE_SLOT_MS <= toMs) {
      clock.advance(SCRAPE_SLOT_MS);
      await source.poll();
      await guardian.tick();
    }
    // One more judgment, of the last slot queried; the next one has not been scraped.
    clock.advance(SCRAPE_SLOT_MS);
    await guardian.tick();
    await source.shutdown();
    await guardian.shutdown();

    expect(source.stats.delivered).toBeGreaterThan(0);
    expect(rollbacks.map((r) => r.flagKey), JSON.stringify({ statuses: guardian.status().map((st) => [st.flagKey, st.judgment.reason]), problems: problems.problemsFor('new-checkout') })).toEqual(['new-checkout']);
    expect(rollbacks[0]?.reason).toMatch(/error rate \d+\.\d\d% over [\d,]+ requests, limit 1\.00%/);
    expect((await store.load()).state.get('steady-checkout')?.rollback).toBeUndefined();
    expect([...(verdicts.get('steady-checkout') ?? [])]).not.toContain('breaching');
    expect([...(verdicts.get('steady-checkout') ?? [])]).not.toContain('rollback');
  });
});

describe('serve --prometheus-*', () => {
  it('says which flags name Prometheus queries when serve was given no Prometheus URL', async () => {
    const lines: string[] = [];
    const store = new MemoryFlagStore({ flags: { 'new-checkout': guarded(QUERIES) } });
    const server = await RolloutServer.start({ store, port: 0, autoTick: false, log: (line) => lines.push(line) });
    await server.close();
    expect(server.prometheus).toBeUndefined();
    expect(lines).toContain('new-checkout: guard.prometheus is set but no Prometheus URL is (give --prometheus-url URL); these guards get no numbers from Prometheus');
  });

  it('refuses a Prometheus URL, header or option it cannot use, with what to type instead', async () => {
    const badUrl = await runCliIn(process.cwd(), ['serve', '--prometheus-url', 'prometheus:9090']);
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toContain('"prometheus:9090" is not an http(s) URL; give Prometheus\' base URL such as http://prometheus:9090');
    const badHeader = await runCliIn(process.cwd(), ['serve', '--prometheus-url', 'http://127.0.0.1:9090', '--prometheus-header', 'X-Scope-OrgID=payments']);
    expect(badHeader.code).toBe(2);
    expect(badHeader.stderr).toContain('"X-Scope-OrgID=payments" is not a header; write it like "X-Scope-OrgID: tenant-1"');
    const noUrl = await runCliIn(process.cwd(), ['serve', '--prometheus-query-delay', '30s']);
    expect(noUrl.code).toBe(1);
    expect(noUrl.stderr).toContain('the --prometheus-* options need --prometheus-url URL');
  });
});
