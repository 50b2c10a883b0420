// The Raft metadata checks must pass good histories and flag bad ones: topic registers whose
// create / describe / delete operations are (or are not) linearizable, and controllers' committed
// logs that are (or are not) prefixes of one log. Also the majorities ring the nemesis builds:
// every node hears a bare majority and no two hear the same one.
import { describe, expect, it } from 'vitest';
import { History, type Op } from '../../chaos/history.js';
import { checkCommittedLogs, checkMetadata, metadataOperations, type CommittedLog } from '../../chaos/metadata-check.js';
import { majorityRingViews } from '../../chaos/nemesis.js';

type Step = [process: string, type: Op['type'], action: 'create' | 'delete' | 'describe', topic: string, atMs: number, exists?: boolean];

/** A history from steps; each step's wall-clock time is its atMs (from the history's start). */
function historyOf(steps: Step[]): Op[] {
  const history = new History();
  const start = Date.now();
  for (const [process, type, action, value, atMs, exists] of steps) {
    history.add({ type, f: 'metadata', process, action, value, ...(exists === undefined ? {} : { exists }) }, start + atMs);
  }
  return history.ops;
}

function valid(steps: Step[]): boolean {
  return checkMetadata(historyOf(steps), []).valid;
}

describe('metadata linearizability', () => {
  it('passes create, describe (exists), delete, describe (absent) one after another', () => {
    expect(valid([
      ['meta-0', 'invoke', 'create', 't1', 0], ['meta-0', 'ok', 'create', 't1', 10],
      ['meta-1', 'invoke', 'describe', 't1', 20], ['meta-1', 'ok', 'describe', 't1', 25, true],
      ['meta-0', 'invoke', 'delete', 't1', 30], ['meta-0', 'ok', 'delete', 't1', 40],
      ['meta-1', 'invoke', 'describe', 't1', 50], ['meta-1', 'ok', 'describe', 't1', 55, false],
    ])).toBe(true);
  });

  it('passes a describe concurrent with the create, whichever it saw', () => {
    for (const exists of [true, false]) {
      expect(valid([
        ['meta-0', 'invoke', 'create', 't1', 0],
        ['meta-1', 'invoke', 'describe', 't1', 5], ['meta-1', 'ok', 'describe', 't1', 8, exists],
        ['meta-0', 'ok', 'create', 't1', 10],
      ])).toBe(true);
    }
  });

  it('allows a describe from a lagging broker to miss a topic whose create was acknowledged (a stale read)', () => {
    expect(valid([
      ['meta-0', 'invoke', 'create', 't1', 0], ['meta-0', 'ok', 'create', 't1', 10],
      ['meta-1', 'invoke', 'describe', 't1', 20], ['meta-1', 'ok', 'describe', 't1', 25, false],
    ])).toBe(true);
  });

  it('flags a describe that shows a topic before anyone asked to create it (a read from the future)', () => {
    const result = checkMetadata(historyOf([
      ['meta-1', 'invoke', 'describe', 't1', 0], ['meta-1', 'ok', 'describe', 't1', 5, true],
      ['meta-0', 'invoke', 'create', 't1', 10], ['meta-0', 'ok', 'create', 't1', 20],
    ]), []);
    expect(result.valid).toBe(false);
    expect(result.problems[0]).toMatch(/t1 are not linearizable/);
  });

  it('flags a topic that exists although nobody created it', () => {
    expect(valid([['meta-1', 'invoke', 'describe', 'ghost', 0], ['meta-1', 'ok', 'describe', 'ghost', 5, true]])).toBe(false);
  });

  it('lets an indeterminate create take effect or not', () => {
    expect(valid([
      ['meta-0', 'invoke', 'create', 't1', 0], ['meta-0', 'info', 'create', 't1', 10],
      ['meta-1', 'invoke', 'describe', 't1', 20], ['meta-1', 'ok', 'describe', 't1', 25, false],
      ['meta-1', 'invoke', 'describe', 't1', 30], ['meta-1', 'ok', 'describe', 't1', 35, true],
    ])).toBe(true);
  });

  it('flags a topic seen by a describe although its create certainly failed', () => {
    expect(valid([
      ['meta-0', 'invoke', 'create', 't1', 0], ['meta-0', 'fail', 'create', 't1', 10],
      ['meta-1', 'invoke', 'describe', 't1', 20], ['meta-1', 'ok', 'describe', 't1', 25, true],
    ])).toBe(false);
  });

  it('ignores failed describes and keeps calls left open as indeterminate writes', () => {
    const ops = historyOf([
      ['meta-1', 'invoke', 'describe', 't1', 0], ['meta-1', 'fail', 'describe', 't1', 5],
      ['meta-0', 'invoke', 'create', 't2', 10],
    ]);
    expect(metadataOperations(ops)).toEqual([{ client: 0, kind: 'write', key: 't2', value: 'exists', invokeMs: ops[2]!.timeMs, completeMs: Infinity }]);
  });
});

function logOf(node: number, commitIndex: number, values: string[], snapshotIndex = 0): CommittedLog {
  return { node, snapshotIndex, commitIndex, entries: new Map(values.map((value, index) => [snapshotIndex + index + 1, value])) };
}

describe('committed metadata logs', () => {
  it('passes logs that are prefixes of one log, snapshots included', () => {
    expect(checkCommittedLogs([
      logOf(1, 4, ['1:a', '1:b', '2:c', '2:d']),
      logOf(2, 3, ['1:a', '1:b', '2:c', '2:x']), // index 4 is not committed on node 2: it may differ
      logOf(3, 4, ['2:c', '2:d'], 2),
    ])).toEqual([]);
  });

  it('flags two different entries committed at one index', () => {
    const problems = checkCommittedLogs([logOf(1, 3, ['1:a', '1:b', '2:c']), logOf(2, 3, ['1:a', '1:b', '3:z'])]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/index 3: node 1 committed 2:c, node 2 committed 3:z/);
  });

  it('flags a committed entry missing from a log (a lost record)', () => {
    expect(checkCommittedLogs([logOf(1, 3, ['1:a', '1:b'])])[0]).toMatch(/committed entry 3 is missing/);
  });

  it('counts a failed log check in the metadata verdict', () => {
    const result = checkMetadata([], [logOf(1, 2, ['1:a', '1:b']), logOf(2, 2, ['1:a', '1:c'])]);
    expect(result).toMatchObject({ valid: false, logsCompared: 2, commitIndexMax: 2 });
  });
});

describe('majorities ring', () => {
  it('gives every node a bare majority and no two nodes the same one', () => {
    for (let count = 3; count <= 9; count++) {
      const ring = Array.from({ length: count }, (_, index) => ((index + 2) % count) + 1).reverse();
      expect(new Set(ring).size).toBe(count);
      const views = majorityRingViews(ring);
      const majority = Math.floor(count / 2) + 1;
      const seen = new Set<string>();
      for (const [node, view] of views) {
        expect(view.size, `${count} nodes`).toBe(majority);
        expect(view.has(node)).toBe(true);
        seen.add([...view].sort((a, b) => a - b).join(','));
      }
      expect(seen.size, `${count} nodes`).toBe(count);
    }
  });
});
