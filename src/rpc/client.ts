// Client-side gRPC plumbing: one channel per address, shared by the services on it, a
// promise-returning unary call that turns failures into typed RiffleErrors, and pipelined
// requests on one long-lived stream (PipelinedStream).
import * as grpc from '@grpc/grpc-js';
import { RiffleError, errorNameOf, fromServiceError } from './errors.js';
import { serviceClient } from './proto.js';
import type { PipelinedRequest, PipelinedResponse } from './server.js';

export const CLIENT_MESSAGE_BYTES_MAX = 256 * 1024 * 1024;
export const CLIENT_RECEIVE_WINDOW_BYTES = 16 * 1024 * 1024;

export type ServiceName = 'riffle.v1.Kafka' | 'riffle.v1.Admin' | 'riffle.v1.Kinesis' | 'riffle.internal.Controller' | 'riffle.internal.Replication';

const PROTO_OF: Record<ServiceName, string> = {
  'riffle.v1.Kafka': 'riffle/v1/kafka.proto',
  'riffle.v1.Admin': 'riffle/v1/admin.proto',
  'riffle.v1.Kinesis': 'riffle/v1/kinesis.proto',
  'riffle.internal.Controller': 'riffle/internal/controller.proto',
  'riffle.internal.Replication': 'riffle/internal/replication.proto',
};

export function channelOptions(): grpc.ChannelOptions {
  return {
    'grpc.max_receive_message_length': CLIENT_MESSAGE_BYTES_MAX,
    'grpc.max_send_message_length': CLIENT_MESSAGE_BYTES_MAX,
    // A peer that stops answering (a paused or cut-off node) is noticed within about 10 s even on
    // a stream that is legitimately quiet, such as a broker's metadata stream from a controller;
    // with longer pings a broker could follow a frozen controller for most of a minute.
    'grpc.keepalive_time_ms': 5_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    // Reconnect quickly after a node restarts; the SDK's own retries add backoff on top.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 2_000,
    // Answers (fetches, replica fetches of up to 16 MiB) arrive without waiting for window
    // updates of the 64 KiB HTTP/2 default; servers widen theirs for requests (server.ts).
    'grpc-node.flow_control_window': CLIENT_RECEIVE_WINDOW_BYTES,
  };
}

/** The clients of one address: a single channel shared by every service stub. */
export class NodeConnection {
  private readonly clients = new Map<ServiceName, grpc.Client>();
  private readonly streams = new Map<string, PipelinedStream<object, unknown>>();
  private channel?: grpc.Channel;

  constructor(readonly address: string) {}

  client(service: ServiceName): grpc.Client {
    let client = this.clients.get(service);
    if (!client) {
      const Constructor = serviceClient(PROTO_OF[service], service);
      const options: grpc.ClientOptions = { ...channelOptions() };
      if (this.channel) options.channelOverride = this.channel;
      client = new Constructor(this.address, grpc.credentials.createInsecure(), options);
      this.channel ??= client.getChannel() as grpc.Channel;
      this.clients.set(service, client);
    }
    return client;
  }

  /** Calls a unary method; rejects with a RiffleError. Aborting `signal` cancels the call (it rejects). */
  call<Response>(service: ServiceName, method: string, request: object, timeoutMs: number, metadata?: grpc.Metadata, signal?: AbortSignal): Promise<Response> {
    const client = this.client(service) as unknown as Record<string, UnaryMethod<Response>>;
    const deadline = new Date(Date.now() + timeoutMs);
    return new Promise((resolve, reject) => {
      const call = client[method]!.call(client, request, metadata ?? new grpc.Metadata(), { deadline }, (error, response) => {
        signal?.removeEventListener('abort', cancel);
        if (error) reject(fromServiceError(error));
        else resolve(response as Response);
      });
      function cancel(): void {
        call.cancel();
      }
      if (signal?.aborted) cancel();
      else signal?.addEventListener('abort', cancel, { once: true });
    });
  }

  /** The pipelined stream of a bidirectional method served by `pipelined()` (src/rpc/server.ts). */
  pipelined<Request extends object, Response>(service: ServiceName, method: string): PipelinedStream<Request, Response> {
    const key = `${service}/${method}`;
    let stream = this.streams.get(key);
    if (!stream) {
      const client = this.client(service) as unknown as Record<string, () => grpc.ClientDuplexStream<PipelinedRequest<object>, PipelinedResponse<unknown>>>;
      stream = new PipelinedStream(() => client[method]!.call(client));
      this.streams.set(key, stream);
    }
    return stream as unknown as PipelinedStream<Request, Response>;
  }

  close(): void {
    for (const stream of this.streams.values()) stream.close();
    this.streams.clear();
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
    this.channel?.close();
    this.channel = undefined;
  }
}

type UnaryMethod<Response> = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: Response) => void,
) => grpc.ClientUnaryCall;

/** Connections by address, created on first use. */
export class ConnectionPool {
  private readonly connections = new Map<string, NodeConnection>();

  get(address: string): NodeConnection {
    let connection = this.connections.get(address);
    if (!connection) {
      connection = new NodeConnection(address);
      this.connections.set(address, connection);
    }
    return connection;
  }

