// Run as a separate process by the store tests: performs `count` read-modify-write cycles
// on a flag through its own FileFlagStore, as another CLI or guardian instance would.
import { FileFlagStore } from '../../src/stores/file-store.js';
import { StoreWriter } from '../../src/stores/store-writer.js';

const [path, name, countText, flagKey, attemptsText] = process.argv.slice(2);
const store = new FileFlagStore({ path, watch: false });
// Attempts on a revision conflict (default 1,000); 1 shows writers queue rather than retry.
const writer = new StoreWriter(store, undefined, attemptsText === undefined ? 1_000 : Number(attemptsText));
for (let i = 0; i < Number(countText); i++) {
  await writer.setPercentage(flagKey ?? 'f', (i % 100) + 0.5, { actor: name ?? 'writer', reason: `write ${i}` });
}
await store.close();
