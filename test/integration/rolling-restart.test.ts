// A rolling restart as Kubernetes' StatefulSet update does it: stop one node (SIGTERM, controlled
// shutdown), start it again, wait for its /readyz, then the next. Under acks=all load on a topic
// with replication factor 3 and min.insync.replicas 2, no write may ever be refused with
// NOT_ENOUGH_REPLICAS: /readyz answers 200 only once the restarted broker is back in the ISR of
// every partition it replicates, so the next stop still leaves two in-sync replicas. Every
// acknowledged record is read back afterwards. Nodes run on 127.0.20.1-3.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Admin, PartitionConsumer, RiffleClient } from '../../src/client/index.js';
import { NodeConnection } from '../../src/rpc/client.js';
import { errorNameOf } from '../../src/rpc/errors.js';
import type { DescribeTopicsResponse__Output } from '../../src/rpc/generated/riffle/v1/DescribeTopicsResponse.js';
import type { ProduceResponse__Output } from '../../src/rpc/generated/riffle/v1/ProduceResponse.js';
import { encodeRecordBatch } from '../../src/util/record-batch.js';
import { startCluster, temporaryDir, waitFor, type TestCluster } from '../helpers/cluster.js';

const SUBNET = '127.0.20';
const TOPIC = 'rolling';
const PARTITIONS = 3;
/** Bounds on the load loop: it stops on its own even if the test body fails to stop it. */
const LOAD_DURATION_MS_MAX = 240_000;
const LOAD_ATTEMPTS_MAX = 200_000;

const data = temporaryDir('riffle-rolling-');
let cluster: TestCluster;
let client: RiffleClient;

beforeAll(async () => {
  cluster = await startCluster({ subnet: SUBNET, dataDir: data.dir, controllers: 3 });
  client = new RiffleClient({ bootstrap: cluster.bootstrap, retry: { deadlineMs: 30_000 } });
}, 90_000);

afterAll(async () => {
  client?.close();
  await cluster?.stopAll();
  data.remove();
});

interface LoadResult {
  acknowledged: string[];
  /** Error names returned in produce answers, with their counts (connection failures as UNAVAILABLE). */
  errors: Map<string, number>;
}

/**
 * Writes one-record batches with acks=all straight to each partition's leader, without any retry
 * of its own, so every error a broker answers is seen here and counted.
 */
