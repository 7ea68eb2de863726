// `npm run bench:status-page`: how long the status page takes to show 200 rollouts with an hour
// of history each, in headless Chromium on this machine. A real `serve` on a fake clock is fed
// an hour of seeded traffic first; each round opens the page in a fresh browser context and
// reads the page's own performance marks: from navigation to the first full render (fetches
// included), and the DOM work of that render alone. Prints the bytes of every route it reads.
// Options: --flags=N (200), --rounds=N (7), --minutes=N of history (60), --json.
import { type Summary, summarise } from './measure.js';
import { STEADY, StatusPageFixture, launchChromium } from '../test/helpers/status-page-fixture.js';
import type { FlagDefinitionInput } from '../src/core/flag-schema.js';
import { planSteps } from '../src/deploy/plan.js';
import { PlanWriter } from '../src/deploy/plan-writer.js';

const arg = (name: string, fallback: number) => {
  const raw = process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
  return raw === undefined ? fallback : Number(raw);
};
const flagCount = arg('flags', 200);
const rounds = arg('rounds', 7);
const minutes = arg('minutes', 60);
const json = process.argv.includes('--json');

const flags: Record<string, FlagDefinitionInput> = {};
const keys: string[] = [];
for (let i = 0; i < flagCount; i++) {
  const key = `rollout-${String(i).padStart(3, '0')}`;
  keys.push(key);
  flags[key] = {
    variants: { on: true, off: false },
    defaultVariant: 'off',
    rollout: { variant: 'on', percentage: 5 + (i % 20) * 5 },
    guard: { sustainFor: '5m', minSamples: 50, fastPath: false },
  };
}

const fixture = await StatusPageFixture.start({ flags, slotMs: 5_000 });
const setupStart = performance.now();
const plans = new PlanWriter(fixture.store, fixture.clock);
for (const key of keys.filter((_, i) => i % 3 === 0))
  await plans.deploy(key, 'safe', planSteps('safe'), { actor: 'bench', reason: 'benchmark' });
// An hour of traffic: every tenth flag's treatment turns slow in the last third.
await fixture.play(minutes * 12, (flagKey, slot) =>
  slot > minutes * 8 && keys.indexOf(flagKey) % 10 === 0
    ? { ...STEADY, requests: 10, treatmentMedianMs: 160 }
    : { ...STEADY, requests: 10 },
);
const setupMs = performance.now() - setupStart;

const bytes: Record<string, number> = {};
for (const path of ['/', '/status.js', '/status.css', '/api/status', '/api/v1/history', '/api/v1/audit?limit=200']) {
  bytes[path] = (await (await fetch(`${fixture.server.url}${path}`)).arrayBuffer()).byteLength;
}

const browser = await launchChromium();
const firstRender: number[] = [];
const renderOnly: number[] = [];
// CPU time, which a busy machine does not inflate the way it inflates wall-clock time: the
// renderer's main thread (Chromium's ThreadTime) and this process, which hosts serve.
const pageCpu: number[] = [];
const serverCpu: number[] = [];
try {
  for (let round = 0; round < rounds + 1; round++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable', { timeDomain: 'threadTicks' });
    const cpuBefore = process.cpuUsage();
    await page.goto(`${fixture.server.url}/?poll=60000`);
    await page.waitForFunction(
      () =>
        (globalThis as unknown as { document: { documentElement: { dataset: { firstRenderMs?: string } } } }).document.documentElement
          .dataset.firstRenderMs !== undefined,
    );
    const marks = await page.evaluate(() => {
      const data = (globalThis as unknown as { document: { documentElement: { dataset: Record<string, string> } } }).document
        .documentElement.dataset;
      return { first: Number(data.firstRenderMs), render: Number(data.renderMs), data: Number(data.dataMs) };
    });
    const cpu = process.cpuUsage(cpuBefore);
    const metrics = new Map((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
    const threadMs = (metrics.get('ThreadTime') ?? Number.NaN) * 1000;
    const serveMs = (cpu.user + cpu.system) / 1000;
    if (process.argv.includes('--verbose'))
      process.stdout.write(
        `  round ${round}: main thread ${threadMs.toFixed(0)} ms CPU (script ${((metrics.get('ScriptDuration') ?? 0) * 1000).toFixed(0)}, style ${((metrics.get('RecalcStyleDuration') ?? 0) * 1000).toFixed(0)}, layout ${((metrics.get('LayoutDuration') ?? 0) * 1000).toFixed(0)}); serve ${serveMs.toFixed(0)} ms CPU\n`,
      );
    if (process.argv.includes('--verbose')) process.stdout.write(`  round ${round}: ${JSON.stringify(marks)}\n`);
    const cards = await page.locator('section.flag').count();
    if (cards !== flagCount) throw new Error(`the page shows ${cards} rollouts, expected ${flagCount}`);
    // The first round warms the server and the browser's caches; it is not counted.
    if (round > 0) {
      firstRender.push(marks.first);
      renderOnly.push(marks.render);
      pageCpu.push(threadMs);
      serverCpu.push(serveMs);
    }
    await context.close();
  }
} finally {
  await browser.close();
  await fixture.close();
}

const first: Summary = summarise(firstRender);
const render: Summary = summarise(renderOnly);
const pageCpuSummary: Summary = summarise(pageCpu);
const serverCpuSummary: Summary = summarise(serverCpu);
const pageBytes = (bytes['/'] ?? 0) + (bytes['/status.js'] ?? 0) + (bytes['/status.css'] ?? 0);
if (json) {
  process.stdout.write(
    `${JSON.stringify({ flags: flagCount, rounds, firstRenderMs: first, renderMs: render, pageMainThreadCpuMs: pageCpuSummary, serveCpuMs: serverCpuSummary, pageBytes, bytes, setupMs: Math.round(setupMs) })}\n`,
  );
} else {
  process.stdout.write(
    `status page, ${flagCount} rollouts with ${minutes} minutes of history each (${rounds} rounds after one warm-up, headless Chromium)\n`,
  );
  process.stdout.write(
    `  navigation to first full render: median ${first.median.toFixed(0)} ms (min ${first.min.toFixed(0)}, max ${first.max.toFixed(0)}); target < 1000 ms\n`,
  );
  process.stdout.write(
    `  of which the DOM work of the render: median ${render.median.toFixed(0)} ms (min ${render.min.toFixed(0)}, max ${render.max.toFixed(0)})\n`,
  );
  process.stdout.write(
    `  CPU to get there: the page's main thread median ${pageCpuSummary.median.toFixed(0)} ms (min ${pageCpuSummary.min.toFixed(0)}), serve's median ${serverCpuSummary.median.toFixed(0)} ms (min ${serverCpuSummary.min.toFixed(0)})\n`,
  );
  process.stdout.write(`  page (HTML + script + CSS): ${pageBytes} bytes; target < 204800\n`);
  for (const [path, n] of Object.entries(bytes)) process.stdout.write(`  GET ${path}: ${n} bytes\n`);
  process.stdout.write(`  (${minutes} minutes of traffic for ${flagCount} flags took ${(setupMs / 1000).toFixed(1)} s to play)\n`);
}
