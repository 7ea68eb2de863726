// `serve`: the guardian and the plans as a long-running process on a store, with /metrics,
// /healthz, /readyz, /api/status and an OTLP/HTTP traces endpoint. SIGTERM or SIGINT stops it
// cleanly; every plan's state is in the store, so a restart resumes where it left off.
import { createReadStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { diag, DiagLogLevel } from '@opentelemetry/api';
import { type Command, InvalidArgumentError } from 'commander';
import { BearerAuth } from '../../server/bearer-auth.js';
import { ReplayClock, ReplayError, replayOtlp } from '../../ingest/otlp-replay.js';
import { type MetricsMapping, MetricsMappingError, parseMetricsMapping } from '../../ingest/metrics-mapping.js';
import type { FlagStore } from '../../stores/flag-store.js';
import type { CliIo } from '../cli-io.js';
import { CliError } from '../cli-error.js';
import { parseDurationMs } from '../../core/duration.js';
import { ListenError, RolloutServer } from '../../server/rollout-server.js';
import { type NotifyConfig, NotifyConfigError, parseNotifyConfig, resolveSecrets } from '../../notify/notify-config.js';
import { FLAGS_ENV_VAR, DEFAULT_FLAGS_FILE } from '../../stores/file-store.js';
import { durationArgument } from '../arguments.js';
import { openLocation } from '../store-location.js';
import type { CommandContext, StoreOptions } from './command-context.js';
import { withStoreOption } from './command-context.js';

interface ServeOptions extends StoreOptions {
  readonly port: number;
  readonly host: string;
  readonly slot: number;
  readonly dryRun?: boolean;
  readonly grpcPort: number | false;
  readonly tokenFile?: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly maxBodyBytes?: number;
  readonly allowedLateness?: number;
  readonly replay?: string;
  readonly prometheusUrl?: string;
  readonly prometheusBearerTokenFile?: string;
  readonly prometheusHeader?: readonly [string, string][];
  readonly prometheusQueryDelay?: number;
  readonly prometheusTimeout?: number;
  readonly metricsMapping?: string;
  readonly maxMetricStreams?: number;
  readonly corsOrigin?: string;
  readonly replicaName?: string;
  readonly notify?: string;
}

/** --notify FILE read, validated and its secrets taken from the environment; a bad file is a located CliError. */
function notifyFrom(file: string, env: Readonly<Record<string, string | undefined>>): NotifyConfig {
  try {
    return resolveSecrets(parseNotifyConfig(readFileFor('--notify', file).toString('utf8'), file), env, file);
  } catch (err) {
    if (err instanceof NotifyConfigError) throw new CliError(`--notify: ${err.problems.length} problem${err.problems.length === 1 ? '' : 's'} in the notification file:\n${err.message}`);
    throw err;
  }
}

/**
 * `serve --replay FILE`: the recording (JSON lines of {timeUnixMs, traces|logs}) through the
 * same ingest and guardian, in dry run, on a clock the recording moves; prints what the
 * guardian would have done and when, then exits.
 */
async function replayRecording(file: string, store: FlagStore, options: ServeOptions, io: CliIo): Promise<void> {
  const clock = new ReplayClock();
  const log = (line: string) => io.stdout.write(`${new Date(clock.now()).toISOString()} ${line}\n`);
  const server = await RolloutServer.start({ store, port: 0, clock, slotMs: options.slot, slotCount: 720, dryRun: true, autoTick: false, log, ingest: { maxBodyBytes: options.maxBodyBytes, allowedLatenessMs: options.allowedLateness } });
  try {
    const input = createReadStream(file, { encoding: 'utf8' });
    const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
    let result;
    try {
      result = await replayOtlp(lines, { ingest: server.ingest, clock, tick: () => server.guardian.tick(), tickEveryMs: options.slot, source: file });
    } catch (err) {
      if (err instanceof ReplayError) throw new CliError(err.message);
      if ((err as NodeJS.ErrnoException).code !== undefined) throw new CliError(`--replay ${file}: ${(err as Error).message}`);
      throw err;
    }
    const stats = server.ingest.stats;
    const span = result.fromMs === undefined ? 'nothing' : `${new Date(result.fromMs).toISOString()} to ${new Date(result.toMs ?? result.fromMs).toISOString()}`;
    io.stdout.write(`replayed ${result.requests} export requests (${result.spans} spans, ${result.logRecords} log records) from ${span} in ${result.ticks} judgments\n`);
    io.stdout.write(`outcomes recorded ${stats.recordedOutcomes}; late ${stats.late}, future ${stats.future}, unattributable evaluations ${stats.unattributable}\n`);
    for (const status of server.guardian.status()) io.stdout.write(`${status.flagKey}: ${status.judgment.verdict} (${status.judgment.reason})\n`);
  } finally {
    await server.close();
  }
}

/** The env variable holding one bearer token (all roles) when no --token-file is given. */
export const TOKEN_ENV_VAR = 'ROLLOUT_GUARDIAN_TOKEN';
/** The name (audit actor) of the token from ROLLOUT_GUARDIAN_TOKEN. */
export const ENV_TOKEN_NAME = 'env-token';

function parseBytes(text: string): number {
  const m = /^(\d+)\s*(|k|ki|kib|m|mi|mib)$/i.exec(text.trim());
  if (m === null) throw new InvalidArgumentError(`"${text}" is not a size; write bytes, or like 16MiB or 512KiB`);
  const unit = (m[2] as string).toLowerCase();
  const bytes = Number(m[1]) * (unit.startsWith('m') ? 1024 * 1024 : unit.startsWith('k') ? 1024 : 1);
  if (bytes < 1024) throw new InvalidArgumentError(`"${text}" is too small for a body limit; give at least 1KiB`);
  return bytes;
}

function parseLateness(text: string): number {
  const ms = parseDurationMs(text);
  if (ms === undefined || ms < 0) throw new InvalidArgumentError(`"${text}" is not a duration; write it like 60s or 2m`);
  return ms;
}

function readFileFor(option: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new CliError(`${option} ${path}: ${(err as Error).message}`);
  }
}

