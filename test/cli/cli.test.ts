// The rollout-guardian CLI as users run it, in process through runCli with a captured io,
// against real flag files in a temporary folder (cli-binary.test.ts runs the built binary).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bucketFor } from '../../src/core/bucketing.js';
import { type CliRun, runCliIn } from '../helpers/cli-in-process.js';


// Aligned comments, flow maps and a header comment: what `flags set` must leave alone.
const FLAGS_YAML = `# Checkout flags, owned by the payments team.
flags:
  new-checkout:
    description: The redesigned checkout flow
    variants: { on: true, off: false }
    defaultVariant: off        # the baseline; also what a rollback returns to
    rollout:
      variant: on
      percentage: 10           # sticky by targetingKey
    targeting:                 # first match wins, before the percentage
      - name: eu canary
        when: { attribute: region, in: [eu-west-1] }
        variant: on

  search-ranking:
    variants: { classic: classic-v1, learned: ltr-2026-10 }
    defaultVariant: classic
    rollout:
      variant: learned
      progressive: { from: 0, to: 50, start: 2000-01-01T00:00:00Z, end: 2000-01-02T00:00:00Z }
`;

const BAD_PERCENTAGE_YAML = `flags:
  good:
    variants: { on: true, off: false }
    defaultVariant: off
  bad:
    variants: { on: true, off: false }
    defaultVariant: off
    rollout:
      variant: on
      percentage: 150
`;

const MISALIGNED_YAML = 'flags:\n  x:\n    defaultVariant: off\n   state: enabled\n';

const NO_STACK_TRACE = /\n\s+at .+:\d+:\d+/;


let root: string;
let folders = 0;

/** A fresh folder holding `flags.yaml` (unless `yaml` is null). */
async function workspace(yaml: string | null = FLAGS_YAML): Promise<string> {
  const dir = join(root, `w${++folders}`);
  await mkdir(dir);
  if (yaml !== null) await writeFile(join(dir, 'flags.yaml'), yaml);
  return dir;
}

function run(cwd: string, args: readonly string[], env?: Readonly<Record<string, string>>): Promise<CliRun> {
  return runCliIn(cwd, args, { env });
}

async function runJson<T>(cwd: string, args: readonly string[]): Promise<T> {
  const result = await run(cwd, [...args, '--json']);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as T;
}

function text(dir: string, name: string): Promise<string> {
  return readFile(join(dir, name), 'utf8');
}

