// send(record, callback): Kafka's callback form, which spares a promise per record. Each record's
// callback is called exactly once, with its metadata or with the error that failed it, never
// from inside send() itself; a callback that throws does not keep the batch's other records
// from theirs.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Producer, type RecordMetadata } from '../../src/client/producer.js';
import type { RiffleError } from '../../src/rpc/errors.js';
import { recordingClient } from './recording-client.js';

afterEach(() => {
  vi.restoreAllMocks();
});

interface Outcome {
  error: Error | null;
  metadata?: RecordMetadata;
}

describe('producer send with a callback', () => {
  it('calls each callback once with the record offset, in record order', async () => {
    const producer = new Producer(recordingClient(), { acks: 1, lingerMs: 1 });
    const outcomes: Outcome[][] = [[], [], []];
    for (const [index, outcome] of outcomes.entries()) {
      const returned = producer.send({ topic: 'events', partition: 2, key: null, value: `v${index}` }, (error, metadata) => outcome.push({ error, metadata }));
      expect(returned).toBeUndefined();
    }
    await producer.flush();
    expect(outcomes).toEqual([0, 1, 2].map((offset) => [{ error: null, metadata: { topic: 'events', partition: 2, offset } }]));
    // The promise form still answers in the same producer (the stand-in broker numbers batches, not records).
    await expect(producer.send({ topic: 'events', partition: 2, key: null, value: 'p' })).resolves.toEqual({ topic: 'events', partition: 2, offset: 1 });
    await producer.close();
  });

  it('reports a refused record through its callback, after send() returned', async () => {
    const producer = new Producer(recordingClient(), { acks: 1, lingerMs: 1 });
    const outcomes: Outcome[] = [];
    producer.send({ topic: 'events', partition: 9, key: null, value: 'x' }, (error) => outcomes.push({ error }));
    expect(outcomes).toHaveLength(0);
    await vi.waitFor(() => expect(outcomes).toHaveLength(1), { timeout: 5_000 });
    expect((outcomes[0]!.error as RiffleError).errorName).toBe('UNKNOWN_TOPIC_OR_PARTITION');
    await producer.close();
    const afterClose: Outcome[] = [];
    producer.send({ topic: 'events', partition: 0, key: null, value: 'late' }, (error) => afterClose.push({ error }));
    await vi.waitFor(() => expect(afterClose).toHaveLength(1), { timeout: 5_000 });
    expect((afterClose[0]!.error as RiffleError).errorName).toBe('INVALID_REQUEST');
  });

  it('keeps calling the other callbacks of a batch when one throws, and rethrows that later', async () => {
    const deferred: (() => void)[] = [];
    const realQueueMicrotask = globalThis.queueMicrotask;
    // Capture only the producer's rethrow; everything else is queued as usual.
    vi.spyOn(globalThis, 'queueMicrotask').mockImplementation((task: () => void) => {
      if (deferred.length === 0 && task.toString().includes('throw')) deferred.push(task);
      else realQueueMicrotask(task);
    });
    const producer = new Producer(recordingClient(), { acks: 1, lingerMs: 1 });
    const called: number[] = [];
    for (let index = 0; index < 3; index++) {
      producer.send({ topic: 'events', partition: 1, key: null, value: `v${index}` }, () => {
        called.push(index);
        if (index === 0) throw new Error('callback bug');
      });
    }
    await producer.flush();
    expect(called).toEqual([0, 1, 2]);
    expect(deferred).toHaveLength(1);
    expect(() => deferred[0]!()).toThrow('callback bug');
    await producer.close();
  });
});
