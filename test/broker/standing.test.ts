// A broker out of good standing with the controller (BrokerLifecycle.inGoodStanding) may be a
// deposed leader that does not know it yet, such as one paused past its session that has just
// resumed. It must not say what only a current leader may say: that a consumer's position is
// out of range (the consumer would reset it), or that an acks=0/1 write is in (the new leader
// never had it). The chaos suite's pause-leader once sent a brand-new consumer to such a broker.
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Partition } from '../../broker/partition.js';
import { DataPlaneMetrics, kafkaHandlers, type BrokerStanding, type KafkaServiceDeps } from '../../broker/kafka-service.js';
import { FetchPurgatory } from '../../broker/fetch-purgatory.js';
import { Registry } from '../../src/metrics/index.js';
import { RpcMetrics } from '../../src/rpc/server.js';
import { ERRORS } from '../../src/rpc/errors.js';
import { silentLogger as logger } from '../../src/util/logger.js';
import type { FetchResponse__Output } from '../../src/rpc/generated/riffle/v1/FetchResponse.js';
import type { ProduceResponse__Output } from '../../src/rpc/generated/riffle/v1/ProduceResponse.js';
import { batchOf, makeTempDir, metricValue, openLog, removeDir, waitFor } from './log/helpers.js';

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

interface Setup {
  partition: Partition;
  standing: { inGoodStanding: boolean; standingAgeMs: number };
  registry: Registry;
  fetch(offset: number): Promise<{ errorCode: number; errorMessage: string; records: number }>;
  produce(acks: number): Promise<{ errorCode: number; errorMessage: string }>;
  close(): Promise<void>;
}

async function setUp(syncFile?: (fd: number) => Promise<void>): Promise<Setup> {
  const { log } = await openLog(dir, { flushPolicy: 'ack' }, syncFile ? { syncFile } : {});
  // A single-replica leader: its high watermark follows its own flushes.
  const partition = new Partition('events', 'id', 0, log, 1, { leaderId: 1, leaderEpoch: 3, partitionEpoch: 1, replicas: [1], isr: [1], minInsyncReplicas: 1 });
  const standing: BrokerStanding & { inGoodStanding: boolean; standingAgeMs: number } = { inGoodStanding: true, standingAgeMs: 100 };
  const registry = new Registry();
  const image = { topicByName: () => undefined, broker: () => undefined, isActiveBroker: () => true };
  const deps = {
    cluster: { selfId: 1, image: () => image },
    replicas: { findPartition: () => partition, partition: () => partition },
    purgatory: new FetchPurgatory(),
    metrics: new DataPlaneMetrics(registry),
    logger,
    requestBytesMax: 1024 * 1024,
    standing,
  } as unknown as KafkaServiceDeps;
  const handlers = kafkaHandlers({ service: 'kafka', metrics: new RpcMetrics(registry), logger }, deps);
  const call = <Response>(handler: unknown, request: object): Promise<Response> => new Promise((resolve, reject) => {
    const fakeCall = Object.assign(new EventEmitter(), { request, cancelled: false });
    (handler as (call: unknown, callback: (error: Error | null, response?: Response) => void) => void)(fakeCall, (error, response) => (error ? reject(error) : resolve(response!)));
  });
  return {
    partition,
    standing,
    registry,
    async fetch(offset) {
      const response = await call<FetchResponse__Output>(handlers.Fetch, {
        maxWaitMs: 0, minBytes: 0, maxBytes: 0, rackId: '',
        topics: [{ topic: 'events', partitions: [{ partition: 0, fetchOffset: offset, partitionMaxBytes: 0, currentLeaderEpoch: -1 }] }],
      });
      const answer = response.responses[0]!.partitions[0]!;
      return { errorCode: answer.errorCode, errorMessage: answer.errorMessage ?? '', records: (answer.records as Buffer).length };
    },
    async produce(acks) {
      const response = await call<ProduceResponse__Output>(handlers.Produce, {
        acks, timeoutMs: 5_000, transactionalId: '', topicData: [{ name: 'events', partitionData: [{ index: 0, records: batchOf(2) }] }],
      });
      const answer = response.responses[0]!.partitionResponses[0]!;
      return { errorCode: answer.errorCode, errorMessage: answer.errorMessage ?? '' };
    },
    close: () => log.close(),
  };
}

describe('a broker out of good standing with the controller', () => {
  it('says NOT_LEADER_OR_FOLLOWER rather than OFFSET_OUT_OF_RANGE, and still serves committed reads', async () => {
    const setup = await setUp();
    expect((await setup.produce(-1)).errorCode).toBe(0);
    expect(setup.partition.highWatermark).toBe(2);
    // In good standing, a position past the log end is out of range, as in Kafka.
    expect((await setup.fetch(20)).errorCode).toBe(ERRORS.OFFSET_OUT_OF_RANGE.code);
    setup.standing.inGoodStanding = false;
    setup.standing.standingAgeMs = 9_876;
    const withheld = await setup.fetch(20);
    expect(withheld.errorCode).toBe(ERRORS.NOT_LEADER_OR_FOLLOWER.code);
    expect(withheld.errorMessage).toContain('not in good standing');
    expect(withheld.errorMessage).toContain('9876 ms ago');
    // Records below the high watermark are committed whoever leads now: still served.
    const committed = await setup.fetch(0);
    expect(committed.errorCode).toBe(0);
    expect(committed.records).toBeGreaterThan(0);
    expect(await metricValue(setup.registry, 'riffle_broker_refused_without_standing_total')).toBe(1);
    await setup.close();
  });

  it('refuses acks=0/1 writes, leaves acks=all to the ISR, and does not answer an acks=1 write whose standing lapsed during its flush', async () => {
    let holding = false;
    const held: Array<() => void> = [];
    const setup = await setUp(() => (holding ? new Promise((resolve) => held.push(resolve)) : Promise.resolve()));
    setup.standing.inGoodStanding = false;
    for (const acks of [0, 1]) {
      const refused = await setup.produce(acks);
      expect(refused.errorCode).toBe(ERRORS.NOT_LEADER_OR_FOLLOWER.code);
      expect(refused.errorMessage).toContain('nothing was written');
    }
    expect(setup.partition.logEndOffset).toBe(0);
    // acks=all: a deposed leader has lost its ISR, which the high watermark already waits for.
    expect((await setup.produce(-1)).errorCode).toBe(0);
    expect(setup.partition.logEndOffset).toBe(2);
    // In standing when written, out of it (paused, say) before its flush completed.
    setup.standing.inGoodStanding = true;
    holding = true;
    const pending = setup.produce(1);
    await waitFor(() => held.length > 0, 'the acks=1 write\'s flush');
    setup.standing.inGoodStanding = false;
    holding = false;
    for (const release of held.splice(0)) release();
    const unknown = await pending;
    expect(unknown.errorCode).toBe(ERRORS.NOT_LEADER_OR_FOLLOWER.code);
    expect(unknown.errorMessage).toContain('outcome of the write is unknown');
    expect(setup.partition.logEndOffset).toBe(4);
    expect(await metricValue(setup.registry, 'riffle_broker_refused_without_standing_total')).toBe(3);
    // Back in standing, acks=1 is answered again.
    setup.standing.inGoodStanding = true;
    expect((await setup.produce(1)).errorCode).toBe(0);
    await setup.close();
  });
});
