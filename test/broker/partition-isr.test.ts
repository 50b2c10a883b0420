// A leader's ISR changes: while an expansion waits for the controller the high watermark also
// waits for the member it adds (KIP-497's maximal ISR), and a follower joins the ISR only once it
// has reached the start of the leader's epoch as well as the high watermark (KAFKA-7128). Either
// gap lets a write be acknowledged that a newly electable member lacks: mixed-random seed 4 lost
// ten acknowledged writes when such a member was elected next.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Partition, type PartitionRole } from '../../broker/partition.js';
import { batchOf, makeTempDir, openLog, removeDir, waitFor } from './log/helpers.js';

const ISR_OF_TWO: PartitionRole = { leaderId: 1, leaderEpoch: 3, partitionEpoch: 5, replicas: [1, 2, 3], isr: [1, 2], minInsyncReplicas: 2 };

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

async function leaderWith(role: PartitionRole): Promise<Partition> {
  const { log } = await openLog(dir, { flushPolicy: 'ack' });
  return new Partition('events', 'id', 0, log, 1, role);
}

/** Waits until the leader has written and flushed its log up to `end`. */
async function durableTo(leader: Partition, end: number): Promise<void> {
  await expect.poll(() => leader.logEndOffset).toBe(end);
  await leader.log.waitDurable(end);
}

