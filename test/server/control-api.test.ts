// serve's control API against a real file store on a real HTTP port: every action lands in the
// audit log as the token's name, roles are enforced, bad requests get a located error with the
// right status, CORS stays off unless configured, and the server matches api/openapi.json.
import { spawnSync } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BearerAuth } from '../../src/server/bearer-auth.js';
import { CONTROL_ROUTES } from '../../src/server/control-api.js';
import { RolloutServer } from '../../src/server/rollout-server.js';
import { FileFlagStore } from '../../src/stores/file-store.js';
import { startServe } from '../helpers/cli-binary.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { withTempDir } from '../helpers/temp-dir.js';

const FLAGS = `flags:
  checkout:
    variants: { on: true, off: false }
    defaultVariant: off
    rollout: { variant: on }
  plain:
    variants: { a: 1, b: 2 }
    defaultVariant: a
`;

const OPERATE = 'operate-token-0123456789abcdef';
const READ = 'read-token-0123456789abcdefghij';
const INGEST = 'ingest-token-0123456789abcdefgh';
const TOKENS = `# who may do what
${OPERATE} operate alice-ops
${READ} read dashboard
${INGEST} ingest collector
`;

type Json = Record<string, unknown>;

interface Harness {
  readonly server: RolloutServer;
  readonly dir: string;
  readonly clock: FakeClock;
  readonly call: (method: string, path: string, options?: { token?: string; body?: unknown; raw?: string; type?: string; headers?: Record<string, string> }) => Promise<Response>;
}

async function withServer(fn: (h: Harness) => Promise<void>, options: { auth?: BearerAuth | null; corsOrigin?: string } = {}): Promise<void> {
  await withTempDir(async (dir) => {
    const path = join(dir, 'flags.yaml');
    await writeFile(path, FLAGS);
    const clock = new FakeClock(Date.parse('2026-11-30T08:00:00Z'));
    const auth = options.auth === null ? undefined : (options.auth ?? BearerAuth.parse(TOKENS, 'tokens'));
    const server = await RolloutServer.start({ store: new FileFlagStore({ path, clock }), port: 0, clock, autoTick: false, auth, control: { corsOrigin: options.corsOrigin } });
    const call: Harness['call'] = (method, p, o = {}) =>
      fetch(`${server.url}${p}`, {
        method,
        headers: {
          ...(o.token !== undefined ? { authorization: `Bearer ${o.token}` } : {}),
          ...(o.body !== undefined || o.raw !== undefined ? { 'content-type': o.type ?? 'application/json' } : {}),
          ...o.headers,
        },
        ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : o.raw !== undefined ? { body: o.raw } : {}),
      });
    try {
      await fn({ server, dir, clock, call });
    } finally {
      await server.close();
    }
  });
}

async function errorOf(response: Response): Promise<{ code: string; message: string; field?: string }> {
  return ((await response.json()) as { error: { code: string; message: string; field?: string } }).error;
}

