// gRPC plumbing shared by every service a node serves: handlers are plain async functions from
// request to response, and this module turns them into grpc-js handlers that map thrown errors to
// typed statuses (never crashing the process on bad input) and record per-method metrics.
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
      else resolve(boundPort);
    });
  });
}

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
