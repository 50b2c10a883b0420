// The chaos checker must flag each anomaly it claims to find: every case below feeds it a small
// history containing exactly one kind of anomaly (and a clean one that must pass).
import { describe, expect, it } from 'vitest';
import { check, type AnomalyKind, type FinalState } from '../../chaos/checker.js';
import { History } from '../../chaos/history.js';
import { partitionUnavailability, unavailabilityWindows } from '../../chaos/run.js';
import { pickKey, type ReplicaChecksum } from '../../chaos/workload-kafka.js';
import { Prng } from '../../src/util/prng.js';

type Log = { offset: number; value: string }[];

/** A history where producer-0 sends a0..a(n-1) to partition 0 at offsets 0..n-1, and consumer-0 reads them all. */
function cleanRun(count = 4): { history: History; logs: Map<number, Log> } {
  const history = new History();
  history.add({ type: 'ok', f: 'assign', process: 'consumer-0', partitions: [0] });
  for (let index = 0; index < count; index++) {
    history.add({ type: 'invoke', f: 'send', process: 'producer-0', value: `a${index}` });
    history.add({ type: 'ok', f: 'send', process: 'producer-0', value: `a${index}`, partition: 0, offset: index });
  }
  history.add({ type: 'ok', f: 'poll', process: 'consumer-0', records: Array.from({ length: count }, (_, index) => ({ partition: 0, offset: index, value: `a${index}` })) });
  const logs = new Map<number, Log>([[0, Array.from({ length: count }, (_, index) => ({ offset: index, value: `a${index}` }))]]);
  return { history, logs };
}

function replicas(crcs: number[]): ReplicaChecksum[] {
  return crcs.map((crc32c, index) => ({ topic: 'chaos', partition: 0, replica: index + 1, inIsr: true, highWatermark: 4, errorCode: 0, offset: 4, crc32c, bytes: 400 }));
}

function flagged(history: History, final: FinalState): AnomalyKind[] {
  const result = check(history.ops, final);
  return (Object.keys(result.anomalies) as AnomalyKind[]).filter((kind) => result.anomalies[kind].count > 0);
}

