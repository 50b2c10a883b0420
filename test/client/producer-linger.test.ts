// The producer's linger: a batch is sealed lingerMs after it was opened, not at the next round
// of a timer that was armed for an older batch (which made it wait almost two lingers); and a
// batch sealed by linger moves keyless records to another partition (KIP-480's sticky rule); with
// linger 0, what is sent in one turn of the event loop leaves as one batch at the end of that turn;
// and an application that keeps the event loop busy sending does not hold batches past their linger.
import { stat } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Producer } from '../../src/client/producer.js';
import { recordingClient } from './recording-client.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('producer linger', () => {
  it('seals each batch lingerMs after it opened, however the timer was armed', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'performance', 'Date'] });
    const arrivals: { partition: number; atMs: number }[] = [];
    const producer = new Producer(recordingClient(arrivals), { acks: 1, lingerMs: 100 });
    const start = performance.now();
    const first = producer.send({ topic: 'events', partition: 0, key: null, value: 'a' });
    await vi.advanceTimersByTimeAsync(40);
    // Opened 40 ms after the first batch, while the linger timer is armed for that one.
    const second = producer.send({ topic: 'events', partition: 1, key: null, value: 'b' });
    await vi.advanceTimersByTimeAsync(300);
    await Promise.all([first, second]);
    const arrivedAfter = (partition: number): number => arrivals.find((arrival) => arrival.partition === partition)!.atMs - start;
    expect(arrivedAfter(0)).toBe(100);
    expect(arrivedAfter(1)).toBe(140);
    await producer.close();
  });

  it('with linger 0 sends what one turn sent as one batch, at the end of the turn rather than on a timer', async () => {
    const arrivals: { partition: number; atMs: number }[] = [];
    const producer = new Producer(recordingClient(arrivals), { acks: 1, lingerMs: 0 });
    let sends: Promise<unknown>[] = [];
    // From an I/O callback, Node runs the immediates of the turn before any timer: a timer armed
    // before the sends sees the batch gone only if sealing did not wait for a timer of its own
    // (the shortest one costs a millisecond or more).
    const arrivedBeforeTimer = await new Promise<number>((resolve) => stat('.', () => {
      setTimeout(() => resolve(arrivals.length), 0);
      sends = ['a', 'b', 'c'].map((value) => producer.send({ topic: 'events', partition: 2, key: null, value }));
    }));
    expect(arrivedBeforeTimer).toBe(1);
    const sent = (await Promise.all(sends)) as { partition: number; offset: number }[];
    expect(sent.map((metadata) => [metadata.partition, metadata.offset])).toEqual([[2, 0], [2, 1], [2, 2]]);
    expect(arrivals).toHaveLength(1);
    // However many records the turn sends: the linger check in send() leaves linger 0 alone.
    const many = Array.from({ length: 100 }, (_, index) => producer.send({ topic: 'events', partition: 1, key: null, value: `m${index}` }));
    await Promise.all(many);
    expect(arrivals.filter((arrival) => arrival.partition === 1)).toHaveLength(1);
    await producer.close();
  });

  it('sends a batch whose linger is over while the application keeps the event loop busy sending', async () => {
    const arrivals: { partition: number; atMs: number }[] = [];
    // Far below batchBytesMax: without the check in send, nothing would leave before the loop ends.
    const producer = new Producer(recordingClient(arrivals), { acks: 1, lingerMs: 5 });
    const sends: Promise<unknown>[] = [];
    const start = performance.now();
    // Sends without yielding to the event loop, so no timer can run meanwhile, until four batches
    // left (or for at most 5 s).
    while (arrivals.length < 4 && performance.now() - start < 5_000) {
      sends.push(producer.send({ topic: 'events', key: null, value: 'x' }));
      const next = performance.now() + 0.05;
      while (performance.now() < next);
    }
    const sentDuringLoop = arrivals.length;
    await Promise.all(sends);
    // The stand-in broker notes each batch as it is sent (synchronously, within send): batches
    // left during the loop, one per linger, each on the next sticky partition (four partitions; a
    // producer that is not idempotent keeps one batch per partition in flight, and none is
    // answered before the loop yields).
    expect(sentDuringLoop).toBe(4);
    const during = arrivals.slice(0, sentDuringLoop);
    expect(new Set(during.map((arrival) => arrival.partition)).size).toBe(4);
    for (const [index, arrival] of during.entries()) expect(arrival.atMs - start).toBeGreaterThanOrEqual(5 * (index + 1));
    await producer.close();
  });

  it('moves keyless records to another partition once the sticky batch is sealed by linger', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'performance', 'Date'] });
    const arrivals: { partition: number; atMs: number }[] = [];
    // Far below batchBytesMax: only the linger ever seals these batches.
    const producer = new Producer(recordingClient(arrivals), { acks: 1, lingerMs: 10 });
    const partitionsOfRounds: Set<number>[] = [];
    for (let round = 0; round < 6; round++) {
      const pending = [0, 1, 2].map(() => producer.send({ topic: 'events', key: null, value: `r${round}` }));
      await vi.advanceTimersByTimeAsync(20);
      const sent = await Promise.all(pending);
      partitionsOfRounds.push(new Set(sent.map((metadata) => metadata.partition)));
    }
    // A round's records share one batch, so one partition; each next round is on another one.
    for (const partitions of partitionsOfRounds) expect(partitions.size).toBe(1);
    const partitionOf = partitionsOfRounds.map((partitions) => [...partitions][0]);
    for (let round = 1; round < partitionOf.length; round++) expect(partitionOf[round]).not.toBe(partitionOf[round - 1]);
    expect(arrivals).toHaveLength(6);
    await producer.close();
  });
});
