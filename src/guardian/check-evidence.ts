// The evidence for one check of one flag (error rate, or the share of requests slower than a
// threshold) since its rollout or plan step began: anytime-valid sequential tests that may be
// read after every slot forever, and a bounded history of counts to date a breach's onset.
// Pure: slots are folded in once each, in order, with their times; nothing here reads a clock.
import { type MixtureComponent, binomialLlr, confidenceSequence, logMixture, logWeightsOf, mixtureReaches, mixtureSteps, oddsMixtureSteps } from './statistics.js';

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
/** The design of the rate-scale tests, for a reader that works the evidence out anew (the tests check the running counts against slot-by-slot sums). */
export const TEST_DESIGN = { confirm: CONFIRM_COMPONENTS, fast: FAST_COMPONENTS, epochShare: EPOCH_SHARE, fastShare: FAST_SHARE, maxRestarts: MAX_RESTARTS, hourMs: HOUR_MS } as const;
/** ln 100: how much better two rates (before and after a split) must explain the data than one for a change within them. */
const CHANGE_EVIDENCE = Math.log(100);
/** ln 100: a recent stretch (or a fifth of the span) this much likelier at the limit than at the breach's rate says the breach has passed (or was not one breach). */
const RECOVERY_EVIDENCE = Math.log(100);
/** Segments of history kept; older ones merge pairwise, so resolution coarsens with age. */
const MAX_SEGMENTS = 96;
/** A segment's numbers in CheckEvidence's history, and where each sits. */
const SEGMENT_FIELDS = 5;
const SEG_START = 0;
const SEG_END = 1;
const SEG_N = 2;
const SEG_K = 3;
const SEG_EXPECTED = 4;
/** What a Float64Array costs besides its contents (its object, buffer and backing store), so that byteSize() matches the heap: a check with 6 h of history measured 8.5-9.5 KB with node --expose-gc. */
const TYPED_ARRAY_BYTES = 400;
/** Each test's largest component over its threshold, for read(), reused across calls (JavaScript runs one read() at a time). */
const topsScratch = new Float64Array(MAX_RESTARTS + 1);
/** Suffix sums for onset(), reused the same way. */
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
  /** Whether the breach has held throughout its span since the onset and has not visibly passed (see holds()); read only when a test rejects, false otherwise. */
  readonly stillHolding: boolean;
  /** End of the last slot folded in. */
  readonly throughMs: number;
}

/** The span of history from startMs to the newest slot: its requests and events (errors or slow ones). */
interface Span {
  readonly startMs: number;
  readonly n: number;
  readonly k: number;
}

export class CheckEvidence {
  private readonly alpha: number;
  private readonly restartEveryMs: number;
  private readonly fineMs: number;
  private readonly fastPathFactor: number | undefined;
  private readonly components: readonly MixtureComponent[];
  private readonly stepsFor: typeof mixtureSteps;
  private steps: ReturnType<typeof mixtureSteps>;
  /** The fast path's steps, or undefined when its null (factor x limit) reaches 1 and it cannot act. */
  private fastSteps: ReturnType<typeof mixtureSteps> | undefined;
  private cachedP0 = Number.NaN;
  private samples = 0;
  private events = 0;
  private expected = 0;
  /** Requests and events of the slots whose limit lies strictly between 0 and 1: the ones the tests weigh. */
  private testedN = 0;
  private testedK = 0;
  private lastRestartMs: number;
  private throughMs: number;
  private lastBounds: { lower: number; upper: number } | undefined;

  // The sequential tests, the first begun with the rollout or step and the rest restarted since,
  // in order, as columns (the tick reads every test of every check: flat arrays keep that cheap).
  // A test's logs are the log likelihood ratios of each alternative against the limit up to the
  // counts settledN / settledK (the running totals when the limit last changed or the test
  // began). While the limit stays the same every slot adds k x hit + (n - k) x miss, so the
  // slots since then are added in one step when the test is read: folding a slot costs the same
  // however many tests are running.
  private testCount = 0;
  private readonly testLogs: Float64Array;
  private readonly testFastLogs: Float64Array;
  private readonly settledN = new Float64Array(MAX_RESTARTS + 1);
  private readonly settledK = new Float64Array(MAX_RESTARTS + 1);
  /** ln(1/alpha) each test must reach, and its fast path's. */
  private readonly thresholds = new Float64Array(MAX_RESTARTS + 1);
  private readonly fastThresholds = new Float64Array(MAX_RESTARTS + 1);
  /** One test's logs brought up to date, reused by every read. */
  private readonly current: Float64Array;
  private readonly currentFast: Float64Array;

