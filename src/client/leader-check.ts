// Noticing a broker that stopped answering without closing its connections (paused, cut off,
// its machine gone): its calls would otherwise wait for the channel's keepalive to give up on it
// (5 s of silence, then 5 s for the ping's answer) or for the request timeout, long after the
// cluster elected other leaders. A call unanswered for a while makes the client refresh the
// metadata; what the new metadata says decides whether the call is given up on. The producer
// watches its requests (producer.ts); both consumers watch their fetches with `watchFetch` (fetch-answers.ts).
import { partitionOf, type RiffleClient } from './client.js';

/** A call unanswered this long (beyond a fetch's own wait) makes the client check the metadata. */
export const LEADER_CHECK_AFTER_MS = 1_000;
/** Each attempt of that metadata request: a paused broker asked first costs no more than this. */
export const LEADER_CHECK_ATTEMPT_MS = 2_000;

/**
 * `fetch` (sent to `node` for `partitions`), or undefined once it has been out for `waitMs` plus
 * LEADER_CHECK_AFTER_MS and the refreshed metadata shows that `node` neither leads nor follows in
 * sync one of the partitions: it was fenced, or lost its place, and another broker serves them
 * now. Its answer is then never used, so the caller fetches again from the same positions.
 * Checked again every LEADER_CHECK_AFTER_MS while the fetch is out.
 */
export function watchFetch<T>(client: RiffleClient, fetch: Promise<T>, node: number, partitions: readonly { topic: string; partition: number }[], waitMs: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  const topics = [...new Set(partitions.map((entry) => entry.topic))];
  const givenUp = new Promise<undefined>((resolve) => {
    const check = async (): Promise<void> => {
      try {
        await client.refreshMetadata(topics, LEADER_CHECK_ATTEMPT_MS);
      } catch {
        // No node answered: check again later.
      }
      if (settled) return;
      if (partitions.some((entry) => servesNoLonger(client, node, entry.topic, entry.partition))) {
        resolve(undefined);
        return;
      }
      timer = setTimeout(() => void check(), LEADER_CHECK_AFTER_MS);
      timer.unref();
    };
    timer = setTimeout(() => void check(), waitMs + LEADER_CHECK_AFTER_MS);
    timer.unref();
  });
  return Promise.race([fetch, givenUp]).finally(() => {
    settled = true;
    clearTimeout(timer);
  });
}

function servesNoLonger(client: RiffleClient, node: number, topic: string, partition: number): boolean {
  const current = partitionOf(client.cachedTopic(topic), partition);
  return current !== undefined && current.leaderId >= 0 && current.leaderId !== node && !current.isr.includes(node);
}
