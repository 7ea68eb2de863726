// serve's control API (docs/control-api.md, api/openapi.json): the operator's actions as
// POST /api/v1/flags/{flag}/{action}, the audit log and the flags as GETs, and the OpenAPI
// description. It owns its auth (operate for actions, read for the rest; the actor is the
// token's name), body limits, media types, CORS, and errors as {error: {code, message, field}}.
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../core/clock.js';
import { formatDurationMs, parseDurationMs } from '../core/duration.js';
import { flagListView } from '../deploy/flag-view.js';
import { type ActionRequest, type OperatorAction, ActionRefusedError, OPERATOR_ACTIONS, runOperatorAction } from '../deploy/operator-actions.js';
import { type PlanStep, type Strategy, PlanError, STRATEGIES, planSteps } from '../deploy/plan.js';
import { LockTimeoutError } from '../stores/file-lock.js';
import { type FlagStore, FlagSourceError, InvalidWriteError, RevisionConflictError } from '../stores/flag-store.js';
import { UnknownFlagError, knownFlag } from '../stores/store-writer.js';
import { WriteIncompleteError, WriteNotAppliedError } from '../stores/write-journal.js';
import { type BearerAuth, type Role, refusalMessage } from './bearer-auth.js';
import { BodyError, MemoryBudget, readBody } from './body-reader.js';

export const DEFAULT_CONTROL_BODY_BYTES = 64 * 1024;
/** Without tokens, what the audit log records for a loopback caller who names no actor. */
export const LOCAL_ACTOR = 'local';
/** The reason recorded for an override, clear-override or reset-state sent without one (the CLI's rule). */
export const DEFAULT_API_REASON = 'manual change via API';

export type ErrorCode =
  | 'invalid_request'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'too_large'
  | 'unsupported_media_type'
  | 'unavailable'
  | 'write_incomplete'
  | 'internal';

/** Every route this module answers, as OpenAPI paths: the OpenAPI test holds api/openapi.json to it. */
export const CONTROL_ROUTES: readonly { readonly method: 'GET' | 'POST'; readonly path: string }[] = [
  { method: 'GET', path: '/openapi.json' },
  { method: 'GET', path: '/api/v1/flags' },
  { method: 'GET', path: '/api/v1/flags/{flag}' },
  ...OPERATOR_ACTIONS.map((action) => ({ method: 'POST' as const, path: `/api/v1/flags/{flag}/${action}` })),
  { method: 'GET', path: '/api/v1/audit' },
];

