// The evidence for one check of one flag (error rate, or the share of requests slower than a
// threshold) since its rollout or plan step began: anytime-valid sequential tests that may be
// read after every slot forever, and a bounded history of counts to date a breach's onset.
// Pure: slots are folded in once each, in order, with their times; nothing here reads a clock.
import { type MixtureComponent, binomialLlr, confidenceSequence, logMixture, mixtureReaches, mixtureSteps, oddsMixtureSteps } from './statistics.js';

// Alternatives of the confirming test, as multiples of the limit. Most weight sits on modest
// breaches (1.3x-2x), which need the most evidence; the large ones gain so fast per request
// that a small weight costs them little. (Weights chosen by simulation: detection's p95 for
// 1.5x and 2x the limit within about 2.7x Wald's E[N], where the oracle SPRT itself is 2.4-2.6x.)
const CONFIRM_COMPONENTS: readonly MixtureComponent[] = [
  { multiple: 1.3, weight: 0.3 },
  { multiple: 1.6, weight: 0.3 },
  { multiple: 2, weight: 0.25 },
  { multiple: 4, weight: 0.1 },
  { multiple: 10, weight: 0.05 },
];
// Alternatives on the odds scale, for shares near one half (conversion checks): a treatment
// converting 20% less than the baseline moves the baseline's share of conversions from 0.51 to
// 0.56, an odds ratio of about 1.2, so the weight sits between 1.05x and 1.5x.
const ODDS_COMPONENTS: readonly MixtureComponent[] = [
  { multiple: 1.05, weight: 0.2 },
  { multiple: 1.1, weight: 0.25 },
  { multiple: 1.2, weight: 0.25 },
  { multiple: 1.5, weight: 0.2 },
  { multiple: 3, weight: 0.1 },
];
// The fast path's test: its null is fastPathFactor x the limit, its alternatives multiples of that.
const FAST_COMPONENTS: readonly MixtureComponent[] = [
  { multiple: 1.5, weight: 0.25 },
  { multiple: 2, weight: 0.25 },
  { multiple: 4, weight: 0.25 },
  { multiple: 8, weight: 0.25 },
];

/** Share of the false-rollback budget the test started with the rollout gets; restarts share the rest per hour. */
const EPOCH_SHARE = 0.8;
/** The fast path spends a hundredth of the budget: it must never act on a breach that is merely real. */
const FAST_SHARE = 0.01;
const HOUR_MS = 3_600_000;
/** Restarted tests kept at once besides the first; older ones are retired (retiring never adds a false alarm). */
const MAX_RESTARTS = 12;
/** ln 100: how much better two rates (before and after a split) must explain the data than one for a change within them. */
const CHANGE_EVIDENCE = Math.log(100);
/** ln 100: a recent stretch (or a fifth of the span) this much likelier at the limit than at the breach's rate says the breach has passed (or was not one breach). */
const RECOVERY_EVIDENCE = Math.log(100);
/** Segments of history kept; older ones merge pairwise, so resolution coarsens with age. */
const MAX_SEGMENTS = 96;
/** Suffix sums for onset(), reused across calls (JavaScript runs one onset() at a time). */
let suffixScratch = { n: new Float64Array(MAX_SEGMENTS + 16), k: new Float64Array(MAX_SEGMENTS + 16), e: new Float64Array(MAX_SEGMENTS + 16) };

export interface CheckEvidenceOptions {
  /** False-rollback budget: 1 - confidence. */
  readonly alpha: number;
  /** A restarted test begins every restartEveryMs, so a breach that starts late is judged on its own evidence. */
  readonly restartEveryMs: number;
  /** Slots this recent are never merged (the breach-holding check reads them). */
  readonly fineMs: number;
  /** The fast path's null as a multiple of the limit; undefined when the fast path is off. */
  readonly fastPathFactor: number | undefined;
  readonly startMs: number;
  /** How alternatives are spaced: multiples of the limit (rare events, the default) or of its odds (shares near one half). */
  readonly scale?: 'rate' | 'odds';
}

