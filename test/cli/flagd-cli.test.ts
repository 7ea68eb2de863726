// The flagd commands as users run them (in process, with a captured io): exporting flag
// files to flagd JSON, importing flagd files with every unmapped part named, and `--store
// flagd:<file>` serving the flags commands from the file a flagd daemon watches.
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FlagdCore, MemoryStorage } from '@openfeature/flagd-core';
import type { Logger } from '@openfeature/server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliRun, runCliIn } from '../helpers/cli-in-process.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/flagd/flags.yaml', import.meta.url));
const FIXTURE_STATE = fileURLToPath(new URL('../fixtures/flagd/flags.state.json', import.meta.url));
const SILENT: Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };

const FLAGD_FILE = {
  $schema: 'https://flagd.dev/schema/v0/flags.json',
  flags: {
    'new-checkout': {
      state: 'ENABLED',
      variants: { on: true, off: false },
      defaultVariant: 'off',
      targeting: { if: [{ in: [{ var: 'region' }, ['eu-west-1']] }, 'on', { fractional: [['on', 100_000], ['off', 900_000]] }] },
    },
    'by-version': {
      state: 'ENABLED',
      variants: { new: 'v2', old: 'v1' },
      defaultVariant: 'old',
      targeting: { if: [{ sem_ver: [{ var: 'appVersion' }, '>=', '2.0.0'] }, 'new'] },
    },
    'three-way': { state: 'ENABLED', variants: { a: 1, b: 2, c: 3 }, defaultVariant: 'a', targeting: { fractional: [['a', 34], ['b', 33], ['c', 33]] } },
  },
};


let root: string;
let folders = 0;

async function workspace(): Promise<string> {
  const dir = join(root, `w${++folders}`);
  await mkdir(dir);
  await copyFile(FIXTURE, join(dir, 'flags.yaml'));
  await copyFile(FIXTURE_STATE, join(dir, 'flags.state.json'));
  await writeFile(join(dir, 'team.flagd.json'), `${JSON.stringify(FLAGD_FILE, null, 2)}\n`);
  return dir;
}

function run(cwd: string, args: readonly string[]): Promise<CliRun> {
  return runCliIn(cwd, args);
}

function strictlyValid(text: string): void {
  new MemoryStorage(SILENT).setConfigurations(text, true);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'rollout-guardian-flagd-cli-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('export --format flagd', () => {
  it("prints the flags, runtime state materialized, as flagd JSON that flagd's schema accepts", async () => {
    const dir = await workspace();
    const result = await run(dir, ['export', '--format', 'flagd']);
    expect(result).toMatchObject({ code: 0 });
    expect(result.stderr).toContain('note: flags.every-operator.targeting[8].when.attribute: "user.kind" is escaped');
    expect(() => strictlyValid(result.stdout)).not.toThrow();
    const document = JSON.parse(result.stdout) as { flags: Record<string, { defaultVariant?: string; targeting?: unknown; metadata?: Record<string, unknown> }> };
    expect(document.flags.overridden).toMatchObject({ defaultVariant: 'on', metadata: { 'rollout-guardian.state': 'overridden to "on" by alice' } });
    expect(document.flags['rolled-back']?.targeting).toBeUndefined();
    expect(JSON.stringify(document.flags['progressive-ramp'])).toContain('$flagd.timestamp');
    const core = new FlagdCore(undefined, SILENT);
    core.setConfigurations(result.stdout);
    expect(core.resolveStringEvaluation('rolled-back', 'x', { targetingKey: 'user-1', region: 'eu-west-1' })).toMatchObject({ value: '#00f', reason: 'STATIC' });
  });

  it('writes --out atomically and freezes time-based rollouts with --at', async () => {
    const dir = await workspace();
    const result = await run(dir, ['export', '--format', 'flagd', '--out', 'out.flagd.json', '--at', '2026-11-08T09:00:00Z']);
    expect(result).toMatchObject({ code: 0 });
    expect(result.stdout).toMatch(/^wrote 20 flags from .*flags\.yaml to .*out\.flagd\.json as flagd JSON\n$/);
    const text = await readFile(join(dir, 'out.flagd.json'), 'utf8');
    expect(() => strictlyValid(text)).not.toThrow();
    // 0 -> 50% over 14 days, a week in: 25%.
    expect((JSON.parse(text) as { flags: Record<string, { targeting?: unknown }> }).flags['progressive-ramp']?.targeting).toEqual({ fractional: [['learned', 250_000], ['classic', 750_000]] });
  });

  it('refuses an unknown format as a usage error', async () => {
    const dir = await workspace();
    const result = await run(dir, ['export', '--format', 'launchdarkly']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('expected flagd');
  });
});

