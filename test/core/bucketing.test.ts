// Bucketing: the hash and the buckets agree with an independent implementation (the golden
// vectors in test/fixtures/bucketing-vectors.json), with flagd-core's fractional targeting for ASCII keys, and with the
// statistics a fair, monotone, independent assignment must show.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FlagdCore } from '@openfeature/flagd-core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BUCKET_TOTAL, bucketFor, bucketOf, inTreatment, percentageToWeight, weightToPercentage } from '../../src/core/bucketing.js';
import { compileFlag } from '../../src/core/compile-flag.js';
import type { CompiledFlag } from '../../src/core/compile-flag.js';
import { evaluate } from '../../src/core/evaluate.js';
import { flagDefinitionSchema } from '../../src/core/flag-schema.js';
import { murmur3Finish, murmur3Prefix, murmur3Utf8 } from '../../src/core/murmur3.js';

interface BucketingVector {
  readonly flagKey: string;
  readonly targetingKey: string;
  readonly murmur3_x86_32_utf8_seed0: number;
  readonly bucketOf100: number;
  readonly bucketOf10000: number;
}

interface BucketingVectors {
  readonly about: string;
  readonly vectors: readonly BucketingVector[];
}

// Reference values computed by an independent MurmurHash3 implementation (not this project's),
// copied from the design notes the project was started from; see the file's "about" field.
const VECTORS_URL = new URL('../fixtures/bucketing-vectors.json', import.meta.url);

function loadVectors(): BucketingVectors {
  const path = fileURLToPath(VECTORS_URL);
  if (!existsSync(path)) {
    throw new Error(`golden bucketing vectors not found at ${path}`);
  }
  const data = JSON.parse(readFileSync(path, 'utf8')) as Partial<BucketingVectors>;
  if (typeof data.about !== 'string' || !Array.isArray(data.vectors) || data.vectors.length === 0) {
    throw new Error(`${path} is not a bucketing-vectors file: expected {about, vectors: [...]}`);
  }
  return data as BucketingVectors;
}

const golden = loadVectors();

