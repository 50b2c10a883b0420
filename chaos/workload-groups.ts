// The group half of the Kafka-like workload: members of one consumer group, each its own process
// (group-member.ts), committing offsets as they go. Now and then the harness kill -9s a member
// (a crash: its ownership ends at that moment in the history, and the coordinator reassigns its
// partitions after the session timeout) or stops one with SIGTERM (a graceful leave), and starts
// a new member. Every line a member prints becomes an operation of the history.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Prng } from '../src/util/prng.js';
import type { History } from './history.js';
import { churn, killChild, startReportingChild, stopChild, type ReportedOp, type ReportingChild } from './reporting-child.js';

const MEMBER_ENTRY = path.join(path.dirname(fileURLToPath(import.meta.url)), 'group-member.js');
/** Members started over a run at most (a bound on restarts). */
const MEMBERS_STARTED_MAX = 500;
/** How long the group may take, once producers stop, to commit everything. */
const DRAIN_MS_MAX = 60_000;

export interface GroupWorkloadOptions {
  topic: string;
  group: string;
  partitions: number;
  members: number;
  /** How often (on average) a member is killed or stopped and replaced, 0 for never. */
  restartEveryMs: number;
  /**
   * AZs given to the members in turn (the SDK's `rack`), so a member fetches from an in-sync
   * follower in its AZ when the leader is elsewhere (KIP-392); none gives none.
   */
  racks: readonly string[];
}

interface Member extends ReportingChild {
  /** Partitions this member owns, per its own reports. */
  owned: Set<number>;
  /** One past the last offset it received, per partition: what a commit in flight may carry. */
  received: Map<number, number>;
  /** Its last acknowledged commit per partition. */
  committed: Map<number, number>;
}

export class GroupWorkload {
  private readonly members = new Map<string, Member>();
  private started = 0;
  private stopping = false;
  private churn?: Promise<void>;

  constructor(
    private readonly bootstrap: string,
    private readonly history: History,
    private readonly options: GroupWorkloadOptions,
    private readonly random: Prng,
  ) {}

  start(): void {
    for (let index = 0; index < this.options.members; index++) this.startMember();
    if (this.options.restartEveryMs > 0) this.churn = this.churnLoop();
  }

  private startMember(): void {
    if (this.started >= MEMBERS_STARTED_MAX) return;
    const index = this.started++;
    const name = `member-${index}`;
    const rack = this.options.racks.length > 0 ? [this.options.racks[index % this.options.racks.length]!] : [];
    const member: Member = {
      ...startReportingChild(name, MEMBER_ENTRY, [this.bootstrap, this.options.group, this.options.topic, ...rack], (op, at) => this.record(member, op, at)),
      owned: new Set(), received: new Map(), committed: new Map(),
    };
    this.members.set(name, member);
  }

  private record(member: Member, op: ReportedOp, at: number | undefined): void {
    if (op.f === 'poll' && op.records) for (const record of op.records) member.received.set(record.partition, record.offset + 1);
    if (op.f === 'commit' && op.type === 'ok' && op.partition !== undefined && op.offset !== undefined) member.committed.set(op.partition, op.offset);
    if (op.f === 'assign') {
      for (const partition of op.partitions ?? []) {
        if (op.type === 'ok') member.owned.add(partition);
        else member.owned.delete(partition);
      }
    }
    this.history.add({ ...op, process: member.name }, at);
  }

  private churnLoop(): Promise<void> {
    return churn({
      everyMs: this.options.restartEveryMs, random: this.random, stopping: () => this.stopping, names: () => [...this.members.keys()],
      replace: async (name, crash) => {
        const victim = this.members.get(name)!;
        if (crash) await this.kill(victim);
        else await this.terminate(victim);
        this.startMember();
      },
    });
  }

  /** kill -9 of a random member and a new member in its place (the consumer-crash-loop scenario). */
  async crashOne(): Promise<void> {
    const names = [...this.members.keys()].sort();
    if (names.length === 0 || this.stopping) return;
    await this.kill(this.members.get(this.random.pick(names))!);
    this.startMember();
  }

  /** A crash: the member stops owning anything the moment it dies. */
  private async kill(member: Member): Promise<void> {
    await killChild(member);
    this.members.delete(member.name);
    this.recordUnknownCommits(member, 'killed');
    this.history.add({ type: 'info', f: 'assign', process: member.name, group: this.options.group, partitions: [...member.owned], error: 'killed' });
    this.history.add({ type: 'invoke', f: 'nemesis', process: 'workload', fault: `kill -9 ${member.name}` });
  }

  /** A graceful leave: the member commits, releases and leaves (it reports all that itself). */
  private async terminate(member: Member): Promise<void> {
    await stopChild(member);
    this.members.delete(member.name);
    if (member.owned.size === 0) return;
    // It exited still owning partitions (it did not finish its leave, or needed the SIGKILL):
    // as after a crash, a commit it had in flight may have landed without being reported.
    this.recordUnknownCommits(member, 'exited');
    this.history.add({ type: 'info', f: 'assign', process: member.name, group: this.options.group, partitions: [...member.owned], error: 'exited' });
  }

  /** A commit the member may have had in flight for each partition it owned: outcome unknown. */
  private recordUnknownCommits(member: Member, error: string): void {
    for (const partition of member.owned) {
      const offset = member.received.get(partition);
      if (offset !== undefined) this.history.add({ type: 'info', f: 'commit', process: member.name, group: this.options.group, partition, offset, fromOffset: member.committed.get(partition) ?? 0, error });
    }
  }

  /**
   * Stops the churn, waits until the group has committed up to `ends` on every partition (one
   * past each partition's last record), then lets every member leave.
   */
  async stop(ends: ReadonlyMap<number, number>): Promise<void> {
    this.stopping = true;
    await this.churn;
    const deadline = Date.now() + DRAIN_MS_MAX;
    while (Date.now() < deadline && !this.committedUpTo(ends)) await new Promise((resolve) => setTimeout(resolve, 200));
    await Promise.all([...this.members.values()].map((member) => this.terminate(member)));
  }

  private committedUpTo(ends: ReadonlyMap<number, number>): boolean {
    const committed = new Map<number, number>();
    for (const op of this.history.ops) {
      if (op.f === 'commit' && op.type === 'ok' && op.group === this.options.group && op.partition !== undefined && op.offset !== undefined) {
        committed.set(op.partition, Math.max(committed.get(op.partition) ?? 0, op.offset));
      }
    }
    return [...ends].every(([partition, end]) => (committed.get(partition) ?? 0) >= end);
  }

  /** Kills whatever is left (for a run that ends early). */
  async abort(): Promise<void> {
    this.stopping = true;
    for (const member of this.members.values()) member.child.kill('SIGKILL');
    await Promise.all([...this.members.values()].map((member) => member.exited));
    this.members.clear();
  }
}
