// `serve` with real parts: a file store, OTLP/HTTP traces sent by the official OpenTelemetry
// exporter, the guardian ticked by the test on an injected clock, and the real binary
// stopped with SIGTERM.
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { RolloutServer } from '../../src/server/rollout-server.js';
import { FileFlagStore } from '../../src/stores/file-store.js';
import { PROMETHEUS_NAMES } from '../../src/telemetry/names.js';
import { startServe } from '../helpers/cli-binary.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { withTempDir } from '../helpers/temp-dir.js';

const FLAGS = `flags:
  checkout:
    variants: { on: true, off: false }
    defaultVariant: off
    rollout: { variant: on, percentage: 50 }
    guard: { sustainFor: 30s, minSamples: 30, fastPath: false }
`;

describe('rollout-guardian serve', () => {
  it('judges OTLP traces from the official exporter and rolls a failing treatment back', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'flags.yaml');
      await writeFile(path, FLAGS);
      const clock = new FakeClock(Date.parse('2026-11-27T12:00:00Z'));
      // Spans are exported at once here: two seconds of lateness and one for evaluation records are plenty.
      const server = await RolloutServer.start({ store: new FileFlagStore({ path, clock }), port: 0, clock, slotMs: 1000, slotCount: 60, autoTick: false, ingest: { allowedLatenessMs: 2_000, joinWaitMs: 1_000 } });
      const exporter = new OTLPTraceExporter({ url: `${server.url}/v1/traces` });
      const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
      const tracer = provider.getTracer('app');
      try {
        expect(await (await fetch(`${server.url}/readyz`)).text()).toBe('ready\n');
        const request = (variant: 'on' | 'off', failed: boolean) => {
          // Stamped on the guardian's clock: outcomes count at their span's end time.
          const root = tracer.startSpan('GET /checkout', { kind: SpanKind.SERVER, startTime: clock.now() - 20 });
          root.addEvent('feature_flag.evaluation', { 'feature_flag.key': 'checkout', 'feature_flag.result.variant': variant });
          root.setAttribute('http.response.status_code', failed ? 503 : 200);
          if (failed) root.setStatus({ code: SpanStatusCode.ERROR });
          root.end(clock.now());
        };
        for (let second = 0; second < 60; second++) {
          const failing = second >= 20;
          for (let i = 0; i < 10; i++) {
            request('on', failing && i < 4);
            request('off', false);
          }
          await provider.forceFlush();
          clock.advance(1000);
          await server.guardian.tick();
        }
        const state = JSON.parse(await readFile(join(dir, 'flags.state.json'), 'utf8')) as { flags: { checkout?: { rollback?: { actor: string } } } };
        expect(state.flags.checkout?.rollback?.actor).toBe('rollout-guardian');
        const metrics = await (await fetch(`${server.url}/metrics`)).text();
        expect(metrics).toMatch(new RegExp(`^${PROMETHEUS_NAMES.rollbacks}\\{feature_flag_key="checkout"[^}]*\\} 1$`, 'm'));
        const status = (await (await fetch(`${server.url}/api/status`)).json()) as { flags: { flag: string; rolledBack: boolean; percentage: number }[]; ingest: { recordedOutcomes: number } };
        expect(status.flags.find((f) => f.flag === 'checkout')).toMatchObject({ rolledBack: true, percentage: 0 });
        expect(status.ingest.recordedOutcomes).toBe(1200);
      } finally {
        await provider.shutdown();
        await server.close();
        await server.close();
      }
    });
  });

  it('answers a bad OTLP payload with a 400 and keeps serving', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'flags.yaml');
      await writeFile(path, FLAGS);
      const server = await RolloutServer.start({ store: new FileFlagStore({ path }), port: 0, autoTick: false });
      try {
        const post = (body: string, type = 'application/json') => fetch(`${server.url}/v1/traces`, { method: 'POST', body, headers: { 'content-type': type } });
        const notJson = await post('{"resourceSpans": [');
        expect(notJson.status).toBe(400);
        expect(((await notJson.json()) as { message: string }).message).toMatch(/^not JSON/);
        const wrongShape = await post(JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', startTimeUnixNano: 'soon', endTimeUnixNano: '2' }] }] }] }));
        expect(wrongShape.status).toBe(400);
        expect(((await wrongShape.json()) as { message: string }).message).toContain('startTimeUnixNano');
        const text = await post('x', 'text/plain');
        expect(text.status).toBe(415);
        expect(((await text.json()) as { message: string }).message).toContain('send application/x-protobuf or application/json');
        expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
        expect((await fetch(`${server.url}/nowhere`)).status).toBe(404);
      } finally {
        await server.close();
      }
    });
  });

  it('runs as the real binary: loopback only without a token, refusals logged once per kind, stops cleanly on SIGTERM', async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'flags.yaml'), FLAGS);
      const env = { ...process.env };
      delete env.ROLLOUT_GUARDIAN_TOKEN;
      const serve = await startServe(['--port', '0', '--grpc-port', '0', '--host', '0.0.0.0', '--store', join(dir, 'flags.yaml')], env);
      const url = serve.url;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:/);
      expect(serve.out()).toContain('no token: only 127.0.0.1 is served');
      expect(serve.err()).toContain('no token configured: listening on 127.0.0.1 only, not 0.0.0.0');
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      expect((await fetch(`${url}/metrics`)).status).toBe(200);
      for (let i = 0; i < 3; i++) expect((await fetch(`${url}/v1/traces`, { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } })).status).toBe(415);
      const code = await serve.stop();
      expect(code).toBe(0);
      expect(serve.out()).toContain('stopped');
      expect(serve.err().match(/refused an OTLP export \(unsupported_media_type\)/g)).toHaveLength(1);
    });
  });

  it('replays a recorded OTLP stream with serve --replay: prints the dry-run rollback at its event time and exits, writing nothing', async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'flags.yaml'), FLAGS);
      const start = Date.parse('2026-11-27T12:00:00Z');
      const lines: string[] = [];
      let id = 1;
      const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');
      for (let second = 1; second <= 180; second++) {
        const endNs = BigInt(start + second * 1000) * 1_000_000n;
        const spans = [];
        for (let i = 0; i < 10; i++) {
          const variant = i % 2 === 0 ? 'on' : 'off';
          const failed = variant === 'on' && second > 60 && i % 4 === 0;
          spans.push({
            traceId: hex(id, 32),
            spanId: hex(id++, 16),
            kind: 2,
            startTimeUnixNano: String(endNs - 20_000_000n),
            endTimeUnixNano: String(endNs),
            status: failed ? { code: 2 } : {},
            events: [{ name: 'feature_flag.evaluation', attributes: [{ key: 'feature_flag.key', value: { stringValue: 'checkout' } }, { key: 'feature_flag.result.variant', value: { stringValue: variant } }] }],
          });
        }
        lines.push(JSON.stringify({ timeUnixMs: start + second * 1000 + 2000, traces: { resourceSpans: [{ scopeSpans: [{ spans }] }] } }));
      }
      await writeFile(join(dir, 'recording.jsonl'), `${lines.join('\n')}\n`);
      const run = spawnSync(process.execPath, [new URL('../../dist/cli/main.js', import.meta.url).pathname, 'serve', '--replay', join(dir, 'recording.jsonl'), '--slot', '1s', '--allowed-lateness', '5s', '--store', join(dir, 'flags.yaml')], { encoding: 'utf8' });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      // The breach begins at 12:01:00; sustainFor 30 s, then the guardian's lag (5 s of lateness + 10 s for evaluation records).
      expect(run.stdout).toMatch(/^2026-11-27T12:01:[345]\d\.\d{3}Z \[dry run\] would roll back checkout/m);
      expect(run.stdout).toContain('replayed 180 export requests (1800 spans, 0 log records) from 2026-11-27T12:00:03.000Z to 2026-11-27T12:03:02.000Z');
      expect(run.stdout).toContain('outcomes recorded 1800; late 0, future 0');
      await expect(readFile(join(dir, 'flags.state.json'), 'utf8')).rejects.toThrow('ENOENT');
    });
  });

  it('with --token-file serves the given host and asks every private route for a token', async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'flags.yaml'), FLAGS);
      const token = 'a-token-from-the-file-0123456789';
      await writeFile(join(dir, 'tokens'), `# who may do what\n${token} read,ingest\n`);
      const serve = await startServe(['--port', '0', '--grpc-port', '0', '--host', '0.0.0.0', '--token-file', join(dir, 'tokens'), '--store', join(dir, 'flags.yaml')]);
      const url = serve.url;
      try {
        expect(serve.out()).toContain('bearer tokens required');
        expect((await fetch(`${url}/api/status`)).status).toBe(401);
        expect((await fetch(`${url}/api/status`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
        expect((await fetch(`${url}/healthz`)).status).toBe(200);
      } finally {
        await serve.stop();
      }
    });
  });

  it('refuses a bad ingest option with what to type instead', () => {
    const run = spawnSync(process.execPath, [new URL('../../dist/cli/main.js', import.meta.url).pathname, 'serve', '--max-body-bytes', 'lots'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('"lots" is not a size; write bytes, or like 16MiB or 512KiB');
    const halfTls = spawnSync(process.execPath, [new URL('../../dist/cli/main.js', import.meta.url).pathname, 'serve', '--tls-cert', 'cert.pem'], { encoding: 'utf8' });
    expect(halfTls.status).toBe(1);
    expect(halfTls.stderr).toContain('TLS needs both --tls-cert FILE and --tls-key FILE');
  });

  it('says which port is taken and what to give instead when gRPC cannot listen', async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'flags.yaml'), FLAGS);
      const taken = createServer();
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      try {
        const port = (taken.address() as AddressInfo).port;
        const run = spawnSync(process.execPath, [new URL('../../dist/cli/main.js', import.meta.url).pathname, 'serve', '--port', '0', '--grpc-port', String(port), '--store', join(dir, 'flags.yaml')], { encoding: 'utf8' });
        expect(run.status).toBe(1);
        expect(run.stderr).toContain(`cannot listen for OTLP/gRPC on 127.0.0.1:${port}`);
        expect(run.stderr).toContain('give another --grpc-port, or --no-grpc-port');
      } finally {
        await new Promise((resolve) => taken.close(resolve));
      }
    });
  });
});
