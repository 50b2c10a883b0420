// gRPC plumbing shared by every service a node serves: handlers are plain async functions from
// request to response, and this module turns them into grpc-js handlers that map thrown errors to
// typed statuses (never crashing the process on bad input) and record per-method metrics.
import type * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { Counter, Histogram, LATENCY_BUCKETS_SECONDS, type Registry } from '../metrics/index.js';
import type { Logger } from '../util/logger.js';
import { toRiffleError } from './errors.js';

export class RpcMetrics {
  readonly requests: Counter<'service' | 'method' | 'outcome'>;
  readonly latency: Histogram<'service' | 'method'>;

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: 'riffle_rpc_requests_total',
      help: 'Client RPCs served, by service, method and outcome (ok or the error name).',
      labelNames: ['service', 'method', 'outcome'],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: 'riffle_rpc_request_duration_seconds',
      help: 'Time from receiving an RPC to answering it, by service and method.',
      labelNames: ['service', 'method'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers: [registry],
    });
  }
}

export type UnaryHandler<Request, Response> = (request: Request, call: grpc.ServerUnaryCall<Request, Response>) => Promise<Response>;

export interface HandlerContext {
  service: string;
  metrics: RpcMetrics;
  logger: Logger;
}

/** Wraps an async handler as a grpc-js unary handler with error mapping and metrics. */
export function unary<Request, Response>(
  context: HandlerContext,
  method: string,
  handler: UnaryHandler<Request, Response>,
): grpc.handleUnaryCall<Request, Response> {
  const { service, metrics, logger } = context;
  return (call, callback) => {
    const stopTimer = metrics.latency.startTimer({ service, method });
    let settled: Promise<Response>;
    try {
      settled = handler(call.request, call);
    } catch (error) {
      settled = Promise.reject(error);
    }
    settled.then(
      (response) => {
        stopTimer();
        metrics.requests.inc({ service, method, outcome: 'ok' });
        callback(null, response);
      },
      (error: unknown) => {
        stopTimer();
        const riffleError = toRiffleError(error);
        metrics.requests.inc({ service, method, outcome: riffleError.errorName });
        if (riffleError.errorName === 'UNKNOWN_SERVER_ERROR') logger.error({ err: error, service, method }, 'rpc failed');
        callback(riffleError.toServiceError() as grpc.ServiceError);
      },
    );
  };
}

/** Binds a server and resolves with the bound port (useful when asked for port 0). */
export function bindServer(server: grpc.Server, host: string, port: number): Promise<number> {
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, boundPort) => {
      if (error) reject(error);
      else {
        widenReceiveWindows(server);
        resolve(boundPort);
      }
    });
  });
}

/** What a server lets each connection and each call send before it must wait for a window update. */
export const SERVER_RECEIVE_WINDOW_BYTES = 16 * 1024 * 1024;

/**
 * HTTP/2 starts every connection and stream with a 64 KiB receive window, and grpc-js has no
 * server option to change it, so a 256 KiB Produce request waits for several window updates,
 * each a turn of both event loops, and under load a request can take longer to arrive than to
 * handle. Every session of the server's HTTP/2 listeners gets a larger window (the connection's
 * by WINDOW_UPDATE, each new stream's by SETTINGS); clients do the same for answers
 * (channelOptions). The listeners are grpc-js internals: if they are not where 1.14 keeps them,
 * the windows stay as they were, which is slower but correct.
 */
function widenReceiveWindows(server: grpc.Server): void {
  const listeners = (server as unknown as { http2Servers?: Map<http2.Http2Server, unknown> }).http2Servers;
  if (!(listeners instanceof Map)) return;
  for (const listener of listeners.keys()) {
    if (typeof listener?.on !== 'function' || WIDENED.has(listener)) continue;
    WIDENED.add(listener);
    listener.on('session', (session: http2.ServerHttp2Session) => {
      try {
        session.settings({ initialWindowSize: SERVER_RECEIVE_WINDOW_BYTES });
        session.setLocalWindowSize(SERVER_RECEIVE_WINDOW_BYTES);
      } catch {
        // A session closing as it opens: nothing to widen.
      }
    });
  }
}

const WIDENED = new WeakSet<object>();

/** Server options shared by every gRPC listener: message limits and keepalive. */
export function serverOptions(messageBytesMax: number): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': messageBytesMax,
    'grpc.max_send_message_length': messageBytesMax,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
  };
}

/** Stops accepting calls, waits up to graceMs for those in flight, then forces the rest. */
export function shutdownServer(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    force.unref();
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}
