// The longest the event loop stalls while a file store reloads a changed file, with a provider
// watching (so compiling the new flags counts): YAML, JSON and flagd files of 100 and 1,000
// flags and of as many as fit the 8 MB size limit, read in the worker thread (the default) and,
// for comparison, on the main thread. Target (issue 11): no stall over 50 ms at any allowed size.
// A setImmediate probe records the longest gap between turns of the loop from the moment the
// file is written until the provider serves the new flags. `--json`, `--rounds=N`, `--quick`
// (100 and 1,000 flags only).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProviderEvents } from '@openfeature/server-sdk';
import { parseDocument, visit } from 'yaml';
import { RolloutProvider } from '../src/provider/rollout-provider.js';
import { FLAG_TEXT_LIMITS } from '../src/stores/flag-file-format.js';
import { FileFlagStore } from '../src/stores/file-store.js';
import { FlagdFileStore } from '../src/stores/flagd-store.js';
import type { WatchedFileStore } from '../src/stores/watched-file-store.js';
import { type Summary, roundsOption, summarise } from './measure.js';

const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const ROUNDS = roundsOption(process.argv, 5);
const TARGET_MS = 50;

type Format = 'yaml' | 'json' | 'flagd';
type Mode = 'worker' | 'main thread';

/** The i-th flag as our model writes it; `pct` differs between the two texts a round alternates. */
function ourFlag(i: number, pct: number): Record<string, unknown> {
  return {
    description: `Flag number ${i} of the generated set`,
    variants: { on: true, off: false },
    defaultVariant: 'off',
    state: 'enabled',
    rollout: { variant: 'on', percentage: i === 0 ? pct : i % 100 },
    targeting: [
      { name: 'eu canary', when: { attribute: 'region', in: ['eu-west-1', 'eu-central-1'] }, variant: 'on' },
      { name: 'staff', when: { attribute: 'email', endsWith: '@example.com' }, variant: 'on' },
    ],
    guard: { maxErrorRate: 0.01, maxP95Ms: 500, maxP99Ms: 1000, sustainFor: '5m' },
  };
}

function yamlFlag(i: number, pct: number): string {
  return `  flag-${i}:
    description: Flag number ${i} of the generated set
    variants: { on: true, off: false }
    defaultVariant: off
    state: enabled
    rollout:
      variant: on
      percentage: ${i === 0 ? pct : i % 100}
    targeting:
      - name: eu canary
        when: { attribute: region, in: [eu-west-1, eu-central-1] }
        variant: on
      - name: staff
        when: { attribute: email, endsWith: "@example.com" }
        variant: on
    guard: { maxErrorRate: 0.01, maxP95Ms: 500, maxP99Ms: 1000, sustainFor: 5m }
`;
}

/** A flagd flag of the kinds real files hold (splits, rules, sem_ver, $ref, disabled). */
function flagdFlag(i: number, pct: number): Record<string, unknown> {
  switch (i % 4) {
    case 0:
      return { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'off', targeting: { fractional: [['on', i === 0 ? pct : 10], ['off', i === 0 ? 100 - pct : 90]] } };
    case 1:
      return {
        state: 'ENABLED',
        variants: { on: true, off: false },
        defaultVariant: 'off',
        targeting: { if: [{ in: [{ var: 'region' }, ['eu-west-1', 'eu-central-1']] }, 'on', { fractional: [['on', 5], ['off', 95]] }] },
        metadata: { team: `team-${i % 17}` },
      };
    case 2:
      return { state: 'ENABLED', variants: { new: 'v2', old: 'v1' }, defaultVariant: 'old', targeting: { if: [{ sem_ver: [{ var: 'appVersion' }, '>=', '2.0.0'] }, 'new', null] } };
    default:
      return { state: 'ENABLED', variants: { yes: 'yes', no: 'no' }, defaultVariant: 'no', targeting: { if: [{ $ref: 'corpEmail' }, 'yes', null] } };
  }
}

function fileText(format: Format, count: number, pct: number): string {
  if (format === 'yaml') {
    const parts = ['flags:\n'];
    for (let i = 0; i < count; i++) parts.push(yamlFlag(i, pct));
    return parts.join('');
  }
  const flags: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) flags[`flag-${i}`] = format === 'json' ? ourFlag(i, pct) : flagdFlag(i, pct);
  if (format === 'json') return `${JSON.stringify({ flags }, null, 2)}\n`;
  return `${JSON.stringify({ $schema: 'https://flagd.dev/schema/v0/flags.json', metadata: { flagSetId: 'bench' }, $evaluators: { corpEmail: { ends_with: [{ var: 'email' }, '@example.com'] } }, flags }, null, 2)}\n`;
}

/**
 * The most flags of this format a file within the limits holds: 8 MB of text, and for YAML and
 * JSON (read by the YAML parser) 500,000 values, which these flags reach first.
 */
function maxFlags(format: Format): number {
  const per = Buffer.byteLength(fileText(format, 1_000, 10)) / 1_000;
  let count = Math.floor((FLAG_TEXT_LIMITS.maxBytes * 0.99) / per);
  if (format !== 'flagd') {
    let nodes = 0;
    visit(parseDocument(fileText(format, 200, 10)), () => {
      nodes++;
    });
    count = Math.min(count, Math.floor((FLAG_TEXT_LIMITS.maxExpandedNodes * 0.99) / (nodes / 200)) - 100);
  }
  while (Buffer.byteLength(fileText(format, count, 10)) > FLAG_TEXT_LIMITS.maxBytes - 64) count -= 100;
  return count;
}

