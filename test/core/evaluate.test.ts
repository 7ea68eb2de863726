// evaluate() and buildFlagSet(): the flag semantics a user sees, from a flag document and
// runtime state to a resolution, through the public core functions only.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bucketFor, percentageToWeight } from '../../src/core/bucketing.js';
import type { EvaluationContext, EvaluationResult } from '../../src/core/compile-flag.js';
import { EMERGENCY_FLAGS, EMERGENCY_SHUTDOWN, MAINTENANCE_MODE, READ_ONLY_MODE } from '../../src/core/emergency.js';
import { evaluate } from '../../src/core/evaluate.js';
import { buildFlagSet, changedFlags } from '../../src/core/flag-set.js';
import type { BuiltFlagSet, FlagSet } from '../../src/core/flag-set.js';
import { parseFlagDocument, parseStateDocument } from '../../src/core/parse-flags.js';
import { ErrorCode, Reason } from '../../src/core/reasons.js';

const NOW = Date.parse('2026-05-01T12:00:00Z');
const stamp = { actor: 'sre@example.com', reason: 'test', at: '2026-05-01T11:00:00Z' };

type Document = Record<string, unknown>;

function build(flags: Document, state: Document = {}, previous?: FlagSet, nowMs = NOW): BuiltFlagSet {
  const parsedState = parseStateDocument({ version: 1, flags: state });
  expect(parsedState.issues).toEqual([]);
  return buildFlagSet(parseFlagDocument({ flags }), parsedState.flags, nowMs, previous);
}

function resolve(set: FlagSet, key: string, context?: EvaluationContext, nowMs = NOW): EvaluationResult {
  const entry = set.flags.get(key);
  if (entry === undefined) throw new Error(`the set has no flag ${key}`);
  return evaluate(entry, context, nowMs);
}

/** The first `user-N` key whose bucket for `flagKey` satisfies `wanted`. */
function findUser(flagKey: string, wanted: (bucket: number) => boolean): string {
  for (let i = 0; i < 100_000; i++) if (wanted(bucketFor(flagKey, `user-${i}`))) return `user-${i}`;
  throw new Error(`no user found for ${flagKey}`);
}

const booleanFlag = (extra: Document = {}): Document => ({ variants: { on: true, off: false }, defaultVariant: 'off', ...extra });

