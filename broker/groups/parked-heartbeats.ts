// Long-poll heartbeats (a Riffle extension to KIP-848, opt-in by the request's
// long_poll_max_wait_ms): the heartbeats one coordinator shard is holding because their answer
// would have been "no change". A held heartbeat ends
// - 'changed' as soon as a committed change of its group moves that member's partitions (a
//   revocation, more partitions in its target, partitions it waits for released, or the member
//   removed; see heartbeatAnswerWouldChange); the coordinator then runs the heartbeat again and
//   answers with the result;
// - 'timeout' after its wait (at most the heartbeat interval): answered "no change";
// - 'superseded' when a newer heartbeat of the same member arrives (at most one held per member);
// - 'cancelled' when the client cancelled the call;
// - 'unloaded' when the shard closes (leadership lost, coordinator shutdown): NOT_COORDINATOR.
// Kafka has no such thing: a member hears of a new assignment only on its next heartbeat, up to a
// heartbeat interval later, and each step of an incremental rebalance waits for that again.
import { assert } from '../../src/util/assert.js';
import { heartbeatAnswerWouldChange, partitionHolders, type GroupState } from './consumer-group.js';

export type ParkEnd = 'changed' | 'timeout' | 'superseded' | 'cancelled' | 'unloaded';
export const PARK_ENDS: readonly ParkEnd[] = ['changed', 'timeout', 'superseded', 'cancelled', 'unloaded'];

/** Heartbeats one shard holds at most; beyond this, heartbeats are answered at once. */
export const PARKED_HEARTBEATS_MAX = 20_000;

/** How the caller learns that the client gave up on the call (gRPC cancellation or deadline). */
export interface CancelSignal {
  readonly cancelled: boolean;
  onCancel(listener: () => void): void;
}

interface Parked {
  readonly groupId: string;
  readonly memberId: string;
  readonly finish: (end: ParkEnd) => void;
}

export class ParkedHeartbeats {
  /** Held heartbeats by group, then member. */
  private readonly byGroup = new Map<string, Map<string, Parked>>();
  private count = 0;
  private closed = false;

  get size(): number {
    return this.count;
  }

  /** Whether another heartbeat may be held now. */
  hasRoom(): boolean {
    return !this.closed && this.count < PARKED_HEARTBEATS_MAX;
  }

  isParked(groupId: string, memberId: string): boolean {
    return this.byGroup.get(groupId)?.has(memberId) ?? false;
  }

  /**
   * Holds a heartbeat of `memberId` for up to `waitMs`; resolves with why it ended. `group` is the
   * group as it is now: if the answer would already change, the heartbeat ends at once.
   */
  park(group: GroupState, memberId: string, waitMs: number, cancel?: CancelSignal): Promise<ParkEnd> {
    assert(waitMs > 0, () => `parking a heartbeat for ${waitMs} ms`);
    if (this.closed) return Promise.resolve('unloaded');
    if (cancel?.cancelled) return Promise.resolve('cancelled');
    const groupId = group.groupId;
    this.end(groupId, memberId, 'superseded');
    assert(this.count < PARKED_HEARTBEATS_MAX, () => `${this.count} heartbeats parked`);
    return new Promise<ParkEnd>((resolve) => {
      let done = false;
      const timer = setTimeout(() => parked.finish('timeout'), waitMs);
      const parked: Parked = {
        groupId, memberId,
        finish: (end) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          const members = this.byGroup.get(groupId);
          if (members?.get(memberId) === parked) {
            members.delete(memberId);
            this.count -= 1;
            if (members.size === 0) this.byGroup.delete(groupId);
          }
          resolve(end);
        },
      };
      let members = this.byGroup.get(groupId);
      if (!members) this.byGroup.set(groupId, (members = new Map()));
      members.set(memberId, parked);
      this.count += 1;
      cancel?.onCancel(() => parked.finish('cancelled'));
      // A change committed between the heartbeat's run and now must not be missed.
      if (heartbeatAnswerWouldChange(group, memberId)) parked.finish('changed');
    });
  }

  /** Ends the held heartbeat of one member, if any. */
  end(groupId: string, memberId: string, end: ParkEnd): void {
    this.byGroup.get(groupId)?.get(memberId)?.finish(end);
  }

  /** After a committed change of a group: ends the held heartbeats whose answer would now change. */
  groupChanged(groupId: string, group: GroupState | undefined): void {
    const members = this.byGroup.get(groupId);
    if (!members) return;
    // Built once per change, and only when some held member waits for partitions to be released.
    let holders: Map<string, string> | undefined;
    const holdersOf = (state: GroupState): Map<string, string> => (holders ??= partitionHolders(state));
    for (const parked of [...members.values()]) {
      if (!group || heartbeatAnswerWouldChange(group, parked.memberId, holdersOf)) parked.finish('changed');
    }
  }

  /** The shard closed: every held heartbeat ends now, and none is held from here on. */
  closeAll(): void {
    this.closed = true;
    for (const members of [...this.byGroup.values()]) for (const parked of [...members.values()]) parked.finish('unloaded');
    assert(this.count === 0, () => `${this.count} heartbeats still parked after closing`);
  }
}