function changedLines(before: string, after: string): { before: string; after: string }[] {
  const a = before.split('\n');
  const b = after.split('\n');
  expect(b.length).toBe(a.length);
  return a.flatMap((line, i) => (line === b[i] ? [] : [{ before: line, after: b[i] as string }]));
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'rollout-guardian-cli-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('validate', () => {
  it('exits 0 and names the file when every flag is valid', async () => {
    const dir = await workspace();
    const result = await run(dir, ['validate']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toBe('flags.yaml: valid (2 flags)\n');
  });

  it.each([
    ['a percentage out of range', BAD_PERCENTAGE_YAML, 'flags.yaml:10:19: flags.bad.rollout.percentage: expected a percentage from 0 to 100, got 150'],
    [
      'a baseline that is not a variant',
      'flags:\n  x:\n    variants: { on: true, off: false }\n    defaultVariant: maybe\n',
      'flags.yaml:4:21: flags.x.defaultVariant: expected one of the variants: on, off, got "maybe"',
    ],
    ['a misspelt field', 'flags:\n  x:\n    variants: { a: 1 }\n    defaultVariant: a\n    colour: red\n', 'flags.x: unknown field "colour" (check the spelling)'],
    ['a YAML syntax error', MISALIGNED_YAML, 'flags.yaml:4:1: YAML syntax error: All mapping items must start at the same column'],
  ])('exits 1 with file, line:col, field path and expectation for %s', async (_case, yaml, expected) => {
    const dir = await workspace(yaml);
    const result = await run(dir, ['validate']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(expected);
    expect(result.stderr).toMatch(/flags\.yaml: 1 problem/);
  });

  it('checks the file it is given rather than the default', async () => {
    const dir = await workspace();
    await writeFile(join(dir, 'other.yaml'), BAD_PERCENTAGE_YAML);
    const result = await run(dir, ['validate', 'other.yaml']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('other.yaml:10:19: flags.bad.rollout.percentage');
  });

  it('reports each problem with its flag as JSON on stdout', async () => {
    const dir = await workspace(BAD_PERCENTAGE_YAML);
    const result = await run(dir, ['validate', '--json']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toEqual({
      file: 'flags.yaml',
      valid: false,
      flagCount: 2,
      errors: [{ flag: 'bad', message: 'flags.yaml:10:19: flags.bad.rollout.percentage: expected a percentage from 0 to 100, got 150' }],
    });
  });

  it('flags an override in the state file that names no variant', async () => {
    const dir = await workspace();
    const override = { variant: 'blue', actor: 'a', reason: 'r', at: '2026-01-01T00:00:00Z' };
    await writeFile(join(dir, 'flags.state.json'), JSON.stringify({ version: 1, flags: { 'new-checkout': { override } } }));
    const result = await run(dir, ['validate']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('flags.state.json: flags.new-checkout.override.variant: expected one of the variants: on, off, got "blue"');
  });

  it('says how to create or point to a missing file', async () => {
    const dir = await workspace(null);
    const result = await run(dir, ['validate']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'error: flag file flags.yaml does not exist; create it, name it (rollout-guardian validate <file>), pass --store <path>, or set ROLLOUT_GUARDIAN_FLAGS\n',
    );
  });
});

describe('flags list and get', () => {
  it('lists each flag with type, state, variants, baseline, rollout and override', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flags', 'list']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const lines = result.stdout.split('\n').map((line) => line.split(/\s{2,}/));
    expect(lines[0]).toEqual(['KEY', 'TYPE', 'STATE', 'VARIANTS', 'BASELINE', 'ROLLOUT', 'OVERRIDE']);
    expect(lines[1]).toEqual(['new-checkout', 'boolean', 'enabled', 'on, off', 'off', '10% on', '-']);
    expect(lines[2]).toEqual(['search-ranking', 'string', 'enabled', 'classic, learned', 'classic', 'progressive 0->50% (now 50%)', '-']);
    expect(lines[3]).toEqual(['emergency_shutdown', 'boolean', 'enabled', 'on, off', 'off', 'none', '-']);
  });

  it('lists invalid flags with their located errors', async () => {
    const dir = await workspace(BAD_PERCENTAGE_YAML);
    const result = await run(dir, ['flags', 'list']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^bad\s+-\s+INVALID\s/m);
    expect(result.stdout).toContain(`invalid flags (they resolve with PARSE_ERROR until fixed):\n  ${join(dir, 'flags.yaml')}:10:19: flags.bad.rollout.percentage`);
  });

  it('shows an override and a rollback from the runtime state', async () => {
    const dir = await workspace();
    const stamp = { actor: 'guardian', reason: 'p99 breach', at: '2026-01-01T00:00:00Z' };
    const state = { 'new-checkout': { rollback: stamp }, 'search-ranking': { override: { variant: 'learned', ...stamp, actor: 'alice' } } };
    await writeFile(join(dir, 'flags.state.json'), JSON.stringify({ version: 1, flags: state }));
    const result = await run(dir, ['flags', 'list']);
    expect(result.stdout).toMatch(/^new-checkout .* rolled back \(file: 10% on\)\s+-$/m);
    expect(result.stdout).toMatch(/^search-ranking .* learned \(by alice\)$/m);
  });

  it('prints the list as one JSON object', async () => {
    const dir = await workspace(BAD_PERCENTAGE_YAML.replace('  good:', '  good:\n    description: fine'));
    const list = await runJson<{ store: string; revision: string; emergencyShutdown: boolean; flags: Record<string, unknown>[] }>(dir, ['flags', 'list']);
    expect(list.store).toBe(join(dir, 'flags.yaml'));
    expect(list.emergencyShutdown).toBe(false);
    expect(typeof list.revision).toBe('string');
    expect(list.flags.map((f) => f.key)).toEqual(['good', 'bad', 'emergency_shutdown', 'read_only_mode', 'maintenance_mode']);
    expect(list.flags[0]).toMatchObject({
      key: 'good',
      valid: true,
      builtIn: false,
      type: 'boolean',
      state: 'enabled',
      description: 'fine',
      variants: { on: true, off: false },
      baseline: 'off',
      rollout: null,
      summary: 'none',
      override: null,
      rollback: null,
      runtimePercentage: null,
      errors: [],
    });
    expect(list.flags[1]).toMatchObject({
      key: 'bad',
      valid: false,
      summary: 'invalid',
      // Line 11: the description added above moved the percentage down one line.
      errors: [`${join(dir, 'flags.yaml')}:11:19: flags.bad.rollout.percentage: expected a percentage from 0 to 100, got 150`],
      definition: { rollout: { variant: 'on', percentage: 150 } },
    });
    expect(list.flags[2]).toMatchObject({ key: 'emergency_shutdown', builtIn: true });
  });

  it('gets one flag with its definition and runtime state', async () => {
    const dir = await workspace();
    await run(dir, ['flags', 'override', 'new-checkout', 'on', '--actor', 'alice', '--reason', 'incident 42']);
    const result = await run(dir, ['flags', 'get', 'new-checkout']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^ {2}rollout\s+10% on$/m);
    expect(result.stdout).toMatch(/^ {2}override\s+"on" by alice at \S+ \("incident 42"\)$/m);
    expect(result.stdout).toContain('definition:\n  description: The redesigned checkout flow\n');
    expect(result.stdout).toMatch(/runtime state \(flags\.state\.json\):\n {2}override:\n {4}variant: on\n {4}actor: alice\n/);
  });

  it('gets one flag as JSON', async () => {
    const dir = await workspace();
    const got = await runJson<{ flag: Record<string, unknown> }>(dir, ['flags', 'get', 'search-ranking']);
    expect(got.flag).toMatchObject({
      key: 'search-ranking',
      type: 'string',
      rollout: {
        variant: 'learned',
        kind: 'progressive',
        percentage: null,
        progressive: { from: 0, to: 50, start: '2000-01-01T00:00:00Z', end: '2000-01-02T00:00:00Z' },
        currentPercentage: 50,
      },
      summary: 'progressive 0->50% (now 50%)',
      definition: { defaultVariant: 'classic', state: 'enabled' },
    });
  });

  it('gets an invalid flag with its located errors and its definition as written', async () => {
    const dir = await workspace(BAD_PERCENTAGE_YAML);
    const result = await run(dir, ['flags', 'get', 'bad']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`bad: INVALID, resolves with PARSE_ERROR until fixed\n  ${join(dir, 'flags.yaml')}:10:19: flags.bad.rollout.percentage`);
    expect(result.stdout).toContain('definition (as written):\n');
    expect(result.stdout).toContain('    percentage: 150\n');
  });
});

describe('flags set', () => {
  it('changes only the one value, keeping comments, alignment and key order', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flags', 'set', 'new-checkout', 'rollout.percentage', '25', '--actor', 'alice', '--reason', 'ramp up']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toBe('new-checkout: set by alice ("ramp up"), recorded in the audit log\n  definition.rollout.percentage: 10 -> 25\n');
    expect(changedLines(FLAGS_YAML, await text(dir, 'flags.yaml'))).toEqual([
      { before: '      percentage: 10           # sticky by targetingKey', after: '      percentage: 25           # sticky by targetingKey' },
    ]);
  });

  it('reads the value as YAML, so lists and maps can be set', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flags', 'set', 'new-checkout', 'targeting[0].when', '{attribute: region, in: [eu-west-1, eu-central-1]}', '--reason', 'widen canary']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('definition.targeting[0].when.in: ["eu-west-1"] -> ["eu-west-1","eu-central-1"]');
    const evaluated = await runJson<{ reason: string }>(dir, ['eval', 'new-checkout', '--context', '{"targetingKey":"u1","region":"eu-central-1"}']);
    expect(evaluated.reason).toBe('TARGETING_MATCH');
    expect(await text(dir, 'flags.yaml')).toContain('# Checkout flags, owned by the payments team.');
  });

  it('refuses an edit that would make the flag invalid and leaves the file unchanged', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flags', 'set', 'new-checkout', 'rollout.percentage', '150', '--reason', 'typo']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('error: the edit would make flag "new-checkout" invalid: flags.new-checkout.rollout.percentage: expected a percentage from 0 to 100, got 150\n');
    expect(await text(dir, 'flags.yaml')).toBe(FLAGS_YAML);
    expect(existsSync(join(dir, 'flags.audit.jsonl'))).toBe(false);
  });

  it('nudges for a reason when none is given', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flags', 'set', 'new-checkout', 'rollout.percentage', '20', '--actor', 'bob']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('note: no --reason given, so the audit log says "manual change via CLI"; next time say why with --reason "..."\n');
  });
});

