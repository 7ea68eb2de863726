// The operator routes the status page calls: the audit log (read role) and a flag's plan
// actions (operate role) as `POST /api/v1/flags/{flag}/{pause|resume|promote|abort|rollback}`
// with `{"reason": "..."}`, through the same PlanWriter as the CLI. A minimal stand-in for the
// control API, with its contract: 200 {ok, message} or {error: {code, message}}.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../core/clock.js';
import { PlanError } from '../deploy/plan.js';
import { PlanWriter } from '../deploy/plan-writer.js';
import { type FlagStore, type WriteResult, InvalidWriteError, RevisionConflictError } from '../stores/flag-store.js';
import { UnknownFlagError } from '../stores/store-writer.js';
import type { BearerAuth } from './bearer-auth.js';
import { BodyError, MemoryBudget, readBody } from './body-reader.js';
import { requireRole, sendJson } from './status-page.js';

export const PLAN_ACTIONS = ['pause', 'resume', 'promote', 'abort', 'rollback'] as const;
export type PlanAction = (typeof PLAN_ACTIONS)[number];

const ACTION_PATH = /^\/api\/v1\/flags\/([^/]+)\/([a-z-]+)$/;
const MAX_BODY_BYTES = 16 * 1024;
const MAX_REASON_CHARS = 1000;
const DEFAULT_AUDIT_LIMIT = 100;
const MAX_AUDIT_LIMIT = 1000;

export interface StatusPageActionsOptions {
  readonly store: FlagStore;
  readonly clock: Clock;
  readonly auth: BearerAuth | undefined;
  /** Who the audit log says acted (the control API names the token instead). */
  readonly actor?: string;
}

function fail(response: ServerResponse, status: number, code: string, message: string): void {
  sendJson(response, status, { error: { code, message } });
}

export class StatusPageActions {
  private readonly store: FlagStore;
  private readonly plans: PlanWriter;
  private readonly auth: BearerAuth | undefined;
  private readonly actor: string;
  private readonly budget = new MemoryBudget(64 * MAX_BODY_BYTES);

  constructor(options: StatusPageActionsOptions) {
    this.store = options.store;
    this.plans = new PlanWriter(options.store, options.clock);
    this.auth = options.auth;
    this.actor = options.actor ?? 'status-page';
  }

  handles(path: string): boolean {
    return path === '/api/v1/audit' || ACTION_PATH.test(path);
  }

  async route(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    if (url.pathname === '/api/v1/audit') {
      if (request.method !== 'GET' && request.method !== 'HEAD')
        return fail(response, 405, 'method_not_allowed', `${request.method ?? ''} is not served here; GET /api/v1/audit?flag=KEY&limit=N`);
      if (!requireRole(this.auth, request, response, 'read')) return;
      return this.audit(response, url);
    }
    const match = ACTION_PATH.exec(url.pathname) as RegExpExecArray;
    // Nothing that changes a flag answers to a GET.
    if (request.method !== 'POST')
      return fail(
        response,
        405,
        'method_not_allowed',
        `${request.method ?? ''} is not served here; POST it with a JSON body {"reason": "..."}`,
      );
    if (!requireRole(this.auth, request, response, 'operate')) return;
    let flagKey: string;
    try {
      flagKey = decodeURIComponent(match[1] as string);
    } catch {
      return fail(response, 400, 'bad_request', 'the flag key in the path is not valid percent-encoding');
    }
    const action = match[2] as string;
    if (!(PLAN_ACTIONS as readonly string[]).includes(action))
      return fail(response, 404, 'not_found', `no action "${action}"; actions are ${PLAN_ACTIONS.join(', ')}`);
    // A cross-site form can post text/plain without asking first; JSON needs a CORS preflight this server never grants.
    const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') {
      request.resume();
      return fail(response, 415, 'unsupported_media_type', 'send content-type: application/json with {"reason": "..."}');
    }
    const reason = await this.reason(request, response);
    if (reason === undefined) return;
    let result: WriteResult;
    try {
      result = await this.run(action as PlanAction, flagKey, { actor: this.actor, reason });
    } catch (err) {
      if (err instanceof UnknownFlagError) return fail(response, 404, 'not_found', err.message);
      if (err instanceof PlanError || err instanceof RevisionConflictError) return fail(response, 409, 'conflict', err.message);
      if (err instanceof InvalidWriteError) return fail(response, 400, 'invalid', err.message);
      throw err;
    }
    sendJson(response, 200, {
      ok: true,
      message: `${flagKey}: ${action} by ${this.actor}, recorded in the audit log`,
      revision: result.revision,
    });
  }

  private run(action: PlanAction, flagKey: string, by: { actor: string; reason: string }): Promise<WriteResult> {
    switch (action) {
      case 'pause':
        return this.plans.pause(flagKey, by);
      case 'resume':
        return this.plans.resume(flagKey, by);
      case 'promote':
        return this.plans.promote(flagKey, by);
      case 'abort':
        return this.plans.abort(flagKey, by);
      case 'rollback':
        return this.plans.rollback(flagKey, by);
    }
  }

  /** The reason from the body, or undefined once a 4xx has been sent. */
  private async reason(request: IncomingMessage, response: ServerResponse): Promise<string | undefined> {
    let text: string;
    try {
      const body = await readBody(request, MAX_BODY_BYTES, this.budget);
      text = body.bytes.toString('utf8');
      body.release();
    } catch (err) {
      if (err instanceof BodyError) fail(response, err.failure.status, err.failure.reason, err.failure.message);
      else throw err;
      return undefined;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      fail(response, 400, 'bad_request', 'the body is not JSON; send {"reason": "..."}');
      return undefined;
    }
    const reason = typeof parsed === 'object' && parsed !== null ? (parsed as { reason?: unknown }).reason : undefined;
    if (typeof reason !== 'string' || reason.trim() === '') {
      fail(response, 400, 'bad_request', 'say why, for the audit log: send {"reason": "..."} with a non-empty reason');
      return undefined;
    }
    if (reason.length > MAX_REASON_CHARS) {
      fail(response, 400, 'bad_request', `the reason is ${reason.length} characters; keep it to ${MAX_REASON_CHARS}`);
      return undefined;
    }
    return reason.trim();
  }

  private async audit(response: ServerResponse, url: URL): Promise<void> {
    const limitText = url.searchParams.get('limit');
    const limit = limitText === null ? DEFAULT_AUDIT_LIMIT : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_LIMIT)
      return fail(
        response,
        400,
        'bad_request',
        `limit must be a whole number from 1 to ${MAX_AUDIT_LIMIT}, such as limit=50; got "${limitText}"`,
      );
    const flagKey = url.searchParams.get('flag') ?? undefined;
    const entries = await this.store.audit({ flagKey, limit });
    sendJson(response, 200, { entries });
  }
}
