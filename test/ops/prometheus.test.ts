// A real Prometheus (Debian's `prometheus` package) with Riffle's own alert rules, scraping a
// cluster of real `riffle server` processes on loopback (127.0.21.1-4: three controller+broker
// nodes and one broker, laid out as `riffle dev --nodes 4` lays them out). It scrapes every
// node, evaluates every alert expression and every Grafana panel query without error, fires no
// alert while the cluster is healthy, and fires RiffleNodeDown and RiffleFencedBrokers once the
// broker is killed (kill -9). The test builds its cluster with the test helpers rather than
// `riffle dev` itself because `riffle dev` stops the whole cluster when one of its nodes dies.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { REPO_ROOT, runCli, startCluster, temporaryDir, waitFor, type TestCluster } from '../helpers/cluster.js';
import { requireTool } from './tools.js';

const SUBNET = '127.0.21';
const NODE_HTTP_PORT = 19644;
const PROMETHEUS_ADDRESS = `${SUBNET}.9:19090`;
const BROKER_ID = 4;
const RULES_FILE = path.join(REPO_ROOT, 'deploy', 'prometheus', 'riffle-alerts.yml');
const DASHBOARD_FILE = path.join(REPO_ROOT, 'deploy', 'grafana', 'dashboards', 'riffle-overview.json');

const data = temporaryDir('riffle-prometheus-');
let cluster: TestCluster;
let prometheus: ChildProcess | undefined;
let prometheusLog = '';

interface ApiAnswer<T> { status: string; data: T; error?: string }

async function api<T>(pathAndQuery: string): Promise<T> {
  const response = await fetch(`http://${PROMETHEUS_ADDRESS}${pathAndQuery}`, { signal: AbortSignal.timeout(5_000) });
  const body = (await response.json()) as ApiAnswer<T>;
  if (body.status !== 'success') throw new Error(`${pathAndQuery}: ${body.error ?? response.status}`);
  return body.data;
}

/** The docker-compose Prometheus config with this cluster's targets, fast intervals and the repo's rule file. */
function testConfig(): string {
  const config = parseYaml(readFileSync(path.join(REPO_ROOT, 'deploy', 'prometheus', 'prometheus.yml'), 'utf8')) as {
    global: Record<string, string>; rule_files: string[]; scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  };
  config.global = { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '900ms' };
  config.rule_files = [RULES_FILE];
  const job = config.scrape_configs.find((scrape) => scrape.job_name === 'riffle')!;
  job.static_configs = [{ targets: [1, 2, 3, 4].map((id) => `${SUBNET}.${id}:${NODE_HTTP_PORT}`) }];
  return stringifyYaml(config);
}

