// The Kinesis chaos checker must flag each anomaly it claims to find: every case feeds it a small
// history and final state with exactly one kind of anomaly (and a clean one that must pass).
import { describe, expect, it } from 'vitest';
import { checkKinesis, type KinesisAnomalyKind } from '../../chaos/checker-kinesis.js';
import { History } from '../../chaos/history.js';
import type { KinesisFinalState } from '../../chaos/workload-kinesis.js';

const PARENT = 'shardId-000000000000';
const CHILD = 'shardId-000000000001';

/** Sequence numbers of the fixture: increasing decimal strings. */
function sequence(index: number): string {
  return String(49_000_000_000 + index * 10);
}

/**
 * PARENT holds p0..p2 and is closed; CHILD (its only child) holds c0..c1. The producer's puts
 * are acknowledged; the reader reads PARENT to its end, then CHILD.
 */
function cleanRun(): { history: History; final: KinesisFinalState } {
  const history = new History();
  const parent = ['p0', 'p1', 'p2'];
  const child = ['c0', 'c1'];
  for (const [shard, values] of [[PARENT, parent], [CHILD, child]] as const) {
    values.forEach((value, index) => {
      history.add({ type: 'invoke', f: 'put', process: 'kinesis-producer-0', value });
      history.add({ type: 'ok', f: 'put', process: 'kinesis-producer-0', value, shard, sequence: sequence(index) });
    });
  }
  history.add({ type: 'ok', f: 'reader-start', process: 'reader', value: '{}' });
  history.add({ type: 'ok', f: 'get', process: 'reader', shard: PARENT, kinesisRecords: parent.map((value, index) => ({ value, sequence: sequence(index) })) });
  history.add({ type: 'ok', f: 'shard-end', process: 'reader', shard: PARENT });
  history.add({ type: 'ok', f: 'get', process: 'reader', shard: CHILD, kinesisRecords: child.map((value, index) => ({ value, sequence: sequence(index) })) });
  const final: KinesisFinalState = {
    shards: new Map([
      [PARENT, { parents: [], closed: true, records: parent.map((value, index) => ({ value, sequence: sequence(index), partitionKey: 'k' })) }],
      [CHILD, { parents: [PARENT], closed: false, records: child.map((value, index) => ({ value, sequence: sequence(index), partitionKey: 'k' })) }],
    ]),
  };
  return { history, final };
}

function flagged(history: History, final: KinesisFinalState): KinesisAnomalyKind[] {
  const result = checkKinesis(history.ops, final);
  return (Object.keys(result.anomalies) as KinesisAnomalyKind[]).filter((kind) => result.anomalies[kind].count > 0);
}

