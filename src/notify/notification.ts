// What a notification says, whatever carries it: the event (type, flag, verdict, reason,
// evidence, time and an id derived from what it is about, so the same rollback judged twice is
// one event), the two bodies webhooks get (generic JSON and Slack-compatible), and the
// signature a receiver checks them by.
import { createHash, createHmac } from 'node:crypto';

export const NOTIFICATION_TYPES = [
  'warning',
  'breach-suspected',
  'rollback',
  'health-check-failed',
  'plan-step-advanced',
  'plan-held',
  'plan-completed',
] as const;
export type NotificationType = (typeof NOTIFICATION_TYPES)[number];

export interface NotificationEvent {
  /** Derived from what the event is about: the same decision always has the same id. */
  readonly id: string;
  readonly type: NotificationType;
  /** The flag it is about; undefined for a health check that covers every flag. */
  readonly flag: string | undefined;
  /** The guardian's verdict at the time, where there is one. */
  readonly verdict: string | undefined;
  readonly reason: string;
  /** The numbers behind it (for a rollback: what the audit entry keeps). */
  readonly evidence: Readonly<Record<string, unknown>>;
  readonly atMs: number;
  /** Decided in dry run: nothing was written. */
  readonly dryRun: boolean;
}

/** Header names of a signed delivery. */
export const SIGNATURE_HEADER = 'x-rollout-guardian-signature';
export const TIMESTAMP_HEADER = 'x-rollout-guardian-timestamp';
export const EVENT_HEADER = 'x-rollout-guardian-event';
export const EVENT_ID_HEADER = 'x-rollout-guardian-event-id';

/** `evt_` and 24 hex digits of SHA-256 over the parts that identify the event. */
export function eventId(type: NotificationType, ...parts: readonly (string | number | undefined)[]): string {
  return `evt_${createHash('sha256')
    .update(JSON.stringify([type, ...parts]))
    .digest('hex')
    .slice(0, 24)}`;
}

/** `sha256=<hex>`: HMAC-SHA256 of `<timestamp>.<body>`, as Stripe signs (the timestamp in seconds). */
export function signature(secret: string, timestampSeconds: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestampSeconds}.${body}`).digest('hex')}`;
}

const TITLES: Record<NotificationType, string> = {
  warning: 'Warning level crossed',
  'breach-suspected': 'Breach suspected',
  rollback: 'Rolled back',
  'health-check-failed': 'Health check failed',
  'plan-step-advanced': 'Plan step advanced',
  'plan-held': 'Plan held',
  'plan-completed': 'Plan completed',
};

const EMOJI: Record<NotificationType, string> = {
  warning: ':warning:',
  'breach-suspected': ':eyes:',
  rollback: ':rotating_light:',
  'health-check-failed': ':x:',
  'plan-step-advanced': ':arrow_up:',
  'plan-held': ':pause_button:',
  'plan-completed': ':white_check_mark:',
};

/** The treatment's and baseline's rates and the limits, where the evidence has them. */
export function ratesAndLimits(
  evidence: Readonly<Record<string, unknown>>,
): { rates: Record<string, unknown>; limits: Record<string, unknown> } | undefined {
  const treatment = record(evidence.treatment);
  const policy = record(evidence.policy);
  if (treatment === undefined && policy === undefined) return undefined;
  const cohort = (c: Record<string, unknown> | undefined) =>
    c === undefined ? undefined : { variant: c.variant, samples: c.samples, errorRate: c.errorRate, p95Ms: c.p95Ms, p99Ms: c.p99Ms };
  return {
    rates: { treatment: cohort(treatment), baseline: cohort(record(evidence.baseline)) },
    limits:
      policy === undefined
        ? {}
        : {
            maxErrorRate: policy.maxErrorRate,
            maxP95Ms: policy.maxP95Ms,
            maxP99Ms: policy.maxP99Ms,
            sustainForMs: policy.sustainForMs,
            warn: policy.warn,
          },
  };
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** The generic JSON body. */
export function genericBody(event: NotificationEvent): string {
  return JSON.stringify({
    id: event.id,
    type: event.type,
    time: new Date(event.atMs).toISOString(),
    flag: event.flag ?? null,
    verdict: event.verdict ?? null,
    reason: event.reason,
    dryRun: event.dryRun,
    ...ratesAndLimits(event.evidence),
    evidence: event.evidence,
    source: 'rollout-guardian',
  });
}

/** Slack's mrkdwn treats &, < and > as markup: flag keys and reasons are user input. */
function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}\u2026`;
}

const pct = (x: unknown): string => (typeof x === 'number' && Number.isFinite(x) ? `${(x * 100).toFixed(2)}%` : '-');
const ms = (x: unknown): string => (typeof x === 'number' && Number.isFinite(x) ? `${Math.round(x)} ms` : '-');

/** A Slack-compatible body (incoming webhooks, and chat tools that take Slack's format): `text` plus Block Kit blocks. */
export function slackBody(event: NotificationEvent): string {
  const flag = event.flag === undefined ? '' : ` \`${escapeSlack(event.flag)}\``;
  const title = `${TITLES[event.type]}${event.flag === undefined ? '' : `: ${event.flag}`}${event.dryRun ? ' (dry run)' : ''}`;
  const text = `${EMOJI[event.type]} ${TITLES[event.type]}${flag}${event.dryRun ? ' (dry run)' : ''}: ${escapeSlack(event.reason)}`;
  const blocks: unknown[] = [
    { type: 'header', text: { type: 'plain_text', text: clip(title, 150) } },
    { type: 'section', text: { type: 'mrkdwn', text: clip(escapeSlack(event.reason), 3000) } },
  ];
  const numbers = ratesAndLimits(event.evidence);
  const treatment = record(numbers?.rates.treatment);
  if (numbers !== undefined && treatment !== undefined) {
    const baseline = record(numbers.rates.baseline);
    const limits = numbers.limits;
    blocks.push({
      type: 'section',
      fields: [
        {
          type: 'mrkdwn',
          text: `*Error rate*\n${pct(treatment.errorRate)} (baseline ${pct(baseline?.errorRate)}, limit ${pct(limits.maxErrorRate)})`,
        },
        { type: 'mrkdwn', text: `*P95*\n${ms(treatment.p95Ms)} (baseline ${ms(baseline?.p95Ms)}, limit ${ms(limits.maxP95Ms)})` },
        { type: 'mrkdwn', text: `*P99*\n${ms(treatment.p99Ms)} (baseline ${ms(baseline?.p99Ms)}, limit ${ms(limits.maxP99Ms)})` },
        { type: 'mrkdwn', text: `*Verdict*\n${escapeSlack(event.verdict ?? '-')}` },
      ],
    });
  }
  blocks.push({
    type: 'context',
    elements: [{ type: 'mrkdwn', text: `${new Date(event.atMs).toISOString()} \u00b7 ${event.type} \u00b7 ${event.id}` }],
  });
  return JSON.stringify({ text: clip(text, 3000), blocks });
}
