// One webhook receiver's delivery: a bounded queue sent in order, one request at a time,
// retried with capped exponential backoff and jitter on network errors, 5xx and 429 (waiting
// at least as long as Retry-After says) until the event is maxAgeMs old; other 4xx answers
// are final. All times are on the injected clock; the real timer that wakes it is unref()'d,
// and nothing here rejects: problems are counted and reported through `onProblem`.
import { context } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import type { Clock } from '../core/clock.js';
import {
  EVENT_HEADER,
  EVENT_ID_HEADER,
  type NotificationEvent,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  genericBody,
  signature,
  slackBody,
} from './notification.js';
import type { WebhookTargetConfig } from './notify-config.js';

export interface DeliveryPolicy {
  readonly clock: Clock;
  /** Uniform in [0, 1): the jitter's source, injectable so tests replay. */
  readonly random: () => number;
  /** Events held per target (default 1,000); what arrives beyond is dropped and counted. */
  readonly maxQueue: number;
  /** An event still undelivered this long after it was queued is given up (failed). */
  readonly maxAgeMs: number;
  /** The first retry's wait; each further one doubles, up to maxBackoffMs. */
  readonly baseBackoffMs: number;
  readonly maxBackoffMs: number;
  /** One attempt's limit, in real time (a network matter, not the guardian's clock). */
  readonly timeoutMs: number;
  /** A problem of `kind` (dropped, expired, http-404, network, ...), for logging once per kind. */
  readonly onProblem: (kind: string, message: string) => void;
}

/** Running totals per target: each event ends sent, failed (refused, or too old) or dropped (queue full); retried counts attempts that will be repeated. */
export interface DeliveryCounts {
  sent: number;
  failed: number;
  dropped: number;
  retried: number;
}

interface Pending {
  readonly event: NotificationEvent;
  readonly body: string;
  readonly queuedAtMs: number;
  attempts: number;
  nextAtMs: number;
}

type Outcome =
  | { readonly kind: 'sent' }
  | { readonly kind: 'refused'; readonly status: number }
  | { readonly kind: 'retry'; readonly problem: string; readonly message: string; readonly retryAfterMs: number | undefined };

