// The ReplicaManager's side of ISR proposals: one that got no answer (the controller may or may
// not have committed it) stays pending and is sent again, unchanged, until the controller answers;
// one the controller answered with a newer partition waits for the metadata, not sent again.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ReplicaManager, type AlterIsrAnswer } from '../../broker/replica-manager.js';
import type { IsrProposal, Partition } from '../../broker/partition.js';
import { RiffleError, errorNameOf } from '../../src/rpc/errors.js';
import { Registry } from '../../src/metrics/index.js';
import { ManualClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';
import { createHarness, createTopic, startBroker } from '../controller/controller-harness.js';
import { makeTempDir, removeDir } from './log/helpers.js';

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

/** A controller with brokers 1-3 (AZs a, b, c) and topic 'orders': one partition, RF 3. */
async function brokersWithOrders() {
  const harness = createHarness();
  const epochs = new Map<number, number>();
  for (const [nodeId, rack] of [[1, 'a'], [2, 'b'], [3, 'c']] as const) epochs.set(nodeId, await startBroker(harness, nodeId, rack));
  const topicId = await createTopic(harness, 'orders', 1, 3);
  return { harness, epochs, topicId, created: harness.controller.image.partition(topicId, 0)! };
}

type Setup = Awaited<ReturnType<typeof brokersWithOrders>>;

/** The leader's AlterPartition for `proposal`, as node.ts sends it (each member with its broker epoch), and its answer. */
async function sendProposal({ harness, epochs, topicId, created }: Setup, proposal: IsrProposal): Promise<{ errorCode: number; answer: AlterIsrAnswer }> {
  const leaderId = created.leader;
  const response = await harness.controller.alterPartition({
    brokerId: leaderId, brokerEpoch: epochs.get(leaderId)!, topicId, partition: 0,
    leaderEpoch: proposal.leaderEpoch, partitionEpoch: proposal.partitionEpoch,
    newIsrWithEpochs: proposal.isr.map((id) => ({ brokerId: id, brokerEpoch: id === leaderId ? epochs.get(leaderId)! : proposal.followerEpochs.get(id) ?? -1 })),
  });
  const error = response.errorCode === 0 ? null : new RiffleError(errorNameOf(response.errorCode), response.errorMessage);
  return { errorCode: response.errorCode, answer: { error, partitionEpoch: response.partition!.partitionEpoch } };
}

describe('ReplicaManager ISR proposals', () => {
  it('sends an unanswered proposal again at its own epochs, and an answered one not until the metadata settles it', async () => {
    const setup = await brokersWithOrders();
    const { harness, epochs, topicId, created } = setup;
    const leaderId = created.leader;
    const followerId = created.replicas.find((id) => id !== leaderId)!;
    // The ISR shrinks to the leader alone, so the follower's next fetch makes it a candidate.
    const shrink = await harness.controller.alterPartition({
      brokerId: leaderId, brokerEpoch: epochs.get(leaderId)!, topicId, partition: 0,
      leaderEpoch: created.leaderEpoch, partitionEpoch: created.partitionEpoch, newIsr: [leaderId],
    });
    expect(shrink.errorCode).toBe(0);

    const sent: IsrProposal[] = [];
    const alterIsr = async (_partition: Partition, proposal: IsrProposal): Promise<AlterIsrAnswer> => {
      sent.push(proposal);
      // The first attempt is lost after the controller committed it: no answer reaches the leader.
      const { answer } = await sendProposal(setup, proposal);
      if (sent.length === 1) throw new Error('connection reset');
      return answer;
    };
    const manager = new ReplicaManager({ selfId: leaderId, dataDir: dir, clock: new ManualClock(), logger: silentLogger, registry: new Registry(), alterIsr });
    try {
      await manager.sync(harness.controller.image);
      const partition = manager.findPartition('orders', 0)!;
      expect(partition.isr).toEqual([leaderId]);
      partition.recordFollowerFetch(followerId, 0, epochs.get(followerId)!);
      manager.startIsrMaintenance(20);

      await expect.poll(() => sent.length, { timeout: 5_000 }).toBeGreaterThanOrEqual(2);
      // The same proposal both times; the second answer (INVALID_UPDATE_VERSION: the first one
      // had committed) names a newer partition epoch, so the leader now waits for the metadata.
      expect(sent[1]).toBe(sent[0]);
      expect(sent[0]!.isr).toEqual([leaderId, followerId].sort((a, b) => a - b));
      await expect.poll(() => partition.pendingIsrProposal?.answered).toBe(true);
      const attempts = sent.length;
      expect(partition.maximalIsr).toContain(followerId);
      // Ten more maintenance rounds (every 20 ms) send nothing more: an absence needs a window.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(sent.length).toBe(attempts);

      await manager.sync(harness.controller.image);
      expect(partition.isr).toEqual([leaderId, followerId].sort((a, b) => a - b));
      expect(partition.pendingIsrProposal).toBeNull();
    } finally {
      await manager.close();
    }
  });
});

describe('ReplicaManager replica lag time', () => {
  it('takes a follower out of the ISR once it has not caught up for the configured lag time, not before', async () => {
    const { harness, epochs, created } = await brokersWithOrders();
    const leaderId = created.leader;
    const [fetching, silent] = created.replicas.filter((id) => id !== leaderId) as [number, number];
    const sent: IsrProposal[] = [];
    const alterIsr = async (_partition: Partition, proposal: IsrProposal): Promise<AlterIsrAnswer> => {
      sent.push(proposal);
      return { error: null, partitionEpoch: proposal.partitionEpoch + 1 };
    };
    const clock = new ManualClock();
    const manager = new ReplicaManager({ selfId: leaderId, dataDir: dir, clock, logger: silentLogger, registry: new Registry(), alterIsr, replicaLagTimeMs: 2_000 });
    try {
      await manager.sync(harness.controller.image);
      const partition = manager.findPartition('orders', 0)!;
      expect([...partition.isr].sort()).toEqual([1, 2, 3]);
      manager.startIsrMaintenance(10);
      // 1.9 s on, one follower still fetches from the log end and the other has been silent:
      // both are within the lag time, so rounds of maintenance propose nothing.
      clock.advance(1_900);
      partition.recordFollowerFetch(fetching, 0, epochs.get(fetching)!);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(sent).toEqual([]);
      // Past 2 s the silent one leaves (under the 10 s default it would stay for 8 s more).
      clock.advance(200);
      await expect.poll(() => sent.length, { timeout: 5_000 }).toBe(1);
      expect(sent[0]!.isr).toEqual([leaderId, fetching].sort((a, b) => a - b));
      expect(sent[0]!.isr).not.toContain(silent);
    } finally {
      await manager.close();
    }
  });
});

describe('ReplicaManager and a restarted follower (KIP-903)', () => {
  it('does not propose a follower that registered again on the word of its old process, and proposes it once the new one has caught up', async () => {
    const setup = await brokersWithOrders();
    const { harness, epochs, created } = setup;
    const leaderId = created.leader;
    const [restarted] = created.replicas.filter((id) => id !== leaderId) as [number];
    const sent: IsrProposal[] = [];
    const answers: number[] = [];
    const alterIsr = async (_partition: Partition, proposal: IsrProposal): Promise<AlterIsrAnswer> => {
      sent.push(proposal);
      const { errorCode, answer } = await sendProposal(setup, proposal);
      answers.push(errorCode);
      return answer;
    };
    const manager = new ReplicaManager({ selfId: leaderId, dataDir: dir, clock: new ManualClock(), logger: silentLogger, registry: new Registry(), alterIsr });
    try {
      await manager.sync(harness.controller.image);
      const partition = manager.findPartition('orders', 0)!;
      // Its old process had fetched everything (the log is empty: offset 0 is the end).
      partition.recordFollowerFetch(restarted, 0, epochs.get(restarted)!);
      // It restarts and registers again: the controller takes it out of the ISR.
      const newEpoch = await startBroker(harness, restarted, 'b', `inc-${restarted}-again`);
      await manager.sync(harness.controller.image);
      expect(partition.isr).not.toContain(restarted);
      manager.startIsrMaintenance(10);
      // Ten rounds of maintenance: nothing proposed on the old process's word.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(sent).toEqual([]);
      // Its new process fetches from the log end: proposed, at its new epoch, and committed.
      partition.recordFollowerFetch(restarted, 0, newEpoch);
      await expect.poll(() => answers.length, { timeout: 5_000 }).toBe(1);
      expect(sent[0]!.followerEpochs.get(restarted)).toBe(newEpoch);
      expect(answers).toEqual([0]);
      await manager.sync(harness.controller.image);
      expect(partition.isr).toContain(restarted);
    } finally {
      await manager.close();
    }
  });
});
