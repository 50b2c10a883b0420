// Consumer lag as the coordinator sees it, so Prometheus can alert on it without an external
// lag exporter: for every committed offset of every group this broker coordinates, the records
// between it and the partition's high watermark, and the age of the oldest unconsumed record
// (now minus the timestamp of the record at the committed offset; 0 when caught up). Samples are
// taken every LAG_SAMPLE_INTERVAL_MS, so the gauges are at most that stale. Partitions this
// broker leads are read locally; the others are asked of their leaders with one ListOffsets and
// one Fetch (1 byte per partition, which still returns the batch holding the committed offset)
// per leader.
import type { MetadataImage } from '../../controller/index.js';
import type { ReplicaManager } from '../replica-manager.js';
import { ConnectionPool } from '../../src/rpc/client.js';
import type { Logger } from '../../src/util/logger.js';
import { forEachRecordOfAll } from '../../src/util/record-batch.js';
import type { FetchResponse__Output } from '../../src/rpc/generated/riffle/v1/FetchResponse.js';
import type { ListOffsetsResponse__Output } from '../../src/rpc/generated/riffle/v1/ListOffsetsResponse.js';
import { tpKey } from './offsets-records.js';

export const LAG_SAMPLE_INTERVAL_MS = 5_000;
const LAG_CALL_TIMEOUT_MS = 4_000;
/** Partitions sampled per round at most (a bound on the work and on the gauge series). */
export const LAG_PARTITIONS_MAX = 100_000;

export interface PartitionLag {
  topic: string;
  partition: number;
  committed: number;
  logEndOffset: number;
  lagRecords: number;
  /** -1 when unknown (the leader did not answer). */
  lagMs: number;
}

export interface GroupOffsetsToSample {
  groupId: string;
  offsets: { topic: string; partition: number; offset: number }[];
}

interface PartitionReading {
  highWatermark: number;
  /** Timestamp of the first record at or after the committed offset, or null when none. */
  timestamp: number | null;
}

export class LagSampler {
  private readonly pool = new ConnectionPool();
  /** The latest sample by group id. */
  latest = new Map<string, PartitionLag[]>();

  constructor(
    private readonly selfId: number,
    private readonly replicas: ReplicaManager,
    private readonly image: () => MetadataImage,
    private readonly logger: Logger,
  ) {}

  /** Samples the given groups and keeps the result as the latest. */
  async sampleAll(groups: GroupOffsetsToSample[]): Promise<void> {
    const result = await this.sample(groups);
    this.latest = result;
  }

  async sample(groups: GroupOffsetsToSample[]): Promise<Map<string, PartitionLag[]>> {
    const wanted = new Map<string, { topic: string; partition: number; offset: number }>();
    let count = 0;
    for (const group of groups) {
      for (const entry of group.offsets) {
        if (++count > LAG_PARTITIONS_MAX) break;
        // Several groups may read one partition at different offsets: one reading per pair.
        wanted.set(`${tpKey(entry.topic, entry.partition)}\u0000${entry.offset}`, entry);
      }
    }
    const readings = await this.read([...wanted.values()]);
    const nowMs = Date.now();
    const result = new Map<string, PartitionLag[]>();
    for (const group of groups) {
      result.set(group.groupId, group.offsets.map((entry) => {
        const reading = readings.get(`${tpKey(entry.topic, entry.partition)}\u0000${entry.offset}`);
        if (!reading) return { topic: entry.topic, partition: entry.partition, committed: entry.offset, logEndOffset: -1, lagRecords: -1, lagMs: -1 };
        const lagRecords = Math.max(0, reading.highWatermark - entry.offset);
        const lagMs = lagRecords === 0 ? 0 : reading.timestamp === null ? -1 : Math.max(0, nowMs - reading.timestamp);
        return { topic: entry.topic, partition: entry.partition, committed: entry.offset, logEndOffset: reading.highWatermark, lagRecords, lagMs };
      }));
    }
    return result;
  }

