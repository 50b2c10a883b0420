// Producer ids on a broker: ids come from controller blocks in order, the next block is fetched
// at 90% use, concurrent callers share one block request, and InitProducerId hands out new ids,
// bumps epochs (a new id past int16 max) and refuses what it cannot serve.
import { describe, expect, it } from 'vitest';
import { PRODUCER_EPOCH_MAX, ProducerIdAllocator, initProducerId, type ProducerIdBlock } from '../../broker/producer-ids.js';
import { ERRORS, RiffleError } from '../../src/rpc/errors.js';

const BLOCK_SIZE = 10;

/** A controller stand-in handing out consecutive blocks; `hold` delays answers until released. */
function blockSource(): { source: () => Promise<ProducerIdBlock>; requests: () => number; release: () => void; hold: boolean; fail: boolean } {
  let next = 0;
  let requests = 0;
  const waiting: (() => void)[] = [];
  const control = {
    hold: false,
    fail: false,
    requests: () => requests,
    release: () => {
      for (const resolve of waiting.splice(0)) resolve();
    },
    source: async (): Promise<ProducerIdBlock> => {
      requests++;
      if (control.hold) await new Promise<void>((resolve) => waiting.push(resolve));
      if (control.fail) throw new RiffleError('NOT_CONTROLLER', 'no controller');
      const block = { firstProducerId: next, size: BLOCK_SIZE };
      next += BLOCK_SIZE;
      return block;
    },
  };
  return control;
}

function request(producerId: number, producerEpoch: number, transactionalId = ''): { transactionalId: string; transactionTimeoutMs: number; producerId: number; producerEpoch: number } {
  return { transactionalId, transactionTimeoutMs: 0, producerId, producerEpoch };
}

describe('ProducerIdAllocator', () => {
  it('hands out consecutive ids and fetches the next block once 90% of the current one is used', async () => {
    const control = blockSource();
    const allocator = new ProducerIdAllocator(control.source);
    const ids: number[] = [];
    for (let index = 0; index < BLOCK_SIZE - 1; index++) ids.push(await allocator.nextProducerId());
    expect(ids).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(control.requests()).toBe(2);
    ids.push(await allocator.nextProducerId(), await allocator.nextProducerId());
    expect(ids.slice(-2)).toEqual([9, 10]);
    expect(control.requests()).toBe(2);
    expect(allocator.knownAllocatedEnd).toBe(2 * BLOCK_SIZE);
  });

  it('lets concurrent callers share one block request', async () => {
    const control = blockSource();
    control.hold = true;
    const allocator = new ProducerIdAllocator(control.source);
    const pending = Array.from({ length: 5 }, () => allocator.nextProducerId());
    control.release();
    expect((await Promise.all(pending)).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4]);
    expect(control.requests()).toBe(1);
  });

  it('answers COORDINATOR_LOAD_IN_PROGRESS, which clients retry, while no block can be had', async () => {
    const control = blockSource();
    control.fail = true;
    const allocator = new ProducerIdAllocator(control.source);
    await expect(allocator.nextProducerId()).rejects.toMatchObject({ errorName: 'COORDINATOR_LOAD_IN_PROGRESS', retriable: true });
    control.fail = false;
    expect(await allocator.nextProducerId()).toBe(0);
  });
});

describe('InitProducerId', () => {
  it('gives a new id at epoch 0, bumps a known id, and moves to a new id past the largest epoch', async () => {
    const control = blockSource();
    const deps = { allocator: new ProducerIdAllocator(control.source), allocatedEnd: () => 0 };
    const first = await initProducerId(deps, request(-1, -1));
    expect(first).toMatchObject({ errorCode: 0, producerId: 0, producerEpoch: 0 });
    expect(await initProducerId(deps, request(0, 0))).toMatchObject({ errorCode: 0, producerId: 0, producerEpoch: 1 });
    expect(await initProducerId(deps, request(0, PRODUCER_EPOCH_MAX))).toMatchObject({ errorCode: 0, producerId: 1, producerEpoch: 0 });
  });

  it('refuses transactions, bad fields and ids never allocated', async () => {
    const control = blockSource();
    const deps = { allocator: new ProducerIdAllocator(control.source), allocatedEnd: () => 50 };
    expect((await initProducerId(deps, request(-1, -1, 'txn'))).errorCode).toBe(ERRORS.INVALID_REQUEST.code);
    expect((await initProducerId(deps, request(3, -4))).errorCode).toBe(ERRORS.INVALID_REQUEST.code);
    expect((await initProducerId(deps, request(3, PRODUCER_EPOCH_MAX + 1))).errorCode).toBe(ERRORS.INVALID_REQUEST.code);
    expect((await initProducerId(deps, request(50, 0))).errorCode).toBe(ERRORS.UNKNOWN_PRODUCER_ID.code);
    expect(await initProducerId(deps, request(49, 0))).toMatchObject({ errorCode: 0, producerId: 49, producerEpoch: 1 });
  });
});
