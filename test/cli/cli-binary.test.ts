// A few runs of the built executable (dist/cli/main.js) as a user runs it, for what the
// in-process tests cannot see: the shebang and ESM entry, the version from package.json, the
// process exit status, output flushed to a pipe and a write that lands on disk.
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { requireBuiltCli, runCli } from '../helpers/cli-binary.js';
import { withTempDir } from '../helpers/temp-dir.js';

const FLAGS = 'flags:\n  new-checkout:\n    variants: { on: true, off: false }\n    defaultVariant: off\n';
const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

beforeAll(() => {
  requireBuiltCli();
});

describe('the rollout-guardian executable', () => {
  it('prints the package version', async () => {
    await withTempDir(async (dir) => {
      expect(await runCli(dir, ['--version'])).toEqual({ code: 0, stdout: `${PACKAGE_VERSION}\n`, stderr: '' });
    });
  });

  it('exits 1 with a located error for an invalid flag file, and 2 for an unknown command', async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'flags.yaml'), FLAGS.replace('defaultVariant: off', 'defaultVariant: maybe'));
      const invalid = await runCli(dir, ['validate']);
      expect(invalid.code).toBe(1);
      expect(invalid.stderr).toContain(
        'flags.yaml:4:21: flags.new-checkout.defaultVariant: expected one of the variants: on, off, got "maybe"',
      );
      const unknown = await runCli(dir, ['flgs']);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toContain("error: unknown command 'flgs'");
    });
  });

  it('writes an override beside the flag file, found through ROLLOUT_GUARDIAN_FLAGS', async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'flags.yaml'), FLAGS);
      const result = await runCli(
        dir,
        ['flags', 'override', 'new-checkout', 'on', '--actor', 'alice', '--reason', 'smoke test', '--json'],
        { ROLLOUT_GUARDIAN_FLAGS: join(dir, 'flags.yaml') },
      );
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ action: 'override', flag: 'new-checkout', changed: true });
      const state = JSON.parse(await readFile(join(dir, 'flags.state.json'), 'utf8')) as {
        flags: Record<string, { override?: { variant: string } }>;
      };
      expect(state.flags['new-checkout']?.override?.variant).toBe('on');
      expect(await readFile(join(dir, 'flags.yaml'), 'utf8')).toBe(FLAGS);
    });
  });

  it('lists a flag file large enough to be read in the worker thread from dist/, with the located error of its one bad flag, and exits', async () => {
    await withTempDir(async (dir) => {
      const parts = ['flags:\n'];
      for (let i = 0; i < 400; i++) parts.push(`  flag-${i}:\n    variants: { on: true, off: false }\n    defaultVariant: off\n    rollout: { variant: on, percentage: ${i === 3 ? 150 : i % 100} }\n`);
      await writeFile(join(dir, 'big.yaml'), parts.join(''));
      const result = await runCli(dir, ['flags', 'list', '--store', 'big.yaml']);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^flag-399 +boolean +enabled +on, off +off +99% on/m);
      expect(result.stdout).toMatch(/^flag-3 +- +INVALID/m);
      expect(result.stdout).toContain('big.yaml:17:41: flags.flag-3.rollout.percentage: expected a percentage from 0 to 100, got 150');
    });
  });
});
