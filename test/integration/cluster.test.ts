// A three-node controller quorum of real processes on 127.0.3.1-3 (plus broker-only nodes where
// a test needs them): controller failover, broker fencing and re-registration, controlled
// shutdown, AZ-aware placement, snapshot catch-up and bad admin input.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Admin, RiffleClient } from '../../src/client/index.js';
import { NodeConnection } from '../../src/rpc/client.js';
import type { DescribeQuorumResponse__Output } from '../../src/rpc/generated/riffle/internal/DescribeQuorumResponse.js';
import type { ClusterDescription } from '../../src/client/admin.js';
import { runCli, startCluster, temporaryDir, waitFor, type TestCluster } from '../helpers/cluster.js';

const data = temporaryDir('riffle-cluster-');
let cluster: TestCluster;
let client: RiffleClient;

async function quorumSeenBy(nodeId: number): Promise<DescribeQuorumResponse__Output> {
  const connection = new NodeConnection(`127.0.3.${nodeId}:19093`);
  try {
    return await connection.call<DescribeQuorumResponse__Output>('riffle.internal.Controller', 'DescribeQuorum', {}, 2_000);
  } finally {
    connection.close();
  }
}

async function describe3(nodeId: number): Promise<ClusterDescription> {
  const local = new RiffleClient({ bootstrap: `127.0.3.${nodeId}:19094` });
  try {
    return await new Admin(local).describeCluster();
  } finally {
    local.close();
  }
}

beforeAll(async () => {
  cluster = await startCluster({ subnet: '127.0.3', dataDir: data.dir, controllers: 3, extraArgs: ['--metadata-snapshot-entries', '20'] });
  client = new RiffleClient({ bootstrap: cluster.bootstrap });
}, 90_000);

afterAll(async () => {
  client?.close();
  await cluster?.stopAll();
  data.remove();
});