/** Retry-After in ms: delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, nowMs: number): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

export class WebhookTarget {
  readonly name: string;
  readonly counts: DeliveryCounts = { sent: 0, failed: 0, dropped: 0, retried: 0 };
  private readonly config: WebhookTargetConfig;
  private readonly policy: DeliveryPolicy;
  private readonly queue: Pending[] = [];
  private busy = false;
  private current: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(config: WebhookTargetConfig, policy: DeliveryPolicy) {
    this.name = config.name;
    this.config = config;
    this.policy = policy;
  }

  /** Events waiting to be delivered, the one being sent included. */
  get queued(): number {
    return this.queue.length;
  }

  accepts(event: NotificationEvent): boolean {
    return this.config.events === undefined || this.config.events.has(event.type);
  }

  /** Queues the event and starts sending; O(1) but for rendering the body. Never throws. */
  enqueue(event: NotificationEvent): void {
    if (this.closed) return;
    if (this.queue.length >= this.policy.maxQueue) {
      this.counts.dropped++;
      this.policy.onProblem('dropped', `queue full (${this.policy.maxQueue} events waiting): ${event.type} ${event.id} dropped`);
      return;
    }
    const nowMs = this.policy.clock.now();
    const body = this.config.format === 'slack' ? slackBody(event) : genericBody(event);
    this.queue.push({ event, body, queuedAtMs: nowMs, attempts: 0, nextAtMs: nowMs });
    void this.pump();
  }

  /** Sends what is due now on the clock; resolves when the queue is empty or waiting for its next retry. Never rejects. */
  pump(): Promise<void> {
    if (this.busy) return this.current ?? Promise.resolve();
    const run = this.drain();
    // drain() may finish without awaiting anything: only a run still going is remembered.
    if (this.busy) this.current = run;
    return run;
  }

  /** Stops sending and lets an attempt in flight finish; what is queued is not sent. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.current;
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      for (;;) {
        if (this.closed) return;
        const head = this.queue[0];
        if (head === undefined) return;
        const nowMs = this.policy.clock.now();
        if (nowMs - head.queuedAtMs >= this.policy.maxAgeMs) {
          this.queue.shift();
          this.counts.failed++;
          this.policy.onProblem(
            'expired',
            `${head.event.type} ${head.event.id} given up after ${head.attempts} attempts over ${Math.round((nowMs - head.queuedAtMs) / 1000)} s`,
          );
          continue;
        }
        if (head.nextAtMs > nowMs) {
          this.wakeIn(head.nextAtMs - nowMs);
          return;
        }
        head.attempts++;
        const outcome = await this.attempt(head);
        if (outcome.kind === 'sent') {
          this.queue.shift();
          this.counts.sent++;
        } else if (outcome.kind === 'refused') {
          // A 4xx other than 429 will not change by asking again: the event is failed.
          this.queue.shift();
          this.counts.failed++;
          this.policy.onProblem(
            `http-${outcome.status}`,
            `${head.event.type} ${head.event.id} refused with HTTP ${outcome.status}; not retried`,
          );
        } else {
          this.counts.retried++;
          this.policy.onProblem(
            outcome.problem,
            `${outcome.message}; retrying with backoff for up to ${Math.round(this.policy.maxAgeMs / 60_000)} min`,
          );
          head.nextAtMs = this.policy.clock.now() + this.backoffMs(head.attempts, outcome.retryAfterMs);
        }
      }
    } catch (err) {
      this.policy.onProblem('internal', `delivery stopped by an internal error: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      this.busy = false;
      this.current = undefined;
    }
  }

  /** Capped exponential backoff with jitter (half fixed, half random, so retries never bunch at zero), at least Retry-After. */
  private backoffMs(attempts: number, retryAfter: number | undefined): number {
    const capped = Math.min(this.policy.maxBackoffMs, this.policy.baseBackoffMs * 2 ** Math.min(30, attempts - 1));
    const jittered = capped / 2 + (capped / 2) * this.policy.random();
    return retryAfter === undefined ? jittered : Math.max(jittered, retryAfter);
  }

  private wakeIn(delayMs: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        void this.pump();
      },
      Math.max(0, Math.min(delayMs, 2_147_483_647)),
    );
    this.timer.unref();
  }

  private async attempt(pending: Pending): Promise<Outcome> {
    const headers: Record<string, string> = {
      ...this.config.headers,
      'content-type': 'application/json',
      'user-agent': 'rollout-guardian',
      [EVENT_HEADER]: pending.event.type,
      [EVENT_ID_HEADER]: pending.event.id,
    };
    const secret = this.config.secret;
    if (secret !== undefined) {
      const timestamp = Math.floor(this.policy.clock.now() / 1000);
      headers[TIMESTAMP_HEADER] = String(timestamp);
      headers[SIGNATURE_HEADER] = signature(secret, timestamp, pending.body);
    }
    let response: Response;
    try {
      // Our own requests are never measured as the application's.
      response = await context.with(suppressTracing(context.active()), () =>
        fetch(this.config.url, {
          method: 'POST',
          headers,
          body: pending.body,
          redirect: 'manual',
          signal: AbortSignal.timeout(this.policy.timeoutMs),
        }),
      );
    } catch (err) {
      const cause = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
      return {
        kind: 'retry',
        problem: 'network',
        message: `${pending.event.type} ${pending.event.id} not delivered: ${cause}`,
        retryAfterMs: undefined,
      };
    }
    // The answer's body is not needed, and a receiver's could be any size: let it go unread.
    await response.body?.cancel().catch(() => undefined);
    const status = response.status;
    if (status >= 200 && status < 300) return { kind: 'sent' };
    if (status === 429 || status >= 500) {
      return {
        kind: 'retry',
        problem: `http-${status}`,
        message: `${pending.event.type} ${pending.event.id} answered HTTP ${status}`,
        retryAfterMs: retryAfterMs(response.headers.get('retry-after'), this.policy.clock.now()),
      };
    }
    return { kind: 'refused', status };
  }
}
