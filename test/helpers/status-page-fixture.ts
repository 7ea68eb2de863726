// A real `serve` (RolloutServer over a memory store) on a fake clock, fed seeded traffic slot by
// slot, and a real headless Chromium to look at its status page: shared by the status page's
// tests, its benchmark and the script that takes the screenshot in docs/.
import { type Browser, type Locator, type Page, chromium } from 'playwright-core';
import type { FlagDefinitionInput, FlagRuntimeState } from '../../src/core/flag-schema.js';
import type { BearerAuth } from '../../src/server/bearer-auth.js';
import { RolloutServer } from '../../src/server/rollout-server.js';
import { MemoryFlagStore } from '../../src/stores/memory-store.js';
import { FakeClock } from './fake-clock.js';
import { lognormal, mulberry32 } from './seeded-random.js';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** What one flag's cohorts see in a slot: requests each, error shares and median latency. */
export interface SlotTraffic {
  readonly requests: number;
  readonly treatmentErrorRate: number;
  readonly baselineErrorRate: number;
  readonly treatmentMedianMs: number;
  readonly baselineMedianMs: number;
}

export const STEADY: SlotTraffic = {
  requests: 20,
  treatmentErrorRate: 0.002,
  baselineErrorRate: 0.002,
  treatmentMedianMs: 80,
  baselineMedianMs: 80,
};

export interface StatusPageFixtureOptions {
  readonly flags: Readonly<Record<string, FlagDefinitionInput>>;
  readonly state?: Readonly<Record<string, FlagRuntimeState>>;
  readonly auth?: BearerAuth;
  readonly slotMs?: number;
  readonly startMs?: number;
  readonly seed?: number;
}

export class StatusPageFixture {
  private readonly random;

  private constructor(
    readonly server: RolloutServer,
    readonly store: MemoryFlagStore,
    readonly clock: FakeClock,
    seed: number,
  ) {
    this.random = mulberry32(seed);
  }

  static async start(options: StatusPageFixtureOptions): Promise<StatusPageFixture> {
    const clock = new FakeClock(options.startMs ?? Date.parse('2026-11-30T09:00:00Z'));
    const store = new MemoryFlagStore({ flags: options.flags, state: options.state, clock });
    const slotMs = options.slotMs ?? 1000;
    // Outcomes are recorded at once here: one slot of lateness is plenty, so a slot is judged one tick after it ends.
    const server = await RolloutServer.start({
      store,
      port: 0,
      clock,
      slotMs,
      slotCount: Math.ceil(120_000 / slotMs),
      autoTick: false,
      auth: options.auth,
      ingest: { allowedLatenessMs: slotMs, joinWaitMs: 1 },
    });
    return new StatusPageFixture(server, store, clock, options.seed ?? 16);
  }

  get slotMs(): number {
    return this.server.registry.slotMs;
  }

  /**
   * Plays `slots` slots: each flag's traffic for the slot (from `traffic`, or STEADY) is recorded
   * at event times inside it, then the clock moves one slot and the guardian and plans tick.
   */
  async play(
    slots: number,
    traffic: (flagKey: string, slot: number) => SlotTraffic | undefined = () => STEADY,
    flagKeys?: readonly string[],
  ): Promise<void> {
    const keys = flagKeys ?? [...(await this.store.load()).parsed.definitions.keys()];
    const variants = await this.variants();
    for (let slot = 0; slot < slots; slot++) {
      const start = this.clock.now();
      for (const flagKey of keys) {
        const t = traffic(flagKey, slot);
        const v = variants.get(flagKey);
        if (t === undefined || v === undefined) continue;
        for (let i = 0; i < t.requests; i++) {
          const at = start + Math.floor((i / t.requests) * this.slotMs);
          this.server.registry.record(
            flagKey,
            v.treatment,
            lognormal(this.random, t.treatmentMedianMs, 0.4),
            this.random() < t.treatmentErrorRate,
            at,
          );
          this.server.registry.record(
            flagKey,
            v.baseline,
            lognormal(this.random, t.baselineMedianMs, 0.4),
            this.random() < t.baselineErrorRate,
            at,
          );
        }
      }
      this.clock.advance(this.slotMs);
      await this.server.guardian.tick();
      await this.server.plans.tick();
    }
  }

  async close(): Promise<void> {
    await this.server.close();
  }

  private async variants(): Promise<Map<string, { treatment: string; baseline: string }>> {
    const out = new Map<string, { treatment: string; baseline: string }>();
    for (const [flagKey, definition] of (await this.store.load()).parsed.definitions) {
      if (definition.rollout !== undefined)
        out.set(flagKey, { treatment: definition.rollout.variant, baseline: definition.defaultVariant });
    }
    return out;
  }
}

/** A headless Chromium from the system's package (scripts/install-test-deps.sh installs it). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox'] });
}

/**
 * Waits until the page shows what the server said at `atMs` or later. The page polls on its
 * own; Playwright's timeout only catches a hang. The predicate is a function, not a string: the
 * page's Content-Security-Policy refuses eval.
 */
export async function pageCaughtUp(page: Page, atMs: number): Promise<void> {
  await page.waitForFunction((at) => {
    const shown = (globalThis as unknown as { document: { body: { dataset: { generatedAt?: string } } } }).document.body.dataset
      .generatedAt;
    return shown !== undefined && Date.parse(shown) >= at;
  }, atMs);
}

/** Waits until `locator` reads exactly `text` (the page updates itself on its next poll). */
export async function textBecomes(locator: Locator, text: string): Promise<void> {
  await locator.filter({ hasText: new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }).waitFor();
}
