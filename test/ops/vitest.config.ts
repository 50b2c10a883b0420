import { defineConfig } from 'vitest/config';

// The ops suite (npm run test:ops): checks that need tools from outside npm (promtool and a real
// Prometheus from Debian's `prometheus` package, kubectl for kustomize). `bash
// deploy/ci/install-tools.sh` installs them; CI runs it before this suite. Files run one at a
// time: the Prometheus test starts a cluster of real processes.
export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/ops/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
