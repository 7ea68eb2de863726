// The stores' fault suite: real faults against the real file system, the real CLI binary and
// a real redis-server, each repeated for a number of seeded trials, each trial checked for
// what was lost: definitions, runtime state, and audit entries against the changes made.
// `npm run faults` prints the table; test/stores/fault-suite.test.ts runs it with fewer trials.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, watch } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { FileFlagStore } from '../src/stores/file-store.js';
import type { StoreEvent, StoreSnapshot } from '../src/stores/flag-store.js';
import { RedisFlagStore } from '../src/stores/redis-store.js';
import { StoreWriter } from '../src/stores/store-writer.js';
import { revisionOf } from '../src/stores/watched-file-store.js';
import { RedisServer } from '../test/helpers/redis-server.js';
import { type Random, mulberry32 } from '../test/helpers/seeded-random.js';

const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

export interface FaultRow {
  readonly fault: string;
  readonly trials: number;
  readonly survived: number;
  /** Trials that lost definitions (flags gone, unreadable, or not what the last write set). */
  readonly definitionsLost: number;
  /** Trials that lost runtime state. */
  readonly stateLost: number;
  /** Changes without their audit entry, plus audit entries without their change. */
  readonly auditMismatches: number;
  /** What went wrong, for the first few failures. */
  readonly notes: readonly string[];
}

export interface FaultSuiteOptions {
  readonly seed?: number;
  /** Trials per row: kill -9 gets `trials`, the slower rows fewer (at least 1). */
  readonly trials?: number;
  readonly log?: (line: string) => void;
  /** Run only the rows whose step name contains one of these (kill, ENOSPC, unwritable, concurrent, hostile, symlink, Redis). */
  readonly only?: readonly string[];
}

const FLAGS = `# Checkout flags.
flags:
  checkout:
    variants: { on: true, off: false }
    defaultVariant: off
    rollout: { variant: on, percentage: 10 }   # start small
  greeting:
    variants: { formal: "Good day", casual: "Hi" }
    defaultVariant: formal
`;

class Tally {
  trials = 0;
  survived = 0;
  definitionsLost = 0;
  stateLost = 0;
  auditMismatches = 0;
  readonly notes: string[] = [];

  constructor(readonly fault: string) {}

  record(losses: { definitions?: boolean; state?: boolean; audit?: number; note?: string }): void {
    this.trials++;
    const audit = losses.audit ?? 0;
    if (losses.definitions) this.definitionsLost++;
    if (losses.state) this.stateLost++;
    this.auditMismatches += audit;
    const ok = !losses.definitions && !losses.state && audit === 0 && losses.note === undefined;
    if (ok) this.survived++;
    else if (this.notes.length < 3) this.notes.push(losses.note ?? 'data lost');
  }

  row(): FaultRow {
    return { fault: this.fault, trials: this.trials, survived: this.survived, definitionsLost: this.definitionsLost, stateLost: this.stateLost, auditMismatches: this.auditMismatches, notes: this.notes };
  }
}

function cli(args: readonly string[], cwd: string): { child: ChildProcess; done: Promise<{ code: number | null; signal: string | null; stderr: string }> } {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ROLLOUT_GUARDIAN_FLAGS: '' } });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stderr })));
  return { child, done };
}

function waitFor<T>(subscribe: (listener: (e: T) => void) => () => void, accept: (e: T) => boolean, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      stop();
      resolve(false);
    }, timeoutMs);
    const stop = subscribe((e) => {
      if (!accept(e)) return;
      clearTimeout(timer);
      stop();
      resolve(true);
    });
  });
}

/**
 * The file store's books, opened afresh (which undoes a write cut off mid-way): flags and
 * state readable, no leftovers, and every write (the state's counter) with its audit entries
 * exactly once, the newest entry describing what the files hold now.
 */