describe('the control API', () => {
  it('runs every action as the token, answers with the CLI text, and records the token name as the actor in the audit log', async () => {
    await withServer(async ({ call, clock }) => {
      const act = async (action: string, body: Json) => {
        const response = await call('POST', `/api/v1/flags/checkout/${action}`, { token: OPERATE, body });
        const json = (await response.json()) as Json;
        expect({ action, status: response.status, json }).toMatchObject({ action, status: 200, json: { ok: true, flagKey: 'checkout', action } });
        return json as { message: string; warnings: string[]; report: Json };
      };
      const dry = await act('deploy', { strategy: 'safe', dryRun: true });
      expect(dry.message).toContain('checkout: dry run of a safe plan; nothing was written');
      expect(dry.report).toMatchObject({ dryRun: true, flag: 'checkout' });
      const deploy = await act('deploy', { strategy: 'custom', steps: [5, 25, 100], stepDuration: '2h', reason: 'release 42' });
      expect(deploy.message).toContain('checkout: deploy by alice-ops ("release 42"), recorded in the audit log');
      expect(deploy.message).toMatch(/2\s+25%\s+\S+\s+\(in 2h\)/);
      expect(deploy.report).toMatchObject({ changed: true, entry: { actor: 'alice-ops', action: 'deploy' } });
      clock.advance(60_000);
      expect((await act('pause', { reason: 'checking a dashboard' })).message).toContain('checkout: pause by alice-ops ("checking a dashboard")');
      await act('resume', { reason: 'all good' });
      await act('promote', { reason: 'ship it' });
      await act('rollback', { reason: 'INC-7' });
      const reset = await act('reset-state', { reason: 'INC-7 fixed' });
      expect(reset.message).toContain('checkout: reset-state by alice-ops ("INC-7 fixed"), recorded in the audit log');
      expect(reset.report).toMatchObject({ action: 'reset-state', changed: true, entry: { actor: 'alice-ops', after: { state: null } } });
      expect((await act('reset-state', {})).message).toBe('checkout: nothing to reset-state; nothing was written\n');
      await act('deploy', { strategy: 'instant', reason: 'again' }).then((r) => expect(r.warnings[0]).toContain('instant sends everyone to the treatment after one minute'));
      await act('abort', { reason: 'not today' });
      await act('override', { variant: 'on', reason: 'demo' });
      const clear = await act('clear-override', {});
      expect(clear.warnings).toEqual(['no reason given, so the audit log says "manual change via API"; next time say why with {"reason": "..."}']);

      const audit = await call('GET', '/api/v1/audit?flag=checkout', { token: READ });
      expect(audit.status).toBe(200);
      const entries = ((await audit.json()) as { entries: { action: string; actor: string; reason: string }[] }).entries;
      expect(entries.map((e) => e.action)).toEqual(['deploy', 'pause', 'resume', 'promote', 'rollback', 'reset-state', 'deploy', 'abort', 'override', 'clear-override']);
      expect(new Set(entries.map((e) => e.actor))).toEqual(new Set(['alice-ops']));
      expect(entries.at(-1)?.reason).toBe('manual change via API');
      const newest = (await (await call('GET', '/api/v1/audit?limit=2', { token: READ })).json()) as { entries: { action: string }[] };
      expect(newest.entries.map((e) => e.action)).toEqual(['override', 'clear-override']);

      const flag = (await (await call('GET', '/api/v1/flags/checkout', { token: OPERATE })).json()) as { flag: { key: string; override: unknown } };
      expect(flag.flag).toMatchObject({ key: 'checkout', override: null });
      const list = (await (await call('GET', '/api/v1/flags', { token: READ })).json()) as { flags: { key: string }[] };
      expect(list.flags.map((f) => f.key)).toContain('plain');
    });
  });

  it('refuses read and ingest tokens with 403, a wrong or missing token with 401, and changes nothing', async () => {
    await withServer(async ({ call, dir }) => {
      const body = { strategy: 'safe', reason: 'x' };
      for (const [token, name] of [
        [READ, 'dashboard'],
        [INGEST, 'collector'],
      ] as const) {
        const refused = await call('POST', '/api/v1/flags/checkout/deploy', { token, body });
        expect(refused.status).toBe(403);
        expect(await errorOf(refused)).toEqual({ code: 'forbidden', message: `the token "${name}" lacks the operate role (an ingest or read token cannot act); use a token listed with operate` });
      }
      expect((await call('GET', '/api/v1/audit', { token: INGEST })).status).toBe(403);
      for (const token of ['not-a-known-token-0123456789', undefined]) {
        const refused = await call('POST', '/api/v1/flags/checkout/rollback', { token, body: { reason: 'x' } });
        expect(refused.status).toBe(401);
        expect(refused.headers.get('www-authenticate')).toBe('Bearer');
        expect((await errorOf(refused)).code).toBe('unauthenticated');
      }
      expect((await call('GET', '/api/v1/flags')).status).toBe(401);
      // Nothing was written: no state file, no audit log beside the flags.
      expect((await readdir(dir)).sort()).toEqual(['flags.yaml']);
    });
  });

  it('answers each bad request with its status, a code, the field at fault and what to send instead', async () => {
    await withServer(async ({ call }) => {
      const cases: [string, string, Parameters<Harness['call']>[2], number, Json][] = [
        ['GET', '/api/v1/flags/checkout/rollback', { token: OPERATE }, 405, { code: 'method_not_allowed', message: 'GET is not served here; use POST; this route changes the flag, so it takes POST with a JSON body such as {"reason": "..."}' }],
        ['PUT', '/api/v1/flags/checkout', { token: OPERATE }, 405, { code: 'method_not_allowed' }],
        ['GET', '/api/v1/flags/checkout/reset-state', { token: OPERATE }, 405, { code: 'method_not_allowed' }],
        ['POST', '/api/v1/flags/checkout/reset-state', { token: OPERATE, raw: 'reason=x', type: 'text/plain' }, 415, { code: 'unsupported_media_type' }],
        ['POST', '/api/v1/flags/checkout/reset-state', { token: OPERATE, body: { reason: 'x', flag: 'y' } }, 400, { field: 'flag', message: 'unknown field "flag" for reset-state; it takes reason, actor' }],
        ['POST', '/api/v1/flags/checkout/reset-state', { token: READ, body: { reason: 'x' } }, 403, { code: 'forbidden' }],
        ['POST', '/api/v1/flags/checkout/rollback', { token: OPERATE, raw: 'reason=x', type: 'application/x-www-form-urlencoded' }, 415, { code: 'unsupported_media_type' }],
        ['POST', '/api/v1/flags/checkout/rollback', { token: OPERATE, body: { reason: 'x'.repeat(70_000) } }, 413, { code: 'too_large', message: 'the body is over the limit of 65536 bytes; control requests are small JSON objects' }],
        ['POST', '/api/v1/flags/checkout/rollback', { token: OPERATE, raw: '{"reason": ' }, 400, { code: 'invalid_request' }],
        ['POST', '/api/v1/flags/checkout/rollback', { token: OPERATE, body: ['x'] }, 400, { code: 'invalid_request', message: 'the body must be a JSON object, such as {"reason": "release 42"}' }],
        ['POST', '/api/v1/flags/checkout/rollback', { token: OPERATE, body: {} }, 400, { code: 'invalid_request', field: 'reason', message: '"reason" is required: say why, for the audit log, such as {"reason": "release 42"}' }],
        ['POST', '/api/v1/flags/checkout/pause', { token: OPERATE, body: { reason: 'x', why: 'y' } }, 400, { field: 'why', message: 'unknown field "why" for pause; it takes reason, actor' }],
        ['POST', '/api/v1/flags/checkout/deploy', { token: OPERATE, body: { strategy: 'slow', reason: 'x' } }, 400, { field: 'strategy', message: '"strategy" must be one of safe, fast, instant, custom, such as {"strategy": "safe"}; got "slow"' }],
        ['POST', '/api/v1/flags/checkout/deploy', { token: OPERATE, body: { strategy: 'custom', reason: 'x' } }, 400, { field: 'steps' }],
        ['POST', '/api/v1/flags/checkout/deploy', { token: OPERATE, body: { strategy: 'custom', steps: [0, 50, 20], stepDuration: '1h', reason: 'x' } }, 400, { field: 'steps', message: 'steps must rise: 50% is followed by 20% (such as "steps": 0,20,50,100)' }],
        ['POST', '/api/v1/flags/checkout/deploy', { token: OPERATE, body: { strategy: 'custom', steps: [0, 100], stepDuration: '10s', reason: 'x' } }, 400, { field: 'stepDuration' }],
        ['POST', '/api/v1/flags/checkout/deploy', { token: OPERATE, body: { strategy: 'safe', steps: [0, 100], reason: 'x' } }, 400, { field: 'steps' }],
        ['POST', '/api/v1/flags/checkout/override', { token: OPERATE, body: { variant: 'maybe', reason: 'x' } }, 400, { field: 'variant', message: 'flag "checkout" has no variant "maybe"; expected one of: on, off' }],
        ['POST', '/api/v1/flags/checkout/rollback', { token: OPERATE, body: { reason: 'x', actor: 'mallory' } }, 400, { field: 'actor', message: 'the actor is the token\'s name, "alice-ops"; drop "actor" (or send "alice-ops")' }],
        ['GET', '/api/v1/audit?limit=0', { token: READ }, 400, { field: 'limit' }],
        ['POST', '/api/v1/flags/chekout/rollback', { token: OPERATE, body: { reason: 'x' } }, 404, { code: 'not_found', message: 'no flag "chekout"; did you mean "checkout"? (rollout-guardian flags list shows them all)' }],
        ['POST', '/api/v1/flags/checkout/explode', { token: OPERATE, body: { reason: 'x' } }, 404, { code: 'not_found' }],
        ['GET', '/api/v1/audit?flag=nope', { token: READ }, 404, { code: 'not_found' }],
        ['POST', '/api/v1/flags/checkout/pause', { token: OPERATE, body: { reason: 'x' } }, 409, { code: 'conflict', message: '"checkout" has no plan; start one with rollout-guardian deploy checkout --strategy safe' }],
        ['POST', '/api/v1/flags/plain/deploy', { token: OPERATE, body: { strategy: 'safe', reason: 'x' } }, 409, { code: 'conflict' }],
        ['POST', '/api/v1/flags/checkout/clear-override', { token: OPERATE, body: { reason: 'x' } }, 409, { code: 'conflict', message: 'flag "checkout" has no override to clear' }],
      ];
      for (const [method, path, options, status, error] of cases) {
        const response = await call(method, path, options);
        expect({ method, path, status: response.status }).toEqual({ method, path, status });
        expect(await errorOf(response)).toMatchObject(error);
        if (status === 405) expect(response.headers.get('allow')).toMatch(/POST|GET/);
      }
      const audit = (await (await call('GET', '/api/v1/audit', { token: READ })).json()) as { entries: unknown[] };
      expect(audit.entries).toEqual([]);
    });
  });

  it('sends no CORS headers unless configured, and then only to that origin, answering its preflight', async () => {
    await withServer(async ({ call }) => {
      const plain = await call('GET', '/api/v1/flags', { token: READ, headers: { origin: 'https://ops.example.com' } });
      expect(plain.status).toBe(200);
      expect(plain.headers.get('access-control-allow-origin')).toBeNull();
      const preflight = await call('OPTIONS', '/api/v1/flags/checkout/pause', { headers: { origin: 'https://ops.example.com', 'access-control-request-method': 'POST' } });
      expect(preflight.status).toBe(405);
      expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    });
    await withServer(
      async ({ call }) => {
        const preflight = await call('OPTIONS', '/api/v1/flags/checkout/pause', { headers: { origin: 'https://ops.example.com', 'access-control-request-method': 'POST' } });
        expect(preflight.status).toBe(204);
        expect(preflight.headers.get('access-control-allow-origin')).toBe('https://ops.example.com');
        expect(preflight.headers.get('access-control-allow-headers')).toBe('authorization, content-type');
        const allowed = await call('GET', '/api/v1/flags', { token: READ, headers: { origin: 'https://ops.example.com' } });
        expect(allowed.headers.get('access-control-allow-origin')).toBe('https://ops.example.com');
        const refused = await call('POST', '/api/v1/flags/checkout/pause', { token: READ, body: { reason: 'x' }, headers: { origin: 'https://ops.example.com' } });
        expect(refused.status).toBe(403);
        expect(refused.headers.get('access-control-allow-origin')).toBe('https://ops.example.com');
        const other = await call('GET', '/api/v1/flags', { token: READ, headers: { origin: 'https://evil.example.net' } });
        expect(other.headers.get('access-control-allow-origin')).toBeNull();
        expect((await call('OPTIONS', '/api/v1/flags', { headers: { origin: 'https://evil.example.net' } })).status).toBe(405);
      },
      { corsOrigin: 'https://ops.example.com' },
    );
  });

  it('without tokens serves loopback callers, recording the actor they name or "local"', async () => {
    await withServer(
      async ({ call }) => {
        const named = await call('POST', '/api/v1/flags/checkout/override', { body: { variant: 'on', reason: 'demo', actor: 'bob' } });
        expect(named.status).toBe(200);
        expect(((await named.json()) as { message: string }).message).toContain('checkout: override by bob ("demo")');
        const anonymous = await call('POST', '/api/v1/flags/checkout/clear-override', { body: { reason: 'done' } });
        expect(((await anonymous.json()) as { message: string }).message).toContain('checkout: clear-override by local ("done")');
      },
      { auth: null },
    );
  });
});

