// The public surface of the Raft library: what controller/ and src/cli may import. Everything
// else under raft/ is internal (the simulator, test equipment and benchmark are run as scripts).
export type {
  Entry, EntryKind, HardState, InitialState, Message, NodeId, ProposeResult, ReadIndexResult, ReadState,
  Ready, Role, Snapshot, SnapshotMeta, SoftState,
} from './types.js';
export { NO_NODE, sendableBeforePersist } from './types.js';
export { makeRaftConfig, validateRaftConfig, DEFAULT_RAFT_LIMITS, type RaftConfig } from './config.js';
export { RaftCore, type RaftStatus } from './core.js';
export { ROLE_TRANSITIONS } from './roles.js';
export { MemoryStorage, StorageCorruptError, type Storage, type StorageUpdate } from './storage.js';
export { LevelStorage } from './level-storage.js';
export { GrpcTransport, type GrpcTransportOptions, type RaftTransport, type DropReason } from './transport.js';
export { RaftNode, validateTiming, DEFAULT_RAFT_TIMING, type RaftNodeOptions, type RaftTimingOptions } from './raft-node.js';
export { KvStateMachine, encodeKvCommand, decodeKvCommand, type StateMachine, type KvCommand } from './kv-state-machine.js';
export { checkLinearizable, type KvOperation, type CheckResult } from './linearizability.js';
