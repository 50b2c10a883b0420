// The idempotent SDK producer against a simulated broker that checks sequences with the real
// ProducerStateManager and misbehaves on a seed: requests lost before or after they were
// written, answers and processing in random order, retriable partition errors. Whatever
// happens (including batches refused as out of order behind a failed one), every record ends
// up in its partition exactly once and in send order. A failure
// prints the seed; RIFFLE_SEED=n replays it.
import { describe, expect, it } from 'vitest';
import { ProducerStateManager, type ProducerStateLog } from '../../broker/producer-state.js';
import type { RiffleClient, TopicMetadata } from '../../src/client/client.js';
import { Producer } from '../../src/client/producer.js';
import { DEFAULT_RETRY } from '../../src/client/retry.js';
import { ERRORS, RiffleError, toRiffleError } from '../../src/rpc/errors.js';
import { Prng } from '../../src/util/prng.js';
import { LOG_OVERHEAD_BYTES, decodeAllRecords, iterateBatches, stampBatch } from '../../src/util/record-batch.js';

const PARTITIONS = 2;
const RECORDS = 400;
const RUNS = Number(process.env.RIFFLE_SIM_RUNS ?? 4);

/** One partition's log in memory: batches back to back with stamped offsets. */
class MemoryLog implements ProducerStateLog {
  readonly logStartOffset = 0;
  private bytes = Buffer.alloc(0);
  logEndOffset = 0;

  append(batches: Buffer): { baseOffset: number; lastOffset: number; logAppendTimeMs: number; maxTimestamp: number; bytes: number } {
    const baseOffset = this.logEndOffset;
    for (const { position, header } of iterateBatches(batches)) {
      stampBatch(batches, position, this.logEndOffset, 0);
      this.logEndOffset += header.lastOffsetDelta + 1;
    }
    this.bytes = Buffer.concat([this.bytes, batches]);
    return { baseOffset, lastOffset: this.logEndOffset - 1, logAppendTimeMs: -1, maxTimestamp: -1, bytes: batches.length };
  }

  read(offset: number): { records: Buffer; nextOffset: number } {
    let position = 0;
    for (const { position: at, header } of iterateBatches(this.bytes)) {
      if (header.baseOffset + header.lastOffsetDelta >= offset) break;
      position = at + LOG_OVERHEAD_BYTES + header.batchLength;
    }
    return { records: this.bytes.subarray(position), nextOffset: this.logEndOffset };
  }

  offsetForTimestamp(): { offset: number } | null {
    return { offset: 0 };
  }

  values(): string[] {
    return [...decodeAllRecords(this.bytes)].map((record) => record.value!.toString());
  }
}

interface ProduceRequest {
  topicData: { name: string; partitionData: { index: number; records: Buffer }[] }[];
}

/** A broker that writes through the real producer-state checks and fails on a seed. */
class FlakyBroker {
  readonly logs = Array.from({ length: PARTITIONS }, () => new MemoryLog());
  readonly states = Array.from({ length: PARTITIONS }, () => new ProducerStateManager());
  private nextProducerId = 1000;
  lostAfterWrite = 0;
  outOfOrder = 0;
  unknownProducer = 0;

  constructor(
    private readonly random: Prng,
    private readonly faults = true,
  ) {}

  /** The partition loses its producer state, as when every record of it is past expiration. */
  forget(index: number): void {
    const log = this.logs[index]!;
    const state = new ProducerStateManager();
    state.loadFromLog({ logStartOffset: 0, logEndOffset: log.logEndOffset, read: (offset) => log.read(offset), offsetForTimestamp: () => ({ offset: log.logEndOffset }) });
    this.states[index] = state;
  }

  async produce(request: ProduceRequest): Promise<object> {
    await this.delay();
    if (this.faults && this.random.chance(0.05)) throw new RiffleError('NETWORK_EXCEPTION', 'lost on the way in');
    const responses = request.topicData.map((topic) => ({
      name: topic.name,
      partitionResponses: topic.partitionData.map((data) => this.produceTo(data.index, Buffer.from(data.records))),
    }));
    await this.delay();
    if (this.faults && this.random.chance(0.15)) {
      this.lostAfterWrite++;
      throw new RiffleError('NETWORK_EXCEPTION', 'answer lost');
    }
    return { responses, throttleTimeMs: 0 };
  }

  private produceTo(index: number, records: Buffer): object {
    if (this.faults && this.random.chance(0.05)) return { index, errorCode: ERRORS.NOT_LEADER_OR_FOLLOWER.code, errorMessage: 'moved', baseOffset: -1 };
    try {
      const plan = this.states[index]!.check(records, this.logs[index]!);
      const info = plan.duplicate ?? this.logs[index]!.append(records);
      if (plan.duplicate === null) this.states[index]!.record(plan, info);
      return { index, errorCode: 0, errorMessage: '', baseOffset: info.baseOffset };
    } catch (error) {
      const riffleError = toRiffleError(error);
      if (riffleError.errorName === 'OUT_OF_ORDER_SEQUENCE_NUMBER') this.outOfOrder++;
      if (riffleError.errorName === 'UNKNOWN_PRODUCER_ID') this.unknownProducer++;
      return { index, errorCode: riffleError.code, errorMessage: riffleError.message, baseOffset: -1 };
    }
  }

