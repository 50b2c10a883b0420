// Consumer groups on a cluster of three real `riffle server` processes on 127.0.11.1-3 (the
// issue's tests): two groups read one topic independently from their own committed offsets;
// killing a member (kill -9) hands its partitions to the others within the session timeout + 2 s
// with no record skipped and never two owners of a partition; killing the coordinator's broker
// (kill -9) keeps the offsets and the members; a zombie's commit and a reset of an active group are
// refused. Members run as their own processes (fixtures/group-member.mjs) so they can be killed.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Admin, GroupAdmin, GroupConsumer, Producer, RiffleClient } from '../../src/client/index.js';
import type { OffsetCommitResponse__Output } from '../../src/rpc/generated/riffle/v1/OffsetCommitResponse.js';
import type { FindCoordinatorResponse__Output } from '../../src/rpc/generated/riffle/v1/FindCoordinatorResponse.js';
import { errorNameOf } from '../../src/rpc/errors.js';
import { REPO_ROOT, runCli, startCluster, temporaryDir, waitFor, type TestCluster } from '../helpers/cluster.js';

// The broker default. Members give up their partitions a margin (2 s) before the coordinator could
// expire them (group-consumer.ts); a coordinator failover (a 3 s broker session plus loading) must
// fit before that for members to keep their partitions through it, as they do here.
const SESSION_TIMEOUT_MS = 10_000;
const data = temporaryDir('riffle-groups-');
let cluster: TestCluster;
let client: RiffleClient;
const members: Member[] = [];

beforeAll(async () => {
  cluster = await startCluster({ subnet: '127.0.11', dataDir: data.dir, controllers: 3, extraArgs: ['--group-session-timeout-ms', String(SESSION_TIMEOUT_MS)] });
  client = new RiffleClient({ bootstrap: cluster.bootstrap, retry: { deadlineMs: 30_000 } });
  await waitFor(async () => (await client.refreshMetadata(['__consumer_offsets'])).topics[0]?.partitions.every((partition) => partition.leaderId >= 0), { timeoutMs: 30_000, what: 'the offsets topic' });
}, 90_000);

afterAll(async () => {
  for (const member of members) member.child.kill('SIGKILL');
  client?.close();
  await cluster?.stopAll();
  data.remove();
});

interface MemberEvent {
  event: string;
  t: number;
  topic?: string;
  partition?: number;
  offset?: number;
  partitions?: { topic: string; partition: number }[];
  message?: string;
}

class Member {
  readonly events: MemberEvent[] = [];
  readonly child: ChildProcess;
  exited = false;