function startLoad(): { acknowledgedCount: () => number; stop: () => Promise<LoadResult> } {
  const result: LoadResult = { acknowledged: [], errors: new Map() };
  const count = (name: string): void => void result.errors.set(name, (result.errors.get(name) ?? 0) + 1);
  let stopping = false;
  const connections = new Map<string, NodeConnection>();
  const connectionTo = (address: string): NodeConnection => {
    let connection = connections.get(address);
    if (!connection) connections.set(address, (connection = new NodeConnection(address)));
    return connection;
  };
  const leaders = new Map<number, string>();
  const refreshLeaders = async (): Promise<void> => {
    const description = await new Admin(client).describeTopic(TOPIC);
    for (const partition of description.partitions) if (partition.leaderId >= 0) leaders.set(partition.partitionIndex, `${SUBNET}.${partition.leaderId}:19094`);
  };
  const loop = async (): Promise<void> => {
    const deadline = Date.now() + LOAD_DURATION_MS_MAX;
    for (let attempt = 0; attempt < LOAD_ATTEMPTS_MAX && !stopping && Date.now() < deadline; attempt++) {
      const partition = attempt % PARTITIONS;
      const value = `record-${attempt}`;
      const leader = leaders.get(partition);
      let failed = leader === undefined;
      if (leader !== undefined) {
        try {
          const response = await connectionTo(leader).call<ProduceResponse__Output>('riffle.v1.Kafka', 'Produce', {
            acks: -1,
            timeoutMs: 5_000,
            topicData: [{ name: TOPIC, partitionData: [{ index: partition, records: encodeRecordBatch([{ key: null, value: Buffer.from(value) }]) }] }],
          }, 10_000);
          const errorCode = response.responses[0]!.partitionResponses[0]!.errorCode;
          if (errorCode === 0) result.acknowledged.push(value);
          else {
            count(errorNameOf(errorCode));
            failed = true;
          }
        } catch (error) {
          count((error as { errorName?: string }).errorName ?? 'UNAVAILABLE');
          failed = true;
        }
      }
      if (failed) {
        await refreshLeaders().catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  };
  const running = refreshLeaders().then(loop);
  return {
    acknowledgedCount: () => result.acknowledged.length,
    stop: async () => {
      stopping = true;
      await running;
      for (const connection of connections.values()) connection.close();
      return result;
    },
  };
}

/**
 * The partitions whose ISR lacks `nodeId`, as that node's own metadata shows them (the image its
 * /readyz judged by; another node's metadata may be a moment behind).
 */
async function partitionsWithoutInIsr(nodeId: number): Promise<number[]> {
  const connection = new NodeConnection(`${SUBNET}.${nodeId}:19094`);
  try {
    const response = await connection.call<DescribeTopicsResponse__Output>('riffle.v1.Admin', 'DescribeTopics', { topicNames: [TOPIC] }, 5_000);
    const partitions = response.topics[0]!.partitions;
    expect(partitions).toHaveLength(PARTITIONS);
    return partitions.filter((partition) => partition.replicaNodes.includes(nodeId) && !partition.isrNodes.includes(nodeId)).map((partition) => partition.partitionIndex);
  } finally {
    connection.close();
  }
}

async function readAll(expected: ReadonlySet<string>): Promise<Set<string>> {
  const consumer = new PartitionConsumer(client, { topic: TOPIC, from: 'earliest', maxWaitMs: 200 });
  const seen = new Set<string>();
  await waitFor(async () => {
    for (const record of await consumer.poll()) seen.add(record.value!.toString());
    return [...expected].every((value) => seen.has(value));
  }, { timeoutMs: 60_000, intervalMs: 10, what: `${expected.size} acknowledged records` });
  return seen;
}

describe('rolling restart', () => {
  it('rolls every node under acks=all load without NOT_ENOUGH_REPLICAS, each node ready only once back in the ISR', async () => {
    await new Admin(client).createTopic({ name: TOPIC, partitions: PARTITIONS, replicationFactor: 3, configs: { 'min.insync.replicas': '2' } });
    await waitFor(async () => (await new Admin(client).describeTopic(TOPIC)).partitions.every((partition) => partition.isrNodes.length === 3), {
      timeoutMs: 30_000, what: 'full ISRs',
    });
    const load = startLoad();
    let result: LoadResult | undefined;
    try {
      for (const id of [1, 2, 3]) {
        // Writes are flowing before each stop, so the roll happens under load.
        const before = load.acknowledgedCount();
        await waitFor(() => load.acknowledgedCount() >= before + 50, { timeoutMs: 30_000, what: `acknowledged writes before stopping node ${id}` });
        expect(await cluster.nodes.get(id)!.stop(30_000)).toBe(0);
        const restarted = await cluster.start(id);
        await restarted.waitReady(90_000);
        // The moment /readyz says 200, the node is in the ISR of every partition it replicates.
        expect(await partitionsWithoutInIsr(id)).toEqual([]);
      }
    } finally {
      result = await load.stop();
    }
    const errorSummary = Object.fromEntries(result.errors);
    expect(result.errors.get('NOT_ENOUGH_REPLICAS') ?? 0, JSON.stringify(errorSummary)).toBe(0);
    expect(result.errors.get('NOT_ENOUGH_REPLICAS_AFTER_APPEND') ?? 0, JSON.stringify(errorSummary)).toBe(0);
    expect(result.acknowledged.length).toBeGreaterThan(100);
    const seen = await readAll(new Set(result.acknowledged));
    expect([...new Set(result.acknowledged)].filter((value) => !seen.has(value))).toEqual([]);
  }, 300_000);
});
