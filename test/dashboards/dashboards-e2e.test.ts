// Every query of the bundled dashboards, run against a real Prometheus that scraped the demo
// checkout service every second through a rollout and a rollback: each must come back with
// data, as a panel would show it on import. promtool parses every expression as well.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_FLAG, type Demo, startDemo } from '../../examples/demo/demo-service.js';
import type { Verdict } from '../../src/guardian/judge.js';
import type { RollbackRecord } from '../../src/guardian/rollout-guardian.js';
import { PROMETHEUS_LABELS, PROMETHEUS_NAMES } from '../../src/telemetry/names.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { type PrometheusServer, findExecutable, promtoolCheckExpressions, startPrometheus } from '../helpers/prometheus-server.js';
import { type DashboardQuery, loadDashboards, metricNamesIn, queriesOf } from './dashboard-queries.js';

const START = Date.parse('2026-11-27T12:00:00Z');
const PER_SECOND = 24;
const SCRAPE_INTERVAL_S = 1;
const STEP_S = 1;
const FLAG_LABEL = PROMETHEUS_LABELS['feature_flag.key'];
const QUERIES = loadDashboards().flatMap((d) => queriesOf(d));
const PROMTOOL = findExecutable('promtool');

/**
 * The dashboards' variables as Grafana fills them for a range query of this step: the flag, and
 * $__rate_interval as Grafana computes it from the data source's scrape interval,
 * max(step + scrape interval, 4 x scrape interval).
 */
function substitute(expr: string, rangeS: number): string {
  const rateIntervalS = Math.max(STEP_S + SCRAPE_INTERVAL_S, 4 * SCRAPE_INTERVAL_S);
  const filled = expr
    .replaceAll(/\$\{?flag\}?/g, DEMO_FLAG)
    .replaceAll(/\$\{?__rate_interval\}?/g, `${rateIntervalS}s`)
    .replaceAll(/\$\{?__interval\}?/g, `${STEP_S}s`)
    .replaceAll(/\$\{?__range\}?/g, `${Math.ceil(rangeS)}s`);
  if (filled.includes('$')) throw new Error(`a variable is left in ${filled}`);
  return filled;
}

