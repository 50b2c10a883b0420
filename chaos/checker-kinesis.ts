// The checker for the Kinesis-like workload (workload-kinesis.ts). Over the history's 'put',
// 'get', 'shard-end' and 'reader-start' operations and the final read of every shard:
//   lost                  an acknowledged put whose value is in no shard;
//   unseen                an acknowledged value in the final read that a reader never received
//                         (every reader reads the whole stream);
//   inconsistent          one shard and sequence number with two values (an ack, a read and the
//                         final read disagree), or a reader receiving a record that is not in
//                         the final read of that shard;
//   sequence-order        sequence numbers not strictly increasing along a shard;
//   read-skip             a reader jumping over records of a shard (readers resume exactly after
//                         the last record they processed, across their crashes too);
//   read-repeat           a reader receiving a record of a shard at or before one it already had;
//   parent-before-child   a reader receiving a record of a child shard before it read every
//                         parent to SHARD_END.
// For the application with leases and checkpoints (operations carrying `group`, the app), the
// reader is the application: unseen and parent-before-child are judged for the app as a whole,
// read-skip and read-repeat per worker from the checkpoint its lease resumed after, and:
//   double-lease          a worker acquiring a shard's lease while another worker still holds it;
//   checkpoint-restart    a lease resuming after something other than the app's last
//                         acknowledged checkpoint of the shard, or a later record a worker had
//                         processed (its checkpoint may have been in flight when the worker
//                         lost the lease or died);
//   reprocessed           a record processed again by another worker although the first one
//                         gave the lease up in a planned move (only a crash or a lost lease
//                         excuses processing twice).
// Duplicates (a value at two places) are counted but are not anomalies: PutRecords is
// at-least-once, as in Kinesis, and a retry after an unknown outcome may write a value twice.
import type { Op } from './history.js';
import type { KinesisFinalState } from './workload-kinesis.js';

export type KinesisAnomalyKind =
  | 'lost' | 'unseen' | 'inconsistent' | 'sequence-order' | 'read-skip' | 'read-repeat' | 'parent-before-child'
  | 'double-lease' | 'checkpoint-restart' | 'reprocessed';

export const KINESIS_ANOMALY_KINDS: readonly KinesisAnomalyKind[] = [
  'lost', 'unseen', 'inconsistent', 'sequence-order', 'read-skip', 'read-repeat', 'parent-before-child', 'double-lease', 'checkpoint-restart', 'reprocessed',
];

export interface KinesisCheckResult {
  valid: boolean;
  counts: {
    puts: number;
    acknowledged: number;
    indeterminate: number;
    /** Values found at more than one place (retried puts): allowed, reported. */
    duplicates: number;
    shards: number;
    finalRecords: number;
    /** Records received by readers, over all readers. */
    received: number;
    readers: number;
    /** Leases acquired by the application's workers, and checkpoints acknowledged. */
    leases: number;
    checkpoints: number;
  };
  anomalies: Record<KinesisAnomalyKind, { count: number; examples: string[] }>;
}

const EXAMPLES_MAX = 10;

