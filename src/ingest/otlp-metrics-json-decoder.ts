// OTLP/JSON ExportMetricsServiceRequest as the OTLP/JSON mapping defines it: lowerCamelCase
// keys, 64-bit integers as decimal strings (numbers accepted), enums as integers (or their
// names). Metrics the mapping does not use are counted, not read; a bad field is a 400
// naming where it is.
import { OtlpPayloadError } from './otlp-records.js';
import { type AttributeValue, attributeKey, type DecodedMetrics, type MetricKind, type MetricPoint, newMetricPoint, streamKeyOf } from './otlp-metric-points.js';
import { type Json, fail, list, object } from './otlp-json-reading.js';

const DIGITS = /^-?\d{1,20}$/;
const TEMPORALITY_NAMES: Record<string, number> = { AGGREGATION_TEMPORALITY_UNSPECIFIED: 0, AGGREGATION_TEMPORALITY_DELTA: 1, AGGREGATION_TEMPORALITY_CUMULATIVE: 2 };
const KINDS: readonly (readonly [string, MetricKind])[] = [
  ['gauge', 'gauge'],
  ['sum', 'sum'],
  ['histogram', 'histogram'],
  ['exponentialHistogram', 'exponential_histogram'],
];

/** A 64-bit integer field: a decimal string or a safe integer; absent is 0. */
function int(value: unknown, where: string, min = 0): number {
  if (value === undefined || value === null) return 0;
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && DIGITS.test(value)) n = Number(value);
  else fail(where, 'an integer (a decimal string for 64-bit values)', value);
  if (!Number.isFinite(n) || !Number.isInteger(n) || n < min) fail(where, min === 0 ? 'a non-negative integer' : 'an integer', value);
  return n;
}

function nanosToMs(value: unknown, where: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value === 'string' && /^\d{1,20}$/.test(value)) {
    // Split so the milliseconds keep their precision past 2^53 nanoseconds.
    const cut = value.length - 6;
    return cut > 0 ? Number(value.slice(0, cut)) + Number(value.slice(cut)) / 1e6 : Number(value) / 1e6;
  }
  return int(value, where) / 1e6;
}

function double(value: unknown, where: string): number {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  // The JSON mapping writes NaN and the infinities as strings.
  if (value === 'Infinity') return Number.POSITIVE_INFINITY;
  if (value === '-Infinity') return Number.NEGATIVE_INFINITY;
  if (typeof value === 'string' && value !== '' && Number.isFinite(Number(value))) return Number(value);
  return fail(where, 'a number', value);
}

function anyValue(value: unknown): AttributeValue {
  if (typeof value !== 'object' || value === null) return '';
  const v = value as Json;
  if (typeof v.stringValue === 'string') return v.stringValue;
  if (typeof v.boolValue === 'boolean') return v.boolValue;
  if (typeof v.intValue === 'number') return v.intValue;
  if (typeof v.intValue === 'string' && DIGITS.test(v.intValue)) return Number(v.intValue);
  if (typeof v.doubleValue === 'number') return v.doubleValue;
  // Arrays, key-value lists and bytes name a stream by their text; they are never judged.
  return `json:${JSON.stringify(value)}`;
}

function attributes(parent: Json, where: string, into: Map<string, AttributeValue>): void {
  const items = list(parent, 'attributes', where);
  for (let i = 0; i < items.length; i++) {
    const kv = object(items[i], `${where}.attributes[${i}]`);
    if (typeof kv.key !== 'string') fail(`${where}.attributes[${i}].key`, 'a string', kv.key);
    into.set(kv.key, anyValue(kv.value));
  }
}

function temporality(value: unknown, where: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value === 'string' && value in TEMPORALITY_NAMES) return TEMPORALITY_NAMES[value] as number;
  if (typeof value === 'number' && (value === 0 || value === 1 || value === 2)) return value;
  return fail(where, 'an AggregationTemporality (0, 1, 2 or its name)', value);
}

function numbers(parent: Json, key: string, where: string, read: (value: unknown, where: string) => number, into: number[]): void {
  const items = list(parent, key, where);
  for (let i = 0; i < items.length; i++) into.push(read(items[i], `${where}.${key}[${i}]`));
}

export class OtlpMetricsJsonDecoder {
  /** The points of the wanted metrics of a JSON ExportMetricsServiceRequest; throws OtlpPayloadError. */
  decode(body: string, wanted: (metric: string) => boolean, out: DecodedMetrics): void {
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (err) {
      throw new OtlpPayloadError(`not JSON: ${(err as Error).message}`);
    }
    this.decodeValue(value, wanted, out);
  }

