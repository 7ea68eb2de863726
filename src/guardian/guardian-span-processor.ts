// Attribution on the span stream: remembers which cohorts (flag x variant) each trace was
// exposed to as its spans end, and records every request's outcome (duration, failed) in all
// of them; a request is a local root span of server or consumer kind (configurable), so an
// evaluation span made outside any request is not one. onEnd is O(1) per span, bounded in
// memory, and never throws into the app. Spans ending here end now: outcomes are recorded at
// the clock's time (OTLP ingest, which receives them later, uses their end time instead).
import { type Context, diag, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import {
  ATTR_FEATURE_FLAG_KEY,
  ATTR_FEATURE_FLAG_RESULT_VARIANT,
  ATTR_FEATURE_FLAG_VARIANT_PREVIOUS,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  EVENT_FEATURE_FLAG_EVALUATION,
  EVENT_FEATURE_FLAG_PREVIOUS,
} from '../telemetry/names.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../runtime/system-clock.js';
import type { CohortRegistry } from './cohort-registry.js';
import { quoteValue, requirePositiveInteger } from './option-checks.js';

export interface GuardianSpanProcessorOptions {
  readonly registry: CohortRegistry;
  readonly clock?: Clock;
  /** Whether a local root span failed (default: status ERROR, or a SERVER span answering 5xx). */
  readonly classify?: (span: ReadableSpan) => boolean;
  /** Traces whose exposures are held while their root is running (default 10,000). */
  readonly maxTraces?: number;
  /** Distinct (flag, variant) pairs kept per trace (default 16). */
  readonly maxExposuresPerTrace?: number;
  /** How long a trace's exposures wait for its root to end (default 5 minutes). */
  readonly maxTraceAgeMs?: number;
  /** Kinds of local root span that are requests (default SERVER and CONSUMER). */
  readonly requestKinds?: readonly SpanKind[];
}

export interface GuardianSpanProcessorStats {
  /** Outcomes recorded, one per cohort a local root was exposed to. */
  readonly recordedOutcomes: number;
  /** Exposures beyond maxExposuresPerTrace. */
  readonly droppedExposures: number;
  /** Traces whose exposures were evicted (too many held, or too old) before their root ended. */
  readonly droppedTraces: number;
  /** Errors caught in onEnd, the classifier's included. */
  readonly internalErrors: number;
  /** Evaluations naming a flag but no variant (value-only): seen, never attributed. */
  readonly unattributableEvaluations?: number;
}

/**
 * The cohorts one trace was exposed to, as parallel arrays (a linear scan of a few entries
 * beats hashing) of which the first `size` entries count: emptying is one store, where
 * `array.length = 0` costs more than the rest of a root's onEnd.
 */
interface TraceExposures {
  readonly firstSeenMs: number;
  size: number;
  readonly flagKeys: string[];
  readonly variants: string[];
}

type Warning = 'errors' | 'exposures' | 'traces';

const DEFAULT_MAX_TRACES = 10_000;
const DEFAULT_MAX_EXPOSURES_PER_TRACE = 16;
const DEFAULT_MAX_TRACE_AGE_MS = 5 * 60_000;

function isFailedByDefault(span: ReadableSpan): boolean {
  if (span.status.code === SpanStatusCode.ERROR) return true;
  if (span.kind !== SpanKind.SERVER) return false;
  const status = span.attributes[ATTR_HTTP_RESPONSE_STATUS_CODE];
  return typeof status === 'number' ? status >= 500 : typeof status === 'string' && Number(status) >= 500;
}

export class GuardianSpanProcessor implements SpanProcessor {
  private readonly registry: CohortRegistry;
  private readonly clock: Clock;
  private readonly classify: (span: ReadableSpan) => boolean;
  private readonly maxTraces: number;
  private readonly maxExposuresPerTrace: number;
  private readonly maxTraceAgeMs: number;
  /** traceId -> exposures; insertion order is age order, so the oldest come first. */
  private readonly traces = new Map<string, TraceExposures>();
  /** Reused for a root whose trace held nothing, so the common case allocates nothing. */
  private readonly scratch: TraceExposures = { firstSeenMs: 0, size: 0, flagKeys: [], variants: [] };
  private recordedOutcomes = 0;
  private droppedExposures = 0;
  private droppedTraces = 0;
  private internalErrors = 0;
  private unattributable = 0;
  private readonly requestKinds: readonly SpanKind[];
  /** Drop, count, warn once: a warning per kind of trouble, not one per span. */
  private readonly warned = new Set<Warning>();
  private isShutdown = false;

  constructor(options: GuardianSpanProcessorOptions) {
    if (options.classify !== undefined && typeof options.classify !== 'function') {
      throw new TypeError(`GuardianSpanProcessor: classify must be a function, got ${quoteValue(options.classify)}`);
    }
    const maxTraceAgeMs = options.maxTraceAgeMs ?? DEFAULT_MAX_TRACE_AGE_MS;
    if (typeof maxTraceAgeMs !== 'number' || !(maxTraceAgeMs > 0 && maxTraceAgeMs < Number.POSITIVE_INFINITY)) {
      throw new RangeError(`GuardianSpanProcessor: maxTraceAgeMs must be a positive finite number, got ${quoteValue(maxTraceAgeMs)}`);
    }
    this.registry = options.registry;
    this.clock = options.clock ?? systemClock;
    this.classify = options.classify ?? isFailedByDefault;
    this.maxTraces = requirePositiveInteger('GuardianSpanProcessor', 'maxTraces', options.maxTraces ?? DEFAULT_MAX_TRACES);
    this.maxExposuresPerTrace = requirePositiveInteger('GuardianSpanProcessor', 'maxExposuresPerTrace', options.maxExposuresPerTrace ?? DEFAULT_MAX_EXPOSURES_PER_TRACE);
    this.maxTraceAgeMs = maxTraceAgeMs;
    const kinds: readonly unknown[] = options.requestKinds ?? [SpanKind.SERVER, SpanKind.CONSUMER];
    if (!Array.isArray(kinds) || !kinds.every((k): k is SpanKind => typeof k === 'number' && SpanKind[k] !== undefined)) {
      throw new TypeError(`GuardianSpanProcessor: requestKinds must be SpanKind values, got ${quoteValue(kinds)}`);
    }
    this.requestKinds = kinds;
  }

  get stats(): GuardianSpanProcessorStats {
    return {
      recordedOutcomes: this.recordedOutcomes,
      droppedExposures: this.droppedExposures,
      droppedTraces: this.droppedTraces,
      internalErrors: this.internalErrors,
      unattributableEvaluations: this.unattributable,
    };
  }

  onStart(_span: Span, _parentContext: Context): void {
    // Exposures are read when spans end: by then every evaluation on them has happened.
  }

  onEnd(span: ReadableSpan): void {
    if (this.isShutdown) return;
    // Span.end() calls processors without a try/catch: whatever happens here stays here.
    try {
      const parent = span.parentSpanContext;
      if (parent === undefined || parent.isRemote === true) this.endLocalRoot(span);
      else this.collect(span, undefined);
    } catch (err) {
      this.internalErrors++;
      this.warnOnce('errors', `GuardianSpanProcessor: an error in onEnd was caught and counted (further ones are counted silently): ${String(err)}`);
    }
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    this.isShutdown = true;
    this.traces.clear();
    return Promise.resolve();
  }

  private endLocalRoot(span: ReadableSpan): void {
    let exposures: TraceExposures | undefined;
    if (this.traces.size > 0) {
      const traceId = span.spanContext().traceId;
      exposures = this.traces.get(traceId);
      if (exposures !== undefined) this.traces.delete(traceId);
    }
    if (exposures === undefined) {
      exposures = this.scratch;
      exposures.size = 0;
    }
    // A local root that is no request (an evaluation span made outside any request, a batch
    // job's internal root) ends its trace here with nothing to record.
    if (!this.requestKinds.includes(span.kind)) return;
    this.collect(span, exposures);
    const { size, flagKeys, variants } = exposures;
    if (size === 0) return;
    const failed = this.classify(span);
    const duration = span.duration;
    const durationMs = duration[0] * 1000 + duration[1] / 1e6;
    const nowMs = this.clock.now();
    for (let i = 0; i < size; i++) this.registry.record(flagKeys[i] as string, variants[i] as string, durationMs, failed, nowMs);
    this.recordedOutcomes += size;
  }

  /**
   * Adds the span's exposures to `exposures`, or to its trace's entry (made on the first
   * exposure found) when that is undefined. Evaluation events come first; the span's own
   * feature_flag.* attributes count only when it has no such event.
   */
  private collect(span: ReadableSpan, exposures: TraceExposures | undefined): void {
    let found = false;
    const events = span.events;
    for (let i = 0; i < events.length; i++) {
      const event = events[i];
      if (event === undefined || (event.name !== EVENT_FEATURE_FLAG_EVALUATION && event.name !== EVENT_FEATURE_FLAG_PREVIOUS) || event.attributes === undefined) continue;
      const flagKey = event.attributes[ATTR_FEATURE_FLAG_KEY];
      if (typeof flagKey !== 'string') continue;
      const variant = event.attributes[ATTR_FEATURE_FLAG_RESULT_VARIANT] ?? event.attributes[ATTR_FEATURE_FLAG_VARIANT_PREVIOUS];
      if (typeof variant !== 'string') {
        this.unattributable++;
        continue;
      }
      found = true;
      exposures ??= this.traceExposures(span.spanContext().traceId);
      this.expose(exposures, flagKey, variant);
    }
    if (found) return;
    const flagKey = span.attributes[ATTR_FEATURE_FLAG_KEY];
    if (typeof flagKey !== 'string') return;
    const variant = span.attributes[ATTR_FEATURE_FLAG_RESULT_VARIANT] ?? span.attributes[ATTR_FEATURE_FLAG_VARIANT_PREVIOUS];
    if (typeof variant !== 'string') {
      this.unattributable++;
      return;
    }
    this.expose(exposures ?? this.traceExposures(span.spanContext().traceId), flagKey, variant);
  }

  private expose(exposures: TraceExposures, flagKey: string, variant: string): void {
    const { size, flagKeys, variants } = exposures;
    for (let i = 0; i < size; i++) {
      if (flagKeys[i] === flagKey && variants[i] === variant) return;
    }
    if (size >= this.maxExposuresPerTrace) {
      this.droppedExposures++;
      this.warnOnce('exposures', `GuardianSpanProcessor: a trace was exposed to more than ${this.maxExposuresPerTrace} cohorts; the rest are dropped and counted`);
      return;
    }
    flagKeys[size] = flagKey;
    variants[size] = variant;
    exposures.size = size + 1;
  }

  private traceExposures(traceId: string): TraceExposures {
    let exposures = this.traces.get(traceId);
    if (exposures === undefined) {
      const nowMs = this.clock.now();
      this.evict(nowMs);
      exposures = { firstSeenMs: nowMs, size: 0, flagKeys: [], variants: [] };
      this.traces.set(traceId, exposures);
    }
    return exposures;
  }

  /** Makes room for one more trace: drops the oldest beyond maxTraces and any older than maxTraceAgeMs. */
  private evict(nowMs: number): void {
    const oldestKeptMs = nowMs - this.maxTraceAgeMs;
    for (const [traceId, exposures] of this.traces) {
      const full = this.traces.size >= this.maxTraces;
      if (!full && exposures.firstSeenMs >= oldestKeptMs) break;
      this.traces.delete(traceId);
      this.droppedTraces++;
      if (full) this.warnOnce('traces', `GuardianSpanProcessor: more than ${this.maxTraces} traces held at once; the oldest are dropped and counted`);
    }
  }

  private warnOnce(kind: Warning, message: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    diag.warn(message);
  }
}
