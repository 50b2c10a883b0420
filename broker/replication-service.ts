// The leader side of replication: answers followers' ReplicaFetch streams. For each partition a
// follower asks about, it checks the follower's epoch, finds where the follower's log diverged
// from its own (the end offset of the follower's last epoch, KIP-101/279), records how far the
// follower has the log durably (which may move the high watermark), and sends what follows its
// log end. When no partition has anything new, it waits (long poll) for an append, up to
// max_wait_ms. A progress report (a follower's flush completed while its fetch is parked here)
// is recorded at once, after every request sent before it, and never answered.
//
// An answer names only the partitions with something to say: records, an error, a divergence,
// or a high watermark other than the one the follower said it has (as KIP-227's incremental fetch
// responses leave out unchanged partitions). Requests are incremental too, the stream being the
// session: the leader keeps each partition's last position the follower sent on the stream, and
// an incremental request lists only the partitions that are new or moved (and those it no longer
// fetches); the others are fetched at their kept positions. A follower of many quiet partitions
// (the 50 of __consumer_offsets, or a thousand) would otherwise have every one of them encoded,
// sent and decoded in every round, both ways. Every answer says the leader keeps sessions; a
// follower sends incremental requests only after such an answer on the stream, so a follower
// never relies on a leader that would not keep them.
import type * as grpc from '@grpc/grpc-js';
import { Counter, type Registry } from '../src/metrics/index.js';
import type { Partition } from './partition.js';
import type { ReplicaManager } from './replica-manager.js';
import { RiffleError, toRiffleError } from '../src/rpc/errors.js';
import { unary, type HandlerContext, type OpenStreams } from '../src/rpc/server.js';
import type { Logger } from '../src/util/logger.js';
import type { ReplicaFetchRequest__Output } from '../src/rpc/generated/riffle/internal/ReplicaFetchRequest.js';
import type { ReplicaFetchPartition__Output } from '../src/rpc/generated/riffle/internal/ReplicaFetchPartition.js';
import type { ReplicaFetchResponse } from '../src/rpc/generated/riffle/internal/ReplicaFetchResponse.js';
import type { ReplicaFetchPartitionData } from '../src/rpc/generated/riffle/internal/ReplicaFetchPartitionData.js';
import type { ReplicationHandlers } from '../src/rpc/generated/riffle/internal/Replication.js';
import type { DescribeLogChecksumsRequest__Output } from '../src/rpc/generated/riffle/internal/DescribeLogChecksumsRequest.js';
import type { DescribeLogChecksumsResponse } from '../src/rpc/generated/riffle/internal/DescribeLogChecksumsResponse.js';

export const REPLICA_FETCH_WAIT_MS_MAX = 5_000;
/** Partitions one follower's session may name: far more than a broker hosts, so only a broken follower reaches it. */
export const REPLICA_FETCH_SESSION_PARTITIONS_MAX = 100_000;

export interface ReplicationServiceDeps {
  replicas: ReplicaManager;
  logger: Logger;
  /** Open streams of the node, so a stopping broker ends followers' fetch streams. */
  streams: OpenStreams;
  metrics: ReplicationServiceMetrics;
}

export class ReplicationServiceMetrics {
  /** Follower fetches and progress reports a leader did not record, by reason. */
  readonly ignoredClaims: Counter<'reason'>;

  constructor(registry: Registry) {
    this.ignoredClaims = new Counter({
      name: 'riffle_broker_follower_claims_ignored_total',
      help: 'Follower fetches and progress reports this leader did not record: past_log_end (a position beyond its log end, which no correct follower sends).',
      labelNames: ['reason'],
      registers: [registry],
    });
  }
}

/** Records a follower's durable end on `partition` (it leads), counting a claim it ignores. */
function recordFollower(deps: ReplicationServiceDeps, partition: Partition, request: ReplicaFetchRequest__Output, durableEnd: number): void {
  const ignored = partition.recordFollowerFetch(request.replicaId, durableEnd, request.brokerEpoch);
  if (ignored !== null) deps.metrics.ignoredClaims.inc({ reason: ignored });
}