  /** The same, from an already parsed request. */
  decodeValue(value: unknown, wanted: (metric: string) => boolean, out: DecodedMetrics): void {
    const root = object(value, 'request');
    const resources = list(root, 'resourceMetrics', 'request');
    for (let i = 0; i < resources.length; i++) {
      const whereR = `resourceMetrics[${i}]`;
      const rm = object(resources[i], whereR);
      const resourceAttributes = new Map<string, AttributeValue>();
      if (rm.resource !== undefined && rm.resource !== null) attributes(object(rm.resource, `${whereR}.resource`), `${whereR}.resource`, resourceAttributes);
      const resourceKey = attributeKey(resourceAttributes);
      const scopes = list(rm, 'scopeMetrics', whereR);
      for (let j = 0; j < scopes.length; j++) {
        const whereS = `${whereR}.scopeMetrics[${j}]`;
        const sm = object(scopes[j], whereS);
        const scope = sm.scope === undefined || sm.scope === null ? {} : object(sm.scope, `${whereS}.scope`);
        const scopeAttributes = new Map<string, AttributeValue>();
        attributes(scope, `${whereS}.scope`, scopeAttributes);
        const scopeKey = `${JSON.stringify(typeof scope.name === 'string' ? scope.name : '')}@${JSON.stringify(typeof scope.version === 'string' ? scope.version : '')}${attributeKey(scopeAttributes)}`;
        const metrics = list(sm, 'metrics', whereS);
        for (let k = 0; k < metrics.length; k++) this.metric(object(metrics[k], `${whereS}.metrics[${k}]`), `${whereS}.metrics[${k}]`, resourceKey, scopeKey, wanted, out);
      }
    }
  }

  private metric(m: Json, where: string, resourceKey: string, scopeKey: string, wanted: (metric: string) => boolean, out: DecodedMetrics): void {
    if (typeof m.name !== 'string') fail(`${where}.name`, 'a string', m.name);
    const unit = m.unit === undefined || m.unit === null ? '' : typeof m.unit === 'string' ? m.unit : fail(`${where}.unit`, 'a string', m.unit);
    if (m.summary !== undefined && m.summary !== null) out.summaryPoints += list(object(m.summary, `${where}.summary`), 'dataPoints', `${where}.summary`).length;
    for (const [key, kind] of KINDS) {
      if (m[key] === undefined || m[key] === null) continue;
      const whereD = `${where}.${key}`;
      const data = object(m[key], whereD);
      const points = list(data, 'dataPoints', whereD);
      if (!wanted(m.name)) {
        out.skippedPoints += points.length;
        continue;
      }
      const temporalityValue = temporality(data.aggregationTemporality, `${whereD}.aggregationTemporality`);
      const monotonic = data.isMonotonic === true;
      for (let i = 0; i < points.length; i++) {
        const whereP = `${whereD}.dataPoints[${i}]`;
        const p = object(points[i], whereP);
        const point = newMetricPoint();
        point.metric = m.name;
        point.unit = unit;
        point.kind = kind;
        point.temporality = temporalityValue;
        point.monotonic = monotonic;
        this.point(p, whereP, point);
        point.streamKey = streamKeyOf(resourceKey, scopeKey, m.name, point.attributes);
        out.points.push(point);
      }
    }
  }

  private point(p: Json, where: string, point: MetricPoint): void {
    attributes(p, where, point.attributes);
    point.startTimeMs = nanosToMs(p.startTimeUnixNano, `${where}.startTimeUnixNano`);
    point.timeMs = nanosToMs(p.timeUnixNano, `${where}.timeUnixNano`);
    point.flags = int(p.flags, `${where}.flags`);
    if (point.kind === 'gauge' || point.kind === 'sum') {
      if (p.asDouble !== undefined && p.asDouble !== null) point.value = double(p.asDouble, `${where}.asDouble`);
      else point.value = int(p.asInt, `${where}.asInt`, Number.MIN_SAFE_INTEGER);
      return;
    }
    point.count = int(p.count, `${where}.count`);
    if (point.kind === 'histogram') {
      numbers(p, 'bucketCounts', where, (v, w) => int(v, w), point.bucketCounts);
      numbers(p, 'explicitBounds', where, double, point.bounds);
      return;
    }
    const positive = p.positive === undefined || p.positive === null ? {} : object(p.positive, `${where}.positive`);
    const negative = p.negative === undefined || p.negative === null ? {} : object(p.negative, `${where}.negative`);
    const counts: number[] = [];
    numbers(positive, 'bucketCounts', `${where}.positive`, (v, w) => int(v, w), counts);
    const negativeCounts: number[] = [];
    numbers(negative, 'bucketCounts', `${where}.negative`, (v, w) => int(v, w), negativeCounts);
    let negativeCount = 0;
    for (const c of negativeCounts) negativeCount += c;
    point.exponential = {
      scale: int(p.scale, `${where}.scale`, -1e9),
      zeroCount: int(p.zeroCount, `${where}.zeroCount`),
      offset: int(positive.offset, `${where}.positive.offset`, -1e12),
      counts,
      negativeCount,
    };
  }
}