describe('overrides and runtime state', () => {
  it('override writes the state file beside the flag file and leaves the YAML byte-identical', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flags', 'override', 'new-checkout', 'on', '--actor', 'alice', '--reason', 'incident 42']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^new-checkout: override by alice \("incident 42"\), recorded in the audit log\n {2}state\.override: none -> \{"variant":"on"/);
    expect(await text(dir, 'flags.yaml')).toBe(FLAGS_YAML);
    const state = JSON.parse(await text(dir, 'flags.state.json')) as { flags: Record<string, unknown> };
    expect(state.flags['new-checkout']).toEqual({ override: { variant: 'on', actor: 'alice', reason: 'incident 42', at: expect.any(String) as string } });
    const evaluated = await runJson<{ value: unknown; reason: string; metadata: Record<string, unknown>; explanation: string }>(dir, ['eval', 'new-checkout']);
    expect(evaluated).toMatchObject({ value: true, reason: 'STATIC', metadata: { overridden: true } });
    expect(evaluated.explanation).toContain('manual override to "on" by alice');
  });

  it('clear-override removes the override and still leaves the YAML byte-identical', async () => {
    const dir = await workspace();
    await run(dir, ['flags', 'override', 'new-checkout', 'on', '--reason', 'test']);
    const result = await run(dir, ['flags', 'clear-override', 'new-checkout', '--reason', 'resolved']);
    expect(result.code).toBe(0);
    expect(await text(dir, 'flags.yaml')).toBe(FLAGS_YAML);
    const state = JSON.parse(await text(dir, 'flags.state.json')) as { flags: Record<string, unknown> };
    expect(state.flags['new-checkout']).toBeUndefined();
  });

  it('reports a mutation as one JSON object with the audit entry it wrote', async () => {
    const dir = await workspace();
    const report = await runJson<Record<string, unknown>>(dir, ['flags', 'override', 'new-checkout', 'off', '--actor', 'alice', '--reason', 'r']);
    expect(report).toMatchObject({
      store: join(dir, 'flags.yaml'),
      action: 'override',
      flag: 'new-checkout',
      changed: true,
      revision: expect.any(String) as string,
      entry: { actor: 'alice', reason: 'r', action: 'override', flagKey: 'new-checkout', before: { state: null }, after: { state: { override: { variant: 'off' } } } },
    });
  });

  it('reset-state clears override, rollback and runtime percentage', async () => {
    const dir = await workspace();
    const stamp = { actor: 'guardian', reason: 'p99 breach', at: '2026-01-01T00:00:00Z' };
    const flagState = { override: { variant: 'on', ...stamp }, rollback: stamp, percentage: 5 };
    await writeFile(join(dir, 'flags.state.json'), JSON.stringify({ version: 1, flags: { 'new-checkout': flagState } }));
    const result = await run(dir, ['flags', 'reset-state', 'new-checkout', '--reason', 'recovered']);
    expect(result.code).toBe(0);
    const state = JSON.parse(await text(dir, 'flags.state.json')) as { flags: Record<string, unknown> };
    expect(state.flags).toEqual({});
    expect((await run(dir, ['flags', 'list'])).stdout).toMatch(/^new-checkout .* 10% on\s+-$/m);
  });

  it('reset-state on a flag without runtime state writes nothing', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flags', 'reset-state', 'new-checkout']);
    expect(result).toMatchObject({ code: 0, stdout: 'new-checkout: nothing to reset-state; nothing was written\n' });
    expect(existsSync(join(dir, 'flags.audit.jsonl'))).toBe(false);
  });
});