describe('precedence', () => {
  // Every layer present and each pointing at its own variant; peeling the top layer off at
  // each step reveals the next one.
  const variants = { control: 'blue', treatment: 'green', canary: 'yellow', pinned: 'red' };
  const layers = [
    { name: 'emergency shutdown', variant: 'control', reason: Reason.DISABLED },
    { name: 'disabled', variant: 'control', reason: Reason.DISABLED },
    { name: 'manual override', variant: 'pinned', reason: Reason.STATIC },
    { name: 'rollback', variant: 'control', reason: Reason.DEFAULT },
    { name: 'targeting', variant: 'canary', reason: Reason.TARGETING_MATCH },
    { name: 'rollout', variant: 'treatment', reason: Reason.SPLIT },
    { name: 'default', variant: 'control', reason: Reason.STATIC },
  ] as const;

  function withLayersFrom(top: number): BuiltFlagSet {
    const has = (name: (typeof layers)[number]['name']) => layers.findIndex((l) => l.name === name) >= top;
    const flag: Document = { variants, defaultVariant: 'control' };
    if (has('disabled')) flag['state'] = 'disabled';
    if (has('targeting')) flag['targeting'] = [{ when: { attribute: 'region', in: ['eu-west-1'] }, variant: 'canary' }];
    if (has('rollout')) flag['rollout'] = { variant: 'treatment', percentage: 100 };
    const state: Document = {};
    if (has('emergency shutdown')) state[EMERGENCY_SHUTDOWN] = { override: { variant: 'on', ...stamp } };
    const checkout: Document = {};
    if (has('manual override')) checkout['override'] = { variant: 'pinned', ...stamp };
    if (has('rollback')) checkout['rollback'] = { ...stamp, evidence: { errorRate: 0.2 } };
    state['checkout'] = checkout;
    return build({ checkout: flag }, state);
  }

  it.each(layers.map((layer, i) => [layer.name, i] as const))('%s decides when every layer above it is absent', (_name, i) => {
    const layer = layers[i] as (typeof layers)[number];
    const result = resolve(withLayersFrom(i).set, 'checkout', { targetingKey: 'user-1', region: 'eu-west-1' });
    expect({ variant: result.variant, reason: result.reason }).toEqual({ variant: layer.variant, reason: layer.reason });
    expect(result.value).toBe(variants[layer.variant]);
  });

  it('marks the emergency shutdown, an override and a rollback in flagMetadata so they can be told apart', () => {
    const context = { targetingKey: 'user-1', region: 'eu-west-1' };
    expect(resolve(withLayersFrom(0).set, 'checkout', context).flagMetadata['emergencyShutdown']).toBe(true);
    expect(resolve(withLayersFrom(1).set, 'checkout', context).flagMetadata['emergencyShutdown']).toBeUndefined();
    expect(resolve(withLayersFrom(2).set, 'checkout', context).flagMetadata['overridden']).toBe(true);
    expect(resolve(withLayersFrom(3).set, 'checkout', context).flagMetadata['rolledBack']).toBe(true);
  });

  it('applies the first matching targeting rule', () => {
    const { set } = build({
      checkout: {
        variants: { a: 'a', b: 'b', c: 'c', base: 'base' },
        defaultVariant: 'base',
        targeting: [
          { name: 'staff', when: { attribute: 'email', endsWith: '@example.com' }, variant: 'a' },
          { name: 'europe', when: { attribute: 'region', startsWith: 'eu-' }, variant: 'b' },
          { name: 'everyone-in-europe', when: { attribute: 'region', startsWith: 'eu' }, variant: 'c' },
        ],
      },
    });
    expect(resolve(set, 'checkout', { email: 'kim@example.com', region: 'eu-west-1' }).variant).toBe('a');
    expect(resolve(set, 'checkout', { email: 'kim@elsewhere.org', region: 'eu-west-1' }).variant).toBe('b');
    expect(resolve(set, 'checkout', { region: 'eunorth' }).variant).toBe('c');
    expect(resolve(set, 'checkout', { region: 'us-east-1' })).toMatchObject({ variant: 'base', reason: Reason.STATIC });
  });

  it('ignores an override naming a variant the flag no longer has', () => {
    const { set } = build(
      { checkout: booleanFlag({ rollout: { variant: 'on', percentage: 100 } }) },
      { checkout: { override: { variant: 'removed', ...stamp } } },
    );
    expect(resolve(set, 'checkout', { targetingKey: 'user-1' })).toMatchObject({ variant: 'on', reason: Reason.SPLIT });
  });
});

