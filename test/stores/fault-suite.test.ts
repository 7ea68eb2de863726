// The fault suite of `npm run faults` in fewer trials, so every CI run exercises each fault:
// kill -9 mid-write, ENOSPC, an unwritable audit log, concurrent writers, hostile text,
// ConfigMap swaps, and Redis stopped, killed, frozen and edited by hand. Needs the built CLI.
import { describe, expect, it } from 'vitest';
import { faultTable, runFaultSuite } from '../../scripts/fault-suite.js';

describe('the stores fault suite', () => {
  it('survives every fault in every trial, losing no definition, no state and no audit entry', async () => {
    const rows = await runFaultSuite({ trials: 4, seed: 7 });
    expect(rows.map((r) => r.fault)).toHaveLength(10);
    const failed = rows.filter((r) => r.survived !== r.trials || r.definitionsLost + r.stateLost + r.auditMismatches > 0);
    expect(failed, faultTable(rows)).toEqual([]);
  }, 180_000);
});