interface SequentialTest {
  /** Log likelihood ratio of each confirming alternative against the limit. */
  readonly logs: Float64Array;
  readonly fastLogs: Float64Array;
  /** ln(1/alpha) this test must reach. */
  readonly threshold: number;
  readonly fastThreshold: number;
}

/** Counts of a span of history: requests, events (errors or slow ones), and events expected at the limit. */
interface Segment {
  startMs: number;
  endMs: number;
  n: number;
  k: number;
  expected: number;
}

/** What the evidence says now, for the judge. */
export interface EvidenceReading {
  /** Requests and events since the rollout or step began. */
  readonly samples: number;
  readonly events: number;
  /** The limit averaged over those requests (it moves in relative mode). */
  readonly limit: number;
  /** Anytime-valid bounds on the rate since the start. */
  readonly lowerBound: number;
  readonly upperBound: number;
  /** The strongest test's e-value over its threshold, as a log: >= 0 means the limit is confidently exceeded. */
  readonly logEvidence: number;
  /** ln e-value and ln threshold of that test. */
  readonly logE: number;
  readonly logThreshold: number;
  /** ln(1/alpha) of the test begun with the rollout or step. */
  readonly epochThreshold: number;
  readonly fastRejected: boolean;
  /** Where the breach most likely began (start of the suffix most above its limit), if the data are above it anywhere. */
  readonly onsetMs: number | undefined;
  /** Requests and events since the onset. */
  readonly onsetSamples: number;
  readonly onsetEvents: number;
  /** The likelihood ratio (log) of the suffix most above its limit: chosen after the fact, so a hint, never a test. */
  readonly onsetLlr: number;
  /** Whether the breach has held throughout its span since the onset and has not visibly passed (see holds()). */
  readonly stillHolding: boolean;
  /** End of the last slot folded in. */
  readonly throughMs: number;
}

export class CheckEvidence {
  private readonly alpha: number;
  private readonly restartEveryMs: number;
  private readonly fineMs: number;
  private readonly fastPathFactor: number | undefined;
  private readonly tests: SequentialTest[] = [];
  private readonly segments: Segment[] = [];
  private samples = 0;
  private events = 0;
  private expected = 0;
  private lastRestartMs: number;
  private throughMs: number;
  private cachedP0 = Number.NaN;
  private readonly components: readonly MixtureComponent[];
  private readonly stepsFor: typeof mixtureSteps;
  private steps: ReturnType<typeof mixtureSteps>;
  /** The fast path's steps, or undefined when its null (factor x limit) reaches 1 and it cannot act. */
  private fastSteps: ReturnType<typeof mixtureSteps> | undefined;

  constructor(options: CheckEvidenceOptions) {
    this.alpha = options.alpha;
    this.restartEveryMs = options.restartEveryMs;
    this.fineMs = options.fineMs;
    this.fastPathFactor = options.fastPathFactor;
    const odds = options.scale === 'odds';
    this.components = odds ? ODDS_COMPONENTS : CONFIRM_COMPONENTS;
    this.stepsFor = odds ? oddsMixtureSteps : mixtureSteps;
    this.steps = this.stepsFor(this.components, 0.5);
    this.lastRestartMs = options.startMs;
    this.throughMs = options.startMs;
    this.tests.push(this.newTest(this.alpha * EPOCH_SHARE));
  }

