// Seeded random numbers for tests and benchmarks: mulberry32 and the latency distributions
// drawn from it, so every run sees the same data and a failure can be replayed.

/** Uniform in [0, 1). */
export type Random = () => number;

/** Tommy Ettinger's mulberry32: 32 bits of state, good enough for test data, and tiny. */
export function mulberry32(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal by Box-Muller (one of the pair; simplicity over speed). */
export function normal(random: Random): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Lognormal with the given median; sigma is the standard deviation of ln(value). */
export function lognormal(random: Random, medianMs: number, sigma: number): number {
  return medianMs * Math.exp(sigma * normal(random));
}

export function exponential(random: Random, meanMs: number): number {
  return -meanMs * Math.log(1 - random());
}

/** Pareto type I: never below scaleMs, with a tail that gets heavier as alpha falls toward 1. */
export function pareto(random: Random, scaleMs: number, alpha: number): number {
  return scaleMs / Math.pow(1 - random(), 1 / alpha);
}

export function uniform(random: Random, fromMs: number, toMs: number): number {
  return fromMs + (toMs - fromMs) * random();
}

/** A Poisson count with mean `lambda` (Knuth for small means, a rounded normal for large). */
export function poisson(random: Random, lambda: number): number {
  if (lambda <= 0) return 0;
  if (lambda > 50) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * normal(random)));
  const limit = Math.exp(-lambda);
  let k = 0;
  let p = random();
  while (p > limit) {
    k++;
    p *= random();
  }
  return k;
}