describe('targeting conditions', () => {
  function canary(when: unknown): FlagSet {
    return build({ checkout: booleanFlag({ targeting: [{ when, variant: 'on' }] }) }).set;
  }
  const matches = (set: FlagSet, context: EvaluationContext): boolean => {
    const result = resolve(set, 'checkout', context);
    expect(result.reason).toBe(result.variant === 'on' ? Reason.TARGETING_MATCH : Reason.STATIC);
    return result.variant === 'on';
  };

  it('in matches a value in the list and nothing else', () => {
    const set = canary({ attribute: 'region', in: ['eu-west-1', 'eu-central-1'] });
    expect(matches(set, { region: 'eu-central-1' })).toBe(true);
    expect(matches(set, { region: 'us-east-1' })).toBe(false);
    expect(matches(set, { region: 'EU-WEST-1' })).toBe(false);
  });

  it('notIn matches a present value outside the list', () => {
    const set = canary({ attribute: 'region', notIn: ['us-east-1'] });
    expect(matches(set, { region: 'eu-west-1' })).toBe(true);
    expect(matches(set, { region: 'us-east-1' })).toBe(false);
  });

  it('equals, startsWith and endsWith compare the text of the attribute', () => {
    expect(matches(canary({ attribute: 'plan', equals: 'pro' }), { plan: 'pro' })).toBe(true);
    expect(matches(canary({ attribute: 'plan', equals: 'pro' }), { plan: 'professional' })).toBe(false);
    expect(matches(canary({ attribute: 'email', startsWith: 'qa-' }), { email: 'qa-bot@example.com' })).toBe(true);
    expect(matches(canary({ attribute: 'email', startsWith: 'qa-' }), { email: 'bot-qa-@example.com' })).toBe(false);
    expect(matches(canary({ attribute: 'email', endsWith: '@example.com' }), { email: 'kim@example.com' })).toBe(true);
    expect(matches(canary({ attribute: 'email', endsWith: '@example.com' }), { email: 'kim@example.com.evil' })).toBe(false);
  });

  it('treats targetingKey as an attribute like any other', () => {
    const set = canary({ attribute: 'targetingKey', in: ['user-7', 'user-9'] });
    expect(matches(set, { targetingKey: 'user-7' })).toBe(true);
    expect(matches(set, { targetingKey: 'user-8' })).toBe(false);
  });

  it('compares numbers and booleans in the context, and in the rule, as their string form', () => {
    expect(matches(canary({ attribute: 'tier', in: [1, 2] }), { tier: 2 })).toBe(true);
    expect(matches(canary({ attribute: 'tier', in: [1, 2] }), { tier: '2' })).toBe(true);
    expect(matches(canary({ attribute: 'tier', in: ['2'] }), { tier: 2 })).toBe(true);
    expect(matches(canary({ attribute: 'tier', in: [1, 2] }), { tier: 3 })).toBe(false);
    expect(matches(canary({ attribute: 'beta', equals: true }), { beta: true })).toBe(true);
    expect(matches(canary({ attribute: 'beta', equals: true }), { beta: 'true' })).toBe(true);
    expect(matches(canary({ attribute: 'beta', equals: 'true' }), { beta: true })).toBe(true);
    expect(matches(canary({ attribute: 'beta', equals: true }), { beta: false })).toBe(false);
    expect(matches(canary({ attribute: 'version', startsWith: '3.' }), { version: 3.5 })).toBe(true);
  });

  it.each([
    ['in', { in: ['eu-west-1'] }],
    ['notIn', { notIn: ['eu-west-1'] }],
    ['equals', { equals: 'eu-west-1' }],
    ['startsWith', { startsWith: 'eu' }],
    ['endsWith', { endsWith: '1' }],
  ])('a missing attribute matches no operator: %s', (_op, operator) => {
    const set = canary({ attribute: 'region', ...operator });
    expect(matches(set, {})).toBe(false);
    expect(matches(set, { region: undefined })).toBe(false);
    expect(matches(set, { region: null })).toBe(false);
    // Values that have no text form are as good as missing.
    expect(matches(set, { region: ['eu-west-1'] })).toBe(false);
    expect(matches(set, { region: { name: 'eu-west-1' } })).toBe(false);
  });

  it('with a list of conditions, matches only when all of them match', () => {
    const set = canary([
      { attribute: 'region', in: ['eu-west-1'] },
      { attribute: 'plan', equals: 'pro' },
    ]);
    expect(matches(set, { region: 'eu-west-1', plan: 'pro' })).toBe(true);
    expect(matches(set, { region: 'eu-west-1', plan: 'free' })).toBe(false);
    expect(matches(set, { region: 'us-east-1', plan: 'pro' })).toBe(false);
    expect(matches(set, { region: 'eu-west-1' })).toBe(false);
  });
});

