// How much a flag evaluation costs: core evaluate() on a 10% rollout against flagd-core's
// fractional on the same flag, the same rollout through the OpenFeature SDK against a
// provider that returns a constant, and what targeting rules and the hash cost on their own.
// `npm run bench` prints a table and the targets; `npm run -s bench -- --json` prints one JSON
// object of figures and nothing else on stdout (without -s, npm adds its own banner).
import {
  type EvaluationContext as OpenFeatureContext,
  type Client,
  type JsonValue,
  type Logger,
  type Provider,
  type ResolutionDetails,
  InMemoryProvider,
  OpenFeature,
} from '@openfeature/server-sdk';
import { FlagdCore } from '@openfeature/flagd-core';
import type { CompiledFlag } from '../src/core/compile-flag.js';
import type { FlagDefinitionInput } from '../src/core/flag-schema.js';
import { evaluate } from '../src/core/evaluate.js';
import { buildFlagSet, isCompiled } from '../src/core/flag-set.js';
import { parseFlagDocument } from '../src/core/parse-flags.js';
import { percentageToWeight } from '../src/core/bucketing.js';
import { murmur3Finish, murmur3Utf8 } from '../src/core/murmur3.js';
import { RolloutProvider } from '../src/provider/rollout-provider.js';
import { MemoryFlagStore } from '../src/stores/memory-store.js';
import { type Group, type Summary, fail, roundRatios, roundsOption, runRounds } from './measure.js';

const json = process.argv.includes('--json');
/** `--rounds=N` for a steadier median on a noisy machine (each round costs about a second there). */
const ROUNDS = roundsOption(process.argv, 15);
const WARMUP_ROUNDS = 3;
const KEY_COUNT = 10_000;
/** Multiples of KEY_COUNT: every batch sees each key equally often, so checksums are exact. */
const CORE_ITERATIONS = 10 * KEY_COUNT;
const SDK_ITERATIONS = 2 * KEY_COUNT;
const ROLLOUT_PERCENTAGE = 10;
const FLAG_KEY = 'new-checkout';
const RULES_FLAG_KEY = 'checkout-with-canaries';
const TARGET_CORE_VS_FLAGD = 0.25;
const TARGET_SDK_VS_CONSTANT = 1.1;


// ---- inputs -------------------------------------------------------------------------------

/** mulberry32: a seeded generator, so every run hashes the same keys. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Distinct UUID-shaped user ids: the length of targeting key most applications use. */
function userIds(count: number, seed: number): string[] {
  const random = seededRandom(seed);
  const hex = (n: number) => Array.from({ length: n }, () => Math.floor(random() * 16).toString(16)).join('');
  const ids = new Set<string>();
  while (ids.size < count) ids.add(`${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`);
  return [...ids];
}

const ids = userIds(KEY_COUNT, 20240501);
const contexts: readonly OpenFeatureContext[] = ids.map((targetingKey) => ({ targetingKey }));
const REGIONS = ['us-east-1', 'us-west-2', 'ap-south-1'];
const ruleContexts: readonly OpenFeatureContext[] = ids.map((targetingKey, i) => ({
  targetingKey,
  region: REGIONS[i % REGIONS.length] as string,
  email: `${targetingKey.slice(0, 8)}@users.test`,
  plan: i % 2 === 0 ? 'free' : 'team',
}));
const hashInputs: readonly string[] = ids.map((id) => FLAG_KEY + id);

const rolloutDefinition: FlagDefinitionInput = {
  variants: { on: true, off: false },
  defaultVariant: 'off',
  state: 'enabled',
  rollout: { variant: 'on', percentage: ROLLOUT_PERCENTAGE },
};
const rulesDefinition: FlagDefinitionInput = {
  ...rolloutDefinition,
  targeting: [
    { when: { attribute: 'region', in: ['eu-west-1', 'eu-central-1'] }, variant: 'on' },
    { when: { attribute: 'email', endsWith: '@example.com' }, variant: 'on' },
    { when: { attribute: 'plan', startsWith: 'enterprise' }, variant: 'on' },
  ],
};

