// The checker: reads a run's history and the final state (every partition read from its start
// after the heal, and every replica's checksum below the high watermark) and reports anomalies,
// in the spirit of Jepsen's queue checkers for Kafka-like systems:
//   lost                  acknowledged (ok) send whose value is not in the final log;
//   unseen                acknowledged value in the final log that no consumer ever received;
//   duplicate             a value at more than one offset of the final log;
//   inconsistent-offsets  two different values claimed for one partition and offset (by an ack,
//                         a poll or the final log);
//   nonmonotonic-send     one producer's acknowledged offsets in a partition going backwards in
//                         the order it sent them (the idempotent producer keeps send order);
//   nonmonotonic-poll     a consumer receiving an offset at or below one it already received in
//                         that partition, with no (re)assignment in between;
//   poll-skip             a consumer jumping over offsets that exist in the final log, with no
//                         (re)assignment in between;
//   aborted-read          a value whose send definitely failed, found in the log or a poll;
//   replica-divergence    ISR replicas whose bytes below the high watermark differ;
//   commit-backwards      a group's acknowledged committed offset of a partition going back;
//   double-ownership      two members of a group owning one partition at once;
//   restart-offset        a member given a partition whose first record is not at the group's
//                         last committed offset (or one whose commit outcome was unknown).
import type { Op } from './history.js';
import type { ReplicaChecksum } from './workload-kafka.js';

export type AnomalyKind =
  | 'lost'
  | 'unseen'
  | 'duplicate'
  | 'inconsistent-offsets'
  | 'nonmonotonic-send'
  | 'nonmonotonic-poll'
  | 'poll-skip'
  | 'aborted-read'
  | 'replica-divergence'
  | 'commit-backwards'
  | 'double-ownership'
  | 'restart-offset';

export const ANOMALY_KINDS: readonly AnomalyKind[] = [
  'lost', 'unseen', 'duplicate', 'inconsistent-offsets', 'nonmonotonic-send', 'nonmonotonic-poll',
  'poll-skip', 'aborted-read', 'replica-divergence', 'commit-backwards', 'double-ownership', 'restart-offset',
];

export interface FinalState {
  /** Every partition's records from its start to the high watermark, in offset order. */
  logs: Map<number, { offset: number; value: string }[]>;
  checksums: ReplicaChecksum[];
}

export interface CheckResult {
  valid: boolean;
  counts: {
    sends: number;
    acknowledged: number;
    failed: number;
    indeterminate: number;
    polled: number;
    finalRecords: number;
  };
  anomalies: Record<AnomalyKind, { count: number; examples: string[] }>;
}

/** Examples kept per anomaly kind in a report. */
const EXAMPLES_MAX = 10;

export function check(ops: readonly Op[], final: FinalState): CheckResult {
  const anomalies = Object.fromEntries(ANOMALY_KINDS.map((kind) => [kind, { count: 0, examples: [] as string[] }])) as CheckResult['anomalies'];
  const flag = (kind: AnomalyKind, example: string): void => {
    anomalies[kind].count++;
    if (anomalies[kind].examples.length < EXAMPLES_MAX) anomalies[kind].examples.push(example);
  };

  const acked = new Map<string, Op>();
  const failed = new Set<string>();
  let sends = 0;
  let indeterminate = 0;
  for (const op of ops) {
    if (op.f !== 'send' || op.value === undefined) continue;
    if (op.type === 'invoke') sends++;
    else if (op.type === 'ok') acked.set(op.value, op);
    else if (op.type === 'fail') failed.add(op.value);
    else indeterminate++;
  }

  // Where each value sits in the final log, and who claims which value at which offset.
  const finalPlaces = new Map<string, { partition: number; offset: number }[]>();
  const claims = new Map<string, string>();
  const claim = (partition: number, offset: number, value: string, source: string): void => {
    const key = `${partition}/${offset}`;
    const existing = claims.get(key);
    if (existing === undefined) claims.set(key, value);
    else if (existing !== value) flag('inconsistent-offsets', `partition ${partition} offset ${offset}: '${existing}' and '${value}' (${source})`);
  };
  let finalRecords = 0;
  for (const [partition, records] of final.logs) {
    for (const record of records) {
      finalRecords++;
      claim(partition, record.offset, record.value, 'final read');
      const places = finalPlaces.get(record.value) ?? [];
      places.push({ partition, offset: record.offset });
      finalPlaces.set(record.value, places);
    }
  }
  for (const [value, places] of finalPlaces) {
    if (places.length > 1) flag('duplicate', `'${value}' at ${places.map((place) => `${place.partition}/${place.offset}`).join(', ')}`);
  }
  for (const [value, op] of acked) {
    if (op.partition !== undefined && op.offset !== undefined && op.offset >= 0) claim(op.partition, op.offset, value, `ack of ${op.process}`);
    if (!finalPlaces.has(value)) flag('lost', `'${value}' acknowledged at ${op.partition}/${op.offset} (t=${op.timeMs} ms) is not in the log`);
  }
  for (const value of failed) if (finalPlaces.has(value)) flag('aborted-read', `'${value}' failed but is in the log`);

  checkSendOrder(ops, flag);
  const polled = checkPolls(ops, final, claim, flag, failed);
  for (const value of acked.keys()) if (finalPlaces.has(value) && !polled.has(value)) flag('unseen', `'${value}' is in the log but no consumer received it`);
  checkReplicas(final.checksums, flag);
  checkCommits(ops, flag);
  checkRestartOffsets(ops, flag);

  const valid = ANOMALY_KINDS.every((kind) => anomalies[kind].count === 0);
  return {
    valid,
    counts: { sends, acknowledged: acked.size, failed: failed.size, indeterminate, polled: polled.size, finalRecords },
    anomalies,
  };
}