describe('controller quorum', () => {
  it('places replicas on distinct brokers and AZs, with leaders spread', async () => {
    await new Admin(client).createTopic({ name: 'placed', partitions: 6, replicationFactor: 3 });
    const topic = await new Admin(client).describeTopic('placed');
    for (const partition of topic.partitions) {
      expect(new Set(partition.replicaNodes).size).toBe(3);
      expect(partition.isrNodes.sort()).toEqual([...partition.replicaNodes].sort());
    }
    // Placement spreads preferred leaders counting what the cluster already holds (the
    // __consumer_offsets topic the cluster creates at start), so the spread is even overall.
    const leaders = new Map<number, number>();
    for (const name of ['placed', '__consumer_offsets']) {
      const described = await waitFor(async () => {
        const candidate = await new Admin(client).describeTopic(name);
        return candidate.partitions.every((partition) => partition.leaderId === partition.replicaNodes[0]) ? candidate : undefined;
      }, { timeoutMs: 20_000, what: `${name} led by its preferred replicas` });
      for (const partition of described.partitions) leaders.set(partition.leaderId, (leaders.get(partition.leaderId) ?? 0) + 1);
    }
    expect(Math.max(...leaders.values()) - Math.min(...leaders.values())).toBeLessThanOrEqual(1);
    const status = await runCli(['cluster', 'status', '--json', '--bootstrap', cluster.bootstrap]);
    const described = JSON.parse(status.stdout) as ClusterDescription;
    expect(described.brokers.map((broker) => [broker.brokerId, broker.rack, broker.state])).toEqual([[1, 'a', 'active'], [2, 'b', 'active'], [3, 'c', 'active']]);
    expect(described.quorum?.voters.map((voter) => voter.nodeId)).toEqual([1, 2, 3]);
    expect(described.partitionCount).toBeGreaterThanOrEqual(6);
  });

  it('refuses bad admin requests with typed errors', async () => {
    const admin = new Admin(client);
    await expect(admin.createTopic({ name: 'placed' })).rejects.toMatchObject({ errorName: 'TOPIC_ALREADY_EXISTS' });
    await expect(admin.createTopic({ name: 'bad name!' })).rejects.toMatchObject({ errorName: 'INVALID_TOPIC_EXCEPTION' });
    await expect(admin.createTopic({ name: 'a'.repeat(250) })).rejects.toMatchObject({ errorName: 'INVALID_TOPIC_EXCEPTION' });
    await expect(admin.createTopic({ name: 'zero', partitions: 0 })).rejects.toMatchObject({ errorName: 'INVALID_PARTITIONS' });
    await expect(admin.createTopic({ name: 'wide', replicationFactor: 4 })).rejects.toMatchObject({ errorName: 'INVALID_REPLICATION_FACTOR' });
    await expect(admin.createTopic({ name: 'conf', configs: { 'no.such': '1' } })).rejects.toMatchObject({ errorName: 'INVALID_CONFIG' });
    await expect(admin.deleteTopic('never-was')).rejects.toMatchObject({ errorName: 'UNKNOWN_TOPIC_OR_PARTITION' });
    await expect(admin.describeTopic('never-was')).rejects.toMatchObject({ errorName: 'UNKNOWN_TOPIC_OR_PARTITION' });
  });

  it('elects a new active controller after kill -9 of the active one; the old one rejoins as a standby', async () => {
    const before = await quorumSeenBy(1);
    const killed = before.leaderId;
    expect([1, 2, 3]).toContain(killed);
    await cluster.nodes.get(killed)!.kill();
    const killedAt = Date.now();
    const survivor = [1, 2, 3].find((id) => id !== killed)!;
    const after = await waitFor(async () => {
      const quorum = await quorumSeenBy(survivor);
      return quorum.leaderId > 0 && quorum.leaderId !== killed ? quorum : undefined;
    }, { timeoutMs: 10_000, what: 'a new Raft leader' });
    // Topic creation works again through a surviving broker.
    const survivorClient = new RiffleClient({ bootstrap: `127.0.3.${survivor}:19094` });
    try {
      await waitFor(async () => {
        await new Admin(survivorClient).createTopic({ name: `after-failover-${killed}`, partitions: 3, replicationFactor: 2 });
        return true;
      }, { timeoutMs: 10_000, intervalMs: 100, what: 'topic creation after the failover' });
    } finally {
      survivorClient.close();
    }
    console.log(`controller failover: node ${killed} killed, node ${after.leaderId} active, topic created ${Date.now() - killedAt} ms after the kill`);
    await cluster.start(killed);
    await cluster.nodes.get(killed)!.waitReady(30_000);
    const rejoined = await quorumSeenBy(killed);
    expect(rejoined.leaderId).not.toBe(killed);
    expect(rejoined.leaderId).toBeGreaterThan(0);
  }, 90_000);

  it('fences a killed broker, re-elects its partitions from the ISR, and takes it back with a new epoch', async () => {
    await new Admin(client).createTopic({ name: 'fencing', partitions: 3, replicationFactor: 3 });
    const before = await describe3(1);
    const victim = 3;
    const epochBefore = before.brokers.find((broker) => broker.brokerId === victim)!.brokerEpoch;
    await cluster.nodes.get(victim)!.kill();
    await waitFor(async () => (await describe3(1)).brokers.find((broker) => broker.brokerId === victim)?.state === 'fenced', { timeoutMs: 15_000, what: 'broker 3 fenced' });
    const topic = await waitFor(async () => {
      const described = await new Admin(client).describeTopic('fencing');
      return described.partitions.every((partition) => partition.leaderId !== victim && partition.leaderId > 0) ? described : undefined;
    }, { timeoutMs: 10_000, what: 'new leaders for the fenced broker\'s partitions' });
    for (const partition of topic.partitions) expect(partition.isrNodes).not.toContain(victim);
    await cluster.start(victim);
    await cluster.nodes.get(victim)!.waitReady(30_000);
    const after = await describe3(victim);
    const registration = after.brokers.find((broker) => broker.brokerId === victim)!;
    expect(registration.state).toBe('active');
    expect(registration.brokerEpoch).toBeGreaterThan(epochBefore);
    expect(after.metadataOffset).toBeGreaterThanOrEqual(before.metadataOffset);
  }, 90_000);

  it('moves leaderships away before a broker stops on SIGTERM (controlled shutdown)', async () => {
    await new Admin(client).createTopic({ name: 'graceful', partitions: 6, replicationFactor: 3 });
    const victim = 2;
    await waitFor(async () => (await new Admin(client).describeTopic('graceful')).partitions.some((partition) => partition.leaderId === victim), {
      timeoutMs: 10_000, what: 'broker 2 leading a partition',
    });
    const node = cluster.nodes.get(victim)!;
    expect(await node.stop()).toBe(0);
    // Leaders moved during the shutdown itself, long before a session timeout could fence it.
    const topic = await new Admin(client).describeTopic('graceful');
    for (const partition of topic.partitions) expect(partition.leaderId).not.toBe(victim);
    await cluster.start(victim);
    await cluster.nodes.get(victim)!.waitReady(30_000);
  }, 90_000);

  it('brings a broker that is behind the controller log start up to date with a snapshot', async () => {
    // The controllers compact their log every 20 entries; a new broker starts from nothing.
    const admin = new Admin(client);
    for (let index = 0; index < 25; index++) await admin.createTopic({ name: `churn-${index}`, partitions: 1, replicationFactor: 1 });
    const late = await cluster.start(4);
    await late.waitReady(30_000);
    const metrics = await (await fetch(`${late.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/riffle_broker_metadata_deliveries_total\{kind="snapshot",node="4"\} [1-9]/);
    const lateClient = new RiffleClient({ bootstrap: late.bootstrap });
    try {
      const topics = await new Admin(lateClient).listTopics();
      expect(topics.map((topic) => topic.name)).toEqual(expect.arrayContaining(['churn-0', 'churn-24', 'placed']));
    } finally {
      lateClient.close();
    }
  }, 90_000);

  it('takes back a controller node whose disk was lost: it catches up from the Raft leader, recovering until then, and the metadata is intact', async () => {
    const before = await quorumSeenBy(1);
    const leader = before.leaderId;
    // A follower of the quorum, so the leader still counts on what its old disk held.
    const lost = [1, 2, 3].find((id) => id !== leader)!;
    const topicsBefore = (await new Admin(client).listTopics()).map((topic) => topic.name).sort();
    await cluster.nodes.get(lost)!.kill();
    fs.rmSync(path.join(data.dir, `node-${lost}`), { recursive: true, force: true });
    const replaced = await cluster.start(lost);
    // Before, the leader's next heartbeat (its commit index: the old disk's end) failed an
    // assertion on the new node, which stopped.
    await replaced.waitReady(60_000);
    const metrics = await waitFor(async () => {
      const text = await (await fetch(`${replaced.httpUrl}/metrics`)).text();
      return /riffle_raft_recovering\{node="\d+"\} 0/.test(text) ? text : undefined;
    }, { timeoutMs: 30_000, what: 'the replaced controller to finish recovering' });
    expect(metrics).toMatch(/riffle_raft_commit_index\{node="\d+"\} [1-9]/);
    expect(replaced.running).toBe(true);
    expect((await quorumSeenBy(lost)).leaderId).toBeGreaterThan(0);
    const lostClient = new RiffleClient({ bootstrap: replaced.bootstrap });
    try {
      const topics = (await new Admin(lostClient).listTopics()).map((topic) => topic.name).sort();
      expect(topics).toEqual(expect.arrayContaining(topicsBefore));
      // Metadata changes go on (deleted again: the next test counts the replicas on each node).
      await new Admin(lostClient).createTopic({ name: 'after-lost-disk', partitions: 1, replicationFactor: 3 });
      await new Admin(lostClient).deleteTopic('after-lost-disk');
    } finally {
      lostClient.close();
    }
  }, 120_000);

  it('puts the 3 replicas of every partition in 3 AZs on a 6-broker, 3-AZ cluster', async () => {
    // Node 4 (AZ a) joined in the previous test; nodes 5 and 6 bring AZs b and c to two brokers each.
    if (!cluster.nodes.get(4)?.running) await (await cluster.start(4)).waitReady(30_000);
    await Promise.all([5, 6].map(async (id) => (await cluster.start(id)).waitReady(30_000)));
    const status = await describe3(1);
    const azOf = new Map(status.brokers.map((broker) => [broker.brokerId, broker.rack]));
    expect(status.brokers.filter((broker) => broker.state === 'active')).toHaveLength(6);
    await new Admin(client).createTopic({ name: 'six-brokers', partitions: 24, replicationFactor: 3 });
    const topic = await new Admin(client).describeTopic('six-brokers');
    const leadersPerBroker = new Map<number, number>();
    for (const partition of topic.partitions) {
      expect(new Set(partition.replicaNodes.map((id) => azOf.get(id))).size).toBe(3);
      leadersPerBroker.set(partition.leaderId, (leadersPerBroker.get(partition.leaderId) ?? 0) + 1);
    }
    // Placement counts the load earlier topics put on nodes 1-3, so the new replicas go to the
    // emptier brokers; the leaders among them are spread evenly.
    const counts = [...leadersPerBroker.values()];
    expect(counts.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
  }, 90_000);
});
