// deploy/k8s as `kubectl kustomize` renders it: the objects are consistent with each other and
// with the server. Ports, probes and environment names match `riffle server`'s real flags and
// HTTP endpoints; the pod entry point (start.sh, run here by /bin/sh with the StatefulSet's own
// environment) yields a configuration the server's own parser accepts, with stable DNS names
// for the controller quorum; the zone reaches the node as its AZ.
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { CONTROLLED_SHUTDOWN_WAIT_MS } from '../../broker/node.js';
import { parseEndpoint, resolveNodeConfig } from '../../src/config/node-config.js';
import { REPO_ROOT, temporaryDir } from '../helpers/cluster.js';
import { SERVER_ENV_NAMES, readYamlDocuments } from '../deploy/manifests.js';
import { requireTool } from './tools.js';
import { SERVER_NODE_FLAGS } from '../../src/cli/node-process.js';

const run = promisify(execFile);
const scratch = temporaryDir('riffle-kustomize-');
afterAll(() => scratch.remove());

interface EnvVar { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }
interface Probe { httpGet: { path: string; port: string | number } }
interface Container {
  name: string; image: string; command?: string[]; env?: EnvVar[]; ports?: { name: string; containerPort: number }[];
  readinessProbe?: Probe; livenessProbe?: Probe; startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  serviceAccountName?: string; terminationGracePeriodSeconds?: number; containers: Container[]; initContainers?: Container[];
  volumes?: { name: string; configMap?: { name: string } }[];
  topologySpreadConstraints?: { topologyKey: string; whenUnsatisfiable: string; labelSelector: { matchLabels: Record<string, string> } }[];
  securityContext?: { runAsUser?: number; fsGroup?: number; runAsNonRoot?: boolean };
}
interface K8sObject {
  apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: {
    serviceName?: string; replicas?: number; podManagementPolicy?: string; selector?: { matchLabels: Record<string, string> } | Record<string, string>;
    template?: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    volumeClaimTemplates?: { metadata: { name: string } }[];
    clusterIP?: string; publishNotReadyAddresses?: boolean; ports?: { name: string; port: number; targetPort: string | number }[];
    maxUnavailable?: number; endpoints?: { port: string; path: string }[]; jobLabel?: string;
  };
  data?: Record<string, string>;
  subjects?: { kind: string; name: string; namespace: string }[];
}

