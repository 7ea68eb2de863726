// The timing harness of the benchmarks: contenders run in interleaved rounds in one
// process, so a noisy neighbour or a CPU frequency change hits them all alike, and each
// is summarised by the median of its per-round ns/op, with min and quartiles beside it.

/** One operation repeated `iterations` times; returns a checksum so the work cannot be elided. */
export type Contender =
  | { readonly name: string; readonly kind: 'sync'; readonly run: (iterations: number) => number }
  | { readonly name: string; readonly kind: 'async'; readonly run: (iterations: number) => Promise<number> };

/** Contenders compared with each other: same iteration count, order rotated every round. */
export interface Group {
  readonly name: string;
  readonly iterations: number;
  readonly contenders: readonly Contender[];
  /** Called with every batch's checksum; throws when a result is wrong. */
  readonly check?: (contender: string, iterations: number, checksum: number) => void;
}

/** A summary of samples: ns per operation for a contender, a plain number for a ratio. */
export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly p25: number;
  readonly p75: number;
  readonly max: number;
  /** Every sample, in round order. */
  readonly samples: readonly number[];
}

export interface RunOptions {
  readonly rounds: number;
  /** Untimed passes over every contender before the first round. */
  readonly warmupRounds: number;
}

/** Linear-interpolated quantile (type 7) of sorted values. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const a = sorted[lo] as number;
  const b = sorted[Math.min(lo + 1, sorted.length - 1)] as number;
  return a + (h - lo) * (b - a);
}

export function summarise(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((x, y) => x - y);
  return {
    median: quantile(sorted, 0.5),
    min: sorted[0] ?? Number.NaN,
    p25: quantile(sorted, 0.25),
    p75: quantile(sorted, 0.75),
    max: sorted[sorted.length - 1] ?? Number.NaN,
    samples,
  };
}

async function timeBatch(group: Group, contender: Contender): Promise<number> {
  let checksum: number;
  let start: bigint;
  let end: bigint;
  if (contender.kind === 'sync') {
    start = process.hrtime.bigint();
    checksum = contender.run(group.iterations);
    end = process.hrtime.bigint();
  } else {
    start = process.hrtime.bigint();
    checksum = await contender.run(group.iterations);
    end = process.hrtime.bigint();
  }
  group.check?.(contender.name, group.iterations, checksum);
  return Number(end - start) / group.iterations;
}

function rotated<T>(items: readonly T[], by: number): T[] {
  const n = items.length;
  return items.map((_, i) => items[(i + by) % n] as T);
}

/**
 * Warms every contender up, then runs `rounds` rounds; in round r the groups and the
 * contenders inside each group start at offset r, so no contender always runs first.
 * Returns each contender's ns per operation, one sample a round.
 */
export async function runRounds(groups: readonly Group[], options: RunOptions): Promise<Map<string, Summary>> {
  for (let w = 0; w < options.warmupRounds; w++) {
    for (const group of groups) for (const contender of group.contenders) await timeBatch(group, contender);
  }
  const samples = new Map<string, number[]>();
  for (const group of groups) for (const contender of group.contenders) samples.set(contender.name, []);
  for (let r = 0; r < options.rounds; r++) {
    for (const group of rotated(groups, r)) {
      for (const contender of rotated(group.contenders, r)) {
        (samples.get(contender.name) as number[]).push(await timeBatch(group, contender));
      }
    }
  }
  const summaries = new Map<string, Summary>();
  for (const [name, values] of samples) summaries.set(name, summarise(values));
  return summaries;
}

/** Per-round ratios a/b (both measured in the same round): how steady a ratio of medians is. */
export function roundRatios(a: Summary, b: Summary): Summary {
  return summarise(a.samples.map((x, i) => x / (b.samples[i] as number)));
}

/** `--rounds=N` from the command line, at least 3. */
export function roundsOption(argv: readonly string[], fallback: number): number {
  const arg = argv.find((a) => a.startsWith('--rounds='));
  if (arg === undefined) return fallback;
  const n = Number(arg.slice('--rounds='.length));
  if (!Number.isInteger(n) || n < 3) fail(`expected --rounds=N with N an integer of at least 3, got ${arg}`);
  return n;
}

/** Stops the bench with a message: a benchmark that cannot be trusted prints nothing. */
export function fail(message: string): never {
  process.stderr.write(`bench aborted: ${message}\n`);
  process.exit(1);
}
