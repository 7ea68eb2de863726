// The operator commands' one way to act: on the store itself, or with --server (or
// $ROLLOUT_GUARDIAN_SERVER) through a running serve's control API, as the token in
// $ROLLOUT_GUARDIAN_TOKEN. Both print the same report and exit with the same codes.
import type { Command } from 'commander';
import { type ActionOutcome, type ActionRequest, ActionRefusedError, runOperatorAction } from '../deploy/operator-actions.js';
import type { Attribution } from '../stores/flag-store.js';
import { CliError, usageError } from './cli-error.js';
import { jsonText } from './format.js';
import { withStore } from './store-location.js';
import type { CommandContext, MutationOptions } from './commands/command-context.js';
import { TOKEN_ENV_VAR } from './commands/serve-command.js';
import { SERVER_ENV_VAR } from './commands/status-command.js';


export interface ActionOptions extends MutationOptions {
  readonly server?: string;
}

export function withActionServerOption(command: Command): Command {
  return command.option('--server <url>', `act through this rollout-guardian serve's control API instead of the store, as the token in $${TOKEN_ENV_VAR} (default: $${SERVER_ENV_VAR})`);
}

/** The serve to act through, or undefined to act on the store; --server and --store together are a usage error. */
export function actionServer(options: ActionOptions, ctx: CommandContext): string | undefined {
  if (options.server !== undefined && options.store !== undefined) {
    throw usageError(`give --server ${options.server} or --store ${options.store}, not both: with --server the serve acts on its own store`);
  }
  if (options.server !== undefined) return options.server;
  return options.store === undefined ? ctx.io.env[SERVER_ENV_VAR] || undefined : undefined;
}

/** What the control API answers (docs/control-api.md). */
interface ActionAnswer {
  readonly message: string;
  readonly report: ActionOutcome['report'];
}

interface ErrorAnswer {
  readonly error?: { readonly message?: string };
}

/** The control API's body for `request`: the fields a caller would send by hand. */
function requestBody(request: ActionRequest, by: { readonly actor?: string; readonly reason?: string }): Record<string, unknown> {
  const body: Record<string, unknown> = { ...(by.reason !== undefined ? { reason: by.reason } : {}), ...(by.actor !== undefined ? { actor: by.actor } : {}) };
  if (request.action === 'deploy') {
    body.strategy = request.strategy;
    if (request.custom !== undefined) {
      body.steps = request.custom.steps;
      body.stepDurationMs = request.custom.stepDurationMs;
    }
    if (request.dryRun === true) body.dryRun = true;
  } else if (request.action === 'override') {
    body.variant = request.variant;
  }
  return body;
}

async function remoteAction(server: string, token: string | undefined, flagKey: string, request: ActionRequest, by: { actor?: string; reason?: string }): Promise<ActionAnswer> {
  const url = `${server.replace(/\/+$/, '')}/api/v1/flags/${encodeURIComponent(flagKey)}/${request.action}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      signal: AbortSignal.timeout(30_000),
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(requestBody(request, by)),
    });
  } catch (err) {
    throw new CliError(`cannot reach rollout-guardian serve at ${server} (${(err as Error).message}); start it with rollout-guardian serve, or leave out --server (and $${SERVER_ENV_VAR}) to act on the store`);
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliError(`${url} answered ${response.status} with something that is not JSON; is ${server} a rollout-guardian serve?`);
  }
  if (!response.ok) {
    const message = (parsed as ErrorAnswer).error?.message ?? `${url} answered ${response.status}`;
    const hint = response.status === 401 ? ` (set $${TOKEN_ENV_VAR} to a token serve's --token-file lists with the operate role)` : '';
    throw new CliError(`${message}${hint}`);
  }
  return parsed as ActionAnswer;
}

/**
 * Runs `request` on `flagKey` (through the server or on the store) and prints its report.
 * Returns the audit entry's presence: whether something was written.
 */
export async function performAction(ctx: CommandContext, options: ActionOptions, flagKey: string, request: ActionRequest, by: Attribution): Promise<boolean> {
  const server = actionServer(options, ctx);
  let answer: ActionAnswer;
  if (server !== undefined) {
    const token = ctx.io.env[TOKEN_ENV_VAR] || undefined;
    // With a token the server records the token's name; an actor is sent only when asked for.
    answer = await remoteAction(server, token, flagKey, request, { actor: token === undefined ? by.actor : options.actor, reason: request.action === 'deploy' && options.reason === undefined ? undefined : by.reason });
  } else {
    answer = await withStore(options.store, ctx.io, async (store) => {
      try {
        return await runOperatorAction(store, ctx.io.clock, flagKey, request, by);
      } catch (err) {
        if (err instanceof ActionRefusedError) throw new CliError(err.message);
        throw err;
      }
    });
  }
  ctx.io.stdout.write(options.json ? jsonText(answer.report) : answer.message);
  return 'entry' in answer.report && answer.report.entry !== null;
}