const nowMs = Date.now();
const parsed = parseFlagDocument({ flags: { [FLAG_KEY]: rolloutDefinition, [RULES_FLAG_KEY]: rulesDefinition } });
const flagSet = buildFlagSet(parsed, new Map(), nowMs).set;
function compiled(key: string): CompiledFlag {
  const entry = flagSet.flags.get(key);
  if (!isCompiled(entry)) throw new Error(`bench flag ${key} did not compile`);
  return entry;
}
const rolloutFlag = compiled(FLAG_KEY);
const rulesFlag = compiled(RULES_FLAG_KEY);

// The same flag in flagd's format: weights out of 1,000,000, treatment first.
const treatmentWeight = percentageToWeight(ROLLOUT_PERCENTAGE);
const flagdConfig = JSON.stringify({
  flags: {
    [FLAG_KEY]: {
      state: 'ENABLED',
      variants: { on: true, off: false },
      defaultVariant: 'off',
      targeting: { fractional: [['on', treatmentWeight], ['off', 1_000_000 - treatmentWeight]] },
    },
  },
});
const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const flagd = new FlagdCore(undefined, silentLogger);
flagd.setConfigurations(flagdConfig);

// ---- correctness checks before any timing ------------------------------------------------

let treatmentsPerPass = 0;
for (const context of contexts) {
  const ours = evaluate(rolloutFlag, context, nowMs);
  const theirs = flagd.resolveBooleanEvaluation(FLAG_KEY, false, context, silentLogger);
  if (ours.variant !== theirs.variant || ours.value !== theirs.value) {
    fail(`targetingKey ${String(context.targetingKey)}: evaluate() gives ${String(ours.variant)}, flagd-core gives ${String(theirs.variant)}`);
  }
  if (ours.value === true) treatmentsPerPass++;
}
const share = treatmentsPerPass / KEY_COUNT;
if (Math.abs(share - ROLLOUT_PERCENTAGE / 100) > 0.02) fail(`${treatmentsPerPass} of ${KEY_COUNT} keys in the treatment, expected about 10%`);
let ruleTreatmentsPerPass = 0;
for (const context of ruleContexts) {
  const result = evaluate(rulesFlag, context, nowMs);
  if (result.reason !== 'SPLIT') fail(`a targeting rule matched ${String(context.targetingKey)}; the rules bench must reach the rollout`);
  if (result.value === true) ruleTreatmentsPerPass++;
}

// ---- contenders ---------------------------------------------------------------------------
// Each loop is its own function, so each has its own inline caches; keys are cycled with a
// compare rather than `%`, and every result feeds a checksum that is checked after the batch.

function evaluateRollout(iterations: number): number {
  let sum = 0;
  for (let i = 0, j = 0; i < iterations; i++) {
    if (evaluate(rolloutFlag, contexts[j], nowMs).value === true) sum++;
    if (++j === KEY_COUNT) j = 0;
  }
  return sum;
}

function flagdFractional(iterations: number): number {
  let sum = 0;
  for (let i = 0, j = 0; i < iterations; i++) {
    if (flagd.resolveBooleanEvaluation(FLAG_KEY, false, contexts[j], silentLogger).value) sum++;
    if (++j === KEY_COUNT) j = 0;
  }
  return sum;
}

function evaluateRulesMiss(iterations: number): number {
  let sum = 0;
  for (let i = 0, j = 0; i < iterations; i++) {
    if (evaluate(rulesFlag, ruleContexts[j], nowMs).value === true) sum++;
    if (++j === KEY_COUNT) j = 0;
  }
  return sum;
}

const prefix = rolloutFlag.prefix;
function murmur3Streamed(iterations: number): number {
  let sum = 0;
  for (let i = 0, j = 0; i < iterations; i++) {
    sum = (sum + murmur3Finish(prefix, ids[j] as string)) | 0;
    if (++j === KEY_COUNT) j = 0;
  }
  return sum;
}

function murmur3Whole(iterations: number): number {
  let sum = 0;
  for (let i = 0, j = 0; i < iterations; i++) {
    sum = (sum + murmur3Utf8(hashInputs[j] as string)) | 0;
    if (++j === KEY_COUNT) j = 0;
  }
  return sum;
}