describe('token files', () => {
  it('read TOKEN ROLES NAME lines, name unnamed tokens after their line, make operate imply read, and locate every mistake', () => {
    const auth = BearerAuth.parse(`${OPERATE} operate alice\n\n${READ}\n${INGEST} ingest\n`, '/etc/rg/tokens');
    expect(auth.check(`Bearer ${OPERATE}`, 'read')).toEqual({ result: 'ok', name: 'alice' });
    expect(auth.check(`Bearer ${OPERATE}`, 'ingest')).toEqual({ result: 'forbidden', name: 'alice' });
    expect(auth.check(`Bearer ${READ}`, 'operate')).toEqual({ result: 'ok', name: 'tokens:3' });
    expect(auth.check(`Bearer ${INGEST}`, 'read')).toEqual({ result: 'forbidden', name: 'tokens:4' });
    expect(auth.check('Bearer nope-nope-nope-nope-nope', 'read')).toEqual({ result: 'invalid', name: undefined });
    expect(auth.check(undefined, 'read')).toEqual({ result: 'missing', name: undefined });
    const mistakes: [string, string][] = [
      [`${OPERATE} operate alice extra`, 'tokens:1: expected "TOKEN [ROLE,ROLE] [NAME]", got 4 words'],
      [`# x\n${OPERATE} admin alice`, 'tokens:2: unknown role "admin"; roles are read, operate, ingest (or all), separated by commas'],
      ['short all bob', 'tokens:1: a token must be at least 16 characters (got 5); generate one with: openssl rand -hex 32'],
      [`${OPERATE} all al ice`, 'tokens:1: expected "TOKEN [ROLE,ROLE] [NAME]", got 4 words'],
      [`${OPERATE} all "alice"`, 'tokens:1: token name ""alice"" is not a name; use letters, digits and . _ @ : - (up to 64), such as ci-deployer'],
      [`${OPERATE} all alice\n${READ} read alice`, 'tokens: two tokens are named "alice"; give each its own name, the audit log tells them apart by it'],
      [`${OPERATE} all alice\n${OPERATE} read bob`, 'tokens: the token named "bob" is listed twice; give each person or system its own token'],
      ['# nothing\n', 'tokens: no tokens in the file'],
    ];
    for (const [text, message] of mistakes) expect(() => BearerAuth.parse(text, 'tokens')).toThrow(message);
  });
});

