// Partition choice, compatible with Kafka's default partitioner: a keyed record goes to
// murmur2(key) mod partitions (so the same key lands on the same partition as it would with a
// Java Kafka producer), and records without a key stick to one partition until its batch is
// sent, then move on (KIP-480's sticky partitioner), which keeps batches large.

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit value. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  const seed = 0x9747b28c;
  const m = 0x5bd1e995;
  const r = 24;
  let h = seed ^ length;
  const fours = length >> 2;
  for (let i = 0; i < fours; i++) {
    const i4 = i * 4;
    let k = (data[i4]! & 0xff) | ((data[i4 + 1]! & 0xff) << 8) | ((data[i4 + 2]! & 0xff) << 16) | ((data[i4 + 3]! & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> r;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const tail = fours * 4;
  const remaining = length % 4;
  // Kafka's switch falls through from 3 to 1; written out as guards.
  if (remaining >= 3) h ^= (data[tail + 2]! & 0xff) << 16;
  if (remaining >= 2) h ^= (data[tail + 1]! & 0xff) << 8;
  if (remaining >= 1) {
    h ^= data[tail]! & 0xff;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** Kafka's toPositive: clears the sign bit rather than taking the absolute value. */
export function partitionForKey(key: Uint8Array, partitionCount: number): number {
  return (murmur2(key) & 0x7fffffff) % partitionCount;
}

/** Sticky choice for records without a key, per topic. */
export class StickyPartitioner {
  private readonly current = new Map<string, number>();

  constructor(private readonly random: () => number = Math.random) {}

  partition(topic: string, partitionCount: number): number {
    const sticky = this.current.get(topic);
    if (sticky !== undefined && sticky < partitionCount) return sticky;
    return this.next(topic, partitionCount, -1);
  }

  /** Called when the sticky partition's batch was sealed: move to another partition. */
  batchSealed(topic: string, partition: number, partitionCount: number): void {
    if (this.current.get(topic) === partition) this.next(topic, partitionCount, partition);
  }

  private next(topic: string, partitionCount: number, previous: number): number {
    let chosen = Math.floor(this.random() * partitionCount);
    if (partitionCount > 1 && chosen === previous) chosen = (chosen + 1) % partitionCount;
    this.current.set(topic, chosen);
    return chosen;
  }
}
