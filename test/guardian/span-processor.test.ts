import { type Context, type Span, type Tracer, ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_HTTP_RESPONSE_STATUS_CODE } from '@opentelemetry/semantic-conventions';
import { OpenFeature, type Client } from '@openfeature/server-sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FlagDefinitionInput } from '../../src/core/flag-schema.js';
import { CohortRegistry } from '../../src/guardian/cohort-registry.js';
import { type GuardianSpanProcessorOptions, GuardianSpanProcessor } from '../../src/guardian/guardian-span-processor.js';
import { RolloutProvider } from '../../src/provider/rollout-provider.js';
import { markActiveSpan } from '../../src/provider/span-attribution.js';
import { MemoryFlagStore } from '../../src/stores/memory-store.js';
import { FakeClock } from '../helpers/fake-clock.js';

const T = Date.parse('2026-11-27T12:00:00Z');

const FLAGS: Record<string, FlagDefinitionInput> = {
  'new-checkout': { variants: { on: true, off: false }, defaultVariant: 'off', rollout: { variant: 'on' } },
  'search-v2': { variants: { on: true, off: false }, defaultVariant: 'off', targeting: [{ when: { attribute: 'region', in: ['eu'] }, variant: 'on' }] },
  'page-size': { variants: { small: 10, large: 25 }, defaultVariant: 'small' },
};

interface Harness {
  readonly clock: FakeClock;
  readonly registry: CohortRegistry;
  readonly processor: GuardianSpanProcessor;
  readonly tracer: Tracer;
  readonly client: Client;
  readonly exporter: InMemorySpanExporter;
}

interface Outcome {
  readonly durationMs?: number;
  readonly status?: number;
  readonly error?: boolean;
  readonly kind?: SpanKind;
  readonly parent?: Context;
}

let domains = 0;

async function harness(options: Partial<GuardianSpanProcessorOptions> = {}): Promise<Harness> {
  const clock = new FakeClock(T);
  const registry = new CohortRegistry({ slotMs: 1000, slotCount: 600 });
  const processor = new GuardianSpanProcessor({ registry, clock, ...options });
  const exporter = new InMemorySpanExporter();
  const tracer = new BasicTracerProvider({ spanProcessors: [processor, new SimpleSpanProcessor(exporter)] }).getTracer('test');
  const domain = `span-processor-${++domains}`;
  await OpenFeature.setProviderAndWait(domain, new RolloutProvider({ store: new MemoryFlagStore({ flags: FLAGS, clock }), clock }));
  return { clock, registry, processor, tracer, client: OpenFeature.getClient(domain), exporter };
}

/** A request: a local root span (SERVER unless told) around `work`, ended with the outcome asked for. */
async function serve(h: Harness, work: () => Promise<unknown>, outcome: Outcome = {}): Promise<void> {
  const options = { kind: outcome.kind ?? SpanKind.SERVER, startTime: T };
  await h.tracer.startActiveSpan('GET /checkout', options, outcome.parent ?? ROOT_CONTEXT, async (root) => {
    await work();
    finish(root, outcome);
  });
}

function finish(root: Span, outcome: Outcome): void {
  if (outcome.status !== undefined) root.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, outcome.status);
  if (outcome.error === true) root.setStatus({ code: SpanStatusCode.ERROR });
  root.end(T + (outcome.durationMs ?? 100));
}

/** Work in a child span of the active one. */
function inChild(h: Harness, name: string, work: () => Promise<unknown>): Promise<void> {
  return h.tracer.startActiveSpan(name, async (span) => {
    await work();
    span.end();
  });
}

/** A request whose root stays open until the test ends it. */
function open(h: Harness): { readonly root: Span; run(work: () => Promise<unknown>): Promise<unknown> } {
  const root = h.tracer.startSpan('GET /slow', { kind: SpanKind.SERVER, startTime: T }, ROOT_CONTEXT);
  return { root, run: (work) => context.with(trace.setSpan(ROOT_CONTEXT, root), work) };
}

function cohort(h: Harness, flagKey: string, variant: string): { count: number; errors: number; p50?: number } {
  const window = h.registry.window(flagKey, variant);
  if (window === undefined) return { count: 0, errors: 0 };
  const { count, errors, sketch } = window.merged(T - 60_000, T + 60_000);
  return { count, errors, p50: sketch.quantile(0.5) };
}

let contextManager: AsyncLocalStorageContextManager;

beforeAll(() => {
  contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
});

afterAll(() => {
  context.disable();
});

afterEach(async () => {
  await OpenFeature.close();
});

