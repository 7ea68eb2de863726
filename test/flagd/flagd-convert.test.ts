// flagd conversion: every fixture flag exported to flagd's flag-definition JSON is served by
// @openfeature/flagd-core exactly as our provider serves our file (20,000 ASCII keys, runtime
// state materialized, reasons mapped as the README documents), the export passes flagd's own
// schema, import(export(flags)) gives the flags back, and import names what does not map.
import { fileURLToPath } from 'node:url';
import { FlagdCore, MemoryStorage } from '@openfeature/flagd-core';
import type { EvaluationContext as OpenFeatureContext, Logger, ResolutionDetails } from '@openfeature/server-sdk';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BUCKET_TOTAL, bucketFor, bucketOf, weightToPercentage } from '../../src/core/bucketing.js';
import type { EvaluationContext, FlagValue } from '../../src/core/compile-flag.js';
import type { FlagDefinition, FlagRuntimeState, FlagValueType } from '../../src/core/flag-schema.js';
import { flagValueType } from '../../src/core/flag-schema.js';
import { type FlagdDocument, describeConversionIssue, fromFlagdDocument, fromFlagdFlag, toFlagdDocument } from '../../src/flagd/flagd-convert.js';
import { type ParsedFlags, parseFlagDocument } from '../../src/core/parse-flags.js';
import { murmur3Utf8 } from '../../src/core/murmur3.js';
import { RolloutProvider } from '../../src/provider/rollout-provider.js';
import { FileFlagStore } from '../../src/stores/file-store.js';
import { MemoryFlagStore } from '../../src/stores/memory-store.js';
import { FakeClock } from '../helpers/fake-clock.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/flagd/flags.yaml', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('../../examples/flags.yaml', import.meta.url));
const KEYS = 20_000;
/** A whole second: flagd's $flagd.timestamp has a resolution of one second. */
const T0 = Date.parse('2026-11-05T12:34:56Z');
const SILENT: Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };

const pick = <T>(values: readonly T[], i: number): T => values[i % values.length] as T;

/**
 * Contexts that reach every rule and rollout: attributes as strings, numbers, booleans, null or
 * missing, targeting keys present, empty or missing. Structured values are left out on purpose
 * (the README says where flagd's JSON Logic treats them otherwise).
 */
function contextFor(i: number): EvaluationContext {
  const c: Record<string, unknown> = {};
  if (i % 997 !== 0) c.targetingKey = i % 1999 === 0 ? '' : `user-${i}`;
  if (i % 5 !== 0) c.region = pick(['eu-west-1', 'eu-central-1', 'us-east-1', 'ap-south-1'], i >> 3);
  c.tier = pick([42, '42', 7, '7', true, 'true', 'x', 43, null, '42.0', 8], i >> 2);
  if (i % 13 !== 0) c.country = pick(['FR', 'DE', 'US', null, 42, 'fr'], i >> 4);
  if (i % 7 !== 0) c.plan = pick(['enterprise', 'free', 'pro'], i >> 5);
  c.age = pick([30, '30', 31, '30.0', true, null], i >> 6);
  c.beta = pick([true, 'true', false, 'yes', 1], i >> 1);
  if (i % 11 !== 0) c.email = i % 3 === 0 ? `u${i}@example.com` : `u${i}@other.org`;
  c.group = pick([40, '4x', 'a4', 5, true, '', null], i >> 7);
  c.version = pick([true, 'false', 'none', 'one', 1, 'v2'], i >> 2);
  c['user.kind'] = pick(['staff', 'guest', 42], i >> 3);
  if (i % 17 === 0) c.user = { kind: 'staff' }; // a nested path must not be read for "user.kind"
  return c;
}

const CONTEXTS = Array.from({ length: KEYS }, (_, i) => contextFor(i));

type Resolution = ResolutionDetails<FlagValue>;

async function ours(provider: RolloutProvider, key: string, type: FlagValueType, baseline: FlagValue, context: EvaluationContext): Promise<Resolution> {
  const ctx = context as OpenFeatureContext;
  switch (type) {
    case 'boolean':
      return provider.resolveBooleanEvaluation(key, baseline as boolean, ctx);
    case 'string':
      return provider.resolveStringEvaluation(key, baseline as string, ctx);
    case 'number':
      return provider.resolveNumberEvaluation(key, baseline as number, ctx);
    case 'object':
      return provider.resolveObjectEvaluation(key, baseline, ctx);
  }
}

