// Client-side gRPC plumbing: one channel per address, shared by the services on it, and a
// promise-returning unary call that turns failures into typed RiffleErrors.
import * as grpc from '@grpc/grpc-js';
import { fromServiceError } from './errors.js';
import { serviceClient } from './proto.js';

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

  close(): void {
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
