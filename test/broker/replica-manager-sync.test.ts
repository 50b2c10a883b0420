// ReplicaManager.sync is incremental: an image that changed one partition touches that replica
// only (images share every unchanged topic and partition record), yet still applies new roles,
// removes the replicas of deleted topics, and opens a fresh replica for a topic created again.
// New replicas are opened several at a time (each open waits for an fsync), and one that fails
// to open leaves its topic to be visited again by the next sync.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { REPLICA_SYNCS_IN_FLIGHT_MAX, ReplicaManager } from '../../broker/replica-manager.js';
import { Registry } from '../../src/metrics/index.js';
import { ManualClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';
import { createHarness, createTopic, startBroker } from '../controller/controller-harness.js';
import { batchOf, makeTempDir, removeDir } from './log/helpers.js';
import { DEFAULT_LOG_CONFIG } from '../../broker/log/index.js';
import { pino } from 'pino';

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

describe('ReplicaManager incremental sync', () => {
  it('visits only changed partitions, and still applies roles, deletions and re-creations', async () => {
    const harness = createHarness();
    const epochs = new Map<number, number>();
    for (const [nodeId, rack] of [[1, 'a'], [2, 'b'], [3, 'c']] as const) epochs.set(nodeId, await startBroker(harness, nodeId, rack));
    // RF 3 on three brokers: broker 1 holds a replica of every partition (250 > one sync slice).
    const ordersId = await createTopic(harness, 'orders', 250, 3);
    await createTopic(harness, 'payments', 4, 3);
    const manager = new ReplicaManager({ selfId: 1, dataDir: dir, clock: new ManualClock(), logger: silentLogger, registry: new Registry() });
    const ensure = vi.spyOn(manager as unknown as { ensureReplica: (...args: unknown[]) => Promise<unknown> }, 'ensureReplica');
    try {
      await manager.sync(harness.controller.image);
      expect(manager.allPartitions()).toHaveLength(254);
      expect(ensure).toHaveBeenCalledTimes(254);

      // The ISR of one partition shrinks: the next sync visits that replica alone.
      const before = harness.controller.image.partition(ordersId, 7)!;
      const leaderId = before.leader;
      const dropped = before.isr.find((id) => id !== leaderId)!;
      const answer = await harness.controller.alterPartition({
        brokerId: leaderId, brokerEpoch: epochs.get(leaderId)!, topicId: ordersId, partition: 7,
        leaderEpoch: before.leaderEpoch, partitionEpoch: before.partitionEpoch, newIsr: before.isr.filter((id) => id !== dropped),
      });
      expect(answer.errorCode).toBe(0);
      ensure.mockClear();
      await manager.sync(harness.controller.image);
      expect(ensure).toHaveBeenCalledTimes(1);
      expect(manager.findPartition('orders', 7)!.isr).not.toContain(dropped);
      expect(manager.findPartition('orders', 7)!.partitionEpoch).toBe(before.partitionEpoch + 1);

      // The same image again: nothing to do.
      ensure.mockClear();
      await manager.sync(harness.controller.image);
      expect(ensure).not.toHaveBeenCalled();

      // A deleted topic's replicas go; a topic created again under its name gets new ones.
      const oldPayments = manager.findPartition('payments', 0)!;
      const deleted = await harness.controller.deleteTopics({ topicNames: ['payments'] });
      expect(deleted.responses[0]!.errorCode).toBe(0);
      await manager.sync(harness.controller.image);
      expect(manager.findPartition('payments', 0)).toBeUndefined();
      expect(manager.allPartitions()).toHaveLength(250);

      const paymentsId = await createTopic(harness, 'payments', 2, 3);
      ensure.mockClear();
      await manager.sync(harness.controller.image);
      expect(ensure).toHaveBeenCalledTimes(2);
      const recreated = manager.findPartition('payments', 0)!;
      expect(recreated).not.toBe(oldPayments);
      expect(recreated.topicId).toBe(paymentsId);
      expect(manager.allPartitions()).toHaveLength(252);
    } finally {
      await manager.close();
    }
  });

  it('opens new replicas several at a time, and visits a topic again when one of its replicas failed to open', async () => {
    const harness = createHarness();
    for (const [nodeId, rack] of [[1, 'a'], [2, 'b'], [3, 'c']] as const) await startBroker(harness, nodeId, rack);
    await createTopic(harness, 'orders', 60, 3);
    const manager = new ReplicaManager({ selfId: 1, dataDir: dir, clock: new ManualClock(), logger: silentLogger, registry: new Registry() });
    const target = manager as unknown as { ensureReplica: (...args: unknown[]) => Promise<unknown> };
    const original = target.ensureReplica.bind(manager);
    let inFlight = 0;
    let most = 0;
    let failOnce = true;
    const ensure = vi.spyOn(target, 'ensureReplica').mockImplementation(async (...args: unknown[]) => {
      inFlight++;
      most = Math.max(most, inFlight);
      try {
        if ((args[1] as { partition: number }).partition === 17 && failOnce) {
          failOnce = false;
          await new Promise((resolve) => setImmediate(resolve));
          throw new Error('disk full (test)');
        }
        return await original(...args);
      } finally {
        inFlight--;
      }
    });
    try {
      await manager.sync(harness.controller.image);
      expect(most).toBe(REPLICA_SYNCS_IN_FLIGHT_MAX);
      expect(manager.allPartitions()).toHaveLength(59);
      expect(manager.findPartition('orders', 17)).toBeUndefined();
      // The same image again: only the replica that failed is visited, and now it opens.
      ensure.mockClear();
      await manager.sync(harness.controller.image);
      expect(ensure).toHaveBeenCalledTimes(1);
      expect(manager.findPartition('orders', 17)).toBeDefined();
      expect(manager.allPartitions()).toHaveLength(60);
      ensure.mockClear();
      await manager.sync(harness.controller.image);
      expect(ensure).not.toHaveBeenCalled();
    } finally {
      await manager.close();
    }
  });

  it('ends a scrub round quietly when the manager closes while its reads are out', async () => {
    const harness = createHarness();
    for (const [nodeId, rack] of [[1, 'a'], [2, 'b'], [3, 'c']] as const) await startBroker(harness, nodeId, rack);
    await createTopic(harness, 'orders', 4, 3);
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    const manager = new ReplicaManager({ selfId: 1, dataDir: dir, clock: new ManualClock(), logger, registry: new Registry(), logDefaults: { ...DEFAULT_LOG_CONFIG, segmentBytes: 2000 } });
    await manager.sync(harness.controller.image);
    const partitions = manager.allPartitions();
    expect(partitions).toHaveLength(4);
    for (const partition of partitions) {
      for (let index = 0; index < 40; index++) partition.log.append(batchOf(4), partition.leaderEpoch);
      await partition.log.flush();
    }
    // Every log has closed, fsynced segments to read; the round is out on the first when the manager closes.
    const round = manager.scrubAndRepair(1 << 20);
    await manager.close();
    await round;
    expect(lines.filter((line) => line.includes('scrub failed'))).toEqual([]);
  });
});
