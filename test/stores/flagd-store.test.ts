// The flagd store: a flagd flag-definition file served by our provider as flagd serves it,
// rolled back, stepped and overridden through an overlay file flagd reads after the user's
// (which is never rewritten for them); flagd-core loading both files, in that order, serves
// what our provider serves. Hot reload and corrupt-edit fallback as the file store.
import { watch } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FlagdCore, MemoryStorage } from '@openfeature/flagd-core';
import type { EvaluationContext as OpenFeatureContext, Logger } from '@openfeature/server-sdk';
import { describe, expect, it } from 'vitest';
import type { EvaluationContext, FlagValue } from '../../src/core/compile-flag.js';
import { flagValueType } from '../../src/core/flag-schema.js';
import { toFlagdDocument } from '../../src/flagd/flagd-convert.js';
import { RolloutProvider } from '../../src/provider/rollout-provider.js';
import { FileFlagStore } from '../../src/stores/file-store.js';
import { FlagdFileStore } from '../../src/stores/flagd-store.js';
import { InvalidWriteError, RevisionConflictError, type StoreEvent } from '../../src/stores/flag-store.js';
import { StoreWriter } from '../../src/stores/store-writer.js';
import { nextEvent } from '../helpers/events.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { withTempDir } from '../helpers/temp-dir.js';

const SILENT: Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };
const QUIET = { warn: () => undefined, error: () => undefined };
const FIXTURE = fileURLToPath(new URL('../fixtures/flagd/flags.yaml', import.meta.url));
const NOW = Date.parse('2026-11-05T12:00:00Z');
const guardian = { actor: 'guardian', reason: 'error rate 4.1% > 1% held for 5m' };
const sre = { actor: 'alice', reason: 'INC-77' };

/** flagd targeting our model cannot express: flagd-core evaluates these flags. */
const FLAGD_ONLY = {
  'search-by-version': {
    state: 'ENABLED',
    variants: { new: 'ranker-v2', old: 'ranker-v1' },
    defaultVariant: 'old',
    targeting: { if: [{ sem_ver: [{ var: 'appVersion' }, '>=', '2.0.0'] }, 'new', 'old'] },
  },
  'faas-users': { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'off', targeting: { if: [{ $ref: 'emailWithFaas' }, 'on', null] } },
  adults: { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'off', targeting: { if: [{ '>': [{ var: 'age' }, 18] }, 'on', 'off'] } },
  'three-way': { state: 'ENABLED', variants: { a: 1, b: 2, c: 3 }, defaultVariant: 'a', targeting: { fractional: [['a', 34], ['b', 33], ['c', 33]] } },
} as const;

/** Written by hand in flagd's idiom, and expressible in our model. */
const FLAGD_PLAIN = {
  'plain-split': {
    state: 'ENABLED',
    variants: { on: true, off: false },
    defaultVariant: 'off',
    targeting: { if: [{ in: [{ var: 'region' }, ['eu-west-1']] }, 'on', { fractional: [['on', 50], ['off', 50]] }] },
  },
} as const;

/** The fixture flags exported, plus the hand-written ones: a flagd file as a team would have it. */
async function flagdFile(dir: string): Promise<string> {
  const store = new FileFlagStore({ path: FIXTURE, watch: false });
  const snapshot = await store.load();
  const exported = toFlagdDocument(snapshot.parsed, new Map(), { nowMs: NOW }).document;
  const document = {
    $schema: 'https://flagd.dev/schema/v0/flags.json',
    $evaluators: { emailWithFaas: { ends_with: [{ var: 'email' }, '@faas.com'] } },
    flags: { ...exported.flags, ...FLAGD_ONLY, ...FLAGD_PLAIN },
  };
  const path = join(dir, 'flags.flagd.json');
  await writeFile(path, `${JSON.stringify(document, null, 2)}\n`);
  return path;
}

function contextFor(i: number): EvaluationContext {
  const c: Record<string, unknown> = {};
  if (i % 499 !== 0) c.targetingKey = `user-${i}`;
  if (i % 3 !== 0) c.region = ['eu-west-1', 'us-east-1'][i % 2];
  if (i % 5 !== 0) c.appVersion = ['1.9.0', '2.0.0', '2.1.3', 'v3', 'not-a-version'][i % 5];
  if (i % 7 !== 0) c.age = [10, 18, 19, 40][i % 4];
  c.email = i % 4 === 0 ? `u${i}@faas.com` : `u${i}@example.com`;
  c.plan = ['enterprise', 'free'][i % 2];
  return c;
}