describe('percentage rollouts', () => {
  const rollout = (percentage: number) => booleanFlag({ rollout: { variant: 'on', percentage } });

  it('split users by bucket: the treatment and the baseline both with reason SPLIT', () => {
    const { set } = build({ checkout: rollout(50) });
    const weight = percentageToWeight(50);
    const inside = findUser('checkout', (b) => b < weight);
    const outside = findUser('checkout', (b) => b >= weight);
    expect(resolve(set, 'checkout', { targetingKey: inside })).toMatchObject({ value: true, variant: 'on', reason: Reason.SPLIT });
    expect(resolve(set, 'checkout', { targetingKey: outside })).toMatchObject({ value: false, variant: 'off', reason: Reason.SPLIT });
  });

  it.each([0, 50, 100].map((percentage) => [`${percentage}%`, percentage] as const))('at %s, a missing or empty targeting key gives the baseline with reason DEFAULT, never a split', (_label, percentage) => {
    // flagd's fractional does the same: no targeting key, no bucket, the default variant.
    const { set } = build({ checkout: rollout(percentage) });
    for (const context of [undefined, {}, { targetingKey: '' }, { targetingKey: undefined }, { region: 'eu-west-1' }]) {
      expect(resolve(set, 'checkout', context)).toMatchObject({ value: false, variant: 'off', reason: Reason.DEFAULT });
    }
  });

  it('applies targeting rules even without a targeting key', () => {
    const { set } = build({ checkout: rollout(10) });
    const withRule = build({
      checkout: booleanFlag({
        rollout: { variant: 'on', percentage: 10 },
        targeting: [{ when: { attribute: 'region', in: ['eu-west-1'] }, variant: 'on' }],
      }),
    }).set;
    expect(resolve(set, 'checkout', { region: 'eu-west-1' }).reason).toBe(Reason.DEFAULT);
    expect(resolve(withRule, 'checkout', { region: 'eu-west-1' })).toMatchObject({ variant: 'on', reason: Reason.TARGETING_MATCH });
  });

  it('serves a rollout without a percentage to everyone, with reason STATIC', () => {
    const { set } = build({ checkout: booleanFlag({ rollout: { variant: 'on' } }) });
    expect(resolve(set, 'checkout', { targetingKey: 'user-1' })).toMatchObject({ variant: 'on', reason: Reason.STATIC });
    expect(resolve(set, 'checkout', {})).toMatchObject({ variant: 'on', reason: Reason.STATIC });
  });

  it('serves the baseline with reason STATIC when there is no rollout', () => {
    const { set } = build({ checkout: booleanFlag() });
    expect(resolve(set, 'checkout', { targetingKey: 'user-1' })).toMatchObject({ value: false, variant: 'off', reason: Reason.STATIC });
  });

  it('takes a runtime percentage from the state over the one in the file', () => {
    const { set } = build({ checkout: rollout(5) }, { checkout: { percentage: 60 } });
    const weight = percentageToWeight(60);
    const result = resolve(set, 'checkout', { targetingKey: findUser('checkout', (b) => b >= percentageToWeight(5) && b < weight) });
    expect(result).toMatchObject({ variant: 'on', reason: Reason.SPLIT });
    expect(result.flagMetadata['rolloutPercentage']).toBe(60);
  });
});

describe('flagMetadata', () => {
  const definition = booleanFlag({ rollout: { variant: 'on', percentage: 12.5 }, metadata: { owner: 'payments' } });
  const revisionOf = (flags: Document, state: Document = {}): unknown => resolve(build(flags, state).set, 'checkout', { targetingKey: 'user-1' }).flagMetadata['revision'];

  it('carries the current rollout percentage, the revision and the metadata the file gives', () => {
    const { set } = build({ checkout: definition });
    for (const context of [{ targetingKey: 'user-1' }, { targetingKey: 'user-2' }, {}]) {
      const meta = resolve(set, 'checkout', context).flagMetadata;
      expect(meta['rolloutPercentage']).toBe(12.5);
      expect(meta['owner']).toBe('payments');
      expect(typeof meta['revision']).toBe('string');
    }
  });

  it('reports 0% without a rollout or when the flag serves its baseline whatever the context, 100% when pinned to the treatment', () => {
    const pct = (flags: Document, state: Document = {}): unknown => resolve(build(flags, state).set, 'checkout', { targetingKey: 'user-1' }).flagMetadata['rolloutPercentage'];
    expect(pct({ checkout: booleanFlag() })).toBe(0);
    expect(pct({ checkout: { ...definition, state: 'disabled' } })).toBe(0);
    expect(pct({ checkout: definition }, { checkout: { rollback: stamp } })).toBe(0);
    expect(pct({ checkout: definition }, { checkout: { override: { variant: 'on', ...stamp } } })).toBe(100);
    expect(pct({ checkout: definition }, { checkout: { override: { variant: 'off', ...stamp } } })).toBe(0);
  });

  it('keeps the revision when keys are reordered', () => {
    const reordered = {
      metadata: { owner: 'payments' },
      rollout: { percentage: 12.5, variant: 'on' },
      defaultVariant: 'off',
      variants: { off: false, on: true },
    };
    expect(revisionOf({ checkout: reordered })).toBe(revisionOf({ checkout: definition }));
    expect(revisionOf({ other: booleanFlag(), checkout: definition })).toBe(revisionOf({ checkout: definition, other: booleanFlag() }));
  });

  it('changes the revision when the definition or the runtime state changes', () => {
    const base = revisionOf({ checkout: definition });
    expect(revisionOf({ checkout: { ...definition, rollout: { variant: 'on', percentage: 12.6 } } })).not.toBe(base);
    expect(revisionOf({ checkout: { ...definition, description: 'new checkout flow' } })).not.toBe(base);
    expect(revisionOf({ checkout: definition }, { checkout: { rollback: stamp } })).not.toBe(base);
    expect(revisionOf({ checkout: definition }, { checkout: { percentage: 20 } })).not.toBe(base);
    expect(revisionOf({ checkout: definition }, { [EMERGENCY_SHUTDOWN]: { override: { variant: 'on', ...stamp } } })).not.toBe(base);
  });
});

