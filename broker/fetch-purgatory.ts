// Where long-polling fetches wait: a Fetch that finds fewer than min_bytes parks here until the
// high watermark of one of its partitions moves or its max_wait_ms passes (Kafka's "delayed
// fetch purgatory"). The number of parked fetches is bounded; past the bound a fetch answers at
// once with what it has, which is always correct, only less patient.
import type { Partition } from './partition.js';
import type { CancelSignal } from '../src/rpc/server.js';

export const PARKED_FETCHES_MAX = 10_000;

export class FetchPurgatory {
  private parked = 0;

  get parkedCount(): number {
    return this.parked;
  }

  /**
   * Resolves true when any of the partitions' high watermark advances, false when waitMs passes,
   * the caller cancels, or the purgatory is full.
   */
  wait(partitions: Partition[], waitMs: number, cancelled: CancelSignal): Promise<boolean> {
    if (waitMs <= 0 || partitions.length === 0 || this.parked >= PARKED_FETCHES_MAX) return Promise.resolve(false);
    this.parked++;
    return new Promise((resolve) => {
      const unsubscribes: (() => void)[] = [];
      let done = false;
      const finish = (advanced: boolean): void => {
        if (done) return;
        done = true;
        this.parked--;
        clearTimeout(timer);
        for (const unsubscribe of unsubscribes) unsubscribe();
        resolve(advanced);
      };
      const timer = setTimeout(() => finish(false), waitMs);
      for (const partition of partitions) unsubscribes.push(partition.onHighWatermark(() => finish(true)));
      unsubscribes.push(cancelled.onCancel(() => finish(false)));
    });
  }
}
