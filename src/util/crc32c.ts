// CRC-32C (Castagnoli), the checksum of Kafka's RecordBatch v2. Computed by @node-rs/crc32, which
// uses the processor's CRC32 instructions; a JavaScript table loop would cost a core at our rates.
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

export function crc32c(data: Uint8Array, initial = 0): number {
  return nativeCrc32c(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength), initial) >>> 0;
}