/** MurmurHash3 x86_32, seed 0, written straight from the reference C over a byte array. */
function referenceMurmur3(bytes: Uint8Array): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const rotl = (x: number, r: number): number => (x << r) | (x >>> (32 - r));
  const byte = (i: number): number => bytes[i] ?? 0;
  const length = bytes.length;
  const blocks = length - (length % 4);
  let h = 0;
  for (let i = 0; i < blocks; i += 4) {
    let k = byte(i) | (byte(i + 1) << 8) | (byte(i + 2) << 16) | (byte(i + 3) << 24);
    k = Math.imul(rotl(Math.imul(k, c1), 15), c2);
    h ^= k;
    h = (Math.imul(rotl(h, 13), 5) + 0xe6546b64) | 0;
  }
  const tail = length % 4;
  if (tail > 0) {
    let k = 0;
    if (tail >= 3) k ^= byte(blocks + 2) << 16;
    if (tail >= 2) k ^= byte(blocks + 1) << 8;
    k ^= byte(blocks);
    h ^= Math.imul(rotl(Math.imul(k, c1), 15), c2);
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const utf8 = new TextEncoder();

function percentageFlag(flagKey: string, percentage: number): CompiledFlag {
  const definition = flagDefinitionSchema.parse({
    variants: { on: true, off: false },
    defaultVariant: 'off',
    rollout: { variant: 'on', percentage },
  });
  return compileFlag(flagKey, definition, undefined, { shutdown: false });
}

function isTreated(flag: CompiledFlag, targetingKey: string): boolean {
  return evaluate(flag, { targetingKey }, 0).variant === 'on';
}

function countTreated(flag: CompiledFlag, keys: number): number {
  let treated = 0;
  for (let i = 0; i < keys; i++) if (isTreated(flag, `user-${i}`)) treated++;
  return treated;
}

/** Pearson's statistic for `observed` of `n` trials in a category expected with probability p. */
function chiSquareTwoCategories(observed: number, n: number, p: number): number {
  const expectedIn = n * p;
  const expectedOut = n * (1 - p);
  return (observed - expectedIn) ** 2 / expectedIn + (n - observed - expectedOut) ** 2 / expectedOut;
}

/** Pearson's statistic for a 2x2 contingency table [[a, b], [c, d]] (1 degree of freedom). */
function chiSquare2x2(a: number, b: number, c: number, d: number): number {
  const n = a + b + c + d;
  return (n * (a * d - b * c) ** 2) / ((a + b) * (c + d) * (a + c) * (b + d));
}

// 99.9% critical value of the chi-square distribution with 1 degree of freedom. The keys are
// fixed, so each check is deterministic; the bound asks whether the hash looks like a fair
// coin would 999 times in 1000.
const CHI_SQUARE_1DOF_999 = 10.83;

// Any UTF-16 code unit, so lone surrogates occur; and well-formed text of any code points.
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const anyUtf16 = fc.string({ unit: codeUnit, maxLength: 40 });
const wellFormed = fc.string({ unit: 'binary', maxLength: 40 });
const unicodeText = fc.oneof(anyUtf16, wellFormed);

describe('golden bucketing vectors', () => {
  const vectors = golden.vectors;

  it('include non-ASCII targeting keys, so UTF-8 encoding is pinned too', () => {
    const isAscii = (s: string): boolean => [...s].every((ch) => (ch.codePointAt(0) ?? 0) < 0x80);
    expect(vectors.some((v) => !isAscii(v.flagKey + v.targetingKey))).toBe(true);
  });

  it.each(vectors)('hash $flagKey + $targetingKey to the reference value', (v) => {
    const expected = v.murmur3_x86_32_utf8_seed0;
    expect(murmur3Utf8(v.flagKey + v.targetingKey)).toBe(expected);
    expect(murmur3Finish(murmur3Prefix(v.flagKey), v.targetingKey)).toBe(expected);
    expect(referenceMurmur3(utf8.encode(v.flagKey + v.targetingKey))).toBe(expected);
  });

  it.each(vectors)('put $flagKey + $targetingKey in the reference buckets out of 100 and 10,000', (v) => {
    const hash = v.murmur3_x86_32_utf8_seed0;
    expect(bucketOf(hash, 100)).toBe(v.bucketOf100);
    expect(bucketOf(hash, 10_000)).toBe(v.bucketOf10000);
    expect(bucketFor(v.flagKey, v.targetingKey, 100)).toBe(v.bucketOf100);
    expect(bucketFor(v.flagKey, v.targetingKey, 10_000)).toBe(v.bucketOf10000);
  });
});

describe('murmur3 over UTF-8', () => {
  it('equals the reference over Buffer.from(s, "utf8") and TextEncoder bytes for any UTF-16 string, lone surrogates as U+FFFD', () => {
    fc.assert(
      fc.property(unicodeText, (s) => {
        const hash = murmur3Utf8(s);
        expect(hash).toBe(referenceMurmur3(Buffer.from(s, 'utf8')));
        expect(hash).toBe(referenceMurmur3(utf8.encode(s)));
      }),
      { seed: 0x6d75726d, numRuns: 2000 },
    );
  });

  it('hashes a flag key prefix and a targeting key suffix exactly as their concatenation', () => {
    // The flag key is well-formed: a key ending in a lone high surrogate would pair with a
    // suffix's low surrogate only in the concatenation (Go flagd encodes each string apart, as
    // the prefix state does).
    fc.assert(
      fc.property(wellFormed, unicodeText, (flagKey, targetingKey) => {
        expect(murmur3Finish(murmur3Prefix(flagKey), targetingKey)).toBe(murmur3Utf8(flagKey + targetingKey));
      }),
      { seed: 0x70726566, numRuns: 2000 },
    );
  });

  it('leaves a prefix state reusable: finishing it twice with different suffixes gives each its own hash', () => {
    const prefix = murmur3Prefix('new-checkout');
    const first = murmur3Finish(prefix, 'user-1');
    expect(murmur3Finish(prefix, 'user-42')).toBe(murmur3Utf8('new-checkoutuser-42'));
    expect(murmur3Finish(prefix, 'user-1')).toBe(first);
  });
});

describe('percentage rollouts', () => {
  const weight = fc.integer({ min: 0, max: BUCKET_TOTAL });

  it('treat a user exactly when their bucket out of 1,000,000 is below the weight', () => {
    fc.assert(
      fc.property(wellFormed.filter((k) => k.length > 0), unicodeText.filter((k) => k.length > 0), weight, (flagKey, targetingKey, w) => {
        const flag = percentageFlag(flagKey, weightToPercentage(w));
        expect(isTreated(flag, targetingKey)).toBe(bucketFor(flagKey, targetingKey) < w);
      }),
      { seed: 0x62756b74, numRuns: 1000 },
    );
  });

  it('never move a user out of the treatment when the percentage is raised', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 20 }), unicodeText.filter((k) => k.length > 0), weight, weight, (flagKey, targetingKey, a, b) => {
        const lower = percentageFlag(flagKey, weightToPercentage(Math.min(a, b)));
        const higher = percentageFlag(flagKey, weightToPercentage(Math.max(a, b)));
        if (isTreated(lower, targetingKey)) expect(isTreated(higher, targetingKey)).toBe(true);
      }),
      { seed: 0x6d6f6e6f, numRuns: 1000 },
    );
  });

  it('grow the treated set by inclusion across a ladder of percentages for 10,000 users', () => {
    const ladder = [0, 0.0001, 1, 5, 10, 25, 50, 75, 99.9999, 100].map((p) => percentageFlag('new-checkout', p));
    for (let i = 0; i < 10_000; i++) {
      const key = `user-${i}`;
      let treatedBelow = false;
      for (const flag of ladder) {
        const treated = isTreated(flag, key);
        if (treatedBelow) expect(treated).toBe(true);
        treatedBelow = treated;
      }
    }
  });

  it.each([{ percentage: 1 }, { percentage: 10 }, { percentage: 50 }])('split 100,000 users at $percentage% within chi-square bounds', ({ percentage }) => {
    const n = 100_000;
    const treated = countTreated(percentageFlag('new-checkout', percentage), n);
    expect(chiSquareTwoCategories(treated, n, percentage / 100)).toBeLessThan(CHI_SQUARE_1DOF_999);
  });

  it.each([
    { pa: 50, pb: 50 },
    { pa: 10, pb: 30 },
  ])('bucket users of two flags independently ($pa% and $pb% over 100,000 users)', ({ pa, pb }) => {
    // A 2x2 contingency table (treated by flag a x treated by flag b) has 1 degree of freedom;
    // a correlated hash would pile users into the diagonal.
    const a = percentageFlag('new-checkout', pa);
    const b = percentageFlag('search-ranking', pb);
    const table = [0, 0, 0, 0];
    for (let i = 0; i < 100_000; i++) {
      const key = `user-${i}`;
      const cell = (isTreated(a, key) ? 0 : 2) + (isTreated(b, key) ? 0 : 1);
      table[cell] = (table[cell] ?? 0) + 1;
    }
    const [bothOn = 0, onlyA = 0, onlyB = 0, neither = 0] = table;
    expect(chiSquare2x2(bothOn, onlyA, onlyB, neither)).toBeLessThan(CHI_SQUARE_1DOF_999);
  });

  it.each([{ percentage: 0.1 }, { percentage: 0.001 }])('resolve finer than 1%: a $percentage% rollout treats its share of 1,000,000 users within 4 sigma', ({ percentage }) => {
    const n = 1_000_000;
    const p = percentage / 100;
    const treated = countTreated(percentageFlag('new-checkout', percentage), n);
    const sigma = Math.sqrt(n * p * (1 - p));
    expect(Math.abs(treated - n * p)).toBeLessThanOrEqual(4 * sigma);
    // 4 sigma reaches below zero at 0.001% (mean 10); a rollout rounded down to nothing would
    // still pass it, so require someone treated: P(none | mean 10) = e^-10.
    expect(treated).toBeGreaterThan(0);
  });

  it('compare hash against weight exactly at the bucket boundaries', () => {
    // The largest hash in bucket b - 1 is treated at weight b, the smallest hash of bucket b is not.
    for (const w of [1, 2, 333_333, 500_000, 999_999]) {
      const firstHashOfBucket = Math.ceil((w * 2 ** 32) / BUCKET_TOTAL);
      expect(bucketOf(firstHashOfBucket, BUCKET_TOTAL)).toBe(w);
      expect(bucketOf(firstHashOfBucket - 1, BUCKET_TOTAL)).toBe(w - 1);
      expect(inTreatment(firstHashOfBucket - 1, w)).toBe(true);
      expect(inTreatment(firstHashOfBucket, w)).toBe(false);
    }
    expect(inTreatment(2 ** 32 - 1, BUCKET_TOTAL)).toBe(true);
    expect(inTreatment(0, 0)).toBe(false);
  });
});