async function readJson(path: string): Promise<{ flags: Record<string, Record<string, unknown>> } & Record<string, unknown>> {
  return JSON.parse(await readFile(path, 'utf8')) as { flags: Record<string, Record<string, unknown>> };
}

function flagdOn(text: string): FlagdCore {
  const core = new FlagdCore(undefined, SILENT);
  core.setConfigurations(text);
  return core;
}

/**
 * What a flagd daemon started with `--uri file:<file> --uri file:<overlay>` serves: flagd-core
 * on each source, the later source winning flag by flag (flagd's documented merge order).
 */
async function flagdSources(store: FlagdFileStore): Promise<{ resolve: (key: string, baseline: FlagValue, context: EvaluationContext) => ReturnType<FlagdCore['resolve']> }> {
  const file = flagdOn(await readFile(store.source, 'utf8'));
  const overlay = flagdOn(await readFile(store.overlayPath, 'utf8'));
  return { resolve: (key, baseline, context) => resolveFlagd(overlay.getFlag(key) !== undefined ? overlay : file, key, baseline, context) };
}

/** flagd's strict validation: flagd-core's compiled copy of flagd's own schema. */
function strictlyValid(text: string): void {
  new MemoryStorage(SILENT).setConfigurations(text, true);
}

function resolveFlagd(core: FlagdCore, key: string, baseline: FlagValue, context: EvaluationContext) {
  return core.resolve(flagValueType(baseline), key, baseline, context as OpenFeatureContext);
}