describe('progressive rollouts', () => {
  const start = '2026-05-01T00:00:00Z';
  const end = '2026-05-11T00:00:00Z';
  const startMs = Date.parse(start);
  const endMs = Date.parse(end);
  const from = 10;
  const to = 60;
  const flags = { ramp: booleanFlag({ rollout: { variant: 'on', progressive: { from, to, start, end } } }) };
  const percentageAt = (set: FlagSet, nowMs: number): number => resolve(set, 'ramp', { targetingKey: 'user-1' }, nowMs).flagMetadata['rolloutPercentage'] as number;

  it('holds `from` until the start and `to` after the end', () => {
    const { set } = build(flags);
    expect(percentageAt(set, startMs - 86_400_000)).toBe(from);
    expect(percentageAt(set, startMs)).toBe(from);
    expect(percentageAt(set, endMs)).toBe(to);
    expect(percentageAt(set, endMs + 86_400_000)).toBe(to);
  });

  it('moves the percentage linearly with time between start and end, to the 0.0001% resolution', () => {
    const { set } = build(flags);
    for (let step = 0; step <= 40; step++) {
      const nowMs = startMs + ((endMs - startMs) * step) / 40 + 12_345;
      const fraction = Math.min(1, (nowMs - startMs) / (endMs - startMs));
      expect(Math.abs(percentageAt(set, nowMs) - (from + (to - from) * fraction))).toBeLessThanOrEqual(0.0001);
    }
  });

  it('only ever adds users as time passes, whatever order the evaluations come in', () => {
    const { set } = build(flags);
    const instant = fc.integer({ min: startMs - 86_400_000, max: endMs + 86_400_000 });
    fc.assert(
      fc.property(instant, instant, fc.integer({ min: 0, max: 1_000_000 }), (t1, t2, user) => {
        const [early, late] = t1 <= t2 ? [t1, t2] : [t2, t1];
        const targetingKey = `user-${user}`;
        // Evaluate the later instant first: a weight cached for one instant must not leak into another.
        const lateResult = resolve(set, 'ramp', { targetingKey }, late);
        const earlyResult = resolve(set, 'ramp', { targetingKey }, early);
        expect(earlyResult.flagMetadata['rolloutPercentage'] as number).toBeLessThanOrEqual(lateResult.flagMetadata['rolloutPercentage'] as number);
        if (earlyResult.variant === 'on') expect(lateResult.variant).toBe('on');
        const fresh = resolve(build(flags).set, 'ramp', { targetingKey }, early);
        expect({ variant: fresh.variant, pct: fresh.flagMetadata['rolloutPercentage'] }).toEqual({
          variant: earlyResult.variant,
          pct: earlyResult.flagMetadata['rolloutPercentage'],
        });
      }),
      { seed: 0x72616d70, numRuns: 300 },
    );
  });
});

describe('invalid flags', () => {
  it('evaluate to ERROR with PARSE_ERROR and a message naming the bad field, while the other flags in the file work', () => {
    const { set } = build({
      broken: booleanFlag({ rollout: { variant: 'on', percentage: 150 } }),
      checkout: booleanFlag({ rollout: { variant: 'on', percentage: 100 } }),
    });
    const broken = resolve(set, 'broken', { targetingKey: 'user-1' });
    expect(broken).toMatchObject({ value: null, reason: Reason.ERROR, errorCode: ErrorCode.PARSE_ERROR });
    expect(broken.errorMessage).toContain('flags.broken.rollout.percentage');
    expect(broken.errorMessage).toContain('expected a percentage from 0 to 100');
    expect(broken.errorMessage).toContain('150');
    expect(resolve(set, 'checkout', { targetingKey: 'user-1' })).toMatchObject({ value: true, reason: Reason.SPLIT });
  });

  it('keep their last good definition when one existed, and are listed as retained', () => {
    const first = build({ checkout: booleanFlag({ rollout: { variant: 'on', percentage: 30 } }) });
    const second = build(
      {
        checkout: booleanFlag({ rollout: { variant: 'on', percentage: 300 } }),
        fresh: booleanFlag({ defaultVariant: 'maybe' }),
      },
      {},
      first.set,
    );
    const checkout = resolve(second.set, 'checkout', { targetingKey: 'user-1' });
    expect(checkout.reason).toBe(Reason.SPLIT);
    expect(checkout.flagMetadata['rolloutPercentage']).toBe(30);
    expect([...second.retained.keys()]).toEqual(['checkout']);
    expect(second.retained.get('checkout')?.map((issue) => issue.path.join('.'))).toEqual(['flags.checkout.rollout.percentage']);
    // Never seen good: nothing to retain.
    expect(resolve(second.set, 'fresh', {})).toMatchObject({ reason: Reason.ERROR, errorCode: ErrorCode.PARSE_ERROR });
    expect(changedFlags(first.set, second.set)).toEqual(['fresh']);

    // Still bad in the next file: the retained definition carries on.
    const third = build({ checkout: booleanFlag({ rollout: { variant: 'on', percentage: 300 } }) }, {}, second.set);
    expect(resolve(third.set, 'checkout', { targetingKey: 'user-1' }).flagMetadata['rolloutPercentage']).toBe(30);
  });
});

