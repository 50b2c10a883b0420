// A binary min-heap of timed events for the simulator. Ties in time pop in insertion order, so a
// run depends only on its seed.
import { assert } from '../src/util/assert.js';

/** Pending events at once; the simulator's own bounds keep it far below this. */
export const EVENT_QUEUE_MAX = 1_000_000;

interface Slot<T> {
  readonly time: number;
  readonly seq: number;
  readonly item: T;
}

export class EventQueue<T> {
  private readonly heap: Slot<T>[] = [];
  private seq = 0;

  size(): number {
    return this.heap.length;
  }

  peekTime(): number {
    assert(this.heap.length > 0, 'peek on an empty event queue');
    return this.heap[0]!.time;
  }

  push(time: number, item: T): void {
    assert(this.heap.length < EVENT_QUEUE_MAX, 'event queue full');
    this.heap.push({ time, seq: this.seq++, item });
    this.siftUp(this.heap.length - 1);
  }

  pop(): { time: number; item: T } {
    assert(this.heap.length > 0, 'pop on an empty event queue');
    const top = this.heap[0]!;
    const last = this.heap.pop()!;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
    }
    return { time: top.time, item: top.item };
  }

  private less(a: number, b: number): boolean {
    const x = this.heap[a]!;
    const y = this.heap[b]!;
    return x.time < y.time || (x.time === y.time && x.seq < y.seq);
  }

  private swap(a: number, b: number): void {
    const t = this.heap[a]!;
    this.heap[a] = this.heap[b]!;
    this.heap[b] = t;
  }

  private siftUp(index: number): void {
    let i = index;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private siftDown(index: number): void {
    let i = index;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < this.heap.length && this.less(left, smallest)) smallest = left;
      if (right < this.heap.length && this.less(right, smallest)) smallest = right;
      if (smallest === i) return;
      this.swap(i, smallest);
      i = smallest;
    }
  }
}
