// The Kafka-like workload: idempotent acks=all producers writing unique values over many keys,
// and consumers reading every partition, killed and restarted now and then. Every operation
// goes into the history. After the faults heal, `finalRead` reads every partition from the
// start through the leader, and `replicaChecksums` compares the replicas byte for byte.
import { Admin, PartitionConsumer, Producer, RiffleClient, partitionForKey, type ConsumerRecord } from '../src/client/index.js';
import { NodeConnection } from '../src/rpc/client.js';
import { ERRORS, toRiffleError } from '../src/rpc/errors.js';
import type { Prng } from '../src/util/prng.js';
import type { DescribeLogChecksumsResponse__Output } from '../src/rpc/generated/riffle/internal/DescribeLogChecksumsResponse.js';
import type { History } from './history.js';


/** Small segments, so every partition has closed segments for the bit-flip nemesis and the scrubber. */
const SEGMENT_BYTES = 16 * 1024;
export interface KafkaWorkloadOptions {
  topic: string;
  partitions: number;
  producers: number;
  /** Sends each producer keeps outstanding. */
  producerConcurrency: number;
  /** Of those, sends to any one partition (so a partition that takes no writes holds up only its own). */
  producerPartitionConcurrency: number;
  consumers: number;
  /** Keys the producers spread values over. */
  keys: number;
  /** How often (on average) a consumer is killed and restarted, 0 for never. */
  consumerRestartEveryMs: number;
}

export const KAFKA_WORKLOAD_DEFAULTS: Omit<KafkaWorkloadOptions, 'topic'> = {
  partitions: 6,
  producers: 3,
  producerConcurrency: 16,
  producerPartitionConcurrency: 4,
  consumers: 2,
  keys: 64,
  consumerRestartEveryMs: 8_000,
};

/** Sends each producer makes at most, a bound on any run. */
const SENDS_PER_PRODUCER_MAX = 2_000_000;
/** A final read that makes no progress for this long gives up (the checker then reports what is missing). */
const FINAL_READ_STALL_MS = 60_000;

/** How long consumers may take, once producers stop, to catch up with the end of every partition. */
const DRAIN_MS_MAX = 60_000;
/** Times the final check asks a replica for its checksum while its log changes under the read. */
const CHECKSUM_ATTEMPTS = 5;

/**
 * A random key whose partition has fewer than `bound` sends outstanding: the drawn one if its
 * partition has room, else one drawn among the keys whose partitions do; -1 when none has room.
 */
export function pickKey(random: Prng, partitionOfKey: readonly number[], outstanding: readonly number[], bound: number): number {
  const hasRoom = (key: number): boolean => outstanding[partitionOfKey[key]!]! < bound;
  const drawn = random.int(0, partitionOfKey.length);
  if (hasRoom(drawn)) return drawn;
  const open = partitionOfKey.flatMap((_, key) => (hasRoom(key) ? [key] : []));
  return open.length === 0 ? -1 : open[random.int(0, open.length)]!;
}

export class KafkaWorkload {
  /** Producers stop when set. */
  private stopping = false;
  /** Consumers stop restarting and stop once caught up when set; `drainDeadline` bounds it. */
  private draining = false;
  private drainDeadlineMs = 0;
  /** Where each partition ended once the producers stopped: what the consumers must reach. */
  private drainTargets = new Map<number, number>();

  /** Where each partition ended once the producers stopped (known after `stop()`). */
  get partitionEnds(): ReadonlyMap<number, number> {
    return this.drainTargets;
  }
  private readonly producing: Promise<void>[] = [];
  private readonly consuming: Promise<void>[] = [];
  private readonly clients: RiffleClient[] = [];

  constructor(
    private readonly bootstrap: string,
    private readonly history: History,
    private readonly options: KafkaWorkloadOptions,
    private readonly random: Prng,
  ) {}

  async setUp(): Promise<void> {
    const client = this.newClient();
    await new Admin(client).createTopic({ name: this.options.topic, partitions: this.options.partitions, replicationFactor: 3, configs: { 'min.insync.replicas': '2', 'segment.bytes': String(SEGMENT_BYTES) } });
    await client.topicMetadata(this.options.topic, true);
  }

  start(): void {
    for (let index = 0; index < this.options.producers; index++) this.producing.push(this.produce(`producer-${index}`));
    for (let index = 0; index < this.options.consumers; index++) this.consuming.push(this.consume(`consumer-${index}`));
  }