export function replicationHandlers(context: HandlerContext, deps: ReplicationServiceDeps): Partial<ReplicationHandlers> {
  return {
    ReplicaFetch: (call: grpc.ServerDuplexStream<ReplicaFetchRequest__Output, ReplicaFetchResponse>) => serveFetchStream(deps, call),
    DescribeLogChecksums: unary(context, 'DescribeLogChecksums', (request: DescribeLogChecksumsRequest__Output) => describeChecksums(deps, request)),
  };
}

/** What a parked answer listens to: the stream closing, or a newer request arriving. */
interface StreamState {
  closed: boolean;
  /** Requests received and not yet answered. */
  queued: number;
  /** Ends the current long poll early. */
  interrupt?: () => void;
  /** The fetch session: each partition's last position the follower sent on this stream. */
  readonly session: Map<string, ReplicaFetchPartition__Output>;
}

function serveFetchStream(deps: ReplicationServiceDeps, call: grpc.ServerDuplexStream<ReplicaFetchRequest__Output, ReplicaFetchResponse>): void {
  // Requests on one stream are answered in order, one at a time. A request arriving while
  // another is parked (the follower's nudge when it starts following more partitions from us)
  // ends that long poll at once.
  let chain: Promise<void> = Promise.resolve();
  const state: StreamState = { closed: false, queued: 0, session: new Map() };
  if (!deps.streams.add(call)) {
    call.emit('error', new RiffleError('BROKER_NOT_AVAILABLE', 'This broker is shutting down.').toServiceError());
    return;
  }
  call.on('data', (request: ReplicaFetchRequest__Output) => {
    if (request.progressOnly) {
      // Every fetch sent before the report is recorded already unless one still waits its turn:
      // then the report waits behind it, so a follower's durable end is never taken back.
      const record = (): void => {
        if (state.closed) return;
        try {
          if (request.incremental) updateSession(state.session, request);
        } catch (error) {
          call.emit('error', toRiffleError(error).toServiceError());
          return;
        }
        recordProgress(deps, request);
      };
      if (state.queued === 0) record();
      else chain = chain.then(record);
      return;
    }
    state.queued++;
    state.interrupt?.();
    chain = chain.then(async () => {
      state.queued--;
      if (state.closed) return;
      try {
        // An incremental request updates the session and fetches all of it; any other is whole.
        if (request.incremental) updateSession(state.session, request);
        const wanted = request.incremental ? (): ReplicaFetchPartition__Output[] => [...state.session.values()] : (): ReplicaFetchPartition__Output[] => request.partitions;
        const response = await answer(deps, request, wanted, state);
        if (!state.closed) call.write(response);
      } catch (error) {
        deps.logger.error({ err: error }, 'replica fetch failed');
        call.emit('error', toRiffleError(error).toServiceError());
      }
    });
  });
  const close = (): void => {
    state.closed = true;
    state.interrupt?.();
    deps.streams.delete(call);
  };
  call.on('end', () => {
    close();
    call.end();
  });
  call.on('cancelled', close);
  call.on('error', close);
}

/**
 * Answers one fetch over `wanted()`: the request's partitions, or the stream's whole session
 * (read again after a long poll, when a progress report may have moved a durable end).
 */
async function answer(deps: ReplicationServiceDeps, request: ReplicaFetchRequest__Output, wanted: () => ReplicaFetchPartition__Output[], stream: StreamState): Promise<ReplicaFetchResponse> {
  const waitMs = Math.min(Math.max(request.maxWaitMs, 0), REPLICA_FETCH_WAIT_MS_MAX);
  const deadline = performance.now() + waitMs;
  // The follower's position is recorded once: after a long poll, a progress report may have
  // moved it past what this request said.
  for (let first = true; ; first = false) {
    const answered: ReplicaFetchPartitionData[] = [];
    const leaders: Partition[] = [];
    let hasData = false;
    for (const position of wanted()) {
      const partition = deps.replicas.findPartition(position.topic, position.partition);
      if (partition !== undefined && isQuiet(partition, position)) {
        if (first) recordFollower(deps, partition, request, durableEndOf(position));
        leaders.push(partition);
        continue;
      }
      const fetched = fetchOne(deps, request, partition, position, first);
      const data = fetched instanceof Promise ? await fetched : fetched;
      if (carriesNews(data)) hasData = true;
      if (carriesNews(data) || Number(data.highWatermark) !== Number(position.highWatermark)) answered.push(data);
      if (partition?.isLeader) leaders.push(partition);
    }
    const remainingMs = deadline - performance.now();
    if (hasData || remainingMs <= 0 || stream.closed || stream.queued > 0) return { partitions: answered, incrementalSessions: true };
    await waitForAppend(leaders, remainingMs, stream);
  }
}

