// The notification file `serve --notify FILE` reads: webhook targets (URL, body format, secret,
// event filter, headers) as YAML or JSON, validated with zod, every problem located as
// `file:line:col: path: expected ..., got ...`.
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { parseDurationMs } from '../core/duration.js';
import { type SchemaIssue, describeIssue, toSchemaIssues } from '../core/parse-flags.js';
import { NOTIFICATION_TYPES, type NotificationType } from './notification.js';

const duration = z
  .union([z.string(), z.number()], { error: 'expected a duration such as 30s, 5m or 1h' })
  .refine((d) => parseDurationMs(d) !== undefined, {
    error: 'expected a duration such as 30s, 5m or 1h',
  });

/** Headers we set ourselves: a target may not replace them. */
const RESERVED_HEADER = /^(content-type|content-length|host|x-rollout-guardian-.*)$/i;

const targetSchema = z.strictObject({
  /** The `target` label in /metrics and the name in logs (default: the URL's host). URLs can hold secrets (Slack's do), so they are never logged. */
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,64}$/, { error: 'expected a name of letters, digits, _ . : - (at most 64)' })
    .optional(),
  url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }),
  format: z.enum(['generic', 'slack'], { error: 'expected generic or slack' }).default('generic'),
  secret: z.string().min(16, { error: 'expected a secret of at least 16 characters' }).optional(),
  /** The name of an environment variable holding the secret, so the file need not. */
  secretEnv: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'expected the name of an environment variable' })
    .optional(),
  events: z
    .array(z.enum(NOTIFICATION_TYPES, { error: `expected one of ${NOTIFICATION_TYPES.join(', ')}` }))
    .min(1, { error: 'expected at least one event type (leave events out for all)' })
    .optional(),
  headers: z
    .record(
      z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { error: 'expected an HTTP header name' }),
      z.string().refine((v) => !/[\r\n]/.test(v), { error: 'expected a header value on one line' }),
    )
    .refine((h) => Object.keys(h).every((k) => !RESERVED_HEADER.test(k)), {
      error: 'expected no content-type, content-length, host or x-rollout-guardian-* header: those are set by the notifier',
    })
    .optional(),
  /** Events held for this target while it is unreachable; beyond it new events are dropped and counted. */
  maxQueue: z.int().min(1).max(100_000).optional(),
});

export const notifyFileSchema = z
  .strictObject({
    targets: z.array(targetSchema, { error: 'expected a list of webhook targets' }).min(1, { error: 'expected at least one target' }),
    /** How long an event is retried before it is given up (default 1h). */
    maxAge: duration.optional(),
    /** The longest wait between two attempts (default 1m). */
    maxBackoff: duration.optional(),
    /** One attempt's limit (default 10s). */
    timeout: duration.optional(),
  })
  .superRefine((file, ctx) => {
    const seen = new Map<string, number>();
    file.targets.forEach((target, i) => {
      if (target.secret !== undefined && target.secretEnv !== undefined)
        ctx.addIssue({ code: 'custom', path: ['targets', i, 'secretEnv'], message: 'expected secret or secretEnv, not both' });
      const name = target.name ?? hostOf(target.url);
      const first = seen.get(name);
      if (first !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['targets', i, target.name === undefined ? 'url' : 'name'],
          message: `expected a name of its own: targets[${first}] is also "${name}" (give each target a distinct name)`,
        });
      else seen.set(name, i);
    });
  });

export interface WebhookTargetConfig {
  readonly name: string;
  readonly url: string;
  readonly format: 'generic' | 'slack';
  readonly secret: string | undefined;
  /** Read by the composition root from the environment into `secret`. */
  readonly secretEnv: string | undefined;
  /** Undefined: every type. */
  readonly events: ReadonlySet<NotificationType> | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly maxQueue: number | undefined;
}

export interface NotifyConfig {
  readonly targets: readonly WebhookTargetConfig[];
  readonly maxAgeMs: number | undefined;
  readonly maxBackoffMs: number | undefined;
  readonly timeoutMs: number | undefined;
}

export class NotifyConfigError extends Error {
  override readonly name = 'NotifyConfigError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function position(lines: LineCounter, offset: number): string {
  const { line, col } = lines.linePos(offset);
  return `${line}:${col}`;
}

/** Parses and validates a notification file; throws NotifyConfigError naming every problem and where it is. */
export function parseNotifyConfig(text: string, file: string): NotifyConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0)
    throw new NotifyConfigError(doc.errors.map((e) => `${file}:${position(lines, e.pos[0])}: syntax error: ${e.message.split('\n')[0]}`));
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new NotifyConfigError([`${file}:1:1: ${(err as Error).message}`]);
  }
  const parsed = notifyFileSchema.safeParse(data ?? {});
  if (!parsed.success) {
    const locate = (issue: SchemaIssue): string => {
      for (let n = issue.path.length; n >= 0; n--) {
        const node = n === 0 ? doc.contents : doc.getIn(issue.path.slice(0, n), true);
        const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
        if (range !== undefined) return position(lines, range[0]);
      }
      return '1:1';
    };
    throw new NotifyConfigError(toSchemaIssues(parsed.error, data).map((issue) => `${file}:${locate(issue)}: ${describeIssue(issue)}`));
  }
  const f = parsed.data;
  return {
    targets: f.targets.map((t) => ({
      name: t.name ?? hostOf(t.url),
      url: t.url,
      format: t.format,
      secret: t.secret,
      secretEnv: t.secretEnv,
      events: t.events === undefined ? undefined : new Set(t.events),
      headers: t.headers ?? {},
      maxQueue: t.maxQueue,
    })),
    maxAgeMs: f.maxAge === undefined ? undefined : parseDurationMs(f.maxAge),
    maxBackoffMs: f.maxBackoff === undefined ? undefined : parseDurationMs(f.maxBackoff),
    timeoutMs: f.timeout === undefined ? undefined : parseDurationMs(f.timeout),
  };
}

/** The config with each `secretEnv` read from `env` (given by the composition root); throws NotifyConfigError naming any that is unset. */
export function resolveSecrets(config: NotifyConfig, env: Readonly<Record<string, string | undefined>>, file: string): NotifyConfig {
  const problems: string[] = [];
  const targets = config.targets.map((target) => {
    if (target.secretEnv === undefined) return target;
    const secret = env[target.secretEnv];
    if (secret === undefined || secret.length < 16) {
      problems.push(
        `${file}: target "${target.name}" takes its secret from $${target.secretEnv}, which is ${secret === undefined ? 'not set' : 'shorter than 16 characters'}; export ${target.secretEnv}=<secret> before serve`,
      );
      return target;
    }
    return { ...target, secret };
  });
  if (problems.length > 0) throw new NotifyConfigError(problems);
  return { ...config, targets };
}
