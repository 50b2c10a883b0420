// Configuration of the Raft core, in ticks and bytes, validated for the relations between fields
// (as etcd-io/raft's Config.validate does). The driver translates milliseconds into ticks.
import type { NodeId } from './types.js';

export interface RaftConfig {
  readonly id: NodeId;
  /** Every voter of the group, including this node. Static: there are no configuration changes. */
  readonly voters: readonly NodeId[];
  /** A leader sends heartbeats every this many ticks. */
  readonly heartbeatTicks: number;
  /** Election timeouts are drawn from [electionTicks, electionTicksMax). */
  readonly electionTicks: number;
  readonly electionTicksMax: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Upper bound on the entry bytes of one AppendEntries message (one entry may exceed it). */
  readonly maxMessageBytes: number;
  /** Pipelining bounds per follower: messages and entry bytes sent but not yet acknowledged. */
  readonly maxInflightMessages: number;
  readonly maxInflightBytes: number;
  /** Proposals are refused while the leader's uncommitted tail holds this many bytes. */
  readonly maxUncommittedBytes: number;
  /** ReadIndex requests waiting for confirmation, per leader. */
  readonly maxPendingReads: number;
}

export const DEFAULT_RAFT_LIMITS = {
  heartbeatTicks: 1,
  electionTicks: 10,
  electionTicksMax: 20,
  preVote: true,
  checkQuorum: true,
  maxMessageBytes: 1024 * 1024,
  maxInflightMessages: 64,
  maxInflightBytes: 16 * 1024 * 1024,
  maxUncommittedBytes: 64 * 1024 * 1024,
  maxPendingReads: 10_000,
} as const;

export function makeRaftConfig(id: NodeId, voters: readonly NodeId[], overrides: Partial<RaftConfig> = {}): RaftConfig {
  const config: RaftConfig = { ...DEFAULT_RAFT_LIMITS, id, voters: [...voters], ...overrides };
  validateRaftConfig(config);
  return config;
}

/** Throws a RangeError naming the offending field(s). */
export function validateRaftConfig(config: RaftConfig): void {
  const fail = (why: string): never => {
    throw new RangeError(`invalid raft config: ${why}`);
  };
  if (!Number.isInteger(config.id) || config.id <= 0) fail(`id ${config.id} must be a positive integer`);
  if (config.voters.length === 0 || config.voters.length > 9) fail(`voters count ${config.voters.length} must be in [1, 9]`);
  if (new Set(config.voters).size !== config.voters.length) fail('voters contain duplicates');
  if (config.voters.some((v) => !Number.isInteger(v) || v <= 0)) fail('voter ids must be positive integers');
  if (!config.voters.includes(config.id)) fail(`id ${config.id} is not among the voters`);
  const positive = ['heartbeatTicks', 'electionTicks', 'maxMessageBytes', 'maxInflightMessages', 'maxInflightBytes', 'maxUncommittedBytes', 'maxPendingReads'] as const;
  for (const field of positive) {
    if (!Number.isInteger(config[field]) || config[field] <= 0) fail(`${field} ${config[field]} must be a positive integer`);
  }
  if (config.electionTicks <= config.heartbeatTicks) fail(`electionTicks ${config.electionTicks} must exceed heartbeatTicks ${config.heartbeatTicks}`);
  if (config.electionTicksMax <= config.electionTicks) fail(`electionTicksMax ${config.electionTicksMax} must exceed electionTicks ${config.electionTicks}`);
  if (config.maxInflightBytes < config.maxMessageBytes) fail('maxInflightBytes must be at least maxMessageBytes');
}
