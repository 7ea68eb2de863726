// Run as a separate process by the Redis store tests: one instance of an application, with a
// RolloutProvider on its own RedisFlagStore. It reports over IPC each rollout percentage it
// comes to serve for `flagKey` and when (epoch ms, sub-millisecond), until told to stop.
import { OpenFeature, ProviderEvents } from '@openfeature/server-sdk';
import { RolloutProvider } from '../../src/provider/rollout-provider.js';
import { RedisFlagStore } from '../../src/stores/redis-store.js';

export type ChildReport =
  | { readonly type: 'ready'; readonly percentage: number | undefined }
  | { readonly type: 'seen'; readonly percentage: number | undefined; readonly seenAtMs: number };

const [url, flagKey = 'f'] = process.argv.slice(2);
if (url === undefined || process.send === undefined) throw new Error('run me with fork(), passing the store URL');
const send = process.send.bind(process);

const store = new RedisFlagStore({ url });
const provider = new RolloutProvider({ store, logger: { warn: () => undefined, error: () => undefined } });
await OpenFeature.setProviderAndWait(provider);
const client = OpenFeature.getClient();

async function percentage(): Promise<number | undefined> {
  const details = await client.getBooleanDetails(flagKey, false, { targetingKey: 'probe' });
  const value = details.flagMetadata.rolloutPercentage;
  return typeof value === 'number' ? value : undefined;
}

provider.events.addHandler(ProviderEvents.ConfigurationChanged, () => {
  const seenAtMs = performance.timeOrigin + performance.now();
  void percentage().then((p) => send({ type: 'seen', percentage: p, seenAtMs } satisfies ChildReport));
});

process.on('message', (message) => {
  if (message !== 'stop') return;
  void OpenFeature.close().finally(() => process.disconnect());
});

send({ type: 'ready', percentage: await percentage() } satisfies ChildReport);
