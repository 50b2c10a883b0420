// What both consumers do with a Fetch: send it to one node and watch it, then read each
// partition's answer. The partition consumer (consumer.ts) and the group consumer's fetcher
// (group-fetcher.ts) differ in how they keep positions, not in these rules.
import { RiffleError, errorNameOf, toRiffleError } from '../rpc/errors.js';
import { forEachRecordOfAll } from '../util/record-batch.js';
import type { RiffleClient } from './client.js';
import type { ConsumerRecord } from './consumer.js';
import { watchFetch } from './leader-check.js';
import type { FetchResponse__Output } from '../rpc/generated/riffle/v1/FetchResponse.js';

export type FetchedPartition = FetchResponse__Output['responses'][number]['partitions'][number];

export interface FetchTarget {
  topic: string;
  partition: number;
}

/**
 * Sends `request` (for `partitions`) to `node` on its FetchStream and watches it (watchFetch).
 * Undefined when it failed retriably or was given up on (the node no longer serves one of the
 * partitions): the metadata of their topics and their preferred read replicas are then dropped,
 * so the next round asks again from the same positions. A failure that is not retriable throws.
 */
export async function sendFetch(client: RiffleClient, node: number, request: object, partitions: readonly FetchTarget[], maxWaitMs: number, forgetReadReplica: (target: FetchTarget) => void): Promise<FetchResponse__Output | undefined> {
  let response: FetchResponse__Output | undefined;
  try {
    const fetch = client.connectionTo(node).pipelined<object, FetchResponse__Output>('riffle.v1.Kafka', 'FetchStream').call(request, maxWaitMs + client.requestTimeoutMs);
    response = await watchFetch(client, fetch, node, partitions, maxWaitMs);
  } catch (error) {
    const riffleError = toRiffleError(error);
    if (!riffleError.retriable) throw riffleError;
  }
  if (response === undefined) {
    for (const topic of new Set(partitions.map((target) => target.topic))) client.invalidate(topic);
    for (const target of partitions) forgetReadReplica(target);
  }
  return response;
}

/**
 * A partition answered with an error. A preferred read replica that fails, whatever the error,
 * sends the consumer back to the leader, which has the last word (as Kafka's consumer clears its
 * preferred replica): an offset out of range there may be one the replica has not reached yet or
 * has truncated, not one to reset (`fromReadReplica`, true when the answer came from such a
 * replica, which the caller has forgotten). Otherwise an offset out of range is returned, for
 * the caller to reset the position by its auto.offset.reset; any other retriable error drops the
 * topic's metadata so the next round finds the leader again; the rest throw.
 */
export function failedPartition(client: RiffleClient, topic: string, partition: FetchedPartition, fromReadReplica: boolean): RiffleError | undefined {
  const error = new RiffleError(errorNameOf(partition.errorCode), partition.errorMessage || undefined);
  if (fromReadReplica) return undefined;
  if (error.errorName === 'OFFSET_OUT_OF_RANGE') return error;
  if (!error.retriable) throw error;
  client.invalidate(topic);
  return undefined;
}

/** Pushes the answer's records at or after `position` onto `out` (its first batch may begin before it); returns the next position. */
export function collectRecords(topic: string, partition: FetchedPartition, position: number, out: ConsumerRecord[]): number {
  let next = position;
  const index = partition.partitionIndex;
  forEachRecordOfAll(partition.records, (offset, timestamp, key, value, headers) => {
    if (offset < position) return;
    out.push({ topic, partition: index, offset, timestamp, key, value, headers });
    next = offset + 1;
  });
  return next;
}