let rendered: K8sObject[] = [];
const byKind = (kind: string): K8sObject[] => rendered.filter((object) => object.kind === kind);
const named = (kind: string, name: string): K8sObject => {
  const found = byKind(kind).find((object) => object.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in the rendered manifests`);
  return found;
};
const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean => Object.entries(selector).every(([key, value]) => labels[key] === value);
const envOf = (container: Container): Map<string, EnvVar> => new Map((container.env ?? []).map((variable) => [variable.name, variable]));
const riffleContainer = (set: K8sObject): Container => set.spec!.template!.spec.containers.find((container) => container.name === 'riffle')!;

describe('kubectl kustomize deploy/k8s', () => {
  it('renders the objects a Riffle cluster needs, all in one namespace', async () => {
    const kubectl = requireTool('kubectl');
    const { stdout } = await run(kubectl, ['kustomize', path.join(REPO_ROOT, 'deploy', 'k8s')], { maxBuffer: 16 * 1024 * 1024 });
    rendered = readYamlDocuments<K8sObject>(stdout);
    expect(byKind('StatefulSet').map((set) => set.metadata.name).sort()).toEqual(['riffle-broker', 'riffle-controller']);
    expect(byKind('Service').map((service) => service.metadata.name).sort()).toEqual(['riffle', 'riffle-broker', 'riffle-controller']);
    for (const kind of ['PodDisruptionBudget', 'ServiceMonitor', 'PrometheusRule', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Namespace']) expect(byKind(kind), kind).toHaveLength(1);
    const namespace = byKind('Namespace')[0]!.metadata.name;
    const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);
    for (const object of rendered.filter((candidate) => !clusterScoped.has(candidate.kind))) expect(object.metadata.namespace, `${object.kind} ${object.metadata.name}`).toBe(namespace);
    expect(byKind('ClusterRoleBinding')[0]!.subjects).toEqual([{ kind: 'ServiceAccount', name: 'riffle', namespace }]);
  });

  it('gives each StatefulSet a headless Service that publishes not-ready pods, and selectors that match', () => {
    for (const set of byKind('StatefulSet')) {
      const spec = set.spec!;
      const headless = named('Service', spec.serviceName!);
      expect(headless.spec!.clusterIP).toBe('None');
      expect(headless.spec!.publishNotReadyAddresses).toBe(true);
      const podLabels = spec.template!.metadata.labels;
      expect(matches((spec.selector as { matchLabels: Record<string, string> }).matchLabels, podLabels)).toBe(true);
      expect(matches(headless.spec!.selector as Record<string, string>, podLabels)).toBe(true);
      expect(matches(named('Service', 'riffle').spec!.selector as Record<string, string>, podLabels), 'the client Service selects every node').toBe(true);
      expect(spec.podManagementPolicy).toBe('Parallel');
      expect(spec.replicas).toBeGreaterThanOrEqual(3);
    }
  });

  it('uses container ports and probes that match the server listeners and its /healthz and /readyz', () => {
    for (const set of byKind('StatefulSet')) {
      const container = riffleContainer(set);
      const env = envOf(container);
      const ports = new Map((container.ports ?? []).map((port) => [port.name, port.containerPort]));
      expect(ports.get('grpc')).toBe(parseEndpoint('listen', env.get('RIFFLE_LISTEN')!.value!).port);
      expect(ports.get('controller')).toBe(parseEndpoint('controller-listen', env.get('RIFFLE_CONTROLLER_LISTEN')!.value!).port);
      expect(ports.get('http')).toBe(parseEndpoint('http', env.get('RIFFLE_HTTP')!.value!).port);
      expect(container.readinessProbe!.httpGet).toEqual({ path: '/readyz', port: 'http' });
      expect(container.livenessProbe!.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(container.startupProbe!.httpGet).toEqual({ path: '/healthz', port: 'http' });
      for (const service of byKind('Service').filter((candidate) => matches(candidate.spec!.selector as Record<string, string>, set.spec!.template!.metadata.labels))) {
        for (const port of service.spec!.ports!) expect(ports.has(String(port.targetPort)), `${service.metadata.name} targets ${port.targetPort}`).toBe(true);
      }
    }
  });

  it('sets only real server variables (or inputs start.sh reads), with PVC-backed data, resources and time for controlled shutdown', () => {
    // Code lines only: a name mentioned in a comment is not read.
    const startScript = readFileSync(path.join(REPO_ROOT, 'deploy', 'k8s', 'start.sh'), 'utf8').split('\n').filter((line) => !line.trimStart().startsWith('#')).join('\n');
    const zoneScript = readFileSync(path.join(REPO_ROOT, 'deploy', 'k8s', 'zone.mjs'), 'utf8');
    for (const set of byKind('StatefulSet')) {
      const pod = set.spec!.template!.spec;
      const container = riffleContainer(set);
      const env = envOf(container);
      for (const name of env.keys()) {
        if (name.startsWith('RIFFLE_')) expect(SERVER_ENV_NAMES.has(name), `${set.metadata.name}: ${name}`).toBe(true);
        else expect(new RegExp(`\\b${name}\\b`).test(startScript), `${set.metadata.name}: ${name} is read by start.sh`).toBe(true);
      }
      for (const init of pod.initContainers ?? []) {
        for (const name of envOf(init).keys()) expect(zoneScript, `${init.name}: ${name}`).toContain(`process.env.${name}`);
      }
      const dataDir = env.get('RIFFLE_DATA_DIR')!.value!;
      const dataMount = container.volumeMounts!.find((mount) => mount.mountPath === dataDir)!;
      expect(set.spec!.volumeClaimTemplates!.map((claim) => claim.metadata.name)).toContain(dataMount.name);
      expect(container.resources?.requests?.cpu).toBeDefined();
      expect(container.resources?.requests?.memory).toBeDefined();
      const shutdownGraceMs = Number(env.get('RIFFLE_SHUTDOWN_GRACE_MS')!.value);
      expect(pod.terminationGracePeriodSeconds! * 1000).toBeGreaterThan(CONTROLLED_SHUTDOWN_WAIT_MS + shutdownGraceMs + 5_000);
      expect(pod.securityContext?.runAsNonRoot).toBe(true);
      expect(pod.securityContext?.fsGroup).toBe(10001);
      // The generated ConfigMap (its name carries a content hash) is the one mounted.
      const scripts = pod.volumes!.find((volume) => volume.name === 'scripts')!.configMap!.name;
      expect(Object.keys(named('ConfigMap', scripts).data!).sort()).toEqual(['start.sh', 'zone.mjs']);
    }
  });

  it('spreads pods across topology.kubernetes.io/zone (hard for the controller quorum) and lets one node be disrupted at a time', () => {
    for (const set of byKind('StatefulSet')) {
      const spread = set.spec!.template!.spec.topologySpreadConstraints!.find((constraint) => constraint.topologyKey === 'topology.kubernetes.io/zone')!;
      expect(matches(spread.labelSelector.matchLabels, set.spec!.template!.metadata.labels)).toBe(true);
      if (set.metadata.name === 'riffle-controller') expect(spread.whenUnsatisfiable).toBe('DoNotSchedule');
      const budget = byKind('PodDisruptionBudget')[0]!;
      expect(matches((budget.spec!.selector as { matchLabels: Record<string, string> }).matchLabels, set.spec!.template!.metadata.labels)).toBe(true);
      expect(budget.spec!.maxUnavailable).toBe(1);
    }
  });

  it('has a ServiceMonitor that scrapes /metrics of the headless Services as job "riffle"', () => {
    const monitor = byKind('ServiceMonitor')[0]!;
    const selected = byKind('Service').filter((service) => matches((monitor.spec!.selector as { matchLabels: Record<string, string> }).matchLabels, service.metadata.labels ?? {}));
    expect(selected.map((service) => service.metadata.name).sort()).toEqual(['riffle-broker', 'riffle-controller']);
    for (const service of selected) expect(service.spec!.ports!.map((port) => port.name)).toContain(monitor.spec!.endpoints![0]!.port);
    expect(monitor.spec!.endpoints![0]!.path).toBe('/metrics');
    expect(selected.every((service) => service.metadata.labels![monitor.spec!.jobLabel!] === 'riffle')).toBe(true);
  });

  it('starts each pod with a configuration the server accepts: node id from the ordinal, zone as AZ, DNS names for the quorum', async () => {
    // A stand-in for `node` records the environment start.sh hands to `riffle server`.
    const bin = path.join(scratch.dir, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(path.join(bin, 'node'), `#!/bin/sh\n${process.execPath} -e 'process.stdout.write(JSON.stringify({ argv: process.argv.slice(1), env: process.env }))' -- "$@"\n`);
    chmodSync(path.join(bin, 'node'), 0o755);
    const namespace = 'streams';
    const zoneFile = path.join(scratch.dir, 'zone');
    writeFileSync(zoneFile, 'eu-west-1b\n');
    const startScript = path.join(scratch.dir, 'start.sh');
    writeFileSync(startScript, byKind('ConfigMap')[0]!.data!['start.sh']!);
    const cases = [
      { set: 'riffle-controller', pod: 'riffle-controller-2', nodeId: 3, roles: ['controller', 'broker'] },
      { set: 'riffle-broker', pod: 'riffle-broker-4', nodeId: 104, roles: ['broker'] },
    ];
    const ids = new Set<number>();
    for (const { set, pod, nodeId, roles } of cases) {
      const container = riffleContainer(named('StatefulSet', set));
      expect(container.command).toEqual(['/bin/sh', '/opt/riffle-k8s/start.sh']);
      const env: NodeJS.ProcessEnv = { PATH: `${bin}:/usr/bin:/bin`, HOSTNAME: pod, POD_NAMESPACE: namespace };
      for (const variable of container.env!) if (variable.value !== undefined) env[variable.name] = variable.value;
      env.ZONE_FILE = zoneFile;
      const { stdout } = await run('/bin/sh', [startScript], { env });
      const launched = JSON.parse(stdout) as { argv: string[]; env: NodeJS.ProcessEnv };
      // The server's V8 flags come first, the same ones riffle dev and the tests pass.
      expect(launched.argv).toEqual([...SERVER_NODE_FLAGS, '/opt/riffle/dist/src/cli/main.js', 'server']);
      const config = resolveNodeConfig({}, launched.env);
      expect(config.nodeId).toBe(nodeId);
      expect(config.roles).toEqual(roles);
      expect(config.az).toBe('eu-west-1b');
      expect(config.advertisedListen).toEqual({ host: `${pod}.${set}.${namespace}.svc.cluster.local`, port: 9094 });
      expect(config.controllerQuorum.map((voter) => `${voter.nodeId}@${voter.host}:${voter.port}`)).toEqual(
        [0, 1, 2].map((ordinal) => `${ordinal + 1}@riffle-controller-${ordinal}.riffle-controller.${namespace}.svc.cluster.local:9093`),
      );
      ids.add(config.nodeId);
    }
    expect(ids.size).toBe(cases.length);
  });
});
