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
// Duplicates (a value at two places) are counted but are not anomalies: PutRecords is
// at-least-once, as in Kinesis, and a retry after an unknown outcome may write a value twice.
import type { Op } from './history.js';
import type { KinesisFinalState } from './workload-kinesis.js';

export type KinesisAnomalyKind = 'lost' | 'unseen' | 'inconsistent' | 'sequence-order' | 'read-skip' | 'read-repeat' | 'parent-before-child';

export const KINESIS_ANOMALY_KINDS: readonly KinesisAnomalyKind[] = ['lost', 'unseen', 'inconsistent', 'sequence-order', 'read-skip', 'read-repeat', 'parent-before-child'];

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

  // Each reader, in history order.
  interface ReaderState {
    /** Per shard, the final-read index of the last record received. */
    last: Map<string, number>;
    finished: Set<string>;
    values: Set<string>;
  }
  const readers = new Map<string, ReaderState>();
  const readerOf = (process: string): ReaderState => {
    let state = readers.get(process);
    if (!state) readers.set(process, (state = { last: new Map(), finished: new Set(), values: new Set() }));
    return state;
  };
  let received = 0;
  for (const op of ops) {
    if (op.type !== 'ok') continue;
    if (op.f === 'shard-end' && op.shard) readerOf(op.process).finished.add(op.shard);
    if (op.f !== 'get' || !op.shard || !op.kinesisRecords) continue;
    const reader = readerOf(op.process);
    const shard = final.shards.get(op.shard);
    const missingParents = shard?.parents.filter((parent) => !reader.finished.has(parent)) ?? [];
    if (missingParents.length > 0) flag('parent-before-child', `${op.process} read ${op.shard} (t=${op.timeMs} ms) before finishing ${missingParents.join(', ')}`);
    const positions = positionOf.get(op.shard);
    for (const record of op.kinesisRecords) {
      received++;
      reader.values.add(record.value);
      const position = positions?.get(record.sequence);
      if (!position || position.value !== record.value) {
        flag('inconsistent', `${op.process} received '${record.value}' at ${op.shard}@${record.sequence}, where the final read has '${position?.value ?? 'nothing'}'`);
        continue;
      }
      const last = reader.last.get(op.shard) ?? -1;
      if (position.index <= last) flag('read-repeat', `${op.process} received ${op.shard}@${record.sequence} (index ${position.index}) after index ${last}`);
      else if (position.index > last + 1) flag('read-skip', `${op.process} jumped in ${op.shard} from index ${last} to ${position.index} (t=${op.timeMs} ms)`);
      reader.last.set(op.shard, Math.max(last, position.index));
    }
  }
  for (const [process, reader] of readers) {
    for (const value of acked.keys()) {
      if (places.has(value) && !reader.values.has(value)) flag('unseen', `${process} never received '${value}'`);
    }
  }

  return {
    valid: KINESIS_ANOMALY_KINDS.every((kind) => anomalies[kind].count === 0),
    counts: { puts, acknowledged: acked.size, indeterminate, duplicates, shards: final.shards.size, finalRecords, received, readers: readers.size },
    anomalies,
  };
}
