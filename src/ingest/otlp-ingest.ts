// From decoded OTLP spans and log records to outcomes in the cohorts: remembers, per trace,
// which cohorts (flag x variant) it was exposed to (span events, span attributes, evaluation
// log records) and which requests (local root server/consumer spans) it holds, and records
// each request's outcome once in each of its trace's cohorts at the span's end time, whichever
// half arrives first. Both halves wait a bounded time in bounded memory; every refusal and
// every drop is counted and warned about once.
import { diag } from '@opentelemetry/api';
import type { Clock } from '../core/clock.js';
import { EventTimeGate } from './event-time-gate.js';
import type { DecodedBatch } from './otlp-proto-decoder.js';
import { type DecodedSpan, OTLP_KIND, OTLP_STATUS_ERROR, SPAN_FLAGS_HAS_IS_REMOTE, SPAN_FLAGS_IS_REMOTE } from './otlp-records.js';
import type { RefusalReason } from '../telemetry/names.js';

/** Where outcomes go: the guardian's CohortRegistry. */
export interface OutcomeSink {
  record(flagKey: string, variant: string, durationMs: number, failed: boolean, atMs: number): void;
}

export type RequestKind = 'server' | 'consumer' | 'internal' | 'client' | 'producer';

export type { RefusalReason, LatenessReason } from '../telemetry/names.js';

export interface OtlpIngestOptions {
  readonly sink: OutcomeSink;
  readonly clock: Clock;
  /** Event-time limits; see EventTimeGate. */
  readonly allowedLatenessMs?: number;
  readonly maxFutureSkewMs?: number;
  /** Kinds of local root span that are requests (default server and consumer). */
  readonly requestKinds?: readonly RequestKind[];
  /** Whether a request failed (default: status ERROR, or a SERVER span answering 5xx). */
  readonly classify?: (span: Readonly<DecodedSpan>) => boolean;
  /** Traces held at once waiting for their other half (default 50,000); the oldest go first. */
  readonly maxTraces?: number;
  /** How long one half of a trace waits for the other, on the clock (default 10 s: the SDKs' batch processors export every 1-5 s). */
  readonly joinWaitMs?: number;
  /** Distinct cohorts kept per trace (default 16); requests kept per trace (default 16). */
  readonly maxExposuresPerTrace?: number;
  readonly maxRequestsPerTrace?: number;
}

export interface OtlpIngestStats {
  readonly spans: number;
  readonly logRecords: number;
  readonly requests: number;
  readonly recordedOutcomes: number;
  readonly unattributable: number;
  readonly droppedExposures: number;
  readonly droppedTraces: number;
  readonly late: number;
  readonly future: number;
  readonly refusedRequests: Readonly<Record<RefusalReason, number>>;
}

/** One trace's pending halves as parallel arrays (a few entries: a scan beats hashing). */
interface PendingTrace {
  readonly firstSeenMs: number;
  exposureCount: number;
  readonly flagKeys: string[];
  readonly variants: string[];
  requestCount: number;
  readonly durations: number[];
  readonly failures: boolean[];
  readonly endTimes: number[];
}

const KIND_IDS: Record<RequestKind, number> = { server: OTLP_KIND.server, consumer: OTLP_KIND.consumer, internal: OTLP_KIND.internal, client: OTLP_KIND.client, producer: OTLP_KIND.producer };

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) throw new RangeError(`OtlpIngest: ${name} must be a positive integer, got ${String(value)}`);
  return value;
}

function failedByDefault(span: Readonly<DecodedSpan>): boolean {
  return span.statusCode === OTLP_STATUS_ERROR || (span.kind === OTLP_KIND.server && span.httpStatus >= 500);
}

/** The result of one ingested batch, for OTLP's partial_success. */
export interface IngestResult {
  rejected: number;
  message: string;
}

export class OtlpIngest {
  readonly gate: EventTimeGate;
  private readonly sink: OutcomeSink;
  private readonly clock: Clock;
  private readonly requestKinds: ReadonlySet<number>;
  private readonly classify: (span: Readonly<DecodedSpan>) => boolean;
  private readonly maxTraces: number;
  /** How long one half of a trace waits for the other. */
  readonly joinWaitMs: number;
  private readonly maxExposuresPerTrace: number;
  private readonly maxRequestsPerTrace: number;
  /** traceId -> pending halves; insertion order is age order. */
  private readonly traces = new Map<string, PendingTrace>();
  private counts = { spans: 0, logRecords: 0, requests: 0, recordedOutcomes: 0, unattributable: 0, droppedExposures: 0, droppedTraces: 0 };
  private readonly refused: Record<RefusalReason, number> = { unsupported_media_type: 0, malformed: 0, unauthenticated: 0, too_large: 0, busy: 0 };
  private readonly warned = new Set<string>();

