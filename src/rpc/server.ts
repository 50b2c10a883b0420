// gRPC plumbing shared by every service a node serves: handlers are plain async functions from
// request to response, and this module turns them into grpc-js handlers that map thrown errors to
// typed statuses (never crashing the process on bad input) and record per-method metrics.
import type * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { Counter, Histogram, LATENCY_BUCKETS_SECONDS, type Registry } from '../metrics/index.js';
import type { Logger } from '../util/logger.js';
import { RiffleError, toRiffleError } from './errors.js';

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
  return (call, callback) => {
    handle(context, method, () => handler(call.request, call), (error, response) => {
      if (error) callback(error.toServiceError() as grpc.ServiceError);
      else callback(null, response);
    });
  };
}

/**
 * Runs one request's handler, records its duration and outcome, and passes the response or the
 * typed error to `answer` (an unexpected error is logged: it is a bug, not bad input).
 */
function handle<Response>(context: HandlerContext, method: string, run: () => Promise<Response>, answer: (error: RiffleError | null, response?: Response) => void): void {
  const { service, metrics, logger } = context;
  const stopTimer = metrics.latency.startTimer({ service, method });
  let settled: Promise<Response>;
  try {
    settled = run();
  } catch (error) {
    settled = Promise.reject(error);
  }
  settled.then(
    (response) => {
      stopTimer();
      metrics.requests.inc({ service, method, outcome: 'ok' });
      answer(null, response);
    },
    (error: unknown) => {
      stopTimer();
      const riffleError = toRiffleError(error);
      metrics.requests.inc({ service, method, outcome: riffleError.errorName });
      if (riffleError.errorName === 'UNKNOWN_SERVER_ERROR') logger.error({ err: error, service, method }, 'rpc failed');
      answer(riffleError);
    },
  );
}

/** Whether the client gave up on a request: its call, or the stream it was pipelined on, was cancelled. */
export interface CancelSignal {
  readonly cancelled: boolean;
  /** Calls `listener` once on cancellation; returns a function that removes it. */
  onCancel(listener: () => void): () => void;
}

/** The cancel signal of a unary call. */
export function callCancelSignal(call: grpc.ServerUnaryCall<unknown, unknown>): CancelSignal {
  return {
    get cancelled() {
      return call.cancelled;
    },
    onCancel(listener) {
      call.once('cancelled', listener);
      return () => call.off('cancelled', listener);
    },
  };
}

/** The cancel signal of a stream: set when the client cancels it or it breaks. */
class StreamCancelSignal implements CancelSignal {
  cancelled = false;
  private readonly listeners = new Set<() => void>();

  onCancel(listener: () => void): () => void {
    if (this.cancelled) {
      queueMicrotask(listener);
      return () => undefined;
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    const listeners = [...this.listeners];
    this.listeners.clear();
    for (const listener of listeners) listener();
  }
}

/** One message of a pipelined stream from the client: a request and the id its answer will carry. */
export interface PipelinedRequest<Request> {
  correlationId: number;
  request?: Request | null;
}

/** The answer to one pipelined request: the response, or the error of the whole request. */
export interface PipelinedResponse<Response> {
  correlationId: number;
  response?: Response;
  errorCode: number;
  errorMessage: string;
}

/**
 * Requests of one pipelined stream handled at once. Beyond this the stream stops reading, and
 * HTTP/2 flow control holds the client back (the SDK keeps at most 5 in flight per broker).
 */
export const PIPELINED_IN_FLIGHT_MAX = 64;

/**
 * Wraps an async handler as a bidirectional stream of pipelined requests (Kafka's requests on one
 * connection): every message is handled like a unary call, concurrently with the others, and
 * answered with its correlation id once done; the handler's cancel signal is the stream's. A
 * failed request is answered with its error code and the stream goes on. When the client
 * half-closes, or `streams` is ended by a stopping node, the stream ends once the requests in
 * flight are answered; what arrives after that is not run.
 */
export function pipelined<Request, Response>(
  context: HandlerContext,
  method: string,
  handler: (request: Request, signal: CancelSignal) => Promise<Response>,
  streams: OpenStreams,
): grpc.handleBidiStreamingCall<PipelinedRequest<Request>, PipelinedResponse<Response>> {
  return (call) => {
    let inFlight = 0;
    let draining = false;
    let gone = false;
    const signal = new StreamCancelSignal();
    const finish = (): void => {
      if (gone) return;
      gone = true;
      streams.delete(call);
      call.end();
    };
    const drainThenEnd = (): void => {
      draining = true;
      if (inFlight === 0) finish();
    };
    if (!streams.add(call, drainThenEnd)) {
      call.emit('error', new RiffleError('BROKER_NOT_AVAILABLE', 'The node is stopping.').toServiceError());
      return;
    }
    const answer = (message: PipelinedResponse<Response>): void => {
      inFlight--;
      if (!gone) call.write(message);
      if (inFlight < PIPELINED_IN_FLIGHT_MAX && call.isPaused()) call.resume();
      if (draining && inFlight === 0) finish();
    };
    call.on('data', (message: PipelinedRequest<Request>) => {
      // After its end no answer could be sent: running the request (a write) would only make the
      // client's retry a duplicate.
      if (gone) return;
      const correlationId = message.correlationId;
      if (++inFlight >= PIPELINED_IN_FLIGHT_MAX) call.pause();
      const run = (): Promise<Response> => {
        if (!message.request) throw new RiffleError('INVALID_REQUEST', `A ${method} message without a request.`);
        return handler(message.request, signal);
      };
      handle(context, method, run, (error, response) => {
        if (error) answer({ correlationId, errorCode: error.code, errorMessage: error.message });
        else answer({ correlationId, response, errorCode: 0, errorMessage: '' });
      });
    });
    call.on('end', drainThenEnd);
    const abandon = (): void => {
      gone = true;
      streams.delete(call);
      signal.cancel();
    };
    call.on('cancelled', abandon);
    call.on('error', abandon);
  };
}

/**
 * A node's open server streams (followers' replica fetches, pipelined produce streams), so a
 * stopping node can close them instead of waiting them out for its grace period.
 */
export class OpenStreams {
  private readonly closers = new Map<object, () => void>();
  private closing = false;

  /** Registers a stream and how to close it; false once the node is stopping. */
  add(call: { end(): void }, close: () => void = () => call.end()): boolean {
    if (this.closing) return false;
    this.closers.set(call, close);
    return true;
  }

  delete(call: object): void {
    this.closers.delete(call);
  }

  get size(): number {
    return this.closers.size;
  }

  /** Closes every stream (clients reconnect elsewhere once the metadata says so) and refuses new ones. */
  endAll(): void {
    this.closing = true;
    const closers = [...this.closers.values()];
    this.closers.clear();
    for (const close of closers) close();
  }
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