describe('audit', () => {
  async function withHistory(): Promise<string> {
    const dir = await workspace();
    await run(dir, ['flags', 'set', 'new-checkout', 'rollout.percentage', '25', '--actor', 'alice', '--reason', 'ramp up']);
    await run(dir, ['flags', 'override', 'search-ranking', 'classic', '--actor', 'bob', '--reason', 'bad ranking']);
    return dir;
  }

  it('shows every change with actor, reason, before and after', async () => {
    const dir = await withHistory();
    const result = await run(dir, ['audit']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^\S+Z {2}set {2}new-checkout {2}by alice: "ramp up"\n {2}definition\.rollout\.percentage: 10 -> 25\n/);
    expect(result.stdout).toMatch(/\n\S+Z {2}override {2}search-ranking {2}by bob: "bad ranking"\n {2}state\.override: none -> \{"variant":"classic","actor":"bob"/);
  });

  it('filters by flag', async () => {
    const dir = await withHistory();
    const result = await run(dir, ['audit', '--flag', 'search-ranking']);
    expect(result.stdout).toContain('search-ranking');
    expect(result.stdout).not.toContain('new-checkout');
  });

  it('prints the entries as JSON', async () => {
    const dir = await withHistory();
    const audit = await runJson<{ store: string; entries: Record<string, unknown>[] }>(dir, ['audit', '--flag', 'new-checkout']);
    expect(audit.store).toBe(join(dir, 'flags.yaml'));
    expect(audit.entries).toHaveLength(1);
    expect(audit.entries[0]).toMatchObject({
      actor: 'alice',
      reason: 'ramp up',
      action: 'set',
      flagKey: 'new-checkout',
      before: { definition: { rollout: { variant: 'on', percentage: 10 } }, state: null },
      after: { definition: { rollout: { variant: 'on', percentage: 25 } }, state: null },
    });
  });

  it('suggests the flag meant when a filtered key has no history and is no flag', async () => {
    const dir = await withHistory();
    const result = await run(dir, ['audit', '--flag', 'new-chekout']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('no flag "new-chekout"; did you mean "new-checkout"?');
  });
});

describe('eval', () => {
  interface Report {
    value: unknown;
    variant: string | null;
    reason: string;
    metadata: Record<string, unknown>;
    rule: { index: number; name: string | null; variant: string } | null;
    bucket: { bucket: number; treatmentBuckets: number; inTreatment: boolean } | null;
    explanation: string;
  }

  it('explains a canary region match with the rule that matched', async () => {
    const dir = await workspace();
    const result = await run(dir, ['eval', 'new-checkout', '--context', '{"targetingKey":"u1","region":"eu-west-1"}']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^value\s+true$/m);
    expect(result.stdout).toMatch(/^variant\s+on$/m);
    expect(result.stdout).toMatch(/^reason\s+TARGETING_MATCH$/m);
    expect(result.stdout).toMatch(/^rule\s+targeting\[0\] "eu canary": region in \[eu-west-1\]$/m);
    expect(result.stdout).toMatch(/^metadata\s+revision=\w+, rolloutPercentage=10$/m);
  });

  it('gives the baseline with reason DEFAULT when a percentage rollout gets no targetingKey', async () => {
    const dir = await workspace();
    const report = await runJson<Report>(dir, ['eval', 'new-checkout', '--context', '{"region":"us-east-1"}']);
    expect(report).toMatchObject({ value: false, variant: 'off', reason: 'DEFAULT', rule: null, bucket: null });
    expect(report.explanation).toContain('no targetingKey in the context');
  });

  it('shows the bucket that decided a split, as flagd computes it', async () => {
    const dir = await workspace();
    const report = await runJson<Report>(dir, ['eval', 'new-checkout', '--context', '{"targetingKey":"user-7","region":"us-east-1"}']);
    const inTreatment = bucketFor('new-checkout', 'user-7') < 100_000;
    expect(report).toMatchObject({
      value: inTreatment,
      variant: inTreatment ? 'on' : 'off',
      reason: 'SPLIT',
      bucket: { bucket: bucketFor('new-checkout', 'user-7'), treatmentBuckets: 100_000, inTreatment },
    });
  });

  it('prints value, variant, reason, metadata and the matched rule as JSON', async () => {
    const dir = await workspace();
    const report = await runJson<Record<string, unknown>>(dir, ['eval', 'new-checkout', '--context', '{"targetingKey":"u1","region":"eu-west-1"}']);
    expect(report).toMatchObject({
      flag: 'new-checkout',
      context: { targetingKey: 'u1', region: 'eu-west-1' },
      value: true,
      variant: 'on',
      reason: 'TARGETING_MATCH',
      errorCode: null,
      metadata: { rolloutPercentage: 10, revision: expect.any(String) as string },
      rule: { index: 0, name: 'eu canary', variant: 'on' },
      rules: [{ index: 0, name: 'eu canary', variant: 'on', matched: true, conditions: [{ attribute: 'region', operator: 'in', actual: 'eu-west-1', matched: true }] }],
    });
  });

  it('explains with the rule matching that evaluation used, for every operator and attribute type', async () => {
    const dir = await workspace(`flags:
  f:
    variants: { a: 1, b: 2, c: 3, d: 4, e: 5, g: 6 }
    defaultVariant: a
    targeting:
      - { when: { attribute: tier, in: [42, gold] }, variant: b }
      - { when: { attribute: beta, equals: true }, variant: c }
      - { when: { attribute: region, notIn: [us-east-1] }, variant: d }
      - { when: [{ attribute: email, startsWith: ops- }, { attribute: email, endsWith: "@example.com" }], variant: e }
      - { when: { attribute: targetingKey, equals: 7 }, variant: g }
`);
    const contexts = [{}, { tier: 42 }, { tier: '42' }, { tier: 'silver', beta: true }, { beta: 'true' }, { region: 'us-east-1' }, { region: 'eu-west-1' }, { region: { nested: 1 } }, { email: 'ops-1@example.com', region: 'us-east-1' }, { email: 'ops-1@example.org', region: 'us-east-1' }, { targetingKey: '7', region: 'us-east-1' }];
    for (const context of contexts) {
      const report = await runJson<{ reason: string; variant: string; rule: { index: number } | null; rules: { index: number; matched: boolean; variant: string }[] }>(dir, ['eval', 'f', '--context', JSON.stringify(context)]);
      const first = report.rules.find((r) => r.matched);
      expect({ context, reason: report.reason, rule: report.rule?.index ?? null }).toEqual({ context, reason: first ? 'TARGETING_MATCH' : 'STATIC', rule: first?.index ?? null });
      expect(report.variant).toBe(first?.variant ?? 'a');
    }
  });

  it('evaluates a progressive rollout at the instant given with --at', async () => {
    const dir = await workspace();
    const report = await runJson<Report>(dir, ['eval', 'search-ranking', '--context', '{"targetingKey":"u1"}', '--at', '2000-01-01T12:00:00Z']);
    expect(report.metadata.rolloutPercentage).toBe(25);
  });

  it('exits 1 for a flag that resolves with an error, showing where it is invalid', async () => {
    const dir = await workspace(BAD_PERCENTAGE_YAML);
    const result = await run(dir, ['eval', 'bad']);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^reason\s+ERROR \(PARSE_ERROR\)$/m);
    expect(result.stdout).toContain(`errors:\n  ${join(dir, 'flags.yaml')}:10:19: flags.bad.rollout.percentage`);
  });
});

describe('where the flags are read from', () => {
  it('honours ROLLOUT_GUARDIAN_FLAGS', async () => {
    const dir = await workspace();
    const elsewhere = await workspace(null);
    const result = await run(elsewhere, ['flags', 'list'], { ROLLOUT_GUARDIAN_FLAGS: join(dir, 'flags.yaml') });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('new-checkout');
  });

  it('prefers --store over ROLLOUT_GUARDIAN_FLAGS', async () => {
    const dir = await workspace();
    await writeFile(join(dir, 'other.yaml'), 'flags:\n  other-flag:\n    variants: { a: 1 }\n    defaultVariant: a\n');
    const result = await run(dir, ['flags', 'list', '--store', 'other.yaml'], { ROLLOUT_GUARDIAN_FLAGS: join(dir, 'flags.yaml') });
    expect(result.stdout).toContain('other-flag');
    expect(result.stdout).not.toContain('new-checkout');
  });

  it('names the supported stores for a URL scheme it does not serve', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flags', 'list', '--store', 'etcd://localhost:2379']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'error: etcd:// stores are not supported; use a YAML or JSON flag file (a path or file:// URL) or Redis (redis:// or rediss://) (etcd://localhost:2379, from --store)\n',
    );
  });

  it('says to create the file, pass --store or set ROLLOUT_GUARDIAN_FLAGS when there is none', async () => {
    const dir = await workspace(null);
    const result = await run(dir, ['flags', 'list']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`error: flag file ${join(dir, 'flags.yaml')} does not exist; create it, pass --store <path>, or set ROLLOUT_GUARDIAN_FLAGS\n`);
  });
});

