// The gRPC transport of riffle.internal.Raft (proto/riffle/internal/raft.proto). Raft tolerates
// lost messages, so this transport never retries a message: when a queue is full or a peer is in
// reconnect backoff, the message is dropped and counted, and the core's own timers resend.
//
// Routing of the core's messages:
//   append, heartbeat        -> our AppendEntries stream to the peer (opened on demand)
//   appendResponse, hb resp  -> the peer's AppendEntries stream into us, when open
//   vote                     -> a RequestVote call; its reply becomes a voteResponse for our core
//   voteResponse             -> the answer to the peer's waiting RequestVote call
//   snapshot                 -> an InstallSnapshot stream of chunks (one snapshot per peer at once)
//   timeoutNow               -> a TimeoutNow call
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../src/util/logger.js';
import { crc32c } from '../src/util/crc32c.js';
import { assert } from '../src/util/assert.js';
import { serviceClient } from '../src/rpc/proto.js';
import type { Message, NodeId, SnapshotMessage, VoteResponseMessage } from './types.js';
import {
  appendFromWire,
  appendResponseFromWire,
  appendResponseToWire,
  appendToWire,
  timeoutNowFromWire,
  voteFromWire,
  voteResponseFromWire,
  voteResponseToWire,
  voteToWire,
  type AppendEntriesRequestWire,
  type AppendEntriesResponseWire,
  type InstallSnapshotChunkWire,
  type RequestVoteRequestWire,
  type RequestVoteResponseWire,
  type TimeoutNowRequestWire,
} from './wire.js';

/** Messages buffered on one stream before new ones are dropped; bytes are bounded by the core's in-flight window. */
export const STREAM_QUEUE_MESSAGES_MAX = 256;
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
export const SNAPSHOT_BYTES_MAX = 1024 * 1024 * 1024;
export const INITIAL_BACKOFF_MS = 50;
export const MAX_BACKOFF_MS = 1_000;
/** How long a RequestVote call waits for the core's answer before replying "not answered". */
export const VOTE_ANSWER_WAIT_MS = 500;
const VOTE_CALL_DEADLINE_MS = 1_000;
const TIMEOUT_NOW_DEADLINE_MS = 1_000;
const SNAPSHOT_DEADLINE_MS = 120_000;
const SHUTDOWN_GRACE_MS = 1_000;

export type DropReason = 'backoff' | 'queue-full' | 'no-stream' | 'snapshot-busy' | 'misaddressed';

export interface RaftTransport {
  start(deliver: (message: Message) => void): Promise<void>;
  send(message: Message): void;
  stop(): Promise<void>;
}

export interface GrpcTransportOptions {
  readonly id: NodeId;
  /** Address to bind, e.g. '127.0.2.1:7400'. */
  readonly listen: string;
  /** Address of every other voter. */
  readonly peers: ReadonlyMap<NodeId, string>;
  readonly logger: Logger;
  readonly onDrop?: (reason: DropReason) => void;
  /**
   * A gRPC server owned by the caller, to serve Raft beside other services on one listener (the
   * controller's --controller-listen). The caller binds, starts and shuts it down; `listen` is
   * then unused. Without it the transport binds a server of its own on `listen`.
   */
  readonly server?: grpc.Server;
}

interface RaftClient extends grpc.Client {
  AppendEntries(options?: grpc.CallOptions): grpc.ClientDuplexStream<AppendEntriesRequestWire, AppendEntriesResponseWire>;
  RequestVote(request: RequestVoteRequestWire, options: grpc.CallOptions, callback: grpc.requestCallback<RequestVoteResponseWire>): grpc.ClientUnaryCall;
  InstallSnapshot(options: grpc.CallOptions, callback: grpc.requestCallback<{ accepted: boolean }>): grpc.ClientWritableStream<InstallSnapshotChunkWire>;
  TimeoutNow(request: TimeoutNowRequestWire, options: grpc.CallOptions, callback: grpc.requestCallback<object>): grpc.ClientUnaryCall;
}

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': INITIAL_BACKOFF_MS,
  'grpc.max_reconnect_backoff_ms': MAX_BACKOFF_MS,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
};

function raftService(): grpc.ServiceClientConstructor {
  return serviceClient('riffle/internal/raft.proto', 'riffle.internal.Raft');
}