/**
 * Positions checked against this leader's log (no divergence, epoch current), by the partition
 * and leader epoch of the check. A session keeps a quiet partition's position object from round
 * to round, so the check is not repeated while neither the position nor the leadership changes:
 * the leader's epoch history below its own epoch is fixed while it leads.
 */
const checkedPositions = new WeakMap<ReplicaFetchPartition__Output, { partition: Partition; leaderEpoch: number }>();

/**
 * Nothing to say about the partition: the follower's checked position is at this leader's log end
 * and it has the current high watermark. Most partitions of a session are quiet in most rounds,
 * and this spares them the full fetch (a log lookup, the divergence check and an answer entry).
 */
function isQuiet(partition: Partition, position: ReplicaFetchPartition__Output): boolean {
  const checked = checkedPositions.get(position);
  return (
    checked !== undefined &&
    checked.partition === partition &&
    checked.leaderEpoch === partition.leaderEpoch &&
    partition.isLeader &&
    Number(position.fetchOffset) === partition.logEndOffset &&
    Number(position.highWatermark) === partition.highWatermark
  );
}

/** Applies an incremental request or report to the stream's session: forgotten ones out, listed ones in. */
function updateSession(session: Map<string, ReplicaFetchPartition__Output>, request: ReplicaFetchRequest__Output): void {
  for (const gone of request.forgotten) session.delete(sessionKey(gone.topic, gone.partition));
  for (const position of request.partitions) session.set(sessionKey(position.topic, position.partition), position);
  if (session.size > REPLICA_FETCH_SESSION_PARTITIONS_MAX) {
    throw new RiffleError('INVALID_REQUEST', `A fetch session may hold at most ${REPLICA_FETCH_SESSION_PARTITIONS_MAX} partitions.`);
  }
}

function sessionKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

/** One partition's answer; a promise when its records are read from the files (old data, for a follower catching up). */
function fetchOne(deps: ReplicationServiceDeps, request: ReplicaFetchRequest__Output, partition: Partition | undefined, wanted: ReplicaFetchPartition__Output, recordPosition: boolean): ReplicaFetchPartitionData | Promise<ReplicaFetchPartitionData> {
  const base = { topic: wanted.topic, partition: wanted.partition };
  try {
    if (!partition) throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `This broker does not host ${wanted.topic}-${wanted.partition}.`);
    partition.requireLeader();
    partition.checkLeaderEpoch(wanted.currentLeaderEpoch);
    const durableEnd = durableEndOf(wanted);
    const divergence = divergenceOf(partition, wanted);
    if (divergence) return { ...base, errorCode: 0, highWatermark: partition.highWatermark, logStartOffset: partition.logStartOffset, ...divergence, records: EMPTY };
    checkedPositions.set(wanted, { partition, leaderEpoch: partition.leaderEpoch });
    if (recordPosition) recordFollower(deps, partition, request, durableEnd);
    const read = partition.readForReplica(wanted.fetchOffset, wanted.partitionMaxBytes > 0 ? wanted.partitionMaxBytes : 1024 * 1024);
    if (!(read instanceof Promise)) return withRecords(base, partition, read);
    // Leadership may have moved while the read was out: then the follower learns it, not our tail.
    return read
      .then((records) => {
        partition.requireLeader();
        partition.checkLeaderEpoch(wanted.currentLeaderEpoch);
        return withRecords(base, partition, records);
      })
      .catch((error: unknown) => failedAnswer(base, error));
  } catch (error) {
    return failedAnswer(base, error);
  }
}

function withRecords(base: { topic: string; partition: number }, partition: Partition, records: Buffer): ReplicaFetchPartitionData {
  return { ...base, errorCode: 0, highWatermark: partition.highWatermark, logStartOffset: partition.logStartOffset, records };
}

function failedAnswer(base: { topic: string; partition: number }, error: unknown): ReplicaFetchPartitionData {
  const riffleError = toRiffleError(error);
  return { ...base, errorCode: riffleError.code, errorMessage: riffleError.message, highWatermark: -1, logStartOffset: -1, records: EMPTY };
}