  // History as segments of counts, oldest first, SEGMENT_FIELDS numbers each (start, end,
  // requests, events, events expected at the limit) in one array grown on demand up to
  // MAX_SEGMENTS + 1 segments.
  private segmentCount = 0;
  private seg = new Float64Array(8 * SEGMENT_FIELDS);

  constructor(options: CheckEvidenceOptions) {
    this.alpha = options.alpha;
    this.restartEveryMs = options.restartEveryMs;
    this.fineMs = options.fineMs;
    this.fastPathFactor = options.fastPathFactor;
    const odds = options.scale === 'odds';
    this.components = odds ? ODDS_COMPONENTS : CONFIRM_COMPONENTS;
    this.stepsFor = odds ? oddsMixtureSteps : mixtureSteps;
    this.steps = this.stepsFor(this.components, 0.5);
    this.testLogs = new Float64Array((MAX_RESTARTS + 1) * this.components.length);
    this.testFastLogs = new Float64Array((MAX_RESTARTS + 1) * FAST_COMPONENTS.length);
    this.current = new Float64Array(this.components.length);
    this.currentFast = new Float64Array(FAST_COMPONENTS.length);
    this.lastRestartMs = options.startMs;
    this.throughMs = options.startMs;
    this.addTest(this.alpha * EPOCH_SHARE);
  }

  /** Counts one slot [startMs, endMs): n requests, k of them events, against the limit p0 in force then. */
  fold(startMs: number, endMs: number, n: number, k: number, p0: number): void {
    this.throughMs = endMs;
    if (startMs - this.lastRestartMs >= this.restartEveryMs) {
      this.lastRestartMs = startMs;
      // Each restart spends its share of the hourly budget: the rate of false alarms per hour
      // of watching stays at alpha whatever the length of the step.
      if (this.testCount === MAX_RESTARTS + 1) this.retireOldestRestart();
      this.addTest((this.alpha * (1 - EPOCH_SHARE) * this.restartEveryMs) / HOUR_MS);
    }
    this.pushSegment(startMs, endMs, n, k, n * p0);
    if (n === 0) return;
    this.samples += n;
    this.events += k;
    this.expected += n * p0;
    if (!(p0 > 0 && p0 < 1)) return; // a limit of 0 or 1 is decided by the counts alone, below
    if (p0 !== this.cachedP0) {
      // The slots so far were weighed at the old limit: settle them before the steps change.
      for (let t = 0; t < this.testCount; t++) this.settle(t);
      this.cachedP0 = p0;
      this.steps = this.stepsFor(this.components, p0);
      const fastP0 = this.fastPathFactor === undefined ? 1 : this.fastPathFactor * p0;
      this.fastSteps = fastP0 < 1 ? mixtureSteps(FAST_COMPONENTS, fastP0) : undefined;
    }
    this.testedN += n;
    this.testedK += k;
  }

  /**
   * Whether a test rejects the limit (or the fast path its own): what any breach needs first.
   * Cheap, for readers that act only on a breach: no onset is dated.
   */
  rejects(): boolean {
    if (this.samples > 0 && this.expected === 0 && this.events > 0) return true;
    for (let t = 0; t < this.testCount; t++) {
      this.bringUpToDate(t);
      if (mixtureReaches(this.components, this.current, this.thresholds[t] as number)) return true;
      if (this.fastPathFactor !== undefined && mixtureReaches(FAST_COMPONENTS, this.currentFast, this.fastThresholds[t] as number)) return true;
    }
    return false;
  }