function theirs(core: FlagdCore, key: string, type: FlagValueType, baseline: FlagValue, context: EvaluationContext): Resolution {
  return core.resolve(type, key, baseline, context as OpenFeatureContext);
}

/**
 * The documented reason mapping (README, "flagd"): what flagd-core 4.0.1 answers on the
 * exported file for each of our reasons.
 */
function flagdReason(result: Resolution, definition: FlagDefinition): string {
  const meta = result.flagMetadata ?? {};
  switch (result.reason) {
    case 'DISABLED':
      return meta.emergencyShutdown === true ? 'STATIC' : 'DISABLED';
    case 'SPLIT':
    case 'TARGETING_MATCH':
      return 'TARGETING_MATCH';
    case 'DEFAULT':
      return meta.rolledBack === true ? 'STATIC' : 'DEFAULT';
    case 'STATIC':
      return meta.overridden === true || (definition.targeting ?? []).length === 0 ? 'STATIC' : 'DEFAULT';
    default:
      return `unexpected ${String(result.reason)}`;
  }
}

interface Comparison {
  readonly evaluations: number;
  readonly mismatches: number;
  readonly examples: readonly string[];
  readonly reasons: ReadonlyMap<string, number>;
}

/** Our provider on `parsed` + state against flagd-core on the exported document, for every flag and key. */
async function compare(provider: RolloutProvider, core: FlagdCore, parsed: ParsedFlags, keys: number, only?: (key: string) => boolean): Promise<Comparison> {
  let evaluations = 0;
  let mismatches = 0;
  const examples: string[] = [];
  const reasons = new Map<string, number>();
  for (const [key, definition] of parsed.definitions) {
    if (only !== undefined && !only(key)) continue;
    const baseline = definition.variants[definition.defaultVariant] as FlagValue;
    const type = flagValueType(baseline);
    for (let i = 0; i < keys; i++) {
      const context = CONTEXTS[i] as EvaluationContext;
      const mine = await ours(provider, key, type, baseline, context);
      const flagd = theirs(core, key, type, baseline, context);
      const mapped = flagdReason(mine, definition);
      // flagd-core resolves a DISABLED flag to the caller's default, with no variant.
      const expectedVariant = mapped === 'DISABLED' ? undefined : mine.variant;
      const same = flagd.reason === mapped && flagd.variant === expectedVariant && JSON.stringify(flagd.value) === JSON.stringify(mine.value) && mine.errorCode === undefined;
      evaluations++;
      const pair = `${String(mine.reason)} -> ${String(flagd.reason)}`;
      reasons.set(pair, (reasons.get(pair) ?? 0) + 1);
      if (!same) {
        mismatches++;
        if (examples.length < 5) {
          examples.push(`${key} ${JSON.stringify(context)}: ours ${mine.variant}/${JSON.stringify(mine.value)}/${mine.reason} flagd ${flagd.variant}/${JSON.stringify(flagd.value)}/${flagd.reason}`);
        }
      }
    }
  }
  return { evaluations, mismatches, examples, reasons };
}

async function fileProvider(path: string, clock: FakeClock): Promise<{ provider: RolloutProvider; parsed: ParsedFlags; state: ReadonlyMap<string, FlagRuntimeState> }> {
  const store = new FileFlagStore({ path, watch: false, clock });
  const provider = new RolloutProvider({ store, clock, logger: { warn: () => undefined, error: () => undefined } });
  await provider.initialize();
  const snapshot = await store.load();
  return { provider, parsed: snapshot.parsed, state: snapshot.state };
}

function flagdCore(document: FlagdDocument): FlagdCore {
  const core = new FlagdCore(undefined, SILENT);
  core.setConfigurations(JSON.stringify(document));
  return core;
}

/** flagd-core reads Date.now() for $flagd.timestamp; only Date is faked, timers stay real. */
function flagdClockAt(ms: number): void {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(ms);
}

afterEach(() => {
  vi.useRealTimers();
});