export interface ControlApiOptions {
  readonly store: FlagStore;
  readonly clock: Clock;
  /** Tokens; without them only loopback callers are served. */
  readonly auth?: BearerAuth;
  /** The one origin answered with CORS headers (and preflights); none when absent. */
  readonly corsOrigin?: string;
  readonly maxBodyBytes?: number;
  readonly log?: (line: string) => void;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

const invalid = (field: string | undefined, message: string) => new ApiError(400, 'invalid_request', message, field);

const LOOPBACK_ADDRESSES = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/** Step durations the CLI's --step-duration takes: a minute to a year. */
const MIN_STEP_MS = 60_000;
const MAX_STEP_MS = 365 * 86_400_000;

const FIELDS: Record<OperatorAction, readonly string[]> = {
  deploy: ['reason', 'actor', 'strategy', 'steps', 'stepDuration', 'stepDurationMs', 'dryRun'],
  pause: ['reason', 'actor'],
  resume: ['reason', 'actor'],
  promote: ['reason', 'actor'],
  abort: ['reason', 'actor'],
  rollback: ['reason', 'actor'],
  override: ['reason', 'actor', 'variant'],
  'clear-override': ['reason', 'actor'],
  'reset-state': ['reason', 'actor'],
};

function text(value: unknown, field: string, example: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw invalid(field, `"${field}" must be a non-empty string, such as {"${field}": "${example}"}`);
  if (value.length > 1000) throw invalid(field, `"${field}" is ${value.length} characters; keep it to 1000`);
  return value;
}

/** The deploy's steps from the body, checked as the CLI checks --strategy, --steps and --step-duration. */
function deploySteps(body: Record<string, unknown>): { strategy: Strategy; steps: PlanStep[] } {
  const strategy = body.strategy;
  if (typeof strategy !== 'string' || !(STRATEGIES as readonly string[]).includes(strategy)) {
    throw invalid('strategy', `"strategy" must be one of ${STRATEGIES.join(', ')}, such as {"strategy": "safe"}${strategy === undefined ? '' : `; got ${JSON.stringify(strategy)}`}`);
  }
  if (body.stepDuration !== undefined && body.stepDurationMs !== undefined) throw invalid('stepDuration', 'give "stepDuration" ("6h") or "stepDurationMs" (21600000), not both');
  let stepDurationMs: number | undefined;
  if (body.stepDuration !== undefined) {
    const ms = typeof body.stepDuration === 'string' ? parseDurationMs(body.stepDuration) : undefined;
    if (ms === undefined) throw invalid('stepDuration', `"stepDuration" must be a duration such as "30m", "6h" or "1d"; got ${JSON.stringify(body.stepDuration)}`);
    stepDurationMs = ms;
  } else if (body.stepDurationMs !== undefined) {
    if (typeof body.stepDurationMs !== 'number' || !Number.isInteger(body.stepDurationMs)) throw invalid('stepDurationMs', `"stepDurationMs" must be a whole number of milliseconds, such as 21600000 for 6h`);
    stepDurationMs = body.stepDurationMs;
  }
  const durationField = body.stepDuration !== undefined ? 'stepDuration' : 'stepDurationMs';
  if (stepDurationMs !== undefined && (stepDurationMs < MIN_STEP_MS || stepDurationMs > MAX_STEP_MS)) {
    throw invalid(durationField, `a step of ${formatDurationMs(stepDurationMs)} is out of range; give a duration from ${formatDurationMs(MIN_STEP_MS)} to ${formatDurationMs(MAX_STEP_MS)}, such as "6h"`);
  }
  let steps: number[] | undefined;
  if (body.steps !== undefined) {
    if (!Array.isArray(body.steps) || body.steps.length === 0 || body.steps.some((s) => typeof s !== 'number' || !Number.isFinite(s))) {
      throw invalid('steps', `"steps" must be a list of percentages, such as [0, 20, 50, 100]`);
    }
    steps = body.steps as number[];
  }
  if (strategy !== 'custom' && (steps !== undefined || stepDurationMs !== undefined)) {
    throw invalid(steps !== undefined ? 'steps' : durationField, `"steps" and "stepDuration" go with "strategy": "custom"; for ${strategy} drop them, or send {"strategy": "custom", "steps": [0, 20, 50, 100], "stepDuration": "6h"}`);
  }
  if (strategy === 'custom' && (steps === undefined || stepDurationMs === undefined)) {
    throw invalid(steps === undefined ? 'steps' : 'stepDuration', `"strategy": "custom" needs "steps" and "stepDuration", such as {"steps": [0, 20, 50, 100], "stepDuration": "6h"}`);
  }
  try {
    return { strategy: strategy as Strategy, steps: planSteps(strategy as Strategy, steps !== undefined && stepDurationMs !== undefined ? { steps, stepDurationMs } : undefined) };
  } catch (err) {
    if (err instanceof PlanError) throw invalid('steps', err.message.replaceAll('--steps ', '"steps": ').replaceAll('--step-duration ', '"stepDuration": '));
    throw err;
  }
}

function isLoopback(request: IncomingMessage): boolean {
  return LOOPBACK_ADDRESSES.has(request.socket.remoteAddress ?? '');
}

function send(response: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  response.writeHead(status, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(body)}\n`);
}

export class ControlApi {
  private readonly store: FlagStore;
  private readonly clock: Clock;
  private readonly auth: BearerAuth | undefined;
  private readonly corsOrigin: string | undefined;
  private readonly maxBodyBytes: number;
  // Control bodies are small; a budget of 64 bodies at the limit keeps a flood from piling up.
  private readonly budget: MemoryBudget;
  private readonly log: (line: string) => void;
  private openapi: Promise<string> | undefined;

  constructor(options: ControlApiOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.auth = options.auth;
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_CONTROL_BODY_BYTES;
    this.budget = new MemoryBudget(this.maxBodyBytes * 64);
    this.log = options.log ?? (() => undefined);
    if (options.corsOrigin !== undefined) {
      let origin: string;
      try {
        origin = new URL(options.corsOrigin).origin;
      } catch {
        throw new RangeError(`--cors-origin ${options.corsOrigin} is not an origin; give one such as https://ops.example.com`);
      }
      if (origin === 'null' || origin !== options.corsOrigin.replace(/\/+$/, '')) throw new RangeError(`--cors-origin ${options.corsOrigin} is not an origin; give scheme, host and port only, such as https://ops.example.com`);
      this.corsOrigin = origin;
    }
  }

  /** Whether `path` is one of this API's routes (whatever the method). */
  handles(path: string): boolean {
    return path === '/openapi.json' || path === '/api/v1/audit' || path === '/api/v1/flags' || path.startsWith('/api/v1/flags/');
  }

  async handle(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    const cors = this.corsHeaders(request);
    try {
      if (request.method === 'OPTIONS') return this.preflight(request, response, cors);
      await this.route(request, response, url, cors);
    } catch (err) {
      request.resume();
      const e = this.apiError(err);
      if (e.status >= 500) this.log(`control API: ${request.method ?? ''} ${url.pathname}: ${e.message}`);
      if (!response.headersSent) send(response, e.status, { error: { code: e.code, message: e.message, ...(e.field !== undefined ? { field: e.field } : {}) } }, { ...cors, ...e.headers });
    }
  }

  private async route(request: IncomingMessage, response: ServerResponse, url: URL, cors: Record<string, string>): Promise<void> {
    const path = url.pathname;
    const method = request.method ?? 'GET';
    if (path === '/openapi.json') {
      this.only(method, 'GET');
      response.writeHead(200, { ...cors, 'content-type': 'application/json', 'cache-control': 'no-cache' }).end(method === 'HEAD' ? undefined : await this.openapiText());
      return;
    }
    if (path === '/api/v1/audit') {
      this.only(method, 'GET');
      this.authorize(request, 'read');
      return send(response, 200, await this.audit(url.searchParams), cors);
    }
    if (path === '/api/v1/flags') {
      this.only(method, 'GET');
      this.authorize(request, 'read');
      const snapshot = await this.store.load();
      const { set, flags } = flagListView(snapshot, this.clock.now(), {});
      return send(response, 200, { store: this.store.source, revision: snapshot.revision, emergencyShutdown: set.shutdown, flags }, cors);
    }
    const parts = path.slice('/api/v1/flags/'.length).split('/');
    let flagKey: string;
    try {
      flagKey = decodeURIComponent(parts[0] ?? '');
    } catch {
      throw new ApiError(404, 'not_found', `${path}: the flag key is not valid percent-encoding`);
    }
    if (flagKey === '' || parts.length > 2) throw new ApiError(404, 'not_found', `no route ${path}; try GET /api/v1/flags/{flag} or POST /api/v1/flags/{flag}/{action}`);
    if (parts.length === 1) {
      this.only(method, 'GET');
      this.authorize(request, 'read');
      const snapshot = await this.store.load();
      knownFlag(snapshot, flagKey);
      const { set, flags } = flagListView(snapshot, this.clock.now(), {});
      return send(response, 200, { store: this.store.source, revision: snapshot.revision, emergencyShutdown: set.shutdown, flag: flags.find((f) => f.key === flagKey) }, cors);
    }
    const action = parts[1] as string;
    if (!(OPERATOR_ACTIONS as readonly string[]).includes(action)) {
      throw new ApiError(404, 'not_found', `no action "${action}"; POST /api/v1/flags/${encodeURIComponent(flagKey)}/ACTION with ACTION one of ${OPERATOR_ACTIONS.join(', ')}`);
    }
    this.only(method, 'POST');
    const actor = this.authorize(request, 'operate');
    const contentType = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (contentType !== 'application/json') {
      throw new ApiError(415, 'unsupported_media_type', `send the body as JSON with content-type: application/json${contentType === '' ? '' : ` (got ${contentType})`}`);
    }
    const body = await this.readJson(request);
    const { request: actionRequest, reason, warnings } = this.actionRequest(action as OperatorAction, body);
    const by = { actor: this.actorFor(actor, body), reason };
    const outcome = await runOperatorAction(this.store, this.clock, flagKey, actionRequest, by);
    if (outcome.entry !== null) this.log(`control API: ${action} ${flagKey} by ${by.actor} (${JSON.stringify(reason)})`);
    send(response, 200, { ok: true, flagKey, action, message: outcome.message, warnings, report: outcome.report }, cors);
  }

  /** 405 unless the method is `allowed` (HEAD goes with GET); nothing that changes anything answers to GET. */
  private only(method: string, allowed: 'GET' | 'POST'): void {
    if (method === allowed || (allowed === 'GET' && method === 'HEAD')) return;
    const hint = allowed === 'POST' ? `; this route changes the flag, so it takes POST with a JSON body such as {"reason": "..."}` : '';
    throw new ApiError(405, 'method_not_allowed', `${method} is not served here; use ${allowed}${hint}`, undefined, { allow: allowed === 'GET' ? 'GET, HEAD' : 'POST' });
  }

  /** The caller's token name when tokens are configured, else null (loopback callers only). */
  private authorize(request: IncomingMessage, role: Role): string | null {
    if (this.auth === undefined) {
      if (!isLoopback(request)) throw new ApiError(403, 'forbidden', 'without tokens serve answers loopback callers only; give serve --token-file to open the control API to others');
      return null;
    }
    const { result, name } = this.auth.check(request.headers.authorization, role);
    if (result === 'ok') return name as string;
    if (result === 'forbidden') throw new ApiError(403, 'forbidden', `the token "${name ?? ''}" lacks the ${role} role${role === 'operate' ? ' (an ingest or read token cannot act); use a token listed with operate' : ''}`);
    throw new ApiError(401, 'unauthenticated', refusalMessage(result, role), undefined, { 'www-authenticate': 'Bearer' });
  }

  private actorFor(tokenName: string | null, body: Record<string, unknown>): string {
    const asked = body.actor === undefined ? undefined : text(body.actor, 'actor', 'alice');
    if (tokenName === null) return asked ?? LOCAL_ACTOR;
    if (asked !== undefined && asked !== tokenName) {
      throw invalid('actor', `the actor is the token's name, "${tokenName}"; drop "actor" (or send "${tokenName}")`);
    }
    return tokenName;
  }

  private actionRequest(action: OperatorAction, body: Record<string, unknown>): { request: ActionRequest; reason: string; warnings: string[] } {
    const allowed = FIELDS[action];
    for (const key of Object.keys(body)) {
      if (!allowed.includes(key)) throw invalid(key, `unknown field "${key}" for ${action}; it takes ${allowed.join(', ')}`);
    }
    const warnings: string[] = [];
    const dryRun = action === 'deploy' && body.dryRun !== undefined ? body.dryRun : false;
    if (typeof dryRun !== 'boolean') throw invalid('dryRun', `"dryRun" must be true or false`);
    let reason: string;
    if (body.reason !== undefined) reason = text(body.reason, 'reason', 'release 42');
    else if (action === 'override' || action === 'clear-override' || action === 'reset-state') {
      reason = DEFAULT_API_REASON;
      warnings.push(`no reason given, so the audit log says "${DEFAULT_API_REASON}"; next time say why with {"reason": "..."}`);
    } else if (action === 'deploy' && dryRun) reason = DEFAULT_API_REASON;
    else throw invalid('reason', `"reason" is required: say why, for the audit log, such as {"reason": "release 42"}${action === 'deploy' ? ' (only "dryRun": true goes without)' : ''}`);
    switch (action) {
      case 'deploy': {
        const { strategy, steps } = deploySteps(body);
        if (strategy === 'instant') warnings.push('instant sends everyone to the treatment after one minute, with no gradual exposure; the guardian can still roll it back');
        return { request: { action, strategy, steps, dryRun }, reason, warnings };
      }
      case 'override':
        return { request: { action, variant: text(body.variant, 'variant', 'on') }, reason, warnings };
      default:
        return { request: { action }, reason, warnings };
    }
  }

  private async readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
    const body = await readBody(request, this.maxBodyBytes, this.budget);
    let value: unknown;
    try {
      value = JSON.parse(body.bytes.length === 0 ? '{}' : body.bytes.toString('utf8'));
    } catch (err) {
      throw invalid(undefined, `the body is not JSON (${(err as Error).message}); send an object such as {"reason": "release 42"}`);
    } finally {
      body.release();
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(undefined, 'the body must be a JSON object, such as {"reason": "release 42"}');
    return value as Record<string, unknown>;
  }

  private async audit(params: URLSearchParams): Promise<unknown> {
    const flagKey = params.get('flag') ?? undefined;
    const limitText = params.get('limit');
    let limit: number | undefined;
    if (limitText !== null) {
      limit = Number(limitText);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw invalid('limit', `"limit" must be a whole number from 1 to 10000, such as ?limit=50; got "${limitText}"`);
    }
    const entries = await this.store.audit({ flagKey, limit });
    // No history for a key that is not a flag either: most likely a typo.
    if (entries.length === 0 && flagKey !== undefined) knownFlag(await this.store.load(), flagKey);
    return { store: this.store.source, entries };
  }

  private openapiText(): Promise<string> {
    this.openapi ??= readFile(new URL('../../api/openapi.json', import.meta.url), 'utf8');
    return this.openapi;
  }

  private corsHeaders(request: IncomingMessage): Record<string, string> {
    if (this.corsOrigin === undefined || request.headers.origin !== this.corsOrigin) return {};
    return { 'access-control-allow-origin': this.corsOrigin, vary: 'Origin' };
  }

  private preflight(request: IncomingMessage, response: ServerResponse, cors: Record<string, string>): void {
    request.resume();
    if (cors['access-control-allow-origin'] === undefined) {
      throw new ApiError(405, 'method_not_allowed', this.corsOrigin === undefined ? 'OPTIONS is not served: CORS is off (serve --cors-origin ORIGIN turns it on for one origin)' : `CORS is allowed for ${this.corsOrigin} only`, undefined, { allow: 'GET, HEAD, POST' });
    }
    response
      .writeHead(204, {
        ...cors,
        'access-control-allow-methods': 'GET, HEAD, POST',
        'access-control-allow-headers': 'authorization, content-type',
        'access-control-max-age': '600',
      })
      .end();
  }

  private apiError(err: unknown): ApiError {
    if (err instanceof ApiError) return err;
    if (err instanceof BodyError) {
      const code: ErrorCode = err.failure.status === 413 ? 'too_large' : err.failure.status === 415 ? 'unsupported_media_type' : err.failure.status === 503 ? 'unavailable' : 'invalid_request';
      return new ApiError(err.failure.status, code, err.failure.status === 413 ? `the body is over the limit of ${this.maxBodyBytes} bytes; control requests are small JSON objects` : err.message);
    }
    if (err instanceof UnknownFlagError) return new ApiError(404, 'not_found', err.message);
    if (err instanceof ActionRefusedError || err instanceof RevisionConflictError) return new ApiError(409, 'conflict', err.message);
    if (err instanceof InvalidWriteError) return /has no variant/.test(err.message) ? new ApiError(400, 'invalid_request', err.message, 'variant') : new ApiError(409, 'conflict', err.message);
    if (err instanceof LockTimeoutError || err instanceof FlagSourceError || err instanceof WriteNotAppliedError) return new ApiError(503, 'unavailable', err.message);
    if (err instanceof WriteIncompleteError) return new ApiError(500, 'write_incomplete', err.message);
    return new ApiError(500, 'internal', `unexpected failure: ${err instanceof Error ? err.message : String(err)}`);
  }
}