async function resolveOurs(provider: RolloutProvider, key: string, baseline: FlagValue, context: EvaluationContext) {
  const ctx = context as OpenFeatureContext;
  switch (flagValueType(baseline)) {
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

/** Keys whose variant or value differ between our provider and flagd-core on the file, for `flags`. */
async function disagreements(provider: RolloutProvider, store: FlagdFileStore, flags: readonly string[], keys: number): Promise<string[]> {
  const snapshot = await store.load();
  const flagd = await flagdSources(store);
  const out: string[] = [];
  for (const key of flags) {
    const definition = snapshot.parsed.definitions.get(key);
    if (definition === undefined) throw new Error(`no flag ${key}`);
    const baseline = definition.variants[definition.defaultVariant] as FlagValue;
    for (let i = 0; i < keys; i++) {
      const context = contextFor(i);
      const mine = await resolveOurs(provider, key, baseline, context);
      const theirs = flagd.resolve(key, baseline, context);
      const same = ['value', 'variant', 'reason', 'errorCode', 'flagMetadata'] as const;
      if (same.some((field) => JSON.stringify(theirs[field]) !== JSON.stringify(mine[field]))) {
        if (out.length < 5) out.push(`${key} ${JSON.stringify(context)}: ours ${mine.variant}/${mine.reason}, flagd ${theirs.variant}/${theirs.reason}`);
      }
    }
  }
  return out;
}

async function opened(path: string, clock = new FakeClock(NOW), watch = false): Promise<{ store: FlagdFileStore; provider: RolloutProvider }> {
  const store = new FlagdFileStore({ path, clock, watch });
  const provider = new RolloutProvider({ store, clock, logger: QUIET });
  await provider.initialize();
  return { store, provider };
}

describe('FlagdFileStore', () => {
  it('serves every flag of a flagd file as a flagd daemon would, and reads the flags our model expresses into it', async () => {
    await withTempDir(async (dir) => {
      const path = await flagdFile(dir);
      const { store, provider } = await opened(path);
      const snapshot = await store.load();
      expect([...(snapshot.external?.keys() ?? [])].sort()).toEqual(Object.keys(FLAGD_ONLY).sort());
      expect(snapshot.parsed.definitions.get('plain-split')?.rollout).toEqual({ variant: 'on', percentage: 50 });
      expect(snapshot.parsed.invalid.size).toBe(0);
      // What `copy` carries: our definitions, and flagd JSON where only flagd-core can evaluate the flag.
      const stored = await store.storedDefinitions();
      expect(stored['plain-split']).toMatchObject({ rollout: { variant: 'on', percentage: 50 } });
      expect(stored['search-by-version']).toEqual(FLAGD_ONLY['search-by-version']);
      const all = [...snapshot.parsed.definitions.keys()].filter((k) => !k.startsWith('progressive'));
      expect(await disagreements(provider, store, all, 20_000)).toEqual([]);
      // flagd-core's own reasons for the flags it evaluates; semver and $ref really ran.
      const ctx = { targetingKey: 'u', appVersion: '2.1.0', email: 'x@faas.com' };
      expect(await provider.resolveStringEvaluation('search-by-version', 'old', ctx)).toMatchObject({ value: 'ranker-v2', variant: 'new', reason: 'TARGETING_MATCH' });
      expect(await provider.resolveBooleanEvaluation('faas-users', false, ctx)).toMatchObject({ value: true, reason: 'TARGETING_MATCH' });
      expect(await provider.resolveBooleanEvaluation('faas-users', false, { email: 'x@y.z' })).toMatchObject({ value: false, variant: 'off', reason: 'DEFAULT' });
      expect(await provider.resolveNumberEvaluation('three-way', 0, ctx)).toMatchObject({ reason: 'TARGETING_MATCH' });
      expect(await provider.resolveStringEvaluation('adults', 'x', ctx)).toMatchObject({ errorCode: 'TYPE_MISMATCH' });
      await provider.onClose();
    });
  });

  it("rolls flags back through the overlay: the user's file is never written, and flagd-core on both files serves every key the baseline", async () => {
    await withTempDir(async (dir) => {
      const path = await flagdFile(dir);
      const userText = await readFile(path, 'utf8');
      const { store, provider } = await opened(path);
      const writer = new StoreWriter(store, new FakeClock(NOW));
      const rolled = ['pct-ten', 'rules-and-rollout', 'progressive-with-rules', 'object-variants', 'search-by-version', 'three-way', 'plain-split'];
      for (const key of rolled) await writer.rollback(key, guardian, { errorRate: 0.041 });

      expect(await readFile(path, 'utf8')).toBe(userText);
      expect(store.overlayPath).toBe(join(dir, 'flags.flagd.rollout-guardian.flagd.json'));
      const overlayText = await readFile(store.overlayPath, 'utf8');
      expect(() => strictlyValid(overlayText)).not.toThrow();
      const overlay = JSON.parse(overlayText) as { flags: Record<string, Record<string, unknown>> } & Record<string, unknown>;
      expect(Object.keys(overlay.flags).sort()).toEqual([...rolled].sort());
      const flagd = await flagdSources(store);
      const snapshot = await store.load();
      for (const key of rolled) {
        const definition = snapshot.parsed.definitions.get(key);
        const baseline = definition?.variants[definition.defaultVariant] as FlagValue;
        expect(overlay.flags[key]).toMatchObject({ defaultVariant: definition?.defaultVariant });
        expect(overlay.flags[key]?.targeting).toBeUndefined();
        for (let i = 0; i < 100_000; i++) {
          const result = flagd.resolve(key, baseline, { targetingKey: `user-${i}`, region: 'eu-west-1', appVersion: '9.0.0', age: 40, email: 'a@faas.com' });
          if (JSON.stringify(result.value) !== JSON.stringify(baseline)) throw new Error(`${key} user-${i}: flagd serves ${JSON.stringify(result.value)}, not the baseline`);
        }
        // Served as the daemon serves the overlay's flag: the baseline for everyone, and why in its metadata.
        expect(await resolveOurs(provider, key, baseline, { targetingKey: 'user-1', region: 'eu-west-1' })).toMatchObject({
          value: baseline,
          reason: 'STATIC',
          flagMetadata: { 'rollout-guardian.state': 'rolled back by guardian' },
        });
      }
      const all = [...snapshot.parsed.definitions.keys()].filter((k) => !k.startsWith('progressive'));
      expect(await disagreements(provider, store, all, 2_000)).toEqual([]);
      const audit = await store.audit({ flagKey: 'search-by-version' });
      expect(audit).toHaveLength(1);
      expect(audit[0]).toMatchObject({ actor: 'guardian', action: 'rollback', evidence: { errorRate: 0.041 } });

      // Resetting the state empties the overlay: flagd serves what the team wrote.
      for (const key of rolled) await writer.resetState(key, sre);
      expect((await readJson(store.overlayPath)).flags).toEqual({});
      expect(await readFile(path, 'utf8')).toBe(userText);
      await provider.onClose();
    });
  });

  it('a GitOps restore of the user file does not undo a rollback: the overlay keeps it, as flagd daemons do', async () => {
    await withTempDir(async (dir) => {
      const path = await flagdFile(dir);
      const userText = await readFile(path, 'utf8');
      const { store, provider } = await opened(path);
      await new StoreWriter(store, new FakeClock(NOW)).rollback('pct-ten', guardian);
      await writeFile(path, userText); // a sync tool writes the file back, byte for byte
      await store.reload();
      expect(await provider.resolveBooleanEvaluation('pct-ten', true, { targetingKey: 'user-3' })).toMatchObject({ value: false, reason: 'STATIC' });
      expect((await readJson(store.overlayPath)).flags['pct-ten']).toMatchObject({ defaultVariant: 'off' });
      await provider.onClose();
    });
  });

  it("steps a rollout by writing its fractional weights to the overlay (plans, setPercentage), and refuses a percentage for a flag flagd-core evaluates", async () => {
    await withTempDir(async (dir) => {
      const path = await flagdFile(dir);
      const userText = await readFile(path, 'utf8');
      const { store, provider } = await opened(path);
      const writer = new StoreWriter(store, new FakeClock(NOW));
      for (const pct of [5, 25, 33.3333]) {
        await writer.setPercentage('plain-split', pct, sre);
        await writer.setPercentage('progressive-ramp', pct, sre);
        expect(await readFile(path, 'utf8')).toBe(userText);
        const file = await readJson(store.overlayPath);
        expect(JSON.stringify(file.flags['progressive-ramp'])).not.toContain('$flagd.timestamp');
        expect(JSON.stringify(file.flags['plain-split'])).toContain(`["on",${Math.round(pct * 10_000)}]`);
        expect(() => strictlyValid(JSON.stringify(file))).not.toThrow();
        expect(await disagreements(provider, store, ['plain-split', 'progressive-ramp'], 20_000)).toEqual([]);
      }
      await expect(writer.setPercentage('three-way', 10, sre)).rejects.toThrow(InvalidWriteError);
      await provider.onClose();
    });
  });

  it('materializes overrides and an emergency shutdown in the overlay, and empties it when they are cleared', async () => {
    await withTempDir(async (dir) => {
      const path = await flagdFile(dir);
      const userText = await readFile(path, 'utf8');
      const { store, provider } = await opened(path);
      const writer = new StoreWriter(store, new FakeClock(NOW));
      await writer.override('adults', 'on', sre);
      await writer.override('emergency_shutdown', 'on', sre);
      const file = await readJson(store.overlayPath);
      expect(() => strictlyValid(JSON.stringify(file))).not.toThrow();
      expect(file.flags.emergency_shutdown).toMatchObject({ defaultVariant: 'on', variants: { on: true, off: false } });
      const snapshot = await store.load();
      const flags = [...snapshot.parsed.definitions.keys()];
      expect(await disagreements(provider, store, flags, 2_000)).toEqual([]);
      expect(file.flags.adults).toMatchObject({ defaultVariant: 'off' }); // the shutdown beats the override
      await writer.resetState('emergency_shutdown', sre);
      expect((await readJson(store.overlayPath)).flags.adults).toMatchObject({ defaultVariant: 'on', metadata: { 'rollout-guardian.baseline': 'off' } });
      await writer.clearOverride('adults', sre);
      expect((await readJson(store.overlayPath)).flags).toEqual({});
      expect(await readFile(path, 'utf8')).toBe(userText);
      await provider.onClose();
    });
  });

  it('takes a hand edit of a rolled-back flag as its new definition, and keeps the rollback over it in the overlay', async () => {
    await withTempDir(async (dir) => {
      const path = await flagdFile(dir);
      const { store, provider } = await opened(path);
      const writer = new StoreWriter(store, new FakeClock(NOW));
      await writer.rollback('pct-tenth', guardian);
      const file = await readJson(path);
      file.flags['pct-tenth'] = { state: 'ENABLED', variants: { on: true, off: false, dark: false }, defaultVariant: 'off', targeting: { fractional: [['on', 2000], ['off', 998000]] } };
      await writeFile(path, JSON.stringify(file, null, 2));
      const snapshot = await store.load();
      expect(snapshot.parsed.definitions.get('pct-tenth')?.rollout).toEqual({ variant: 'on', percentage: 0.2 });
      expect(snapshot.state.get('pct-tenth')?.rollback).toBeDefined();
      expect((await readJson(store.overlayPath)).flags['pct-tenth']).toMatchObject({ defaultVariant: 'off', variants: { on: true, off: false, dark: false } });
      await writer.resetState('pct-tenth', sre);
      expect((await readJson(store.overlayPath)).flags).toEqual({});
      expect((await readJson(path)).flags['pct-tenth']).toEqual(file.flags['pct-tenth']);
      await provider.onClose();
    });
  });

  it('brings the overlay up to date when the watched file changes: a hand edit of a rolled-back flag reaches flagd rolled back', async () => {
    await withTempDir(async (dir) => {
      const path = await flagdFile(dir);
      const store = new FlagdFileStore({ path, debounceMs: 5, clock: new FakeClock(NOW) });
      const provider = new RolloutProvider({ store, clock: new FakeClock(NOW), logger: QUIET });
      await provider.initialize();
      await new StoreWriter(store, new FakeClock(NOW)).rollback('pct-tenth', guardian);
      const file = await readJson(path);
      file.flags['pct-tenth'] = { ...file.flags['pct-tenth'], variants: { on: true, off: false, dark: false } };
      // Waits for the overlay file to change (an event), not for time to pass.
      const overlayChanged = nextEvent<string>(
        (listener) => {
          const watcher = watch(dir, (_event, name) => {
            if (name === basename(store.overlayPath)) listener(name);
          });
          return () => watcher.close();
        },
        () => true,
      );
      await writeFile(path, JSON.stringify(file, null, 2));
      await overlayChanged;
      // The overlay is replaced by a rename, so what the event announces is whole.
      expect((await readJson(store.overlayPath)).flags['pct-tenth']).toMatchObject({ defaultVariant: 'off', variants: { on: true, off: false, dark: false } });
      expect(await provider.resolveBooleanEvaluation('pct-tenth', true, { targetingKey: 'user-1' })).toMatchObject({ value: false, reason: 'STATIC' });
      await provider.onClose();
    });
  });

  it('reloads on change; a corrupt edit keeps the last good flags serving and says where the file is bad', async () => {
    await withTempDir(async (dir) => {
      const path = await flagdFile(dir);
      const store = new FlagdFileStore({ path, debounceMs: 5 });
      const provider = new RolloutProvider({ store, logger: QUIET });
      await provider.initialize();
      const good = await readJson(path);

      const changed = nextEvent<StoreEvent>((l) => store.watch(l), (e) => e.type === 'change');
      good.flags['pct-all'] = { ...good.flags['pct-all'], defaultVariant: 'on', targeting: {} };
      await writeFile(path, JSON.stringify(good, null, 2));
      await changed;
      expect(await provider.resolveBooleanEvaluation('pct-all', false, {})).toMatchObject({ value: true, reason: 'STATIC' });

      // writeFile truncates before it writes: a watcher may read the empty file first, which is
      // invalid too. Wait for the complaint about the text as written.
      const invalid = nextEvent<StoreEvent>((l) => store.watch(l), (e) => e.type === 'invalid' && /flags\.flagd\.json:3:/.test(e.message));
      await writeFile(path, '{\n  "flags": {\n    "pct-all": {,\n');
      const event = await invalid;
      expect(event.type === 'invalid' && event.message).toMatch(/flags\.flagd\.json:3:\d+: JSON syntax error/);
      expect(await provider.resolveBooleanEvaluation('pct-all', false, {})).toMatchObject({ value: true });
      expect(await provider.resolveStringEvaluation('search-by-version', 'old', { appVersion: '2.0.0' })).toMatchObject({ value: 'ranker-v2' });

      const recovered = nextEvent<StoreEvent>((l) => store.watch(l), (e) => e.type === 'change');
      good.flags['pct-all'] = { ...good.flags['pct-all'], state: 'ON' };
      await writeFile(path, JSON.stringify(good, null, 2));
      const change = await recovered;
      // A flag flagd cannot load at all is located, and its last good definition keeps serving, as flagd served it.
      expect(change.type === 'change' && change.snapshot.flagErrors?.get('pct-all')?.join('\n')).toMatch(/flags\.flagd\.json:\d+:\d+: flags\.pct-all\.state: flagd cannot load it/);
      const retained = await provider.resolveBooleanEvaluation('pct-all', false, {});
      expect(retained).toMatchObject({ value: true, variant: 'on', reason: 'STATIC' });
      expect(retained.flagMetadata?.revision).toBeUndefined();
      expect(await provider.resolveBooleanEvaluation('pct-ten', false, {})).toMatchObject({ value: false });
      await provider.onClose();
    });
  });

  it('edits a definition our model expresses and writes it as flagd JSON; refuses stale revisions and edits of flagd-core flags', async () => {
    await withTempDir(async (dir) => {
      const path = await flagdFile(dir);
      const store = new FlagdFileStore({ path, watch: false, clock: new FakeClock(NOW) });
      const writer = new StoreWriter(store, new FakeClock(NOW));
      const stale = (await store.load()).revision;
      await writer.setDefinition('pct-third', ['rollout', 'percentage'], 12.5, sre);
      expect((await readJson(path)).flags['pct-third']?.targeting).toEqual({ fractional: [['blue', 125_000], ['green', 875_000]] });
      await expect(
        store.write({ actor: 'bob', reason: 'late', action: 'override', expectedRevision: stale, changes: [{ flagKey: 'pct-third', state: null }] }),
      ).rejects.toThrow(RevisionConflictError);
      await expect(writer.setDefinition('adults', ['defaultVariant'], 'on', sre)).rejects.toThrow(/flagd-core evaluates it/);
      await store.close();
    });
  });
});

/** Flags real flagd files have that flagd serves although its strict schema, or our model, would refuse them. */
const FLAGD_LENIENT = {
  metadata: { flagSetId: 'checkout', version: 3 },
  flags: {
    // sem_ver with a v-prefixed, partial version and a numeric context value; wrong argument counts and an unknown operator.
    'lenient-semver': {
      state: 'ENABLED',
      variants: { new: 'new', old: 'old' },
      defaultVariant: 'old',
      targeting: { if: [{ sem_ver: [{ var: 'version' }, '>=', 'v2'] }, 'new', null] },
    },
    'semver-bad-operator': { state: 'ENABLED', variants: { new: 'new', old: 'old' }, defaultVariant: 'old', targeting: { sem_ver: [{ var: 'version' }, '=>', '1.0.0'] } },
    'starts-with-three-args': { state: 'ENABLED', variants: { a: 'a', b: 'b' }, defaultVariant: 'b', targeting: { if: [{ starts_with: [{ var: 'email' }, 'x', 'y'] }, 'a', null] } },
    'negative-weight': { state: 'ENABLED', variants: { a: 'a', b: 'b' }, defaultVariant: 'b', targeting: { fractional: [['a', -5], ['b', 10]] } },
    'null-bucketing-key': { state: 'ENABLED', variants: { a: 'a', b: 'b' }, defaultVariant: 'b', targeting: { fractional: [{ var: 'missing' }, ['a', 50], ['b', 50]] } },
    // No defaultVariant: the caller's default when nothing matches, and when the targeting returns null.
    'no-default': { state: 'ENABLED', variants: { a: 'a', b: 'b' }, targeting: { if: [{ '==': [{ var: 'plan' }, 'pro'] }, 'a', null] } },
    'no-default-no-targeting': { state: 'ENABLED', variants: { a: 'a', b: 'b' } },
    'disabled-flag': { state: 'DISABLED', variants: { on: true, off: false }, defaultVariant: 'on', metadata: { owner: 'ops' } },
    // Expressible in our model: a rule and no rollout, so no match is flagd's DEFAULT.
    'rule-only': {
      state: 'ENABLED',
      variants: { on: true, off: false },
      defaultVariant: 'off',
      targeting: { if: [{ in: [{ var: 'region' }, ['eu-west-1']] }, 'on'] },
      metadata: { team: 'payments', version: 4 },
    },
    'split-only': { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'off', targeting: { fractional: [['on', 500_000], ['off', 500_000]] } },
  },
};

describe('FlagdFileStore serves what a flagd daemon serves', () => {
  async function lenientStore(dir: string, rolloutMetadata = false) {
    const path = join(dir, 'flags.json');
    await writeFile(path, `${JSON.stringify(FLAGD_LENIENT, null, 2)}\n`);
    const clock = new FakeClock(NOW);
    const store = new FlagdFileStore({ path, clock, watch: false, rolloutMetadata });
    const provider = new RolloutProvider({ store, clock, logger: QUIET });
    await provider.initialize();
    return { store, provider, path };
  }

  it("serves flags flagd's strict schema refuses, as flagd's default mode does, and reports the findings as warnings", async () => {
    await withTempDir(async (dir) => {
      const { store, provider } = await lenientStore(dir);
      const snapshot = await store.load();
      expect([...snapshot.parsed.invalid.keys()]).toEqual([]);
      expect(await provider.resolveStringEvaluation('lenient-semver', 'x', { version: 'v2.1' })).toMatchObject({ value: 'new', variant: 'new', reason: 'TARGETING_MATCH' });
      expect(await provider.resolveStringEvaluation('lenient-semver', 'x', { version: 3 })).toMatchObject({ value: 'new', reason: 'TARGETING_MATCH' });
      expect(await provider.resolveStringEvaluation('lenient-semver', 'x', { version: '1.9.9' })).toMatchObject({ value: 'old', variant: 'old', reason: 'DEFAULT' });
      expect(await provider.resolveStringEvaluation('semver-bad-operator', 'x', { version: '1.0.0' })).toMatchObject({ value: 'old', reason: 'DEFAULT' });
      expect(await provider.resolveStringEvaluation('starts-with-three-args', 'x', { email: 'xy' })).toMatchObject({ value: 'b', reason: 'DEFAULT' });
      expect(await provider.resolveStringEvaluation('negative-weight', 'x', { targetingKey: 'user-1' })).toMatchObject({ value: 'b', reason: 'TARGETING_MATCH' });
      expect(await provider.resolveStringEvaluation('null-bucketing-key', 'x', { targetingKey: 'user-1' })).toMatchObject({ value: 'b', reason: 'DEFAULT' });
      const warnings = await store.schemaWarnings();
      expect([...warnings.keys()]).toEqual(['lenient-semver', 'semver-bad-operator', 'starts-with-three-args', 'negative-weight', '']);
      expect(warnings.get('')).toEqual([expect.stringMatching(/flags\.json:\d+:\d+: metadata\.version: flagd schema: must be string/)]);
      expect(warnings.get('negative-weight')?.join('\n')).toMatch(/flags\.json:\d+:\d+: flags\.negative-weight\..*flagd schema/);
      await provider.onClose();
    });
  });

  it("serves a flag without defaultVariant: the caller's default with reason DEFAULT when no rule matches or the targeting returns null", async () => {
    await withTempDir(async (dir) => {
      const { store, provider } = await lenientStore(dir);
      expect(await provider.resolveStringEvaluation('no-default', 'mine', { plan: 'pro' })).toMatchObject({ value: 'a', variant: 'a', reason: 'TARGETING_MATCH' });
      const missed = await provider.resolveStringEvaluation('no-default', 'mine', { plan: 'free' });
      expect(missed).toEqual({ value: 'mine', reason: 'DEFAULT', flagMetadata: { flagSetId: 'checkout', version: 3 } });
      expect(await provider.resolveStringEvaluation('no-default-no-targeting', 'mine', {})).toEqual({ value: 'mine', reason: 'DEFAULT', flagMetadata: { flagSetId: 'checkout', version: 3 } });
      // Without a baseline there is nothing to roll back to: refused, nothing written.
      await expect(store.write({ ...guardian, action: 'rollback', changes: [{ flagKey: 'no-default', state: { rollback: { ...guardian, at: '2026-11-05T12:00:00.000Z' } } }] })).rejects.toThrow(
        /"no-default" has no baseline rollout-guardian can hold/,
      );
      expect(await store.audit()).toEqual([]);
      await provider.onClose();
    });
  });

  it("answers a disabled flag with the caller's default, reason DISABLED and no variant", async () => {
    await withTempDir(async (dir) => {
      const { provider } = await lenientStore(dir);
      const result = await provider.resolveBooleanEvaluation('disabled-flag', false, { targetingKey: 'user-1' });
      expect(result).toEqual({ value: false, reason: 'DISABLED', flagMetadata: { flagSetId: 'checkout', version: 3, owner: 'ops' } });
      await provider.onClose();
    });
  });

  it("gives a flag's flagMetadata exactly as flagd does (flag-set metadata merged under the flag's); our extras only when opted in", async () => {
    await withTempDir(async (dir) => {
      const plain = await lenientStore(dir);
      const ctx = { targetingKey: 'user-1', region: 'eu-west-1' };
      expect((await plain.provider.resolveBooleanEvaluation('rule-only', false, ctx)).flagMetadata).toEqual({ flagSetId: 'checkout', version: 4, team: 'payments' });
      expect((await plain.provider.resolveBooleanEvaluation('split-only', false, ctx)).flagMetadata).toEqual({ flagSetId: 'checkout', version: 3 });
      await plain.provider.onClose();
      const extras = await lenientStore(dir, true);
      const meta = (await extras.provider.resolveBooleanEvaluation('split-only', false, ctx)).flagMetadata;
      expect(meta).toMatchObject({ flagSetId: 'checkout', version: 3, rolloutPercentage: 50 });
      expect(typeof meta?.revision).toBe('string');
      await extras.provider.onClose();
    });
  });

  it('answers DEFAULT when no rule of a flag our model expresses matches, as flagd does, so the reason does not depend on the evaluator', async () => {
    await withTempDir(async (dir) => {
      const { store, provider } = await lenientStore(dir);
      expect((await store.load()).parsed.definitions.get('rule-only')?.targeting).toHaveLength(1); // it maps to our model
      expect(await provider.resolveBooleanEvaluation('rule-only', true, { region: 'us-east-1' })).toMatchObject({ value: false, variant: 'off', reason: 'DEFAULT' });
      expect(await provider.resolveBooleanEvaluation('rule-only', false, { region: 'eu-west-1' })).toMatchObject({ value: true, variant: 'on', reason: 'TARGETING_MATCH' });
      await provider.onClose();
    });
  });
});

describe('FlagdFileStore reading its file in a worker thread', () => {
  it('reloads through the worker to the same model, located errors and served results as on the main thread', async () => {
    await withTempDir(async (dir) => {
      const path = await flagdFile(dir);
      const inWorker = new FlagdFileStore({ path, watch: false, clock: new FakeClock(NOW), workerThresholdBytes: 0 });
      const onMain = new FlagdFileStore({ path, watch: false, clock: new FakeClock(NOW), workerThresholdBytes: Number.POSITIVE_INFINITY });
      const providers = [new RolloutProvider({ store: inWorker, logger: QUIET, clock: new FakeClock(NOW) }), new RolloutProvider({ store: onMain, logger: QUIET, clock: new FakeClock(NOW) })] as const;
      for (const provider of providers) await provider.initialize();
      const seen = [[], []] as [StoreEvent[], StoreEvent[]];
      inWorker.watch((e) => seen[0].push(e));
      onMain.watch((e) => seen[1].push(e));

      const document = JSON.parse(await readFile(path, 'utf8')) as { flags: Record<string, unknown> };
      document.flags['three-way'] = { ...FLAGD_ONLY['three-way'], targeting: { fractional: [['a', 10], ['b', 10], ['c', 80]] } };
      document.flags.broken = { state: 'ENABLED', variants: 'not a map', defaultVariant: 'a' };
      await writeFile(path, `${JSON.stringify(document, null, 2)}\n`);
      await inWorker.reload();
      await onMain.reload();

      const [fromWorker, fromMain] = seen.map((events) => events.map((e) => (e.type === 'change' ? { revision: e.snapshot.revision, parsed: e.snapshot.parsed, state: e.snapshot.state, flagErrors: e.snapshot.flagErrors, served: [...(e.snapshot.serving?.keys() ?? [])] } : e)));
      expect(fromWorker).toHaveLength(1);
      expect(fromWorker).toEqual(fromMain);
      const changed = seen[0][0];
      expect(changed?.type === 'change' ? changed.snapshot.flagErrors?.get('broken')?.join('\n') : undefined).toMatch(new RegExp(`${basename(path).replace(/[.]/g, '\\.')}:\\d+:\\d+: `));
      const keys = Object.keys(document.flags);
      for (let i = 0; i < 60; i++) {
        for (const key of keys) {
          const baseline = typeof (document.flags[key] as { variants?: Record<string, FlagValue> }).variants === 'object' ? (Object.values((document.flags[key] as { variants: Record<string, FlagValue> }).variants)[0] as FlagValue) : false;
          expect(await resolveOurs(providers[0], key, baseline, contextFor(i))).toEqual(await resolveOurs(providers[1], key, baseline, contextFor(i)));
        }
      }

      // A file that is no longer JSON: the same located refusal, the last good flags serving.
      await writeFile(path, '{"flags": {"three-way": ');
      await inWorker.reload();
      await onMain.reload();
      const refusals = seen.map((events) => events.at(-1));
      expect(refusals[0]).toEqual(refusals[1]);
      expect(refusals[0]?.type === 'invalid' && refusals[0].message).toMatch(/flags\.flagd\.json:1:\d+: JSON syntax error/);
      expect(await resolveOurs(providers[0], 'three-way', 0, contextFor(1))).toEqual(await resolveOurs(providers[1], 'three-way', 0, contextFor(1)));
      for (const provider of providers) await provider.onClose();
      expect(inWorker.workerThreadId).toBeUndefined();
    });
  });
});