describe('equivalence with flagd', () => {
  const percentages = [0, 0.1, 1, 10, 33.3333, 50, 99.9999, 100];

  function flagdFlag(weight: number): Record<string, unknown> {
    return {
      state: 'ENABLED',
      variants: { on: true, off: false },
      defaultVariant: 'off',
      targeting: { fractional: [['on', weight], ['off', BUCKET_TOTAL - weight]] },
    };
  }

  it('assigns 100,000 ASCII users the variant flagd-core assigns, at every percentage', () => {
    // flagd-core runs 800,000 evaluations here in well under a second, so every percentage
    // gets all 100,000 keys.
    const flagd = new FlagdCore();
    const keys = percentages.map((_, i) => `rollout-${i}`);
    flagd.setConfigurations(JSON.stringify({ flags: Object.fromEntries(keys.map((key, i) => [key, flagdFlag(percentageToWeight(percentages[i] ?? 0))])) }));
    const ours = keys.map((key, i) => percentageFlag(key, percentages[i] ?? 0));
    let mismatches = 0;
    const examples: string[] = [];
    for (let f = 0; f < keys.length; f++) {
      const flagKey = keys[f] as string;
      const flag = ours[f] as CompiledFlag;
      for (let i = 0; i < 100_000; i++) {
        const targetingKey = `user-${i}`;
        const theirs = flagd.resolveBooleanEvaluation(flagKey, false, { targetingKey });
        const mine = evaluate(flag, { targetingKey }, 0);
        if (theirs.variant !== mine.variant) {
          mismatches++;
          if (examples.length < 5) examples.push(`${percentages[f]}% ${targetingKey}: flagd ${theirs.variant}, ours ${mine.variant}`);
        }
      }
    }
    expect(examples).toEqual([]);
    expect(mismatches).toBe(0);
  });

  // flagd-core's JS hashes UTF-16 code units (imurmurhash), while Go flagd hashes the UTF-8
  // bytes; we follow Go flagd, so non-ASCII keys bucket differently in flagd-core. Pinned here
  // so the difference is known, not hidden.
  const FLAGD_CORE_JS_HASH_NEW_CHECKOUT_ZOE = 871615844; // from the vectors file's `about`

  it('differs from flagd-core for the non-ASCII key "Zoë", where flagd-core hashes UTF-16 code units', () => {
    expect(golden.about).toContain(String(FLAGD_CORE_JS_HASH_NEW_CHECKOUT_ZOE));
    const zoe = golden.vectors.find((v) => v.flagKey === 'new-checkout' && v.targetingKey === 'Zoë');
    expect(zoe).toBeDefined();
    expect(murmur3Utf8('new-checkoutZoë')).toBe(zoe?.murmur3_x86_32_utf8_seed0);
    expect(FLAGD_CORE_JS_HASH_NEW_CHECKOUT_ZOE).not.toBe(zoe?.murmur3_x86_32_utf8_seed0);

    // For code units below 256 flagd-core's hash is MurmurHash3 over one byte per code unit.
    const text = 'new-checkoutZoë';
    const codeUnits = Uint8Array.from({ length: text.length }, (_, i) => text.charCodeAt(i));
    expect(referenceMurmur3(codeUnits)).toBe(FLAGD_CORE_JS_HASH_NEW_CHECKOUT_ZOE);

    // Through FlagdCore itself: its bucket for Zoë is the one of the UTF-16 hash. At a weight
    // equal to that bucket flagd-core leaves Zoë out and one more puts her in; ours, lower,
    // treats her at both.
    const theirBucket = bucketOf(FLAGD_CORE_JS_HASH_NEW_CHECKOUT_ZOE, BUCKET_TOTAL);
    const ourBucket = bucketFor('new-checkout', 'Zoë');
    expect(ourBucket).toBeLessThan(theirBucket);
    for (const [w, flagdTreats] of [
      [theirBucket, false],
      [theirBucket + 1, true],
    ] as const) {
      const flagd = new FlagdCore();
      flagd.setConfigurations(JSON.stringify({ flags: { 'new-checkout': flagdFlag(w) } }));
      expect(flagd.resolveBooleanEvaluation('new-checkout', false, { targetingKey: 'Zoë' }).value).toBe(flagdTreats);
      expect(isTreated(percentageFlag('new-checkout', weightToPercentage(w)), 'Zoë')).toBe(true);
    }
  });
});