  /** Counts one slot [startMs, endMs): n requests, k of them events, against the limit p0 in force then. */
  fold(startMs: number, endMs: number, n: number, k: number, p0: number): void {
    this.throughMs = endMs;
    if (startMs - this.lastRestartMs >= this.restartEveryMs) {
      this.lastRestartMs = startMs;
      // Each restart spends its share of the hourly budget: the rate of false alarms per hour
      // of watching stays at alpha whatever the length of the step.
      this.tests.push(this.newTest((this.alpha * (1 - EPOCH_SHARE) * this.restartEveryMs) / HOUR_MS));
      if (this.tests.length > MAX_RESTARTS + 1) this.tests.splice(1, 1);
    }
    this.pushSegment(startMs, endMs, n, k, n * p0);
    if (n === 0) return;
    this.samples += n;
    this.events += k;
    this.expected += n * p0;
    if (!(p0 > 0 && p0 < 1)) return; // a limit of 0 or 1 is decided by the counts alone, below
    if (p0 !== this.cachedP0) {
      this.cachedP0 = p0;
      this.steps = this.stepsFor(this.components, p0);
      const fastP0 = this.fastPathFactor === undefined ? 1 : this.fastPathFactor * p0;
      this.fastSteps = fastP0 < 1 ? mixtureSteps(FAST_COMPONENTS, fastP0) : undefined;
    }
    const { hit, miss } = this.steps;
    const fast = this.fastSteps;
    for (const test of this.tests) {
      for (let i = 0; i < hit.length; i++) test.logs[i] = (test.logs[i] as number) + k * (hit[i] as number) + (n - k) * (miss[i] as number);
      // A slot whose limit leaves the fast path nothing to reject gives it no evidence either way.
      if (fast !== undefined) for (let i = 0; i < fast.hit.length; i++) test.fastLogs[i] = (test.fastLogs[i] as number) + k * (fast.hit[i] as number) + (n - k) * (fast.miss[i] as number);
    }
  }

  /**
   * Whether a test rejects the limit (or the fast path its own): what any breach needs first.
   * Cheap, for readers that act only on a breach: no onset is dated.
   */
  rejects(): boolean {
    if (this.samples > 0 && this.expected === 0 && this.events > 0) return true;
    for (const test of this.tests) {
      if (mixtureReaches(this.components, test.logs, test.threshold)) return true;
      if (this.fastPathFactor !== undefined && mixtureReaches(FAST_COMPONENTS, test.fastLogs, test.fastThreshold)) return true;
    }
    return false;
  }

