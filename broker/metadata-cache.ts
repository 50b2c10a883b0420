// The broker's copy of the cluster metadata: the MetadataImage built from the controller's
// FetchMetadata stream (a snapshot, then committed batches in order). Components subscribe to
// image changes; requests read the current image. The broker also remembers how far the
// controller's log had committed when it last heard, to know when it has caught up.
import { MetadataImage } from '../controller/index.js';
import { assert } from '../src/util/assert.js';
import { Conditions } from '../src/util/conditions.js';
import type { MetadataDelivery__Output } from '../src/rpc/generated/riffle/internal/MetadataDelivery.js';

export type ImageListener = (image: MetadataImage, previous: MetadataImage) => void;

export class MetadataCache {
  private current = MetadataImage.EMPTY;
  private committed = -1;
  private readonly listeners = new Set<ImageListener>();
  private readonly conditions = new Conditions();

  get image(): MetadataImage {
    return this.current;
  }

  get offset(): number {
    return this.current.offset;
  }

  /** The controller's committed offset at its last delivery (-1 before the first). */
  get committedOffset(): number {
    return this.committed;
  }

  /** Caught up once the image has reached what the controller had committed when it last spoke. */
  get caughtUp(): boolean {
    return this.committed >= 0 && this.current.offset >= this.committed;
  }

  apply(delivery: MetadataDelivery__Output): void {
    const previous = this.current;
    if (delivery.snapshot) {
      const image = MetadataImage.fromSnapshot(delivery.snapshot);
      if (image.offset <= previous.offset) return;
      this.current = image;
    } else if (delivery.batch) {
      const { offset, batch } = delivery.batch;
      if (offset <= previous.offset) return;
      assert(batch !== null && batch !== undefined, 'a metadata delivery carries a batch');
      this.current = previous.apply(offset, batch.records);
    }
    this.committed = Math.max(this.committed, delivery.committedOffset);
    if (this.current !== previous) for (const listener of this.listeners) listener(this.current, previous);
    this.conditions.changed();
  }

  onChange(listener: ImageListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves true once the image satisfies `predicate`, false after timeoutMs. */
  waitFor(predicate: (image: MetadataImage) => boolean, timeoutMs: number): Promise<boolean> {
    return this.conditions.waitFor(() => predicate(this.current), timeoutMs);
  }
}