  constructor(options: OtlpIngestOptions) {
    this.sink = options.sink;
    this.clock = options.clock;
    this.gate = new EventTimeGate({ clock: options.clock, allowedLatenessMs: options.allowedLatenessMs, maxFutureSkewMs: options.maxFutureSkewMs });
    const kinds = options.requestKinds ?? ['server', 'consumer'];
    for (const kind of kinds) if (!(kind in KIND_IDS)) throw new RangeError(`OtlpIngest: requestKinds has "${String(kind)}"; use server, consumer, internal, client or producer`);
    this.requestKinds = new Set(kinds.map((k) => KIND_IDS[k]));
    if (options.classify !== undefined && typeof options.classify !== 'function') throw new TypeError('OtlpIngest: classify must be a function');
    this.classify = options.classify ?? failedByDefault;
    this.maxTraces = positiveInteger('maxTraces', options.maxTraces ?? 50_000);
    this.joinWaitMs = positiveInteger('joinWaitMs', options.joinWaitMs ?? 10_000);
    this.maxExposuresPerTrace = positiveInteger('maxExposuresPerTrace', options.maxExposuresPerTrace ?? 16);
    this.maxRequestsPerTrace = positiveInteger('maxRequestsPerTrace', options.maxRequestsPerTrace ?? 16);
  }

  get stats(): OtlpIngestStats {
    return { ...this.counts, late: this.gate.late, future: this.gate.future, refusedRequests: { ...this.refused } };
  }

  /** Traces held now, waiting for their other half. */
  get pendingTraces(): number {
    return this.traces.size;
  }

  /** Counts a refused export request and warns once per reason. */
  refuse(reason: RefusalReason, detail: string): void {
    this.refused[reason]++;
    this.warnOnce(`refused:${reason}`, `rollout-guardian ingest: refused an OTLP export (${reason}): ${detail} (further ${reason} refusals are counted in /metrics, not logged)`);
  }

  /** Attributes and records the spans of a decoded batch. */
  ingestSpans(batch: DecodedBatch): IngestResult {
    const nowMs = this.clock.now();
    this.expire(nowMs);
    let late = 0;
    let future = 0;
    const spans = batch.spans;
    // Exposures first, requests second: within a batch a root may come before its children.
    for (let i = 0; i < batch.spanCount; i++) {
      const span = spans[i] as DecodedSpan;
      this.counts.unattributable += span.unattributable;
      const exposures = span.exposures;
      if (exposures.size > 0) this.addExposures(span.traceId, exposures.flagKeys, exposures.variants, exposures.size, nowMs);
    }
    for (let i = 0; i < batch.spanCount; i++) {
      const span = spans[i] as DecodedSpan;
      if (!this.isRequest(span)) continue;
      this.counts.requests++;
      // A late request's exposures stay with its trace: other requests in it may be on time.
      const verdict = this.gate.admit(span.endTimeMs);
      if (verdict === 'on-time') this.addRequest(span, nowMs);
      else if (verdict === 'late') late++;
      else future++;
    }
    this.counts.spans += batch.spanCount;
    if (late > 0) this.warnOnce('late', `rollout-guardian ingest: ${late} request span(s) ended before the watermark (now minus ${this.gate.allowedLatenessMs} ms) and were not recorded (counted as late in /metrics; further ones are not logged)`);
    if (future > 0) this.warnOnce('future', `rollout-guardian ingest: ${future} request span(s) ended more than ${this.gate.maxFutureSkewMs} ms in the future and were not recorded (check the senders' clocks; counted as future in /metrics)`);
    return { rejected: late + future, message: late + future === 0 ? '' : `${late} request span(s) late (before now - ${this.gate.allowedLatenessMs} ms), ${future} future-dated (beyond +${this.gate.maxFutureSkewMs} ms); not recorded` };
  }

  /** Joins the evaluation log records of a decoded batch to their traces. */
  ingestLogs(batch: DecodedBatch): IngestResult {
    const nowMs = this.clock.now();
    this.expire(nowMs);
    let late = 0;
    let future = 0;
    const logs = batch.logs;
    const one = { keys: [''], variants: [''] };
    for (let i = 0; i < batch.logCount; i++) {
      const record = logs[i]!;
      if (!record.isEvaluation || record.flagKey === undefined) continue;
      if (record.variant === undefined || record.traceId === '') {
        this.counts.unattributable++;
        continue;
      }
      const verdict = this.gate.admit(record.timeMs);
      if (verdict !== 'on-time') {
        if (verdict === 'late') late++;
        else future++;
        continue;
      }
      one.keys[0] = record.flagKey;
      one.variants[0] = record.variant;
      this.addExposures(record.traceId, one.keys, one.variants, 1, nowMs);
    }
    this.counts.logRecords += batch.logCount;
    if (late + future > 0) this.warnOnce('late-logs', `rollout-guardian ingest: ${late} evaluation log record(s) late and ${future} future-dated were not joined (counted in /metrics)`);
    return { rejected: late + future, message: late + future === 0 ? '' : `${late} evaluation record(s) late, ${future} future-dated; not joined` };
  }