  read(): EvidenceReading {
    const limit = this.samples > 0 ? this.expected / this.samples : this.cachedP0;
    const bounds = confidenceSequence(this.events, this.samples, this.alpha * EPOCH_SHARE);
    let best = Number.NEGATIVE_INFINITY;
    let bestLogE = Number.NEGATIVE_INFINITY;
    let bestThreshold = Number.POSITIVE_INFINITY;
    let fastRejected = false;
    for (const test of this.tests) {
      // A mixture is never above its largest component: a test that cannot beat the best is skipped.
      let top = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < test.logs.length; i++) if ((test.logs[i] as number) > top) top = test.logs[i] as number;
      const logE = top - test.threshold > best || best === Number.NEGATIVE_INFINITY ? logMixture(this.components, test.logs) : Number.NEGATIVE_INFINITY;
      if (logE - test.threshold > best) {
        best = logE - test.threshold;
        bestLogE = logE;
        bestThreshold = test.threshold;
      }
      if (!fastRejected && this.fastPathFactor !== undefined && mixtureReaches(FAST_COMPONENTS, test.fastLogs, test.fastThreshold)) fastRejected = true;
    }
    // A limit of 0 is breached by one event; a limit of 1 never.
    if (limit === 0 && this.events > 0) {
      best = Number.POSITIVE_INFINITY;
      fastRejected = this.fastPathFactor !== undefined;
    }
    const found = this.onset();
    const onset = found?.segment;
    return {
      samples: this.samples,
      events: this.events,
      limit,
      lowerBound: bounds.lower,
      upperBound: bounds.upper,
      logEvidence: best,
      logE: bestLogE,
      logThreshold: bestThreshold,
      epochThreshold: (this.tests[0] as SequentialTest).threshold,
      fastRejected,
      onsetMs: onset?.startMs,
      onsetSamples: onset?.n ?? 0,
      onsetEvents: onset?.k ?? 0,
      onsetLlr: found?.llr ?? 0,
      stillHolding: onset === undefined ? false : this.holds(onset),
      throughMs: this.throughMs,
    };
  }

  /** Moves every time held by `deltaMs` (the clock stepped). */
  shift(deltaMs: number): void {
    this.throughMs += deltaMs;
    this.lastRestartMs += deltaMs;
    for (const s of this.segments) {
      s.startMs += deltaMs;
      s.endMs += deltaMs;
    }
  }

  /** Bytes held, for the memory budget. */
  byteSize(): number {
    return 200 + this.tests.length * (64 + 16 * (this.components.length + FAST_COMPONENTS.length)) + this.segments.length * 72;
  }

  private newTest(alpha: number): SequentialTest {
    return {
      logs: new Float64Array(this.components.length),
      fastLogs: new Float64Array(FAST_COMPONENTS.length),
      threshold: Math.log(1 / alpha),
      fastThreshold: Math.log(1 / (alpha * FAST_SHARE)),
    };
  }

  private pushSegment(startMs: number, endMs: number, n: number, k: number, expected: number): void {
    const last = this.segments[this.segments.length - 1];
    // Runs of empty slots are one segment: a quiet service costs no memory.
    if (last !== undefined && n === 0 && last.n === 0) {
      last.endMs = endMs;
      return;
    }
    this.segments.push({ startMs, endMs, n, k, expected });
    if (this.segments.length <= MAX_SEGMENTS) return;
    // Merge the adjacent pair spanning the least time among those older than the fine zone.
    const fineFrom = this.throughMs - this.fineMs;
    let pick = -1;
    let shortest = Number.POSITIVE_INFINITY;
    for (let i = 0; i + 1 < this.segments.length; i++) {
      const a = this.segments[i] as Segment;
      const b = this.segments[i + 1] as Segment;
      if (b.endMs > fineFrom) break;
      const span = b.endMs - a.startMs;
      if (span < shortest) {
        shortest = span;
        pick = i;
      }
    }
    if (pick < 0) pick = 0; // everything is recent: merge the oldest
    const a = this.segments[pick] as Segment;
    const b = this.segments[pick + 1] as Segment;
    a.endMs = b.endMs;
    a.n += b.n;
    a.k += b.k;
    a.expected += b.expected;
    this.segments.splice(pick + 1, 1);
  }

  /**
   * When the breach began. If the data since the start show no change of rate (a rate before
   * and another after the best split explain them no better than one rate, by less than
   * CHANGE_EVIDENCE), the treatment has been as it is since the rollout or step began: the
   * onset is the start. Otherwise it is the maximum-likelihood change point: the start of the
   * suffix most above its limit. Never an earlier time the data merely allow, so "held for N s"
   * does not claim more than happened.
   */
  private onset(): { segment: Segment; llr: number } | undefined {
    const count = this.segments.length;
    let n = 0;
    let k = 0;
    let expected = 0;
    let bestLlr = 0;
    let best = -1;
    // Scratch shared by every check: read once per tick per check, so it need not allocate.
    if (suffixScratch.n.length < count + 1) suffixScratch = { n: new Float64Array(count + 16), k: new Float64Array(count + 16), e: new Float64Array(count + 16) };
    const { n: suffixN, k: suffixK, e: suffixE } = suffixScratch;
    suffixN[count] = 0;
    suffixK[count] = 0;
    suffixE[count] = 0;
    for (let i = count - 1; i >= 0; i--) {
      const s = this.segments[i] as Segment;
      n += s.n;
      k += s.k;
      expected += s.expected;
      suffixN[i] = n;
      suffixK[i] = k;
      suffixE[i] = expected;
      if (n === 0 || s.n === 0) continue;
      const p0 = expected / n;
      if (k / n <= p0) continue;
      const llr = p0 > 0 && p0 < 1 ? binomialLlr(k, n, p0) : Number.POSITIVE_INFINITY;
      if (llr > bestLlr) {
        bestLlr = llr;
        best = i;
      }
    }
    if (best < 0) return undefined;
    const at = (i: number): Segment => ({ startMs: (this.segments[i] as Segment).startMs, endMs: this.throughMs, n: suffixN[i] as number, k: suffixK[i] as number, expected: suffixE[i] as number });
    const first = this.segments.findIndex((s) => s.n > 0);
    const allN = suffixN[0] as number;
    const allK = suffixK[0] as number;
    // Above the limit over the whole span, with no evidence of a change within it: since the start.
    if (first >= 0 && allK / allN > (suffixE[0] as number) / allN && changeEvidence(suffixN, suffixK, first, count) < CHANGE_EVIDENCE) return { segment: at(first), llr: bestLlr };
    return { segment: at(best), llr: bestLlr };
  }

  /**
   * A breach has held, and still holds, when no fifth of its span since the onset is 100:1
   * evidence for the limit's rate over the breach's (two bursts with a healthy gap read as the
   * limit's rate between them), and no recent stretch is confident evidence that the rate is
   * back at the limit (a blip that has passed): the newest suffixes are scanned for a likelihood
   * ratio of the limit against the breach's rate of RECOVERY_EVIDENCE or more.
   */
  private holds(onset: Segment): boolean {
    const p1 = onset.k / onset.n;
    const spanMs = this.throughMs - onset.startMs;
    for (let part = 0; part < 5; part++) {
      const fromMs = onset.startMs + (spanMs * part) / 5;
      if (this.llrBetween(fromMs, fromMs + spanMs / 5, p1) < -RECOVERY_EVIDENCE) return false;
    }
    let n = 0;
    let k = 0;
    let expected = 0;
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const s = this.segments[i] as Segment;
      if (s.startMs < onset.startMs) break;
      n += s.n;
      k += s.k;
      expected += s.expected;
      if (n < 1) continue;
      const p0 = expected / n;
      if (!(p0 > 0 && p0 < 1 && p1 < 1)) continue;
      if (-(k * Math.log(p1 / p0) + (n - k) * Math.log((1 - p1) / (1 - p0))) >= RECOVERY_EVIDENCE) return false;
    }
    return true;
  }

  /** Log likelihood ratio of rate p1 against the limit over [fromMs, toMs); segments straddling an end count in proportion. */
  private llrBetween(fromMs: number, toMs: number, p1: number): number {
    let n = 0;
    let k = 0;
    let expected = 0;
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const s = this.segments[i] as Segment;
      if (s.endMs <= fromMs) break;
      if (s.startMs >= toMs) continue;
      const share = (Math.min(s.endMs, toMs) - Math.max(s.startMs, fromMs)) / (s.endMs - s.startMs);
      n += s.n * share;
      k += s.k * share;
      expected += s.expected * share;
    }
    if (n < 1) return 0;
    const p0 = expected / n;
    if (!(p0 > 0 && p0 < 1 && p1 < 1)) return k > 0 || p0 <= 0 ? 0 : Number.NEGATIVE_INFINITY;
    return k * Math.log(p1 / p0) + (n - k) * Math.log((1 - p1) / (1 - p0));
  }
}

/** k ln p + (n - k) ln(1 - p) at the maximum-likelihood p = k/n (0 ln 0 = 0). */
function maxLogLikelihood(k: number, n: number): number {
  if (n <= 0 || k <= 0 || k >= n) return 0;
  const p = k / n;
  return k * Math.log(p) + (n - k) * Math.log1p(-p);
}

/**
 * The log likelihood ratio of the best two-rate split of segments [first, count) against one
 * rate for all: how strongly the data say the rate changed somewhere within them.
 */
function changeEvidence(suffixN: Float64Array, suffixK: Float64Array, first: number, count: number): number {
  const allN = suffixN[first] as number;
  const allK = suffixK[first] as number;
  const one = maxLogLikelihood(allK, allN);
  let best = 0;
  for (let split = first + 1; split < count; split++) {
    const afterN = suffixN[split] as number;
    const afterK = suffixK[split] as number;
    const gain = maxLogLikelihood(allK - afterK, allN - afterN) + maxLogLikelihood(afterK, afterN) - one;
    if (gain > best) best = gain;
  }
  return best;
}
