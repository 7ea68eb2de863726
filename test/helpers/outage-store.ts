// A memory store whose connection can be cut and restored by the test, as a network store's
// would be: it then tells its watchers, as a real backend does. The provider under test is
// real; only the backend's trouble is staged.
import type { StoreEvent, StoreListener } from '../../src/stores/flag-store.js';
import { MemoryFlagStore, type MemoryFlagStoreOptions } from '../../src/stores/memory-store.js';

export class OutageStore extends MemoryFlagStore {
  private readonly watchers = new Set<StoreListener>();

  constructor(options: MemoryFlagStoreOptions = {}) {
    super(options);
  }

  override watch(listener: StoreListener): () => void {
    this.watchers.add(listener);
    const stop = super.watch(listener);
    return () => {
      this.watchers.delete(listener);
      stop();
    };
  }

  cut(message = 'connection refused'): void {
    this.tell({ type: 'unavailable', error: new Error(message) });
  }

  restore(): void {
    this.tell({ type: 'available' });
  }

  private tell(event: StoreEvent): void {
    for (const listener of this.watchers) listener(event);
  }
}