type Flag = (kind: AnomalyKind, example: string) => void;

/** Per producer and partition, acknowledged offsets in invocation order must increase. */
function checkSendOrder(ops: readonly Op[], flag: Flag): void {
  const invokedAt = new Map<string, number>();
  for (const op of ops) if (op.f === 'send' && op.type === 'invoke' && op.value !== undefined) invokedAt.set(op.value, op.index);
  const byProducerPartition = new Map<string, { invoked: number; offset: number; value: string }[]>();
  for (const op of ops) {
    if (op.f !== 'send' || op.type !== 'ok' || op.value === undefined || op.partition === undefined || op.offset === undefined || op.offset < 0) continue;
    const key = `${op.process}/${op.partition}`;
    const list = byProducerPartition.get(key) ?? [];
    list.push({ invoked: invokedAt.get(op.value) ?? op.index, offset: op.offset, value: op.value });
    byProducerPartition.set(key, list);
  }
  for (const [key, list] of byProducerPartition) {
    list.sort((a, b) => a.invoked - b.invoked);
    for (let index = 1; index < list.length; index++) {
      if (list[index]!.offset <= list[index - 1]!.offset) {
        flag('nonmonotonic-send', `${key}: '${list[index]!.value}' at ${list[index]!.offset} after '${list[index - 1]!.value}' at ${list[index - 1]!.offset}`);
      }
    }
  }
}

/** Consumer polls: offsets claimed, and per consumer and partition, no step back or skip between assignments. */
function checkPolls(
  ops: readonly Op[],
  final: FinalState,
  claim: (partition: number, offset: number, value: string, source: string) => void,
  flag: Flag,
  failed: ReadonlySet<string>,
): Set<string> {
  const polled = new Set<string>();
  // The offset that follows each offset in the final log, per partition.
  const nextInLog = new Map<number, Map<number, number>>();
  for (const [partition, records] of final.logs) {
    const next = new Map<number, number>();
    for (let index = 0; index + 1 < records.length; index++) next.set(records[index]!.offset, records[index + 1]!.offset);
    nextInLog.set(partition, next);
  }
  const lastOffset = new Map<string, number>();
  for (const op of ops) {
    if (op.f === 'assign' && op.type === 'ok') {
      // A group member's new partitions start afresh; a plain consumer's restart resets them all.
      if (op.group !== undefined && op.partitions) for (const partition of op.partitions) lastOffset.delete(`${op.process}/${partition}`);
      else for (const key of [...lastOffset.keys()]) if (key.startsWith(`${op.process}/`)) lastOffset.delete(key);
      continue;
    }
    if (op.f !== 'poll' || op.type !== 'ok' || !op.records) continue;
    for (const record of op.records) {
      polled.add(record.value);
      claim(record.partition, record.offset, record.value, `poll of ${op.process}`);
      if (failed.has(record.value)) flag('aborted-read', `'${record.value}' failed but ${op.process} received it`);
      const key = `${op.process}/${record.partition}`;
      const previous = lastOffset.get(key);
      if (previous !== undefined) {
        if (record.offset <= previous) flag('nonmonotonic-poll', `${op.process} received ${record.partition}/${record.offset} after ${record.partition}/${previous}`);
        else {
          const expected = nextInLog.get(record.partition)?.get(previous);
          if (expected !== undefined && record.offset > expected) flag('poll-skip', `${op.process} jumped from ${record.partition}/${previous} to ${record.offset}, skipping ${expected}`);
        }
      }
      lastOffset.set(key, record.offset);
    }
  }
  return polled;
}

/** After the heal, every ISR replica holds the same bytes below the high watermark. */
function checkReplicas(checksums: readonly ReplicaChecksum[], flag: Flag): void {
  const byPartition = new Map<string, ReplicaChecksum[]>();
  for (const checksum of checksums) {
    const key = `${checksum.topic}-${checksum.partition}`;
    byPartition.set(key, [...(byPartition.get(key) ?? []), checksum]);
  }
  for (const [partition, replicas] of byPartition) {
    const inIsr = replicas.filter((replica) => replica.inIsr);
    const reference = inIsr[0];
    if (!reference) continue;
    for (const replica of inIsr) {
      if (replica.errorCode !== 0 || replica.offset !== reference.offset || replica.crc32c !== reference.crc32c || replica.bytes !== reference.bytes) {
        flag('replica-divergence', `partition ${partition}: replica ${replica.replica} (crc ${replica.crc32c}, ${replica.bytes} bytes to ${replica.offset}, error ${replica.errorCode}) differs from replica ${reference.replica} (crc ${reference.crc32c}, ${reference.bytes} bytes to ${reference.offset})`);
      }
    }
  }
}

