import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OpenFeature, ProviderEvents, type EventDetails, type Client } from '@openfeature/server-sdk';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RolloutProvider } from '../../src/provider/rollout-provider.js';
import { MemoryFlagStore } from '../../src/stores/memory-store.js';
import { FileFlagStore } from '../../src/stores/file-store.js';
import { StoreWriter } from '../../src/stores/store-writer.js';
import type { FlagDefinitionInput } from '../../src/core/flag-schema.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { OutageStore } from '../helpers/outage-store.js';
import { withTempDir } from '../helpers/temp-dir.js';
import { nextEvent } from '../helpers/events.js';

const FLAGS: Record<string, FlagDefinitionInput> = {
  'new-checkout': { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', percentage: 50 } },
  greeting: { variants: { formal: 'Good day', casual: 'Hi' }, defaultVariant: 'formal', targeting: [{ when: { attribute: 'region', in: ['au'] }, variant: 'casual' }] },
  'page-size': { variants: { small: 10, large: 25 }, defaultVariant: 'small', rollout: { variant: 'large' } },
  theme: { variants: { light: { bg: '#fff' }, dark: { bg: '#000' } }, defaultVariant: 'dark' },
};

const by = { actor: 'alice', reason: 'test' };
const silent = { warn: () => undefined, error: () => undefined };
let domainCount = 0;

async function start(provider: RolloutProvider): Promise<Client> {
  const domain = `test-${++domainCount}`;
  await OpenFeature.setProviderAndWait(domain, provider);
  return OpenFeature.getClient(domain);
}

interface SeenEvent {
  readonly message?: string;
  readonly flagsChanged: readonly string[];
}

function providerEvent(provider: RolloutProvider, type: ProviderEvents): Promise<SeenEvent> {
  return nextEvent<SeenEvent>((listener) => {
    const handler = (details?: EventDetails) => listener({ message: details?.message, flagsChanged: (details?.flagsChanged as string[] | undefined) ?? [] });
    provider.events.addHandler(type, handler);
    return () => provider.events.removeHandler(type, handler);
  });
}

afterEach(async () => {
  vi.useRealTimers();
  await OpenFeature.close();
});

describe('RolloutProvider through the OpenFeature SDK', () => {
  it('resolves boolean, string, number and object flags with OpenFeature reasons and metadata', async () => {
    const client = await start(new RolloutProvider({ store: new MemoryFlagStore({ flags: FLAGS }) }));
    const split = await client.getBooleanDetails('new-checkout', false, { targetingKey: 'user-1' });
    expect(split).toMatchObject({ reason: 'SPLIT', flagMetadata: { rolloutPercentage: 50 } });
    expect(typeof split.flagMetadata.revision).toBe('string');
    expect(await client.getStringDetails('greeting', 'x', { targetingKey: 'u', region: 'au' })).toMatchObject({ value: 'Hi', variant: 'casual', reason: 'TARGETING_MATCH' });
    expect(await client.getNumberDetails('page-size', 0, {})).toMatchObject({ value: 25, variant: 'large', reason: 'STATIC' });
    expect(await client.getObjectValue('theme', {})).toEqual({ bg: '#000' });
    expect(await client.getBooleanDetails('emergency_shutdown', true)).toMatchObject({ value: false, reason: 'STATIC' });
  });

  it('gives the same user the same variant every time, and no coin flip without a targeting key', async () => {
    const client = await start(new RolloutProvider({ store: new MemoryFlagStore({ flags: FLAGS }) }));
    const first = await client.getBooleanValue('new-checkout', false, { targetingKey: 'user-42' });
    for (let i = 0; i < 20; i++) expect(await client.getBooleanValue('new-checkout', !first, { targetingKey: 'user-42' })).toBe(first);
    expect(await client.getBooleanDetails('new-checkout', true, {})).toMatchObject({ value: false, variant: 'off', reason: 'DEFAULT' });
  });

  it('reports FLAG_NOT_FOUND, TYPE_MISMATCH and PARSE_ERROR as errors with the caller default, the other flags unharmed', async () => {
    const store = new MemoryFlagStore({ flags: { ...FLAGS, broken: { variants: { a: 1 }, defaultVariant: 'b' } } });
    const warnings: string[] = [];
    const client = await start(new RolloutProvider({ store, logger: { warn: (m: string) => warnings.push(m), error: () => undefined } }));
    expect(await client.getBooleanDetails('missing', true)).toMatchObject({ value: true, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
    expect(await client.getStringDetails('new-checkout', 'd', { targetingKey: 'u' })).toMatchObject({
      value: 'd',
      errorCode: 'TYPE_MISMATCH',
      errorMessage: 'flag "new-checkout" is a boolean flag, not string',
    });
    const broken = await client.getNumberDetails('broken', 7);
    expect(broken).toMatchObject({ value: 7, reason: 'ERROR', errorCode: 'PARSE_ERROR' });
    expect(broken.errorMessage).toContain('flags.broken.defaultVariant: expected one of the variants: a, got "b"');
    expect(warnings.join('\n')).toContain('flag "broken" in memory is invalid, it resolves with PARSE_ERROR');
    expect(await client.getNumberValue('page-size', 0)).toBe(25);
  });

  it('emits CONFIGURATION_CHANGED naming only the flags whose definition or state changed', async () => {
    const store = new MemoryFlagStore({ flags: FLAGS });
    const provider = new RolloutProvider({ store });
    const client = await start(provider);
    const writer = new StoreWriter(store);
    const changed = providerEvent(provider, ProviderEvents.ConfigurationChanged);
    await writer.override('greeting', 'casual', by);
    expect((await changed).flagsChanged).toEqual(['greeting']);
    expect(await client.getStringDetails('greeting', 'x', { region: 'us' })).toMatchObject({ value: 'Hi', reason: 'STATIC', flagMetadata: { overridden: true } });

    const changedAgain = providerEvent(provider, ProviderEvents.ConfigurationChanged);
    await writer.setDefinition('page-size', ['variants', 'large'], 50, by);
    expect((await changedAgain).flagsChanged).toEqual(['page-size']);
    expect(await client.getNumberValue('page-size', 0)).toBe(50);
  });

  it('sends every rollout to its baseline, and names them all as changed, when emergency_shutdown is turned on', async () => {
    const store = new MemoryFlagStore({ flags: FLAGS });
    const provider = new RolloutProvider({ store });
    const client = await start(provider);
    const changed = providerEvent(provider, ProviderEvents.ConfigurationChanged);
    await new StoreWriter(store).override('emergency_shutdown', 'on', { actor: 'sre', reason: 'incident 123' });
    expect([...(await changed).flagsChanged].sort()).toEqual(['emergency_shutdown', 'greeting', 'new-checkout', 'page-size', 'theme']);
    expect(await client.getNumberDetails('page-size', 0)).toMatchObject({ value: 10, variant: 'small', reason: 'DISABLED', flagMetadata: { emergencyShutdown: true } });
    expect(await client.getStringValue('greeting', 'x', { region: 'au' })).toBe('Good day');
    expect(await client.getBooleanValue('emergency_shutdown', false)).toBe(true);
    expect(await client.getBooleanValue('read_only_mode', true)).toBe(false);
  });

  it('follows a rollback in the store: the baseline serves everyone, with reason DEFAULT', async () => {
    const store = new MemoryFlagStore({ flags: FLAGS });
    const provider = new RolloutProvider({ store });
    const client = await start(provider);
    const changed = providerEvent(provider, ProviderEvents.ConfigurationChanged);
    await new StoreWriter(store).rollback('new-checkout', { actor: 'guardian', reason: 'error rate' }, { errorRate: 0.05 });
    await changed;
    for (let i = 0; i < 50; i++) {
      expect(await client.getBooleanDetails('new-checkout', true, { targetingKey: `user-${i}` })).toMatchObject({
        value: false,
        reason: 'DEFAULT',
        flagMetadata: { rolledBack: true, rolloutPercentage: 0 },
      });
    }
  });

  it('moves a progressive rollout with its injected clock', async () => {
    const clock = new FakeClock(Date.parse('2026-11-01T00:00:00Z'));
    const store = new MemoryFlagStore({
      flags: { ramp: { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on', progressive: { start: '2026-11-01T00:00:00Z', end: '2026-11-11T00:00:00Z' } } } },
    });
    const client = await start(new RolloutProvider({ store, clock }));
    const share = async () => {
      let on = 0;
      for (let i = 0; i < 2000; i++) if (await client.getBooleanValue('ramp', false, { targetingKey: `u${i}` })) on++;
      return on / 2000;
    };
    expect(await share()).toBe(0);
    clock.advance(5 * 86_400_000);
    expect((await client.getBooleanDetails('ramp', false, { targetingKey: 'x' })).flagMetadata.rolloutPercentage).toBe(50);
    expect(Math.abs((await share()) - 0.5)).toBeLessThan(0.05);
    clock.advance(10 * 86_400_000);
    expect(await share()).toBe(1);
  });

  it('goes STALE at once and ERROR after the grace period when the store is away, and READY when it is back, serving all along', async () => {
    const store = new OutageStore({ flags: FLAGS });
    const provider = new RolloutProvider({ store, errorGraceMs: 30_000, logger: silent });
    const client = await start(provider);
    vi.useFakeTimers();
    const seen: string[] = [];
    for (const type of [ProviderEvents.Stale, ProviderEvents.Error, ProviderEvents.Ready]) provider.events.addHandler(type, () => seen.push(type));
    store.cut();
    expect(seen).toEqual([ProviderEvents.Stale]);
    expect(await client.getNumberValue('page-size', 0)).toBe(25);
    vi.advanceTimersByTime(29_999);
    expect(seen).toEqual([ProviderEvents.Stale]);
    vi.advanceTimersByTime(1);
    expect(seen).toEqual([ProviderEvents.Stale, ProviderEvents.Error]);
    expect(await client.getNumberValue('page-size', 0)).toBe(25);
    store.restore();
    expect(seen).toEqual([ProviderEvents.Stale, ProviderEvents.Error, ProviderEvents.Ready]);
  });

  it('on a corrupt flag file keeps serving the last good flags, emits ERROR naming the file, and recovers when it is fixed', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'flags.yaml');
      await writeFile(path, 'flags:\n  size:\n    variants: { s: 1, l: 2 }\n    defaultVariant: l\n');
      const provider = new RolloutProvider({ store: new FileFlagStore({ path }), logger: silent });
      const client = await start(provider);
      const error = providerEvent(provider, ProviderEvents.Error);
      await writeFile(path, 'flags:\n  size: {variants: [\n');
      expect((await error).message).toMatch(/flags\.yaml:\d+:\d+: YAML syntax error/);
      expect(await client.getNumberValue('size', 0)).toBe(2);

      const badField = providerEvent(provider, ProviderEvents.Error);
      await writeFile(path, 'flags:\n  size:\n    variants: { s: 1, l: 2 }\n    defaultVariant: xl\n');
      expect((await badField).message).toContain('invalid definitions for size');
      expect(await client.getNumberDetails('size', 0)).toMatchObject({ value: 2, variant: 'l' });

      const ready = providerEvent(provider, ProviderEvents.Ready);
      const changed = providerEvent(provider, ProviderEvents.ConfigurationChanged);
      await writeFile(path, 'flags:\n  size:\n    variants: { s: 1, l: 2 }\n    defaultVariant: s\n');
      expect((await changed).flagsChanged).toEqual(['size']);
      await ready;
      expect(await client.getNumberValue('size', 0)).toBe(1);
    });
  });

  it('goes STALE when the flag file disappears, serving the last flags', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'flags.yaml');
      await writeFile(path, 'flags:\n  size:\n    variants: { s: 1, l: 2 }\n    defaultVariant: l\n');
      const provider = new RolloutProvider({ store: new FileFlagStore({ path }), logger: silent });
      const client = await start(provider);
      const stale = providerEvent(provider, ProviderEvents.Stale);
      const { unlink } = await import('node:fs/promises');
      await unlink(path);
      expect((await stale).message).toContain('does not exist');
      expect(await client.getNumberValue('size', 0)).toBe(2);
    });
  });

  it('releases its store on close, hears nothing afterwards, and closes twice without harm', async () => {
    const store = new MemoryFlagStore({ flags: FLAGS });
    const provider = new RolloutProvider({ store });
    await start(provider);
    let events = 0;
    provider.events.addHandler(ProviderEvents.ConfigurationChanged, () => events++);
    await provider.onClose();
    await provider.onClose();
    await expect(new StoreWriter(store).override('greeting', 'casual', by)).rejects.toThrow(/closed/);
    expect(events).toBe(0);
  });
});

describe('RolloutProvider when the store is not there at startup', () => {
  it('fails to initialize, then serves and emits READY once the flag file appears', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'flags.yaml');
      const provider = new RolloutProvider({ store: new FileFlagStore({ path }), logger: silent });
      await expect(OpenFeature.setProviderAndWait('late', provider)).rejects.toThrow(/does not exist/);
      const client = OpenFeature.getClient('late');
      expect(await client.getNumberDetails('size', 0)).toMatchObject({ value: 0, reason: 'ERROR' });
      const ready = providerEvent(provider, ProviderEvents.Ready);
      await writeFile(path, 'flags:\n  size:\n    variants: { s: 1, l: 2 }\n    defaultVariant: l\n');
      await ready;
      expect(await client.getNumberDetails('size', 0)).toMatchObject({ value: 2, variant: 'l', reason: 'STATIC' });
    });
  });
});