/** Tokens from --token-file, else from ROLLOUT_GUARDIAN_TOKEN; undefined when neither is set. */
function authFrom(options: ServeOptions, env: Readonly<Record<string, string | undefined>>): BearerAuth | undefined {
  try {
    if (options.tokenFile !== undefined) return BearerAuth.parse(readFileFor('--token-file', options.tokenFile).toString('utf8'), options.tokenFile);
    const token = env[TOKEN_ENV_VAR];
    if (token !== undefined && token !== '') return new BearerAuth([{ token: token.trim(), name: ENV_TOKEN_NAME }]);
  } catch (err) {
    if (err instanceof RangeError) throw new CliError(err.message.replace(/^BearerAuth: /, options.tokenFile === undefined ? `${TOKEN_ENV_VAR}: ` : ''));
    throw err;
  }
  return undefined;
}

function mappingFrom(path: string): MetricsMapping {
  try {
    return parseMetricsMapping(readFileFor('--metrics-mapping', path).toString('utf8'), path);
  } catch (err) {
    if (err instanceof MetricsMappingError) throw new CliError(`--metrics-mapping ${err.message} (see docs/pipelines.md for the fields)`);
    throw err;
  }
}

/** One origin (scheme, host, port) the control API answers with CORS headers. */
function parseOrigin(text: string): string {
  let origin: string | undefined;
  try {
    origin = new URL(text).origin;
  } catch {
    origin = undefined;
  }
  if (origin === undefined || origin === 'null' || origin !== text.replace(/\/+$/, '')) throw new InvalidArgumentError(`"${text}" is not an origin; give scheme, host and port only, such as https://ops.example.com`);
  return origin;
}

function parseStreamCount(text: string): number {
  const count = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(count) || count < 1 || count > 100_000_000) throw new InvalidArgumentError(`expected a whole number of streams from 1 to 100000000, such as 1000000, got "${text}"`);
  return count;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`expected a port from 0 to 65535 (0 picks a free one), got "${text}"`);
  return port;
}

function parseReplicaName(text: string): string {
  if (!/^[\x21-\x7e]{1,200}$/.test(text)) throw new InvalidArgumentError(`"${text}" cannot name a replica; give printable characters without spaces, such as the pod name`);
  return text;
}

function parsePrometheusUrl(text: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new InvalidArgumentError(`"${text}" is not an http(s) URL; give Prometheus' base URL such as http://prometheus:9090`);
  return text;
}

function collectHeader(text: string, previous: readonly [string, string][] = []): [string, string][] {
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):\s*(.*)$/.exec(text);
  if (m === null) throw new InvalidArgumentError(`"${text}" is not a header; write it like "X-Scope-OrgID: tenant-1"`);
  return [...previous, [m[1] as string, (m[2] as string).trim()]];
}