/** One peer as seen from this node: a client, the outgoing append stream, and backoff. */
class PeerLink {
  private readonly client: RaftClient;
  private stream: grpc.ClientDuplexStream<AppendEntriesRequestWire, AppendEntriesResponseWire> | undefined;
  private retryAtMs = 0;
  private backoffMs = INITIAL_BACKOFF_MS;
  private snapshotInFlight = false;

  constructor(
    private readonly peer: NodeId,
    address: string,
    private readonly deliver: (message: Message) => void,
    private readonly drop: (reason: DropReason) => void,
    private readonly logger: Logger,
  ) {
    this.client = new (raftService())(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS) as unknown as RaftClient;
  }

  sendAppend(wire: AppendEntriesRequestWire): void {
    const stream = this.ensureStream();
    if (!stream) return this.drop('backoff');
    if (stream.writableLength >= STREAM_QUEUE_MESSAGES_MAX) return this.drop('queue-full');
    stream.write(wire);
  }

  sendVote(wire: RequestVoteRequestWire): void {
    this.client.RequestVote(wire, { deadline: Date.now() + VOTE_CALL_DEADLINE_MS }, (error, response) => {
      if (error || !response?.answered) return;
      this.deliver(voteResponseFromWire(response));
    });
  }

  sendTimeoutNow(wire: TimeoutNowRequestWire): void {
    this.client.TimeoutNow(wire, { deadline: Date.now() + TIMEOUT_NOW_DEADLINE_MS }, (error) => {
      if (error) this.logger.warn({ peer: this.peer, err: error.message }, 'TimeoutNow failed');
    });
  }

  sendSnapshot(message: SnapshotMessage): void {
    if (this.snapshotInFlight) return this.drop('snapshot-busy');
    this.snapshotInFlight = true;
    this.streamSnapshot(message)
      .catch((error: unknown) => this.logger.warn({ peer: this.peer, err: String(error) }, 'InstallSnapshot failed'))
      .finally(() => { this.snapshotInFlight = false; });
  }

  close(): void {
    this.stream?.cancel();
    this.stream = undefined;
    this.client.close();
  }

  private ensureStream(): grpc.ClientDuplexStream<AppendEntriesRequestWire, AppendEntriesResponseWire> | undefined {
    if (this.stream) return this.stream;
    if (Date.now() < this.retryAtMs) return undefined;
    const stream = this.client.AppendEntries();
    stream.on('data', (response: AppendEntriesResponseWire) => {
      this.backoffMs = INITIAL_BACKOFF_MS;
      this.deliver(appendResponseFromWire(response));
    });
    stream.on('error', () => this.streamFailed(stream));
    stream.on('end', () => this.streamFailed(stream));
    this.stream = stream;
    return stream;
  }

  /** Backs off before reopening, with jitter so peers do not reconnect in lockstep. */
  private streamFailed(stream: grpc.ClientDuplexStream<AppendEntriesRequestWire, AppendEntriesResponseWire>): void {
    if (this.stream !== stream) return;
    this.stream = undefined;
    stream.cancel();
    this.retryAtMs = Date.now() + this.backoffMs * (0.5 + Math.random() / 2);
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
  }

  private async streamSnapshot(message: SnapshotMessage): Promise<void> {
    const data = Buffer.from(message.snapshot.data.buffer, message.snapshot.data.byteOffset, message.snapshot.data.byteLength);
    const done = new Promise<void>((resolve, reject) => {
      const call = this.client.InstallSnapshot({ deadline: Date.now() + SNAPSHOT_DEADLINE_MS }, (error) => (error ? reject(error) : resolve()));
      void this.writeChunks(call, message, data).catch(reject);
    });
    await done;
  }

  private async writeChunks(call: grpc.ClientWritableStream<InstallSnapshotChunkWire>, message: SnapshotMessage, data: Buffer): Promise<void> {
    const checksum = crc32c(data);
    const { index, term } = message.snapshot.meta;
    for (let offset = 0; offset === 0 || offset < data.length; offset += SNAPSHOT_CHUNK_BYTES) {
      const chunk = data.subarray(offset, offset + SNAPSHOT_CHUNK_BYTES);
      const last = offset + SNAPSHOT_CHUNK_BYTES >= data.length;
      const wire: InstallSnapshotChunkWire = {
        from: message.from, to: message.to, term: message.term, snapshotIndex: index, snapshotTerm: term,
        offset, totalBytes: data.length, data: chunk, last, crc32c: last ? checksum : 0,
      };
      if (!call.write(wire)) await new Promise((resolve) => call.once('drain', resolve));
      if (last) break;
    }
    call.end();
  }
}