  private isRequest(span: DecodedSpan): boolean {
    if (!this.requestKinds.has(span.kind)) return false;
    if (!span.hasParent) return true;
    // A parent known to be remote makes this span its service's root; without the flag bits
    // (older senders) a server or consumer span with a parent is taken as an entry point too.
    if ((span.flags & SPAN_FLAGS_HAS_IS_REMOTE) !== 0) return (span.flags & SPAN_FLAGS_IS_REMOTE) !== 0;
    return span.kind === OTLP_KIND.server || span.kind === OTLP_KIND.consumer;
  }

  private addExposures(traceId: string, flagKeys: readonly string[], variants: readonly string[], count: number, nowMs: number): void {
    const trace = this.pending(traceId, nowMs);
    for (let e = 0; e < count; e++) {
      const flagKey = flagKeys[e]!;
      const variant = variants[e]!;
      let known = false;
      for (let i = 0; i < trace.exposureCount; i++) {
        if (trace.flagKeys[i] === flagKey && trace.variants[i] === variant) {
          known = true;
          break;
        }
      }
      if (known) continue;
      if (trace.exposureCount >= this.maxExposuresPerTrace) {
        this.counts.droppedExposures++;
        this.warnOnce('exposures', `rollout-guardian ingest: a trace was exposed to more than ${this.maxExposuresPerTrace} cohorts; the rest are dropped and counted`);
        continue;
      }
      trace.flagKeys[trace.exposureCount] = flagKey;
      trace.variants[trace.exposureCount] = variant;
      trace.exposureCount++;
      // Requests already here get this cohort now: each (request, cohort) pair is recorded once.
      for (let r = 0; r < trace.requestCount; r++) this.record(flagKey, variant, trace.durations[r]!, trace.failures[r]!, trace.endTimes[r]!);
    }
  }

  private addRequest(span: DecodedSpan, nowMs: number): void {
    const failed = this.classify(span);
    // Held even without exposures: its evaluation log records may still be on their way.
    const trace = this.pending(span.traceId, nowMs);
    for (let i = 0; i < trace.exposureCount; i++) this.record(trace.flagKeys[i]!, trace.variants[i]!, span.durationMs, failed, span.endTimeMs);
    if (trace.requestCount >= this.maxRequestsPerTrace) return;
    const r = trace.requestCount++;
    trace.durations[r] = span.durationMs;
    trace.failures[r] = failed;
    trace.endTimes[r] = span.endTimeMs;
  }

  private record(flagKey: string, variant: string, durationMs: number, failed: boolean, atMs: number): void {
    this.sink.record(flagKey, variant, durationMs, failed, atMs);
    this.counts.recordedOutcomes++;
  }

  private pending(traceId: string, nowMs: number): PendingTrace {
    let trace = this.traces.get(traceId);
    if (trace === undefined) {
      if (this.traces.size >= this.maxTraces) this.evictOldest();
      trace = { firstSeenMs: nowMs, exposureCount: 0, flagKeys: [], variants: [], requestCount: 0, durations: [], failures: [], endTimes: [] };
      this.traces.set(traceId, trace);
    }
    return trace;
  }

  private evictOldest(): void {
    for (const [traceId, trace] of this.traces) {
      this.traces.delete(traceId);
      // Exposures still waiting for their request are a loss; a request without exposures is
      // most often one no flag touched, and one with both halves is done.
      if (trace.exposureCount > 0 && trace.requestCount === 0) {
        this.counts.droppedTraces++;
        this.warnOnce('traces', `rollout-guardian ingest: more than ${this.maxTraces} traces waiting at once; the oldest are dropped, and exposures that had not met their request yet are counted`);
      }
      return;
    }
  }

  /** Forgets traces whose wait is over (they are in age order, so this stops at the first young one). */
  private expire(nowMs: number): void {
    const oldest = nowMs - this.joinWaitMs;
    for (const [traceId, trace] of this.traces) {
      if (trace.firstSeenMs >= oldest) return;
      this.traces.delete(traceId);
    }
  }

  private warnOnce(kind: string, message: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    diag.warn(message);
  }
}
