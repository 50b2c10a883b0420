// Offsets retention (Kafka's offsets.retention.minutes, KIP-211): a group without members loses
// its committed offsets once they are older than the retention; a group with a live member keeps
// them however old they are. One real node on 127.0.13.1 with a 1 s retention.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Admin, GroupAdmin, GroupConsumer, RiffleClient } from '../../src/client/index.js';
import type { NodeProcess } from '../../src/cli/node-process.js';
import { startNode, temporaryDir, waitFor } from '../helpers/cluster.js';

const RETENTION_MS = 1_000;
const data = temporaryDir('riffle-offsets-retention-');
let node: NodeProcess;
let client: RiffleClient;

beforeAll(async () => {
  node = await startNode({ host: '127.0.13.1', dataDir: data.dir, extraArgs: ['--offsets-retention-ms', String(RETENTION_MS), '--offsets-topic-partitions', '4'] });
  client = new RiffleClient({ bootstrap: node.bootstrap, retry: { deadlineMs: 30_000 } });
  await waitFor(async () => (await client.refreshMetadata(['__consumer_offsets'])).topics[0]?.partitions.every((partition) => partition.leaderId >= 0), { timeoutMs: 30_000, what: 'the offsets topic' });
  await new Admin(client).createTopic({ name: 'kept', partitions: 2 });
}, 60_000);

afterAll(async () => {
  client?.close();
  await node?.stop();
  data.remove();
});

describe('offsets retention', () => {
  it('expires the offsets of an empty group and keeps those of a group with a member', async () => {
    const admin = new GroupAdmin(client);
    // An empty group: offsets committed from outside the group protocol (as an admin tool would).
    const outsider = new GroupConsumer(client, { groupId: 'abandoned' });
    await outsider.commitOffsets([{ topic: 'kept', partition: 0, offset: 5 }, { topic: 'kept', partition: 1, offset: 7 }]);
    expect((await admin.fetchOffsets('abandoned')).map((entry) => entry.offset).sort()).toEqual([5, 7]);

    // A group with a live member commits once and then only heartbeats.
    const member = new GroupConsumer(client, { groupId: 'alive', autoCommit: false });
    member.subscribe({ topic: 'kept', fromBeginning: true });
    await member.run({ eachMessage: async () => undefined });
    await waitFor(() => member.assignment().length === 2 || undefined, { timeoutMs: 15_000, what: 'the member to own both partitions' });
    await member.commitOffsets([{ topic: 'kept', partition: 0, offset: 3 }]);

    await waitFor(async () => ((await admin.fetchOffsets('abandoned')).every((entry) => entry.offset < 0) ? true : undefined), { timeoutMs: 20_000, what: 'the abandoned group offsets to expire' });
    // Well past the retention, the member's group still has its offset.
    expect((await admin.fetchOffsets('alive')).find((entry) => entry.partition === 0)?.offset).toBe(3);
    await member.stop();
  });
});
