// A real redis-server for tests, from PATH, on a free port, with its data in a temp folder named
// rollout-guardian-test-redis-* (CI's cleanup trap finds strays by that name). It can be stopped
// and started again on the same port, keeping its data, to stage an outage.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { type Socket, createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';

export interface RedisServerOptions {
  /** Serve TLS only, on the port, with these files (PEM paths). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile: string };
  readonly password?: string;
}

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** One PING: true when the server answers (NOAUTH counts: it is up, it wants a password). */
function answersPing(port: number, tls: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const socket: Socket = tls ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }) : createConnection({ host: '127.0.0.1', port });
    const done = (up: boolean): void => {
      socket.destroy();
      resolve(up);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once(tls ? 'secureConnect' : 'connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(/^(\+PONG|-NOAUTH)/.test(data.toString())));
  });
}

export class RedisServer {
  private process: ChildProcess | undefined;
  private output = '';

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly options: RedisServerOptions,
  ) {}

  /** Starts a server on a free port; fails with what to do when redis-server is not installed. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    if (spawnSync('redis-server', ['--version']).error !== undefined) {
      throw new Error('redis-server is not on PATH: run scripts/install-test-deps.sh (it installs Debian\'s redis-server package)');
    }
    const dir = await mkdtemp(join(tmpdir(), 'rollout-guardian-test-redis-'));
    const server = new RedisServer(await freePort(), dir, options);
    await server.resume();
    return server;
  }

  /** `redis://127.0.0.1:<port>`, with the key prefix when one is given. */
  url(prefix?: string): string {
    const scheme = this.options.tls ? 'rediss' : 'redis';
    const auth = this.options.password === undefined ? '' : `:${encodeURIComponent(this.options.password)}@`;
    return `${scheme}://${auth}127.0.0.1:${this.port}${prefix === undefined ? '' : `/?prefix=${encodeURIComponent(prefix)}`}`;
  }

  get running(): boolean {
    return this.process !== undefined;
  }

  /** Starts the server (again) on its port, with the data it saved when stopped. */
  async resume(): Promise<void> {
    if (this.process) return;
    const port = String(this.port);
    const args = [
      ...(this.options.tls
        ? ['--port', '0', '--tls-port', port, '--tls-cert-file', this.options.tls.certFile, '--tls-key-file', this.options.tls.keyFile, '--tls-ca-cert-file', this.options.tls.caFile, '--tls-auth-clients', 'no']
        : ['--port', port]),
      ...(this.options.password === undefined ? [] : ['--requirepass', this.options.password]),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--dir', this.dir,
      // Saves on SIGTERM, so a stop and start is an outage, not a data loss.
      '--shutdown-on-sigterm', 'save',
      // Keeps the command line (with the folder's name) visible to CI's cleanup trap.
      '--set-proc-title', 'no',
    ];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.process = child;
    this.output = '';
    child.stdout?.on('data', (data: Buffer) => (this.output += data.toString()));
    child.stderr?.on('data', (data: Buffer) => (this.output += data.toString()));
    let exited = false;
    child.once('exit', () => {
      exited = true;
      if (this.process === child) this.process = undefined;
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await answersPing(this.port, this.options.tls !== undefined))) {
      if (exited) throw new Error(`redis-server exited at start on port ${this.port}:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING on port ${this.port} within ${START_TIMEOUT_MS} ms:\n${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 10)); // poll interval, bounded by the deadline
    }
  }

  /** SIGTERM by PID; resolves once the process has exited (its data saved). */
  async stop(): Promise<void> {
    const child = this.process;
    if (child === undefined || child.pid === undefined) return;
    if (child.exitCode !== null || child.signalCode !== null) {
      this.process = undefined;
      return;
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid, 'SIGTERM');
    const timer = setTimeout(() => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    }, STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
    this.process = undefined;
  }

  /** Stops the server and removes its folder. */
  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
