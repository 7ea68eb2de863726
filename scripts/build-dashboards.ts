// Builds the Grafana dashboards in dashboards/ (`npm run dashboards`) from the metric and label
// names in src/telemetry/names.ts, so no query types a name twice. Tests check the committed
// files are what this builds and run every query they hold against a real Prometheus.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Verdict } from '../src/guardian/judge.js';
import { PROMETHEUS_LABELS, PROMETHEUS_NAMES, VERDICTS } from '../src/telemetry/names.js';

/** Every panel, target, variable and annotation points at the dashboard's `datasource` variable. */
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' } as const;
/** The input Grafana's import UI asks for; it becomes the `datasource` variable's first choice. */
const DATASOURCE_INPUT = 'DS_PROMETHEUS';
const OVERVIEW_UID = 'rollout-guardian-overview';
const COHORTS_UID = 'rollout-guardian-cohorts';
// Grafana 12's classic JSON model; older versions load it as is (they only migrate upwards).
const SCHEMA_VERSION = 41;
const TAG = 'rollout-guardian';

type DatasourceRef = typeof DATASOURCE;

interface Target {
  readonly datasource: DatasourceRef;
  readonly editorMode: 'code';
  readonly expr: string;
  readonly legendFormat: string;
  readonly range: true;
  readonly refId: string;
}

interface GridPos {
  readonly h: number;
  readonly w: number;
  readonly x: number;
  readonly y: number;
}

interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly gridPos: GridPos;
  readonly [field: string]: unknown;
}

export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly schemaVersion: number;
  readonly panels: readonly Panel[];
  readonly [field: string]: unknown;
}

const N = PROMETHEUS_NAMES;
const FLAG = PROMETHEUS_LABELS['feature_flag.key'];
const VARIANT = PROMETHEUS_LABELS.variant;
const REASON = PROMETHEUS_LABELS.reason;
const CHECK = PROMETHEUS_LABELS.check;
const VERDICT = PROMETHEUS_LABELS.verdict;

/** `metric{matchers}`. */
function sel(metric: string, ...matchers: string[]): string {
  return `${metric}{${matchers.join(',')}}`;
}

/** The overview follows any number of flags (`$flag` is multi-valued, All is `.+`); the cohorts dashboard one. */
const SOME_FLAGS = `${FLAG}=~"$flag"`;
const ONE_FLAG = `${FLAG}="$flag"`;

// The verdict state set (one series per verdict, 1 for the current one) folded into one number
// per flag, so a state timeline shows one row per flag. Across instances the highest code wins:
// the codes rise with trouble, so one instance breaching shows as breaching. 0: not judged,
// which is what a flag is once its rollback has landed.
const VERDICT_STATES: Record<Verdict, { readonly code: number; readonly color: string }> = {
  healthy: { code: 1, color: 'green' },
  watching: { code: 2, color: 'yellow' },
  insufficient: { code: 3, color: 'blue' },
  breaching: { code: 4, color: 'orange' },
  rollback: { code: 5, color: 'red' },
};
const NOT_JUDGED = { code: 0, text: 'not judged', color: 'text' };

function verdictCode(flagMatcher: string): string {
  const terms = VERDICTS.map((verdict) => `${sel(N.verdict, flagMatcher, `${VERDICT}="${verdict}"`)} * ${VERDICT_STATES[verdict].code}`);
  return `max by (${FLAG}) (${terms.join(' or ')})`;
}

function verdictMappings(): unknown[] {
  const options: Record<string, { color: string; index: number; text: string }> = { [NOT_JUDGED.code]: { color: NOT_JUDGED.color, index: 0, text: NOT_JUDGED.text } };
  const byCode = [...VERDICTS].sort((a, b) => VERDICT_STATES[a].code - VERDICT_STATES[b].code);
  byCode.forEach((verdict, i) => {
    options[VERDICT_STATES[verdict].code] = { color: VERDICT_STATES[verdict].color, index: i + 1, text: verdict };
  });
  return [{ type: 'value', options }];
}

/**
 * Rollbacks as events. The counter series is born at 1 when the first rollback of a flag lands,
 * and increase() cannot see a series' first sample, so a new series counts too. Comparing with
 * the value one step ago marks each rollback at exactly one step, whatever the scrape interval.
 */
function rollbackEvents(flagMatcher: string): string {
  const rollbacks = sel(N.rollbacks, flagMatcher);
  return `sum by (${FLAG}, ${REASON}, ${CHECK}) ((${rollbacks} - ${rollbacks} offset $__interval) > 0 or (${rollbacks} unless ${rollbacks} offset $__interval))`;
}

