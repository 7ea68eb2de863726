// `npm run bench`: every micro-benchmark, each in a process of its own so one's JIT state
// and garbage cannot tilt another's. With --json, one JSON object keyed by benchmark.
import { spawnSync } from 'node:child_process';

const BENCHES = {
  evaluation: 'bench/evaluation-bench.ts',
  guardianOverhead: 'bench/sketch-bench.ts',
  otlpIngest: 'bench/otlp-ingest-bench.ts',
  guardianTick: 'bench/guardian-tick-bench.ts',
  flagdReload: 'bench/flagd-reload-bench.ts',
  fleet: 'bench/fleet-bench.ts',
  fleetMetricsMemory: 'bench/fleet-metrics-memory.ts',
  reloadStall: 'bench/reload-stall-bench.ts',
} as const;

const json = process.argv.includes('--json');
const passOn = process.argv.slice(2).filter((a) => a !== '--json');
const merged: Record<string, unknown> = {};
let failed = false;
for (const [name, script] of Object.entries(BENCHES)) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', script, ...passOn, ...(json ? ['--json'] : [])], {
    stdio: json ? ['ignore', 'pipe', 'inherit'] : 'inherit',
    encoding: 'utf8',
  });
  if (run.status !== 0) failed = true;
  if (json) merged[name] = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? 'null') as unknown;
  else process.stdout.write('\n');
}
if (json) process.stdout.write(`${JSON.stringify(merged)}\n`);
process.exitCode = failed ? 1 : 0;