  initProducerId(request: { producerId: number; producerEpoch: number }): object {
    if (request.producerId < 0) return { errorCode: 0, producerId: this.nextProducerId++, producerEpoch: 0 };
    return { errorCode: 0, producerId: request.producerId, producerEpoch: request.producerEpoch + 1 };
  }

  private delay(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, this.random.int(0, 4)));
  }
}

/** Just enough of RiffleClient for the producer: one broker, one topic. */
function fakeClient(broker: FlakyBroker): RiffleClient {
  const metadata: TopicMetadata = {
    name: 'events', topicId: 'id', kind: 'kafka',
    partitions: Array.from({ length: PARTITIONS }, (_, partition) => ({ partition, leaderId: 1, leaderEpoch: 0, replicas: [1], isr: [1] })),
  };
  const connection = {
    pipelined: (_service: string, method: string) => {
      if (method !== 'ProduceStream') throw new Error(`unexpected ${method}`);
      return { call: (request: object) => broker.produce(request as ProduceRequest) };
    },
  };
  const client = {
    retry: { ...DEFAULT_RETRY, backoffMsInitial: 1, backoffMsMax: 5 },
    cachedTopic: () => metadata,
    leaderEpochOf: (_topic: string, partition: number) => metadata.partitions.find((candidate) => candidate.partition === partition)?.leaderEpoch ?? -1,
    topicMetadata: async () => metadata,
    invalidate: () => undefined,
    connectionTo: () => connection,
    callAny: async (_service: string, method: string, request: object) => {
      if (method !== 'InitProducerId') throw new Error(`unexpected ${method}`);
      return broker.initProducerId(request as { producerId: number; producerEpoch: number });
    },
  };
  return client as unknown as RiffleClient;
}

describe('idempotent producer against a flaky broker', () => {
  it('writes every record exactly once and in order per partition (seeded)', async () => {
    const firstSeed = Number(process.env.RIFFLE_SEED ?? Date.now() % 1_000_000);
    console.log(`producer idempotence simulation seeds ${firstSeed}..${firstSeed + RUNS - 1} (RIFFLE_SEED=n RIFFLE_SIM_RUNS=1 replays one)`);
    let lostAfterWrite = 0;
    let outOfOrder = 0;
    for (let run = 0; run < RUNS; run++) {
      const seed = firstSeed + run;
      const random = new Prng(seed);
      const broker = new FlakyBroker(random);
      const producer = new Producer(fakeClient(broker), { lingerMs: 0, batchBytesMax: 300, deliveryTimeoutMs: 600_000 });
      const expected: string[][] = Array.from({ length: PARTITIONS }, () => []);
      const sent: Promise<unknown>[] = [];
      try {
        for (let index = 0; index < RECORDS; index++) {
          const partition = random.int(0, PARTITIONS);
          const value = `p${partition}-${index}`;
          expected[partition]!.push(value);
          sent.push(producer.send({ topic: 'events', partition, value }));
          if (random.chance(0.05)) await new Promise((resolve) => setTimeout(resolve, random.int(0, 3)));
        }
        await Promise.all(sent);
        await producer.close();
        for (let partition = 0; partition < PARTITIONS; partition++) expect(broker.logs[partition]!.values()).toEqual(expected[partition]);
        lostAfterWrite += broker.lostAfterWrite;
        outOfOrder += broker.outOfOrder;
      } catch (error) {
        console.log(`producer idempotence simulation failed with seed ${seed}`);
        throw error;
      }
    }
    // The runs did lose answers to written batches, which a non-idempotent producer would repeat.
    // and batches arrived behind a failed one and were refused as out of order, then retried.
    expect(lostAfterWrite).toBeGreaterThan(0);
    expect(outOfOrder).toBeGreaterThan(0);
  }, 120_000);

  it('recovers when a partition forgot the producer: UNKNOWN_PRODUCER_ID, epoch bump, sequences from 0', async () => {
    const broker = new FlakyBroker(new Prng(1), false);
    const producer = new Producer(fakeClient(broker), { lingerMs: 0, batchBytesMax: 300 });
    const first = Array.from({ length: 50 }, (_, index) => `a-${index}`);
    const second = Array.from({ length: 50 }, (_, index) => `b-${index}`);
    await Promise.all(first.map((value) => producer.send({ topic: 'events', partition: 0, value })));
    const before = producer.producerIdentity!;
    broker.forget(0);
    await Promise.all(second.map((value) => producer.send({ topic: 'events', partition: 0, value })));
    await producer.close();
    expect(broker.unknownProducer).toBeGreaterThan(0);
    expect(producer.producerIdentity).toEqual({ producerId: before.producerId, epoch: before.epoch + 1 });
    expect(broker.logs[0]!.values()).toEqual([...first, ...second]);
  });
});