describe('emergency flags', () => {
  it('exist by default, off', () => {
    const { set } = build({});
    expect(set.shutdown).toBe(false);
    for (const key of [EMERGENCY_SHUTDOWN, READ_ONLY_MODE, MAINTENANCE_MODE]) {
      expect(resolve(set, key, {})).toMatchObject({ value: false, variant: 'off', reason: Reason.STATIC });
    }
    expect([...set.flags.keys()].sort()).toEqual([...EMERGENCY_FLAGS.keys()].sort());
  });

  const flags = {
    checkout: booleanFlag({ rollout: { variant: 'on', percentage: 100 } }),
    canary: booleanFlag({ targeting: [{ when: { attribute: 'region', in: ['eu-west-1'] }, variant: 'on' }] }),
    theme: { variants: { dark: 'dark', light: 'light' }, defaultVariant: 'light', rollout: { variant: 'dark' } },
  };
  const context = { targetingKey: 'user-1', region: 'eu-west-1' };

  function expectShutdown(built: BuiltFlagSet): void {
    expect(built.set.shutdown).toBe(true);
    for (const key of ['checkout', 'canary']) {
      expect(resolve(built.set, key, context)).toMatchObject({ value: false, variant: 'off', reason: Reason.DISABLED });
    }
    expect(resolve(built.set, 'theme', context)).toMatchObject({ value: 'light', reason: Reason.DISABLED });
    expect(resolve(built.set, EMERGENCY_SHUTDOWN, context).value).toBe(true);
  }

  it('emergency_shutdown turned on by an override sends every other flag to its baseline with reason DISABLED', () => {
    const built = build(flags, {
      [EMERGENCY_SHUTDOWN]: { override: { variant: 'on', ...stamp } },
      checkout: { override: { variant: 'on', ...stamp } },
    });
    expectShutdown(built);
  });

  it('emergency_shutdown turned on in the file does the same', () => {
    expectShutdown(build({ ...flags, [EMERGENCY_SHUTDOWN]: booleanFlag({ defaultVariant: 'on' }) }));
  });

  it('leaves the other emergency flags to say what they say during a shutdown', () => {
    const { set } = build(flags, {
      [EMERGENCY_SHUTDOWN]: { override: { variant: 'on', ...stamp } },
      [READ_ONLY_MODE]: { override: { variant: 'on', ...stamp } },
    });
    expect(resolve(set, READ_ONLY_MODE, {})).toMatchObject({ value: true, reason: Reason.STATIC });
    expect(resolve(set, MAINTENANCE_MODE, {})).toMatchObject({ value: false, reason: Reason.STATIC });
  });

  it('must have boolean variants: otherwise the flag is a PARSE_ERROR and no shutdown happens', () => {
    const { set } = build({ ...flags, [EMERGENCY_SHUTDOWN]: { variants: { on: 'yes', off: 'no' }, defaultVariant: 'on' } });
    expect(set.shutdown).toBe(false);
    expect(resolve(set, EMERGENCY_SHUTDOWN, {})).toMatchObject({ reason: Reason.ERROR, errorCode: ErrorCode.PARSE_ERROR });
    expect(resolve(set, 'checkout', context).value).toBe(true);
  });
});