async function checkFileStore(path: string): Promise<{ definitions: boolean; state: boolean; audit: number; note?: string }> {
  const store = new FileFlagStore({ path, watch: false });
  try {
    let snapshot: StoreSnapshot;
    try {
      snapshot = await store.load();
    } catch (err) {
      const message = (err as Error).message;
      return { definitions: !message.includes('state.json'), state: message.includes('state.json'), audit: 0, note: message.split('\n')[0] };
    }
    const definitions = !snapshot.parsed.definitions.has('checkout') || !snapshot.parsed.definitions.has('greeting');
    const stateText = existsSync(store.statePath) ? await readFile(store.statePath, 'utf8') : undefined;
    const writes = stateText === undefined ? 0 : Number((JSON.parse(stateText) as { revision?: number }).revision ?? 0);
    const entries = await store.audit();
    const counts = new Set(entries.map((e) => Number(e.revision.split('-')[0])));
    let audit = Math.abs(counts.size - writes);
    for (let n = 1; n <= writes; n++) if (!counts.has(n)) audit++;
    const last = entries.at(-1);
    const current = revisionOf({ flags: await readFile(path, 'utf8'), state: stateText });
    if (last !== undefined && last.revision !== current) audit++;
    if (last !== undefined) {
      const state = snapshot.state.get(last.flagKey) ?? null;
      if (JSON.stringify(state) !== JSON.stringify(last.after.state)) audit++;
    }
    const leftovers = (await readdir(store.source.replace(/\/[^/]+$/, ''))).filter((n) => /\.(tmp|backup)$|\.lock|journal/.test(n));
    return { definitions, state: false, audit, ...(leftovers.length > 0 ? { note: `left behind: ${leftovers.join(', ')}` } : {}) };
  } finally {
    await store.close();
  }
}

async function freshFlagFile(root: string, name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'flags.yaml');
  await writeFile(path, FLAGS);
  return path;
}

function writeArgs(random: Random, path: string, i: number): string[] {
  const kind = Math.floor(random() * 3);
  if (kind === 0) return ['flags', 'set', 'checkout', 'rollout.percentage', String(1 + Math.floor(random() * 99)), '--store', path, '--reason', `trial ${i}`];
  if (kind === 1) return ['flags', 'override', 'greeting', random() < 0.5 ? 'casual' : 'formal', '--store', path, '--reason', `trial ${i}`];
  return ['rollback', 'checkout', '--store', path, '--reason', `trial ${i}`];
}

async function killDuringWrites(root: string, random: Random, trials: number, log: (line: string) => void): Promise<FaultRow> {
  const tally = new Tally('kill -9 of a CLI write');
  const path = await freshFlagFile(root, 'kill');
  const dir = join(root, 'kill');
  let cutMidWrite = 0;
  let withJournal = 0;
  let finished = 0;
  for (let i = 0; i < trials; i++) {
    const { child, done } = cli(writeArgs(random, path, i), root);
    // A third of the kills land at a random time (most of a CLI run is node starting), a third
    // the moment the write's first file appears (a backup link, before anything changed), a
    // third the moment its journal is in place (while the files are being replaced).
    const mode = Math.floor(random() * 3);
    const trigger = mode === 1 ? /journal|\.tmp$|\.backup$/ : /^flags\.journal\.json$/;
    const watcher = mode > 0 ? watch(dir, (_event, name) => name !== null && trigger.test(name) && child.kill('SIGKILL')) : undefined;
    if (mode === 0) setTimeout(() => child.kill('SIGKILL'), random() * 1_500).unref();
    const outcome = await done;
    watcher?.close();
    if (outcome.signal === null) finished++;
    // Killed inside the write: it left its lock, a temp file or its journal behind.
    if ((await readdir(dir)).some((n) => /journal|\.tmp$|\.backup$|\.lock$/.test(n))) cutMidWrite++;
    if ((await readdir(dir)).some((n) => n === 'flags.journal.json')) withJournal++;
    tally.record(await checkFileStore(path));
  }
  log(`kill -9: ${trials - finished} killed, ${cutMidWrite} of them inside the write (${withJournal} leaving a journal to undo); ${finished} finished first`);
  return tally.row();
}

