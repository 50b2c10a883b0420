// A gRPC listener bound through bindServer gives every connection and every new stream a
// 16 MiB HTTP/2 receive window instead of the 64 KiB default, so a large request is sent without
// waiting for window updates; and a large request still arrives whole. In process on 127.0.17.1.
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { SERVER_RECEIVE_WINDOW_BYTES, bindServer } from '../../src/rpc/server.js';
import { channelOptions } from '../../src/rpc/client.js';

const HOST = '127.0.17.1';
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

const identity = (value: Buffer): Buffer => value;
const ECHO_SIZE = {
  Size: { path: '/test.Echo/Size', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

async function startServer(): Promise<number> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  server.addService(ECHO_SIZE, {
    Size: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const answer = Buffer.alloc(4);
      answer.writeUInt32BE(call.request.length);
      callback(null, answer);
    },
  });
  const port = await bindServer(server, HOST, 0);
  cleanups.push(() => server.forceShutdown());
  return port;
}

describe('server receive windows', () => {
  it('announces a 16 MiB initial stream window and widens the connection window', async () => {
    const port = await startServer();
    const session = http2.connect(`http://${HOST}:${port}`);
    cleanups.push(() => session.destroy());
    // The listener's first SETTINGS frame carries the defaults; the wider window follows at once.
    await expect.poll(() => session.remoteSettings?.initialWindowSize, { timeout: 5_000 }).toBe(SERVER_RECEIVE_WINDOW_BYTES);
    // The connection window arrives as a WINDOW_UPDATE.
    await expect.poll(() => session.state.remoteWindowSize ?? 0, { timeout: 5_000 }).toBeGreaterThanOrEqual(SERVER_RECEIVE_WINDOW_BYTES);
  });

  it('takes a 12 MiB request whole through a client with the SDK channel options', async () => {
    const port = await startServer();
    const Client = grpc.makeGenericClientConstructor(ECHO_SIZE, 'Echo');
    const client = new Client(`${HOST}:${port}`, grpc.credentials.createInsecure(), channelOptions()) as unknown as {
      Size(request: Buffer, callback: (error: grpc.ServiceError | null, response?: Buffer) => void): void;
      close(): void;
    };
    cleanups.push(() => client.close());
    const request = Buffer.alloc(12 * 1024 * 1024, 7);
    const answer = await new Promise<Buffer>((resolve, reject) => client.Size(request, (error, response) => (error ? reject(error) : resolve(response!))));
    expect(answer.readUInt32BE(0)).toBe(request.length);
  });
});
