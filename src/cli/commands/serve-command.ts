// `serve`: the guardian and the plans as a long-running process on a store, with /metrics,
// /healthz, /readyz, /api/status and an OTLP/HTTP traces endpoint. SIGTERM or SIGINT stops it
// cleanly; every plan's state is in the store, so a restart resumes where it left off.
import { type Command, InvalidArgumentError } from 'commander';
import { RolloutServer } from '../../server/rollout-server.js';
import { FLAGS_ENV_VAR, DEFAULT_FLAGS_FILE } from '../../stores/file-store.js';
import { durationArgument } from '../arguments.js';
import { openLocation } from '../store-location.js';
import type { CommandContext, StoreOptions } from './command-context.js';
import { withStoreOption } from './command-context.js';

interface ServeOptions extends StoreOptions {
  readonly port: number;
  readonly host: string;
  readonly slot: number;
  readonly dryRun?: boolean;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`expected a port from 0 to 65535 (0 picks a free one), got "${text}"`);
  return port;
}

/** Slots from 100 ms (tests, replays) to an hour: a guardian that judges less often than that is not watching. */
const parseSlot = durationArgument({ minMs: 100, maxMs: 3_600_000, example: '5s' });

export function registerServe(program: Command, ctx: CommandContext): void {
  withStoreOption(
    program
      .command('serve')
      .description('run the guardian and the plans on a store; serves /metrics, /healthz, /readyz, /api/status and POST /v1/traces (OTLP/HTTP JSON)')
      .option('--port <port>', 'port to listen on (0 picks a free one)', parsePort, 8080)
      .option('--host <address>', 'address to listen on', '127.0.0.1')
      .option('--slot <duration>', "the guardian's slot: how often it judges", parseSlot, 5_000)
      .option('--dry-run', 'judge and report rollbacks and plan steps without writing them'),
  ).action(async (options: ServeOptions) => {
    const location = options.store ?? (ctx.io.env[FLAGS_ENV_VAR] || DEFAULT_FLAGS_FILE);
    // Watching: serve follows edits to the file and changes other instances make in Redis.
    const store = openLocation(location, options.store !== undefined ? '--store' : FLAGS_ENV_VAR, ctx.io, true);
    let server: RolloutServer;
    try {
      server = await RolloutServer.start({
        store,
        port: options.port,
        host: options.host,
        clock: ctx.io.clock,
        slotMs: options.slot,
        dryRun: options.dryRun,
        log: (line) => ctx.io.stderr.write(`${new Date(ctx.io.clock.now()).toISOString()} ${line}\n`),
      });
    } catch (err) {
      // A store that never connected still retries in the background: close it, or the
      // process would print its error and never exit.
      await store.close().catch(() => undefined);
      throw err;
    }
    ctx.io.stdout.write(`rollout-guardian serve on http://${options.host}:${server.port} (store ${store.source}${options.dryRun ? ', dry run' : ''})\n`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        ctx.io.stderr.write(`${signal}: stopping\n`);
        resolve();
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    await server.close();
    ctx.io.stdout.write('stopped\n');
  });
}