/** Group offsets: a group's committed offset of a partition never goes back; one owner per partition at a time. */
function checkCommits(ops: readonly Op[], flag: Flag): void {
  const committed = new Map<string, number>();
  const owners = new Map<string, string>();
  for (const op of inTimeOrder(ops)) {
    if (op.f === 'commit' && op.type === 'ok' && op.group !== undefined && op.partition !== undefined && op.offset !== undefined) {
      const key = `${op.group}/${op.partition}`;
      const previous = committed.get(key);
      if (previous !== undefined && op.offset < previous) flag('commit-backwards', `group ${op.group} partition ${op.partition}: committed ${op.offset} after ${previous}`);
      committed.set(key, op.offset);
    }
    if (op.f === 'assign' && op.group !== undefined && op.partitions) {
      // A group member's assignment: `ok` takes ownership, `info` releases it.
      for (const partition of op.partitions) {
        const key = `${op.group}/${partition}`;
        const owner = owners.get(key);
        if (op.type === 'ok') {
          if (owner !== undefined && owner !== op.process) flag('double-ownership', `group ${op.group} partition ${partition}: ${op.process} took it while ${owner} still owned it`);
          owners.set(key, op.process);
        } else if (op.type === 'info' && owner === op.process) {
          owners.delete(key);
        }
      }
    }
  }
}

/**
 * A member given a partition starts reading it at the group's committed offset: the last
 * acknowledged commit before the assignment, any commit since that whose outcome is unknown, or
 * a commit in flight at the time (invoked before the assignment, answered after it: it may have
 * taken effect before the new owner fetched its start offset). 0, the log start, when the group
 * never committed it.
 */
function checkRestartOffsets(ops: readonly Op[], flag: Flag): void {
  const lastCommitted = new Map<string, number>();
  const unknownSince = new Map<string, Set<number>>();
  /** Per group partition: the offsets of commits in flight, by process and commit (the op's value). */
  const inFlight = new Map<string, Map<string, number>>();
  /** Per member and partition: the offsets its first record may have, until it gets one. */
  const pending = new Map<string, { allowed: Set<number>; ranges: [number, number][]; assignedAt: number }>();
  const unknownRanges = new Map<string, [number, number][]>();
  for (const op of inTimeOrder(ops)) {
    if (op.f === 'commit' && op.group !== undefined && op.partition !== undefined && op.offset !== undefined) {
      const key = `${op.group}/${op.partition}`;
      const commitId = `${op.process}/${op.value ?? ''}`;
      if (op.type === 'invoke') {
        if (!inFlight.has(key)) inFlight.set(key, new Map());
        inFlight.get(key)!.set(commitId, op.offset);
        continue;
      }
      // The completion of that commit (a member's other reports, such as what it had processed
      // when it lost a partition, carry no value and leave it in flight).
      if (op.value !== undefined) inFlight.get(key)?.delete(commitId);
      if (op.type === 'ok') {
        lastCommitted.set(key, op.offset);
        unknownSince.set(key, new Set());
        unknownRanges.set(key, []);
      } else if (op.type === 'info') {
        unknownSince.set(key, new Set([...(unknownSince.get(key) ?? []), op.offset]));
        // A killed member may have had any commit up to what it received in flight.
        if (op.fromOffset !== undefined) unknownRanges.set(key, [...(unknownRanges.get(key) ?? []), [op.fromOffset, op.offset]]);
      }
    } else if (op.f === 'assign' && op.group !== undefined && op.partitions) {
      for (const partition of op.partitions) {
        const memberKey = `${op.process}/${partition}`;
        if (op.type !== 'ok') {
          pending.delete(memberKey);
          continue;
        }
        const key = `${op.group}/${partition}`;
        const allowed = new Set([lastCommitted.get(key) ?? 0, ...(unknownSince.get(key) ?? []), ...(inFlight.get(key)?.values() ?? [])]);
        pending.set(memberKey, { allowed, ranges: [...(unknownRanges.get(key) ?? [])], assignedAt: op.timeMs });
      }
    } else if (op.f === 'poll' && op.type === 'ok' && op.records) {
      for (const record of op.records) {
        const memberKey = `${op.process}/${record.partition}`;
        const expected = pending.get(memberKey);
        if (!expected) continue;
        pending.delete(memberKey);
        if (!expected.allowed.has(record.offset) && !expected.ranges.some(([from, to]) => record.offset >= from && record.offset <= to)) {
          flag('restart-offset', `${op.process} got partition ${record.partition} at t=${expected.assignedAt} ms and started at ${record.offset}, not at the committed ${[...expected.allowed].join(' or ')}`);
        }
      }
    }
  }
}

/**
 * Operations by when they happened (then by history order): group members report from their own
 * processes, whose lines can reach the harness out of order; they carry their own timestamps.
 */
function inTimeOrder(ops: readonly Op[]): Op[] {
  return [...ops].sort((a, b) => a.timeMs - b.timeMs || a.index - b.index);
}
