// Conformance: every flag of a rich flagd file, over many seeded contexts and instants, served
// through RolloutProvider on the flagd store and by @openfeature/flagd-core in its default mode,
// must agree on value, variant, reason, error code and flagMetadata. The one documented
// difference, bucketing over UTF-8 bytes as the Go daemon does, has its own test below.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FlagdCore } from '@openfeature/flagd-core';
import type { EvaluationContext, Logger, ResolutionDetails } from '@openfeature/server-sdk';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { RolloutProvider } from '../../src/provider/rollout-provider.js';
import { FlagdFileStore } from '../../src/stores/flagd-store.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { withTempDir } from '../helpers/temp-dir.js';

const SILENT: Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };
const QUIET = { warn: () => undefined, error: () => undefined };
const FIXTURE = fileURLToPath(new URL('../fixtures/flagd/conformance.flagd.json', import.meta.url));
const VECTORS = fileURLToPath(new URL('../fixtures/bucketing-vectors.json', import.meta.url));
/** The instant the fixture's $flagd.timestamp flags turn on (seconds). */
const GATE_S = 1_795_000_000;
const INSTANTS_MS = [GATE_S * 1000 - 3_600_000, GATE_S * 1000, GATE_S * 1000 + 1_000, GATE_S * 1000 + 500_000, GATE_S * 1000 + 86_400_000];

type Type = 'boolean' | 'string' | 'number' | 'object';
const DEFAULTS: Record<Type, boolean | string | number | { [key: string]: string }> = { boolean: true, string: 'caller-default', number: -1, object: { caller: 'default' } };

/** mulberry32: a small seeded generator, so every run sees the same contexts. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

/** ASCII targeting keys here: non-ASCII bucketing is the documented difference, tested apart. */
function contexts(count: number, seed: number): EvaluationContext[] {
  const random = seeded(seed);
  const out: EvaluationContext[] = [];
  for (let i = 0; i < count; i++) {
    const c: Record<string, unknown> = {};
    if (random() < 0.95) c.targetingKey = `user-${Math.floor(random() * 1e9).toString(36)}`;
    if (random() < 0.8) c.region = pick(random, ['eu-west-1', 'eu-central-1', 'us-east-1', 'ap-south-1']);
    if (random() < 0.8) c.version = pick(random, ['2.0.0', '2.3.1', '1.2.9', '1.9.0', '0.9.0', 'v2.1', '1', '1.2', 'not-a-version', 3, '3.0.0-beta.1']);
    if (random() < 0.8) c.email = pick(random, ['admin@example.com', 'ops@example.com', 'someone@faas.com', 'admin.x@other.org', '']);
    if (random() < 0.8) c.age = pick(random, [10, 17, 18, 39, 40, 70, '40']);
    if (random() < 0.8) c.plan = pick(random, ['pro', 'free', 'enterprise', 42]);
    if (random() < 0.3) c.user = { tier: pick(random, ['gold', 'silver']) };
    out.push(c as EvaluationContext);
  }
  return out;
}

function comparable(details: ResolutionDetails<unknown>) {
  return { value: details.value, variant: details.variant, reason: details.reason, errorCode: details.errorCode, flagMetadata: details.flagMetadata ?? {} };
}

async function resolveOurs(provider: RolloutProvider, key: string, type: Type, context: EvaluationContext): Promise<ResolutionDetails<unknown>> {
  switch (type) {
    case 'boolean':
      return provider.resolveBooleanEvaluation(key, DEFAULTS.boolean as boolean, context);
    case 'string':
      return provider.resolveStringEvaluation(key, DEFAULTS.string as string, context);
    case 'number':
      return provider.resolveNumberEvaluation(key, DEFAULTS.number as number, context);
    case 'object':
      return provider.resolveObjectEvaluation(key, DEFAULTS.object as { [key: string]: string }, context);
  }
}

/** flagd-core at `nowMs`: its $flagd.timestamp reads Date.now(), so the Date is faked for the call. */
function resolveFlagd(core: FlagdCore, key: string, type: Type, context: EvaluationContext, nowMs: number): ResolutionDetails<unknown> {
  vi.setSystemTime(nowMs);
  return core.resolve(type, key, DEFAULTS[type], context);
}

function naturalType(flag: { variants: Record<string, unknown> }): Type {
  const value = Object.values(flag.variants)[0];
  return typeof value === 'boolean' || typeof value === 'string' || typeof value === 'number' ? (typeof value as Type) : 'object';
}

