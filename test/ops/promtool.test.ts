// promtool (from Debian's `prometheus` package) validates the alert rules, runs their unit tests
// (deploy/prometheus/riffle-alerts.test.yml) and checks the docker-compose Prometheus config.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cluster.js';
import { requireTool } from './tools.js';

const run = promisify(execFile);
const PROMETHEUS_DIR = path.join(REPO_ROOT, 'deploy', 'prometheus');
const scratch = mkdtempSync(path.join(os.tmpdir(), 'riffle-promtool-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('promtool', () => {
  const promtool = requireTool('promtool');

  it('accepts the alert rules', async () => {
    const { stdout } = await run(promtool, ['check', 'rules', 'riffle-alerts.yml'], { cwd: PROMETHEUS_DIR });
    expect(stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('passes the alert rules unit tests: each alert fires on its condition and only then', async () => {
    const { stdout } = await run(promtool, ['test', 'rules', 'riffle-alerts.test.yml'], { cwd: PROMETHEUS_DIR });
    expect(stdout).toContain('SUCCESS');
  });

  it('accepts the docker-compose Prometheus config with its rule file', async () => {
    // The config names the rule file where docker-compose mounts it; point it at the repo's copy.
    const config = readFileSync(path.join(PROMETHEUS_DIR, 'prometheus.yml'), 'utf8').replace('/etc/prometheus/riffle-alerts.yml', path.join(PROMETHEUS_DIR, 'riffle-alerts.yml'));
    const file = path.join(scratch, 'prometheus.yml');
    writeFileSync(file, config);
    const { stdout } = await run(promtool, ['check', 'config', file]);
    expect(stdout).toContain('is valid prometheus config file syntax');
    expect(stdout).toMatch(/SUCCESS: \d+ rules found/);
  });
});
