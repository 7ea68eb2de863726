import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Timeouts catch hangs, not slowness: no test asserts how fast the machine is, and on a
    // shared 2-core machine a busy neighbour can make a real redis-server or Prometheus slow
    // to answer.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // vitest's default (cores - 1) runs one file at a time on 2 cores; much of the suite waits
    // on real servers and child processes, so two files at once use both cores.
    maxWorkers: 2,
  },
});
