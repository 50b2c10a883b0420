// The broker's metadata stream gets away from a controller that does not answer: one whose
// process is frozen (a listener that accepts connections and never speaks, as the kernel does for
// a SIGSTOPped process) and one that is up but follows no Raft leader (it sends no heartbeats).
// In-process gRPC servers on 127.0.15.x serve the real FetchMetadata handler.
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ControllerClient, METADATA_STREAM_IDLE_MS } from '../../broker/controller-client.js';
import { controllerHandlers, type ControllerServiceDeps } from '../../controller/controller-service.js';
import { NO_NODE } from '../../raft/index.js';
import { RpcMetrics, bindServer } from '../../src/rpc/server.js';
import { serviceClient } from '../../src/rpc/proto.js';
import { createLogger } from '../../src/util/logger.js';
import type { MetadataDelivery__Output } from '../../src/rpc/generated/riffle/internal/MetadataDelivery.js';

const logger = createLogger({ level: 'silent' });
const cleanups: (() => void | Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A controller whose image is at `offset` and whose Raft node knows leader `leader` (NO_NODE: none). */
async function startController(host: string, offset: number, leader: number): Promise<string> {
  const deps = {
    controller: { image: { offset } },
    stateMachine: { batchesFrom: () => [], subscribe: () => () => undefined },
    raft: () => ({ status: () => ({ leader }) }),
    voters: [],
  } as unknown as ControllerServiceDeps;
  const server = new grpc.Server();
  server.addService(
    serviceClient('riffle/internal/controller.proto', 'riffle.internal.Controller').service,
    controllerHandlers({ service: 'controller', metrics: new RpcMetrics(new Registry()), logger }, deps) as grpc.UntypedServiceImplementation,
  );
  const port = await bindServer(server, host, 0);
  cleanups.push(() => void server.forceShutdown());
  return `${host}:${port}`;
}

/** A process that accepts connections and never answers (what a SIGSTOPped node looks like). */
async function startFrozen(host: string): Promise<string> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => void sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return `${host}:${(server.address() as net.AddressInfo).port}`;
}

function follow(addresses: string[]): { deliveries: MetadataDelivery__Output[]; silent: string[] } {
  const voters = addresses.map((address, index) => {
    const [host, port] = address.split(':');
    return { nodeId: index + 1, host: host!, port: Number(port) };
  });
  const client = new ControllerClient(voters, logger);
  cleanups.push(() => client.close());
  const deliveries: MetadataDelivery__Output[] = [];
  const silent: string[] = [];
  client.followMetadata(7, () => 0, (delivery) => void deliveries.push(delivery), (address) => void silent.push(address));
  return { deliveries, silent };
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return Date.now() - started;
}

describe('ControllerClient.followMetadata', () => {
  it('leaves a frozen controller for the next voter within the idle timeout', async () => {
    const frozen = await startFrozen('127.0.15.1');
    const live = await startController('127.0.15.2', 41, 2);
    const { deliveries, silent } = follow([frozen, live]);
    const tookMs = await waitUntil(() => deliveries.length > 0, 3 * METADATA_STREAM_IDLE_MS);
    expect(silent).toEqual([frozen]);
    // The live controller's heartbeats: deliveries without payload that carry its committed offset.
    expect(deliveries[0]).toMatchObject({ committedOffset: 41 });
    expect(deliveries[0]!.snapshot ?? deliveries[0]!.batch).toBeUndefined();
    expect(tookMs).toBeGreaterThanOrEqual(METADATA_STREAM_IDLE_MS - 500);
    // It stays with the live controller, which keeps the stream alive once a second.
    const count = deliveries.length;
    await waitUntil(() => deliveries.length >= count + 2, 5_000);
    expect(silent).toEqual([frozen]);
  }, 30_000);

  it('leaves a controller that follows no Raft leader (it sends no heartbeats)', async () => {
    const leaderless = await startController('127.0.15.3', 5, NO_NODE);
    const live = await startController('127.0.15.4', 9, 4);
    const { deliveries, silent } = follow([leaderless, live]);
    await waitUntil(() => deliveries.some((delivery) => delivery.committedOffset === 9), 3 * METADATA_STREAM_IDLE_MS);
    expect(silent).toEqual([leaderless]);
    expect(deliveries.every((delivery) => delivery.committedOffset === 9)).toBe(true);
  }, 30_000);

  it('a controller with a leader sends a heartbeat at once and then every second', async () => {
    const live = await startController('127.0.15.5', 3, 1);
    const { deliveries } = follow([live]);
    const firstMs = await waitUntil(() => deliveries.length >= 1, 2_000);
    expect(firstMs).toBeLessThan(1_000);
    await waitUntil(() => deliveries.length >= 3, 4_000);
  }, 30_000);
});
