// What every store does with its watchers and its re-reads: listeners that cannot break one
// another, and a re-read that never runs twice at once (a request during a run runs once more
// after it, so the last change is never missed).
import { diag } from '@opentelemetry/api';
import type { StoreEvent, StoreListener } from './flag-store.js';

export class StoreListeners {
  private readonly listeners = new Set<StoreListener>();

  /** Adds `listener`; returns the function that removes it. */
  add(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  emit(event: StoreEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own; the others still hear the event.
      }
    }
  }

  clear(): void {
    this.listeners.clear();
  }
}

export class CoalescedRun {
  private running: Promise<void> | undefined;
  private again = false;

  /** `once` must not reject; `stopped` ends the repeats (a closed store). */
  constructor(
    private readonly once: () => Promise<void>,
    private readonly stopped: () => boolean,
  ) {}

  run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        // `once` handles its own failures; should one escape, it must not become an unhandled
        // rejection of a timer's fire-and-forget call, which would take the host down.
        await this.once().catch((err: unknown) => diag.error(`rollout-guardian: a store re-read failed: ${err instanceof Error ? err.message : String(err)}`));
      } while (this.again && !this.stopped());
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** The run in progress, if any, for close() to await. */
  get inFlight(): Promise<void> | undefined {
    return this.running;
  }
}