describe('import --from flagd', () => {
  it('converts what maps, names what does not with its JSON path, and exits 0', async () => {
    const dir = await workspace();
    const result = await run(dir, ['import', '--from', 'flagd', 'team.flagd.json', '--out', 'imported.yaml']);
    expect(result.code).toBe(0);
    expect(result.stderr.split('\n').filter((l) => l !== '')).toEqual([
      'not converted: flags.by-version.targeting.if[0].sem_ver: sem_ver compares versions; rollout-guardian conditions compare text',
      'not converted: flags.three-way.targeting.fractional: splits among 3 variants (a, b, c); a rollout-guardian rollout has one treatment and the baseline',
    ]);
    expect(result.stdout).toMatch(/^1 flag converted to .*imported\.yaml; 2 left out \(by-version, three-way\), see the lines above\n$/);
    const validate = await run(dir, ['validate', 'imported.yaml']);
    expect(validate).toMatchObject({ code: 0, stdout: 'imported.yaml: valid (1 flag)\n' });
    const evaluated = await run(dir, ['eval', 'new-checkout', '--store', 'imported.yaml', '--context', '{"targetingKey":"u","region":"eu-west-1"}', '--json']);
    expect(JSON.parse(evaluated.stdout)).toMatchObject({ value: true, reason: 'TARGETING_MATCH' });
  });

  it('prints one JSON document with --json', async () => {
    const dir = await workspace();
    const result = await run(dir, ['import', '--from', 'flagd', 'team.flagd.json', '--json']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const report = JSON.parse(result.stdout) as { converted: string[]; issues: { flag: string; path: string; message: string }[]; flags: Record<string, unknown> };
    expect(report.converted).toEqual(['new-checkout']);
    expect(report.flags['new-checkout']).toMatchObject({ rollout: { variant: 'on', percentage: 10 } });
    expect(report.issues.map((i) => [i.flag, i.path])).toEqual([
      ['by-version', 'flags.by-version.targeting.if[0].sem_ver'],
      ['three-way', 'flags.three-way.targeting.fractional'],
    ]);
  });

  it('round-trips through the commands: import of an export validates and keeps every flag', async () => {
    const dir = await workspace();
    expect((await run(dir, ['export', '--format', 'flagd', '--out', 'plain.flagd.json', '--store', 'flags.yaml'])).code).toBe(0);
    const imported = await run(dir, ['import', '--from', 'flagd', 'plain.flagd.json', '--out', 'back.json']);
    expect(imported.stderr).toBe('');
    const validate = await run(dir, ['validate', 'back.json']);
    expect(validate.code).toBe(0);
  });

  it('exits 1 only when the input cannot be read as a flagd file', async () => {
    const dir = await workspace();
    await writeFile(join(dir, 'broken.json'), '{"flags": {');
    await writeFile(join(dir, 'other.json'), '{"features": {}}');
    for (const [file, message] of [
      ['missing.json', 'does not exist'],
      ['broken.json', 'is not valid JSON'],
      ['other.json', 'is not a flagd flag-definition file'],
    ] as const) {
      const result = await run(dir, ['import', '--from', 'flagd', file]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(message);
    }
  });
});

describe('--store flagd:<file>', () => {
  it('is checked by validate against flagd, which says so when the file is missing', async () => {
    const dir = await workspace();
    const result = await run(dir, ['validate', 'flagd:flags.flagd.json']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/flagd file .*flags\.flagd\.json does not exist/);
    expect(await run(dir, ['validate', 'flagd:team.flagd.json'])).toMatchObject({ code: 0, stdout: 'team.flagd.json: valid (3 flags)\n' });
  });

  it('lists, evaluates and overrides flags in the file a flagd daemon watches, the override in the overlay flagd reads after it', async () => {
    const dir = await workspace();
    const userText = await readFile(join(dir, 'team.flagd.json'), 'utf8');
    const list = await run(dir, ['flags', 'list', '--store', 'flagd:team.flagd.json', '--json']);
    expect(list.code).toBe(0);
    const keys = (JSON.parse(list.stdout) as { flags: { key: string }[] }).flags.map((f) => f.key);
    expect(keys).toEqual(expect.arrayContaining(['new-checkout', 'by-version', 'three-way', 'emergency_shutdown']));
    const evaluated = await run(dir, ['eval', 'by-version', '--store', 'flagd:team.flagd.json', '--context', '{"appVersion":"2.3.0"}', '--json']);
    expect(JSON.parse(evaluated.stdout)).toMatchObject({ value: 'v2', variant: 'new', reason: 'TARGETING_MATCH' });

    const override = await run(dir, ['flags', 'override', 'three-way', 'c', '--store', 'flagd:team.flagd.json', '--reason', 'INC-5']);
    expect(override.code).toBe(0);
    expect(await readFile(join(dir, 'team.flagd.json'), 'utf8')).toBe(userText);
    const text = await readFile(join(dir, 'team.flagd.rollout-guardian.flagd.json'), 'utf8');
    expect(() => strictlyValid(text)).not.toThrow();
    const core = new FlagdCore(undefined, SILENT);
    core.setConfigurations(text);
    expect(core.resolveNumberEvaluation('three-way', 0, { targetingKey: 'anyone' })).toMatchObject({ value: 3, reason: 'STATIC' });
    expect(JSON.parse(await readFile(join(dir, 'team.flagd.state.json'), 'utf8'))).toMatchObject({ flags: { 'three-way': { override: { variant: 'c', reason: 'INC-5' } } } });
  });
});

describe('flagd schema findings are warnings', () => {
  const LENIENT = {
    flags: {
      'negative-weight': { state: 'ENABLED', variants: { a: 'a', b: 'b' }, defaultVariant: 'b', targeting: { fractional: [['a', -5], ['b', 10]] } },
      fine: { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'off' },
    },
  };

  it('eval answers a flagd file as flagd does: DISABLED and DEFAULT with no variant are the caller\'s default, matched against flagd-core', async () => {
    const dir = await workspace();
    const doc = {
      flags: {
        off: { state: 'DISABLED', variants: { on: true, off: false }, defaultVariant: 'on' },
        'no-default': { state: 'ENABLED', variants: { a: 'a', b: 'b' }, targeting: { if: [{ '==': [{ var: 'tier' }, 'gold'] }, 'a', null] } },
      },
    };
    await writeFile(join(dir, 'semantics.json'), `${JSON.stringify(doc, null, 2)}\n`);
    const core = new FlagdCore(undefined, SILENT);
    core.setConfigurations(JSON.stringify(doc));
    const disabled = JSON.parse((await run(dir, ['eval', 'off', '--store', 'flagd:semantics.json', '--json'])).stdout) as Record<string, unknown>;
    expect(disabled).toMatchObject({ value: null, variant: null, reason: 'DISABLED' });
    expect(core.resolveBooleanEvaluation('off', false, {})).toMatchObject({ value: false, reason: 'DISABLED' });
    const unmatched = JSON.parse((await run(dir, ['eval', 'no-default', '--store', 'flagd:semantics.json', '--context', '{"tier":"silver"}', '--json'])).stdout) as Record<string, unknown>;
    expect(unmatched).toMatchObject({ value: null, variant: null, reason: 'DEFAULT' });
    const matched = JSON.parse((await run(dir, ['eval', 'no-default', '--store', 'flagd:semantics.json', '--context', '{"tier":"gold"}', '--json'])).stdout) as Record<string, unknown>;
    expect(matched).toMatchObject({ value: 'a', variant: 'a', reason: 'TARGETING_MATCH' });
    expect(core.resolveStringEvaluation('no-default', 'x', { tier: 'gold' })).toMatchObject({ value: 'a', variant: 'a', reason: 'TARGETING_MATCH' });
  });

  it('validate flagd:<file> accepts a file flagd serves and lists what its strict schema says, located', async () => {
    const dir = await workspace();
    await writeFile(join(dir, 'lenient.json'), `${JSON.stringify(LENIENT, null, 2)}\n`);
    const result = await run(dir, ['validate', 'flagd:lenient.json']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^lenient\.json: valid \(2 flags\), \d+ flagd schema warnings? \(flagd serves these flags anyway/);
    expect(result.stdout).toMatch(/lenient\.json:\d+:\d+: flags\.negative-weight\.targeting.*flagd schema/);
    const json = JSON.parse((await run(dir, ['validate', 'flagd:lenient.json', '--json'])).stdout) as { valid: boolean; warnings: { flag: string }[] };
    expect(json.valid).toBe(true);
    expect(new Set(json.warnings.map((w) => w.flag))).toEqual(new Set(['negative-weight']));
    const broken = { flags: { ...LENIENT.flags, bad: { state: 'ON', variants: { a: 1 }, defaultVariant: 'a' } } };
    await writeFile(join(dir, 'broken.json'), JSON.stringify(broken, null, 2));
    const refused = await run(dir, ['validate', 'flagd:broken.json']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/broken\.json:\d+:\d+: flags\.bad\.state: flagd cannot load it/);
  });

  it('flags list --store flagd:<file> serves the flag and prints the warnings under the table', async () => {
    const dir = await workspace();
    await writeFile(join(dir, 'lenient.json'), `${JSON.stringify(LENIENT, null, 2)}\n`);
    const result = await run(dir, ['flags', 'list', '--store', 'flagd:lenient.json']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('flagd schema warnings (flagd serves these flags anyway');
    expect(result.stdout).toMatch(/flags\.negative-weight\.targeting.*flagd schema/);
    expect(await readFile(join(dir, 'lenient.json'), 'utf8')).toBe(`${JSON.stringify(LENIENT, null, 2)}\n`);
  });
});