async function opened(path: string, clock: FakeClock): Promise<RolloutProvider> {
  const store = new FlagdFileStore({ path, clock, watch: false });
  const provider = new RolloutProvider({ store, clock, logger: QUIET });
  await provider.initialize();
  return provider;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('the flagd store conforms to flagd-core (default mode)', () => {
  it('serves every flag of a rich flagd file exactly as flagd-core does, over 2,000 seeded contexts at five instants', async () => {
    const text = await readFile(FIXTURE, 'utf8');
    const document = JSON.parse(text) as { flags: Record<string, { variants: Record<string, unknown> }> };
    const clock = new FakeClock(GATE_S * 1000);
    // A copy: the store writes its (empty) overlay beside the file it serves.
    const dir = await mkdtemp(join(tmpdir(), 'flagd-conformance-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'conformance.flagd.json');
    await writeFile(path, text);
    const provider = await opened(path, clock);
    const core = new FlagdCore(undefined, SILENT);
    core.setConfigurations(text);
    vi.useFakeTimers({ toFake: ['Date'] });
    const differences: string[] = [];
    const reasons = new Set<string>();
    let compared = 0;
    const all = contexts(2_000, 14);
    for (const nowMs of INSTANTS_MS) {
      clock.set(nowMs);
      for (const [i, context] of all.entries()) {
        for (const [key, flag] of Object.entries(document.flags)) {
          // Every type for some contexts (TYPE_MISMATCH included), the flag's own for the rest.
          const types: Type[] = i < 25 ? ['boolean', 'string', 'number', 'object'] : [naturalType(flag)];
          for (const type of types) {
            const ours = comparable(await resolveOurs(provider, key, type, context));
            const theirs = comparable(resolveFlagd(core, key, type, context, nowMs));
            compared++;
            reasons.add(`${ours.reason}${ours.errorCode !== undefined ? `/${ours.errorCode}` : ''}`);
            if (JSON.stringify(ours) !== JSON.stringify(theirs) && differences.length < 10) {
              differences.push(`${key} as ${type} at ${nowMs} for ${JSON.stringify(context)}:\n    ours  ${JSON.stringify(ours)}\n    flagd ${JSON.stringify(theirs)}`);
            }
          }
        }
      }
    }
    expect(differences).toEqual([]);
    expect(compared).toBeGreaterThan(300_000);
    // The suite really exercised every outcome flagd has.
    expect([...reasons].sort()).toEqual(['DEFAULT', 'DISABLED', 'ERROR/GENERAL', 'ERROR/PARSE_ERROR', 'ERROR/TYPE_MISMATCH', 'STATIC', 'TARGETING_MATCH']);
    await provider.onClose();
  });

  it("buckets over the UTF-8 bytes of flagKey + targetingKey, as the Go flagd daemon does; flagd-core JS differs only on non-ASCII keys", async () => {
    const { vectors } = JSON.parse(await readFile(VECTORS, 'utf8')) as { vectors: { flagKey: string; targetingKey: string; bucketOf100: number }[] };
    const names = Array.from({ length: 100 }, (_, b) => `b${b}`);
    const hundred = names.map((name) => [name, 1]);
    const variants = Object.fromEntries(names.map((name) => [name, name]));
    const flags = Object.fromEntries([...new Set(vectors.map((v) => v.flagKey))].map((key) => [key, { state: 'ENABLED', variants, defaultVariant: 'b0', targeting: { fractional: hundred } }]));
    await withTempDir(async (dir) => {
      const path = join(dir, 'buckets.flagd.json');
      const text = JSON.stringify({ flags });
      await writeFile(path, text);
      const provider = await opened(path, new FakeClock(0));
      const core = new FlagdCore(undefined, SILENT);
      core.setConfigurations(text);
      let nonAscii = 0;
      let flagdCoreDiffers = 0;
      for (const v of vectors) {
        const context = { targetingKey: v.targetingKey };
        const ours = await provider.resolveStringEvaluation(v.flagKey, 'none', context);
        const theirs = core.resolveStringEvaluation(v.flagKey, 'none', context);
        if (v.targetingKey === '') {
          // flagd does not bucket an empty key: the default variant, as DEFAULT, from both.
          expect([ours.reason, theirs.reason]).toEqual(['DEFAULT', 'DEFAULT']);
          continue;
        }
        expect(ours.variant, `${v.flagKey} + ${v.targetingKey}`).toBe(`b${v.bucketOf100}`);
        // eslint-disable-next-line no-control-regex
        if (/^[\x00-\x7f]*$/.test(v.flagKey + v.targetingKey)) {
          expect(theirs.variant, `${v.flagKey} + ${v.targetingKey}`).toBe(ours.variant);
        } else {
          nonAscii++;
          if (theirs.variant !== ours.variant) flagdCoreDiffers++;
        }
      }
      expect(nonAscii).toBeGreaterThan(0);
      expect(flagdCoreDiffers).toBeGreaterThan(0); // the difference is real, and documented in docs/flagd.md
      await provider.onClose();
    });
  });
});
