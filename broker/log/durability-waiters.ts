// Appends waiting for their offsets to become durable (flush policy `ack`). Kept sorted by
// offset, so one fdatasync round resolves a prefix. The queue is bounded: past
// DURABILITY_WAITERS_MAX a new waiter is refused with a retriable error instead of growing
// memory without limit while the disk is slow.
import { RiffleError } from '../../src/rpc/errors.js';
import { assert } from '../../src/util/assert.js';

export const DURABILITY_WAITERS_MAX = 100_000;

interface Waiter {
  offset: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

export class DurabilityWaiters {
  private waiters: Waiter[] = [];

  get size(): number {
    return this.waiters.length;
  }

  /** A promise resolved once offsets below `offsetExclusive` are durable. */
  add(offsetExclusive: number): Promise<void> {
    if (this.waiters.length >= DURABILITY_WAITERS_MAX) {
      return Promise.reject(new RiffleError('THROTTLING_QUOTA_EXCEEDED', `more than ${DURABILITY_WAITERS_MAX} appends wait for fsync`));
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = { offset: offsetExclusive, resolve, reject };
      const waiters = this.waiters;
      // Appends arrive in offset order, so this is almost always a push.
      let index = waiters.length;
      while (index > 0 && waiters[index - 1]!.offset > offsetExclusive) index--;
      if (index === waiters.length) waiters.push(waiter);
      else waiters.splice(index, 0, waiter);
    });
  }

  hasAbove(offset: number): boolean {
    return this.waiters.length > 0 && this.waiters[this.waiters.length - 1]!.offset > offset;
  }

  resolveUpTo(durableOffset: number): void {
    let count = 0;
    while (count < this.waiters.length && this.waiters[count]!.offset <= durableOffset) count++;
    if (count === 0) return;
    const done = this.waiters.splice(0, count);
    for (const waiter of done) waiter.resolve();
    assert(this.waiters.length === 0 || this.waiters[0]!.offset > durableOffset, 'waiters out of order');
  }

  rejectAbove(offset: number, error: Error): void {
    let keep = this.waiters.length;
    while (keep > 0 && this.waiters[keep - 1]!.offset > offset) keep--;
    const rejected = this.waiters.splice(keep);
    for (const waiter of rejected) waiter.reject(error);
  }

  rejectAll(error: Error): void {
    const rejected = this.waiters;
    this.waiters = [];
    for (const waiter of rejected) waiter.reject(error);
  }
}