describe('errors say what to type instead', () => {
  it('exits 2 on an unknown command and points to --help', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flgs']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("error: unknown command 'flgs'");
    expect(result.stderr).toContain('(Did you mean flags?)');
    expect(result.stderr).toContain('(run "rollout-guardian --help" for usage)');
  });

  it('exits 2 on an unknown option and points to the command help', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flags', 'list', '--jsn']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe("error: unknown option '--jsn'\n(Did you mean --json?)\n(run \"rollout-guardian flags list --help\" for usage)\n");
  });

  it('exits 2 on a missing argument', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flags', 'override', 'new-checkout']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("error: missing required argument 'variant'");
  });

  it('suggests the flag meant for an unknown flag', async () => {
    const dir = await workspace();
    for (const args of [['flags', 'get', 'new-chekout'], ['eval', 'new-chekout'], ['flags', 'override', 'new-chekout', 'on']]) {
      const result = await run(dir, args);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe('error: no flag "new-chekout"; did you mean "new-checkout"? (rollout-guardian flags list shows them all)\n');
    }
  });

  it('lists the variants for an unknown variant', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flags', 'override', 'new-checkout', 'blue', '--reason', 'r']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('error: flag "new-checkout" has no variant "blue"; expected one of: on, off\n');
    expect(existsSync(join(dir, 'flags.state.json'))).toBe(false);
  });

  it('shows an example of valid JSON for a bad --context', async () => {
    const dir = await workspace();
    for (const context of ['{targetingKey: u1}', '["u1"]']) {
      const result = await run(dir, ['eval', 'new-checkout', '--context', context]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`--context '{"targetingKey":"user-1","region":"eu-west-1"}'`);
    }
  });

  it('refuses to override an invalid flag, saying where it is wrong', async () => {
    const dir = await workspace(BAD_PERCENTAGE_YAML);
    const result = await run(dir, ['flags', 'override', 'bad', 'on', '--reason', 'r']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('error: flag "bad" is invalid, so it cannot be overridden until it is fixed');
    expect(result.stderr).toContain('flags.yaml:10:19: flags.bad.rollout.percentage');
  });

  it('refuses to clear an override that is not there', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flags', 'clear-override', 'new-checkout', '--reason', 'r']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('error: flag "new-checkout" has no override to clear\n');
  });

  it('says where a flag file that cannot be read as a whole is broken', async () => {
    const dir = await workspace(MISALIGNED_YAML);
    const result = await run(dir, ['flags', 'list']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `error: ${join(dir, 'flags.yaml')} is invalid:\n  ${join(dir, 'flags.yaml')}:4:1: YAML syntax error: All mapping items must start at the same column\n`,
    );
  });

  it('prints no stack trace for any expected error', async () => {
    const dir = await workspace(BAD_PERCENTAGE_YAML);
    const runs = await Promise.all([
      run(dir, ['flags', 'get', 'nope']),
      run(dir, ['flags', 'set', 'good', 'variants', '[]', '--reason', 'r']),
      run(dir, ['eval', 'good', '--context', '{']),
      run(dir, ['flags', 'list', '--store', 'missing.yaml']),
      run(dir, ['audit', '--limit', 'lots']),
    ]);
    for (const result of runs) {
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/^error: /);
      expect(result.stderr).not.toMatch(NO_STACK_TRACE);
      expect(result.stdout).toBe('');
    }
  });
});

