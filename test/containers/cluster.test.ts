// The container image as users run it (npm run test:containers, with testcontainers): build
// deploy/Dockerfile, start a three-node cluster of containers (combined controller+broker nodes
// configured only by RIFFLE_* variables), produce with acks=all, kill one container, keep
// producing, consume everything, and check the survivors' metrics. Containers use host
// networking on 127.0.22.1-3, so no traffic leaves loopback.
//
// The engine is whatever DOCKER_HOST names; in CI that is podman's Docker-compatible API
// (deploy/podman/run-container-tests.sh). Without an engine the suite says so and is skipped,
// except under CI=true, where it fails.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GenericContainer, getContainerRuntimeClient, ImageName, Wait, type StartedTestContainer } from 'testcontainers';
import { Admin, PartitionConsumer, Producer, RiffleClient } from '../../src/client/index.js';
import { REPO_ROOT, waitFor } from '../helpers/cluster.js';
import { SERVER_NODE_FLAGS } from '../../src/cli/node-process.js';

const SUBNET = '127.0.22';
const PORTS = { grpc: 19094, controller: 19093, http: 19644 };
const NODES = [1, 2, 3];
const IMAGE = 'localhost/riffle:container-test';
const TOPIC = 'containers';
const RECORDS_BEFORE = 200;
const RECORDS_AFTER = 200;
const VICTIM = 3;

async function engineAvailable(): Promise<boolean> {
  try {
    await getContainerRuntimeClient();
    return true;
  } catch (error) {
    if (process.env.CI === 'true') throw new Error(`CI must run the container suite, but no container engine answers: ${String(error)}`);
    process.stderr.write(`no container engine (DOCKER_HOST=${process.env.DOCKER_HOST ?? 'unset'}): skipping the container suite; see deploy/podman/run-container-tests.sh\n`);
    return false;
  }
}

const available = await engineAvailable();
const containers = new Map<number, StartedTestContainer>();
let client: RiffleClient | undefined;

function containerName(id: number): string {
  return `riffle-container-test-${id}`;
}

/** Removes this suite's containers (by their names), left by a failed start or an earlier aborted run. */
async function removeLeftovers(): Promise<void> {
  const runtime = await getContainerRuntimeClient();
  const names = new Set(NODES.map((id) => `/${containerName(id)}`));
  for (const info of await runtime.container.list()) {
    if (!info.Names.some((name) => names.has(name))) continue;
    const container = runtime.container.getById(info.Id);
    await runtime.container.remove(container, { removeVolumes: true }).catch(async () => {
      await runtime.container.stop(container, { timeout: 0 }).catch(() => undefined);
      await runtime.container.remove(container, { removeVolumes: true });
    });
  }
}

function environmentOf(id: number): Record<string, string> {
  const host = `${SUBNET}.${id}`;
  return {
    RIFFLE_NODE_ID: String(id),
    RIFFLE_ROLES: 'controller,broker',
    RIFFLE_AZ: ['a', 'b', 'c'][id - 1]!,
    RIFFLE_LISTEN: `${host}:${PORTS.grpc}`,
    RIFFLE_CONTROLLER_LISTEN: `${host}:${PORTS.controller}`,
    RIFFLE_HTTP: `${host}:${PORTS.http}`,
    RIFFLE_CONTROLLER_QUORUM: NODES.map((node) => `${node}@${SUBNET}.${node}:${PORTS.controller}`).join(','),
    RIFFLE_DEFAULT_REPLICATION_FACTOR: '3',
    RIFFLE_LOG_LEVEL: 'info',
  };
}

async function metricsOf(id: number): Promise<string> {
  const response = await fetch(`http://${SUBNET}.${id}:${PORTS.http}/metrics`, { signal: AbortSignal.timeout(5_000) });
  return response.text();
}

