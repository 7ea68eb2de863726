// `npm run demo`: a rollout and its automatic rollback, end to end, in about a minute.
// The checkout service runs with the provider and the guardian on an embedded file store;
// an in-process load generator sends it traffic; after a healthy phase the new checkout
// starts failing, and the guardian rolls it back once the breach has held for sustainFor.
import { Agent, request } from 'node:http';
import { DEMO_FLAG, startDemo } from './demo-service.js';
import { PROMETHEUS_NAMES } from '../../src/telemetry/names.js';
import type { RollbackRecord } from '../../src/guardian/rollout-guardian.js';

const RPS = 40;
const HEALTHY_MS = 20_000;
const LIMIT_MS = 85_000;
const FAULT = { errorRate: 0.25, extraLatencyMs: 150 };

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0).padStart(3)}s`;
const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '   -  ' : `${(x * 100).toFixed(1).padStart(5)}%`);
const ms = (x: number | undefined) => (x === undefined ? '    -  ' : `${x.toFixed(0).padStart(5)}ms`);

const demo = await startDemo();
console.log(`checkout service  ${demo.serviceUrl}/checkout?user=<id>`);
console.log(`Prometheus        ${demo.metricsUrl}`);
console.log(`flag file         ${demo.flagsPath}  (state and audit beside it)`);
console.log(`guard             error rate <= 2%, P95 <= 250 ms, sustained for 15 s; 1 s slots\n`);

const agent = new Agent({ keepAlive: true, maxSockets: 32 });
let sent = 0;
function hit(user: string): void {
  const req = request(`${demo.serviceUrl}/checkout?user=${user}`, { agent }, (res) => res.resume());
  req.on('error', () => undefined);
  req.end();
  sent++;
}
const load = setInterval(() => {
  for (let i = 0; i < RPS / 10; i++) hit(`user-${Math.floor(Math.random() * 100_000)}`);
}, 100);

let rollback: RollbackRecord | undefined;
demo.guardian.addListener({ rollback: (r) => (rollback = r) });

function timeline(): void {
  const now = Date.now();
  const window = (variant: string) => demo.registry.window(DEMO_FLAG, variant)?.merged(now - 5_000, now);
  const t = window('on');
  const b = window('off');
  const status = demo.guardian.status().find((s) => s.flagKey === DEMO_FLAG);
  const percentage = status?.percentage ?? (rollback ? 0 : undefined);
  const verdict = rollback ? 'rolled back' : (status?.judgment.verdict ?? '-');
  console.log(
    `${elapsed()}  rollout ${percentage === undefined ? '  -' : `${percentage.toFixed(0).padStart(3)}%`}  ` +
      `treatment err ${pct(t && t.count > 0 ? t.errors / t.count : undefined)} p95 ${ms(t?.sketch.quantile(0.95))} n=${String(t?.count ?? 0).padStart(4)}  |  ` +
      `baseline err ${pct(b && b.count > 0 ? b.errors / b.count : undefined)} p95 ${ms(b?.sketch.quantile(0.95))} n=${String(b?.count ?? 0).padStart(4)}  |  guardian: ${verdict}`,
  );
}
const ticker = setInterval(timeline, 2_500);

await new Promise<void>((resolve) => {
  const faultTimer = setTimeout(() => {
    console.log(`${elapsed()}  >>> the new checkout starts failing: ${FAULT.errorRate * 100}% errors, +${FAULT.extraLatencyMs} ms`);
    demo.setTreatmentFault(FAULT);
  }, HEALTHY_MS);
  const watch = setInterval(() => {
    if (rollback !== undefined || Date.now() - started > LIMIT_MS) {
      clearInterval(watch);
      clearTimeout(faultTimer);
      resolve();
    }
  }, 200);
});

// A few seconds more to show the baseline serving everyone.
await new Promise((resolve) => setTimeout(resolve, 3_000));
timeline();
clearInterval(load);
clearInterval(ticker);

let exitCode = 0;
if (rollback === undefined) {
  console.log(`\nno rollback within ${LIMIT_MS / 1000} s: something is wrong`);
  exitCode = 1;
} else {
  console.log(`\n${elapsed()}  ROLLED BACK ${rollback.flagKey}: ${rollback.reason}`);
  console.log(`      decided ${new Date(rollback.decidedAtMs).toISOString()}, written ${new Date(rollback.landedAtMs).toISOString()}`);
  const [entry] = await demo.store.audit({ flagKey: DEMO_FLAG, limit: 1 });
  console.log('\naudit entry:');
  console.log(JSON.stringify({ ...entry, before: entry?.before.state, after: entry?.after.state }, null, 2));
  const scrape = await (await fetch(demo.metricsUrl)).text();
  console.log('\nPrometheus:');
  for (const line of scrape.split('\n')) {
    if (line.startsWith(PROMETHEUS_NAMES.rollbacks) || line.startsWith(PROMETHEUS_NAMES.rolloutPercentage)) console.log(`  ${line}`);
  }
}
console.log(`\n${sent} requests sent in ${elapsed().trim()}`);
agent.destroy();
await demo.close();
process.exit(exitCode);