describe('the dashboards against a real Prometheus scraping the demo service', () => {
  const clock = new FakeClock(START);
  const rollbacks: RollbackRecord[] = [];
  let demo: Demo | undefined;
  let prometheus: PrometheusServer | undefined;
  let user = 0;

  beforeAll(async () => {
    demo = await startDemo({ clock, autoTick: false, workMs: () => 0 });
    demo.guardian.addListener({ rollback: (r) => rollbacks.push(r) });
    prometheus = await startPrometheus({ target: demo.metricsUrl, job: 'rollout-guardian-demo', scrapeIntervalS: SCRAPE_INTERVAL_S });
  }, 30_000);
  afterAll(async () => {
    await prometheus?.stop();
    await demo?.close();
  });

  /** One virtual second: a burst of real requests, then the clock moves and the guardian looks. */
  async function second(service: Demo): Promise<void> {
    await Promise.all(
      Array.from({ length: PER_SECOND }, async () => {
        const response = await fetch(`${service.serviceUrl}/checkout?user=user-${user++}`);
        await response.text();
      }),
    );
    clock.advance(1000);
    await service.guardian.tick();
  }

  function verdict(service: Demo): Verdict | undefined {
    return service.guardian.status().find((s) => s.flagKey === DEMO_FLAG)?.judgment.verdict;
  }

  it(
    'answers every panel, variable and annotation query with data after a rollout and its rollback',
    async () => {
      const service = demo as Demo;
      const prom = prometheus as PrometheusServer;
      const startS = Date.now() / 1000;

      // Virtual time runs far faster than Prometheus scrapes, so the test waits for a scrape
      // every few virtual seconds and whenever the verdict changes: each state the panels show
      // (healthy, breaching, rolled back) is in Prometheus's storage, as it would be in production.
      for (let s = 0; s < 20; s++) {
        await second(service);
        if (s % 4 === 3) await prom.nextScrape();
      }
      expect(rollbacks).toEqual([]);

      service.setTreatmentFault({ errorRate: 0.5, extraLatencyMs: 50 });
      let seen = verdict(service);
      for (let s = 0; s < 40 && rollbacks.length === 0; s++) {
        await second(service);
        const now = verdict(service);
        if (now !== seen || s % 4 === 3) await prom.nextScrape();
        seen = now;
      }
      expect(rollbacks).toMatchObject([{ flagKey: DEMO_FLAG, cause: 'breach' }]);

      // The baseline serves everyone now; Prometheus must hold the rollback and the 0%.
      for (let s = 0; s < 3; s++) await second(service);
      const flag = `${FLAG_LABEL}="${DEMO_FLAG}"`;
      await prom.waitFor(`${PROMETHEUS_NAMES.rollbacks}{${flag}}`, (samples) => samples.length === 1, 20_000);
      await prom.waitFor(`${PROMETHEUS_NAMES.rolloutPercentage}{${flag}} == 0`, (samples) => samples.length === 1, 20_000);
      // Once the rollback has landed the guardian no longer judges the flag: every verdict 0.
      await prom.waitFor(`max(${PROMETHEUS_NAMES.verdict}{${flag}}) == 0`, (samples) => samples.length === 1, 20_000);
      // One step on, so the range's last point sees the last scrape.
      const endS = Date.now() / 1000 + STEP_S;

      const empty: string[] = [];
      const shown = new Map<DashboardQuery, number[]>();
      for (const query of QUERIES) {
        const text = `${query.where}: ${query.kind === 'label-values' ? `label_values(${query.metric}, ${query.label})` : query.expr}`;
        try {
          const values = await answer(prom, query, startS, endS);
          shown.set(query, values);
          if (values.length === 0) empty.push(text);
        } catch (err) {
          empty.push(`${text}: ${String(err)}`);
        }
      }
      expect(QUERIES.length).toBeGreaterThan(10);
      expect(empty, 'queries that came back without data').toEqual([]);

      // And the panels tell what happened: 50% then 0%, a breach, the verdict moving through
      // breaching and rollback to not judged, the treatment's error rate above its limit line.
      const values = (metric: string) => [...shown].filter(([q]) => q.kind === 'range' && metricNamesIn(q.expr).every((m) => m === metric)).flatMap(([, v]) => v);
      expect(new Set(values(PROMETHEUS_NAMES.rolloutPercentage))).toEqual(new Set([50, 0]));
      expect(values(PROMETHEUS_NAMES.breach)).toContain(1);
      expect(values(PROMETHEUS_NAMES.verdict)).toEqual(expect.arrayContaining([0, 4, 5]));
      expect(Math.max(...values(PROMETHEUS_NAMES.cohortErrorRate))).toBeGreaterThan(Math.max(...values(PROMETHEUS_NAMES.guardMaxErrorRate)));
    },
    60_000,
  );

  it.skipIf(PROMTOOL === undefined)('has expressions that promtool parses, variables filled', async () => {
    const expressions = QUERIES.flatMap((q) => (q.kind === 'label-values' ? [q.metric] : [substitute(q.expr, 3600)]));
    expect(await promtoolCheckExpressions(PROMTOOL as string, expressions)).toBeUndefined();
  });
});

/**
 * Runs a dashboard query as Grafana would over [startS, endS] and returns what a panel would
 * draw: the finite values (NaN is a gap), the annotation's events (points above 0) for the demo
 * flag, or 1 when the variable would offer the demo flag. Empty: nothing to show.
 */
async function answer(prometheus: PrometheusServer, query: DashboardQuery, startS: number, endS: number): Promise<number[]> {
  if (query.kind === 'label-values') return (await prometheus.labelValues(query.label, query.metric, startS, endS)).includes(DEMO_FLAG) ? [1] : [];
  const series = await prometheus.queryRange(substitute(query.expr, endS - startS), startS, endS, STEP_S);
  const drawn = query.kind === 'annotation' ? series.filter((s) => s.metric[FLAG_LABEL] === DEMO_FLAG) : series;
  return drawn.flatMap((s) => s.values.map(([, value]) => Number(value))).filter((v) => Number.isFinite(v) && (query.kind !== 'annotation' || v > 0));
}
