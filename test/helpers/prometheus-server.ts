// A real Prometheus (Debian's `prometheus` package) for tests: started on a free port with its
// config and data in a temp folder named rollout-guardian-test-* (CI's cleanup trap matches it),
// scraping one target, queried through its HTTP API, and stopped by its PID.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';

const POLL_MS = 50;

/** The path of `name` on $PATH, or undefined when it is not installed. */
export function findExecutable(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this folder.
    }
  }
  return undefined;
}

/** One series of a range query: its labels and [unix seconds, value] pairs, values as Prometheus prints them. */
export interface RangeSeries {
  readonly metric: Readonly<Record<string, string>>;
  readonly values: readonly (readonly [number, string])[];
}

export interface InstantSample {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: readonly [number, string];
}

export interface PrometheusServer {
  readonly url: string;
  readonly pid: number;
  /** /api/v1/query_range over [startS, endS] (unix seconds). */
  queryRange(query: string, startS: number, endS: number, stepS: number): Promise<RangeSeries[]>;
  /** /api/v1/query at `timeS` (default now). */
  query(query: string, timeS?: number): Promise<InstantSample[]>;
  /** /api/v1/label/<label>/values for series matching `match`. */
  labelValues(label: string, match: string, startS: number, endS: number): Promise<string[]>;
  /** Resolves once a scrape that began after this call has been stored. */
  nextScrape(): Promise<void>;
  /** Polls `query` until `accept` takes its samples; rejects with the last answer after `timeoutMs`. */
  waitFor(query: string, accept: (samples: InstantSample[]) => boolean, timeoutMs: number): Promise<InstantSample[]>;
  /** SIGTERM to the PID, then SIGKILL if it has not exited in 10 s; removes the temp folder. Idempotent. */
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** The metrics URL to scrape, e.g. http://127.0.0.1:9464/metrics; none scrapes nothing. */
  readonly target?: string;
  readonly job?: string;
  readonly scrapeIntervalS: number;
  /**
   * OpenMetrics text (with `# EOF`) loaded into the TSDB before start with `promtool tsdb
   * create-blocks-from openmetrics`: a history at fixed timestamps, kept whatever its age.
   */
  readonly backfill?: string;
  /** Path to the prometheus binary (default: from $PATH). */
  readonly binary?: string;
  /** How long to wait for /-/ready (default 20 s). */
  readonly readyTimeoutMs?: number;
}

