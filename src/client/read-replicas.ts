// Fetching from the closest replica (KIP-392): a leader that knows an in-sync replica in the
// consumer's rack (its availability zone) answers a fetch with that replica instead of records,
// and the consumer fetches the partition there until the replica fails it or the preference grows
// old, then asks the leader again. Shared by the partition consumer and the group consumer.

/** How long a consumer keeps fetching from the replica the leader preferred before asking again. */
export const READ_REPLICA_MAX_AGE_MS = 5 * 60 * 1000;

export class ReadReplicas<Key> {
  private readonly preferred = new Map<Key, { nodeId: number; untilMs: number }>();

  /** The node to fetch `key` from: the replica its leader preferred while that is fresh, else the leader. */
  nodeFor(key: Key, leader: number, nowMs = Date.now()): number {
    const preferred = this.preferred.get(key);
    if (!preferred) return leader;
    if (preferred.untilMs > nowMs) return preferred.nodeId;
    this.preferred.delete(key);
    return leader;
  }

  /** The leader named `nodeId` as the replica to fetch `key` from. */
  prefer(key: Key, nodeId: number, nowMs = Date.now()): void {
    this.preferred.set(key, { nodeId, untilMs: nowMs + READ_REPLICA_MAX_AGE_MS });
  }

  /** Back to the leader for `key`; true when a preferred replica was forgotten. */
  forget(key: Key): boolean {
    return this.preferred.delete(key);
  }
}