describe('changedFlags', () => {
  const flags = {
    checkout: booleanFlag({ rollout: { variant: 'on', percentage: 10 } }),
    search: booleanFlag({ rollout: { variant: 'on', percentage: 50 } }),
  };
  const allKeys = ['checkout', 'search', ...EMERGENCY_FLAGS.keys()];

  it('names every flag of a first set', () => {
    expect(changedFlags(undefined, build(flags).set).sort()).toEqual([...allKeys].sort());
  });

  it('names nothing when the same file is read again, or reordered', () => {
    const before = build(flags).set;
    expect(changedFlags(before, build(flags).set)).toEqual([]);
    const reordered = { search: { defaultVariant: 'off', rollout: { percentage: 50, variant: 'on' }, variants: { off: false, on: true } }, checkout: flags.checkout };
    expect(changedFlags(before, build(reordered).set)).toEqual([]);
  });

  it('names only the flags whose definition or state changed, and those added or removed', () => {
    const before = build(flags).set;
    expect(changedFlags(before, build({ ...flags, checkout: booleanFlag({ rollout: { variant: 'on', percentage: 11 } }) }).set)).toEqual(['checkout']);
    expect(changedFlags(before, build(flags, { search: { rollback: stamp } }).set)).toEqual(['search']);
    expect(changedFlags(before, build({ checkout: flags.checkout }).set)).toEqual(['search']);
    expect(changedFlags(before, build({ ...flags, added: booleanFlag() }).set)).toEqual(['added']);
  });

  it('names every non-emergency flag, and the switch itself, when the shutdown toggles', () => {
    const before = build(flags).set;
    const after = build(flags, { [EMERGENCY_SHUTDOWN]: { override: { variant: 'on', ...stamp } } }).set;
    const expected = ['checkout', 'search', EMERGENCY_SHUTDOWN].sort();
    expect(changedFlags(before, after).sort()).toEqual(expected);
    expect(changedFlags(after, before).sort()).toEqual(expected);
  });
});

describe('odd contexts', () => {
  const { set } = build({
    checkout: {
      variants: { on: 'green', off: 'blue', canary: 'yellow' },
      defaultVariant: 'off',
      rollout: { variant: 'on', percentage: 50 },
      targeting: [
        { when: { attribute: 'region', in: ['eu-west-1', 1, true] }, variant: 'canary' },
        { when: [{ attribute: 'plan', notIn: ['free'] }, { attribute: 'email', endsWith: '@example.com' }], variant: 'canary' },
      ],
    },
  });

  it('never make evaluate throw, and always resolve to one of the flag variants', () => {
    const oddValue = fc.anything({ withBigInt: true, withBoxedValues: true, withMap: true, withSet: true, withTypedArray: true, withDate: true, withNullPrototype: true, withSparseArray: true });
    const context = fc.record(
      { targetingKey: oddValue, region: oddValue, plan: oddValue, email: oddValue },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(context, fc.dictionary(fc.string(), oddValue)), (ctx) => {
        const result = resolve(set, 'checkout', ctx as EvaluationContext);
        expect(['on', 'off', 'canary']).toContain(result.variant);
        expect(result.reason).not.toBe(Reason.ERROR);
      }),
      { seed: 0x6f646421, numRuns: 1000 },
    );
  });

  it('treat a number as targetingKey like a missing key: the baseline with reason DEFAULT', () => {
    const context = { targetingKey: 42 } as unknown as EvaluationContext;
    expect(resolve(set, 'checkout', context)).toMatchObject({ variant: 'off', reason: Reason.DEFAULT });
  });

  it('accept undefined, a null-prototype object and a frozen object', () => {
    expect(resolve(set, 'checkout', undefined).variant).toBe('off');
    const bare = Object.create(null) as Record<string, unknown>;
    bare['region'] = 'eu-west-1';
    expect(resolve(set, 'checkout', bare).variant).toBe('canary');
    expect(resolve(set, 'checkout', Object.freeze({ targetingKey: 'user-1' })).reason).toBe(Reason.SPLIT);
  });

  it('turn an attribute that throws when read into reason ERROR instead of an exception', () => {
    const hostile = new Proxy({}, { get: () => { throw new Error('boom'); } }) as EvaluationContext;
    let result: EvaluationResult | undefined;
    expect(() => (result = resolve(set, 'checkout', hostile))).not.toThrow();
    expect(result).toMatchObject({ value: null, reason: Reason.ERROR, errorCode: ErrorCode.GENERAL });
  });
});
