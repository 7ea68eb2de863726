// The committed Grafana dashboards as files: what the generator builds, a JSON model Grafana
// imports, data sources only through the variable, and names only from src/telemetry/names.ts
// that a real exporter emits.
import { readFileSync } from 'node:fs';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildDashboards, renderDashboard } from '../../scripts/build-dashboards.js';
import { CohortRegistry } from '../../src/guardian/cohort-registry.js';
import { RolloutGuardian } from '../../src/guardian/rollout-guardian.js';
import { MemoryFlagStore } from '../../src/stores/memory-store.js';
import { PlanWriter } from '../../src/deploy/plan-writer.js';
import { planSteps } from '../../src/deploy/plan.js';
import { StoreWriter } from '../../src/stores/store-writer.js';
import { GuardianTelemetry } from '../../src/telemetry/guardian-telemetry.js';
import { METER_NAME, PROMETHEUS_LABELS, PROMETHEUS_NAMES } from '../../src/telemetry/names.js';
import { startPrometheusEndpoint } from '../../src/telemetry/prometheus-endpoint.js';
import { FakeClock } from '../helpers/fake-clock.js';
import {
  DASHBOARDS_DIR,
  type DashboardFile,
  type JsonObject,
  annotationsOf,
  isObject,
  labelNamesIn,
  loadDashboards,
  metricNamesIn,
  objects,
  panelsOf,
  queriesOf,
  templateLabels,
  variablesOf,
} from './dashboard-queries.js';

const DASHBOARDS = loadDashboards();
const DATASOURCE_REF = { type: 'prometheus', uid: '${datasource}' };
const KNOWN_METRICS = new Set<string>(Object.values(PROMETHEUS_NAMES));
const KNOWN_LABELS = new Set<string>(Object.values(PROMETHEUS_LABELS));

/** Every `key` in the model, wherever it is nested, with the path to it. */
function findKeys(value: unknown, key: string, path = '$'): { path: string; value: unknown }[] {
  if (Array.isArray(value)) return value.flatMap((item, i) => findKeys(item, key, `${path}[${i}]`));
  if (!isObject(value)) return [];
  return Object.entries(value).flatMap(([k, v]) => [...(k === key ? [{ path: `${path}.${k}`, value: v }] : []), ...findKeys(v, key, `${path}.${k}`)]);
}

function expressions(dashboard: DashboardFile): string[] {
  return queriesOf(dashboard).map((q) => (q.kind === 'label-values' ? q.metric : q.expr));
}

/**
 * The metric names a real PrometheusExporter prints for a GuardianTelemetry that has counted
 * evaluations and judged a flag into a rollback: every series the dashboards can ask for.
 */
async function emittedMetricNames(): Promise<Set<string>> {
  const clock = new FakeClock();
  const endpoint = await startPrometheusEndpoint({ port: 0 });
  const meterProvider = new MeterProvider({ readers: [endpoint.reader] });
  const flag = 'new-checkout';
  const store = new MemoryFlagStore({ flags: { [flag]: { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: 20 }, guard: { fastPath: true } } }, clock });
  const slotMs = 5_000;
  const registry = new CohortRegistry({ slotMs, slotCount: 61 });
  const guardian = new RolloutGuardian({ source: store, writer: new StoreWriter(store, clock), registry, clock });
  const processorStats = () => ({ recordedOutcomes: 1, droppedExposures: 0, droppedTraces: 0, internalErrors: 0 });
  await new PlanWriter(store, clock).deploy(flag, 'custom', planSteps('custom', { steps: [20, 100], stepDurationMs: 3_600_000 }), { actor: 'sre', reason: 'release' });
  const telemetry = new GuardianTelemetry({ meter: meterProvider.getMeter(METER_NAME), registry, guardian, clock, processorStats, plans: store });
  try {
    telemetry.recordEvaluation(flag, 'on', 'SPLIT');
    let rolledBack = false;
    guardian.addListener({ rollback: () => (rolledBack = true) });
    // Half the treatment's requests fail: an overwhelming breach, rolled back within a few ticks.
    for (let slot = 0; slot < 5 && !rolledBack; slot++) {
      for (let i = 0; i < 100; i++) {
        registry.record(flag, 'on', 100, i % 2 === 0, clock.now() + i);
        registry.record(flag, 'off', 20, false, clock.now() + i);
      }
      clock.advance(slotMs);
      await guardian.tick();
    }
    expect(rolledBack).toBe(true);
    const text = await (await fetch(endpoint.url)).text();
    return new Set([...text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)].map((m) => m[1] as string));
  } finally {
    telemetry.shutdown();
    await guardian.shutdown();
    await meterProvider.shutdown();
    await endpoint.close();
  }
}

