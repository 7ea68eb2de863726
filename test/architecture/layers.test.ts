// The import direction of docs/architecture.md is enforced by eslint.config.js; these cases
// hold the rule to it, linting small sources as if they sat in each folder.
import { fileURLToPath } from 'node:url';
import { ESLint, type Linter } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RULE = '@typescript-eslint/no-restricted-imports';

/** The layer rule eslint.config.js gives a file at `path`, run alone (it needs no type information). */
async function importErrors(path: string, source: string): Promise<string[]> {
  const config = (await new ESLint({ cwd: ROOT }).calculateConfigForFile(path)) as Linter.Config;
  const rule = config.rules?.[RULE];
  if (rule === undefined) return [];
  const eslint = new ESLint({
    cwd: ROOT,
    overrideConfigFile: true,
    overrideConfig: [
      {
        files: ['**/*.ts'],
        languageOptions: { parser: tseslint.parser },
        plugins: { '@typescript-eslint': tseslint.plugin },
        rules: { [RULE]: rule },
      },
    ],
  });
  const [result] = await eslint.lintText(source, { filePath: `${ROOT}/${path}` });
  return (result?.messages ?? []).map((m) => m.message);
}

describe('the layers', () => {
  it.each([
    ['src/core/x.ts', "import { FileFlagStore } from '../stores/file-store.js';", /core\/ is pure/],
    ['src/core/x.ts', "import { readFile } from 'node:fs/promises';", /core\/ does no I\/O/],
    ['src/core/x.ts', "import { trace } from '@opentelemetry/api';", /no OpenTelemetry or OpenFeature runtime imports/],
    ['src/stores/x.ts', "import { judge } from '../guardian/judge.js';", /stores\/ imports only core\/, flagd\/ and runtime\//],
    ['src/guardian/x.ts', "import { FileFlagStore } from '../stores/file-store.js';", /Only cli\/ and server\/ choose a store/],
    ['src/guardian/x.ts', "import { RolloutProvider } from '../provider/rollout-provider.js';", /never imports the provider/],
    ['src/deploy/x.ts', "import { judge } from '../guardian/judge.js';", /import its types only/],
    ['src/provider/x.ts', "import { runCli } from '../cli/program.js';", /composition roots/],
    ['src/server/x.ts', "import { runCli } from '../cli/program.js';", /beside cli\//],
    ['src/notify/x.ts', "import type { FlagStore } from '../stores/flag-store.js';", /never touches a store/],
    ['src/notify/x.ts', "import { RolloutProvider } from '../provider/rollout-provider.js';", /never imports the provider/],
    ['src/notify/x.ts', "import { RolloutGuardian } from '../guardian/rollout-guardian.js';", /import their types only/],
  ])('refuses, in %s, %s', async (path, source, message) => {
    const errors = await importErrors(path, source);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(message);
  });

  it.each([
    ['src/core/x.ts', "import type { Span } from '@opentelemetry/api';"],
    [
      'src/stores/x.ts',
      "import { systemClock } from '../runtime/system-clock.js';\nimport { toFlagdDocument } from '../flagd/flagd-convert.js';",
    ],
    [
      'src/guardian/x.ts',
      "import type { FlagStore } from '../stores/flag-store.js';\nimport { StoreWriter } from '../stores/store-writer.js';\nimport { METRICS } from '../telemetry/names.js';",
    ],
    ['src/deploy/x.ts', "import type { Judgment } from '../guardian/judge.js';"],
    ['src/notify/x.ts', "import type { GuardianListener } from '../guardian/rollout-guardian.js';\nimport type { PlanEvent } from '../deploy/plan-runner.js';\nimport { systemClock } from '../runtime/system-clock.js';"],
    [
      'src/cli/commands/x.ts',
      "import { RedisFlagStore } from '../../stores/redis-store.js';\nimport { RolloutServer } from '../../server/rollout-server.js';",
    ],
  ])('allows, in %s, %s', async (path, source) => {
    expect(await importErrors(path, source)).toEqual([]);
  });
});
