// docker-compose.yml, checked statically (no engine brings it up here): it parses, every node
// sets only variables `riffle server` really reads, the nodes form one quorum across AZs a, b
// and c with consistent advertised names and published ports, Prometheus scrapes every node
// with the alert rules of deploy/prometheus, and Grafana gets the provisioned dashboard.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEndpoint } from '../../src/config/node-config.js';
import { REPO_ROOT } from '../helpers/cluster.js';
import { SERVER_ENV_NAMES, readYaml } from './manifests.js';

interface ComposeService {
  build?: { context: string; dockerfile: string };
  image?: string;
  hostname?: string;
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  command?: string[];
  healthcheck?: { test: string[] };
  stop_grace_period?: string;
}

const compose = readYaml<{ services: Record<string, ComposeService>; volumes: Record<string, unknown> }>('docker-compose.yml');
const nodes = Object.entries(compose.services).filter(([, service]) => service.environment?.RIFFLE_NODE_ID !== undefined);

describe('docker-compose.yml', () => {
  it('has three controller+broker nodes and three brokers across AZs a, b and c', () => {
    expect(nodes.map(([name]) => name)).toEqual(['riffle-1', 'riffle-2', 'riffle-3', 'riffle-4', 'riffle-5', 'riffle-6']);
    const roles = nodes.map(([, service]) => service.environment!.RIFFLE_ROLES);
    expect(roles.filter((role) => role === 'controller,broker')).toHaveLength(3);
    expect(roles.filter((role) => role === 'broker')).toHaveLength(3);
    for (const role of ['controller,broker', 'broker']) {
      const azs = nodes.filter(([, service]) => service.environment!.RIFFLE_ROLES === role).map(([, service]) => service.environment!.RIFFLE_AZ).sort();
      expect(azs).toEqual(['a', 'b', 'c']);
    }
  });

  it('sets only environment variables that riffle server reads', () => {
    for (const [name, service] of nodes) {
      const unknown = Object.keys(service.environment!).filter((variable) => !SERVER_ENV_NAMES.has(variable));
      expect(unknown, name).toEqual([]);
    }
  });

  it('builds the image from deploy/Dockerfile with a health check, a named data volume and time for controlled shutdown', () => {
    for (const [name, service] of nodes) {
      expect(service.build, name).toEqual({ context: '.', dockerfile: 'deploy/Dockerfile' });
      expect(existsSync(path.join(REPO_ROOT, service.build!.dockerfile))).toBe(true);
      expect(service.healthcheck?.test.join(' ')).toContain('healthcheck.mjs');
      const dataVolume = service.volumes!.find((volume) => volume.endsWith(`:${service.environment!.RIFFLE_DATA_DIR}`));
      expect(dataVolume, name).toBeDefined();
      expect(Object.keys(compose.volumes)).toContain(dataVolume!.split(':')[0]);
      expect(Number.parseInt(service.stop_grace_period!, 10)).toBeGreaterThanOrEqual(15);
    }
  });

  it('forms one controller quorum of the combined nodes, each advertising its own service name and publishing its client port', () => {
    const quorums = new Set(nodes.map(([, service]) => service.environment!.RIFFLE_CONTROLLER_QUORUM));
    expect(quorums.size).toBe(1);
    const voters = [...quorums][0]!.split(',').map((voter) => voter.split('@'));
    const controllers = nodes.filter(([, service]) => service.environment!.RIFFLE_ROLES.includes('controller'));
    expect(voters.map(([id]) => id)).toEqual(controllers.map(([, service]) => service.environment!.RIFFLE_NODE_ID));
    for (const [name, service] of nodes) {
      const env = service.environment!;
      const listen = parseEndpoint('listen', env.RIFFLE_LISTEN!);
      const advertised = parseEndpoint('advertised-listen', env.RIFFLE_ADVERTISED_LISTEN!);
      expect([advertised.host, advertised.port], name).toEqual([name, listen.port]);
      expect(service.hostname).toBe(name);
      expect(parseEndpoint('advertised-controller-listen', env.RIFFLE_ADVERTISED_CONTROLLER_LISTEN!).host).toBe(name);
      expect(parseEndpoint('advertised-http', env.RIFFLE_ADVERTISED_HTTP!).host).toBe(name);
      // The host's CLI dials the advertised port on 127.0.0.1: the same port must be published there.
      expect(service.ports).toContain(`127.0.0.1:${listen.port}:${listen.port}`);
      const voter = voters.find(([id]) => id === env.RIFFLE_NODE_ID);
      if (voter) expect(voter[1]).toBe(`${name}:${parseEndpoint('controller-listen', env.RIFFLE_CONTROLLER_LISTEN!).port}`);
    }
    // Node 1 answers on the CLI's default bootstrap port.
    expect(compose.services['riffle-1']!.environment!.RIFFLE_LISTEN).toBe('0.0.0.0:9094');
  });

  it('has Prometheus scrape every node with the alert rules, and Grafana load the Riffle dashboard', () => {
    const prometheus = compose.services.prometheus!;
    const mounts = new Map(prometheus.volumes!.map((volume) => volume.split(':') as [string, string, string?]).map(([from, to]) => [to, from]));
    const configFile = mounts.get('/etc/prometheus/prometheus.yml')!;
    expect(configFile).toBe('./deploy/prometheus/prometheus.yml');
    const config = readYaml<{ rule_files: string[]; scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[] }>(configFile);
    for (const ruleFile of config.rule_files) {
      expect(mounts.has(ruleFile), ruleFile).toBe(true);
      expect(existsSync(path.join(REPO_ROOT, mounts.get(ruleFile)!))).toBe(true);
    }
    const job = config.scrape_configs.find((scrape) => scrape.job_name === 'riffle')!;
    const targets = job.static_configs.flatMap((group) => group.targets).sort();
    const expected = nodes.map(([name, service]) => `${name}:${parseEndpoint('http', service.environment!.RIFFLE_HTTP!).port}`).sort();
    expect(targets).toEqual(expected);
    const grafana = compose.services.grafana!;
    for (const volume of grafana.volumes!.filter((entry) => entry.startsWith('./'))) {
      expect(existsSync(path.join(REPO_ROOT, volume.split(':')[0]!)), volume).toBe(true);
    }
    expect(grafana.volumes!.some((volume) => volume.startsWith('./deploy/grafana/dashboards:'))).toBe(true);
  });
});