  /**
   * Stops the producers (each finishes its outstanding sends), then lets the consumers read to
   * the end of every partition and stops them.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.producing);
    this.drainDeadlineMs = Date.now() + DRAIN_MS_MAX;
    this.drainTargets = await this.endOffsets();
    this.draining = true;
    await Promise.all(this.consuming);
    for (const client of this.clients) client.close();
  }

  private newClient(): RiffleClient {
    const client = new RiffleClient({ bootstrap: this.bootstrap, requestTimeoutMs: 10_000, retry: { deadlineMs: 30_000 } });
    this.clients.push(client);
    return client;
  }

  private async produce(process: string): Promise<void> {
    const client = this.newClient();
    const producer = new Producer(client, { acks: 'all', lingerMs: 2, requestTimeoutMs: 10_000, deliveryTimeoutMs: 60_000 });
    const { keys, partitions, producerConcurrency, producerPartitionConcurrency } = this.options;
    // Each key's partition, as the producer's partitioner picks it. Outstanding sends are bounded
    // per partition too: with one bound for the producer alone, a partition that takes no writes
    // soon held every outstanding send, and the producer stopped writing to the partitions that
    // still took writes, so a stall of one partition looked like one of the whole cluster.
    const partitionOfKey = Array.from({ length: keys }, (_, key) => partitionForKey(Buffer.from(`k${key}`), partitions));
    const outstanding = new Array<number>(partitions).fill(0);
    const inFlight = new Set<Promise<void>>();
    for (let sequence = 0; sequence < SENDS_PER_PRODUCER_MAX && !this.stopping; sequence++) {
      let keyIndex: number;
      while ((keyIndex = pickKey(this.random, partitionOfKey, outstanding, producerPartitionConcurrency)) < 0) await Promise.race(inFlight);
      const partition = partitionOfKey[keyIndex]!;
      const value = `${process}-${sequence}`;
      const key = `k${keyIndex}`;
      this.history.add({ type: 'invoke', f: 'send', process, value });
      outstanding[partition]!++;
      const send = producer.send({ topic: this.options.topic, key, value }).then(
        (metadata) => void this.history.add({ type: 'ok', f: 'send', process, value, partition: metadata.partition, offset: metadata.offset }),
        // The idempotent producer retried until its delivery timeout: the write may or may not exist.
        (error: unknown) => void this.history.add({ type: 'info', f: 'send', process, value, error: toRiffleError(error).errorName }),
      );
      const tracked = send.finally(() => {
        inFlight.delete(tracked);
        outstanding[partition]!--;
      });
      inFlight.add(tracked);
      if (inFlight.size >= producerConcurrency) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    await producer.close().catch(() => undefined);
  }

  /**
   * A consumer reads every partition from where it stopped; every so often it "crashes" (drops its
   * client without closing) and a new one starts from the positions the old one had reached.
   */
  private async consume(process: string): Promise<void> {
    let positions: Record<number, number> | 'earliest' = 'earliest';
    let caughtUp = false;
    while (!caughtUp && !(this.draining && Date.now() > this.drainDeadlineMs)) {
      const client = this.newClient();
      const consumer = new PartitionConsumer(client, { topic: this.options.topic, from: positions, maxWaitMs: 200 });
      const partitions = Array.from({ length: this.options.partitions }, (_, index) => index);
      this.history.add({ type: 'ok', f: 'assign', process, partitions, value: JSON.stringify(positions) });
      const lifetimeMs = this.options.consumerRestartEveryMs > 0 ? this.options.consumerRestartEveryMs * (0.5 + this.random.next()) : Number.POSITIVE_INFINITY;
      const until = Date.now() + lifetimeMs;
      while (this.draining || Date.now() < until) {
        // Decided before the poll, so the positions checked come from a fetch made while draining.
        const drainingNow = this.draining;
        try {
          const records = await consumer.poll();
          if (drainingNow && (this.caughtUp(consumer, partitions) || Date.now() > this.drainDeadlineMs)) {
            caughtUp = true;
            if (records.length > 0) this.recordPoll(process, records);
            break;
          }
          if (records.length === 0) continue;
          this.recordPoll(process, records);
        } catch (error) {
          this.history.add({ type: 'info', f: 'poll', process, error: toRiffleError(error).errorName });
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      const reached: Record<number, number> = {};
      for (const partition of partitions) {
        const position = consumer.position(partition);
        if (position !== undefined) reached[partition] = position;
      }
      if (Object.keys(reached).length === partitions.length) positions = reached;
      client.close();
    }
  }

  private recordPoll(process: string, records: ConsumerRecord[]): void {
    this.history.add({
      type: 'ok', f: 'poll', process,
      records: records.map((record) => ({ partition: record.partition, offset: record.offset, value: record.value?.toString() ?? '' })),
    });
  }

  /** Every partition read up to where it ended when the producers stopped. */
  private caughtUp(consumer: PartitionConsumer, partitions: number[]): boolean {
    return partitions.every((partition) => {
      const target = this.drainTargets.get(partition);
      const position = consumer.position(partition);
      return target !== undefined && position !== undefined && position >= target;
    });
  }

  /** Each partition's high watermark (ListOffsets latest at its leader), retried until the deadline. */
  private async endOffsets(): Promise<Map<number, number>> {
    const client = this.newClient();
    while (Date.now() < this.drainDeadlineMs) {
      const probe = new PartitionConsumer(client, { topic: this.options.topic, from: 'latest', maxWaitMs: 0 });
      try {
        await probe.poll();
        const ends = new Map<number, number>();
        for (let partition = 0; partition < this.options.partitions; partition++) ends.set(partition, probe.position(partition) ?? 0);
        return ends;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    throw new Error('the end offsets of the partitions could not be read before the drain deadline');
  }

  /**
   * Reads every partition from its start to its high watermark and at least to `mustReach` (one
   * past the highest acknowledged offset): a new leader's high watermark can trail what was
   * acknowledged for a moment, and stopping there would make acknowledged records look lost.
   */
  async finalRead(mustReach: ReadonlyMap<number, number>): Promise<Map<number, { offset: number; value: string }[]>> {
    const client = this.newClient();
    const consumer = new PartitionConsumer(client, { topic: this.options.topic, from: 'earliest', maxWaitMs: 100 });
    const logs = new Map<number, { offset: number; value: string }[]>();
    for (let partition = 0; partition < this.options.partitions; partition++) logs.set(partition, []);
    let lastProgressMs = Date.now();
    for (;;) {
      let records: ConsumerRecord[];
      try {
        records = await consumer.poll();
      } catch {
        records = [];
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      if (records.length > 0) lastProgressMs = Date.now();
      for (const record of records) logs.get(record.partition)!.push({ offset: record.offset, value: record.value?.toString() ?? '' });
      const done = [...logs.keys()].every((partition) => {
        const highWatermark = consumer.highWatermark(partition);
        const position = consumer.position(partition);
        return highWatermark !== undefined && position !== undefined && position >= Math.max(highWatermark, mustReach.get(partition) ?? 0);
      });
      if (done || Date.now() - lastProgressMs > FINAL_READ_STALL_MS) break;
    }
    client.close();
    return logs;
  }

  /**
   * For every partition of `topic` (the workload's by default; a Kinesis stream is a topic too):
   * each replica's checksum of its log below the leader's high watermark. `nodeAddress` gives a
   * node's address to ask directly.
   */
  async replicaChecksums(nodeAddress: (id: number) => string, topic = this.options.topic): Promise<ReplicaChecksum[]> {
    const client = this.newClient();
    const description = await new Admin(client).describeTopic(topic);
    const results: ReplicaChecksum[] = [];
    for (const partition of description.partitions) {
      if (partition.leaderId < 0) {
        // No leader to say where the high watermark is: reported as an error, which the checker flags.
        for (const replica of partition.replicaNodes) results.push({ topic, partition: partition.partitionIndex, replica, inIsr: true, highWatermark: -1, errorCode: -1, offset: -1, crc32c: 0, bytes: 0 });
        continue;
      }
      const leaderClient = new RiffleClient({ bootstrap: nodeAddress(partition.leaderId) });
      const highWatermark = Number((await new Admin(leaderClient).describeTopic(topic)).partitions[partition.partitionIndex]!.highWatermark);
      leaderClient.close();
      for (const replica of partition.replicaNodes) {
        const connection = new NodeConnection(nodeAddress(replica));
        try {
          const ask = async (): Promise<DescribeLogChecksumsResponse__Output['partitions'][number]> => {
            const response = await connection.call<DescribeLogChecksumsResponse__Output>('riffle.internal.Replication', 'DescribeLogChecksums', {
              partitions: [{ topic, partition: partition.partitionIndex, offset: highWatermark }],
            }, 10_000);
            return response.partitions[0]!;
          };
          // A log truncated while its checksum is read (a follower still catching up) answers a retriable error: ask again, a few times.
          let checksum = await ask();
          for (let attempt = 1; attempt < CHECKSUM_ATTEMPTS && checksum.errorCode === ERRORS.OFFSET_NOT_AVAILABLE.code; attempt++) {
            await new Promise((resolve) => setTimeout(resolve, 200));
            checksum = await ask();
          }
          results.push({ topic, partition: partition.partitionIndex, replica, inIsr: partition.isrNodes.includes(replica), highWatermark, errorCode: checksum.errorCode, offset: Number(checksum.offset), crc32c: checksum.crc32c, bytes: Number(checksum.bytes) });
        } finally {
          connection.close();
        }
      }
    }
    return results;
  }
}

export interface ReplicaChecksum {
  topic: string;
  partition: number;
  replica: number;
  inIsr: boolean;
  highWatermark: number;
  errorCode: number;
  offset: number;
  crc32c: number;
  bytes: number;
}
