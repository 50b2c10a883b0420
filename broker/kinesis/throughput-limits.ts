// Per-shard throughput limits for streams whose `stream.limits` profile is 'kinesis' (Kinesis
// Data Streams' provisioned-mode numbers): in, 1 MiB/s and 1,000 records/s per shard; out,
// 2 MiB/s and 5 GetRecords calls/s per shard; 2 MiB/s per Enhanced Fan-Out consumer per shard.
// Profile 'off' (the default) checks nothing. Limits are kept by the shard's leader, in token
// buckets holding one second's worth, refilled continuously. The number of buckets is bounded:
// one set per shard led here, dropped when the shard is no longer known.
import { assert } from '../../src/util/assert.js';

export const SHARD_WRITE_BYTES_PER_SECOND = 1024 * 1024;
export const SHARD_WRITE_RECORDS_PER_SECOND = 1_000;
export const SHARD_READ_BYTES_PER_SECOND = 2 * 1024 * 1024;
export const SHARD_READ_CALLS_PER_SECOND = 5;
export const EFO_BYTES_PER_SECOND = 2 * 1024 * 1024;
/** Kinesis: one SubscribeToShard call per second per consumer per shard (LimitExceededException). */
export const SUBSCRIBE_INTERVAL_MS_MIN = 1_000;
/** Consumer-shard pairs whose last subscription time one broker remembers. */
export const SUBSCRIBE_TIMES_MAX = 100_000;
/** Shards whose buckets one broker keeps at once. */
export const LIMITED_SHARDS_MAX = 100_000;

export type LimitsProfile = 'kinesis' | 'off';

export function limitsProfileOf(configs: Readonly<Record<string, string>>): LimitsProfile {
  return configs['stream.limits'] === 'kinesis' ? 'kinesis' : 'off';
}

/** A token bucket: `rate` tokens a second, at most `capacity` saved up. It may go into debt. */
export class TokenBucket {
  private tokens: number;
  private updatedMs: number;

  constructor(private readonly rate: number, private readonly capacity: number, private readonly nowMs: () => number) {
    assert(rate > 0 && capacity > 0, () => `bucket rate ${rate}, capacity ${capacity}`);
    this.tokens = capacity;
    this.updatedMs = nowMs();
  }

  private refill(): void {
    const now = this.nowMs();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.updatedMs) * this.rate) / 1000);
    this.updatedMs = now;
  }

  /** Takes `amount` if that many tokens are there; false (taking nothing) otherwise. */
  tryTake(amount: number): boolean {
    this.refill();
    if (this.tokens < amount) return false;
    this.tokens -= amount;
    return true;
  }

  /** True when the bucket is not in debt (a read may start; its size is charged afterwards). */
  hasTokens(): boolean {
    this.refill();
    return this.tokens > 0;
  }

  /** Charges `amount`, possibly into debt. */
  charge(amount: number): void {
    this.refill();
    this.tokens -= amount;
  }

  /** Milliseconds until the bucket is out of debt (0 when it is). */
  msUntilPositive(): number {
    this.refill();
    return this.tokens > 0 ? 0 : Math.ceil(((-this.tokens + 1) * 1000) / this.rate);
  }
}

interface ShardBuckets {
  writeBytes: TokenBucket;
  writeRecords: TokenBucket;
  readBytes: TokenBucket;
  readCalls: TokenBucket;
}

export class ShardLimits {
  private readonly shards = new Map<string, ShardBuckets>();

  constructor(private readonly nowMs: () => number = Date.now) {}

  private bucketsOf(key: string): ShardBuckets {
    let buckets = this.shards.get(key);
    if (!buckets) {
      if (this.shards.size >= LIMITED_SHARDS_MAX) this.shards.clear();
      buckets = {
        writeBytes: new TokenBucket(SHARD_WRITE_BYTES_PER_SECOND, SHARD_WRITE_BYTES_PER_SECOND, this.nowMs),
        writeRecords: new TokenBucket(SHARD_WRITE_RECORDS_PER_SECOND, SHARD_WRITE_RECORDS_PER_SECOND, this.nowMs),
        readBytes: new TokenBucket(SHARD_READ_BYTES_PER_SECOND, SHARD_READ_BYTES_PER_SECOND, this.nowMs),
        readCalls: new TokenBucket(SHARD_READ_CALLS_PER_SECOND, SHARD_READ_CALLS_PER_SECOND, this.nowMs),
      };
      this.shards.set(key, buckets);
    }
    return buckets;
  }

  /** Admits one record of `bytes` into the shard, or says it exceeds the shard's write budget. */
  tryWrite(key: string, bytes: number): boolean {
    const buckets = this.bucketsOf(key);
    if (!buckets.writeRecords.tryTake(1)) return false;
    if (buckets.writeBytes.tryTake(bytes)) return true;
    buckets.writeRecords.charge(-1);
    return false;
  }

  /** Admits one GetRecords call (5 a second, and only while the byte budget is not in debt). */
  tryRead(key: string): boolean {
    const buckets = this.bucketsOf(key);
    if (!buckets.readBytes.hasTokens()) return false;
    return buckets.readCalls.tryTake(1);
  }

  chargeRead(key: string, bytes: number): void {
    this.bucketsOf(key).readBytes.charge(bytes);
  }

  forget(key: string): void {
    this.shards.delete(key);
  }
}

/**
 * When each consumer last subscribed to each shard (profile 'kinesis'): a call within
 * SUBSCRIBE_INTERVAL_MS_MIN of the last accepted one is refused. Entries older than the interval
 * mean nothing, so a full table is simply cleared.
 */
export class SubscribeRateLimiter {
  private readonly lastAcceptedMs = new Map<string, number>();

  constructor(private readonly nowMs: () => number = Date.now) {}

  /** Records and admits a call, or returns the milliseconds until one would be admitted. */
  tryAdmit(key: string): number {
    const now = this.nowMs();
    const last = this.lastAcceptedMs.get(key);
    if (last !== undefined && now - last < SUBSCRIBE_INTERVAL_MS_MIN) return SUBSCRIBE_INTERVAL_MS_MIN - (now - last);
    if (this.lastAcceptedMs.size >= SUBSCRIBE_TIMES_MAX) this.lastAcceptedMs.clear();
    this.lastAcceptedMs.set(key, now);
    return 0;
  }
}