interface PendingVote {
  readonly callback: grpc.sendUnaryData<RequestVoteResponseWire>;
  readonly timer: NodeJS.Timeout;
}

/** Bad input from a peer: rejected, never an assertion (those are reserved for our own bugs). */
function check(condition: boolean, message: string | (() => string)): void {
  if (!condition) throw new Error(typeof message === 'string' ? message : message());
}

/** Reassembles one snapshot from its chunks, checking order, size and checksum. */
class SnapshotAssembly {
  private readonly chunks: Buffer[] = [];
  private received = 0;
  first: InstallSnapshotChunkWire | undefined;

  add(chunk: InstallSnapshotChunkWire): void {
    if (!this.first) this.first = chunk;
    check(chunk.totalBytes <= SNAPSHOT_BYTES_MAX, `snapshot of ${chunk.totalBytes} bytes exceeds ${SNAPSHOT_BYTES_MAX}`);
    check(chunk.offset === this.received, () => `snapshot chunk at ${chunk.offset}, expected ${this.received}`);
    check(chunk.snapshotIndex === this.first.snapshotIndex && chunk.totalBytes === this.first.totalBytes, 'snapshot chunks of different snapshots');
    this.chunks.push(chunk.data);
    this.received += chunk.data.length;
    check(this.received <= chunk.totalBytes, 'snapshot longer than announced');
  }

  finish(last: InstallSnapshotChunkWire): SnapshotMessage {
    const data = Buffer.concat(this.chunks);
    check(last.last && data.length === last.totalBytes, 'snapshot ended early');
    check(crc32c(data) === last.crc32c, 'snapshot checksum mismatch');
    const first = this.first!;
    return { type: 'snapshot', from: first.from, to: first.to, term: first.term, snapshot: { meta: { index: first.snapshotIndex, term: first.snapshotTerm }, data } };
  }
}

export class GrpcTransport implements RaftTransport {
  private readonly server: grpc.Server;
  private readonly ownsServer: boolean;
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly inbound = new Map<NodeId, grpc.ServerDuplexStream<AppendEntriesRequestWire, AppendEntriesResponseWire>>();
  private readonly pendingVotes = new Map<NodeId, PendingVote>();
  private deliver: (message: Message) => void = () => {};

  constructor(private readonly options: GrpcTransportOptions) {
    assert(!options.peers.has(options.id), 'peers must not include this node');
    this.ownsServer = options.server === undefined;
    this.server = options.server ?? new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  }