async function fullDisk(root: string, random: Random, trials: number, how: 'ENOSPC' | 'unwritable'): Promise<FaultRow> {
  const tally = new Tally(how === 'ENOSPC' ? 'ENOSPC on the audit log (/dev/full)' : 'unwritable audit log');
  const path = await freshFlagFile(root, how);
  const auditPath = path.replace(/\.yaml$/, '.audit.jsonl');
  for (let i = 0; i < trials; i++) {
    // One good write first, so there is history to lose.
    const good = await cli(writeArgs(random, path, i), root).done;
    const before = { flags: await readFile(path, 'utf8'), state: await readFile(path.replace(/\.yaml$/, '.state.json'), 'utf8').catch(() => ''), audit: await readFile(auditPath, 'utf8') };
    await rename(auditPath, `${auditPath}.saved`);
    if (how === 'ENOSPC') await symlink('/dev/full', auditPath);
    else await mkdir(auditPath);
    const failed = await cli(writeArgs(random, path, i), root).done;
    await rm(auditPath, { recursive: true, force: true });
    await rename(`${auditPath}.saved`, auditPath);
    const after = { flags: await readFile(path, 'utf8'), state: await readFile(path.replace(/\.yaml$/, '.state.json'), 'utf8').catch(() => ''), audit: await readFile(auditPath, 'utf8') };
    const truthful = failed.code === 1 && /^error: .*not applied/m.test(failed.stderr) && !/\n\s+at /.test(failed.stderr);
    const checked = await checkFileStore(path);
    tally.record({
      definitions: checked.definitions || after.flags !== before.flags,
      state: checked.state || after.state !== before.state,
      audit: checked.audit + (after.audit !== before.audit ? 1 : 0),
      ...(good.code !== 0 ? { note: `the write before the fault failed: ${good.stderr.trim()}` } : !truthful ? { note: `the CLI did not say "not applied": exit ${failed.code}: ${failed.stderr.trim().split('\n')[0]}` } : checked.note !== undefined ? { note: checked.note } : {}),
    });
  }
  return tally.row();
}

async function concurrentWriters(root: string, random: Random, trials: number): Promise<FaultRow> {
  const tally = new Tally('10 concurrent CLI writers');
  const path = await freshFlagFile(root, 'concurrent');
  for (let i = 0; i < trials; i++) {
    const runs = await Promise.all(Array.from({ length: 10 }, (_, w) => cli(writeArgs(random, path, i * 10 + w), root).done));
    const failed = runs.filter((r) => r.code !== 0);
    const checked = await checkFileStore(path);
    tally.record({ ...checked, ...(failed.length > 0 ? { note: `${failed.length} writers failed: ${failed[0]?.stderr.trim().split('\n')[0]}` } : {}) });
  }
  return tally.row();
}

const HOSTILE: readonly ((random: Random) => string)[] = [
  (random) => {
    const width = 5 + Math.floor(random() * 10);
    const lines = [`l0: &l0 [${Array(width).fill('"lol"').join(',')}]`];
    for (let d = 1; d < 10; d++) lines.push(`l${d}: &l${d} [${Array(width).fill(`*l${d - 1}`).join(',')}]`);
    return `${lines.join('\n')}\nflags: {}\n`;
  },
  (random) => {
    const depth = 1_000 + Math.floor(random() * 50_000);
    return `{"flags": {}, "deep": ${'['.repeat(depth)}${']'.repeat(depth)}}`;
  },
  () => '{"__proto__": {"polluted": true}, "flags": {}}',
  (random) => `flags:\n${'  # padding to make the file too big\n'.repeat(Math.ceil((2.5 + random()) * 1024 * 1024 / 37))}`,
  (random) => Array.from({ length: 200 + Math.floor(random() * 2_000) }, () => String.fromCharCode(Math.floor(random() * 0x7f))).join(''),
];

async function hostileInput(root: string, random: Random, trials: number): Promise<FaultRow> {
  const tally = new Tally('hostile YAML/JSON flag file');
  const path = await freshFlagFile(root, 'hostile');
  const store = new FileFlagStore({ path, debounceMs: 1 });
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown): void => void rejections.push(reason);
  process.on('unhandledRejection', onRejection);
  try {
    await store.load();
    for (let i = 0; i < trials; i++) {
      const text = (HOSTILE[i % HOSTILE.length] as (r: Random) => string)(random);
      const heard = waitFor<StoreEvent>((l) => store.watch(l), (e) => e.type === 'invalid' || e.type === 'unavailable' || e.type === 'change', 10_000);
      await writeFile(path, text);
      const told = await heard;
      const serving = await store.load().then((s) => s.parsed.definitions.get('checkout')?.rollout?.percentage, () => undefined);
      await writeFile(path, FLAGS);
      const back = await waitFor<StoreEvent>((l) => store.watch(l), (e) => e.type === 'change' || e.type === 'available', 10_000);
      tally.record({
        definitions: serving !== 10,
        ...(rejections.length > 0 ? { note: `unhandled rejection: ${String(rejections[0])}` } : !told ? { note: 'the store said nothing about the hostile text' } : !back ? { note: 'the good text was not picked up again' } : {}),
      });
    }
  } finally {
    process.off('unhandledRejection', onRejection);
    await store.close();
  }
  return tally.row();
}

