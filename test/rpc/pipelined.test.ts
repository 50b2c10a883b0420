// Pipelined requests on one bidirectional stream (the SDK producer's ProduceStream): answers are
// matched by correlation id whatever their order, a failed request is a typed error that leaves
// the stream open, an idle stream closes, a stopping node answers what is in flight and then ends
// the stream, and a broken stream fails what was in flight on it as retriable. In process on
// 127.0.17.2, with a JSON-coded test service.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from '../../src/metrics/index.js';
import { RiffleError } from '../../src/rpc/errors.js';
import { OpenStreams, PIPELINED_IN_FLIGHT_MAX, RpcMetrics, bindServer, pipelined, type CancelSignal, type PipelinedRequest, type PipelinedResponse } from '../../src/rpc/server.js';
import { PIPELINED_IDLE_MS, PipelinedStream, channelOptions } from '../../src/rpc/client.js';
import { createLogger } from '../../src/util/logger.js';

const HOST = '127.0.17.2';
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

interface Job {
  value: number;
  delayMs?: number;
  fail?: string;
  hang?: boolean;
  /** Wait until the stream is cancelled. */
  untilCancelled?: boolean;
}

const json = {
  serialize: (value: unknown): Buffer => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer): unknown => JSON.parse(bytes.toString()),
};
const SERVICE = {
  Work: {
    path: '/test.Pipeline/Work', requestStream: true, responseStream: true,
    requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize,
  },
};

interface TestServer {
  port: number;
  streams: OpenStreams;
  server: grpc.Server;
  metrics: RpcMetrics;
  /** Requests the handler is working on right now, and the most at once. */
  busy: { now: number; max: number };
  opened: number;
  /** Requests that saw their stream's cancel signal fire. */
  cancelledSeen: number;
}

async function startServer(): Promise<TestServer> {
  const server = new grpc.Server();
  const streams = new OpenStreams();
  const metrics = new RpcMetrics(new Registry());
  const state: TestServer = { port: 0, streams, server, metrics, busy: { now: 0, max: 0 }, opened: 0, cancelledSeen: 0 };
  const handler = async (job: Job, signal: CancelSignal): Promise<{ doubled: number }> => {
    state.busy.max = Math.max(state.busy.max, ++state.busy.now);
    try {
      if (job.untilCancelled) {
        await new Promise<void>((resolve) => signal.onCancel(resolve));
        expect(signal.cancelled).toBe(true);
        state.cancelledSeen++;
      }
      if (job.hang) await new Promise(() => undefined);
      if (job.delayMs) await new Promise((resolve) => setTimeout(resolve, job.delayMs));
      if (job.fail) throw new RiffleError(job.fail as 'NOT_ENOUGH_REPLICAS');
      return { doubled: job.value * 2 };
    } finally {
      state.busy.now--;
    }
  };
  const serve = pipelined({ service: 'test', metrics, logger: createLogger({ level: 'silent' }) }, 'Work', handler, streams);
  server.addService(SERVICE, {
    Work: (call: grpc.ServerDuplexStream<PipelinedRequest<Job>, PipelinedResponse<{ doubled: number }>>) => {
      state.opened++;
      serve(call);
    },
  });
  state.port = await bindServer(server, HOST, 0);
  cleanups.push(() => server.forceShutdown());
  return state;
}

function pipelineTo(port: number): PipelinedStream<Job, { doubled: number }> {
  const Client = grpc.makeGenericClientConstructor(SERVICE, 'Pipeline');
  const client = new Client(`${HOST}:${port}`, grpc.credentials.createInsecure(), channelOptions()) as unknown as grpc.Client & {
    Work(): grpc.ClientDuplexStream<PipelinedRequest<Job>, PipelinedResponse<{ doubled: number }>>;
  };
  const stream = new PipelinedStream<Job, { doubled: number }>(() => client.Work());
  cleanups.push(() => {
    stream.close();
    client.close();
  });
  return stream;
}

async function rejection(promise: Promise<unknown>): Promise<RiffleError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(RiffleError);
  return error as RiffleError;
}