describe('export to flagd', () => {
  it("writes every fixture and example flag, state materialized, as a document flagd's own schema accepts", async () => {
    for (const path of [FIXTURE, EXAMPLE]) {
      const { provider, parsed, state } = await fileProvider(path, new FakeClock(T0));
      const exported = toFlagdDocument(parsed, state, { nowMs: T0 });
      expect(exported.skipped).toEqual([]);
      expect(Object.keys(exported.document.flags)).toEqual([...parsed.definitions.keys()]);
      // Strict validation: flagd-core's compiled copy of https://flagd.dev/schema/v0/flags.json.
      expect(() => new MemoryStorage(SILENT).setConfigurations(JSON.stringify(exported.document), true)).not.toThrow();
      await provider.onClose();
    }
  });

  it('gives 20,000 ASCII keys the variant and value our provider gives, for every fixture flag, with reasons mapped as documented', async () => {
    const clock = new FakeClock(T0);
    const { provider, parsed, state } = await fileProvider(FIXTURE, clock);
    flagdClockAt(T0);
    const core = flagdCore(toFlagdDocument(parsed, state, { nowMs: T0 }).document);
    const result = await compare(provider, core, parsed, KEYS);
    expect(result.examples).toEqual([]);
    expect(result.mismatches).toBe(0);
    expect(result.evaluations).toBe(parsed.definitions.size * KEYS);
    // Every row of the mapping is exercised by the fixtures.
    expect([...result.reasons.keys()].sort()).toEqual(
      [
        'DEFAULT -> DEFAULT', // no targetingKey on a rollout
        'DEFAULT -> STATIC', // rolled back
        'DISABLED -> DISABLED', // state: disabled
        'SPLIT -> TARGETING_MATCH',
        'STATIC -> DEFAULT', // rules, none matched
        'STATIC -> STATIC', // no rules; overridden
        'TARGETING_MATCH -> TARGETING_MATCH',
      ].sort(),
    );
    await provider.onClose();
  });

  it('agrees on the example flag file for 20,000 keys', async () => {
    const { provider, parsed, state } = await fileProvider(EXAMPLE, new FakeClock(T0));
    flagdClockAt(T0);
    const result = await compare(provider, flagdCore(toFlagdDocument(parsed, state, { nowMs: T0 }).document), parsed, KEYS);
    expect(result.examples).toEqual([]);
    expect(result.mismatches).toBe(0);
    await provider.onClose();
  });

  it.each([
    '2026-10-31T00:00:00Z', // before both ramps
    '2026-11-01T09:00:01Z',
    '2026-11-02T13:17:29Z',
    '2026-11-04T07:13:19Z', // a second before one ramp ends
    '2026-11-09T21:36:07Z',
    '2026-11-15T09:00:00Z', // the other ends
    '2026-12-01T00:00:00Z',
  ])('follows time-based rollouts with $flagd.timestamp exactly, at %s', async (instant) => {
    const at = Date.parse(instant);
    const { provider, parsed, state } = await fileProvider(FIXTURE, new FakeClock(at));
    flagdClockAt(at);
    const document = toFlagdDocument(parsed, state, { nowMs: at }).document;
    const result = await compare(provider, flagdCore(document), parsed, KEYS, (key) => key.startsWith('progressive'));
    expect(result.examples).toEqual([]);
    expect(result.mismatches).toBe(0);
    expect(result.evaluations).toBe(2 * KEYS);
    await provider.onClose();
  });

  it('freezes time-based rollouts at --at as a fixed fractional, whatever time flagd reads', async () => {
    const at = Date.parse('2026-11-03T10:00:00.500Z');
    const { provider, parsed, state } = await fileProvider(FIXTURE, new FakeClock(at));
    const document = toFlagdDocument(parsed, state, { nowMs: at, freezeProgressive: true }).document;
    expect(JSON.stringify(document.flags['progressive-ramp'])).not.toContain('$flagd.timestamp');
    flagdClockAt(Date.parse('2027-01-01T00:00:00Z'));
    const result = await compare(provider, flagdCore(document), parsed, 20_000, (key) => key.startsWith('progressive'));
    expect(result.mismatches).toBe(0);
    await provider.onClose();
  });

  it('materializes an emergency shutdown: every flag serves its baseline (flagd STATIC)', async () => {
    const clock = new FakeClock(T0);
    const { parsed, state } = await fileProvider(FIXTURE, clock);
    const shutdownState = new Map(state).set('emergency_shutdown', { override: { variant: 'on', actor: 'sre', reason: 'INC-9', at: '2026-11-27T10:00:00.000Z' } });
    const definitions = Object.fromEntries([...parsed.definitions].map(([k, d]) => [k, d]));
    const store = new MemoryFlagStore({ flags: definitions, state: Object.fromEntries(shutdownState), clock });
    const provider = new RolloutProvider({ store, clock });
    await provider.initialize();
    flagdClockAt(T0);
    const document = toFlagdDocument(parsed, shutdownState, { nowMs: T0 }).document;
    expect(document.flags.emergency_shutdown?.defaultVariant).toBe('on');
    const result = await compare(provider, flagdCore(document), parsed, 10_000);
    expect(result.examples).toEqual([]);
    expect(result.mismatches).toBe(0);
    expect([...result.reasons.keys()].sort()).toEqual(['DISABLED -> STATIC', 'STATIC -> STATIC']);
    await provider.onClose();
  });

  // flagd-core's JS hashes UTF-16 code units (imurmurhash); Go flagd and we hash the UTF-8
  // bytes. For non-ASCII targeting keys a flagd-core client can therefore disagree with us and
  // with a Go flagd daemon serving the same file; we keep Go flagd's (and the spec's) answer.
  const FLAGD_CORE_JS_HASH_NEW_CHECKOUT_ZOE = 871615844;

  it('differs from flagd-core for the non-ASCII key "Zoë", where flagd-core hashes UTF-16 code units and we hash UTF-8 like Go flagd', async () => {
    expect(murmur3Utf8('new-checkoutZoë')).not.toBe(FLAGD_CORE_JS_HASH_NEW_CHECKOUT_ZOE);
    const theirBucket = bucketOf(FLAGD_CORE_JS_HASH_NEW_CHECKOUT_ZOE, BUCKET_TOTAL);
    expect(bucketFor('new-checkout', 'Zoë')).toBeLessThan(theirBucket);
    const definition = { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: weightToPercentage(theirBucket) } };
    const parsed = parseFlagDocument({ flags: { 'new-checkout': definition } });
    const core = flagdCore(toFlagdDocument(parsed, new Map(), { nowMs: T0 }).document);
    const provider = new RolloutProvider({ store: new MemoryFlagStore({ flags: { 'new-checkout': definition } }) });
    await provider.initialize();
    expect((await provider.resolveBooleanEvaluation('new-checkout', false, { targetingKey: 'Zoë' })).value).toBe(true);
    expect(core.resolveBooleanEvaluation('new-checkout', false, { targetingKey: 'Zoë' }).value).toBe(false);
    // ASCII keys agree at that same weight.
    for (let i = 0; i < 1000; i++) {
      const targetingKey = `user-${i}`;
      expect(core.resolveBooleanEvaluation('new-checkout', false, { targetingKey }).value).toBe((await provider.resolveBooleanEvaluation('new-checkout', false, { targetingKey })).value);
    }
    await provider.onClose();
  });
});