describe('help and schema', () => {
  it('lists the commands and exit codes in --help', async () => {
    const dir = await workspace();
    const result = await run(dir, ['--help']);
    expect(result.code).toBe(0);
    for (const command of ['validate', 'flags', 'audit', 'eval', 'schema']) expect(result.stdout).toMatch(new RegExp(`^ {2}${command}\\b`, 'm'));
    expect(result.stdout).toContain('Exit codes: 0 ok;');
  });

  it('names every kind of store in the --store help', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flags', 'list', '--help']);
    expect(result.stdout.replace(/\s+/g, ' ')).toMatch(/--store <location> the flags: a YAML or JSON file, redis\[s\]:\/\/.*, or flagd:<file> for a flagd flag-definition file/);
  });

  it('asks for a reason in the help of every change', async () => {
    const dir = await workspace();
    const result = await run(dir, ['flags', 'set', '--help']);
    expect(result.stdout).toMatch(/--reason <text>\s+why, for the audit log: please always give one/);
  });

  it('prints the JSON Schema of the flag file', async () => {
    const dir = await workspace();
    const result = await run(dir, ['schema']);
    expect(result.code).toBe(0);
    const schema = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(schema).toMatchObject({ title: 'rollout-guardian flag file', $id: expect.stringContaining('flags.json') as string, type: 'object' });
  });
});