describe('pipelined stream', () => {
  it('matches answers to requests by correlation id when they complete out of order', async () => {
    const server = await startServer();
    const stream = pipelineTo(server.port);
    const finished: number[] = [];
    const calls = [40, 5, 20].map((delayMs, value) =>
      stream.call({ value, delayMs }, 5_000).then((answer) => {
        finished.push(value);
        return answer.doubled;
      }),
    );
    expect(await Promise.all(calls)).toEqual([0, 2, 4]);
    expect(finished).toEqual([1, 2, 0]);
    expect(server.opened).toBe(1);
  });

  it('answers a failed request with its typed error and keeps the stream open', async () => {
    const server = await startServer();
    const stream = pipelineTo(server.port);
    const error = await rejection(stream.call({ value: 1, fail: 'NOT_ENOUGH_REPLICAS' }, 5_000));
    expect(error.errorName).toBe('NOT_ENOUGH_REPLICAS');
    expect(error.retriable).toBe(true);
    expect((await stream.call({ value: 4 }, 5_000)).doubled).toBe(8);
    expect(server.opened).toBe(1);
  });

  it('answers a message without a request INVALID_REQUEST and keeps serving the stream', async () => {
    const server = await startServer();
    const Client = grpc.makeGenericClientConstructor(SERVICE, 'Pipeline');
    const client = new Client(`${HOST}:${server.port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Work(): grpc.ClientDuplexStream<PipelinedRequest<Job>, PipelinedResponse<{ doubled: number }>>;
    };
    cleanups.push(() => client.close());
    const call = client.Work();
    cleanups.push(() => call.cancel());
    const answers: PipelinedResponse<{ doubled: number }>[] = [];
    call.on('data', (answer: PipelinedResponse<{ doubled: number }>) => answers.push(answer));
    call.on('error', () => undefined);
    call.write({ correlationId: 7 });
    call.write({ correlationId: 8, request: { value: 21 } });
    await expect.poll(() => answers.length, { timeout: 5_000 }).toBe(2);
    const byId = new Map(answers.map((answer) => [answer.correlationId, answer]));
    expect(byId.get(7)?.errorCode).toBe(new RiffleError('INVALID_REQUEST').code);
    expect(byId.get(8)?.response).toEqual({ doubled: 42 });
  });

  it('fails an unanswered request with REQUEST_TIMED_OUT and goes on with the next', async () => {
    const server = await startServer();
    const stream = pipelineTo(server.port);
    const error = await rejection(stream.call({ value: 1, hang: true }, 200));
    expect(error.errorName).toBe('REQUEST_TIMED_OUT');
    expect((await stream.call({ value: 3 }, 5_000)).doubled).toBe(6);
  });

  it('holds at most PIPELINED_IN_FLIGHT_MAX requests in the handler and still answers them all', async () => {
    const server = await startServer();
    const stream = pipelineTo(server.port);
    const count = PIPELINED_IN_FLIGHT_MAX * 3;
    const answers = await Promise.all(Array.from({ length: count }, (_, value) => stream.call({ value, delayMs: 5 }, 20_000)));
    expect(answers.map((answer) => answer.doubled)).toEqual(Array.from({ length: count }, (_, value) => value * 2));
    expect(server.busy.max).toBeLessThanOrEqual(PIPELINED_IN_FLIGHT_MAX);
    expect(server.busy.max).toBeGreaterThan(1);
  });

  it('half-closes an idle stream; the next request opens a new one', async () => {
    const server = await startServer();
    const stream = pipelineTo(server.port);
    await stream.call({ value: 1 }, 5_000);
    expect(server.streams.size).toBe(1);
    // The server ends its half once the client's end arrives: the stream leaves the node's open
    // streams, so stopping the node would not wait for it.
    await expect.poll(() => server.streams.size, { timeout: PIPELINED_IDLE_MS + 5_000, interval: 50 }).toBe(0);
    expect(stream.inFlight).toBe(0);
    await stream.call({ value: 2 }, 5_000);
    expect(server.opened).toBe(2);
  });

  it('on a stopping node answers the requests in flight, then ends the stream and refuses new ones', async () => {
    const server = await startServer();
    const stream = pipelineTo(server.port);
    const inFlight = stream.call({ value: 5, delayMs: 200 }, 5_000);
    await expect.poll(() => server.busy.now, { timeout: 5_000 }).toBe(1);
    server.streams.endAll();
    expect((await inFlight).doubled).toBe(10);
    // A request sent before the client saw the old stream end fails with it (retriable); a new
    // stream is refused.
    let refused = await rejection(stream.call({ value: 6 }, 5_000));
    if (refused.errorName === 'NETWORK_EXCEPTION') refused = await rejection(stream.call({ value: 6 }, 5_000));
    expect(refused.errorName).toBe('BROKER_NOT_AVAILABLE');
    expect(refused.retriable).toBe(true);
    expect(server.opened).toBe(2);
  });

  it("fires the handlers' cancel signal when the client cancels the stream", async () => {
    const server = await startServer();
    const stream = pipelineTo(server.port);
    const calls = [1, 2].map((value) => rejection(stream.call({ value, untilCancelled: true }, 10_000)));
    await expect.poll(() => server.busy.now, { timeout: 5_000 }).toBe(2);
    stream.close();
    for (const error of await Promise.all(calls)) expect(error.errorName).toBe('NETWORK_EXCEPTION');
    await expect.poll(() => server.cancelledSeen, { timeout: 5_000 }).toBe(2);
    expect(server.busy.now).toBe(0);
    expect(server.streams.size).toBe(0);
  });

  it('fails the requests in flight as retriable when the server goes away', async () => {
    const server = await startServer();
    const stream = pipelineTo(server.port);
    const calls = [1, 2, 3].map((value) => rejection(stream.call({ value, hang: true }, 10_000)));
    await expect.poll(() => server.busy.now, { timeout: 5_000 }).toBe(3);
    server.server.forceShutdown();
    for (const error of await Promise.all(calls)) {
      expect(error.errorName).toBe('NETWORK_EXCEPTION');
      expect(error.retriable).toBe(true);
    }
    expect(stream.inFlight).toBe(0);
  });
});
