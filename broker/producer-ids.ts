// Producer ids for idempotent producers, and the InitProducerId request any broker answers.
//
// Ids come in blocks from the active controller (AllocateProducerIds, committed to the metadata
// log, so no id is ever handed out twice, even across controller failover). A broker hands out
// ids from its current block, fetches the next block in the background once 90% of the current
// one is used, and makes callers that find both empty share one in-flight request.
//
// InitProducerId: producer id -1 gets a new id at epoch 0; an existing id and epoch get the same
// id at epoch + 1 (KIP-360's epoch bump, which fences batches of the older epoch on every
// partition the new epoch reaches), or a new id when the epoch would pass int16 max.
//
// Departures from Kafka: there is no transaction coordinator, so a non-empty transactional id is
// INVALID_REQUEST, and the bump of an idempotent producer's epoch happens here rather than in the
// client (Kafka's idempotent producer bumps locally; its InitProducerId with an id is for
// transactional producers). Without a coordinator nothing remembers which epoch is current, so a
// bump is not checked against it: the partitions fence older epochs.
import { RiffleError, toRiffleError } from '../src/rpc/errors.js';
import { Counter, type Registry } from '../src/metrics/index.js';
import { assert } from '../src/util/assert.js';
import type { Logger } from '../src/util/logger.js';
import type { ControllerClient } from './controller-client.js';
import type { AllocateProducerIdsResponse__Output } from '../src/rpc/generated/riffle/internal/AllocateProducerIdsResponse.js';
import type { InitProducerIdRequest__Output } from '../src/rpc/generated/riffle/v1/InitProducerIdRequest.js';
import type { InitProducerIdResponse } from '../src/rpc/generated/riffle/v1/InitProducerIdResponse.js';

/** The largest producer epoch (int16 in the batch header). */
export const PRODUCER_EPOCH_MAX = 0x7fff;
/** Share of a block used before the next one is fetched in the background. */
export const PREFETCH_USED_FRACTION = 0.9;
/** Rounds of block fetching one caller may wait through before giving up (others may drain new blocks first). */
export const ALLOCATION_ROUNDS_MAX = 5;
/** Kafka's "no producer id". */
export const NO_PRODUCER_ID = -1;

export interface ProducerIdBlock {
  firstProducerId: number;
  size: number;
}

/** Asks the controller for a block; throws when it cannot. */
export type ProducerIdBlockSource = () => Promise<ProducerIdBlock>;

interface CurrentBlock {
  next: number;
  end: number;
  size: number;
}

export class ProducerIdAllocator {
  private current: CurrentBlock | null = null;
  private prefetched: ProducerIdBlock | null = null;
  private inFlight: Promise<void> | null = null;
  /** One past the highest id of any block received: ids below were allocated to some broker. */
  private allocatedEnd = 0;

  constructor(
    private readonly source: ProducerIdBlockSource,
    private readonly logger?: Logger,
    private readonly onBlock?: () => void,
  ) {}

  /** One past the highest id this broker has seen allocated. */
  get knownAllocatedEnd(): number {
    return this.allocatedEnd;
  }

  async nextProducerId(): Promise<number> {
    for (let round = 0; round < ALLOCATION_ROUNDS_MAX; round++) {
      const id = this.take();
      if (id !== null) {
        this.maybePrefetch();
        return id;
      }
      await this.fetchBlock();
    }
    throw new RiffleError('COORDINATOR_LOAD_IN_PROGRESS', 'Producer id blocks were used up by other requests; retry.');
  }

  private take(): number | null {
    if ((this.current === null || this.current.next >= this.current.end) && this.prefetched !== null) {
      const block = this.prefetched;
      this.prefetched = null;
      this.current = { next: block.firstProducerId, end: block.firstProducerId + block.size, size: block.size };
    }
    if (this.current === null || this.current.next >= this.current.end) return null;
    return this.current.next++;
  }

  private maybePrefetch(): void {
    const current = this.current;
    if (current === null || this.prefetched !== null || this.inFlight !== null) return;
    const used = current.size - (current.end - current.next);
    if (used < current.size * PREFETCH_USED_FRACTION) return;
    this.fetchBlock().catch((error: unknown) => this.logger?.warn({ err: error }, 'prefetching a producer id block failed'));
  }

  /** Fetches one block; concurrent callers share the request. */
  private fetchBlock(): Promise<void> {
    this.inFlight ??= this.source()
      .then(
        (block) => this.accept(block),
        (error: unknown) => {
          const cause = toRiffleError(error);
          throw new RiffleError('COORDINATOR_LOAD_IN_PROGRESS', `No producer id block from the controller yet: ${cause.errorName}: ${cause.message}`, { cause });
        },
      )
      .finally(() => {
        this.inFlight = null;
      });
    return this.inFlight;
  }