  close(): void {
    for (const connection of this.connections.values()) connection.close();
    this.connections.clear();
  }
}

/** A pipelined stream closes after this long without requests in flight: an open one keeps the process alive. */
export const PIPELINED_IDLE_MS = 1_000;

interface PendingRequest<Response> {
  resolve(response: Response): void;
  reject(error: RiffleError): void;
  timer: NodeJS.Timeout;
}

/** One open stream and the requests sent on it that await their answers. */
interface OpenPipeline<Request, Response> {
  call: grpc.ClientDuplexStream<PipelinedRequest<Request>, PipelinedResponse<Response>>;
  pending: Map<number, PendingRequest<Response>>;
}

/**
 * Requests pipelined on one bidirectional stream, as Kafka pipelines requests on one connection:
 * each carries a correlation id, and its promise settles when the answer with that id arrives.
 * grpc-js spends several times the CPU on a unary call that it spends on a stream message, which
 * shows in both latency and throughput of a busy producer. The stream opens with the first request
 * and half-closes after PIPELINED_IDLE_MS with nothing in flight. If it breaks, every request in
 * flight on it fails with the stream's error (callers retry as after a failed unary call) and the
 * next request opens a new stream. A request unanswered within its timeout fails with
 * REQUEST_TIMED_OUT; a late answer to it is dropped.
 */
export class PipelinedStream<Request extends object, Response> {
  private current?: OpenPipeline<Request, Response>;
  private lastId = 0;
  private idleTimer?: NodeJS.Timeout;

  constructor(private readonly open: () => grpc.ClientDuplexStream<PipelinedRequest<Request>, PipelinedResponse<Response>>) {}

  /** Requests awaiting their answers on the open stream. */
  get inFlight(): number {
    return this.current?.pending.size ?? 0;
  }

  call(request: Request, timeoutMs: number): Promise<Response> {
    return new Promise((resolve, reject) => {
      const pipeline = this.current ?? this.start();
      if (this.idleTimer) {
        clearTimeout(this.idleTimer);
        this.idleTimer = undefined;
      }
      this.lastId = (this.lastId + 1) >>> 0;
      const correlationId = this.lastId;
      const timer = setTimeout(() => {
        if (!pipeline.pending.delete(correlationId)) return;
        reject(new RiffleError('REQUEST_TIMED_OUT', `No answer within ${timeoutMs} ms.`));
        this.idleLater(pipeline);
      }, timeoutMs);
      pipeline.pending.set(correlationId, { resolve, reject, timer });
      pipeline.call.write({ correlationId, request });
    });
  }

  /** Cancels the stream; requests in flight fail with NETWORK_EXCEPTION. */
  close(): void {
    const pipeline = this.current;
    if (!pipeline) return;
    this.retire(pipeline);
    pipeline.call.cancel();
    this.failAll(pipeline, new RiffleError('NETWORK_EXCEPTION', 'The connection was closed.'));
  }

  private start(): OpenPipeline<Request, Response> {
    const pipeline: OpenPipeline<Request, Response> = { call: this.open(), pending: new Map() };
    this.current = pipeline;
    pipeline.call.on('data', (message: PipelinedResponse<Response>) => this.answered(pipeline, message));
    pipeline.call.on('error', (error: grpc.ServiceError) => {
      this.retire(pipeline);
      this.failAll(pipeline, fromServiceError(error));
    });
    pipeline.call.on('end', () => {
      this.retire(pipeline);
      this.failAll(pipeline, new RiffleError('NETWORK_EXCEPTION', 'The stream ended before its requests were answered.'));
    });
    return pipeline;
  }

  private answered(pipeline: OpenPipeline<Request, Response>, message: PipelinedResponse<Response>): void {
    const pending = pipeline.pending.get(message.correlationId);
    if (!pending) return;
    pipeline.pending.delete(message.correlationId);
    clearTimeout(pending.timer);
    if (message.errorCode !== 0) pending.reject(new RiffleError(errorNameOf(message.errorCode), message.errorMessage || undefined));
    else if (message.response === undefined || message.response === null) pending.reject(new RiffleError('UNKNOWN_SERVER_ERROR', 'An answer without a response.'));
    else pending.resolve(message.response);
    this.idleLater(pipeline);
  }

  /** Half-closes the stream once it has been idle for PIPELINED_IDLE_MS. */
  private idleLater(pipeline: OpenPipeline<Request, Response>): void {
    if (pipeline !== this.current || pipeline.pending.size > 0 || this.idleTimer) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (pipeline !== this.current || pipeline.pending.size > 0) return;
      this.retire(pipeline);
      pipeline.call.end();
    }, PIPELINED_IDLE_MS);
    this.idleTimer.unref();
  }

  /** Stops sending on `pipeline`: the next request opens a new stream. */
  private retire(pipeline: OpenPipeline<Request, Response>): void {
    if (this.current !== pipeline) return;
    this.current = undefined;
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
    }
  }

  private failAll(pipeline: OpenPipeline<Request, Response>, error: RiffleError): void {
    const pending = [...pipeline.pending.values()];
    pipeline.pending.clear();
    for (const request of pending) {
      clearTimeout(request.timer);
      request.reject(error);
    }
  }
}