  read(): EvidenceReading {
    const limit = this.samples > 0 ? this.expected / this.samples : this.cachedP0;
    // The bounds move little from slot to slot: last slot's start the search next to them.
    const bounds = confidenceSequence(this.events, this.samples, this.alpha * EPOCH_SHARE, this.lastBounds);
    this.lastBounds = bounds;
    let best = Number.NEGATIVE_INFINITY;
    let bestLogE = Number.NEGATIVE_INFINITY;
    let bestThreshold = Number.POSITIVE_INFINITY;
    let fastRejected = false;
    const logs = this.current;
    const weights = logWeightsOf(this.components);
    // A mixture lies between its largest weighted component and its largest component (the
    // weights sum to at most 1): a test whose largest component is below another test's largest
    // weighted one cannot be the strongest, and its mixture is not worked out.
    const tops = topsScratch;
    let floor = Number.NEGATIVE_INFINITY;
    for (let t = 0; t < this.testCount; t++) {
      this.bringUpToDate(t);
      const threshold = this.thresholds[t] as number;
      let top = Number.NEGATIVE_INFINITY;
      let weighted = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < logs.length; i++) {
        const log = logs[i] as number;
        if (log > top) top = log;
        if (log + (weights[i] as number) > weighted) weighted = log + (weights[i] as number);
      }
      tops[t] = top - threshold;
      if (weighted - threshold > floor) floor = weighted - threshold;
      if (!fastRejected && this.fastPathFactor !== undefined && mixtureReaches(FAST_COMPONENTS, this.currentFast, this.fastThresholds[t] as number)) fastRejected = true;
    }
    for (let t = 0; t < this.testCount; t++) {
      if ((tops[t] as number) < floor || (tops[t] as number) <= best) continue;
      this.bringUpToDate(t);
      const threshold = this.thresholds[t] as number;
      const logE = logMixture(this.components, logs);
      if (logE - threshold > best) {
        best = logE - threshold;
        bestLogE = logE;
        bestThreshold = threshold;
      }
    }
    // A limit of 0 is breached by one event; a limit of 1 never.
    if (limit === 0 && this.events > 0) {
      best = Number.POSITIVE_INFINITY;
      fastRejected = this.fastPathFactor !== undefined;
    }
    const found = this.onset();
    const onset = found?.span;
    return {
      samples: this.samples,
      events: this.events,
      limit,
      lowerBound: bounds.lower,
      upperBound: bounds.upper,
      logEvidence: best,
      logE: bestLogE,
      logThreshold: bestThreshold,
      epochThreshold: this.thresholds[0] as number,
      fastRejected,
      onsetMs: onset?.startMs,
      onsetSamples: onset?.n ?? 0,
      onsetEvents: onset?.k ?? 0,
      onsetLlr: found?.llr ?? 0,
      // Only a rejected test's breach can be confirmed, so only then is the holding read.
      stillHolding: onset === undefined || !(best >= 0) ? false : this.holds(onset),
      throughMs: this.throughMs,
    };
  }

  /** Moves every time held by `deltaMs` (the clock stepped). */
  shift(deltaMs: number): void {
    this.throughMs += deltaMs;
    this.lastRestartMs += deltaMs;
    for (let i = 0; i < this.segmentCount; i++) {
      this.seg[i * SEGMENT_FIELDS + SEG_START] = (this.seg[i * SEGMENT_FIELDS + SEG_START] as number) + deltaMs;
      this.seg[i * SEGMENT_FIELDS + SEG_END] = (this.seg[i * SEGMENT_FIELDS + SEG_END] as number) + deltaMs;
    }
  }

  /** Bytes held, for the memory budget. */
  byteSize(): number {
    const columns = this.testLogs.byteLength + this.testFastLogs.byteLength + 4 * this.settledN.byteLength + this.current.byteLength + this.currentFast.byteLength;
    return 400 + columns + this.seg.byteLength + 9 * TYPED_ARRAY_BYTES; // nine arrays
  }

  private addTest(alpha: number): void {
    const t = this.testCount++;
    this.testLogs.fill(0, t * this.components.length, (t + 1) * this.components.length);
    this.testFastLogs.fill(0, t * FAST_COMPONENTS.length, (t + 1) * FAST_COMPONENTS.length);
    this.settledN[t] = this.testedN;
    this.settledK[t] = this.testedK;
    this.thresholds[t] = Math.log(1 / alpha);
    this.fastThresholds[t] = Math.log(1 / (alpha * FAST_SHARE));
  }

  /** Drops the oldest restarted test (the second column): retiring never adds a false alarm. */
  private retireOldestRestart(): void {
    const c = this.components.length;
    const f = FAST_COMPONENTS.length;
    this.testLogs.copyWithin(c, 2 * c, this.testCount * c);
    this.testFastLogs.copyWithin(f, 2 * f, this.testCount * f);
    for (const column of [this.settledN, this.settledK, this.thresholds, this.fastThresholds]) column.copyWithin(1, 2, this.testCount);
    this.testCount--;
  }

  /** Adds the slots since test t was last settled to its logs, at the limit in force since then. */
  private settle(t: number): void {
    this.bringUpToDate(t);
    this.testLogs.set(this.current, t * this.components.length);
    this.testFastLogs.set(this.currentFast, t * FAST_COMPONENTS.length);
    this.settledN[t] = this.testedN;
    this.settledK[t] = this.testedK;
  }

  /**
   * Writes test t's logs as of now into `current` and `currentFast`. A slot whose limit left
   * the fast path nothing to reject gave it no evidence either way.
   */
  private bringUpToDate(t: number): void {
    const k = this.testedK - (this.settledK[t] as number);
    const nonEvents = this.testedN - (this.settledN[t] as number) - k;
    const { hit, miss } = this.steps;
    const logs = this.current;
    const base = t * logs.length;
    for (let i = 0; i < logs.length; i++) logs[i] = (this.testLogs[base + i] as number) + (k === 0 ? 0 : k * (hit[i] as number)) + (nonEvents === 0 ? 0 : nonEvents * (miss[i] as number));
    const fast = this.fastSteps;
    const fastLogs = this.currentFast;
    const fastBase = t * fastLogs.length;
    for (let i = 0; i < fastLogs.length; i++) fastLogs[i] = (this.testFastLogs[fastBase + i] as number) + (fast === undefined ? 0 : (k === 0 ? 0 : k * (fast.hit[i] as number)) + (nonEvents === 0 ? 0 : nonEvents * (fast.miss[i] as number)));
  }

  private pushSegment(startMs: number, endMs: number, n: number, k: number, expected: number): void {
    const last = this.segmentCount - 1;
    // Runs of empty slots are one segment: a quiet service costs no memory.
    if (last >= 0 && n === 0 && this.seg[last * SEGMENT_FIELDS + SEG_N] === 0) {
      this.seg[last * SEGMENT_FIELDS + SEG_END] = endMs;
      return;
    }
    if (this.segmentCount * SEGMENT_FIELDS === this.seg.length) this.growSegments();
    const at = this.segmentCount++;
    this.seg[at * SEGMENT_FIELDS + SEG_START] = startMs;
    this.seg[at * SEGMENT_FIELDS + SEG_END] = endMs;
    this.seg[at * SEGMENT_FIELDS + SEG_N] = n;
    this.seg[at * SEGMENT_FIELDS + SEG_K] = k;
    this.seg[at * SEGMENT_FIELDS + SEG_EXPECTED] = expected;
    if (this.segmentCount <= MAX_SEGMENTS) return;
    // Merge the adjacent pair spanning the least time among those older than the fine zone.
    const fineFrom = this.throughMs - this.fineMs;
    let pick = -1;
    let shortest = Number.POSITIVE_INFINITY;
    for (let i = 0; i + 1 < this.segmentCount; i++) {
      const endOfPair = this.seg[(i + 1) * SEGMENT_FIELDS + SEG_END] as number;
      if (endOfPair > fineFrom) break;
      const span = endOfPair - (this.seg[i * SEGMENT_FIELDS + SEG_START] as number);
      if (span < shortest) {
        shortest = span;
        pick = i;
      }
    }
    if (pick < 0) pick = 0; // everything is recent: merge the oldest
    this.seg[pick * SEGMENT_FIELDS + SEG_END] = this.seg[(pick + 1) * SEGMENT_FIELDS + SEG_END] as number;
    this.seg[pick * SEGMENT_FIELDS + SEG_N] = (this.seg[pick * SEGMENT_FIELDS + SEG_N] as number) + (this.seg[(pick + 1) * SEGMENT_FIELDS + SEG_N] as number);
    this.seg[pick * SEGMENT_FIELDS + SEG_K] = (this.seg[pick * SEGMENT_FIELDS + SEG_K] as number) + (this.seg[(pick + 1) * SEGMENT_FIELDS + SEG_K] as number);
    this.seg[pick * SEGMENT_FIELDS + SEG_EXPECTED] = (this.seg[pick * SEGMENT_FIELDS + SEG_EXPECTED] as number) + (this.seg[(pick + 1) * SEGMENT_FIELDS + SEG_EXPECTED] as number);
    this.seg.copyWithin((pick + 1) * SEGMENT_FIELDS, (pick + 2) * SEGMENT_FIELDS, this.segmentCount * SEGMENT_FIELDS);
    this.segmentCount--;
  }

  private growSegments(): void {
    const grown = new Float64Array(Math.min(MAX_SEGMENTS + 1, (2 * this.seg.length) / SEGMENT_FIELDS) * SEGMENT_FIELDS);
    grown.set(this.seg);
    this.seg = grown;
  }

  /**
   * When the breach began. If the data since the start show no change of rate (a rate before
   * and another after the best split explain them no better than one rate, by less than
   * CHANGE_EVIDENCE), the treatment has been as it is since the rollout or step began: the
   * onset is the start. Otherwise it is the maximum-likelihood change point: the start of the
   * suffix most above its limit. Never an earlier time the data merely allow, so "held for N s"
   * does not claim more than happened.
   */
  private onset(): { span: Span; llr: number } | undefined {
    const count = this.segmentCount;
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
      const segmentN = this.seg[i * SEGMENT_FIELDS + SEG_N] as number;
      n += segmentN;
      k += this.seg[i * SEGMENT_FIELDS + SEG_K] as number;
      expected += this.seg[i * SEGMENT_FIELDS + SEG_EXPECTED] as number;
      suffixN[i] = n;
      suffixK[i] = k;
      suffixE[i] = expected;
      if (n === 0 || segmentN === 0) continue;
      const p0 = expected / n;
      if (k / n <= p0) continue;
      const llr = p0 > 0 && p0 < 1 ? binomialLlr(k, n, p0) : Number.POSITIVE_INFINITY;
      if (llr > bestLlr) {
        bestLlr = llr;
        best = i;
      }
    }
    if (best < 0) return undefined;
    let first = 0;
    while (this.seg[first * SEGMENT_FIELDS + SEG_N] === 0) first++; // best >= 0, so some segment has requests
    const allN = suffixN[0] as number;
    const allK = suffixK[0] as number;
    // Above the limit over the whole span, with no evidence of a change within it: since the start.
    // (When the suffix most above the limit is the whole span, both answers are the start.)
    if (best !== first && allK / allN > (suffixE[0] as number) / allN && changeEvidence(suffixN, suffixK, first, count) < CHANGE_EVIDENCE) return { span: this.suffixFrom(first), llr: bestLlr };
    return { span: this.suffixFrom(best), llr: bestLlr };
  }

  /** The span from segment i to the end, with its counts (read from onset()'s suffix sums). */
  private suffixFrom(i: number): Span {
    return { startMs: this.seg[i * SEGMENT_FIELDS + SEG_START] as number, n: suffixScratch.n[i] as number, k: suffixScratch.k[i] as number };
  }

  /**
   * A breach has held, and still holds, when no fifth of its span since the onset is 100:1
   * evidence for the limit's rate over the breach's (two bursts with a healthy gap read as the
   * limit's rate between them), and no recent stretch is confident evidence that the rate is
   * back at the limit (a blip that has passed): the newest suffixes are scanned for a likelihood
   * ratio of the limit against the breach's rate of RECOVERY_EVIDENCE or more.
   */
  private holds(onset: Span): boolean {
    const p1 = onset.k / onset.n;
    const spanMs = this.throughMs - onset.startMs;
    for (let part = 0; part < 5; part++) {
      const fromMs = onset.startMs + (spanMs * part) / 5;
      if (this.llrBetween(fromMs, fromMs + spanMs / 5, p1) < -RECOVERY_EVIDENCE) return false;
    }
    let n = 0;
    let k = 0;
    let expected = 0;
    // The logs for one limit serve every suffix with that limit (all of them, in absolute mode).
    let logsFor = Number.NaN;
    let hit = 0;
    let miss = 0;
    for (let i = this.segmentCount - 1; i >= 0; i--) {
      if ((this.seg[i * SEGMENT_FIELDS + SEG_START] as number) < onset.startMs) break;
      n += this.seg[i * SEGMENT_FIELDS + SEG_N] as number;
      k += this.seg[i * SEGMENT_FIELDS + SEG_K] as number;
      expected += this.seg[i * SEGMENT_FIELDS + SEG_EXPECTED] as number;
      if (n < 1) continue;
      const p0 = expected / n;
      if (!(p0 > 0 && p0 < 1 && p1 < 1)) continue;
      if (p0 !== logsFor) {
        logsFor = p0;
        hit = Math.log(p1 / p0);
        miss = Math.log((1 - p1) / (1 - p0));
      }
      if (-(k * hit + (n - k) * miss) >= RECOVERY_EVIDENCE) return false;
    }
    return true;
  }

  /** Log likelihood ratio of rate p1 against the limit over [fromMs, toMs); segments straddling an end count in proportion. */
  private llrBetween(fromMs: number, toMs: number, p1: number): number {
    let n = 0;
    let k = 0;
    let expected = 0;
    for (let i = this.segmentCount - 1; i >= 0; i--) {
      const startMs = this.seg[i * SEGMENT_FIELDS + SEG_START] as number;
      const endMs = this.seg[i * SEGMENT_FIELDS + SEG_END] as number;
      if (endMs <= fromMs) break;
      if (startMs >= toMs) continue;
      const share = (Math.min(endMs, toMs) - Math.max(startMs, fromMs)) / (endMs - startMs);
      n += (this.seg[i * SEGMENT_FIELDS + SEG_N] as number) * share;
      k += (this.seg[i * SEGMENT_FIELDS + SEG_K] as number) * share;
      expected += (this.seg[i * SEGMENT_FIELDS + SEG_EXPECTED] as number) * share;
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