interface Query {
  readonly expr: string;
  readonly legend: string;
}

/** A, B, C...: Grafana's names for a panel's queries, in order. */
function refId(index: number): string {
  return String.fromCharCode(65 + index);
}

function targets(queries: readonly Query[]): Target[] {
  return queries.map((q, i) => ({ datasource: DATASOURCE, editorMode: 'code', expr: q.expr, legendFormat: q.legend, range: true, refId: refId(i) }));
}

/** A panel before layout: the layout gives it its id and place. */
interface PanelSpec {
  readonly width: number;
  build(): Record<string, unknown> & { readonly type: string; readonly title: string };
}

interface TimeseriesOptions {
  readonly title: string;
  readonly description: string;
  readonly queries: readonly Query[];
  readonly unit: string;
  readonly min?: number;
  readonly max?: number;
  readonly axisLabel?: string;
  readonly step?: boolean;
  /** Queries (by index) that are a guard limit: a dashed red line, not a cohort. */
  readonly limits?: readonly number[];
  readonly links?: readonly unknown[];
}

function timeseries(width: number, o: TimeseriesOptions): PanelSpec {
  const overrides = (o.limits ?? []).map((i) => ({
    matcher: { id: 'byFrameRefID', options: refId(i) },
    properties: [
      { id: 'color', value: { fixedColor: 'red', mode: 'fixed' } },
      { id: 'custom.lineStyle', value: { dash: [10, 10], fill: 'dash' } },
      { id: 'custom.lineWidth', value: 2 },
      { id: 'custom.fillOpacity', value: 0 },
    ],
  }));
  return {
    width,
    build: () => ({
      datasource: DATASOURCE,
      description: o.description,
      fieldConfig: {
        defaults: {
          color: { mode: 'palette-classic' },
          custom: {
            axisLabel: o.axisLabel ?? '',
            axisPlacement: 'auto',
            drawStyle: 'line',
            fillOpacity: 10,
            gradientMode: 'none',
            lineInterpolation: o.step === true ? 'stepAfter' : 'linear',
            lineWidth: 1,
            pointSize: 4,
            showPoints: 'never',
            spanNulls: false,
            stacking: { group: 'A', mode: 'none' },
            thresholdsStyle: { mode: 'off' },
          },
          links: o.links ?? [],
          ...(o.min === undefined ? {} : { min: o.min }),
          ...(o.max === undefined ? {} : { max: o.max }),
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
          unit: o.unit,
        },
        overrides,
      },
      options: {
        legend: { calcs: [], displayMode: 'list', placement: 'bottom', showLegend: true },
        tooltip: { mode: 'multi', sort: 'none' },
      },
      targets: targets(o.queries),
      title: o.title,
      type: 'timeseries',
    }),
  };
}

interface StateTimelineOptions {
  readonly title: string;
  readonly description: string;
  readonly queries: readonly Query[];
  readonly mappings: readonly unknown[];
}

function stateTimeline(width: number, o: StateTimelineOptions): PanelSpec {
  return {
    width,
    build: () => ({
      datasource: DATASOURCE,
      description: o.description,
      fieldConfig: {
        defaults: {
          color: { mode: 'thresholds' },
          custom: { fillOpacity: 80, lineWidth: 0 },
          mappings: o.mappings,
          thresholds: { mode: 'absolute', steps: [{ color: 'text', value: null }] },
        },
        overrides: [],
      },
      options: {
        alignValue: 'left',
        legend: { displayMode: 'list', placement: 'bottom', showLegend: false },
        mergeValues: true,
        rowHeight: 0.9,
        showValue: 'auto',
        tooltip: { mode: 'single', sort: 'none' },
      },
      targets: targets(o.queries),
      title: o.title,
      type: 'state-timeline',
    }),
  };
}

interface StatOptions {
  readonly title: string;
  readonly description: string;
  readonly query: Query;
  readonly unit: string;
  /** Values from which the stat turns each colour, from green upwards. */
  readonly steps: readonly { readonly color: string; readonly value: number }[];
}

function stat(width: number, o: StatOptions): PanelSpec {
  return {
    width,
    build: () => ({
      datasource: DATASOURCE,
      description: o.description,
      fieldConfig: {
        defaults: {
          color: { mode: 'thresholds' },
          mappings: [],
          thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }, ...o.steps] },
          unit: o.unit,
        },
        overrides: [],
      },
      options: {
        colorMode: 'background',
        graphMode: 'area',
        justifyMode: 'auto',
        orientation: 'auto',
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        textMode: 'auto',
      },
      targets: targets([o.query]),
      title: o.title,
      type: 'stat',
    }),
  };
}

