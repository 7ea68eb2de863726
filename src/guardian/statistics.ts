// The statistics the judge stands on: likelihood ratios and mixtures of them (anytime-valid
// e-values), confidence sequences for a proportion, and Wald's SPRT expected sample size (the
// benchmark a detector is held to).

/** Log-likelihood ratio of rate p against `limit` for k events in n trials. */
export function binomialLlr(k: number, n: number, limit: number): number {
  if (n === 0) return 0;
  const p = k / n;
  const hit = k === 0 ? 0 : k * Math.log(p / limit);
  const miss = n === k ? 0 : (n - k) * Math.log((1 - p) / (1 - limit));
  return hit + miss;
}

/**
 * Wald's approximation of the expected number of samples an SPRT needs to tell rate p1
 * from p0 when p1 is true, with error rates alpha (false alarm) and beta (miss).
 */
export function sprtExpectedSamples(p0: number, p1: number, alpha: number, beta: number): number {
  const a = Math.log((1 - beta) / alpha);
  const b = Math.log(beta / (1 - alpha));
  const drift = p1 * Math.log(p1 / p0) + (1 - p1) * Math.log((1 - p1) / (1 - p0));
  return ((1 - beta) * a + beta * b) / drift;
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-13). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const g = 7;
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  const y = x - 1;
  let a = c[0] as number;
  const t = y + g + 0.5;
  for (let i = 1; i < 9; i++) a += (c[i] as number) / (y + i);
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(a);
}

function logBeta(a: number, b: number): number {
  return logGamma(a) + logGamma(b) - logGamma(a + b);
}

/** k ln p + (n - k) ln(1 - p), with 0 ln 0 = 0. */
function logLikelihood(k: number, n: number, p: number): number {
  return (k === 0 ? 0 : k * Math.log(p)) + (n === k ? 0 : (n - k) * Math.log1p(-p));
}

// Robbins' beta-binomial mixture: under a true rate p, the ratio of the Beta(a, b) mixture's
// likelihood to p's is a nonnegative martingale, so by Ville's inequality it stays below 1/alpha
// at every n at once with probability 1 - alpha. The rates it has not ruled out form a
// confidence sequence: bounds that hold however often they are read. Beta(1/2, 1/2) (Jeffreys)
// keeps the bounds tight near 0, where error rates live.
const CS_A = 0.5;
const CS_B = 0.5;

function mixtureLogRatio(k: number, n: number, p: number): number {
  return logBeta(k + CS_A, n - k + CS_B) - logBeta(CS_A, CS_B) - logLikelihood(k, n, p);
}

/**
 * Anytime-valid bounds on a proportion from k events in n trials: with probability at least
 * 1 - alpha the true rate lies within [lower, upper] at every n simultaneously, so a monitor may
 * read them after every slot forever. [0, 1] with no data. `near` (the bounds read a slot ago)
 * only starts the search: the answer is the same to 1e-10 wherever it starts.
 */
export function confidenceSequence(k: number, n: number, alpha: number, near?: { lower: number; upper: number }): { lower: number; upper: number } {
  if (!(n > 0)) return { lower: 0, upper: 1 };
  // The mixture's own likelihood does not depend on p: only p's likelihood moves in the search.
  const mixture = mixtureLogRatio(k, n, 0.5) + logLikelihood(k, n, 0.5);
  const limit = Math.log(1 / alpha);
  const p = k / n;
  const lower = k === 0 || mixture - logLikelihood(k, n, Number.MIN_VALUE) < limit ? 0 : solveBound(k, n, mixture, limit, 0, p, true, near?.lower);
  const upper = k === n || mixture - logLikelihood(k, n, 1 - 1e-15) < limit ? 1 : solveBound(k, n, mixture, limit, p, 1, false, near?.upper);
  return { lower, upper };
}

/**
 * Where the mixture's ratio against rate q, mixture - logLikelihood(k, n, q), crosses `limit`
 * within [lo, hi]: Newton's method kept inside the bracket, halving it whenever a step would
 * leave it; a few steps to 1e-10 where bisection alone needs 34. `outsideIsLo`: the ratio is
 * above the limit at lo (the lower bound) rather than at hi (the upper).
 */