describe('GuardianSpanProcessor', () => {
  it("attributes a request's outcome to the cohort of a flag evaluated in a child span", async () => {
    const h = await harness();
    await serve(h, () => inChild(h, 'checkout', () => h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' })), { durationMs: 250 });
    const seen = cohort(h, 'new-checkout', 'on');
    expect(seen).toMatchObject({ count: 1, errors: 0 });
    expect(Math.abs((seen.p50 as number) - 250)).toBeLessThanOrEqual(2.5);
    expect(h.processor.stats).toEqual({ recordedOutcomes: 1, droppedExposures: 0, droppedTraces: 0, internalErrors: 0, unattributableEvaluations: 0 });
  });

  it('records nothing until the local root ends', async () => {
    const h = await harness();
    const request = open(h);
    await request.run(() => inChild(h, 'checkout', () => h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' })));
    expect(cohort(h, 'new-checkout', 'on').count).toBe(0);
    finish(request.root, {});
    expect(cohort(h, 'new-checkout', 'on').count).toBe(1);
  });

  it('puts one outcome in every cohort the trace was exposed to, each once', async () => {
    const h = await harness();
    await serve(h, async () => {
      await inChild(h, 'checkout', () => h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' }));
      await inChild(h, 'search', async () => {
        await h.client.getBooleanValue('search-v2', false, { targetingKey: 'user-1', region: 'eu' });
        await h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' });
      });
    });
    expect(cohort(h, 'new-checkout', 'on').count).toBe(1);
    expect(cohort(h, 'search-v2', 'on').count).toBe(1);
    expect(h.processor.stats.recordedOutcomes).toBe(2);
  });

  it('counts an evaluation on the root span itself', async () => {
    const h = await harness();
    await serve(h, () => h.client.getNumberValue('page-size', 0, { targetingKey: 'user-1' }));
    expect(cohort(h, 'page-size', 'small').count).toBe(1);
  });

  it("falls back to a span's own feature_flag attributes when it carries no evaluation event", async () => {
    const h = await harness();
    await serve(h, () =>
      inChild(h, 'other-provider', () => {
        trace.getActiveSpan()?.setAttributes({ 'feature_flag.key': 'legacy-flag', 'feature_flag.result.variant': 'blue' });
        return Promise.resolve();
      }),
    );
    expect(cohort(h, 'legacy-flag', 'blue').count).toBe(1);
  });

  it('counts a root that ends with status ERROR as an error', async () => {
    const h = await harness();
    const evaluate = (): Promise<boolean> => h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' });
    await serve(h, evaluate, { error: true });
    await serve(h, evaluate);
    expect(cohort(h, 'new-checkout', 'on')).toMatchObject({ count: 2, errors: 1 });
  });

  it('counts a server span answering 503 as an error and one answering 404 as not', async () => {
    const h = await harness();
    const evaluate = (): Promise<boolean> => h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' });
    await serve(h, evaluate, { status: 503 });
    await serve(h, evaluate, { status: 404 });
    await serve(h, evaluate, { status: 503, kind: SpanKind.CONSUMER });
    expect(cohort(h, 'new-checkout', 'on')).toMatchObject({ count: 3, errors: 1 });
  });

  it('counts only server and consumer local roots as requests unless told otherwise: an internal root records nothing', async () => {
    const h = await harness();
    const evaluate = (): Promise<boolean> => h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' });
    await serve(h, evaluate, { kind: SpanKind.INTERNAL });
    await serve(h, evaluate, { kind: SpanKind.CLIENT });
    expect(cohort(h, 'new-checkout', 'on').count).toBe(0);
    const configured = await harness({ requestKinds: [SpanKind.SERVER, SpanKind.INTERNAL] });
    await serve(configured, () => configured.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' }), { kind: SpanKind.INTERNAL, status: 503 });
    expect(cohort(configured, 'new-checkout', 'on')).toMatchObject({ count: 1, errors: 0 });
  });

  it("reads the previous semconv event (feature_flag with feature_flag.variant) and counts value-only evaluations as unattributable", async () => {
    const h = await harness();
    await serve(h, () => {
      trace.getActiveSpan()?.addEvent('feature_flag', { 'feature_flag.key': 'legacy-flag', 'feature_flag.variant': 'blue', 'feature_flag.provider_name': 'old-sdk' });
      trace.getActiveSpan()?.addEvent('feature_flag.evaluation', { 'feature_flag.key': 'value-only', 'feature_flag.result.value': true });
      return Promise.resolve(true);
    });
    expect(cohort(h, 'legacy-flag', 'blue').count).toBe(1);
    expect(h.processor.stats).toMatchObject({ recordedOutcomes: 1, unattributableEvaluations: 1 });
  });

  it('treats a span whose parent is remote as a local root', async () => {
    const h = await harness();
    const remote = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
    });
    await serve(h, () => inChild(h, 'checkout', () => h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' })), { parent: remote });
    expect(cohort(h, 'new-checkout', 'on').count).toBe(1);
    expect(h.exporter.getFinishedSpans().find((s) => s.name === 'GET /checkout')?.parentSpanContext?.isRemote).toBe(true);
  });

  it('keeps at most maxExposuresPerTrace cohorts per trace and counts the rest as dropped', async () => {
    const h = await harness({ maxExposuresPerTrace: 2 });
    await serve(h, async () => {
      await inChild(h, 'a', () => h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' }));
      await inChild(h, 'b', () => h.client.getBooleanValue('search-v2', false, { targetingKey: 'user-1', region: 'eu' }));
      await inChild(h, 'c', () => h.client.getNumberValue('page-size', 0, { targetingKey: 'user-1' }));
    });
    expect(cohort(h, 'new-checkout', 'on').count).toBe(1);
    expect(cohort(h, 'search-v2', 'on').count).toBe(1);
    expect(cohort(h, 'page-size', 'small').count).toBe(0);
    expect(h.processor.stats).toMatchObject({ recordedOutcomes: 2, droppedExposures: 1 });
  });

  it('holds at most maxTraces open traces, evicting the oldest and counting it', async () => {
    const h = await harness({ maxTraces: 2 });
    const requests = [open(h), open(h), open(h)];
    for (const request of requests) {
      await request.run(() => inChild(h, 'checkout', () => h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' })));
    }
    expect(h.processor.stats.droppedTraces).toBe(1);
    for (const request of requests) finish(request.root, {});
    // The first request's exposure was evicted, so its root ends unattributed.
    expect(cohort(h, 'new-checkout', 'on').count).toBe(2);
  });

  it('evicts and counts traces whose root has not ended within maxTraceAgeMs', async () => {
    const h = await harness({ maxTraceAgeMs: 60_000 });
    const old = open(h);
    await old.run(() => inChild(h, 'checkout', () => h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' })));
    h.clock.advance(60_001);
    const fresh = open(h);
    await fresh.run(() => inChild(h, 'checkout', () => h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-2' })));
    expect(h.processor.stats.droppedTraces).toBe(1);
    finish(old.root, {});
    finish(fresh.root, {});
    expect(h.processor.stats.recordedOutcomes).toBe(1);
  });

  it('swallows and counts an error thrown by the classifier, so Span.end() never throws', async () => {
    const h = await harness({
      classify: () => {
        throw new Error('classifier bug');
      },
    });
    await expect(serve(h, () => h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' }))).resolves.toBeUndefined();
    expect(h.processor.stats).toMatchObject({ recordedOutcomes: 0, internalErrors: 1 });
  });

  it('records nothing after shutdown, which may be called twice; forceFlush resolves', async () => {
    const h = await harness();
    await expect(h.processor.forceFlush()).resolves.toBeUndefined();
    await h.processor.shutdown();
    await h.processor.shutdown();
    await serve(h, () => h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' }));
    expect(h.registry.window('new-checkout', 'on')).toBeUndefined();
    expect(h.processor.stats.recordedOutcomes).toBe(0);
  });

  it('rejects bad options at construction, quoting the value', () => {
    const registry = new CohortRegistry({ slotMs: 1000, slotCount: 10 });
    expect(() => new GuardianSpanProcessor({ registry, maxTraces: 0 })).toThrow('maxTraces must be a positive integer, got 0');
    expect(() => new GuardianSpanProcessor({ registry, maxExposuresPerTrace: 1.5 })).toThrow('maxExposuresPerTrace must be a positive integer, got 1.5');
    expect(() => new GuardianSpanProcessor({ registry, maxTraceAgeMs: Number.POSITIVE_INFINITY })).toThrow('got Infinity');
  });
});

describe('markActiveSpan, through the provider', () => {
  it('marks the evaluating span with feature_flag attributes and one evaluation event per flag', async () => {
    const h = await harness();
    await serve(h, () =>
      inChild(h, 'checkout', async () => {
        await h.client.getBooleanValue('new-checkout', false, { targetingKey: 'user-1' });
        await h.client.getBooleanValue('search-v2', false, { targetingKey: 'user-1', region: 'eu' });
      }),
    );
    const span = h.exporter.getFinishedSpans().find((s) => s.name === 'checkout');
    expect(span?.attributes).toMatchObject({
      'feature_flag.key': 'search-v2',
      'feature_flag.result.variant': 'on',
      'feature_flag.provider.name': 'rollout-guardian',
      'feature_flag.result.reason': 'targeting_match',
    });
    expect(span?.events.map((e) => [e.name, e.attributes?.['feature_flag.key'], e.attributes?.['feature_flag.result.reason']])).toEqual([
      ['feature_flag.evaluation', 'new-checkout', 'static'],
      ['feature_flag.evaluation', 'search-v2', 'targeting_match'],
    ]);
  });

  it('leaves spans alone for an evaluation that failed', async () => {
    const h = await harness();
    await serve(h, () => inChild(h, 'checkout', () => h.client.getBooleanValue('no-such-flag', false)));
    expect(h.exporter.getFinishedSpans().find((s) => s.name === 'checkout')?.events).toEqual([]);
  });

  it('does nothing, and does not throw, without an active span', () => {
    expect(() => markActiveSpan('new-checkout', 'on', 'STATIC')).not.toThrow();
  });
});