describe('Partition ISR proposals', () => {
  it('holds the high watermark at the log end of a member a pending expansion adds', async () => {
    const leader = await leaderWith(ISR_OF_TWO);
    const first = leader.append(batchOf(10), -1);
    // The write reaches the log after its producer check: a follower cannot report more.
    await waitFor(() => leader.logEndOffset === 10, 'the first write to reach the log');
    leader.recordFollowerFetch(2, 10, 1);
    await first;
    expect(leader.highWatermark).toBe(10);
    // Follower 3 has caught up to the high watermark: the leader proposes it.
    leader.recordFollowerFetch(3, 10, 1);
    const wanted = leader.wantedIsr();
    expect(wanted).toEqual([1, 2, 3]);
    const proposal = leader.beginIsrProposal(wanted!);
    expect(leader.maximalIsr).toEqual([1, 2, 3]);

    // While the controller commits it, follower 2 fetches a new batch and follower 3 does not.
    const second = leader.append(batchOf(5), -1);
    await waitFor(() => leader.logEndOffset === 15, 'the second write to reach the log');
    leader.recordFollowerFetch(2, 15, 1);
    await durableTo(leader, 15);
    expect(leader.highWatermark).toBe(10);

    // The controller commits ISR [1,2,3]: follower 3 is electable and has everything below 10.
    leader.updateRole({ ...ISR_OF_TWO, partitionEpoch: 6, isr: [1, 2, 3] });
    expect(leader.pendingIsrProposal).toBeNull();
    expect(leader.highWatermark).toBe(10);
    leader.recordFollowerFetch(3, 15, 1);
    const outcome = await second;
    expect(outcome.baseOffset).toBe(10);
    expect(leader.highWatermark).toBe(15);
    expect(proposal.answered).toBe(false);
    await leader.close();
  });

  it('drops a proposal the controller refused with the partition unchanged, and the high watermark moves on', async () => {
    const leader = await leaderWith(ISR_OF_TWO);
    leader.recordFollowerFetch(2, 0, 1);
    leader.recordFollowerFetch(3, 0, 1);
    const proposal = leader.beginIsrProposal(leader.wantedIsr()!);
    const write = leader.append(batchOf(4), -1);
    await waitFor(() => leader.logEndOffset === 4, 'the write to reach the log');
    leader.recordFollowerFetch(2, 4, 1);
    await durableTo(leader, 4);
    expect(leader.highWatermark).toBe(0);
    // A refusal at the proposal's own partition epoch: nothing changed.
    leader.settleIsrProposal(proposal, 5);
    expect(leader.pendingIsrProposal).toBeNull();
    expect(leader.maximalIsr).toEqual([1, 2]);
    await write;
    expect(leader.highWatermark).toBe(4);
    await leader.close();
  });

  it('keeps an answered proposal pending until the metadata brings the newer partition epoch', async () => {
    const leader = await leaderWith(ISR_OF_TWO);
    leader.recordFollowerFetch(2, 0, 1);
    leader.recordFollowerFetch(3, 0, 1);
    const proposal = leader.beginIsrProposal(leader.wantedIsr()!);
    // The controller's copy moved on (this change, or an earlier attempt of it, was committed).
    leader.settleIsrProposal(proposal, 6);
    expect(proposal.answered).toBe(true);
    expect(leader.pendingIsrProposal).toBe(proposal);
    await leader.append(batchOf(4), 0);
    leader.recordFollowerFetch(2, 4, 1);
    await durableTo(leader, 4);
    expect(leader.highWatermark).toBe(0);
    leader.updateRole({ ...ISR_OF_TWO, partitionEpoch: 6, isr: [1, 2, 3] });
    expect(leader.pendingIsrProposal).toBeNull();
    await leader.close();
  });

  it('a shrink pending leaves the high watermark waiting for the member it removes', async () => {
    const leader = await leaderWith({ ...ISR_OF_TWO, isr: [1, 2, 3] });
    leader.beginIsrProposal([1, 2]);
    expect(leader.maximalIsr).toEqual([1, 2, 3]);
    await leader.append(batchOf(3), 0);
    leader.recordFollowerFetch(2, 3, 1);
    await durableTo(leader, 3);
    expect(leader.highWatermark).toBe(0);
    leader.updateRole({ ...ISR_OF_TWO, partitionEpoch: 6, isr: [1, 2] });
    expect(leader.highWatermark).toBe(3);
    await leader.close();
  });

  it('does not take back a follower that reached a new leader high watermark but not the start of its epoch', async () => {
    // A replica that became leader with 20 records from earlier epochs; its high watermark starts
    // at the log start and catches up only as the ISR fetches (KIP-207).
    const { log } = await openLog(dir, { flushPolicy: 'ack' });
    log.append(batchOf(20), 2);
    await log.waitDurable(20);
    const leader = new Partition('events', 'id', 0, log, 1, { ...ISR_OF_TWO, isr: [1, 2] });
    expect(leader.highWatermark).toBe(0);
    // Follower 3 is at 12, at or past the new leader's high watermark (0), but short of 20: what
    // the previous leader acknowledged may lie between.
    leader.recordFollowerFetch(3, 12, 1);
    expect(leader.wantedIsr()).toBeNull();
    leader.recordFollowerFetch(2, 20, 1);
    expect(leader.highWatermark).toBe(20);
    leader.recordFollowerFetch(3, 20, 1);
    expect(leader.wantedIsr()).toEqual([1, 2, 3]);
    await leader.close();
  });

  it('takes back a restarted follower only on fetches from its new registration (KIP-903)', async () => {
    const leader = await leaderWith(ISR_OF_TWO);
    const write = leader.append(batchOf(10), -1);
    await waitFor(() => leader.logEndOffset === 10, 'the write to reach the log');
    // Follower 3, registered at epoch 7, fetched everything; then it restarted (a new disk, say)
    // and registered at epoch 12. Until its new process fetches, what the leader knows of it is
    // the old process's word.
    leader.recordFollowerFetch(2, 10, 4);
    leader.recordFollowerFetch(3, 10, 7);
    await write;
    expect(leader.highWatermark).toBe(10);
    const registeredAt = new Map([[2, 4], [3, 12]]);
    const eligible = (id: number, brokerEpoch: number): boolean => registeredAt.get(id) === brokerEpoch;
    expect(leader.wantedIsr(eligible)).toBeNull();
    // The new process starts from an empty log: not caught up, not taken back.
    leader.recordFollowerFetch(3, 0, 12);
    expect(leader.recordedFollowerEnd(3)).toBe(0);
    expect(leader.wantedIsr(eligible)).toBeNull();
    // A late fetch of the old process (or one forged with its epoch) is recorded, but cannot
    // make the follower eligible: its registration is not the current one.
    leader.recordFollowerFetch(3, 10, 7);
    expect(leader.recordedFollowerEnd(3)).toBe(10);
    expect(leader.wantedIsr(eligible)).toBeNull();
    leader.recordFollowerFetch(3, 0, 12);
    // Caught up under its new registration: taken back, and the proposal names that registration.
    leader.recordFollowerFetch(3, 10, 12);
    expect(leader.wantedIsr(eligible)).toEqual([1, 2, 3]);
    const proposal = leader.beginIsrProposal([1, 2, 3]);
    expect([...proposal.followerEpochs]).toEqual([[2, 4], [3, 12]]);
    await leader.close();
  });
});