/** The longest gap between two turns of the event loop while it runs; `stop` returns it in ms. */
function stallProbe(): { stop: () => number } {
  let last = process.hrtime.bigint();
  let longest = 0n;
  let running = true;
  const tick = (): void => {
    const now = process.hrtime.bigint();
    if (now - last > longest) longest = now - last;
    last = now;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  return {
    stop: () => {
      running = false;
      const now = process.hrtime.bigint();
      return Number((now - last > longest ? now - last : longest) / 1000n) / 1000;
    },
  };
}

interface Figures {
  readonly format: Format;
  readonly mode: Mode;
  readonly flags: number;
  readonly megabytes: number;
  readonly stallMs: Summary;
  /** From the write until the provider serves the new flags. */
  readonly reloadMs: Summary;
}

async function measure(format: Format, count: number, mode: Mode, rounds: number): Promise<Figures> {
  const dir = await mkdtemp(join(tmpdir(), 'reload-stall-bench-'));
  try {
    const path = join(dir, format === 'yaml' ? 'flags.yaml' : 'flags.json');
    const texts = [fileText(format, count, 10), fileText(format, count, 20)] as const;
    await writeFile(path, texts[0]);
    const options = { path, watch: false, ...(mode === 'main thread' ? { workerThresholdBytes: Number.POSITIVE_INFINITY } : {}) };
    const store: WatchedFileStore = format === 'flagd' ? new FlagdFileStore(options) : new FileFlagStore(options);
    const provider = new RolloutProvider({ store, logger: { warn: () => undefined, error: () => undefined } });
    await provider.initialize();
    let changed: (() => void) | undefined;
    provider.events.addHandler(ProviderEvents.ConfigurationChanged, () => changed?.());
    const stalls: number[] = [];
    const reloads: number[] = [];
    // One untimed round first: it starts the worker thread and warms the JIT.
    for (let round = 0; round <= rounds; round++) {
      const served = new Promise<void>((resolve) => (changed = resolve));
      const probe = stallProbe();
      const start = process.hrtime.bigint();
      await writeFile(path, texts[(round + 1) % 2] as string);
      await store.reload();
      await served;
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      const stall = probe.stop();
      if (round > 0) {
        stalls.push(stall);
        reloads.push(ms);
      }
    }
    await provider.onClose();
    return { format, mode, flags: count, megabytes: Buffer.byteLength(texts[0]) / 1024 / 1024, stallMs: summarise(stalls), reloadMs: summarise(reloads) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The same probe with nothing to do: what the machine's own scheduling costs (a loaded machine stalls anyway). */
async function idleStall(): Promise<Summary> {
  const stalls: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const probe = stallProbe();
    await new Promise((resolve) => setTimeout(resolve, 300));
    stalls.push(probe.stop());
  }
  return summarise(stalls);
}

const idle = await idleStall();
const results: Figures[] = [];
for (const format of ['yaml', 'json', 'flagd'] as const) {
  const counts = quick ? [100, 1_000] : [100, 1_000, maxFlags(format)];
  for (const count of counts) {
    // The largest files take seconds a round on the main thread: fewer rounds there.
    const rounds = count > 1_000 ? Math.max(3, Math.ceil(ROUNDS / 2)) : ROUNDS;
    for (const mode of ['worker', 'main thread'] as const) results.push(await measure(format, count, mode, rounds));
  }
}

if (json) {
  process.stdout.write(
    `${JSON.stringify({
      idleStallMedianMs: idle.median,
      ...Object.fromEntries(
        results.map((r) => [
          `${r.format}-${r.flags}-${r.mode === 'worker' ? 'worker' : 'main'}`,
          { megabytes: r.megabytes, stallMedianMs: r.stallMs.median, stallMaxMs: r.stallMs.max, reloadMedianMs: r.reloadMs.median, targetMs: TARGET_MS },
        ]),
      ),
    })}\n`,
  );
} else {
  const ms = (x: number) => x.toFixed(x < 10 ? 1 : 0);
  process.stdout.write(`longest event-loop stall while a changed file reloads (provider watching), median (max) of ${ROUNDS} rounds (${Math.max(3, Math.ceil(ROUNDS / 2))} at the largest size); target ${TARGET_MS} ms\n`);
  process.stdout.write(`  the probe alone, no reload: ${ms(idle.median)} ms (max ${ms(idle.max)}): the machine's own share of every figure\n`);
  process.stdout.write(`  format  flags    size     read in       stall ms          reload ms\n`);
  for (const r of results) {
    const verdict = r.mode === 'worker' ? (r.stallMs.max <= TARGET_MS ? '' : '  OVER') : '';
    process.stdout.write(
      `  ${r.format.padEnd(6)} ${String(r.flags).padStart(6)} ${`${r.megabytes.toFixed(2)} MB`.padStart(8)}  ${r.mode.padEnd(11)}  ${`${ms(r.stallMs.median)} (${ms(r.stallMs.max)})`.padStart(14)}  ${ms(r.reloadMs.median).padStart(9)}${verdict}\n`,
    );
  }
}
