import { defineConfig } from 'vitest/config';

// The container suite (npm run test:containers): builds deploy/Dockerfile and runs containers
// through testcontainers. deploy/podman/run-container-tests.sh provides the engine (podman's
// Docker-compatible API) where there is no Docker daemon, as in CI.
export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/containers/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 600_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
