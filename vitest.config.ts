import { defineConfig } from 'vitest/config';

// Two projects. Unit suites (simulators, codecs, state machines, in-process servers) run in
// parallel workers. Integration suites start clusters of real server processes whose timing
// (heartbeats, session timeouts, elections) must not starve on a 2-core machine, so their files
// run one at a time; each file uses loopback addresses of its own.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: ['test/integration/**', 'test/ops/**', 'test/containers/**'] },
      },
      {
        extends: true,
        test: { name: 'integration', include: ['test/integration/**/*.test.ts'], fileParallelism: false },
      },
    ],
  },
});