  async start(deliver: (message: Message) => void): Promise<void> {
    this.deliver = (message) => {
      if (message.to !== this.options.id || !this.options.peers.has(message.from)) return this.dropped('misaddressed');
      deliver(message);
    };
    this.server.addService(raftService().service, {
      AppendEntries: (call: grpc.ServerDuplexStream<AppendEntriesRequestWire, AppendEntriesResponseWire>) => this.acceptAppendStream(call),
      RequestVote: (call: grpc.ServerUnaryCall<RequestVoteRequestWire, RequestVoteResponseWire>, callback: grpc.sendUnaryData<RequestVoteResponseWire>) => this.acceptVote(call.request, callback),
      InstallSnapshot: (call: grpc.ServerReadableStream<InstallSnapshotChunkWire, object>, callback: grpc.sendUnaryData<object>) => this.acceptSnapshot(call, callback),
      TimeoutNow: (call: grpc.ServerUnaryCall<TimeoutNowRequestWire, object>, callback: grpc.sendUnaryData<object>) => {
        this.deliver(timeoutNowFromWire(call.request));
        callback(null, {});
      },
    });
    if (this.ownsServer) {
      await new Promise<number>((resolve, reject) => {
        this.server.bindAsync(this.options.listen, grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port)));
      });
    }
    for (const [peer, address] of this.options.peers) {
      this.links.set(peer, new PeerLink(peer, address, this.deliver, (reason) => this.dropped(reason), this.options.logger));
    }
  }

  send(message: Message): void {
    const link = this.links.get(message.to);
    if (!link) return this.dropped('misaddressed');
    switch (message.type) {
      case 'append':
      case 'heartbeat':
        return link.sendAppend(appendToWire(message));
      case 'appendResponse':
      case 'heartbeatResponse':
        return this.sendResponse(message.to, appendResponseToWire(message));
      case 'vote':
        return link.sendVote(voteToWire(message));
      case 'voteResponse':
        return this.answerVote(message);
      case 'snapshot':
        return link.sendSnapshot(message);
      case 'timeoutNow':
        return link.sendTimeoutNow({ from: message.from, to: message.to, term: message.term });
    }
  }

  async stop(): Promise<void> {
    for (const vote of this.pendingVotes.values()) clearTimeout(vote.timer);
    this.pendingVotes.clear();
    for (const link of this.links.values()) link.close();
    for (const call of this.inbound.values()) call.end();
    this.inbound.clear();
    if (!this.ownsServer) return;
    // Peers may hold streams open; a graceful shutdown gets a moment, then calls are cut.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, SHUTDOWN_GRACE_MS);
      this.server.tryShutdown(() => { clearTimeout(timer); resolve(); });
    });
    this.server.forceShutdown();
  }

  private dropped(reason: DropReason): void {
    this.options.onDrop?.(reason);
  }

  private acceptAppendStream(call: grpc.ServerDuplexStream<AppendEntriesRequestWire, AppendEntriesResponseWire>): void {
    let from: NodeId | undefined;
    call.on('data', (request: AppendEntriesRequestWire) => {
      if (from === undefined) {
        from = request.from;
        this.inbound.get(from)?.end();
        this.inbound.set(from, call);
      }
      try {
        this.deliver(appendFromWire(request));
      } catch (error) {
        this.options.logger.warn({ peer: request.from, err: String(error) }, 'undecodable AppendEntries dropped');
      }
    });
    const close = (): void => {
      if (from !== undefined && this.inbound.get(from) === call) this.inbound.delete(from);
    };
    call.on('end', () => { close(); call.end(); });
    call.on('error', close);
    call.on('cancelled', close);
  }

  private sendResponse(to: NodeId, wire: AppendEntriesResponseWire): void {
    const call = this.inbound.get(to);
    if (!call) return this.dropped('no-stream');
    if (call.writableLength >= STREAM_QUEUE_MESSAGES_MAX) return this.dropped('queue-full');
    call.write(wire);
  }

  private acceptVote(request: RequestVoteRequestWire, callback: grpc.sendUnaryData<RequestVoteResponseWire>): void {
    this.answerPendingVote(request.from, undefined);
    const unanswered: RequestVoteResponseWire = { answered: false, from: this.options.id, to: request.from, term: 0, preVote: request.preVote, granted: false };
    const timer = setTimeout(() => this.answerPendingVote(request.from, unanswered), VOTE_ANSWER_WAIT_MS);
    this.pendingVotes.set(request.from, { callback, timer });
    this.deliver(voteFromWire(request));
  }

  private answerVote(message: VoteResponseMessage): void {
    if (!this.pendingVotes.has(message.to)) return this.dropped('no-stream');
    this.answerPendingVote(message.to, voteResponseToWire(message));
  }

  /** Completes the peer's waiting vote call; with no answer, tells it nothing was decided. */
  private answerPendingVote(peer: NodeId, answer: RequestVoteResponseWire | undefined): void {
    const pending = this.pendingVotes.get(peer);
    if (!pending) return;
    this.pendingVotes.delete(peer);
    clearTimeout(pending.timer);
    pending.callback(null, answer ?? { answered: false, from: this.options.id, to: peer, term: 0, preVote: false, granted: false });
  }

  private acceptSnapshot(call: grpc.ServerReadableStream<InstallSnapshotChunkWire, object>, callback: grpc.sendUnaryData<object>): void {
    const assembly = new SnapshotAssembly();
    let last: InstallSnapshotChunkWire | undefined;
    let failed = false;
    const fail = (error: unknown): void => {
      if (failed) return;
      failed = true;
      callback({ code: grpc.status.INVALID_ARGUMENT, details: String(error) });
    };
    call.on('data', (chunk: InstallSnapshotChunkWire) => {
      if (failed) return;
      try {
        assembly.add(chunk);
        if (chunk.last) last = chunk;
      } catch (error) {
        fail(error);
      }
    });
    call.on('end', () => {
      if (failed) return;
      try {
        if (!last) throw new Error('snapshot stream ended before its last chunk');
        this.deliver(assembly.finish(last));
        callback(null, { accepted: true });
      } catch (error) {
        fail(error);
      }
    });
    call.on('error', fail);
  }
}
