// A leader's view of one follower: how far it matches, what to send next, and the bounded
// window of AppendEntries sent but not yet acknowledged (pipelining). Modelled on etcd-io/raft's
// tracker.Progress with its three states:
//   probe      - one message at a time until the follower's position is known;
//   replicate  - optimistic pipelining, bounded by in-flight messages and bytes;
//   snapshot   - a snapshot is on its way; nothing else is sent until it lands or times out.
import { assert } from '../src/util/assert.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

interface Inflight {
  readonly lastIndex: number;
  readonly bytes: number;
}

/** The sliding window of unacknowledged appends, bounded in messages and bytes. */
export class Inflights {
  private items: Inflight[] = [];
  private bytesTotal = 0;

  constructor(private readonly maxMessages: number, private readonly maxBytes: number) {}

  add(lastIndex: number, bytes: number): void {
    assert(!this.full(), 'add to a full in-flight window');
    const last = this.items[this.items.length - 1];
    assert(last === undefined || lastIndex > last.lastIndex, () => `in-flight ${lastIndex} not after ${last?.lastIndex}`);
    this.items.push({ lastIndex, bytes });
    this.bytesTotal += bytes;
  }

  /** Frees every append whose last entry is at or below `index`. */
  freeTo(index: number): void {
    let count = 0;
    while (count < this.items.length && this.items[count]!.lastIndex <= index) {
      this.bytesTotal -= this.items[count]!.bytes;
      count++;
    }
    this.items.splice(0, count);
  }

  freeFirst(): void {
    const first = this.items.shift();
    if (first) this.bytesTotal -= first.bytes;
  }

  full(): boolean {
    return this.items.length >= this.maxMessages || this.bytesTotal >= this.maxBytes;
  }

  count(): number {
    return this.items.length;
  }

  bytes(): number {
    return this.bytesTotal;
  }

  reset(): void {
    this.items = [];
    this.bytesTotal = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: a message is out and we wait for its answer (or the next heartbeat). */
  probeSent = false;
  pendingSnapshot = 0;
  /** Heartbeat rounds spent waiting for a snapshot to land. */
  snapshotTicks = 0;
  /** Heard from in the current check-quorum window. */
  recentActive = false;
  /** Highest ReadIndex round this follower confirmed. */
  readRoundAcked = 0;
  readonly inflights: Inflights;

  constructor(next: number, maxInflightMessages: number, maxInflightBytes: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMessages, maxInflightBytes);
  }

  becomeProbe(): void {
    // After a snapshot the follower holds at least the snapshot; otherwise restart after match.
    this.next = this.state === 'snapshot' ? Math.max(this.match + 1, this.pendingSnapshot + 1) : this.match + 1;
    this.state = 'probe';
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.state = 'snapshot';
    this.pendingSnapshot = snapshotIndex;
    this.snapshotTicks = 0;
    this.inflights.reset();
  }

  /** Records an acknowledgement; false when it is stale. */
  maybeUpdate(index: number): boolean {
    if (index <= this.match) return false;
    this.match = index;
    this.probeSent = false;
    this.next = Math.max(this.next, index + 1);
    return true;
  }

  /**
   * The follower lost its log (it started on empty storage): nothing matched before counts, and
   * probing starts after its last index.
   */
  restartFrom(followerLastIndex: number): void {
    this.match = 0;
    this.state = 'probe';
    this.next = followerLastIndex + 1;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  /** Handles a rejection of the append at `rejected`; false when the rejection is stale. */
  maybeDecrease(rejected: number, followerLastIndex: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, followerLastIndex + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    if (this.state === 'probe') return this.probeSent;
    if (this.state === 'replicate') return this.inflights.full();
    return true;
  }
}