beforeAll(async () => {
  const prometheusBinary = requireTool('prometheus');
  cluster = await startCluster({ subnet: SUBNET, dataDir: data.dir, controllers: 3, brokers: 1 });
  const configFile = path.join(data.dir, 'prometheus.yml');
  writeFileSync(configFile, testConfig());
  prometheus = spawn(prometheusBinary, [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${path.join(data.dir, 'tsdb')}`,
    `--web.listen-address=${PROMETHEUS_ADDRESS}`,
    '--log.level=warn',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  prometheus.stdout!.on('data', (chunk: Buffer) => (prometheusLog += chunk.toString()));
  prometheus.stderr!.on('data', (chunk: Buffer) => (prometheusLog += chunk.toString()));
  await waitFor(async () => (await fetch(`http://${PROMETHEUS_ADDRESS}/-/ready`)).status === 200, { timeoutMs: 30_000, what: `Prometheus to start (log: ${prometheusLog.slice(-500)})` });
}, 120_000);

afterAll(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = new Promise((resolve) => prometheus!.once('exit', resolve));
    prometheus.kill('SIGTERM');
    const timer = setTimeout(() => prometheus!.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  await cluster?.stopAll();
  data.remove();
});

interface Target { labels: Record<string, string>; health: string; lastError: string }
interface Alert { labels: Record<string, string>; state: string }
interface VectorSample { metric: Record<string, string>; value: [number, string] }

function query(expression: string): Promise<{ resultType: string; result: VectorSample[] }> {
  return api(`/api/v1/query?query=${encodeURIComponent(expression)}`);
}

describe('Prometheus with the Riffle rules against a real cluster', () => {
  it('scrapes every node and loads the rules', async () => {
    const targets = await waitFor(async () => {
      const { activeTargets } = await api<{ activeTargets: Target[] }>('/api/v1/targets');
      return activeTargets.length === 4 && activeTargets.every((target) => target.health === 'up') ? activeTargets : undefined;
    }, { timeoutMs: 30_000, what: 'all four nodes scraped' });
    expect(targets.map((target) => target.labels.instance).sort()).toEqual([1, 2, 3, 4].map((id) => `${SUBNET}.${id}:${NODE_HTTP_PORT}`));
    expect(new Set(targets.map((target) => target.labels.job))).toEqual(new Set(['riffle']));
    // Each node's series carry its node id.
    const partitions = await waitFor(async () => {
      const { result } = await query('riffle_broker_partitions');
      return result.length === 4 ? result : undefined;
    }, { timeoutMs: 15_000, what: 'a riffle_broker_partitions series from every node' });
    expect(partitions.map((sample) => sample.metric.node).sort()).toEqual(['1', '2', '3', '4']);
    const active = await waitFor(async () => {
      const { result } = await query('sum(riffle_controller_active)');
      return result[0]?.value[1] === '1' ? result : undefined;
    }, { timeoutMs: 15_000, what: 'exactly one active controller' });
    expect(active).toHaveLength(1);
    const { groups } = await api<{ groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] }>('/api/v1/rules');
    const rules = groups.flatMap((group) => group.rules);
    expect(rules.length).toBeGreaterThanOrEqual(10);
    await waitFor(async () => {
      const { groups: current } = await api<{ groups: { rules: { health: string }[] }[] }>('/api/v1/rules');
      return current.flatMap((group) => group.rules).every((rule) => rule.health === 'ok');
    }, { timeoutMs: 15_000, what: 'every rule evaluated with health ok' });
  });

  it('evaluates every alert expression without error, and every dashboard query with data once there is traffic', async () => {
    const rules = (parseYaml(readFileSync(RULES_FILE, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] }).groups.flatMap((group) => group.rules);
    for (const rule of rules) await expect(query(rule.expr), rule.alert).resolves.toBeDefined();
    // Traffic for the throughput, latency and fsync panels: a topic written (acks=all, fsync before ack) and read.
    const bootstrap = ['--bootstrap', cluster.bootstrap];
    expect((await runCli(['topic', 'create', 'panels', '--partitions', '2', '--replication-factor', '3', ...bootstrap])).code).toBe(0);
    expect((await runCli(['produce', 'panels', '--acks', 'all', ...bootstrap], { input: 'one\ntwo\nthree\n' })).code).toBe(0);
    expect((await runCli(['consume', 'panels', '--from-beginning', '--max-messages', '3', ...bootstrap])).stdout.trim().split('\n')).toHaveLength(3);
    // A consumer group that commits and leaves a backlog, for the consumer-group panels.
    expect((await runCli(['consume', 'panels', '--group', 'panels-readers', '--from-beginning', '--max-messages', '1', ...bootstrap], { timeoutMs: 60_000 })).code).toBe(0);
    const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] };
    const expressions = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ title: panel.title, expr: target.expr })));
    expect(expressions.length).toBeGreaterThan(10);
    // Counters that only appear once something happened: no ISR change on a healthy cluster.
    const emptyWhenHealthy = new Set(['ISR changes proposed']);
    const empty = await waitFor(async () => {
      const without: string[] = [];
      for (const { title, expr } of expressions) {
        // Grafana's variables, as Grafana substitutes them.
        const concrete = expr.replaceAll('$__rate_interval', '1m').replaceAll('$node', '.*');
        const answer = await query(concrete).catch((error: unknown) => {
          throw new Error(`${title}: ${concrete}: ${String(error)}`);
        });
        if (answer.result.length === 0 && !emptyWhenHealthy.has(title)) without.push(title);
      }
      return without.length === 0 ? without : undefined;
    }, { timeoutMs: 30_000, intervalMs: 1_000, what: 'data on every dashboard panel' });
    expect(empty).toEqual([]);
  });

  it('fires no alert while the cluster is healthy, and RiffleNodeDown and RiffleFencedBrokers once a broker is killed', async () => {
    const before = await api<{ alerts: Alert[] }>('/api/v1/alerts');
    expect(before.alerts.filter((alert) => alert.state === 'firing').map((alert) => alert.labels.alertname)).toEqual([]);
    await cluster.nodes.get(BROKER_ID)!.kill();
    const firing = await waitFor(async () => {
      const { alerts } = await api<{ alerts: Alert[] }>('/api/v1/alerts');
      const names = new Set(alerts.filter((alert) => alert.state === 'firing').map((alert) => alert.labels.alertname));
      return names.has('RiffleNodeDown') && names.has('RiffleFencedBrokers') ? alerts : undefined;
    }, { timeoutMs: 90_000, intervalMs: 500, what: 'RiffleNodeDown and RiffleFencedBrokers firing' });
    const nodeDown = firing.find((alert) => alert.labels.alertname === 'RiffleNodeDown' && alert.state === 'firing')!;
    expect(nodeDown.labels.instance).toBe(`${SUBNET}.${BROKER_ID}:${NODE_HTTP_PORT}`);
    // The controller quorum is intact: no controller alert fires.
    expect(firing.filter((alert) => alert.state === 'firing').map((alert) => alert.labels.alertname)).not.toContain('RiffleNoActiveController');
  }, 120_000);
});
