// Replays a recorded OTLP stream through the same ingest as live traffic, faster than real
// time: each line of the recording is one export request with the time it was received, the
// injected clock is moved to that time before the request is ingested, and the caller's tick
// (the guardian's judgment) runs at every tick boundary the clock crosses, so a dry-run
// analysis of last week's telemetry takes seconds and judges exactly as live serving would.
import { OtlpJsonDecoder } from './otlp-json-decoder.js';
import type { OtlpIngest } from './otlp-ingest.js';
import { DecodedBatch } from './otlp-proto-decoder.js';
import { OtlpPayloadError } from './otlp-records.js';

/**
 * One line of a recording (JSON lines): `{"timeUnixMs": 1764244800000, "traces": {...}}` or
 * `{"timeUnixMs": ..., "logs": {...}}`, the request bodies in OTLP/JSON.
 */
export interface ReplayLine {
  readonly timeUnixMs: number;
  readonly traces?: unknown;
  readonly logs?: unknown;
}

export interface ReplayOptions {
  readonly ingest: OtlpIngest;
  /** The clock ingest and the guardian read; the replay sets it. */
  readonly clock: { set(ms: number): void; now(): number };
  /** Runs at every multiple of tickEveryMs the replay passes (the guardian's tick). */
  readonly tick?: (nowMs: number) => Promise<void>;
  readonly tickEveryMs?: number;
  /** Where the recording came from, for located errors (default "replay"). */
  readonly source?: string;
}

export interface ReplayResult {
  readonly requests: number;
  readonly spans: number;
  readonly logRecords: number;
  readonly ticks: number;
  readonly fromMs: number | undefined;
  readonly toMs: number | undefined;
}

/** The clock a replay moves: it reads what the recording's last line said. */
export class ReplayClock {
  private ms: number;

  constructor(startMs = 0) {
    this.ms = startMs;
  }

  now(): number {
    return this.ms;
  }

  set(ms: number): void {
    this.ms = ms;
  }
}

export class ReplayError extends Error {
  override readonly name = 'ReplayError';
}

/** Feeds every line of `lines` through `options.ingest`; a bad line stops the replay with its location. */
export async function replayOtlp(lines: Iterable<string> | AsyncIterable<string>, options: ReplayOptions): Promise<ReplayResult> {
  const source = options.source ?? 'replay';
  const tickEveryMs = options.tickEveryMs ?? 5_000;
  if (!(tickEveryMs > 0)) throw new RangeError(`replayOtlp: tickEveryMs must be positive, got ${tickEveryMs}`);
  const decoder = new OtlpJsonDecoder();
  const batch = new DecodedBatch();
  let lineNumber = 0;
  let requests = 0;
  let ticks = 0;
  let fromMs: number | undefined;
  let lastMs: number | undefined;
  let nextTickMs: number | undefined;
  const spansBefore = options.ingest.stats.spans;
  const logsBefore = options.ingest.stats.logRecords;
  for await (const raw of lines) {
    lineNumber++;
    const text = raw.trim();
    if (text === '') continue;
    const where = `${source}:${lineNumber}`;
    let line: ReplayLine;
    try {
      line = JSON.parse(text) as ReplayLine;
    } catch (err) {
      throw new ReplayError(`${where}: not JSON: ${(err as Error).message}`);
    }
    if (typeof line !== 'object' || line === null || typeof line.timeUnixMs !== 'number' || !Number.isFinite(line.timeUnixMs)) {
      throw new ReplayError(`${where}: expected {"timeUnixMs": <epoch ms>, "traces" or "logs": <OTLP/JSON export request>}`);
    }
    if (lastMs !== undefined && line.timeUnixMs < lastMs) throw new ReplayError(`${where}: timeUnixMs ${line.timeUnixMs} goes back in time (the line before was at ${lastMs}); sort the recording by time`);
    fromMs ??= line.timeUnixMs;
    nextTickMs ??= (Math.floor(line.timeUnixMs / tickEveryMs) + 1) * tickEveryMs;
    while (options.tick !== undefined && nextTickMs <= line.timeUnixMs) {
      options.clock.set(nextTickMs);
      await options.tick(nextTickMs);
      ticks++;
      nextTickMs += tickEveryMs;
    }
    options.clock.set(line.timeUnixMs);
    lastMs = line.timeUnixMs;
    batch.reset();
    try {
      if (line.traces !== undefined) {
        decoder.decodeTracesValue(line.traces, batch);
        options.ingest.ingestSpans(batch);
      } else if (line.logs !== undefined) {
        decoder.decodeLogsValue(line.logs, batch);
        options.ingest.ingestLogs(batch);
      } else {
        throw new OtlpPayloadError('has neither "traces" nor "logs"');
      }
    } catch (err) {
      if (err instanceof OtlpPayloadError) throw new ReplayError(`${where}: ${err.message}`);
      throw err;
    }
    requests++;
  }
  // One last judgment at the end of the recording, on what it ended with.
  if (options.tick !== undefined && lastMs !== undefined && nextTickMs !== undefined) {
    options.clock.set(nextTickMs);
    await options.tick(nextTickMs);
    ticks++;
  }
  const stats = options.ingest.stats;
  return { requests, spans: stats.spans - spansBefore, logRecords: stats.logRecords - logsBefore, ticks, fromMs, toMs: lastMs };
}