function carriesNews(data: ReplicaFetchPartitionData): boolean {
  return data.errorCode !== 0 || data.diverging === true || (data.records as Buffer).length > 0;
}

/** What the follower has durably: its log end less what it has not flushed yet. */
function durableEndOf(wanted: ReplicaFetchPartition__Output): number {
  const fetchOffset = Number(wanted.fetchOffset);
  const unflushed = Number(wanted.unflushedRecords);
  if (!Number.isSafeInteger(unflushed) || unflushed < 0 || unflushed > fetchOffset) {
    throw new RiffleError('INVALID_REQUEST', `unflushed_records ${unflushed} is outside 0..${fetchOffset} (the fetch offset).`);
  }
  return fetchOffset - unflushed;
}

/**
 * A follower's progress report: the durable end of each partition it names, recorded where this
 * broker still leads in the epoch the follower names and the follower's log has not diverged
 * (its next fetch sorts that out). Malformed entries are skipped: a report is never answered.
 */
function recordProgress(deps: ReplicationServiceDeps, request: ReplicaFetchRequest__Output): void {
  for (const wanted of request.partitions) {
    const partition = deps.replicas.findPartition(wanted.topic, wanted.partition);
    if (!partition || !partition.isLeader || wanted.currentLeaderEpoch !== partition.leaderEpoch) continue;
    try {
      const durableEnd = durableEndOf(wanted);
      if (divergenceOf(partition, wanted)) continue;
      recordFollower(deps, partition, request, durableEnd);
    } catch (error) {
      deps.logger.warn({ err: error, topic: wanted.topic, partition: wanted.partition, replica: request.replicaId }, 'progress report entry refused');
    }
  }
}

/**
 * Where the follower's log stops matching ours: if our log ends the follower's last epoch before
 * the follower's log end (or we never had that epoch), the follower must cut back to that point.
 */
function divergenceOf(partition: Partition, wanted: ReplicaFetchPartition__Output): Partial<ReplicaFetchPartitionData> | null {
  if (wanted.lastFetchedEpoch < 0 || wanted.fetchOffset === 0) return null;
  const { epoch, endOffset } = partition.log.endOffsetForEpoch(wanted.lastFetchedEpoch);
  if (epoch === wanted.lastFetchedEpoch && endOffset >= wanted.fetchOffset) return null;
  const truncateTo = endOffset < 0 ? partition.logStartOffset : Math.min(endOffset, wanted.fetchOffset);
  return { diverging: true, divergingEpoch: epoch, divergingEndOffset: truncateTo };
}

function waitForAppend(partitions: Partition[], waitMs: number, stream: StreamState): Promise<void> {
  return new Promise((resolve) => {
    const unsubscribes: (() => void)[] = [];
    const finish = (): void => {
      clearTimeout(timer);
      stream.interrupt = undefined;
      for (const unsubscribe of unsubscribes) unsubscribe();
      resolve();
    };
    const timer = setTimeout(finish, waitMs);
    stream.interrupt = finish;
    for (const partition of partitions) unsubscribes.push(partition.onAppend(finish));
  });
}

/** Each partition's checksum, one after another (each reads its log on the thread pool); a partition's failure is its own error code. */
async function describeChecksums(deps: ReplicationServiceDeps, request: DescribeLogChecksumsRequest__Output): Promise<DescribeLogChecksumsResponse> {
  const partitions: DescribeLogChecksumsResponse['partitions'] = [];
  for (const query of request.partitions) {
    const base = { topic: query.topic, partition: query.partition };
    try {
      const partition = deps.replicas.findPartition(query.topic, query.partition);
      if (!partition) throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `This broker does not host ${query.topic}-${query.partition}.`);
      const offset = Number(query.offset);
      if (!Number.isSafeInteger(offset) || offset < 0) throw new RiffleError('INVALID_REQUEST', `checksum offset ${query.offset} is not a non-negative integer`);
      const checksum = await partition.log.checksumUpTo(offset);
      partitions.push({ ...base, errorCode: 0, offset: checksum.offset, crc32c: checksum.crc32c, bytes: checksum.bytes });
    } catch (error) {
      const riffleError = toRiffleError(error);
      partitions.push({ ...base, errorCode: riffleError.code, errorMessage: riffleError.message });
    }
  }
  return { partitions };
}

const EMPTY = Buffer.alloc(0);
