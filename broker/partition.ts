// One partition hosted by this broker: its log, its leader epoch and its high watermark, the
// offset below which records are visible to consumers. On a single node the high watermark is
// the durable end of the log: with flush policy `ack` it moves only once an fdatasync covers the
// records, so a consumer never reads what a crash could take back; with `interval` and `os` it
// follows the log end at once. Replication will move it to the minimum log end of the ISR.
import type { AppendInfo, PartitionLog } from './log/index.js';
import { RiffleError } from '../src/rpc/errors.js';
import { assert } from '../src/util/assert.js';

export type HighWatermarkListener = (partition: Partition) => void;

export class Partition {
  private highWatermarkOffset: number;
  private readonly listeners = new Set<HighWatermarkListener>();

  constructor(
    readonly topic: string,
    readonly index: number,
    readonly log: PartitionLog,
    readonly leaderEpoch: number,
  ) {
    // Everything recovered from disk survived a restart and is durable now.
    this.highWatermarkOffset = log.logEndOffset;
  }

  get highWatermark(): number {
    return this.highWatermarkOffset;
  }

  get logStartOffset(): number {
    return this.log.logStartOffset;
  }

  get logEndOffset(): number {
    return this.log.logEndOffset;
  }

  /** Checks a client's idea of the leader epoch (-1 means the client does not know it). */
  checkLeaderEpoch(clientEpoch: number): void {
    if (clientEpoch < 0 || clientEpoch === this.leaderEpoch) return;
    if (clientEpoch < this.leaderEpoch) {
      throw new RiffleError('FENCED_LEADER_EPOCH', `Leader epoch ${clientEpoch} is older than ${this.leaderEpoch} for ${this.topic}-${this.index}.`);
    }
    throw new RiffleError('UNKNOWN_LEADER_EPOCH', `Leader epoch ${clientEpoch} is newer than ${this.leaderEpoch} for ${this.topic}-${this.index}.`);
  }

  /**
   * Appends as leader. The returned promise resolves once the records are as durable as the
   * topic's flush policy promises; `awaitDurable` false (acks=0) skips that wait, not the write.
   */
  async append(batches: Buffer, awaitDurable: boolean): Promise<AppendInfo> {
    const info = this.log.append(batches, this.leaderEpoch);
    const durable = this.log.waitDurable(info.lastOffset + 1).then(() => this.advanceHighWatermark(info.lastOffset + 1));
    if (awaitDurable) await durable;
    else durable.catch(() => undefined);
    return info;
  }

  private advanceHighWatermark(offset: number): void {
    if (offset <= this.highWatermarkOffset) return;
    assert(offset <= this.log.logEndOffset, () => `high watermark ${offset} beyond log end ${this.log.logEndOffset}`);
    this.highWatermarkOffset = offset;
    for (const listener of this.listeners) listener(this);
  }

  /** Reads whole batches from fetchOffset, never past the high watermark. */
  read(fetchOffset: number, maxBytes: number): Buffer {
    if (fetchOffset < this.log.logStartOffset || fetchOffset > this.highWatermarkOffset) {
      throw new RiffleError(
        'OFFSET_OUT_OF_RANGE',
        `Offset ${fetchOffset} is outside [${this.log.logStartOffset}, ${this.highWatermarkOffset}] of ${this.topic}-${this.index}.`,
      );
    }
    if (fetchOffset === this.highWatermarkOffset) return EMPTY;
    return this.log.read(fetchOffset, maxBytes, this.highWatermarkOffset).records;
  }

  onHighWatermark(listener: HighWatermarkListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.log.close();
  }
}

const EMPTY = Buffer.alloc(0);
