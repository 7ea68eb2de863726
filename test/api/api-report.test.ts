// The public API is a decision, not an accident: src/index.ts must match the checked-in
// report (api/rollout-guardian.api.txt). After changing the surface on purpose, run
// `npm run api` and commit the report.
import { describe, expect, it } from 'vitest';
import { apiReport, readApiReport } from '../../scripts/api-report.js';

function entries(report: string): { kind: string; name: string }[] {
  return report
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [kind = '', name = ''] = line.split(' ');
      return { kind, name };
    });
}

describe('the public API', () => {
  it('is what api/rollout-guardian.api.txt records (run `npm run api` after an intended change)', () => {
    expect(apiReport()).toBe(readApiReport());
  }, 60_000);

  it('exports at run time exactly the values the report lists', async () => {
    const values = entries(readApiReport())
      .filter((e) => /class|function|const|enum/.test(e.kind))
      .map((e) => e.name)
      .sort();
    const index = (await import('../../src/index.js')) as Record<string, unknown>;
    expect(Object.keys(index).sort()).toEqual(values);
  });

  it('offers what the README tells users to construct, and keeps internals out', () => {
    const names = new Set(entries(readApiReport()).map((e) => e.name));
    for (const name of ['RolloutProvider', 'FileFlagStore', 'StoreWriter', 'RolloutGuardian', 'GuardianSpanProcessor', 'CohortRegistry', 'PlanRunner', 'PlanWriter', 'RolloutServer', 'LockTimeoutError', 'PlanError']) {
      expect(names.has(name), name).toBe(true);
    }
    for (const name of ['compileFlag', 'murmur3Utf8', 'CohortWindow', 'QuantileSketch', 'judge', 'redisKeys', 'evaluate']) {
      expect(names.has(name), name).toBe(false);
    }
  });
});