interface Row {
  readonly title: string;
  readonly height: number;
  readonly panels: readonly PanelSpec[];
}

/** Rows top to bottom, panels left to right; ids in reading order. */
function layout(rows: readonly Row[]): Panel[] {
  const panels: Panel[] = [];
  let id = 1;
  let y = 0;
  for (const row of rows) {
    panels.push({ collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, id: id++, panels: [], title: row.title, type: 'row' });
    y += 1;
    let x = 0;
    for (const spec of row.panels) {
      if (x + spec.width > 24) throw new Error(`build-dashboards: row "${row.title}" is wider than 24 columns`);
      panels.push({ ...spec.build(), gridPos: { h: row.height, w: spec.width, x, y }, id: id++ });
      x += spec.width;
    }
    y += row.height;
  }
  return panels;
}

const PANEL_NAMES: Record<string, string> = { timeseries: 'Time series', 'state-timeline': 'State timeline', stat: 'Stat' };

function flagVariable(multi: boolean): Record<string, unknown> {
  const definition = `label_values(${N.rolloutPercentage}, ${FLAG})`;
  return {
    ...(multi ? { allValue: '.+' } : {}),
    current: {},
    datasource: DATASOURCE,
    definition,
    description: 'Guarded flags: those the guardian reports a rollout percentage for.',
    hide: 0,
    includeAll: multi,
    label: 'Flag',
    multi,
    name: 'flag',
    options: [],
    query: { query: definition, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    refresh: 2,
    regex: '',
    skipUrlSync: false,
    sort: 1,
    type: 'query',
  };
}

function dashboard(o: { uid: string; title: string; description: string; flagMatcher: string; multiFlag: boolean; rows: readonly Row[] }): Dashboard {
  const panels = layout(o.rows);
  const panelTypes = [...new Set(panels.map((p) => p.type).filter((t) => t !== 'row'))].sort();
  return {
    __inputs: [{ description: 'The Prometheus that scrapes rollout-guardian', label: 'Prometheus', name: DATASOURCE_INPUT, pluginId: 'prometheus', pluginName: 'Prometheus', type: 'datasource' }],
    __elements: {},
    __requires: [
      { id: 'grafana', name: 'Grafana', type: 'grafana', version: '11.0.0' },
      { id: 'prometheus', name: 'Prometheus', type: 'datasource', version: '1.0.0' },
      ...panelTypes.map((type) => ({ id: type, name: PANEL_NAMES[type] ?? type, type: 'panel', version: '' })),
    ],
    annotations: {
      list: [
        {
          datasource: DATASOURCE,
          enable: true,
          expr: rollbackEvents(o.flagMatcher),
          hide: false,
          iconColor: 'red',
          name: 'Rollbacks',
          // The least step Grafana uses; $__interval in the expression is the step it does use.
          step: '15s',
          tagKeys: [FLAG, REASON, CHECK].join(','),
          textFormat: `cause: {{${REASON}}}, deciding check: {{${CHECK}}}`,
          titleFormat: `rollout-guardian rolled back {{${FLAG}}}`,
          useValueForTime: false,
        },
      ],
    },
    description: o.description,
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    id: null,
    links: [{ asDropdown: false, icon: 'external link', includeVars: true, keepTime: true, tags: [TAG], targetBlank: false, title: 'rollout-guardian', tooltip: '', type: 'dashboards', url: '' }],
    panels,
    refresh: '10s',
    schemaVersion: SCHEMA_VERSION,
    tags: [TAG, 'feature-flags', 'openfeature'],
    templating: {
      list: [
        {
          current: { text: `\${${DATASOURCE_INPUT}}`, value: `\${${DATASOURCE_INPUT}}` },
          hide: 0,
          includeAll: false,
          label: 'Data source',
          multi: false,
          name: 'datasource',
          options: [],
          query: 'prometheus',
          refresh: 1,
          regex: '',
          skipUrlSync: false,
          type: 'datasource',
        },
        flagVariable(o.multiFlag),
      ],
    },
    time: { from: 'now-1h', to: 'now' },
    timepicker: {},
    timezone: 'browser',
    title: o.title,
    uid: o.uid,
    version: 1,
    weekStart: '',
  };
}

/** From a flag's series to the cohorts of that flag, keeping the data source and time range. */
const TO_COHORTS = [{ title: `Guardian cohorts of \${__field.labels.${FLAG}}`, url: `/d/${COHORTS_UID}?var-flag=\${__field.labels.${FLAG}}&\${datasource:queryparam}&\${__url_time_range}` }];

function rolloutsOverview(): Dashboard {
  const f = SOME_FLAGS;
  const perSecond = (metric: string) => `sum(rate(${metric}[$__rate_interval]))`;
  return dashboard({
    uid: OVERVIEW_UID,
    title: 'rollout-guardian / Rollouts overview',
    description: 'Every guarded flag: how far it is rolled out, what the guardian thinks of it, and its rollbacks.',
    flagMatcher: f,
    multiFlag: true,
    rows: [
      {
        title: 'Rollouts',
        height: 8,
        panels: [
          timeseries(8, {
            title: 'Rollout percentage',
            description: "Share of traffic each flag sends to its treatment variant. It drops to 0 when the guardian's rollback lands. Red annotations mark rollbacks.",
            queries: [{ expr: `max by (${FLAG}) (${sel(N.rolloutPercentage, f)})`, legend: `{{${FLAG}}}` }],
            unit: 'percent',
            min: 0,
            max: 100,
            step: true,
            links: TO_COHORTS,
          }),
          timeseries(8, {
            title: 'Plan step',
            description: "The step each flag's deployment plan is at (1 is the first). It climbs only while the guardian judges the step healthy; it stops where a pause, an abort or a rollback left it. See rollout-guardian status for the step's percentage and the next step's time.",
            queries: [{ expr: `max by (${FLAG}) (${sel(N.planStep, f)})`, legend: `{{${FLAG}}}` }],
            unit: 'short',
            min: 0,
            step: true,
            links: TO_COHORTS,
          }),
          stateTimeline(8, {
            title: 'Guardian verdict',
            description: 'What the guardian concluded about each flag on its last look. Across instances the most troubled verdict shows. "not judged": the flag is not guarded, or its rollback has landed.',
            queries: [{ expr: verdictCode(f), legend: `{{${FLAG}}}` }],
            mappings: verdictMappings(),
          }),
        ],
      },
      {
        title: 'Evaluations',
        height: 8,
        panels: [
          timeseries(24, {
            title: 'Evaluations by variant and reason',
            description: 'Flag evaluations per second answered by the provider, by flag, variant and OpenFeature reason (SPLIT, TARGETING_MATCH, DEFAULT, DISABLED, ERROR, ...). Errors carry no variant.',
            queries: [{ expr: `sum by (${FLAG}, ${VARIANT}, ${REASON}) (rate(${sel(N.evaluations, f)}[$__rate_interval]))`, legend: `{{${FLAG}}} {{${VARIANT}}} {{${REASON}}}` }],
            unit: 'short',
            min: 0,
            axisLabel: 'evaluations / s',
            links: TO_COHORTS,
          }),
        ],
      },
      {
        title: 'Guardian health',
        height: 6,
        panels: [
          stat(4, {
            title: 'Last judgment',
            description: 'Time since the guardian last judged its flags (the oldest among instances). It judges once a slot; a growing age means it has stalled and is not protecting rollouts.',
            query: { expr: `max(${N.lastTickAge})`, legend: 'age' },
            unit: 's',
            steps: [
              { color: 'orange', value: 60_000 },
              { color: 'red', value: 300_000 },
            ],
          }),
          stat(4, {
            title: 'Pending rollbacks',
            description: 'Rollbacks the guardian decided but could not write to the flag store yet; it retries every tick.',
            query: { expr: `sum(${N.pendingRollbacks})`, legend: 'pending' },
            unit: 'short',
            steps: [{ color: 'red', value: 1 }],
          }),
          timeseries(8, {
            title: 'Outcomes recorded',
            description: 'Request outcomes per second the span processor attributed to cohorts. Flat at zero while flags are evaluated: spans are not reaching the guardian.',
            queries: [{ expr: perSecond(N.recordedOutcomes), legend: 'outcomes' }],
            unit: 'short',
            min: 0,
            axisLabel: 'outcomes / s',
          }),
          timeseries(8, {
            title: 'Dropped and failed',
            description: 'Per second: exposures and traces the span processor dropped, errors it caught, outcomes the cohort registry refused at its cohort limit. All should be zero.',
            queries: [
              { expr: perSecond(N.droppedExposures), legend: 'dropped exposures' },
              { expr: perSecond(N.droppedTraces), legend: 'dropped traces' },
              { expr: perSecond(N.internalErrors), legend: 'internal errors' },
              { expr: perSecond(N.droppedCohortOutcomes), legend: 'refused outcomes' },
            ],
            unit: 'short',
            min: 0,
            axisLabel: 'per second',
          }),
        ],
      },
    ],
  });
}

function guardianCohorts(): Dashboard {
  const f = ONE_FLAG;
  const byVariant = (metric: string) => `max by (${VARIANT}) (${sel(metric, f)})`;
  const perFlag = (metric: string) => `max(${sel(metric, f)})`;
  const cohort = `{{${VARIANT}}}`;
  return dashboard({
    uid: COHORTS_UID,
    title: 'rollout-guardian / Guardian cohorts',
    description: "One guarded flag's treatment and baseline cohorts side by side, against the limits the guardian judges them by.",
    flagMatcher: f,
    multiFlag: false,
    rows: [
      {
        title: 'Verdict',
        height: 5,
        panels: [
          stateTimeline(12, {
            title: 'Breach',
            description: "Whether the guardian's verdict on the flag is breaching or rollback (on any instance).",
            queries: [{ expr: `max(${sel(N.breach, f)})`, legend: 'breach' }],
            mappings: [
              {
                type: 'value',
                options: { '0': { color: 'green', index: 0, text: 'within limits' }, '1': { color: 'red', index: 1, text: 'breach' } },
              },
            ],
          }),
          stateTimeline(12, {
            title: 'Guardian verdict',
            description: 'What the guardian concluded on its last look. "not judged": the rollback has landed, or the flag is not guarded.',
            queries: [{ expr: verdictCode(f), legend: 'verdict' }],
            mappings: verdictMappings(),
          }),
        ],
      },
      {
        title: 'Traffic',
        height: 8,
        panels: [
          timeseries(8, {
            title: 'Request rate',
            description: 'Evaluations per second that resolved to each variant: the request rate of each cohort when a request evaluates the flag once.',
            queries: [{ expr: `sum by (${VARIANT}) (rate(${sel(N.evaluations, f, `${VARIANT}!=""`)}[$__rate_interval]))`, legend: cohort }],
            unit: 'reqps',
            min: 0,
          }),
          timeseries(8, {
            title: 'Samples per window',
            description: "Requests each cohort has in the guardian's window (its sustainFor), summed over instances. Too few and the guardian holds its verdict at insufficient.",
            queries: [{ expr: `sum by (${VARIANT}) (${sel(N.cohortRequests, f)})`, legend: cohort }],
            unit: 'short',
            min: 0,
            axisLabel: 'requests',
          }),
          timeseries(8, {
            title: 'Rollout percentage',
            description: 'Share of traffic sent to the treatment; 0 once a rollback has landed.',
            queries: [{ expr: perFlag(N.rolloutPercentage), legend: 'treatment share' }],
            unit: 'percent',
            min: 0,
            max: 100,
            step: true,
          }),
        ],
      },
      {
        title: 'Against the guard',
        height: 9,
        panels: [
          ...(
            [
              ['Error rate', "Share of each cohort's requests that failed", N.cohortErrorRate, N.guardMaxErrorRate, 'maxErrorRate', 'percentunit'],
              ['P95 latency', "Each cohort's 95th percentile latency", N.cohortLatencyP95, N.guardMaxP95, 'maxP95Ms', 's'],
              ['P99 latency', "Each cohort's 99th percentile latency", N.cohortLatencyP99, N.guardMaxP99, 'maxP99Ms', 's'],
            ] as const
          ).map(([title, what, metric, limit, limitName, unit]) =>
            // Each cohort's value against the flag's limit, drawn as a dashed red line.
            timeseries(8, {
              title,
              description: `${what} in the guardian's window (the worst instance), with the flag's ${limitName} as a dashed red line.`,
              queries: [
                { expr: byVariant(metric), legend: cohort },
                { expr: perFlag(limit), legend: limitName },
              ],
              unit,
              min: 0,
              limits: [1],
            }),
          ),
        ],
      },
    ],
  });
}

/** Each dashboard by its file name in dashboards/. */
export function buildDashboards(): Record<string, Dashboard> {
  return { 'rollouts-overview.json': rolloutsOverview(), 'guardian-cohorts.json': guardianCohorts() };
}

/** The file's text: stable, two-space JSON, as the tests compare it. */
export function renderDashboard(model: Dashboard): string {
  return `${JSON.stringify(model, null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [file, model] of Object.entries(buildDashboards())) writeFileSync(new URL(`../dashboards/${file}`, import.meta.url), renderDashboard(model));
}
