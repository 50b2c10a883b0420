// Prometheus metrics of one Raft node (riffle_raft_*), registered on the registry the node is
// given (never the global one). docs/metrics.md lists them.
import { Counter, Gauge, Histogram, LATENCY_BUCKETS_SECONDS, type Registry } from '../src/metrics/index.js';
import type { Role } from './types.js';

const ROLES: readonly Role[] = ['follower', 'pre-candidate', 'candidate', 'leader'];

export class RaftMetrics {
  readonly term: Gauge;
  readonly role: Gauge<'role'>;
  readonly commitIndex: Gauge;
  readonly appliedIndex: Gauge;
  readonly leaderChanges: Counter;
  readonly appendLatency: Histogram;
  readonly commitLatency: Histogram;
  readonly droppedMessages: Counter<'reason'>;
  readonly proposals: Counter<'outcome'>;
  readonly catchUpTicks: Counter;
  readonly recovering: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.term = new Gauge({ name: 'riffle_raft_term', help: 'Current Raft term of this node.', registers });
    this.role = new Gauge({ name: 'riffle_raft_role', help: '1 for the role this node holds, 0 for the others.', labelNames: ['role'], registers });
    this.commitIndex = new Gauge({ name: 'riffle_raft_commit_index', help: 'Highest log index known to be committed.', registers });
    this.appliedIndex = new Gauge({ name: 'riffle_raft_applied_index', help: 'Highest log index applied to the state machine.', registers });
    this.leaderChanges = new Counter({ name: 'riffle_raft_leader_changes_total', help: 'Times this node saw the leader change (including to "no leader").', registers });
    this.appendLatency = new Histogram({ name: 'riffle_raft_append_latency_seconds', help: 'Time to persist one Ready (entries and hard state, one synced batch).', buckets: LATENCY_BUCKETS_SECONDS, registers });
    this.commitLatency = new Histogram({ name: 'riffle_raft_commit_latency_seconds', help: 'Time from propose() to the entry being applied on this leader.', buckets: LATENCY_BUCKETS_SECONDS, registers });
    this.droppedMessages = new Counter({ name: 'riffle_raft_transport_dropped_messages_total', help: 'Outgoing Raft messages dropped by the transport (Raft resends).', labelNames: ['reason'], registers });
    this.proposals = new Counter({ name: 'riffle_raft_proposals_total', help: 'Proposals by outcome.', labelNames: ['outcome'], registers });
    this.catchUpTicks = new Counter({
      name: 'riffle_raft_caught_up_ticks_total',
      help: 'Ticks run late, several in one timer callback, because the event loop was busy or the process stopped: without them Raft\'s timeouts would have stretched by as much.',
      registers,
    });
    this.recovering = new Gauge({
      name: 'riffle_raft_recovering',
      help: '1 while this voter, started on empty storage, has not yet caught up with a leader: it votes only for a candidate with an empty log and does not campaign (a voter that lost its disk must not elect a node lacking what it helped commit).',
      registers,
    });
    for (const role of ROLES) this.role.set({ role }, role === 'follower' ? 1 : 0);
  }

  setRole(current: Role): void {
    for (const role of ROLES) this.role.set({ role }, role === current ? 1 : 0);
  }
}