describe('import from flagd', () => {
  it.each([
    ['the fixture flags', FIXTURE],
    ['the example flags', EXAMPLE],
  ])('gives back %s from their export: import(export(flags)) equals the flags', async (_name, path) => {
    const { provider, parsed } = await fileProvider(path, new FakeClock(T0));
    const exported = toFlagdDocument(parsed, new Map(), { nowMs: T0 });
    const imported = fromFlagdDocument(JSON.parse(JSON.stringify(exported.document)));
    expect(imported.issues.map(describeConversionIssue)).toEqual([]);
    const again = parseFlagDocument({ flags: imported.flags });
    expect(again.invalid.size).toBe(0);
    expect(new Map(again.definitions)).toEqual(new Map(parsed.definitions));
    await provider.onClose();
  });

  it("maps flagd's usual idioms exactly: plain string lists, ==, 50/50 weights, nested ifs, or, document metadata", () => {
    const imported = fromFlagdDocument({
      $schema: 'https://flagd.dev/schema/v0/flags.json',
      metadata: { team: 'search' },
      flags: {
        'color-scheme': {
          state: 'ENABLED',
          variants: { light: '#fff', dark: '#000' },
          defaultVariant: 'light',
          targeting: {
            if: [
              { or: [{ in: [{ var: 'region' }, ['eu-west-1', 'eu-north-1']] }, { ends_with: [{ var: 'email' }, '@example.com'] }] },
              'dark',
              { if: [{ '==': [{ var: 'plan' }, 'enterprise'] }, 'dark', { fractional: [['dark', 50], ['light', 50]] }] },
            ],
          },
          metadata: { owner: 'ui' },
        },
      },
    });
    expect(imported.issues).toEqual([]);
    expect(imported.flags['color-scheme']).toEqual({
      variants: { light: '#fff', dark: '#000' },
      defaultVariant: 'light',
      rollout: { variant: 'dark', percentage: 50 },
      targeting: [
        { when: { attribute: 'region', in: ['eu-west-1', 'eu-north-1'] }, variant: 'dark' },
        { when: { attribute: 'email', endsWith: '@example.com' }, variant: 'dark' },
        { when: { attribute: 'plan', equals: 'enterprise' }, variant: 'dark' },
      ],
      metadata: { team: 'search', owner: 'ui' },
    });
  });

  it('names each flag, JSON path and reason for what does not map, and leaves those flags out', () => {
    const flag = (targeting: unknown, extra: Record<string, unknown> = {}) => ({ state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'off', targeting, ...extra });
    const imported = fromFlagdDocument({
      $evaluators: { emailWithFaas: { ends_with: [{ var: 'email' }, '@faas.com'] } },
      flags: {
        plain: flag({}),
        'by-version': flag({ if: [{ sem_ver: [{ var: 'version' }, '>=', '1.2.0'] }, 'on', 'off'] }),
        'shared-rule': flag({ if: [{ $ref: 'emailWithFaas' }, 'on', null] }),
        'adults-only': flag({ if: [{ '>': [{ var: 'age' }, 18] }, 'on'] }),
        'three-way': { state: 'ENABLED', variants: { a: 'a', b: 'b', c: 'c' }, defaultVariant: 'a', targeting: { fractional: [['a', 34], ['b', 33], ['c', 33]] } },
        'by-email': flag({ fractional: [{ var: 'email' }, ['on', 50], ['off', 50]] }),
        'thirds': flag({ fractional: [['on', 1], ['off', 2]] }),
        'baseline-first': flag({ fractional: [['off', 90], ['on', 10]] }),
        'strict-in': flag({ if: [{ in: [{ var: 'tier' }, ['42', 'gold']] }, 'on'] }),
        'nested-attribute': flag({ if: [{ '===': [{ var: 'user.plan' }, 'pro'] }, 'on'] }),
        'no-default': { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: null },
        'unknown-variant': flag({ if: [{ '===': [{ var: 'plan' }, 'pro'] }, 'maybe'] }),
      },
    });
    expect(Object.keys(imported.flags)).toEqual(['plain']);
    const lines = imported.issues.map(describeConversionIssue);
    const expectLine = (prefix: string, words: string): void => {
      expect(lines.filter((l) => l.startsWith(prefix) && l.includes(words)), `${prefix} ... ${words} in:\n${lines.join('\n')}`).toHaveLength(1);
    };
    expectLine('flags.by-version.targeting.if[0].sem_ver:', 'sem_ver compares versions');
    expectLine('flags.shared-rule.targeting.if[0].$ref:', 'shared evaluator "emailWithFaas"');
    expectLine('flags.adults-only.targeting.if[0][">"]:', 'numeric comparisons');
    expectLine('flags.three-way.targeting.fractional:', 'splits among 3 variants (a, b, c)');
    expectLine('flags.by-email.targeting.fractional[0]:', 'rather than by the targetingKey');
    expectLine('flags.thirds.targeting.fractional:', 'weights 1:2');
    expectLine('flags.baseline-first.targeting.fractional:', 'gives the defaultVariant "off" the lower buckets');
    expectLine('flags.strict-in.targeting.if[0].in[1]:', 'flagd compares strictly');
    expectLine('flags.nested-attribute.targeting.if[0]["==="][0].var:', 'reads a nested path');
    expectLine('flags.no-default.defaultVariant:', 'needs a baseline variant');
    expectLine('flags.unknown-variant.targeting.if[1]:', 'returns "maybe", which is not one of the variants');
    expect(new Set(imported.issues.map((i) => i.flag)).size).toBe(11);
  });

  it('keeps what does map of a flag whose targeting does not (variants, baseline, state, metadata), for a store to evaluate it with flagd-core', () => {
    const conversion = fromFlagdFlag('x', { state: 'DISABLED', variants: { a: 1, b: 2 }, defaultVariant: 'b', targeting: { if: [{ sem_ver: [{ var: 'v' }, '^', '1.0.0'] }, 'a'] }, metadata: { team: 't' } });
    expect(conversion.definition).toBeUndefined();
    expect(conversion.shadow).toEqual({ variants: { a: 1, b: 2 }, defaultVariant: 'b', state: 'disabled', metadata: { team: 't' } });
    expect(conversion.issues.map(describeConversionIssue)).toEqual(['flags.x.targeting.if[0].sem_ver: sem_ver compares versions; rollout-guardian conditions compare text']);
  });
});
