// Collects the records of one metadata batch while the controller decides them, and offers the
// image as it would be with the records so far, so a later decision in the same batch sees the
// earlier ones (e.g. leader elections after a broker is fenced). That image is a scratch copy:
// its offsets are made up and it is never published; only the committed batch, replayed through
// MetadataImage.apply, becomes the controller's image.
import { assert } from '../src/util/assert.js';
import type { MetadataRecord } from '../src/rpc/generated/riffle/internal/MetadataRecord.js';
import { METADATA_BATCH_RECORDS_MAX } from './metadata-codec.js';
import type { MetadataImage } from './metadata-image.js';

export class BatchBuilder {
  private readonly all: MetadataRecord[] = [];
  private pending: MetadataRecord[] = [];
  private scratch: MetadataImage;

  constructor(base: MetadataImage) {
    this.scratch = base;
  }

  add(record: MetadataRecord | null): void {
    if (record === null) return;
    assert(this.all.length < METADATA_BATCH_RECORDS_MAX, 'metadata batch is full');
    this.all.push(record);
    this.pending.push(record);
  }

  /** The base image with every record added so far (applied lazily, one apply per read). */
  get image(): MetadataImage {
    if (this.pending.length > 0) {
      this.scratch = this.scratch.apply(this.scratch.offset + 1, this.pending);
      this.pending = [];
    }
    return this.scratch;
  }

  get records(): MetadataRecord[] {
    return [...this.all];
  }

  get size(): number {
    return this.all.length;
  }
}
