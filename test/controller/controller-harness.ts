// A controller on a MemoryMetadataLog with a ManualClock and seeded randomness, plus helpers that
// play a broker's part (register, heartbeat until unfenced).
import { expect } from 'vitest';
import { QuorumController, type QuorumControllerOptions } from '../../controller/quorum-controller.js';
import { ManualClock } from '../../src/util/clock.js';
import { Prng } from '../../src/util/prng.js';
import { silentLogger } from '../../src/util/logger.js';
import { RiffleError, type ErrorName } from '../../src/rpc/errors.js';
import { MemoryMetadataLog } from './memory-metadata-log.js';

export interface Harness {
  clock: ManualClock;
  log: MemoryMetadataLog;
  /** Both controllers replay the same log; `log.activeIndex` says which one is active. */
  controllers: [QuorumController, QuorumController];
  readonly controller: QuorumController;
  readonly standby: QuorumController;
}

export function createHarness(seed = 1, given: Partial<QuorumControllerOptions> = {}): Harness {
  // The offsets topic is left out unless a test asks for it: most tests count partitions.
  const overrides = { ...given, config: { offsetsTopicPartitions: 0, ...given.config } };
  const clock = new ManualClock();
  const log = new MemoryMetadataLog();
  const prng = new Prng(seed);
  const randomBytes = (size: number): Uint8Array => Uint8Array.from({ length: size }, () => prng.int(0, 256));
  const first = new QuorumController({ log: log.view(0), clock, logger: silentLogger, randomBytes, ...overrides });
  const second = new QuorumController({ log: log.view(1), clock, logger: silentLogger, randomBytes, ...overrides, registry: undefined });
  log.attach(first);
  log.attach(second);
  const controllers: [QuorumController, QuorumController] = [first, second];
  return {
    clock, log, controllers,
    get controller() {
      return controllers[log.activeIndex]!;
    },
    get standby() {
      return controllers[1 - log.activeIndex]!;
    },
  };
}

/** Registers a broker and heartbeats it caught up, so it is active; returns its epoch. */
export async function startBroker(harness: Harness, nodeId: number, rack: string, incarnationId = `inc-${nodeId}`, roles = ['broker']): Promise<number> {
  const { brokerEpoch } = await harness.controller.registerBroker({
    nodeId, incarnationId, rack, listener: { host: '127.0.0.1', port: 9000 + nodeId }, roles,
  });
  const response = await heartbeat(harness, nodeId, brokerEpoch);
  expect(response.isFenced).toBe(false);
  return brokerEpoch;
}

export function heartbeat(harness: Harness, nodeId: number, brokerEpoch: number, wantShutdown = false) {
  const metadataOffset = harness.controller.image.offset;
  return harness.controller.brokerHeartbeat({ nodeId, brokerEpoch, metadataOffset, wantShutdown });
}

export async function createTopic(harness: Harness, name: string, numPartitions: number, replicationFactor: number): Promise<string> {
  const { topics } = await harness.controller.createTopics({ topics: [{ name, numPartitions, replicationFactor }] });
  expect(topics[0]!.errorMessage).toBe('');
  return topics[0]!.topicId;
}

export async function expectRiffleError(promise: Promise<unknown>, name: ErrorName): Promise<RiffleError> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(RiffleError);
  expect((error as RiffleError).errorName).toBe(name);
  return error as RiffleError;
}