/** The headers every Prometheus query carries: --prometheus-header, and the bearer token from its file. */
function prometheusOptionsFrom(options: ServeOptions): { url: string; headers: Record<string, string>; queryDelayMs?: number; queryTimeoutMs?: number } | undefined {
  const url = options.prometheusUrl;
  if (url === undefined) {
    const given = options.prometheusBearerTokenFile !== undefined || options.prometheusHeader !== undefined || options.prometheusQueryDelay !== undefined || options.prometheusTimeout !== undefined;
    if (given) throw new CliError('the --prometheus-* options need --prometheus-url URL (Prometheus\' base URL, such as http://prometheus:9090)');
    return undefined;
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of options.prometheusHeader ?? []) headers[name.toLowerCase()] = value;
  if (options.prometheusBearerTokenFile !== undefined) {
    const token = readFileFor('--prometheus-bearer-token-file', options.prometheusBearerTokenFile).toString('utf8').trim();
    if (token === '') throw new CliError(`--prometheus-bearer-token-file ${options.prometheusBearerTokenFile}: the file is empty; put the token in it`);
    headers.authorization = `Bearer ${token}`;
  }
  return { url, headers, queryDelayMs: options.prometheusQueryDelay, queryTimeoutMs: options.prometheusTimeout };
}

/** Slots from 100 ms (tests, replays) to an hour: a guardian that judges less often than that is not watching. */
const parseSlot = durationArgument({ minMs: 100, maxMs: 3_600_000, example: '5s' });