// ---------------------------------------------------------------------------------------------
// The server against api/openapi.json: every described operation is called for real, and each
// answer's status must be described and its body must match the described schema.

interface Schema {
  readonly type?: string | readonly string[];
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean | Schema;
  readonly items?: Schema;
  readonly enum?: readonly unknown[];
  readonly const?: unknown;
  readonly oneOf?: readonly Schema[];
  readonly $ref?: string;
  readonly minimum?: number;
  readonly maximum?: number;
}

interface ResponseObject {
  readonly $ref?: string;
  readonly content?: Record<string, { schema: Schema }>;
}

interface OpenApi {
  readonly paths: Record<string, Record<string, { responses: Record<string, ResponseObject> }>>;
  readonly components: { readonly schemas: Record<string, Schema>; readonly responses: Record<string, ResponseObject> };
}

/** A response as described, following a $ref to the shared ones. */
function described(doc: OpenApi, response: ResponseObject | undefined): ResponseObject | undefined {
  return response?.$ref === undefined ? response : doc.components.responses[response.$ref.replace('#/components/responses/', '')];
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** The places where `value` breaks `schema` (a JSON Schema subset: what api/openapi.json uses). */
function schemaErrors(value: unknown, schema: Schema, doc: OpenApi, at = '$'): string[] {
  if (schema.$ref !== undefined) return schemaErrors(value, doc.components.schemas[schema.$ref.replace('#/components/schemas/', '')] as Schema, doc, at);
  if (schema.oneOf !== undefined) {
    const matching = schema.oneOf.filter((s) => schemaErrors(value, s, doc, at).length === 0).length;
    return matching === 1 ? [] : [`${at}: matches ${matching} of oneOf's ${schema.oneOf.length} schemas`];
  }
  if (schema.const !== undefined && value !== schema.const) return [`${at}: expected ${JSON.stringify(schema.const)}`];
  if (schema.enum !== undefined && !schema.enum.includes(value)) return [`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`];
  if (schema.type !== undefined) {
    const types = typeof schema.type === 'string' ? [schema.type] : schema.type;
    const actual = typeOf(value);
    if (!types.includes(actual) && !(actual === 'integer' && types.includes('number'))) return [`${at}: expected ${types.join(' or ')}, got ${actual}`];
  }
  const errors: string[] = [];
  if (typeOf(value) === 'object') {
    const object = value as Record<string, unknown>;
    for (const key of schema.required ?? []) if (!(key in object)) errors.push(`${at}: missing ${key}`);
    for (const [key, item] of Object.entries(object)) {
      const property = schema.properties?.[key];
      if (property !== undefined) errors.push(...schemaErrors(item, property, doc, `${at}.${key}`));
      else if (schema.additionalProperties === false) errors.push(`${at}: ${key} is not described`);
      else if (typeof schema.additionalProperties === 'object') errors.push(...schemaErrors(item, schema.additionalProperties, doc, `${at}.${key}`));
    }
  }
  if (Array.isArray(value) && schema.items !== undefined) value.forEach((item, i) => errors.push(...schemaErrors(item, schema.items as Schema, doc, `${at}[${i}]`)));
  return errors;
}

interface Case {
  readonly status: number;
  readonly path?: string;
  readonly token?: string;
  readonly body?: unknown;
  readonly raw?: string;
  readonly type?: string;
}


/** Requests for each operation, in order (state carries over): together they exercise each described status worth testing. */
function casesFor(method: string, path: string): Case[] | undefined {
  const otlp = [{ status: 200, token: INGEST, raw: '{"resourceSpans": []}' }, { status: 401, raw: '{}' }, { status: 403, token: READ, raw: '{}' }, { status: 415, token: INGEST, raw: 'x', type: 'text/plain' }, { status: 400, token: INGEST, raw: '{"resourceSpans": [' }];
  const readable = [{ status: 200, token: READ }, { status: 401 }, { status: 403, token: INGEST }];
  const key = `${method.toUpperCase()} ${path}`;
  const action = /^POST \/api\/v1\/flags\/\{flag\}\/(.+)$/.exec(key)?.[1];
  if (action !== undefined) {
    const body: Record<string, Json> = { deploy: { strategy: 'fast', reason: 'x' }, override: { variant: 'on', reason: 'x' } };
    const at = `/api/v1/flags/checkout/${action}`;
    const ok: Json = body[action] ?? { reason: 'x' };
    const common: Case[] = [
      { status: 401, path: at, body: ok },
      { status: 403, path: at, token: READ, body: ok },
      { status: 404, path: `/api/v1/flags/nope/${action}`, token: OPERATE, body: ok },
      { status: 400, path: at, token: OPERATE, body: { ...ok, bogus: 1 } },
      { status: 415, path: at, token: OPERATE, raw: 'x', type: 'text/plain' },
      { status: 413, path: at, token: OPERATE, body: { ...ok, reason: 'x'.repeat(70_000) } },
    ];
    // Each action after the one before it, so each finds the plan it needs: deploy runs first.
    const conflictFirst = ['pause', 'resume', 'promote', 'abort', 'clear-override'].includes(action);
    return conflictFirst && action !== 'resume' && action !== 'clear-override'
      ? [...common, { status: 409, path: '/api/v1/flags/plain/' + action, token: OPERATE, body: ok }, { status: 200, path: at, token: OPERATE, body: ok }]
      : [...common, { status: 200, path: at, token: OPERATE, body: ok }];
  }
  switch (key) {
    case 'GET /api/v1/flags':
      return readable;
    case 'GET /api/v1/flags/{flag}':
      return [...readable.map((c) => ({ ...c, path: '/api/v1/flags/checkout' })), { status: 404, path: '/api/v1/flags/nope', token: READ }];
    case 'GET /api/v1/audit':
      return [...readable, { status: 400, path: '/api/v1/audit?limit=x', token: READ }, { status: 404, path: '/api/v1/audit?flag=nope', token: READ }];
    case 'GET /openapi.json':
      return [{ status: 200 }];
    case 'GET /api/status':
    case 'GET /metrics':
      return readable;
    case 'GET /healthz':
    case 'GET /readyz':
      return [{ status: 200 }];
    case 'POST /v1/traces':
    case 'POST /v1/logs':
    case 'POST /v1/metrics':
      return otlp;
    case 'GET /':
      return [{ status: 200, token: READ }];
    case 'GET /api/v1/history':
      return [{ status: 200, path: '/api/v1/history?flag=checkout', token: READ }];
    default:
      return undefined;
  }
}

const ORDER = ['deploy', 'pause', 'resume', 'promote', 'rollback', 'reset-state', 'override', 'clear-override', 'abort'];

describe('the server against api/openapi.json', () => {
  it('answers every described operation with a described status and a body of the described shape', async () => {
    const doc = JSON.parse(await readFile(new URL('../../api/openapi.json', import.meta.url), 'utf8')) as OpenApi;
    const operations = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => ({ path, method })));
    // Actions in an order where each finds the plan it needs; abort last, after a fresh deploy.
    const rank = (p: string) => ORDER.findIndex((a) => p.endsWith(`/${a}`));
    operations.sort((a, b) => rank(a.path) - rank(b.path));
    await withServer(async ({ call }) => {
      for (const { path, method } of operations) {
        const key = `${method.toUpperCase()} ${path}`;
        const cases = casesFor(method, path);
        expect(cases, `no test case for ${key}`).toBeDefined();
        if (path.endsWith('/abort')) await call('POST', '/api/v1/flags/checkout/deploy', { token: OPERATE, body: { strategy: 'fast', reason: 'again' } });
        for (const c of cases ?? []) {
          const response = await call(method.toUpperCase(), c.path ?? path, { token: c.token, body: c.body, raw: c.raw, type: c.type });
          const answer = described(doc, doc.paths[path]?.[method]?.responses[String(response.status)]);
          expect({ key, url: c.path ?? path, status: response.status }).toEqual({ key, url: c.path ?? path, status: c.status });
          expect(answer, `${key} answered ${response.status}, which is not described`).toBeDefined();
          const type = (response.headers.get('content-type') ?? '').split(';')[0] as string;
          const content = answer?.content?.[type];
          expect(content, `${key} ${response.status} answered ${type}, which is not described`).toBeDefined();
          if (type === 'application/json') expect({ key, status: response.status, errors: schemaErrors(await response.json(), content?.schema ?? {}, doc) }).toEqual({ key, status: response.status, errors: [] });
          else await response.arrayBuffer();
        }
      }
    });
  });

  it('describes every route the server answers, and nothing undescribed answers', async () => {
    const doc = JSON.parse(await readFile(new URL('../../api/openapi.json', import.meta.url), 'utf8')) as OpenApi;
    for (const { method, path } of CONTROL_ROUTES) expect(Object.keys(doc.paths[path] ?? {}), `${method} ${path}`).toContain(method.toLowerCase());
    // The routes the server's code names: every literal path it switches or compares on.
    const folder = new URL('../../src/server/', import.meta.url);
    const literals = new Set<string>();
    for (const file of await readdir(folder)) {
      if (!file.endsWith('.ts')) continue;
      const source = await readFile(new URL(file, folder), 'utf8');
      for (const m of source.matchAll(/(?:case |path === )'(\/[^']*)'/g)) literals.add(m[1] as string);
    }
    expect(literals.size).toBeGreaterThan(5);
    for (const path of literals) expect(Object.keys(doc.paths), `${path} is served but not described in api/openapi.json`).toContain(path);
    await withServer(async ({ call }) => {
      for (const path of ['/api/v2/flags', '/api/v1/flag', '/api/v1/flags/checkout/rollback/now', '/v1/metrics', '/admin']) {
        expect({ path, status: (await call('GET', path, { token: READ })).status }).toEqual({ path, status: 404 });
      }
      for (const path of Object.keys(doc.paths)) {
        const concrete = path.replace('{flag}', 'checkout');
        const status = (await call('DELETE', concrete, { token: OPERATE })).status;
        expect({ path, status }).toEqual({ path, status: path === '/' || path === '/api/v1/history' ? status : 405 });
      }
    });
  });
});