describe('the committed dashboards', () => {
  it('are exactly what scripts/build-dashboards.ts builds (regenerate with npm run dashboards)', () => {
    const built = buildDashboards();
    expect(DASHBOARDS.map((d) => d.file)).toEqual(Object.keys(built).sort());
    for (const [file, model] of Object.entries(built)) expect(readFileSync(new URL(file, DASHBOARDS_DIR), 'utf8'), file).toBe(renderDashboard(model));
  });

  it('have distinct uids and titles', () => {
    expect(new Set(DASHBOARDS.map((d) => d.model.uid)).size).toBe(DASHBOARDS.length);
    expect(new Set(DASHBOARDS.map((d) => d.model.title)).size).toBe(DASHBOARDS.length);
  });
});

describe.each(DASHBOARDS)('$file', (dashboard) => {
  const model = dashboard.model;
  const panels = panelsOf(model);

  it('is a Grafana JSON model of the current schema, importable through the UI and by provisioning', () => {
    expect(model).toMatchObject({ id: null, editable: true });
    expect(typeof model.title).toBe('string');
    expect(model.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(model.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(model.time).toEqual({ from: 'now-1h', to: 'now' });
    expect(model.refresh).toBe('10s');
    // UI import asks for the Prometheus to use; provisioning leaves the variable to pick one.
    expect(model.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })]);
    const required = objects(model.__requires).map((r) => `${String(r.type)}:${String(r.id)}`);
    expect(required).toEqual(expect.arrayContaining(['grafana:grafana', 'datasource:prometheus']));
    const panelTypes = new Set(panels.map((p) => p.type).filter((t) => t !== 'row'));
    for (const type of panelTypes) expect(required, `__requires lists panel ${String(type)}`).toContain(`panel:${String(type)}`);
  });

  it('has panels with unique ids, a place on the 24-column grid that no other panel takes, and targets with unique refIds', () => {
    expect(panels.length).toBeGreaterThan(0);
    const ids = panels.map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    const taken = new Map<string, unknown>();
    for (const panel of panels) {
      expect(typeof panel.title, `panel ${String(panel.id)} title`).toBe('string');
      const grid = panel.gridPos as JsonObject;
      expect(Object.keys(grid).sort(), `panel ${String(panel.id)} gridPos`).toEqual(['h', 'w', 'x', 'y']);
      const { h, w, x, y } = grid as { h: number; w: number; x: number; y: number };
      expect([h, w, x, y].every((n) => Number.isInteger(n)), `panel ${String(panel.id)} gridPos`).toBe(true);
      expect(x >= 0 && w >= 1 && x + w <= 24 && h >= 1 && y >= 0, `panel ${String(panel.id)} ${JSON.stringify(grid)}`).toBe(true);
      for (let row = y; row < y + h; row++) {
        for (let col = x; col < x + w; col++) {
          expect(taken.get(`${row},${col}`), `panels ${String(taken.get(`${row},${col}`))} and ${String(panel.id)} overlap`).toBeUndefined();
          taken.set(`${row},${col}`, panel.id);
        }
      }
      if (panel.type === 'row') continue;
      const targets = objects(panel.targets);
      expect(targets.length, `panel ${String(panel.id)} has targets`).toBeGreaterThan(0);
      expect(new Set(targets.map((t) => t.refId)).size).toBe(targets.length);
      for (const target of targets) {
        expect(target.refId).toMatch(/^[A-Z]$/);
        expect(typeof target.expr).toBe('string');
        expect(typeof target.legendFormat).toBe('string');
      }
    }
  });

  it('reaches Prometheus only through the datasource variable: no data source uid is written anywhere', () => {
    const variables = variablesOf(model);
    expect(variables.find((v) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus', current: { value: '${DS_PROMETHEUS}' } });
    const references = findKeys(model, 'datasource');
    // Every panel and target, the flag variable and the annotation: nothing left to Grafana's default.
    const queried = panels.filter((p) => p.type !== 'row').length + panels.flatMap((p) => objects(p.targets)).length + variables.filter((v) => v.type === 'query').length + annotationsOf(model).length;
    expect(references).toHaveLength(queried);
    for (const reference of references) expect(reference.value, reference.path).toEqual(DATASOURCE_REF);
    for (const uid of findKeys(model, 'uid')) {
      if (uid.path === '$.uid') continue;
      expect(uid.value, uid.path).toBe('${datasource}');
    }
  });

  it('has a flag variable filled from the guardian metrics and a rollback annotation with its reason', () => {
    const flag = variablesOf(model).find((v) => v.name === 'flag');
    expect(flag).toMatchObject({ type: 'query', refresh: 2, definition: `label_values(${PROMETHEUS_NAMES.rolloutPercentage}, ${PROMETHEUS_LABELS['feature_flag.key']})` });
    const [annotation, ...others] = annotationsOf(model);
    expect(others).toEqual([]);
    expect(annotation).toMatchObject({ name: 'Rollbacks', enable: true });
    expect(String(annotation?.expr)).toContain(PROMETHEUS_NAMES.rollbacks);
    expect(templateLabels(`${String(annotation?.titleFormat)} ${String(annotation?.textFormat)}`)).toEqual(
      expect.arrayContaining([PROMETHEUS_LABELS['feature_flag.key'], PROMETHEUS_LABELS.reason, PROMETHEUS_LABELS.check]),
    );
  });

  it('names only metrics and labels from src/telemetry/names.ts, in every expression, legend and annotation', () => {
    for (const expr of expressions(dashboard)) {
      const metrics = metricNamesIn(expr);
      expect(metrics.length, expr).toBeGreaterThan(0);
      for (const metric of metrics) expect(KNOWN_METRICS, `${metric} in ${expr}`).toContain(metric);
      for (const label of labelNamesIn(expr)) expect(KNOWN_LABELS, `${label} in ${expr}`).toContain(label);
    }
    const templates = [
      ...panels.flatMap((p) => objects(p.targets).map((t) => String(t.legendFormat))),
      ...annotationsOf(model).flatMap((a) => [String(a.titleFormat), String(a.textFormat), ...String(a.tagKeys).split(',')]),
    ];
    for (const label of templates.flatMap((t) => templateLabels(t))) expect(KNOWN_LABELS).toContain(label);
  });
});

describe('metric names in the dashboards and their README', () => {
  let emitted: Set<string>;
  beforeAll(async () => {
    emitted = await emittedMetricNames();
  });

  it('are all printed by a real Prometheus exporter fed by GuardianTelemetry', () => {
    const used = new Set(DASHBOARDS.flatMap((d) => expressions(d).flatMap((e) => metricNamesIn(e))));
    expect(used.size).toBeGreaterThan(5);
    for (const name of used) expect(emitted, name).toContain(name);
  });

  it('in dashboards/README.md are names the exporter prints', () => {
    const readme = readFileSync(new URL('README.md', DASHBOARDS_DIR), 'utf8');
    for (const [name] of readme.matchAll(/\brollout_guardian_[a-z0-9_]+/g)) expect(emitted, name).toContain(name);
  });
});
