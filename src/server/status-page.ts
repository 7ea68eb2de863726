// The live status page of `serve`: its three static files (HTML, CSS, script) under a strict
// Content-Security-Policy, and the history route its charts read. The files carry no data,
// so they need no token; everything they show comes from token-checked JSON routes.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CohortRegistry } from '../guardian/cohort-registry.js';
import type { RolloutGuardian } from '../guardian/rollout-guardian.js';
import type { FlagStore } from '../stores/flag-store.js';
import { type BearerAuth, type Role, refusalMessage } from './bearer-auth.js';
import { RolloutHistory } from './rollout-history.js';

/** No inline script or style, nothing from elsewhere, no framing, no form posts: the page builds its DOM from JSON. */
export const STATUS_PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ASSETS: Readonly<Record<string, { readonly file: string; readonly type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/status.js': { file: 'status.js', type: 'text/javascript; charset=utf-8' },
  '/status.css': { file: 'status.css', type: 'text/css; charset=utf-8' },
};

/** Where the page's files live: beside this module in src/ and, copied by the build, in dist/. */
const ASSET_DIR = new URL('./status-page/', import.meta.url);

export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response
    .writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' })
    .end(`${JSON.stringify(body)}\n`);
}

/**
 * Answers 401 or 403 and returns false unless the request carries a token with `role`; always
 * true when the server has no tokens (it then listens on loopback only).
 */
export function requireRole(auth: BearerAuth | undefined, request: IncomingMessage, response: ServerResponse, role: Role): boolean {
  if (auth === undefined) return true;
  const { result } = auth.check(request.headers.authorization, role);
  if (result === 'ok') return true;
  request.resume();
  if (result !== 'forbidden') response.setHeader('www-authenticate', 'Bearer');
  const code = result === 'forbidden' ? 'forbidden' : 'unauthenticated';
  sendJson(response, result === 'forbidden' ? 403 : 401, { error: { code, message: refusalMessage(result, role) } });
  return false;
}

export interface StatusPageOptions {
  readonly store: FlagStore;
  readonly registry: CohortRegistry;
  readonly guardian: RolloutGuardian;
  readonly auth: BearerAuth | undefined;
  readonly log: (line: string) => void;
  /** One history point per this much event time (default about a minute). */
  readonly historyPointMs?: number;
}

export class StatusPage {
  readonly history: RolloutHistory;
  private readonly auth: BearerAuth | undefined;
  private readonly files = new Map<string, Buffer>();
  private readonly missing: string | undefined;
  private readonly stopListening: () => void;
  private readonly unwatch: () => void;

  constructor(options: StatusPageOptions) {
    this.auth = options.auth;
    this.history = new RolloutHistory({ registry: options.registry, pointMs: options.historyPointMs });
    const absent: string[] = [];
    for (const { file } of Object.values(ASSETS)) {
      try {
        this.files.set(file, readFileSync(new URL(file, ASSET_DIR)));
      } catch {
        absent.push(file);
      }
    }
    // A build that forgot to copy the files still serves everything else.
    this.missing =
      absent.length === 0
        ? undefined
        : `the status page's ${absent.join(', ')} are missing from ${ASSET_DIR.pathname}; rebuild with npm run build`;
    if (this.missing !== undefined) options.log(this.missing);
    this.stopListening = options.guardian.addListener({ tick: (tick) => this.history.record(tick) });
    this.unwatch = options.store.watch((event) => {
      if (event.type === 'change')
        this.history.retain((flagKey) => event.snapshot.parsed.definitions.has(flagKey) || event.snapshot.parsed.invalid.has(flagKey));
    });
  }

  /** Whether `route` answers this request. */
  handles(method: string | undefined, path: string): boolean {
    return (method === 'GET' || method === 'HEAD') && (ASSETS[path] !== undefined || path === '/api/v1/history');
  }

  route(request: IncomingMessage, response: ServerResponse, url: URL): void {
    const asset = ASSETS[url.pathname];
    if (asset !== undefined) return this.serveAsset(request, response, asset.file, asset.type);
    if (!requireRole(this.auth, request, response, 'read')) return;
    const flag = url.searchParams.get('flag') ?? undefined;
    const sinceText = url.searchParams.get('since');
    const sinceMs = sinceText === null ? undefined : Number(sinceText);
    if (sinceMs !== undefined && !Number.isFinite(sinceMs))
      return sendJson(response, 400, {
        error: {
          code: 'bad_request',
          message: `since must be milliseconds since the epoch, such as since=${Date.UTC(2026, 10, 30)}; got "${sinceText}"`,
        },
      });
    sendJson(response, 200, this.history.view({ flag, sinceMs }));
  }

  close(): void {
    this.stopListening();
    this.unwatch();
  }

  private serveAsset(request: IncomingMessage, response: ServerResponse, file: string, type: string): void {
    const body = this.files.get(file);
    if (body === undefined) {
      response.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' }).end(`${this.missing ?? 'status page unavailable'}\n`);
      return;
    }
    response.writeHead(200, {
      'content-type': type,
      'content-length': body.byteLength,
      'content-security-policy': STATUS_PAGE_CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
      'cache-control': 'no-cache',
    });
    response.end(request.method === 'HEAD' ? undefined : body);
  }
}
