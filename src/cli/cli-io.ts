// What the CLI touches of the outside world. main.ts fills it from the process; everything
// else receives it, so the program never reads process.* itself.
import type { Clock } from '../core/clock.js';

export interface TextSink {
  write(text: string): unknown;
}

export interface CliIo {
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Relative paths (--store, validate's file, flags.yaml) resolve against this folder. */
  readonly cwd: string;
  /** The wall clock: evaluation time and audit stamps. */
  readonly clock: Clock;
  /** The OS user, the default --actor; undefined when it cannot be read. */
  readonly username: string | undefined;
  readonly version: string;
}