/** The floor of what a provider can cost: a constant, no lookup, no context. */
class ConstantProvider implements Provider {
  readonly metadata = { name: 'constant' } as const;
  readonly runsOn = 'server';
  resolveBooleanEvaluation(_flagKey: string, defaultValue: boolean): Promise<ResolutionDetails<boolean>> {
    return Promise.resolve({ value: defaultValue, reason: 'STATIC' });
  }
  resolveStringEvaluation(_flagKey: string, defaultValue: string): Promise<ResolutionDetails<string>> {
    return Promise.resolve({ value: defaultValue, reason: 'STATIC' });
  }
  resolveNumberEvaluation(_flagKey: string, defaultValue: number): Promise<ResolutionDetails<number>> {
    return Promise.resolve({ value: defaultValue, reason: 'STATIC' });
  }
  resolveObjectEvaluation<T extends JsonValue>(_flagKey: string, defaultValue: T): Promise<ResolutionDetails<T>> {
    return Promise.resolve({ value: defaultValue, reason: 'STATIC' });
  }
}

const store = new MemoryFlagStore({ flags: { [FLAG_KEY]: rolloutDefinition } });
await OpenFeature.setProviderAndWait('bench-rollout', new RolloutProvider({ store }));
await OpenFeature.setProviderAndWait(
  'bench-in-memory',
  new InMemoryProvider({ [FLAG_KEY]: { variants: { on: true, off: false }, defaultVariant: 'off', disabled: false } }),
);
await OpenFeature.setProviderAndWait('bench-constant', new ConstantProvider());
const rolloutClient = OpenFeature.getClient('bench-rollout');
const inMemoryClient = OpenFeature.getClient('bench-in-memory');
const constantClient = OpenFeature.getClient('bench-constant');

// Through the SDK as an application calls it: one awaited call after another.
async function sdkRollout(iterations: number): Promise<number> {
  let sum = 0;
  for (let i = 0, j = 0; i < iterations; i++) {
    if (await rolloutClient.getBooleanValue(FLAG_KEY, false, contexts[j])) sum++;
    if (++j === KEY_COUNT) j = 0;
  }
  return sum;
}

async function sdkInMemory(iterations: number): Promise<number> {
  let sum = 0;
  for (let i = 0, j = 0; i < iterations; i++) {
    if (await inMemoryClient.getBooleanValue(FLAG_KEY, false, contexts[j])) sum++;
    if (++j === KEY_COUNT) j = 0;
  }
  return sum;
}

async function sdkConstant(iterations: number): Promise<number> {
  let sum = 0;
  for (let i = 0, j = 0; i < iterations; i++) {
    if (await constantClient.getBooleanValue(FLAG_KEY, false, contexts[j])) sum++;
    if (++j === KEY_COUNT) j = 0;
  }
  return sum;
}

async function expectDetails(client: Client, label: string, reason: string): Promise<void> {
  for (const context of contexts) {
    const details = await client.getBooleanDetails(FLAG_KEY, false, context);
    if (details.errorCode !== undefined || details.reason !== reason) {
      fail(`${label} resolved ${String(context.targetingKey)} with reason ${String(details.reason)} ${details.errorCode ?? ''} ${details.errorMessage ?? ''}`);
    }
    if (reason === 'SPLIT' && details.value !== (evaluate(rolloutFlag, context, nowMs).value === true)) {
      fail(`${label} gave ${String(details.value)} for ${String(context.targetingKey)}, evaluate() disagrees`);
    }
  }
}
await expectDetails(rolloutClient, 'RolloutProvider', 'SPLIT');
await expectDetails(inMemoryClient, 'InMemoryProvider', 'STATIC');
await expectDetails(constantClient, 'ConstantProvider', 'STATIC');

// ---- run ------------------------------------------------------------------------------------