function solveBound(k: number, n: number, mixture: number, limit: number, lo: number, hi: number, outsideIsLo: boolean, start: number | undefined): number {
  let q = start !== undefined && start > lo && start < hi ? start : (lo + hi) / 2;
  for (let i = 0; i < 80; i++) {
    const f = mixture - logLikelihood(k, n, q) - limit;
    if (f >= 0 === outsideIsLo) lo = q;
    else hi = q;
    // d ratio / dq: the likelihood of q falls away from the estimate on either side.
    const slope = (n - k) / (1 - q) - k / q;
    const step = q - f / slope;
    const next = step > lo && step < hi ? step : (lo + hi) / 2;
    const done = Math.abs(next - q) <= 1e-10 * Math.max(q, 1e-12) || hi - lo <= 1e-10 * Math.max(hi, 1e-12);
    q = next;
    if (done) break;
  }
  return q;
}

/** One alternative rate of a mixture test, as a multiple of the null rate, with its prior weight. */
export interface MixtureComponent {
  readonly multiple: number;
  readonly weight: number;
}

/**
 * The per-event and per-non-event log-likelihood ratios of each alternative against `p0`.
 * Alternatives at or above 1 are pulled to halfway between p0 and 1.
 */
export function mixtureSteps(components: readonly MixtureComponent[], p0: number): { hit: Float64Array; miss: Float64Array } {
  const hit = new Float64Array(components.length);
  const miss = new Float64Array(components.length);
  components.forEach((c, i) => {
    const p1 = Math.min(c.multiple * p0, (1 + p0) / 2);
    hit[i] = Math.log(p1 / p0);
    miss[i] = Math.log1p(-p1) - Math.log1p(-p0);
  });
  return { hit, miss };
}

/**
 * As mixtureSteps, with each alternative's odds a multiple of p0's: the scale for shares near
 * one half (one cohort's part of the conversions of two), where multiples of p0 would leave 1.
 */
export function oddsMixtureSteps(components: readonly MixtureComponent[], p0: number): { hit: Float64Array; miss: Float64Array } {
  const hit = new Float64Array(components.length);
  const miss = new Float64Array(components.length);
  const odds0 = p0 / (1 - p0);
  components.forEach((c, i) => {
    const odds1 = c.multiple * odds0;
    const p1 = odds1 / (1 + odds1);
    hit[i] = Math.log(p1 / p0);
    miss[i] = Math.log1p(-p1) - Math.log1p(-p0);
  });
  return { hit, miss };
}

/** ln of sum_i weight_i * exp(logs_i): the log e-value of a mixture from each component's log likelihood ratio. */
export function logMixture(components: readonly MixtureComponent[], logs: Float64Array): number {
  const weights = logWeightsOf(components);
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logs.length; i++) max = Math.max(max, (logs[i] as number) + (weights[i] as number));
  if (max === Number.NEGATIVE_INFINITY) return max;
  let sum = 0;
  for (let i = 0; i < logs.length; i++) sum += Math.exp((logs[i] as number) + (weights[i] as number) - max);
  return max + Math.log(sum);
}

/**
 * Whether the mixture's log e-value reaches `threshold`, without exponentials when it cannot:
 * the weights sum to at most 1, so the mixture is never above its largest component.
 */
export function mixtureReaches(components: readonly MixtureComponent[], logs: Float64Array, threshold: number): boolean {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logs.length; i++) if ((logs[i] as number) > max) max = logs[i] as number;
  return max >= threshold && logMixture(components, logs) >= threshold;
}

const logWeights = new WeakMap<readonly MixtureComponent[], Float64Array>();

/** ln(weight) of each component, worked out once per mixture (the mixtures are read every slot). */
export function logWeightsOf(components: readonly MixtureComponent[]): Float64Array {
  let w = logWeights.get(components);
  if (w === undefined) {
    w = Float64Array.from(components, (c) => Math.log(c.weight));
    logWeights.set(components, w);
  }
  return w;
}

/** Kullback-Leibler divergence of Bernoulli(p) from Bernoulli(q): the drift of an SPRT per trial. */
export function bernoulliKl(p: number, q: number): number {
  return logLikelihood(p, 1, p) - (p === 0 ? 0 : p * Math.log(q)) - (p === 1 ? 0 : (1 - p) * Math.log1p(-q));
}