describe('Kinesis chaos checker', () => {
  it('passes a clean history', () => {
    const { history, final } = cleanRun();
    const result = checkKinesis(history.ops, final);
    expect(flagged(history, final)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(result.counts).toMatchObject({ puts: 5, acknowledged: 5, finalRecords: 5, received: 5, readers: 1, duplicates: 0 });
  });

  it('flags an acknowledged put missing from every shard as lost', () => {
    const { history, final } = cleanRun();
    history.add({ type: 'ok', f: 'put', process: 'kinesis-producer-0', value: 'gone', shard: CHILD, sequence: sequence(9) });
    expect(flagged(history, final)).toEqual(['lost']);
  });

  it('flags an acknowledged value no reader received as unseen', () => {
    const { history, final } = cleanRun();
    final.shards.get(CHILD)!.records.push({ value: 'c2', sequence: sequence(2), partitionKey: 'k' });
    history.add({ type: 'ok', f: 'put', process: 'kinesis-producer-0', value: 'c2', shard: CHILD, sequence: sequence(2) });
    expect(flagged(history, final)).toEqual(['unseen']);
  });

  it('flags an acknowledgement whose sequence number holds another value as inconsistent', () => {
    const { history, final } = cleanRun();
    final.shards.get(CHILD)!.records.push({ value: 'c2', sequence: sequence(2), partitionKey: 'k' });
    history.add({ type: 'ok', f: 'get', process: 'reader', shard: CHILD, kinesisRecords: [{ value: 'c2', sequence: sequence(2) }] });
    history.add({ type: 'ok', f: 'put', process: 'kinesis-producer-0', value: 'c2', shard: CHILD, sequence: sequence(7) });
    expect(flagged(history, final)).toEqual(['inconsistent']);
  });

  it('flags sequence numbers that do not increase along a shard', () => {
    const { history, final } = cleanRun();
    final.shards.get(CHILD)!.records.push({ value: 'late', sequence: String(49_000_000_005), partitionKey: 'k' });
    expect(flagged(history, final)).toEqual(['sequence-order']);
  });

  it('flags a reader that jumps over records of a shard', () => {
    const { history, final } = cleanRun();
    final.shards.get(CHILD)!.records.push(...['c2', 'c3'].map((value, index) => ({ value, sequence: sequence(2 + index), partitionKey: 'k' })));
    // c2 was not acknowledged (unknown outcome), so only the jump is an anomaly.
    history.add({ type: 'ok', f: 'reader-start', process: 'reader', value: '{}' });
    history.add({ type: 'ok', f: 'get', process: 'reader', shard: CHILD, kinesisRecords: [{ value: 'c3', sequence: sequence(3) }] });
    expect(flagged(history, final)).toEqual(['read-skip']);
  });

  it('flags a reader that receives a record again after a restart', () => {
    const { history, final } = cleanRun();
    history.add({ type: 'ok', f: 'reader-start', process: 'reader', value: '{}' });
    history.add({ type: 'ok', f: 'get', process: 'reader', shard: CHILD, kinesisRecords: [{ value: 'c1', sequence: sequence(1) }] });
    expect(flagged(history, final)).toEqual(['read-repeat']);
  });

  it('flags a reader that reads a child before finishing its parent', () => {
    const { history, final } = cleanRun();
    history.add({ type: 'ok', f: 'get', process: 'early-reader', shard: CHILD, kinesisRecords: [{ value: 'c0', sequence: sequence(0) }] });
    history.add({ type: 'ok', f: 'get', process: 'early-reader', shard: PARENT, kinesisRecords: ['p0', 'p1', 'p2'].map((value, index) => ({ value, sequence: sequence(index) })) });
    history.add({ type: 'ok', f: 'get', process: 'early-reader', shard: CHILD, kinesisRecords: [{ value: 'c1', sequence: sequence(1) }] });
    expect(flagged(history, final)).toEqual(['parent-before-child']);
  });

  it('counts a value written twice (a retried put) without calling it an anomaly', () => {
    const { history, final } = cleanRun();
    final.shards.get(CHILD)!.records.push({ value: 'p0', sequence: sequence(2), partitionKey: 'k' });
    history.add({ type: 'ok', f: 'get', process: 'reader', shard: CHILD, kinesisRecords: [{ value: 'p0', sequence: sequence(2) }] });
    const result = checkKinesis(history.ops, final);
    expect(result.valid).toBe(true);
    expect(result.counts.duplicates).toBe(1);
  });

  describe('an application with leases and checkpoints', () => {
    /**
     * cleanRun's shards and puts, processed by app 'app': worker-a leases PARENT, processes and
     * checkpoints p0..p1, hands the lease over in a planned move; worker-b resumes after p1,
     * processes p2, reaches SHARD_END, then leases CHILD and processes it.
     */
    function appRun(): { history: History; final: KinesisFinalState } {
      const { history, final } = cleanRun();
      const app = { group: 'app' };
      history.add({ ...app, type: 'ok', f: 'lease', process: 'worker-a', shard: PARENT, sequence: '' });
      history.add({ ...app, type: 'ok', f: 'get', process: 'worker-a', shard: PARENT, kinesisRecords: [0, 1].map((index) => ({ value: `p${index}`, sequence: sequence(index) })) });
      history.add({ ...app, type: 'ok', f: 'checkpoint', process: 'worker-a', shard: PARENT, sequence: sequence(1) });
      history.add({ ...app, type: 'info', f: 'lease', process: 'worker-a', shard: PARENT, error: 'lease-released' });
      history.add({ ...app, type: 'ok', f: 'lease', process: 'worker-b', shard: PARENT, sequence: sequence(1) });
      history.add({ ...app, type: 'ok', f: 'get', process: 'worker-b', shard: PARENT, kinesisRecords: [{ value: 'p2', sequence: sequence(2) }] });
      history.add({ ...app, type: 'ok', f: 'checkpoint', process: 'worker-b', shard: PARENT, sequence: sequence(2) });
      history.add({ ...app, type: 'ok', f: 'shard-end', process: 'worker-b', shard: PARENT });
      history.add({ ...app, type: 'info', f: 'lease', process: 'worker-b', shard: PARENT });
      history.add({ ...app, type: 'ok', f: 'lease', process: 'worker-a', shard: CHILD, sequence: '' });
      history.add({ ...app, type: 'ok', f: 'get', process: 'worker-a', shard: CHILD, kinesisRecords: [0, 1].map((index) => ({ value: `c${index}`, sequence: sequence(index) })) });
      return { history, final };
    }

    it('passes a clean run with a planned move', () => {
      const { history, final } = appRun();
      expect(flagged(history, final)).toEqual([]);
      expect(checkKinesis(history.ops, final).counts).toMatchObject({ readers: 2, leases: 3, checkpoints: 2 });
    });

    it('flags a lease acquired while another worker holds it', () => {
      const { history, final } = appRun();
      history.add({ group: 'app', type: 'ok', f: 'lease', process: 'worker-c', shard: CHILD, sequence: '' });
      expect(flagged(history, final)).toContain('double-lease');
    });

    it('flags a lease that resumes after an older checkpoint than the last acknowledged one', () => {
      const { history, final } = appRun();
      history.add({ group: 'app', type: 'ok', f: 'checkpoint', process: 'worker-a', shard: CHILD, sequence: sequence(1) });
      history.add({ group: 'app', type: 'info', f: 'lease', process: 'worker-a', shard: CHILD, error: 'killed' });
      history.add({ group: 'app', type: 'ok', f: 'lease', process: 'worker-b', shard: CHILD, sequence: sequence(0) });
      history.add({ group: 'app', type: 'ok', f: 'get', process: 'worker-b', shard: CHILD, kinesisRecords: [{ value: 'c1', sequence: sequence(1) }] });
      expect(flagged(history, final)).toEqual(['checkpoint-restart']);
    });

    it('flags a record processed again after a planned move, but not after a crash', () => {
      const planned = appRun();
      // worker-a processed c1 but checkpointed only c0 before its planned release.
      planned.history.add({ group: 'app', type: 'ok', f: 'checkpoint', process: 'worker-a', shard: CHILD, sequence: sequence(0) });
      planned.history.add({ group: 'app', type: 'info', f: 'lease', process: 'worker-a', shard: CHILD, error: 'lease-released' });
      planned.history.add({ group: 'app', type: 'ok', f: 'lease', process: 'worker-b', shard: CHILD, sequence: sequence(0) });
      planned.history.add({ group: 'app', type: 'ok', f: 'get', process: 'worker-b', shard: CHILD, kinesisRecords: [{ value: 'c1', sequence: sequence(1) }] });
      expect(flagged(planned.history, planned.final)).toEqual(['reprocessed']);

      const crashed = appRun();
      crashed.history.add({ group: 'app', type: 'ok', f: 'checkpoint', process: 'worker-a', shard: CHILD, sequence: sequence(0) });
      crashed.history.add({ group: 'app', type: 'info', f: 'lease', process: 'worker-a', shard: CHILD, error: 'killed' });
      crashed.history.add({ group: 'app', type: 'ok', f: 'lease', process: 'worker-b', shard: CHILD, sequence: sequence(0) });
      crashed.history.add({ group: 'app', type: 'ok', f: 'get', process: 'worker-b', shard: CHILD, kinesisRecords: [{ value: 'c1', sequence: sequence(1) }] });
      expect(flagged(crashed.history, crashed.final)).toEqual([]);
    });

    it('judges unseen and parent-before-child for the application as a whole', () => {
      const { history, final } = appRun();
      history.add({ group: 'app', type: 'ok', f: 'lease', process: 'worker-c', shard: 'shardId-000000000002', sequence: '' });
      final.shards.set('shardId-000000000002', { parents: ['shardId-000000000009'], closed: false, records: [{ value: 'x0', sequence: sequence(0), partitionKey: 'k' }] });
      history.add({ type: 'ok', f: 'put', process: 'kinesis-producer-0', value: 'x0', shard: 'shardId-000000000002', sequence: sequence(0) });
      history.add({ type: 'ok', f: 'get', process: 'reader', shard: 'shardId-000000000002', kinesisRecords: [{ value: 'x0', sequence: sequence(0) }] });
      // The app never processed x0 (unseen), and the reader read a shard whose parent it never finished.
      expect(flagged(history, final)).toEqual(['unseen', 'parent-before-child']);
    });
  });
});