interface ApiAnswer<T> {
  readonly status: 'success' | 'error';
  readonly data?: T;
  readonly error?: string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Sends `signal` to `pid`; a process that has exited already is not an error. */
function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

/** A Prometheus config as JSON, which is YAML too. */
function config(options: PrometheusOptions): string {
  const interval = `${options.scrapeIntervalS}s`;
  const global = { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval };
  if (options.target === undefined) return JSON.stringify({ global, scrape_configs: [] });
  const target = new URL(options.target);
  return JSON.stringify({
    global,
    scrape_configs: [
      {
        job_name: options.job ?? 'rollout-guardian-test',
        scrape_interval: interval,
        scrape_timeout: interval,
        scheme: target.protocol.replace(':', ''),
        metrics_path: target.pathname,
        static_configs: [{ targets: [target.host] }],
      },
    ],
  });
}

export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const binary = options.binary ?? findExecutable('prometheus');
  if (binary === undefined) throw new Error('prometheus is not installed: run scripts/install-test-deps.sh');
  const dir = await mkdtemp(join(tmpdir(), 'rollout-guardian-test-prometheus-'));
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(configFile, config(options));
  let child: ChildProcess | undefined;
  try {
    if (options.backfill !== undefined) await backfill(options.backfill, dir);
    // A free port can be taken between finding it and binding it: try again on another.
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      // A backfilled history stays however old it is: retention counts from the newest block.
      const started = spawn(binary, [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, '--storage.tsdb.retention.time=100y', `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child = started;
      let log = '';
      started.stderr?.setEncoding('utf8');
      started.stderr?.on('data', (chunk: string) => {
        // Keep the tail only: enough to say why it failed.
        log = (log + chunk).slice(-4000);
      });
      const ready = await waitReady(url, started, options.readyTimeoutMs ?? 20_000);
      if (ready) return server(url, started, dir);
      if (started.exitCode === null) {
        started.kill('SIGKILL');
        await exited(started);
      }
      if (attempt >= 2 || !log.includes('address already in use')) throw new Error(`prometheus did not become ready at ${url}:\n${log}`);
    }
  } catch (err) {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function waitReady(url: string, child: ChildProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    try {
      const response = await fetch(`${url}/-/ready`);
      await response.text();
      if (response.ok) return true;
    } catch {
      // Not listening yet.
    }
    await delay(POLL_MS);
  }
  return false;
}

function server(url: string, child: ChildProcess, dir: string): PrometheusServer {
  const pid = child.pid as number;
  async function api<T>(path: string, params: Record<string, string>): Promise<T> {
    const response = await fetch(`${url}${path}?${new URLSearchParams(params).toString()}`);
    const answer = (await response.json()) as ApiAnswer<T>;
    if (answer.status !== 'success' || answer.data === undefined) throw new Error(`prometheus ${path} ${JSON.stringify(params)}: ${answer.error ?? response.status}`);
    return answer.data;
  }
  const query = async (q: string, timeS?: number) => {
    const data = await api<{ result: InstantSample[] }>('/api/v1/query', timeS === undefined ? { query: q } : { query: q, time: String(timeS) });
    return data.result;
  };
  let stopping: Promise<void> | undefined;
  return {
    url,
    pid,
    async queryRange(q, startS, endS, stepS) {
      const data = await api<{ result: RangeSeries[] }>('/api/v1/query_range', { query: q, start: String(startS), end: String(endS), step: String(stepS) });
      return data.result;
    },
    query,
    async labelValues(label, match, startS, endS) {
      return api<string[]>(`/api/v1/label/${encodeURIComponent(label)}/values`, { 'match[]': match, start: String(startS), end: String(endS) });
    },
    async nextScrape() {
      const after = Date.now();
      const deadline = after + 20_000;
      while (Date.now() < deadline) {
        const data = await api<{ activeTargets: { lastScrape: string; health: string }[] }>('/api/v1/targets', { state: 'active' });
        if (data.activeTargets.some((t) => t.health === 'up' && Date.parse(t.lastScrape) > after)) return;
        await delay(POLL_MS);
      }
      throw new Error(`prometheus at ${url} has not scraped its target since ${new Date(after).toISOString()}`);
    },
    async waitFor(q, accept, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const samples = await query(q);
        if (accept(samples)) return samples;
        if (Date.now() >= deadline) throw new Error(`prometheus: ${q} did not answer as expected within ${timeoutMs} ms; last answer ${JSON.stringify(samples)}`);
        await delay(POLL_MS);
      }
    },
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exit = exited(child);
          signal(pid, 'SIGTERM');
          const killed = await Promise.race([exit.then(() => true), delay(10_000).then(() => false)]);
          if (!killed) {
            signal(pid, 'SIGKILL');
            await exit;
          }
        }
        await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

const execFileAsync = promisify(execFile);

/** Writes `openMetrics` as TSDB blocks into `dir`/data, where the server will find them. */
async function backfill(openMetrics: string, dir: string): Promise<void> {
  const promtool = findExecutable('promtool');
  if (promtool === undefined) throw new Error('promtool is not installed (Debian: the prometheus package): run scripts/install-test-deps.sh');
  const input = join(dir, 'backfill.om');
  await writeFile(input, openMetrics);
  try {
    await execFileAsync(promtool, ['tsdb', 'create-blocks-from', 'openmetrics', input, join(dir, 'data')]);
  } catch (err) {
    const failure = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`promtool could not backfill: ${`${failure.stdout ?? ''}${failure.stderr ?? ''}` || failure.message}`, { cause: err });
  }
}

/**
 * `promtool check rules` on every expression, written as recording rules: promtool parses each
 * with Prometheus's own PromQL parser. Resolves to promtool's failure output, or undefined when
 * all parse.
 */
export async function promtoolCheckExpressions(promtool: string, expressions: readonly string[]): Promise<string | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'rollout-guardian-test-promtool-'));
  try {
    const file = join(dir, 'rules.yml');
    const rules = expressions.map((expr, i) => ({ record: `rollout_guardian_test:expression_${i}`, expr }));
    await writeFile(file, JSON.stringify({ groups: [{ name: 'dashboards', rules }] }));
    try {
      await execFileAsync(promtool, ['check', 'rules', file]);
      return undefined;
    } catch (err) {
      const failure = err as { stdout?: string; stderr?: string; message: string };
      return `${failure.stdout ?? ''}${failure.stderr ?? ''}` || failure.message;
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