  private async read(entries: { topic: string; partition: number; offset: number }[]): Promise<Map<string, PartitionReading>> {
    const readings = new Map<string, PartitionReading>();
    const remote = new Map<number, { topic: string; partition: number; offset: number }[]>();
    const image = this.image();
    for (const entry of entries) {
      const key = `${tpKey(entry.topic, entry.partition)}\u0000${entry.offset}`;
      const local = this.replicas.findPartition(entry.topic, entry.partition);
      if (local?.isLeader) {
        try {
          const highWatermark = local.highWatermark;
          const timestamp = entry.offset < highWatermark && entry.offset >= local.logStartOffset ? firstTimestamp(await local.read(entry.offset, 1), entry.offset) : null;
          readings.set(key, { highWatermark, timestamp });
        } catch (error) {
          this.logger.debug({ err: error, topic: entry.topic, partition: entry.partition }, 'lag reading failed');
        }
        continue;
      }
      const leader = image.topicByName(entry.topic)?.partitions[entry.partition]?.leader ?? -1;
      if (leader < 0 || leader === this.selfId) continue;
      let list = remote.get(leader);
      if (!list) remote.set(leader, (list = []));
      list.push(entry);
    }
    await Promise.all([...remote].map(async ([leader, list]) => {
      const broker = image.broker(leader);
      if (!broker?.listener) return;
      try {
        await this.readRemote(`${broker.listener.host}:${broker.listener.port}`, list, readings);
      } catch (error) {
        this.logger.debug({ err: error, leader }, 'lag reading from a leader failed');
      }
    }));
    return readings;
  }

  private async readRemote(address: string, entries: { topic: string; partition: number; offset: number }[], readings: Map<string, PartitionReading>): Promise<void> {
    const connection = this.pool.get(address);
    const byTopic = new Map<string, Set<number>>();
    for (const entry of entries) {
      let set = byTopic.get(entry.topic);
      if (!set) byTopic.set(entry.topic, (set = new Set()));
      set.add(entry.partition);
    }
    const offsets = await connection.call<ListOffsetsResponse__Output>('riffle.v1.Kafka', 'ListOffsets', {
      topics: [...byTopic].map(([name, partitions]) => ({ name, partitions: [...partitions].map((partitionIndex) => ({ partitionIndex, currentLeaderEpoch: -1, timestamp: -1 })) })),
    }, LAG_CALL_TIMEOUT_MS);
    const highWatermarks = new Map<string, number>();
    for (const topic of offsets.topics) for (const partition of topic.partitions) if (partition.errorCode === 0) highWatermarks.set(tpKey(topic.name, partition.partitionIndex), Number(partition.offset));
    const behind = entries.filter((entry) => entry.offset < (highWatermarks.get(tpKey(entry.topic, entry.partition)) ?? -1));
    const timestamps = new Map<string, number | null>();
    // One fetch per distinct offset of a partition; groups at different offsets of one partition
    // need separate fetches, so they go in rounds.
    const rounds: { topic: string; partition: number; offset: number }[][] = [];
    for (const entry of behind) {
      const round = rounds.find((candidate) => !candidate.some((other) => other.topic === entry.topic && other.partition === entry.partition));
      if (round) round.push(entry);
      else rounds.push([entry]);
    }
    for (const round of rounds.slice(0, 10)) {
      const topics = new Map<string, { partition: number; currentLeaderEpoch: number; fetchOffset: number; partitionMaxBytes: number }[]>();
      for (const entry of round) {
        let list = topics.get(entry.topic);
        if (!list) topics.set(entry.topic, (list = []));
        list.push({ partition: entry.partition, currentLeaderEpoch: -1, fetchOffset: entry.offset, partitionMaxBytes: 1 });
      }
      const fetched = await connection.call<FetchResponse__Output>('riffle.v1.Kafka', 'Fetch', {
        maxWaitMs: 0, minBytes: 0, maxBytes: 16 * 1024 * 1024, topics: [...topics].map(([topic, partitions]) => ({ topic, partitions })),
      }, LAG_CALL_TIMEOUT_MS);
      for (const topic of fetched.responses) {
        for (const partition of topic.partitions) {
          const entry = round.find((candidate) => candidate.topic === topic.topic && candidate.partition === partition.partitionIndex);
          if (!entry || partition.errorCode !== 0) continue;
          timestamps.set(`${tpKey(entry.topic, entry.partition)}\u0000${entry.offset}`, firstTimestamp(partition.records, entry.offset));
        }
      }
    }
    for (const entry of entries) {
      const highWatermark = highWatermarks.get(tpKey(entry.topic, entry.partition));
      if (highWatermark === undefined) continue;
      const key = `${tpKey(entry.topic, entry.partition)}\u0000${entry.offset}`;
      readings.set(key, { highWatermark, timestamp: timestamps.get(key) ?? null });
    }
  }

  close(): void {
    this.pool.close();
  }
}

function firstTimestamp(records: Buffer, offset: number): number | null {
  let timestamp: number | null = null;
  try {
    forEachRecordOfAll(records, (recordOffset, recordTimestamp) => {
      if (timestamp === null && recordOffset >= offset) timestamp = recordTimestamp;
    });
  } catch {
    return null;
  }
  return timestamp;
}