describe('serve --token-file and --cors-origin, as the real binary', () => {
  const main = new URL('../../dist/cli/main.js', import.meta.url).pathname;

  it('acts as the named token from the file, logs the action, and answers CORS for the one origin given', async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'flags.yaml'), FLAGS);
      await writeFile(join(dir, 'tokens'), TOKENS);
      const serve = await startServe(['--port', '0', '--no-grpc-port', '--token-file', join(dir, 'tokens'), '--cors-origin', 'https://ops.example.com', '--store', join(dir, 'flags.yaml')]);
      const url = serve.url;
      try {
        const rollback = await fetch(`${url}/api/v1/flags/checkout/rollback`, {
          method: 'POST',
          headers: { authorization: `Bearer ${OPERATE}`, 'content-type': 'application/json', origin: 'https://ops.example.com' },
          body: JSON.stringify({ reason: 'INC-9' }),
        });
        expect(rollback.status).toBe(200);
        expect(rollback.headers.get('access-control-allow-origin')).toBe('https://ops.example.com');
        const audit = JSON.parse(await readFile(join(dir, 'flags.audit.jsonl'), 'utf8').then((t) => t.trim().split('\n').at(-1) as string)) as { actor: string; action: string };
        expect(audit).toMatchObject({ actor: 'alice-ops', action: 'rollback' });
        expect(serve.err()).toContain('control API: rollback checkout by alice-ops ("INC-9")');
      } finally {
        await serve.stop();
      }
    });
  });

  it('refuses a token file with a mistake, naming the file and line, and a --cors-origin that is not an origin', async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'tokens'), `# ops\n${OPERATE} admin alice\n`);
      const bad = spawnSync(process.execPath, [main, 'serve', '--port', '0', '--no-grpc-port', '--token-file', join(dir, 'tokens'), '--store', join(dir, 'flags.yaml')], { encoding: 'utf8' });
      expect(bad.status).toBe(1);
      expect(bad.stderr).toContain(`${join(dir, 'tokens')}:2: unknown role "admin"; roles are read, operate, ingest (or all), separated by commas`);
      const cors = spawnSync(process.execPath, [main, 'serve', '--cors-origin', 'https://ops.example.com/page'], { encoding: 'utf8' });
      expect(cors.status).toBe(2);
      expect(cors.stderr).toContain('"https://ops.example.com/page" is not an origin; give scheme, host and port only, such as https://ops.example.com');
    });
  });
});
