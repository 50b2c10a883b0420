// On-demand streams reshard themselves: the leader of each shard of an ON_DEMAND stream counts
// the records and bytes written to it, and a shard above its budget (1 MiB/s or 1,000 records/s,
// Kinesis's per-shard write capacity) for SUSTAINED_CHECKS consecutive checks is split at the
// middle of its hash-key range through the controller, like a SplitShard. Departure from
// Kinesis: Kinesis sizes on-demand streams from the peak of the last 30 days and never says
// which shard it splits; here the hot shard itself is split, as soon as the load is sustained.
import type { MetadataImage } from '../../controller/index.js';
import type { Logger } from '../../src/util/logger.js';
import { SHARD_WRITE_BYTES_PER_SECOND, SHARD_WRITE_RECORDS_PER_SECOND } from './throughput-limits.js';

/** Consecutive over-budget checks before a shard is split. */
export const SUSTAINED_CHECKS = 3;
/** Shards tracked at once (those led here with writes since the last check). */
const TRACKED_SHARDS_MAX = 100_000;

interface ShardLoad {
  topicId: string;
  partition: number;
  bytes: number;
  records: number;
  hotChecks: number;
}

export interface OnDemandScalerOptions {
  selfId: number;
  image: () => MetadataImage;
  checkIntervalMs: number;
  logger: Logger;
  /** Asks the controller to split a shard at a hash key. */
  split: (streamName: string, partition: number, newStartingHashKey: string) => Promise<void>;
}

export class OnDemandScaler {
  private readonly loads = new Map<string, ShardLoad>();
  private timer?: NodeJS.Timeout;
  private splitting = false;

  constructor(private readonly options: OnDemandScalerOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), this.options.checkIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Counts a write to a shard this broker leads. */
  recordWrite(topicId: string, partition: number, records: number, bytes: number): void {
    const key = `${topicId}/${partition}`;
    let load = this.loads.get(key);
    if (!load) {
      if (this.loads.size >= TRACKED_SHARDS_MAX) return;
      this.loads.set(key, (load = { topicId, partition, bytes: 0, records: 0, hotChecks: 0 }));
    }
    load.bytes += bytes;
    load.records += records;
  }

  /** One check: which shards were over budget for the whole interval, and which stayed so long enough. */
  async check(): Promise<void> {
    const image = this.options.image();
    const seconds = this.options.checkIntervalMs / 1000;
    const hot: ShardLoad[] = [];
    for (const [key, load] of this.loads) {
      const topic = image.topic(load.topicId);
      const shard = topic?.partitions[load.partition];
      if (!topic || !shard || shard.state !== 'open' || shard.leader !== this.options.selfId || topic.configs['stream.mode'] !== 'ON_DEMAND') {
        this.loads.delete(key);
        continue;
      }
      const over = load.bytes / seconds > SHARD_WRITE_BYTES_PER_SECOND || load.records / seconds > SHARD_WRITE_RECORDS_PER_SECOND;
      load.hotChecks = over ? load.hotChecks + 1 : 0;
      load.bytes = 0;
      load.records = 0;
      if (load.hotChecks >= SUSTAINED_CHECKS) hot.push(load);
    }
    if (hot.length === 0 || this.splitting) return;
    this.splitting = true;
    try {
      for (const load of hot) {
        const topic = image.topic(load.topicId)!;
        const shard = topic.partitions[load.partition]!;
        const start = BigInt(shard.startingHashKey);
        const end = BigInt(shard.endingHashKey);
        if (end <= start) continue;
        const middle = (start + end + 1n) / 2n;
        try {
          await this.options.split(topic.name, load.partition, middle.toString());
          this.options.logger.info(`on-demand stream ${topic.name}: split hot shard ${load.partition} at ${middle}`);
        } catch (error) {
          this.options.logger.warn({ err: error, stream: topic.name, partition: load.partition }, 'on-demand split failed');
        }
        this.loads.delete(`${load.topicId}/${load.partition}`);
      }
    } finally {
      this.splitting = false;
    }
  }
}