const N = {
  evaluateRollout: 'evaluate() 10% rollout',
  flagdCore: 'flagd-core fractional',
  evaluateRulesMiss: 'evaluate() 3 rules miss + rollout',
  murmur3Streamed: 'murmur3 prefix + key (as evaluate)',
  murmur3Whole: 'murmur3 whole string (as flagd)',
  sdkRollout: 'SDK + RolloutProvider',
  sdkInMemory: 'SDK + InMemoryProvider',
  sdkConstant: 'SDK + ConstantProvider',
} as const;

function expectTreatments(perPass: number) {
  return (name: string, iterations: number, checksum: number) => {
    const expected = (iterations / KEY_COUNT) * perPass;
    if (checksum !== expected) fail(`${name}: ${checksum} treatments in a batch, expected ${expected}`);
  };
}
const coreChecks = expectTreatments(treatmentsPerPass);
// Both hash loops hash the same bytes, so they must agree with each other batch after batch.
const hashChecksums = new Set<number>();
const coreGroup: Group = {
  name: 'core',
  iterations: CORE_ITERATIONS,
  contenders: [
    { name: N.evaluateRollout, kind: 'sync', run: evaluateRollout },
    { name: N.flagdCore, kind: 'sync', run: flagdFractional },
    { name: N.evaluateRulesMiss, kind: 'sync', run: evaluateRulesMiss },
    { name: N.murmur3Streamed, kind: 'sync', run: murmur3Streamed },
    { name: N.murmur3Whole, kind: 'sync', run: murmur3Whole },
  ],
  check: (name, iterations, checksum) => {
    if (name === N.evaluateRollout || name === N.flagdCore) coreChecks(name, iterations, checksum);
    else if (name === N.evaluateRulesMiss) expectTreatments(ruleTreatmentsPerPass)(name, iterations, checksum);
    else hashChecksums.add(checksum);
  },
};
const sdkGroup: Group = {
  name: 'sdk',
  iterations: SDK_ITERATIONS,
  contenders: [
    { name: N.sdkRollout, kind: 'async', run: sdkRollout },
    { name: N.sdkInMemory, kind: 'async', run: sdkInMemory },
    { name: N.sdkConstant, kind: 'async', run: sdkConstant },
  ],
  check: (name, iterations, checksum) => {
    if (name === N.sdkRollout) coreChecks(name, iterations, checksum);
    else if (checksum !== 0) fail(`${name}: ${checksum} true values, expected none`);
  },
};

if (!json) {
  process.stdout.write(
    `rollout-guardian evaluation bench: node ${process.version}, ${ROUNDS} rounds (+${WARMUP_ROUNDS} warm-up), ` +
      `${CORE_ITERATIONS} core / ${SDK_ITERATIONS} SDK iterations per batch, ${KEY_COUNT} distinct keys\n`,
  );
}
const started = process.hrtime.bigint();
const stats = await runRounds([coreGroup, sdkGroup], { rounds: ROUNDS, warmupRounds: WARMUP_ROUNDS });
const elapsedS = Number(process.hrtime.bigint() - started) / 1e9;
await OpenFeature.close();
if (hashChecksums.size !== 1) fail(`the two murmur3 loops disagree: checksums ${[...hashChecksums].join(', ')}`);

function get(name: string): Summary {
  return stats.get(name) as Summary;
}
const s = {
  evaluateRollout: get(N.evaluateRollout),
  flagdCore: get(N.flagdCore),
  evaluateRulesMiss: get(N.evaluateRulesMiss),
  murmur3Streamed: get(N.murmur3Streamed),
  murmur3Whole: get(N.murmur3Whole),
  sdkRollout: get(N.sdkRollout),
  sdkInMemory: get(N.sdkInMemory),
  sdkConstant: get(N.sdkConstant),
};
const round2 = (x: number) => Math.round(x * 100) / 100;
const round3 = (x: number) => Math.round(x * 1000) / 1000;
const evaluateVsFlagd = s.evaluateRollout.median / s.flagdCore.median;
const rolloutVsConstant = s.sdkRollout.median / s.sdkConstant.median;
const inMemoryVsConstant = s.sdkInMemory.median / s.sdkConstant.median;

