// The pure lease rules of Kinesis-like applications (broker/groups/kinesis-leases.ts): balanced
// and sticky targets, no shard granted while another worker holds it, children only after their
// parents are at SHARD_END, and records that replay to the same state.
import { describe, expect, it } from 'vitest';
import {
  SHARD_END, applyAppRecord, cloneApp, diffAppRecords, expireWorker, leaseHeartbeat, leasableShards, newApp, targetLeases,
  type KinesisApp, type LeaseHeartbeatInput, type StreamShard,
} from '../../../broker/groups/kinesis-leases.js';
import { decodeRecord, encodeKey, encodeValue } from '../../../broker/groups/offsets-records.js';

const shardId = (index: number): string => `shardId-${String(index).padStart(12, '0')}`;
const flatStream = (count: number): StreamShard[] => Array.from({ length: count }, (_, index) => ({ shardId: shardId(index), parents: [], closed: false }));

function beat(app: KinesisApp, workerId: string, stream: StreamShard[], live: string[], extra: Partial<LeaseHeartbeatInput> = {}) {
  const owned = [...app.shards].filter(([, value]) => value.owner === workerId).map(([id]) => id);
  return leaseHeartbeat(app, { appName: 'app', streamName: 's', workerId, ownedShardIds: owned, drained: [], failoverTimeMs: 0, leaving: false, ...extra }, stream, live);
}

function owners(app: KinesisApp): Map<string, string[]> {
  const result = new Map<string, string[]>();
  for (const [id, value] of app.shards) if (value.owner) (result.get(value.owner) ?? result.set(value.owner, []).get(value.owner)!).push(id);
  return result;
}

describe('Kinesis-like leases', () => {
  it('targets are balanced to within one and keep what a worker holds', () => {
    const app = newApp('app');
    const stream = flatStream(7);
    for (let index = 0; index < 7; index++) app.shards.set(shardId(index), { checkpoint: '', checkpointTimestampMs: 0, owner: 'a', leaseEpoch: 1 });
    const target = targetLeases(app, leasableShards(app, stream), ['a', 'b', 'c']);
    const sizes = [...target.values()].map((shards) => shards.length).sort();
    expect(sizes).toEqual([2, 2, 3]);
    // a keeps its first shards; only the surplus moves.
    expect(target.get('a')).toEqual([shardId(0), shardId(1), shardId(2)]);
  });

  it('a planned move is revoke-then-assign: never two owners', () => {
    const app = newApp('app');
    const stream = flatStream(4);
    expect(beat(app, 'a', stream, []).leases).toHaveLength(4);
    const joined = beat(app, 'b', stream, ['a']);
    // b waits: a still holds everything.
    expect(joined.leases).toEqual([]);
    expect(joined.reconciling).toBe(true);
    const asked = beat(app, 'a', stream, ['b']);
    expect(asked.release).toHaveLength(2);
    expect(owners(app).get('a')).toHaveLength(4);
    // a released them (left them out of its heartbeat); now b gets them.
    beat(app, 'a', stream, ['b'], { ownedShardIds: [...app.shards].filter(([id]) => !asked.release.includes(id)).map(([id]) => id) });
    const granted = beat(app, 'b', stream, ['a']);
    expect(granted.leases.map((lease) => lease.shardId).sort()).toEqual([...asked.release].sort());
    expect(granted.leases.every((lease) => lease.leaseEpoch === 2)).toBe(true);
    expect(owners(app).get('a')).toHaveLength(2);
  });

  it('children are leasable only once every parent is at SHARD_END', () => {
    const app = newApp('app');
    const stream: StreamShard[] = [
      { shardId: shardId(0), parents: [], closed: true },
      { shardId: shardId(1), parents: [], closed: true },
      { shardId: shardId(2), parents: [shardId(0), shardId(1)], closed: false },
    ];
    expect(leasableShards(app, stream)).toEqual([shardId(0), shardId(1)]);
    const first = beat(app, 'a', stream, []);
    expect(first.leases.map((lease) => lease.shardId)).toEqual([shardId(0), shardId(1)]);
    const drainedOne = beat(app, 'a', stream, [], { ownedShardIds: [shardId(1)], drained: [{ shardId: shardId(0), leaseEpoch: 1 }] });
    expect(app.shards.get(shardId(0))).toMatchObject({ checkpoint: SHARD_END, owner: '' });
    expect(drainedOne.leases.map((lease) => lease.shardId)).toEqual([shardId(1)]);
    const drainedBoth = beat(app, 'a', stream, [], { ownedShardIds: [], drained: [{ shardId: shardId(1), leaseEpoch: 1 }] });
    expect(drainedBoth.leases.map((lease) => lease.shardId)).toEqual([shardId(2)]);
  });

  it('a stale drain report (wrong epoch, open shard) changes nothing', () => {
    const app = newApp('app');
    const stream = flatStream(1);
    beat(app, 'a', stream, []);
    beat(app, 'a', stream, [], { ownedShardIds: [shardId(0)], drained: [{ shardId: shardId(0), leaseEpoch: 1 }] });
    expect(app.shards.get(shardId(0))).toMatchObject({ checkpoint: '', owner: 'a' });
  });

  it('an expired worker loses its leases; the records replay to the same state', () => {
    const before = newApp('app');
    const stream = flatStream(3);
    beat(before, 'a', stream, []);
    const after = cloneApp(before);
    expect(expireWorker(after, 'a')).toBe(3);
    const replayed = new Map<string, KinesisApp>();
    for (const record of [...diffAppRecords('app', undefined, before), ...diffAppRecords('app', before, after)]) {
      const decoded = decodeRecord(encodeKey(record), encodeValue(record));
      if (decoded && (decoded.type === 'kinesis-app' || decoded.type === 'kinesis-shard')) applyAppRecord(replayed, decoded);
    }
    expect(replayed.get('app')).toEqual(after);
  });
});
