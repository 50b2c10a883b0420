// Checks of the Raft metadata history of a chaos run:
//   - client-visible metadata operations: each workload topic is a register (exists or not);
//     creates and deletes write it, describes read it, and the whole history must be
//     linearizable (Wing & Gong search with Lowe's memoization, raft/linearizability.ts, bounded;
//     a search that gives up counts as a failure). An operation whose outcome is unknown may take
//     effect at any point after its invocation, or never; a describe that failed tells nothing.
//     Creates and deletes go through the active controller and are answered once committed in
//     the Raft log, so they are held to real time. Describes are answered from a broker's
//     metadata image, which may lag the controller (as Kafka's brokers' metadata does: a broker
//     cut off from the controller, e.g. in the majorities ring, serves an older image), so a
//     describe may show any state the topic had before the describe completed, and is treated as
//     invoked at the start of the history: it must never show a state the topic had not reached
//     yet (a topic nobody has created, or one the controller has not committed yet).
//   - the metadata log itself: every controller's committed Raft log (read from its disk after
//     the run) is a prefix of one single log: no two different entries at one committed index,
//     and no node's committed entries missing from a longer committed log.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { LevelStorage, checkLinearizable, type KvOperation } from '../raft/index.js';
import type { Op } from './history.js';

export interface MetadataCheck {
  valid: boolean;
  /** Metadata operations checked for linearizability (completed or indeterminate). */
  operations: number;
  /** Controllers whose committed logs were compared, and the longest committed index. */
  logsCompared: number;
  commitIndexMax: number;
  problems: string[];
}

/** One controller's committed metadata log, as read from its disk. */
export interface CommittedLog {
  node: number;
  /** Last index covered by the node's snapshot (entries at or below it are compacted away). */
  snapshotIndex: number;
  commitIndex: number;
  /** Entries after the snapshot up to the commit index: index -> "term:digest". */
  entries: Map<number, string>;
}

/** Search steps per topic before the linearizability search gives up. */
const SEARCH_STEPS_MAX = 1_000_000;
const PROBLEMS_MAX = 10;

/** Turns the history's metadata operations into register operations, one register per topic. */
export function metadataOperations(ops: readonly Op[]): KvOperation[] {
  const invoked = new Map<string, Op>();
  const clients = new Map<string, number>();
  const result: KvOperation[] = [];
  for (const op of ops) {
    if (op.f !== 'metadata' || op.value === undefined || op.action === undefined) continue;
    const key = `${op.process}/${op.action}/${op.value}`;
    if (op.type === 'invoke') {
      invoked.set(key, op);
      continue;
    }
    const invoke = invoked.get(key);
    if (!invoke) continue;
    invoked.delete(key);
    if (op.type === 'fail') continue;
    if (!clients.has(op.process)) clients.set(op.process, clients.size);
    const completeMs = op.type === 'info' ? Infinity : op.timeMs;
    const client = clients.get(op.process)!;
    if (op.action === 'describe') {
      if (op.type === 'ok') result.push({ client, kind: 'read', key: op.value, value: op.exists ? 'exists' : null, invokeMs: 0, completeMs });
    } else {
      result.push({ client, kind: 'write', key: op.value, value: op.action === 'create' ? 'exists' : null, invokeMs: invoke.timeMs, completeMs });
    }
  }
  // Calls still open at the end of the history have unknown outcomes too.
  for (const invoke of invoked.values()) {
    if (invoke.action === 'describe') continue;
    if (!clients.has(invoke.process)) clients.set(invoke.process, clients.size);
    result.push({ client: clients.get(invoke.process)!, kind: 'write', key: invoke.value!, value: invoke.action === 'create' ? 'exists' : null, invokeMs: invoke.timeMs, completeMs: Infinity });
  }
  return result;
}

/** Every controller's committed log is a prefix of one log; returns the problems found. */
export function checkCommittedLogs(logs: readonly CommittedLog[]): string[] {
  const problems: string[] = [];
  const agreed = new Map<number, { value: string; node: number }>();
  for (const log of logs) {
    if (log.commitIndex < log.snapshotIndex) problems.push(`node ${log.node}: commit index ${log.commitIndex} below its snapshot at ${log.snapshotIndex}`);
    for (let index = log.snapshotIndex + 1; index <= log.commitIndex; index++) {
      const value = log.entries.get(index);
      if (value === undefined) {
        problems.push(`node ${log.node}: committed entry ${index} is missing (commit index ${log.commitIndex})`);
        break;
      }
      const seen = agreed.get(index);
      if (seen === undefined) agreed.set(index, { value, node: log.node });
      else if (seen.value !== value) problems.push(`index ${index}: node ${seen.node} committed ${seen.value}, node ${log.node} committed ${value}`);
    }
  }
  return problems.slice(0, PROBLEMS_MAX);
}

/** Reads the committed metadata log of each controller from its data directory (nodes stopped). */
export async function readCommittedLogs(controllers: readonly { id: number; dataDir: string }[]): Promise<CommittedLog[]> {
  const logs: CommittedLog[] = [];
  for (const { id, dataDir } of controllers) {
    const storage = await LevelStorage.open(path.join(dataDir, 'metadata-raft'));
    try {
      const state = await storage.load();
      const entries = new Map<number, string>();
      for (const entry of state.entries) {
        if (entry.index > state.hardState.commit) break;
        entries.set(entry.index, `${entry.term}:${createHash('sha256').update(entry.data).digest('hex').slice(0, 16)}`);
      }
      logs.push({ node: id, snapshotIndex: state.snapshot.meta.index, commitIndex: state.hardState.commit, entries });
    } finally {
      await storage.close();
    }
  }
  return logs;
}

export function checkMetadata(ops: readonly Op[], logs: readonly CommittedLog[]): MetadataCheck {
  const operations = metadataOperations(ops);
  const problems: string[] = [];
  const linearizable = checkLinearizable(operations, SEARCH_STEPS_MAX);
  if (!linearizable.ok) problems.push(`metadata operations on ${linearizable.key} are not linearizable: ${linearizable.reason}`);
  problems.push(...checkCommittedLogs(logs));
  return {
    valid: problems.length === 0,
    operations: operations.length,
    logsCompared: logs.length,
    commitIndexMax: Math.max(0, ...logs.map((log) => log.commitIndex)),
    problems,
  };
}
