import { describe, expect, it } from 'vitest';
import { SHARD_WRITE_RECORDS_PER_SECOND, ShardLimits, SubscribeRateLimiter, TokenBucket } from '../../../broker/kinesis/throughput-limits.js';

describe('throughput limits', () => {
  it('a token bucket refills at its rate and never beyond its capacity', () => {
    let now = 0;
    const bucket = new TokenBucket(10, 10, () => now);
    for (let index = 0; index < 10; index++) expect(bucket.tryTake(1)).toBe(true);
    expect(bucket.tryTake(1)).toBe(false);
    now += 500;
    expect(bucket.tryTake(5)).toBe(true);
    expect(bucket.tryTake(1)).toBe(false);
    now += 60_000;
    expect(bucket.tryTake(10)).toBe(true);
    expect(bucket.tryTake(1)).toBe(false);
  });

  it('admits 1,000 records a second per shard and refuses the rest', () => {
    let now = 0;
    const limits = new ShardLimits(() => now);
    let admitted = 0;
    for (let index = 0; index < 1_500; index++) if (limits.tryWrite('s/0', 10)) admitted++;
    expect(admitted).toBe(SHARD_WRITE_RECORDS_PER_SECOND);
    expect(limits.tryWrite('s/1', 10)).toBe(true);
    now += 1_000;
    expect(limits.tryWrite('s/0', 10)).toBe(true);
  });

  it('admits 5 GetRecords calls a second, and none while the read bytes are in debt', () => {
    let now = 0;
    const limits = new ShardLimits(() => now);
    let calls = 0;
    for (let index = 0; index < 10; index++) if (limits.tryRead('s/0')) calls++;
    expect(calls).toBe(5);
    now += 1_000;
    expect(limits.tryRead('s/0')).toBe(true);
    limits.chargeRead('s/0', 10 * 1024 * 1024);
    now += 1_000;
    expect(limits.tryRead('s/0')).toBe(false);
    now += 5_000;
    expect(limits.tryRead('s/0')).toBe(true);
  });

  it('admits one SubscribeToShard a second per consumer and shard', () => {
    let now = 10_000;
    const limiter = new SubscribeRateLimiter(() => now);
    expect(limiter.tryAdmit('arn|0')).toBe(0);
    expect(limiter.tryAdmit('arn|1')).toBe(0);
    now += 400;
    expect(limiter.tryAdmit('arn|0')).toBe(600);
    now += 600;
    expect(limiter.tryAdmit('arn|0')).toBe(0);
  });
});