async function symlinkSwaps(root: string, random: Random, trials: number): Promise<FaultRow> {
  const tally = new Tally('ConfigMap ..data symlink swaps');
  const dir = join(root, 'configmap');
  await mkdir(join(dir, '..v0'), { recursive: true });
  await writeFile(join(dir, '..v0', 'flags.yaml'), FLAGS);
  await symlink('..v0', join(dir, '..data'));
  await symlink('..data/flags.yaml', join(dir, 'flags.yaml'));
  const store = new FileFlagStore({ path: join(dir, 'flags.yaml'), debounceMs: 1 });
  try {
    await store.load();
    let previous = 10;
    for (let i = 1; i <= trials; i++) {
      // A different value each time: a swap to the same bytes is no change to hear of.
      const percentage = 1 + ((previous + Math.floor(random() * 98)) % 99);
      previous = percentage;
      await mkdir(join(dir, `..v${i}`));
      await writeFile(join(dir, `..v${i}`, 'flags.yaml'), FLAGS.replace('percentage: 10', `percentage: ${percentage}`));
      const seen = waitFor<StoreEvent>((l) => store.watch(l), (e) => e.type === 'change' && e.snapshot.parsed.definitions.get('checkout')?.rollout?.percentage === percentage, 10_000);
      await symlink(`..v${i}`, join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
      const ok = await seen;
      await rm(join(dir, `..v${i - 1}`), { recursive: true, force: true });
      tally.record(ok ? {} : { definitions: true, note: `the swap to ${percentage}% was not picked up` });
    }
  } finally {
    await store.close();
  }
  return tally.row();
}

/** Redis faults: each trial acknowledges a write, applies the fault, tries a write during it, recovers, and audits. */
async function redisFaults(random: Random, trials: number): Promise<FaultRow[]> {
  const redis = await RedisServer.start();
  const raw = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  raw.on('error', () => undefined);
  const rows: FaultRow[] = [];
  try {
    const url = redis.url('faults');
    const seed = async (): Promise<void> => {
      const s = new RedisFlagStore({ url });
      await s.write({ actor: 'faults', reason: 'seed', action: 'copy', changes: [{ flagKey: 'checkout', definitionEdits: [{ path: [], value: { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: 10 } } }] }] });
      await s.close();
    };
    await seed();
    const watcher = new RedisFlagStore({ url, resyncMs: 100, commandTimeoutMs: 300 });
    await watcher.load();
    watcher.watch(() => undefined);
    const writer = new StoreWriter(new RedisFlagStore({ url, commandTimeoutMs: 300 }));
    const pidOf = async (): Promise<number> => {
      if (raw.status !== 'ready') await raw.connect().catch(() => undefined);
      return Number(/process_id:(\d+)/.exec(await raw.info('server'))?.[1]);
    };
    const books = async (): Promise<{ audit: number; servesCheckout: boolean }> => {
      const revision = Number((await raw.get('faults:revision')) ?? 0);
      const entries = await raw.xlen('faults:audit');
      const snapshot = await watcher.load();
      return { audit: Math.abs(entries - revision), servesCheckout: snapshot.parsed.definitions.has('checkout') };
    };
    const waitReady = async (): Promise<void> => {
      for (let i = 0; i < 100 && raw.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 50));
    };

    for (const fault of ['stopped and restarted with its data', 'killed -9 and restarted without its data', 'frozen (SIGSTOP) for 1 s'] as const) {
      const tally = new Tally(`Redis ${fault}`);
      for (let i = 0; i < trials; i++) {
        const variant = random() < 0.5 ? 'on' : 'off';
        await writer.override('checkout', variant, { actor: 'faults', reason: `before ${i}` });
        const pid = await pidOf();
        let duringFailedTruthfully = true;
        if (fault === 'frozen (SIGSTOP) for 1 s') {
          process.kill(pid, 'SIGSTOP');
          const during = await writer.override('checkout', variant === 'on' ? 'off' : 'on', { actor: 'faults', reason: `during ${i}` }).then(() => 'landed', (err: Error) => err.message);
          duringFailedTruthfully = during === 'landed' || /unreachable|may or may not/.test(during);
          await new Promise((r) => setTimeout(r, 1_000));
          process.kill(pid, 'SIGCONT');
        } else if (fault === 'stopped and restarted with its data') {
          await redis.stop();
          const during = await writer.override('checkout', 'on', { actor: 'faults', reason: `during ${i}` }).then(() => 'landed', (err: Error) => err.message);
          duringFailedTruthfully = /unreachable/.test(during);
          await redis.resume();
        } else {
          process.kill(pid, 'SIGKILL');
          await new Promise((r) => setTimeout(r, 100));
          await rm(join(redis.dir, 'dump.rdb'), { force: true });
          await redis.stop();
          await redis.resume();
          await waitReady();
          // Redis came back empty: an operator's write must be refused, not store no flags.
          await new Promise((r) => setTimeout(r, 300));
          const during = await writer.override('checkout', 'on', { actor: 'faults', reason: `during ${i}` }).then(() => 'landed', (err: Error) => err.message);
          duringFailedTruthfully = /is empty|unreachable/.test(during);
        }
        await waitReady();
        await new Promise((r) => setTimeout(r, 300));
        const emptied = (await raw.exists('faults:definitions')) === 0;
        const { audit, servesCheckout } = await books();
        tally.record({
          definitions: !servesCheckout,
          // With its data, the state must be the last acknowledged write (or the one during a freeze, if it landed).
          state: fault === 'stopped and restarted with its data' && (JSON.parse((await raw.get('faults:state')) ?? '{}') as { flags?: Record<string, { override?: { variant?: string } }> }).flags?.checkout?.override?.variant !== variant,
          audit: emptied ? 0 : audit,
          ...(!duringFailedTruthfully ? { note: 'a write during the fault did not fail with a clear reason' } : {}),
        });
        if (emptied) await seed();
      }
      rows.push(tally.row());
    }
    const hostile = new Tally('Redis definitions key edited into hostile text');
    for (let i = 0; i < Math.max(trials, HOSTILE.length); i++) {
      await waitReady();
      const good = await raw.get('faults:definitions');
      const text = (HOSTILE[i % HOSTILE.length] as (r: Random) => string)(random);
      const told = waitFor<StoreEvent>((l) => watcher.watch(l), (e) => e.type === 'invalid', 10_000);
      await raw.multi().set('faults:definitions', text).incr('faults:revision').exec();
      const heard = await told;
      const snapshot = await watcher.load();
      hostile.record({
        definitions: !snapshot.parsed.definitions.has('checkout'),
        ...(!heard ? { note: 'the watcher said nothing about the hostile key' } : snapshot.problem === undefined ? { note: 'the snapshot does not report the problem' } : {}),
      });
      await raw.multi().set('faults:definitions', good ?? '').incr('faults:revision').exec();
      await waitFor<StoreEvent>((l) => watcher.watch(l), (e) => e.type === 'change', 10_000);
    }
    rows.push(hostile.row());
    await watcher.close();
  } finally {
    raw.disconnect();
    await redis.dispose();
  }
  return rows;
}

