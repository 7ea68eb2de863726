// `npm run faults`: the stores' fault suite (scripts/fault-suite.ts) with its table.
// Options: --trials N (kill -9 trials; the slower rows get N/5), --seed N, --only kill,Redis.
// Exit 1 unless every
// row survived with nothing lost.
import { faultTable, runFaultSuite } from './fault-suite.js';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  const value = at >= 0 ? Number(process.argv[at + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} expects a positive whole number, such as ${name} ${fallback}`);
  return value;
}

const started = performance.now();
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt >= 0 ? (process.argv[onlyAt + 1] ?? '').split(',') : undefined;
const rows = await runFaultSuite({ trials: option('--trials', 50), seed: option('--seed', 11), log: (line) => process.stderr.write(`${line}\n`), ...(only ? { only } : {}) });
process.stdout.write(`${faultTable(rows)}\n`);
for (const row of rows) for (const note of row.notes) process.stdout.write(`  ${row.fault}: ${note}\n`);
process.stdout.write(`(${Math.round((performance.now() - started) / 1000)} s)\n`);
process.exitCode = rows.every((r) => r.survived === r.trials) ? 0 : 1;