/** The sum of a metric's samples in Prometheus text (0 when absent). */
function sampleSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe.skipIf(!available)('the container image', () => {
  beforeAll(async () => {
    await GenericContainer.fromDockerfile(REPO_ROOT, 'deploy/Dockerfile').withCache(true).build(IMAGE, { deleteOnExit: false });
    const runtime = await getContainerRuntimeClient();
    // testcontainers resolves a build whose stream ended, failed or not: check the image is there.
    expect(await runtime.image.exists(ImageName.fromString(IMAGE))).toBe(true);
    await removeLeftovers();
    const started = await Promise.all(NODES.map((id) =>
      new GenericContainer(IMAGE)
        .withName(containerName(id))
        .withNetworkMode('host')
        .withEnvironment(environmentOf(id))
        .withWaitStrategy(Wait.forLogMessage(`node ${id} started with roles`))
        .withStartupTimeout(120_000)
        .start(),
    ));
    started.forEach((container, index) => containers.set(NODES[index]!, container));
    for (const id of NODES) {
      await waitFor(async () => (await fetch(`http://${SUBNET}.${id}:${PORTS.http}/readyz`, { signal: AbortSignal.timeout(2_000) })).status === 200, {
        timeoutMs: 60_000, intervalMs: 200, what: `container node ${id} ready`,
      });
    }
    client = new RiffleClient({ bootstrap: NODES.map((id) => `${SUBNET}.${id}:${PORTS.grpc}`).join(','), retry: { deadlineMs: 30_000 } });
  }, 600_000);

  afterAll(async () => {
    client?.close();
    await Promise.all([...containers.values()].map((container) => container.stop({ timeout: 15_000, removeVolumes: true }).catch(() => undefined)));
    // Containers whose start failed are not in `containers`; without Ryuk nobody else removes them.
    await removeLeftovers();
  }, 120_000);

  it('runs as an unprivileged user with a health check on /healthz', async () => {
    const container = containers.get(1)!;
    const id = await container.exec(['id', '-u']);
    expect(id.output.trim()).toBe('10001');
    const health = await container.exec(['node', '/opt/riffle/healthcheck.mjs']);
    expect(health.exitCode).toBe(0);
    // The CLI is on the image's PATH, as `docker compose exec riffle-1 riffle cluster status` expects.
    const status = await container.exec(['riffle', 'cluster', 'status', '--json', '--bootstrap', `${SUBNET}.1:${PORTS.grpc}`]);
    expect(status.exitCode, status.output).toBe(0);
    expect((JSON.parse(status.stdout) as { brokers: { brokerId: number }[] }).brokers.map((broker) => broker.brokerId).sort()).toEqual(NODES);
    const runtime = await getContainerRuntimeClient();
    const inspected = await runtime.container.inspect(runtime.container.getById(container.getId()));
    // The server's V8 flags (SERVER_NODE_FLAGS) come before the entry.
    expect(inspected.Config.Entrypoint).toEqual(['node', ...SERVER_NODE_FLAGS, '/opt/riffle/dist/src/cli/main.js']);
    expect(inspected.Config.Cmd).toEqual(['server']);
    expect(inspected.Mounts.map((mount) => mount.Destination)).toContain('/var/lib/riffle');
    const image = await runtime.image.inspect(ImageName.fromString(IMAGE));
    expect(Object.keys(image.Config.Volumes ?? {})).toEqual(['/var/lib/riffle']);
    expect(image.Config.User).toBe('riffle');
    expect((inspected.Config as { Healthcheck?: { Test: string[] } }).Healthcheck?.Test).toEqual(['CMD', 'node', '/opt/riffle/healthcheck.mjs']);
  });

  it('keeps every acknowledged record when a container is killed, and its metrics show the work', async () => {
    await new Admin(client!).createTopic({ name: TOPIC, partitions: 3, replicationFactor: 3, configs: { 'min.insync.replicas': '2' } });
    const producer = new Producer(client!, { acks: 'all', lingerMs: 2, deliveryTimeoutMs: 60_000 });
    const values: string[] = [];
    const send = async (from: number, count: number): Promise<void> => {
      const batch = Array.from({ length: count }, (_, index) => `record-${from + index}`);
      await Promise.all(batch.map((value) => producer.send({ topic: TOPIC, key: value, value })));
      values.push(...batch);
    };
    await send(0, RECORDS_BEFORE);

    const runtime = await getContainerRuntimeClient();
    // kill -9 of the container's process: no controlled shutdown, no flush.
    await runtime.container.getById(containers.get(VICTIM)!.getId()).kill({ signal: 'SIGKILL' });
    await waitFor(async () => {
      try {
        await fetch(`http://${SUBNET}.${VICTIM}:${PORTS.http}/healthz`, { signal: AbortSignal.timeout(1_000) });
        return false;
      } catch {
        return true;
      }
    }, { timeoutMs: 30_000, what: `container ${VICTIM} gone` });

    await send(RECORDS_BEFORE, RECORDS_AFTER);
    await producer.close();

    const consumer = new PartitionConsumer(client!, { topic: TOPIC, from: 'earliest', maxWaitMs: 200 });
    const seen = new Set<string>();
    await waitFor(async () => {
      for (const record of await consumer.poll()) seen.add(record.value!.toString());
      return seen.size >= values.length;
    }, { timeoutMs: 60_000, intervalMs: 10, what: `${values.length} records consumed` });
    expect(values.filter((value) => !seen.has(value))).toEqual([]);

    const survivors = NODES.filter((id) => id !== VICTIM);
    const metrics = await Promise.all(survivors.map((id) => metricsOf(id)));
    expect(metrics.reduce((sum, text) => sum + sampleSum(text, 'riffle_broker_produce_batches_total'), 0)).toBeGreaterThan(0);
    expect(metrics.reduce((sum, text) => sum + sampleSum(text, 'riffle_broker_fetch_bytes_total'), 0)).toBeGreaterThan(0);
    expect(metrics.reduce((sum, text) => sum + sampleSum(text, 'riffle_controller_active'), 0)).toBe(1);
    // The killed node is fenced, so the survivors' controllers report one fenced broker and the
    // partitions it replicated as under-replicated.
    await waitFor(async () => {
      const texts = await Promise.all(survivors.map((id) => metricsOf(id)));
      return texts.every((text) => sampleSum(text, 'riffle_controller_fenced_brokers') === 1 && sampleSum(text, 'riffle_controller_under_replicated_partitions') >= 1);
    }, { timeoutMs: 30_000, what: 'the killed node fenced in the controller metrics' });
  }, 180_000);
});