/** Runs every row; the slow rows (processes, Redis restarts) get fewer trials than kill -9. */
export async function runFaultSuite(options: FaultSuiteOptions = {}): Promise<FaultRow[]> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
  const trials = options.trials ?? 50;
  const random = mulberry32(options.seed ?? 11);
  const log = options.log ?? (() => undefined);
  const root = await mkdtemp(join(tmpdir(), 'rollout-guardian-faults-'));
  const rows: FaultRow[] = [];
  const few = Math.max(1, Math.round(trials / 5));
  try {
    const steps: [string, () => Promise<FaultRow | FaultRow[]>][] = [
      ['kill -9', () => killDuringWrites(root, random, trials, log)],
      ['ENOSPC', () => fullDisk(root, random, few, 'ENOSPC')],
      ['unwritable audit', () => fullDisk(root, random, few, 'unwritable')],
      ['concurrent writers', () => concurrentWriters(root, random, Math.max(1, Math.round(few / 2)))],
      ['hostile input', () => hostileInput(root, random, Math.max(HOSTILE.length, few))],
      ['symlink swaps', () => symlinkSwaps(root, random, few)],
      ['Redis', () => redisFaults(random, Math.max(1, Math.round(few / 2)))],
    ];
    for (const [name, step] of steps) {
      if (options.only !== undefined && !options.only.some((o) => name.toLowerCase().includes(o.toLowerCase()))) continue;
      log(`running: ${name}`);
      const out = await step();
      rows.push(...(Array.isArray(out) ? out : [out]));
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return rows;
}

/** The table `npm run faults` prints. */
export function faultTable(rows: readonly FaultRow[]): string {
  const header = ['fault', 'trials', 'survived', 'definitions lost', 'state lost', 'audit entries vs changes'];
  const body = rows.map((r) => [r.fault, String(r.trials), String(r.survived), String(r.definitionsLost), String(r.stateLost), r.auditMismatches === 0 ? 'all match' : `${r.auditMismatches} mismatched`]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] as string).length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
