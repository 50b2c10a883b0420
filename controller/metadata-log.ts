// Binds the QuorumController to the Raft library: committed Raft entries are metadata batches
// replayed into the controller (on every voter), Raft snapshots are encoded images, and the
// MetadataLog the controller appends to is a Raft proposal. It also keeps a bounded tail of
// recent batches so brokers' FetchMetadata streams can be served from memory.
//
// Metadata offsets are Raft indexes: the offset of a batch is the index of its entry. Raft's
// own no-op entries (one per new leader term) carry no batch, so offsets have gaps.
import type { Entry, RaftNode, StateMachine } from '../raft/index.js';
import { decodeMetadataBatch, decodeMetadataSnapshot, encodeMetadataBatch, encodeMetadataSnapshot } from './metadata-codec.js';
import type { MetadataLog, QuorumController } from './quorum-controller.js';
import { assert } from '../src/util/assert.js';
import type { MetadataRecord } from '../src/rpc/generated/riffle/internal/MetadataRecord.js';
import type { MetadataRecord__Output } from '../src/rpc/generated/riffle/internal/MetadataRecord.js';

/** Batches kept in memory for FetchMetadata; a broker further behind gets a snapshot. */
export const METADATA_TAIL_BATCHES_MAX = 20_000;

export interface TailBatch {
  readonly offset: number;
  readonly records: readonly MetadataRecord__Output[];
}

export type TailListener = (batch: TailBatch) => void;

export class MetadataStateMachine implements StateMachine {
  private readonly tail: TailBatch[] = [];
  private readonly listeners = new Set<TailListener>();
  /** Every batch at or after this offset is in the tail. */
  private coveredFrom = 1;
  /** Term of the last applied entry: a leader is active once an entry of its own term is applied. */
  lastAppliedTerm = 0;

  constructor(private readonly controller: QuorumController) {}

  apply(entry: Entry): number {
    this.lastAppliedTerm = entry.term;
    if (entry.kind !== 'normal' || entry.data.length === 0) return entry.index;
    const records = decodeMetadataBatch(entry.data);
    this.controller.replay(entry.index, records);
    const batch = { offset: entry.index, records };
    this.tail.push(batch);
    if (this.tail.length > METADATA_TAIL_BATCHES_MAX) this.coveredFrom = this.tail.shift()!.offset + 1;
    for (const listener of this.listeners) listener(batch);
    return entry.index;
  }

  /**
   * Raft compacts its log behind this snapshot, so the tail forgets those batches too: a broker
   * that is behind the log start from now on catches up from a snapshot, as with Kafka's
   * metadata log.
   */
  snapshot(): Uint8Array {
    const image = this.controller.image;
    this.tail.length = 0;
    this.coveredFrom = image.offset + 1;
    return encodeMetadataSnapshot(image.toSnapshot());
  }

  restore(data: Uint8Array): void {
    this.tail.length = 0;
    if (data.length > 0) this.controller.loadSnapshot(decodeMetadataSnapshot(data));
    // Between the image's last batch and the snapshot's Raft index there are only no-ops.
    this.coveredFrom = this.controller.image.offset + 1;
  }

  /**
   * The batches at or after `fromOffset`, or null when some of them are no longer in the tail
   * (the caller sends a snapshot instead).
   */
  batchesFrom(fromOffset: number): TailBatch[] | null {
    if (fromOffset < this.coveredFrom) return null;
    return this.tail.filter((batch) => batch.offset >= fromOffset);
  }

  subscribe(listener: TailListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** The controller's MetadataLog, backed by Raft proposals. */
export class RaftMetadataLog implements MetadataLog {
  constructor(
    private readonly raft: () => RaftNode,
    private readonly lastAppliedTerm: () => number,
    private readonly hint: (leaderId: number) => string | undefined,
  ) {}

  async append(records: MetadataRecord[]): Promise<number> {
    const offset = await this.raft().propose(encodeMetadataBatch(records));
    assert(typeof offset === 'number', 'metadata state machine returns the offset');
    return offset;
  }

  isActive(): boolean {
    const status = this.raft().status();
    return status.role === 'leader' && this.lastAppliedTerm() === status.term && status.applied >= status.commit;
  }

  leaderHint(): string | undefined {
    const leader = this.raft().status().leader;
    return leader > 0 ? this.hint(leader) : undefined;
  }

  previousLeaderContact(): { nodeId: number; msAgo: number } | null {
    const contact = this.raft().lastLeaderContact();
    return contact ? { nodeId: contact.leader, msAgo: contact.msAgo } : null;
  }
}