export function registerServe(program: Command, ctx: CommandContext): void {
  withStoreOption(
    program
      .command('serve')
      .description('run the guardian and the plans on a store; serves OTLP traces, logs and metrics (HTTP protobuf/JSON on /v1/traces, /v1/logs and /v1/metrics, gRPC), /metrics, /healthz, /readyz, /api/status and the control API (/api/v1/*, described at /openapi.json)')
      .option('--port <port>', 'port to listen on (0 picks a free one)', parsePort, 8080)
      .option('--host <address>', 'address to listen on', '127.0.0.1')
      .option('--slot <duration>', "the guardian's slot: how often it judges", parseSlot, 5_000)
      .option('--dry-run', 'judge and report rollbacks and plan steps without writing them')
      .option('--grpc-port <port>', 'OTLP/gRPC port (0 picks a free one)', parsePort, 4317)
      .option('--no-grpc-port', 'do not serve OTLP/gRPC')
      .option('--token-file <file>', `bearer tokens, one per line: TOKEN [ROLES] [NAME] (roles read, operate, ingest, default all; the name is the actor in the audit log); else ${TOKEN_ENV_VAR} (all roles, named ${ENV_TOKEN_NAME}); without either, only 127.0.0.1 is served`)
      .option('--tls-cert <file>', 'TLS certificate (PEM) for HTTP and gRPC; needs --tls-key')
      .option('--tls-key <file>', 'TLS private key (PEM); needs --tls-cert')
      .option('--max-body-bytes <size>', 'largest OTLP request body, compressed or not (default 16MiB)', parseBytes)
      .option('--allowed-lateness <duration>', 'how far behind the clock an outcome may end and still count (default 30s); the guardian judges a slot this long (plus 10s for evaluation records) after it ends', parseLateness)
      .option('--metrics-mapping <file>', 'which OTLP metrics (POST /v1/metrics, gRPC MetricsService) give requests, errors and latency, and which attributes name the flag and variant (YAML or JSON; default: spanmetrics and http.server.request.duration, see docs/pipelines.md)')
      .option('--max-metric-streams <count>', 'cumulative OTLP metric streams remembered at most, about 0.8 KiB each (default 100000); beyond it the least recently updated are forgotten and their next point is only a baseline, so a fleet this large should export delta (docs/fleet.md)', parseStreamCount)
      .option('--cors-origin <origin>', 'answer the control API (/api/v1/*, /openapi.json) with CORS headers for this one origin, such as https://ops.example.com (default: no CORS)', parseOrigin)
      .option('--replica-name <name>', 'this replica\u2019s name in the guardian lease on a Redis store, unique per replica (default host:pid:random; see docs/fleet.md)', parseReplicaName)
      .option('--replay <file>', 'judge a recorded OTLP stream (JSON lines of {timeUnixMs, traces|logs}) in dry run, faster than real time, then exit')
      .option('--prometheus-url <url>', "query this Prometheus each slot for flags whose guard names PromQL (guard.prometheus; see docs/prometheus-source.md)", parsePrometheusUrl)
      .option('--prometheus-bearer-token-file <file>', 'send the token in this file as authorization: Bearer with every Prometheus query')
      .option('--prometheus-header <header>', 'send this header with every Prometheus query, like "X-Scope-OrgID: tenant-1" (repeatable)', collectHeader)
      .option('--prometheus-query-delay <duration>', "query a slot this long after it ends, at least Prometheus' scrape interval (default 15s)", durationArgument({ minMs: 0, maxMs: 600_000, example: '15s' }))
      .option('--prometheus-timeout <duration>', 'limit on one Prometheus query (default 5s)', durationArgument({ minMs: 100, maxMs: 120_000, example: '5s' }))
      .option('--notify <file>', 'webhook targets (YAML or JSON) notified of warnings, breaches, rollbacks, failed health checks and plan steps; see docs/notifications.md'),
  ).action(async (options: ServeOptions) => {
    const prometheus = prometheusOptionsFrom(options);
    // Read before the store is opened: a bad file stops serve before anything is watched.
    const notify = options.notify === undefined || options.replay !== undefined ? undefined : notifyFrom(options.notify, ctx.io.env);
    const location = options.store ?? (ctx.io.env[FLAGS_ENV_VAR] || DEFAULT_FLAGS_FILE);
    // Watching: serve follows edits to the file and changes other instances make in Redis.
    const store = openLocation(location, options.store !== undefined ? '--store' : FLAGS_ENV_VAR, ctx.io, true);
    if (options.replay !== undefined) return replayRecording(options.replay, store, options, ctx.io);
    if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) throw new CliError('TLS needs both --tls-cert FILE and --tls-key FILE');
    const tls = options.tlsCert !== undefined && options.tlsKey !== undefined ? { cert: readFileFor('--tls-cert', options.tlsCert), key: readFileFor('--tls-key', options.tlsKey) } : undefined;
    const auth = authFrom(options, ctx.io.env);
    const metricsMapping = options.metricsMapping === undefined ? undefined : mappingFrom(options.metricsMapping);
    const logLine = (line: string) => ctx.io.stderr.write(`${new Date(ctx.io.clock.now()).toISOString()} ${line}\n`);
    // Refusals, drops and exporter trouble are reported through OpenTelemetry's diag, once per
    // kind: without a logger they would vanish, and "the app sends, serve hears nothing" with them.
    const quiet = () => undefined;
    diag.setLogger({ error: (m) => logLine(`error: ${m}`), warn: (m) => logLine(`warning: ${m}`), info: quiet, debug: quiet, verbose: quiet }, DiagLogLevel.WARN);
    let server: RolloutServer;
    try {
      server = await RolloutServer.start({
        store,
        port: options.port,
        host: options.host,
        grpcPort: options.grpcPort === false ? undefined : options.grpcPort,
        auth,
        tls,
        ingest: { maxBodyBytes: options.maxBodyBytes, allowedLatenessMs: options.allowedLateness },
        prometheus,
        metricsMapping,
        maxMetricStreams: options.maxMetricStreams,
        control: { corsOrigin: options.corsOrigin },
        clock: ctx.io.clock,
        slotMs: options.slot,
        dryRun: options.dryRun,
        log: logLine,
        replicaName: options.replicaName,
        notify,
      });
    } catch (err) {
      // A store that never connected still retries in the background: close it, or the
      // process would print its error and never exit.
      await store.close().catch(() => undefined);
      if (err instanceof ListenError) throw new CliError(err.message);
      throw err;
    }
    ctx.io.stdout.write(`rollout-guardian serve on ${server.url} (store ${store.source}${options.dryRun ? ', dry run' : ''})\n`);
    ctx.io.stdout.write(`status page: ${server.url}/\n`);
    if (notify !== undefined) ctx.io.stdout.write(`notifying ${notify.targets.map((t) => t.name).join(', ')}\n`);
    ctx.io.stdout.write(`OTLP: ${server.url}/v1/traces, /v1/logs and /v1/metrics${server.grpcPort === undefined ? '' : `, gRPC on port ${server.grpcPort}`}; ${auth === undefined ? 'no token: only 127.0.0.1 is served' : 'bearer tokens required'}${tls === undefined ? '' : ', TLS'}\n`);
    if (prometheus !== undefined) ctx.io.stdout.write(`Prometheus: ${prometheus.url}, each slot queried ${(prometheus.queryDelayMs ?? 15_000) / 1000} s after it ends, for flags whose guard names PromQL\n`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        ctx.io.stderr.write(`${signal}: stopping\n`);
        resolve();
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    await server.close();
    diag.disable();
    ctx.io.stdout.write('stopped\n');
  });
}
