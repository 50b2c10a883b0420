// An in-memory MetadataLog for unit tests: it stands in for Raft by committing every append at
// once, in order, at the next offset, and replaying it into every attached controller (the active
// one and any standbys). Records go through the codec, as they would through a Raft entry.
import type { MetadataLog, QuorumController } from '../../controller/quorum-controller.js';
import { decodeMetadataBatch, encodeMetadataBatch } from '../../controller/index.js';
import type { MetadataRecord } from '../../src/rpc/generated/riffle/internal/MetadataRecord.js';
import { RiffleError } from '../../src/rpc/errors.js';

export class MemoryMetadataLog implements MetadataLog {
  active = true;
  offset = 0;
  readonly batches: { offset: number; records: MetadataRecord[] }[] = [];
  private readonly controllers: QuorumController[] = [];

  constructor(private readonly activeFor: (controller: QuorumController) => boolean = () => true) {}

  attach(controller: QuorumController): void {
    this.controllers.push(controller);
  }

  /** When set, the next append times out but stays in the log and commits before the following one. */
  timeOutNextAppend = false;
  private held: MetadataRecord[] | null = null;

  /** When set, appends wait for it (a slow quorum holding the controller's queue). */
  gate: Promise<void> | null = null;

  async append(records: MetadataRecord[]): Promise<number> {
    if (this.gate) await this.gate;
    if (!this.active) throw new Error('not the leader');
    if (this.held) {
      this.commit(this.held);
      this.held = null;
    }
    if (this.timeOutNextAppend) {
      this.timeOutNextAppend = false;
      this.held = records;
      throw new RiffleError('REQUEST_TIMED_OUT', 'metadata append timed out');
    }
    return this.commit(records);
  }

  private commit(records: MetadataRecord[]): number {
    const decoded = decodeMetadataBatch(encodeMetadataBatch(records));
    this.offset += 1;
    this.batches.push({ offset: this.offset, records: decoded });
    for (const controller of this.controllers) controller.replay(this.offset, decoded);
    return this.offset;
  }

  isActive(): boolean {
    return this.active;
  }

  leaderHint(): string {
    return '127.0.0.1:9093';
  }

  /** Which attached controller's view is the leader (the others are standbys). */
  activeIndex = 0;

  /** What every view says of the controller it followed before (Raft's last leader contact). */
  previousLeader: { nodeId: number; msAgo: number } | null = null;

  /** The log as controller `index` sees it: active only while it is the chosen one. */
  view(index: number): MetadataLog {
    const isActive = (): boolean => this.active && this.activeIndex === index;
    return {
      append: (records) => (isActive() ? this.append(records) : Promise.reject(new Error('not the leader'))),
      isActive,
      leaderHint: () => this.leaderHint(),
      previousLeaderContact: () => this.previousLeader,
    };
  }
}
