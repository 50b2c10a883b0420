import { defineConfig } from 'vitest/config';

// Unit suites run in parallel worker threads; integration suites start real server processes
// on loopback addresses of their own, so they can run beside the unit suites.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