describe('chaos checker', () => {
  it('passes a clean history', () => {
    const { history, logs } = cleanRun();
    const result = check(history.ops, { logs, checksums: replicas([7, 7, 7]) });
    expect(result.valid).toBe(true);
    expect(result.counts).toMatchObject({ sends: 4, acknowledged: 4, polled: 4, finalRecords: 4 });
  });

  it('flags an acknowledged write missing from the log as lost', () => {
    const { history, logs } = cleanRun();
    logs.set(0, logs.get(0)!.filter((record) => record.value !== 'a3'));
    expect(flagged(history, { logs, checksums: [] })).toContain('lost');
  });

  it('flags a value in the log that no consumer received as unseen', () => {
    const { history, logs } = cleanRun();
    history.add({ type: 'invoke', f: 'send', process: 'producer-0', value: 'a4' });
    history.add({ type: 'ok', f: 'send', process: 'producer-0', value: 'a4', partition: 0, offset: 4 });
    logs.get(0)!.push({ offset: 4, value: 'a4' });
    expect(flagged(history, { logs, checksums: [] })).toEqual(['unseen']);
  });

  it('flags a value at two offsets as a duplicate', () => {
    const { history, logs } = cleanRun();
    logs.get(0)!.push({ offset: 4, value: 'a2' });
    expect(flagged(history, { logs, checksums: [] })).toContain('duplicate');
  });

  it('flags two values at one offset as inconsistent offsets', () => {
    const { history, logs } = cleanRun();
    history.add({ type: 'ok', f: 'poll', process: 'consumer-1', records: [{ partition: 0, offset: 1, value: 'zzz' }] });
    expect(flagged(history, { logs, checksums: [] })).toContain('inconsistent-offsets');
  });

  it('flags a producer whose later send landed before its earlier one as a nonmonotonic send', () => {
    const history = new History();
    history.add({ type: 'invoke', f: 'send', process: 'producer-0', value: 'x' });
    history.add({ type: 'invoke', f: 'send', process: 'producer-0', value: 'y' });
    history.add({ type: 'ok', f: 'send', process: 'producer-0', value: 'y', partition: 0, offset: 0 });
    history.add({ type: 'ok', f: 'send', process: 'producer-0', value: 'x', partition: 0, offset: 1 });
    history.add({ type: 'ok', f: 'poll', process: 'consumer-0', records: [{ partition: 0, offset: 0, value: 'y' }, { partition: 0, offset: 1, value: 'x' }] });
    const logs = new Map<number, Log>([[0, [{ offset: 0, value: 'y' }, { offset: 1, value: 'x' }]]]);
    expect(flagged(history, { logs, checksums: [] })).toEqual(['nonmonotonic-send']);
  });

  it('flags a consumer going back without a reassignment as a nonmonotonic poll, and excuses it after one', () => {
    const { history, logs } = cleanRun();
    history.add({ type: 'ok', f: 'poll', process: 'consumer-0', records: [{ partition: 0, offset: 2, value: 'a2' }] });
    expect(flagged(history, { logs, checksums: [] })).toEqual(['nonmonotonic-poll']);
    const excused = cleanRun();
    excused.history.add({ type: 'ok', f: 'assign', process: 'consumer-0', partitions: [0] });
    excused.history.add({ type: 'ok', f: 'poll', process: 'consumer-0', records: [{ partition: 0, offset: 2, value: 'a2' }] });
    expect(flagged(excused.history, { logs: excused.logs, checksums: [] })).toEqual([]);
  });

  it('flags a consumer jumping over records as a poll skip', () => {
    const { history, logs } = cleanRun();
    for (let index = 4; index < 7; index++) {
      history.add({ type: 'invoke', f: 'send', process: 'producer-0', value: `a${index}` });
      history.add({ type: 'ok', f: 'send', process: 'producer-0', value: `a${index}`, partition: 0, offset: index });
      logs.get(0)!.push({ offset: index, value: `a${index}` });
    }
    history.add({ type: 'ok', f: 'poll', process: 'consumer-0', records: [{ partition: 0, offset: 4, value: 'a4' }, { partition: 0, offset: 6, value: 'a6' }] });
    history.add({ type: 'ok', f: 'poll', process: 'consumer-1', records: [{ partition: 0, offset: 5, value: 'a5' }] });
    expect(flagged(history, { logs, checksums: [] })).toEqual(['poll-skip']);
  });

  it('flags a definitely failed send that shows up as an aborted read', () => {
    const { history, logs } = cleanRun();
    history.add({ type: 'invoke', f: 'send', process: 'producer-1', value: 'doomed' });
    history.add({ type: 'fail', f: 'send', process: 'producer-1', value: 'doomed', error: 'NOT_ENOUGH_REPLICAS' });
    logs.get(0)!.push({ offset: 4, value: 'doomed' });
    history.add({ type: 'ok', f: 'poll', process: 'consumer-0', records: [{ partition: 0, offset: 4, value: 'doomed' }] });
    expect(flagged(history, { logs, checksums: [] })).toEqual(['aborted-read']);
  });

  it('flags ISR replicas with different bytes below the high watermark', () => {
    const { history, logs } = cleanRun();
    expect(flagged(history, { logs, checksums: replicas([7, 7, 8]) })).toEqual(['replica-divergence']);
    // A replica outside the ISR may still be catching up.
    const outside = replicas([7, 7, 8]);
    outside[2]!.inIsr = false;
    expect(flagged(history, { logs, checksums: outside })).toEqual([]);
  });

  it('flags a group offset commit that goes backwards', () => {
    const { history, logs } = cleanRun();
    history.add({ type: 'ok', f: 'commit', process: 'consumer-0', group: 'g', partition: 0, offset: 3 });
    history.add({ type: 'ok', f: 'commit', process: 'consumer-1', group: 'g', partition: 0, offset: 2 });
    expect(flagged(history, { logs, checksums: [] })).toEqual(['commit-backwards']);
  });

  it('flags two group members owning one partition at once', () => {
    const { history, logs } = cleanRun();
    history.add({ type: 'ok', f: 'assign', process: 'member-a', group: 'g', partitions: [1] });
    history.add({ type: 'ok', f: 'assign', process: 'member-b', group: 'g', partitions: [1] });
    expect(flagged(history, { logs, checksums: [] })).toEqual(['double-ownership']);
    const handedOver = cleanRun();
    handedOver.history.add({ type: 'ok', f: 'assign', process: 'member-a', group: 'g', partitions: [1] });
    handedOver.history.add({ type: 'info', f: 'assign', process: 'member-a', group: 'g', partitions: [1] });
    handedOver.history.add({ type: 'ok', f: 'assign', process: 'member-b', group: 'g', partitions: [1] });
    expect(flagged(handedOver.history, { logs: handedOver.logs, checksums: [] })).toEqual([]);
    // Lines from two member processes arriving out of order are judged by the members' own times.
    const crossed = cleanRun();
    const now = Date.now();
    crossed.history.add({ type: 'ok', f: 'assign', process: 'member-a', group: 'g', partitions: [1] }, now - 1_000);
    crossed.history.add({ type: 'ok', f: 'assign', process: 'member-b', group: 'g', partitions: [1] }, now + 30);
    crossed.history.add({ type: 'info', f: 'assign', process: 'member-a', group: 'g', partitions: [1] }, now);
    expect(flagged(crossed.history, { logs: crossed.logs, checksums: [] })).toEqual([]);
  });

  it('flags a member that starts a newly assigned partition anywhere but the committed offset', () => {
    const { history, logs } = cleanRun();
    history.add({ type: 'ok', f: 'commit', process: 'member-0', group: 'g', partition: 0, offset: 2 });
    history.add({ type: 'info', f: 'assign', process: 'member-0', group: 'g', partitions: [0] });
    history.add({ type: 'ok', f: 'assign', process: 'member-1', group: 'g', partitions: [0] });
    history.add({ type: 'ok', f: 'poll', process: 'member-1', records: [{ partition: 0, offset: 3, value: 'a3' }] });
    expect(flagged(history, { logs, checksums: [] })).toEqual(['restart-offset']);

    const resumed = cleanRun();
    resumed.history.add({ type: 'ok', f: 'commit', process: 'member-0', group: 'g', partition: 0, offset: 2 });
    // A commit whose outcome is unknown may have landed: starting there is fine too.
    resumed.history.add({ type: 'info', f: 'commit', process: 'member-0', group: 'g', partition: 0, offset: 3 });
    resumed.history.add({ type: 'info', f: 'assign', process: 'member-0', group: 'g', partitions: [0] });
    resumed.history.add({ type: 'ok', f: 'assign', process: 'member-1', group: 'g', partitions: [0] });
    resumed.history.add({ type: 'ok', f: 'poll', process: 'member-1', records: [{ partition: 0, offset: 3, value: 'a3' }] });
    expect(flagged(resumed.history, { logs: resumed.logs, checksums: [] })).toEqual([]);

    // A killed member may have had any commit up to what it had received in flight.
    const killed = cleanRun();
    killed.history.add({ type: 'ok', f: 'commit', process: 'member-0', group: 'g', partition: 0, offset: 1 });
    killed.history.add({ type: 'info', f: 'commit', process: 'member-0', group: 'g', partition: 0, offset: 4, fromOffset: 1 });
    killed.history.add({ type: 'info', f: 'assign', process: 'member-0', group: 'g', partitions: [0] });
    killed.history.add({ type: 'ok', f: 'assign', process: 'member-1', group: 'g', partitions: [0] });
    killed.history.add({ type: 'ok', f: 'poll', process: 'member-1', records: [{ partition: 0, offset: 2, value: 'a2' }] });
    expect(flagged(killed.history, { logs: killed.logs, checksums: [] })).toEqual([]);

    // A commit in flight when the partition moved (invoked before, answered after the new owner
    // started) may have set the new owner's start; any other start is still flagged.
    for (const [start, expected] of [[3, []], [1, ['restart-offset']]] as const) {
      const late = cleanRun();
      late.history.add({ type: 'ok', f: 'commit', process: 'member-0', group: 'g', partition: 0, offset: 2 });
      late.history.add({ type: 'invoke', f: 'commit', process: 'member-0', group: 'g', partition: 0, offset: 3, value: 'c1' });
      // What the member had processed when it lost the partition: not the completion of c1.
      late.history.add({ type: 'info', f: 'commit', process: 'member-0', group: 'g', partition: 0, offset: 4 });
      late.history.add({ type: 'info', f: 'assign', process: 'member-0', group: 'g', partitions: [0] });
      late.history.add({ type: 'ok', f: 'assign', process: 'member-1', group: 'g', partitions: [0] });
      late.history.add({ type: 'ok', f: 'poll', process: 'member-1', records: [{ partition: 0, offset: start, value: `a${start}` }] });
      late.history.add({ type: 'ok', f: 'commit', process: 'member-0', group: 'g', partition: 0, offset: 3, value: 'c1' });
      expect(flagged(late.history, { logs: late.logs, checksums: [] })).toEqual(expected);
    }

    // A commit answered before the move is no longer in flight: only its offset counts then.
    const answered = cleanRun();
    answered.history.add({ type: 'invoke', f: 'commit', process: 'member-0', group: 'g', partition: 0, offset: 2, value: 'c1' });
    answered.history.add({ type: 'ok', f: 'commit', process: 'member-0', group: 'g', partition: 0, offset: 2, value: 'c1' });
    answered.history.add({ type: 'invoke', f: 'commit', process: 'member-0', group: 'g', partition: 0, offset: 3, value: 'c2' });
    answered.history.add({ type: 'fail', f: 'commit', process: 'member-0', group: 'g', partition: 0, offset: 3, value: 'c2' });
    answered.history.add({ type: 'info', f: 'assign', process: 'member-0', group: 'g', partitions: [0] });
    answered.history.add({ type: 'ok', f: 'assign', process: 'member-1', group: 'g', partitions: [0] });
    answered.history.add({ type: 'ok', f: 'poll', process: 'member-1', records: [{ partition: 0, offset: 3, value: 'a3' }] });
    expect(flagged(answered.history, { logs: answered.logs, checksums: [] })).toEqual(['restart-offset']);
  });

  it('reports gaps between acknowledged writes with the faults around them', () => {
    const ops = [
      { index: 0, type: 'ok' as const, f: 'send' as const, process: 'p', timeMs: 100 },
      { index: 1, type: 'invoke' as const, f: 'nemesis' as const, process: 'nemesis', timeMs: 150, fault: 'kill leader [1]' },
      { index: 2, type: 'ok' as const, f: 'send' as const, process: 'p', timeMs: 3_100 },
      { index: 3, type: 'ok' as const, f: 'send' as const, process: 'p', timeMs: 3_200 },
    ];
    expect(unavailabilityWindows(ops)).toEqual([{ startMs: 100, endMs: 3_100, durationMs: 3_000, faults: ['kill leader [1]'] }]);
  });

  it('reports each partition\'s gaps between its acknowledged writes', () => {
    const ack = (index: number, partition: number, timeMs: number) => ({ index, type: 'ok' as const, f: 'send' as const, process: 'p', partition, offset: index, timeMs });
    // Partition 1 stalls for 4 s while partition 0 keeps taking writes: no cluster-wide window.
    const ops = [ack(0, 0, 0), ack(1, 1, 100), ack(2, 0, 900), ack(3, 0, 1_800), ack(4, 0, 2_700), ack(5, 0, 3_600), ack(6, 1, 4_100), ack(7, 0, 4_500), ack(8, 0, 5_400), ack(9, 1, 5_500)];
    expect(unavailabilityWindows(ops)).toEqual([]);
    expect(partitionUnavailability(ops)).toEqual([
      { partition: 0, windows: 0, longestMs: 0, totalMs: 0 },
      { partition: 1, windows: 2, longestMs: 4_000, totalMs: 5_400 },
    ]);
  });
});

describe('chaos producer key choice', () => {
  it('never picks a key whose partition already has its share of outstanding sends, and waits when every partition has', () => {
    const seed = Number(process.env.RIFFLE_SEED ?? Date.now() % 0x7fffffff);
    console.log(`chaos producer key choice: RIFFLE_SEED=${seed}`);
    const random = new Prng(seed);
    const partitionOfKey = Array.from({ length: 64 }, (_, key) => key % 6);
    for (let round = 0; round < 2_000; round++) {
      const outstanding = Array.from({ length: 6 }, () => random.int(0, 5));
      const key = pickKey(random, partitionOfKey, outstanding, 4);
      if (outstanding.every((count) => count >= 4)) expect(key).toBe(-1);
      else expect(outstanding[partitionOfKey[key]!]).toBeLessThan(4);
    }
    // With room everywhere the drawn key is kept, so every key still gets written.
    const seen = new Set<number>();
    for (let draw = 0; draw < 5_000; draw++) seen.add(pickKey(random, partitionOfKey, [0, 0, 0, 0, 0, 0], 4));
    expect(seen.size).toBe(64);
  });
});