if (json) {
  const figures = {
    evaluateRolloutNs: round2(s.evaluateRollout.median),
    flagdCoreFractionalNs: round2(s.flagdCore.median),
    evaluateVsFlagdCoreRatio: round3(evaluateVsFlagd),
    evaluateRulesMissNs: round2(s.evaluateRulesMiss.median),
    murmur3StreamedNs: round2(s.murmur3Streamed.median),
    murmur3WholeNs: round2(s.murmur3Whole.median),
    sdkRolloutProviderNs: round2(s.sdkRollout.median),
    sdkInMemoryProviderNs: round2(s.sdkInMemory.median),
    sdkConstantProviderNs: round2(s.sdkConstant.median),
    sdkRolloutVsConstantRatio: round3(rolloutVsConstant),
    sdkInMemoryVsConstantRatio: round3(inMemoryVsConstant),
    // Medians of the ratios taken within each round: steadier than a ratio of medians when load drifts.
    evaluateVsFlagdCoreRoundRatio: round3(roundRatios(s.evaluateRollout, s.flagdCore).median),
    sdkRolloutVsConstantRoundRatio: round3(roundRatios(s.sdkRollout, s.sdkConstant).median),
    targetsMet: { evaluateVsFlagdCore: evaluateVsFlagd <= TARGET_CORE_VS_FLAGD, sdkRolloutVsConstant: rolloutVsConstant <= TARGET_SDK_VS_CONSTANT },
    rounds: ROUNDS,
    coreIterations: CORE_ITERATIONS,
    sdkIterations: SDK_ITERATIONS,
    keys: KEY_COUNT,
    elapsedS: round2(elapsedS),
    node: process.version,
  };
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} else {
  const fmt = (x: number) => x.toFixed(1).padStart(8);
  const lines: string[] = [];
  lines.push(`${'ns per evaluation'.padEnd(36)}${'median'.padStart(8)}${'min'.padStart(8)}${'p25'.padStart(8)}${'p75'.padStart(8)}${'max'.padStart(8)}`);
  for (const [key, name] of Object.entries(N)) {
    const st = s[key as keyof typeof s];
    lines.push(`${name.padEnd(36)}${fmt(st.median)}${fmt(st.min)}${fmt(st.p25)}${fmt(st.p75)}${fmt(st.max)}`);
  }
  const ratioLine = (label: string, a: Summary, b: Summary, target?: number) => {
    const ratio = a.median / b.median;
    const perRound = roundRatios(a, b);
    const verdict = target === undefined ? '' : `   target <= ${target}: ${ratio <= target ? 'met' : 'NOT met'}`;
    const spread = `per round: median ${perRound.median.toFixed(3)}, p25 ${perRound.p25.toFixed(3)}, p75 ${perRound.p75.toFixed(3)}`;
    return `${label.padEnd(36)}${ratio.toFixed(3).padStart(8)}   (${spread})${verdict}`;
  };
  lines.push('');
  lines.push('ratio of medians');
  lines.push(ratioLine('evaluate() / flagd-core', s.evaluateRollout, s.flagdCore, TARGET_CORE_VS_FLAGD));
  lines.push(ratioLine('SDK: RolloutProvider / constant', s.sdkRollout, s.sdkConstant, TARGET_SDK_VS_CONSTANT));
  lines.push(ratioLine('SDK: InMemoryProvider / constant', s.sdkInMemory, s.sdkConstant));
  lines.push(ratioLine('evaluate(): 3 rules miss / no rules', s.evaluateRulesMiss, s.evaluateRollout));
  lines.push('');
  lines.push(`3 missed rules add ${(s.evaluateRulesMiss.median - s.evaluateRollout.median).toFixed(1)} ns; ` +
    `the provider adds ${(s.sdkRollout.median - s.sdkConstant.median).toFixed(1)} ns to the SDK's ${s.sdkConstant.median.toFixed(1)} ns floor`);
  lines.push(`${treatmentsPerPass} of ${KEY_COUNT} keys in the treatment, same variants as flagd-core; ${elapsedS.toFixed(1)} s; node ${process.version}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}