export function checkKinesis(ops: readonly Op[], final: KinesisFinalState): KinesisCheckResult {
  const anomalies = Object.fromEntries(KINESIS_ANOMALY_KINDS.map((kind) => [kind, { count: 0, examples: [] as string[] }])) as KinesisCheckResult['anomalies'];
  const flag = (kind: KinesisAnomalyKind, example: string): void => {
    anomalies[kind].count++;
    if (anomalies[kind].examples.length < EXAMPLES_MAX) anomalies[kind].examples.push(example);
  };

  // The final state: where each value is, and the position of each sequence number in its shard.
  const places = new Map<string, string[]>();
  const positionOf = new Map<string, Map<string, { index: number; value: string }>>();
  let finalRecords = 0;
  for (const [shardId, shard] of final.shards) {
    const positions = new Map<string, { index: number; value: string }>();
    positionOf.set(shardId, positions);
    shard.records.forEach((record, index) => {
      finalRecords++;
      if (index > 0 && !(BigInt(record.sequence) > BigInt(shard.records[index - 1]!.sequence))) {
        flag('sequence-order', `${shardId}: ${shard.records[index - 1]!.sequence} then ${record.sequence}`);
      }
      positions.set(record.sequence, { index, value: record.value });
      places.set(record.value, [...(places.get(record.value) ?? []), `${shardId}@${record.sequence}`]);
    });
  }
  let duplicates = 0;
  for (const at of places.values()) if (at.length > 1) duplicates++;

  let puts = 0;
  let indeterminate = 0;
  const acked = new Map<string, Op>();
  for (const op of ops) {
    if (op.f !== 'put' || op.value === undefined) continue;
    if (op.type === 'invoke') puts++;
    else if (op.type === 'ok') acked.set(op.value, op);
    else indeterminate++;
  }
  for (const [value, op] of acked) {
    if (!places.has(value)) {
      flag('lost', `'${value}' acknowledged in ${op.shard} at ${op.sequence} (t=${op.timeMs} ms) is in no shard`);
      continue;
    }
    const atSequence = positionOf.get(op.shard ?? '')?.get(op.sequence ?? '');
    if (atSequence?.value !== value) flag('inconsistent', `'${value}' acknowledged at ${op.shard}@${op.sequence}, where the final read has '${atSequence?.value ?? 'nothing'}'`);
  }

  // Each reader (a process, or an application of several workers), in time order: operations
  // reported by worker processes carry their own clock and can reach the history out of order.
  interface ReaderState {
    /** Per shard, the final-read index of the last record received. */
    last: Map<string, number>;
  }
  const readers = new Map<string, ReaderState>();
  const readerOf = (key: string): ReaderState => {
    let state = readers.get(key);
    if (!state) readers.set(key, (state = { last: new Map() }));
    return state;
  };
  /** Shards read to their end, and values received, per consumer (a reader process or an app). */
  const finished = new Map<string, Set<string>>();
  const seen = new Map<string, Set<string>>();
  const setOf = (map: Map<string, Set<string>>, key: string): Set<string> => {
    let set = map.get(key);
    if (!set) map.set(key, (set = new Set()));
    return set;
  };
  // Application state: lease holders, checkpoints, who processed what, how each lease ended.
  const holders = new Map<string, string>();
  const lastCheckpoint = new Map<string, string>();
  const unknownCheckpoints = new Map<string, Set<string>>();
  const processedBy = new Map<string, string>();
  const leaseEnd = new Map<string, string>();
  let received = 0;
  let leases = 0;
  let checkpoints = 0;
  const indexOf = (shard: string, sequence: string): number => positionOf.get(shard)?.get(sequence)?.index ?? -1;
  for (const op of [...ops].sort((a, b) => a.timeMs - b.timeMs || a.index - b.index)) {
    const consumer = op.group ?? op.process;
    const readerKey = op.group ? `${op.group}/${op.process}` : op.process;
    if (op.f === 'checkpoint' && op.group && op.shard && op.sequence !== undefined) {
      const key = `${op.group}/${op.shard}`;
      if (op.type === 'ok') {
        checkpoints++;
        lastCheckpoint.set(key, op.sequence);
        const later = [...(unknownCheckpoints.get(key) ?? [])].filter((sequence) => BigInt(sequence) > BigInt(op.sequence!));
        unknownCheckpoints.set(key, new Set(later));
      } else setOf(unknownCheckpoints, key).add(op.sequence);
      continue;
    }
    if (op.f === 'lease' && op.group && op.shard) {
      const key = `${op.group}/${op.shard}`;
      if (op.type !== 'ok') {
        if (holders.get(key) === op.process) holders.delete(key);
        leaseEnd.set(`${op.process}/${op.shard}`, op.error ?? 'released');
        continue;
      }
      leases++;
      const holder = holders.get(key);
      if (holder !== undefined && holder !== op.process) flag('double-lease', `${op.process} acquired ${op.shard} of ${op.group} at t=${op.timeMs} ms while ${holder} held it`);
      holders.set(key, op.process);
      leaseEnd.delete(`${op.process}/${op.shard}`);
      const resumeAfter = op.sequence ?? '';
      const allowed = new Set([lastCheckpoint.get(key) ?? '', ...(unknownCheckpoints.get(key) ?? [])]);
      if (!allowed.has(resumeAfter)) {
        flag('checkpoint-restart', `${op.process} resumed ${op.shard} of ${op.group} at t=${op.timeMs} ms after '${resumeAfter}', not after ${[...allowed].map((value) => `'${value}'`).join(' or ')}`);
      }
      readerOf(readerKey).last.set(op.shard, resumeAfter === '' ? -1 : indexOf(op.shard, resumeAfter));
      continue;
    }
    if (op.type !== 'ok') continue;
    if (op.f === 'shard-end' && op.shard) setOf(finished, consumer).add(op.shard);
    if (op.f !== 'get' || !op.shard || !op.kinesisRecords) continue;
    const reader = readerOf(readerKey);
    // A worker checkpoints what it processed; the outcome of the last such call may never be seen.
    if (op.group && op.kinesisRecords.length > 0) setOf(unknownCheckpoints, `${op.group}/${op.shard}`).add(op.kinesisRecords[op.kinesisRecords.length - 1]!.sequence);
    const shard = final.shards.get(op.shard);
    const done = setOf(finished, consumer);
    const missingParents = shard?.parents.filter((parent) => !done.has(parent)) ?? [];
    if (missingParents.length > 0) flag('parent-before-child', `${readerKey} read ${op.shard} (t=${op.timeMs} ms) before finishing ${missingParents.join(', ')}`);
    const positions = positionOf.get(op.shard);
    for (const record of op.kinesisRecords) {
      received++;
      setOf(seen, consumer).add(record.value);
      const position = positions?.get(record.sequence);
      if (!position || position.value !== record.value) {
        flag('inconsistent', `${readerKey} received '${record.value}' at ${op.shard}@${record.sequence}, where the final read has '${position?.value ?? 'nothing'}'`);
        continue;
      }
      const last = reader.last.get(op.shard) ?? -1;
      if (position.index <= last) flag('read-repeat', `${readerKey} received ${op.shard}@${record.sequence} (index ${position.index}) after index ${last}`);
      else if (position.index > last + 1) flag('read-skip', `${readerKey} jumped in ${op.shard} from index ${last} to ${position.index} (t=${op.timeMs} ms)`);
      reader.last.set(op.shard, Math.max(last, position.index));
      if (op.group) {
        const recordKey = `${op.group}/${op.shard}@${record.sequence}`;
        const first = processedBy.get(recordKey);
        if (first !== undefined && first !== op.process) {
          const ended = leaseEnd.get(`${first}/${op.shard}`);
          if (ended !== 'killed' && ended !== 'lease-lost') flag('reprocessed', `${op.process} processed ${op.shard}@${record.sequence} again after ${first} gave the lease up (${ended ?? 'still holding it'})`);
        }
        processedBy.set(recordKey, op.process);
      }
    }
  }
  for (const [consumer, values] of seen) {
    for (const value of acked.keys()) {
      if (places.has(value) && !values.has(value)) flag('unseen', `${consumer} never received '${value}'`);
    }
  }

  return {
    valid: KINESIS_ANOMALY_KINDS.every((kind) => anomalies[kind].count === 0),
    counts: { puts, acknowledged: acked.size, indeterminate, duplicates, shards: final.shards.size, finalRecords, received, readers: seen.size, leases, checkpoints },
    anomalies,
  };
}