  constructor(readonly name: string, groupId: string, topics: string[], settings: { pauseOnAssign?: boolean } = {}) {
    this.child = spawn(process.execPath, [path.join(REPO_ROOT, 'test', 'integration', 'fixtures', 'group-member.mjs')], {
      env: { ...process.env, RIFFLE_MEMBER: JSON.stringify({ bootstrap: cluster.bootstrap, groupId, topics, ...settings }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.events.push(JSON.parse(line) as MemberEvent));
    this.child.once('exit', () => (this.exited = true));
    members.push(this);
  }

  /** What the member owns now, from its assignment log. */
  owned(): Set<string> {
    const owned = new Set<string>();
    for (const event of this.events) {
      for (const partition of event.partitions ?? []) {
        const key = `${partition.topic}-${partition.partition}`;
        if (event.event === 'assigned') owned.add(key);
        else if (event.event === 'revoked' || event.event === 'lost') owned.delete(key);
      }
    }
    return owned;
  }

  records(): MemberEvent[] {
    return this.events.filter((event) => event.event === 'record');
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    await waitFor(() => this.exited, { timeoutMs: 20_000, what: `${this.name} to stop` });
  }
}

async function produce(topic: string, count: number, prefix: string): Promise<void> {
  const producer = new Producer(client, { lingerMs: 2 });
  await Promise.all(Array.from({ length: count }, (_, index) => producer.send({ topic, key: `${prefix}-${index}`, value: `${prefix}-${index}` })));
  await producer.close();
}

/** Offsets of a topic's partitions up to their high watermarks, as "partition:offset" strings. */
async function allOffsets(topic: string): Promise<Set<string>> {
  const description = await new Admin(client).describeTopic(topic);
  const all = new Set<string>();
  for (const partition of description.partitions) {
    const end = Number(partition.highWatermark);
    expect(end).toBeGreaterThanOrEqual(0);
    for (let offset = 0; offset < end; offset++) all.add(`${partition.partitionIndex}:${offset}`);
  }
  return all;
}

function processedBy(group: Member[], topic: string): Set<string> {
  const seen = new Set<string>();
  for (const member of group) for (const record of member.records()) if (record.topic === topic) seen.add(`${record.partition}:${record.offset}`);
  return seen;
}

/** From the members' assignment logs: no partition is owned by two members at any instant. */
function expectNoOverlappingOwnership(group: Member[], endOf: Map<Member, number>): void {
  const intervals = new Map<string, { member: string; from: number; to: number }[]>();
  for (const member of group) {
    const open = new Map<string, number>();
    const close = (key: string, at: number): void => {
      const from = open.get(key);
      if (from === undefined) return;
      open.delete(key);
      intervals.set(key, [...(intervals.get(key) ?? []), { member: member.name, from, to: at }]);
    };
    for (const event of member.events) {
      for (const partition of event.partitions ?? []) {
        const key = `${partition.topic}-${partition.partition}`;
        if (event.event === 'assigned') open.set(key, event.t);
        else if (event.event === 'revoked' || event.event === 'lost') close(key, event.t);
      }
    }
    for (const key of [...open.keys()]) close(key, endOf.get(member) ?? Number.POSITIVE_INFINITY);
  }
  for (const [key, list] of intervals) {
    const sorted = list.sort((a, b) => a.from - b.from);
    for (let index = 1; index < sorted.length; index++) {
      expect(sorted[index]!.from, `${key}: ${sorted[index]!.member} got it at ${sorted[index]!.from} while ${sorted[index - 1]!.member} held it until ${sorted[index - 1]!.to}`)
        .toBeGreaterThanOrEqual(sorted[index - 1]!.to);
    }
  }
}

/** A metric (name, or name and the start of its labels) summed over the cluster's nodes. */
async function clusterMetric(prefix: string): Promise<number> {
  let total = 0;
  for (const node of cluster.nodes.values()) {
    const response = await fetch(`http://${node.options.host}:${node.options.httpPort}/metrics`).catch(() => undefined);
    const text = response?.ok ? await response.text() : '';
    for (const line of text.split('\n')) if (line.startsWith(prefix) && (line[prefix.length] === ' ' || line[prefix.length] === '{' || line[prefix.length] === ',')) total += Number(line.split(' ').pop());
  }
  return total;
}

async function coordinatorOf(groupId: string): Promise<number> {
  const response = await client.callAny<FindCoordinatorResponse__Output>('riffle.v1.Kafka', 'FindCoordinator', { keyType: 0, coordinatorKeys: [groupId] });
  expect(response.coordinators[0]!.errorCode).toBe(0);
  return response.coordinators[0]!.nodeId;
}

describe('consumer groups', () => {
  it('two groups read the same topic independently, each resuming from its own committed offsets', async () => {
    await new Admin(client).createTopic({ name: 'shared', partitions: 3, replicationFactor: 3 });
    await produce('shared', 300, 'r');
    const args = (group: string, max: number): string[] => ['consume', 'shared', '--group', group, '--from-beginning', '--max-messages', String(max), '--bootstrap', cluster.bootstrap];
    const firstA = await runCli(args('alpha', 100), { timeoutMs: 60_000 });
    expect(firstA.code, firstA.stderr).toBe(0);
    const all = await runCli(args('beta', 300), { timeoutMs: 60_000 });
    expect(all.code, all.stderr).toBe(0);
    const secondA = await runCli(args('alpha', 200), { timeoutMs: 60_000 });
    expect(secondA.code, secondA.stderr).toBe(0);
    const lines = (output: string): string[] => output.trim().split('\n').filter(Boolean);
    const a1 = lines(firstA.stdout);
    const a2 = lines(secondA.stdout);
    expect(a1).toHaveLength(100);
    expect(a2).toHaveLength(200);
    // alpha's second run starts right after what its first printed: together, each record once.
    expect(new Set([...a1, ...a2]).size).toBe(300);
    expect(new Set(lines(all.stdout)).size).toBe(300);
    const alpha = await new GroupAdmin(client).fetchOffsets('alpha');
    const beta = await new GroupAdmin(client).fetchOffsets('beta');
    expect(alpha.reduce((sum, entry) => sum + entry.offset, 0)).toBe(300);
    expect(beta.reduce((sum, entry) => sum + entry.offset, 0)).toBe(300);
    const listed = await runCli(['group', 'list', '--json', '--bootstrap', cluster.bootstrap]);
    expect((JSON.parse(listed.stdout) as { groupId: string; groupState: string }[]).filter((group) => ['alpha', 'beta'].includes(group.groupId)).map((group) => group.groupState)).toEqual(['empty', 'empty']);
    const described = await runCli(['group', 'describe', 'alpha', '--json', '--bootstrap', cluster.bootstrap]);
    const description = JSON.parse(described.stdout) as { offsets: { lag: number; logEndOffset: number }[] };
    expect(description.offsets.every((offset) => offset.lag === 0 && offset.logEndOffset >= 0)).toBe(true);
  }, 180_000);

  it('assigns members partitions with a replica in their AZ, and tells them of rebalances through held (long-poll) heartbeats', async () => {
    // RF 1: each partition lives in one AZ (nodes 1-3 are in a, b, c).
    await new Admin(client).createTopic({ name: 'racks', partitions: 6, replicationFactor: 1 });
    const metadata = await client.refreshMetadata(['racks']);
    const rackOf = new Map(metadata.brokers.map((broker) => [broker.nodeId, broker.rack]));
    const replicaRack = new Map(metadata.topics[0]!.partitions.map((partition) => [partition.partitionIndex, rackOf.get(partition.replicaNodes[0]!)!]));
    const racks = [...new Set(rackOf.values())].sort();
    expect(new Set(replicaRack.values()).size).toBeGreaterThanOrEqual(2);
    const consumers = racks.map((rack) => new GroupConsumer(client, { groupId: 'by-rack', rack }));
    try {
      for (const consumer of consumers) {
        consumer.subscribe({ topics: ['racks'] });
        await consumer.run({ eachMessage: async () => undefined });
      }
      const balanced = (): boolean => {
        const sizes = consumers.map((consumer) => consumer.assignment().length);
        return sizes.reduce((sum, size) => sum + size, 0) === 6 && Math.max(...sizes) - Math.min(...sizes) <= 1;
      };
      // As many partitions in their member's AZ as the balance (two each) allows: all of an AZ's
      // partitions up to two.
      const inRackPossible = racks.reduce((sum, rack) => sum + Math.min(2, [...replicaRack.values()].filter((value) => value === rack).length), 0);
      const inRack = (): number => consumers.reduce((sum, consumer, index) => sum + consumer.assignment().filter(({ partition }) => replicaRack.get(partition) === racks[index]).length, 0);
      await waitFor(() => balanced() && inRack() === inRackPossible, { timeoutMs: 60_000, what: 'every member to own the partitions of its AZ' }).catch((error: unknown) => {
        const owned = consumers.map((consumer, index) => `${racks[index]}: ${consumer.assignment().map(({ partition }) => `${partition}(${replicaRack.get(partition)})`).join(' ')}`);
        throw new Error(`${String(error)}; ${inRack()} of ${inRackPossible} in their AZ; ${owned.join('; ')}`);
      });
      // Settled members' heartbeats are held by the coordinator; a member joining wakes them
      // (answered by the change, not by the interval) and it gets its share.
      await waitFor(async () => (await clusterMetric('riffle_group_heartbeats_parked')) >= consumers.length, { timeoutMs: 30_000, what: 'the settled members\' heartbeats to be held' });
      const changedBefore = await clusterMetric('riffle_group_parked_heartbeats_total{end="changed"');
      const newcomer = new GroupConsumer(client, { groupId: 'by-rack', rack: racks[0] });
      consumers.push(newcomer);
      newcomer.subscribe({ topics: ['racks'] });
      await newcomer.run({ eachMessage: async () => undefined });
      await waitFor(() => newcomer.assignment().length >= 1, { timeoutMs: 60_000, what: 'the newcomer to get partitions' });
      expect(await clusterMetric('riffle_group_parked_heartbeats_total{end="changed"')).toBeGreaterThan(changedBefore);
    } finally {
      await Promise.all(consumers.map((consumer) => consumer.stop()));
    }
  }, 120_000);

  it("rejects a zombie member's commit, refuses to reset an active group, resets and deletes an inactive one", async () => {
    await new Admin(client).createTopic({ name: 'fenced', partitions: 2, replicationFactor: 3 });
    const first = new GroupConsumer(client, { groupId: 'zombies', autoCommit: false, maxWaitMs: 100 });
    first.subscribe({ topics: ['fenced'] });
    await first.run({ eachMessage: async () => undefined });
    await waitFor(() => first.assignment().length === 2, { timeoutMs: 20_000, what: 'the first member to own both partitions' });
    const zombie = first.member();
    const second = new GroupConsumer(client, { groupId: 'zombies', autoCommit: false, maxWaitMs: 100 });
    second.subscribe({ topics: ['fenced'] });
    await second.run({ eachMessage: async () => undefined });
    await waitFor(() => second.assignment().length === 1 && first.member().memberEpoch > zombie.memberEpoch, { timeoutMs: 20_000, what: 'the second member to get a partition' });
    // The first member's old epoch is a zombie's now.
    const coordinator = await coordinatorOf('zombies');
    const broker = client.knownBrokers().find((candidate) => candidate.nodeId === coordinator)!;
    const response = await client.connection(broker.address).call<OffsetCommitResponse__Output>('riffle.v1.Kafka', 'OffsetCommit', {
      groupId: 'zombies', generationIdOrMemberEpoch: zombie.memberEpoch, memberId: zombie.memberId,
      topics: [{ name: 'fenced', partitions: [{ partitionIndex: 0, committedOffset: 5, committedLeaderEpoch: -1, committedMetadata: '' }] }],
    }, 10_000);
    expect(errorNameOf(response.topics[0]!.partitions[0]!.errorCode)).toBe('STALE_MEMBER_EPOCH');
    const refused = await runCli(['group', 'reset-offsets', 'zombies', '--topic', 'fenced', '--to-earliest', '--bootstrap', cluster.bootstrap]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('NON_EMPTY_GROUP');
    const refusedDelete = await runCli(['group', 'delete', 'zombies', '--bootstrap', cluster.bootstrap]);
    expect(refusedDelete.stderr).toContain('NON_EMPTY_GROUP');
    await Promise.all([first.stop(), second.stop()]);
    const reset = await runCli(['group', 'reset-offsets', 'zombies', '--topic', 'fenced', '--to-offset', '0=3', '--to-offset', '1=4', '--json', '--bootstrap', cluster.bootstrap]);
    expect(reset.code, reset.stderr).toBe(0);
    expect(await new GroupAdmin(client).fetchOffsets('zombies')).toEqual([
      { topic: 'fenced', partition: 0, offset: 3, metadata: '' }, { topic: 'fenced', partition: 1, offset: 4, metadata: '' },
    ]);
    const deleted = await runCli(['group', 'delete', 'zombies', '--bootstrap', cluster.bootstrap]);
    expect(deleted.code, deleted.stderr).toBe(0);
    const gone = await runCli(['group', 'describe', 'zombies', '--bootstrap', cluster.bootstrap]);
    expect(gone.stderr).toContain('GROUP_ID_NOT_FOUND');
  }, 120_000);

  it('a member that pauses everything it owns fetches none of it, stays responsive and in the group, and reads it all once resumed', async () => {
    await new Admin(client).createTopic({ name: 'backpressure', partitions: 2, replicationFactor: 3 });
    await produce('backpressure', 40, 'p');
    const member = new Member('pausing', 'pausing-group', ['backpressure'], { pauseOnAssign: true });
    await waitFor(() => member.owned().size === 2 && member.events.filter((event) => event.event === 'paused').flatMap((event) => event.partitions ?? []).length === 2, { timeoutMs: 20_000, what: 'the member to own and pause both partitions' });
    // Paused from onPartitionsAssigned, so nothing is fetched. The member must still handle the
    // signal: a poll that answered at once with nothing to fetch made the run loop spin on
    // microtasks, and the process never ran a timer or read a socket again (chaos pause-leader).
    member.child.kill('SIGUSR2');
    await waitFor(() => member.events.some((event) => event.event === 'resumed'), { timeoutMs: 10_000, what: 'the member to resume' });
    const resumedAt = member.events.findIndex((event) => event.event === 'resumed');
    expect(member.events.slice(0, resumedAt).filter((event) => event.event === 'record')).toEqual([]);
    await waitFor(() => new Set(member.records().map((record) => `${record.partition}:${record.offset}`)).size === 40, { timeoutMs: 20_000, what: 'all 40 records after resuming' });
    expect(member.events.filter((event) => event.event === 'lost' || event.event === 'error')).toEqual([]);
    await member.stop();
    expect(member.events.some((event) => event.event === 'stopped')).toBe(true);
  }, 60_000);

  it('hands a killed member\'s partitions to the others within the session timeout + 2 s, skipping nothing, never with two owners; then survives the loss of the coordinator', async () => {
    await new Admin(client).createTopic({ name: 'work', partitions: 6, replicationFactor: 3 });
    const group = [new Member('m1', 'workers', ['work']), new Member('m2', 'workers', ['work']), new Member('m3', 'workers', ['work'])];
    await waitFor(() => group.every((member) => member.owned().size === 2), { timeoutMs: 30_000, what: 'two partitions per member' });
    await produce('work', 600, 'a');
    await waitFor(() => group.every((member) => member.records().length > 0), { timeoutMs: 30_000, what: 'every member to consume' });

    // kill -9 one member: its partitions go to the others once its session expires.
    const victim = group[0]!;
    const victimPartitions = [...victim.owned()];
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    await waitFor(() => victim.exited, { what: 'the member to die' });
    await produce('work', 600, 'b');
    const survivors = group.slice(1);
    const reassignedAt = await waitFor(() => {
      const owned = new Set(survivors.flatMap((member) => [...member.owned()]));
      if (!victimPartitions.every((partition) => owned.has(partition))) return undefined;
      return Math.max(...survivors.flatMap((member) => member.events.filter((event) => event.event === 'assigned').map((event) => event.t)));
    }, { timeoutMs: SESSION_TIMEOUT_MS + 10_000, what: "the dead member's partitions to be reassigned" });
    expect(reassignedAt - killedAt).toBeLessThanOrEqual(SESSION_TIMEOUT_MS + 2_000);
    let expected = await allOffsets('work');
    await waitFor(() => [...expected].every((offset) => processedBy(group, 'work').has(offset)), { timeoutMs: 30_000, what: 'every record to be processed' });

    // kill -9 the coordinator's broker: a new coordinator loads the group from the offsets
    // topic; the members keep their ids and go on; committed offsets are still there.
    const admin = new GroupAdmin(client);
    await waitFor(async () => (await admin.fetchOffsets('workers')).reduce((sum, entry) => sum + entry.offset, 0) === expected.size, { timeoutMs: 20_000, what: 'offsets committed' });
    const before = await admin.describeGroup('workers');
    const committedBefore = await admin.fetchOffsets('workers');
    const coordinator = await coordinatorOf('workers');
    await cluster.nodes.get(coordinator)!.kill();
    await produce('work', 300, 'c');
    await waitFor(async () => (await coordinatorOf('workers')) !== coordinator, { timeoutMs: 30_000, what: 'a new coordinator' });
    expected = await allOffsets('work');
    await waitFor(() => [...expected].every((offset) => processedBy(group, 'work').has(offset)), { timeoutMs: 45_000, what: 'every record after the coordinator loss' });
    const after = await waitFor(async () => {
      const description = await admin.describeGroup('workers');
      return description.groupState === 'stable' ? description : undefined;
    }, { timeoutMs: 30_000, what: 'the group to be stable under its new coordinator' });
    expect(after.members.map((member) => member.memberId).sort()).toEqual(before.members.map((member) => member.memberId).sort());
    const committedAfter = await admin.fetchOffsets('workers');
    for (const entry of committedBefore) {
      expect(committedAfter.find((candidate) => candidate.partition === entry.partition)!.offset).toBeGreaterThanOrEqual(entry.offset);
    }
    expect(survivors.every((member) => member.events.every((event) => event.event !== 'lost'))).toBe(true);

    await Promise.all(survivors.map((member) => member.stop()));
    const endOf = new Map<Member, number>([[victim, killedAt]]);
    expectNoOverlappingOwnership(group, endOf);
  }, 240_000);
});