  private accept(block: ProducerIdBlock): void {
    assert(Number.isSafeInteger(block.firstProducerId) && block.firstProducerId >= 0, () => `producer id block starts at ${block.firstProducerId}`);
    assert(Number.isSafeInteger(block.size) && block.size > 0, () => `producer id block of size ${block.size}`);
    // Blocks only move forward: the controller commits them in order.
    assert(block.firstProducerId >= this.allocatedEnd, () => `producer id block ${block.firstProducerId} is below ${this.allocatedEnd}`);
    this.allocatedEnd = block.firstProducerId + block.size;
    this.onBlock?.();
    if (this.current === null || this.current.next >= this.current.end) {
      this.current = { next: block.firstProducerId, end: this.allocatedEnd, size: block.size };
    } else {
      assert(this.prefetched === null, 'a second block was fetched while one was waiting');
      this.prefetched = block;
    }
  }
}

/** Blocks from the active controller, on behalf of this broker's current registration. */
export function controllerProducerIdSource(controller: ControllerClient, brokerId: number, brokerEpoch: () => number): ProducerIdBlockSource {
  return async () => {
    const epoch = brokerEpoch();
    if (epoch < 0) throw new RiffleError('COORDINATOR_LOAD_IN_PROGRESS', 'This broker has not registered with the controller yet.');
    const response = await controller.call<AllocateProducerIdsResponse__Output>('AllocateProducerIds', { brokerId, brokerEpoch: epoch });
    return { firstProducerId: response.firstProducerId, size: response.size };
  };
}

export class ProducerIdMetrics {
  readonly initProducerId: Counter<'outcome'>;
  readonly blocks: Counter;

  constructor(registry: Registry) {
    this.initProducerId = new Counter({
      name: 'riffle_broker_init_producer_id_total',
      help: 'InitProducerId answers, by outcome: new, bump, new-after-epoch-max, or the error name.',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.blocks = new Counter({ name: 'riffle_broker_producer_id_blocks_total', help: 'Producer id blocks received from the controller.', registers: [registry] });
  }
}

export interface InitProducerIdDeps {
  allocator: ProducerIdAllocator;
  /** One past the highest producer id the cluster has allocated, from the metadata image. */
  allocatedEnd: () => number;
  metrics?: ProducerIdMetrics;
}

/** Answers InitProducerId; errors go in error_code, as in Kafka. */
export async function initProducerId(deps: InitProducerIdDeps, request: InitProducerIdRequest__Output): Promise<InitProducerIdResponse> {
  try {
    const { producerId, producerEpoch, outcome } = await decide(deps, request);
    deps.metrics?.initProducerId.inc({ outcome });
    return { errorCode: 0, producerId, producerEpoch, throttleTimeMs: 0 };
  } catch (error) {
    const riffleError = toRiffleError(error);
    deps.metrics?.initProducerId.inc({ outcome: riffleError.errorName });
    return { errorCode: riffleError.code, errorMessage: riffleError.message, producerId: NO_PRODUCER_ID, producerEpoch: -1, throttleTimeMs: 0 };
  }
}

async function decide(deps: InitProducerIdDeps, request: InitProducerIdRequest__Output): Promise<{ producerId: number; producerEpoch: number; outcome: string }> {
  if (request.transactionalId) throw new RiffleError('INVALID_REQUEST', 'Transactions are not supported.');
  const { producerId, producerEpoch } = request;
  if (producerId === NO_PRODUCER_ID) return { producerId: await deps.allocator.nextProducerId(), producerEpoch: 0, outcome: 'new' };
  if (!Number.isSafeInteger(producerId) || producerId < 0 || !Number.isInteger(producerEpoch) || producerEpoch < 0 || producerEpoch > PRODUCER_EPOCH_MAX) {
    throw new RiffleError('INVALID_REQUEST', `producer id ${producerId} with epoch ${producerEpoch} is not a valid producer.`);
  }
  // An id nobody was given could later go to another producer, which would then share it.
  if (producerId >= Math.max(deps.allocatedEnd(), deps.allocator.knownAllocatedEnd)) {
    throw new RiffleError('UNKNOWN_PRODUCER_ID', `Producer id ${producerId} was never allocated; ask for a new one with producer id -1.`);
  }
  if (producerEpoch >= PRODUCER_EPOCH_MAX) return { producerId: await deps.allocator.nextProducerId(), producerEpoch: 0, outcome: 'new-after-epoch-max' };
  return { producerId, producerEpoch: producerEpoch + 1, outcome: 'bump' };
}

/** Everything InitProducerId needs on a broker: blocks from the controller, metrics. */
export function brokerProducerIds(options: {
  registry: Registry;
  controller: ControllerClient;
  brokerId: number;
  brokerEpoch: () => number;
  allocatedEnd: () => number;
  logger: Logger;
}): InitProducerIdDeps {
  const metrics = new ProducerIdMetrics(options.registry);
  const source = controllerProducerIdSource(options.controller, options.brokerId, options.brokerEpoch);
  const allocator = new ProducerIdAllocator(source, options.logger, () => metrics.blocks.inc());
  return { allocator, allocatedEnd: options.allocatedEnd, metrics };
}
