import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Timeouts catch hangs, not slowness: no test asserts how fast the machine is, and on a
    // shared 2-core machine a busy neighbour can make a real redis-server or Prometheus slow
    // to answer. (On 2 cores vitest runs one file at a time by default: maxWorkers = cores - 1.)
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
