// The last appends of a broker's partition logs, kept in memory so that reads at the log end are
// served without reading the file back. Followers fetch exactly what their leader appended last,
// and so do consumers tailing a topic: each such read otherwise costs a lookup, a read syscall, a
// fresh buffer and a CRC check of every batch read, on the leader's event loop, between the
// append and the followers' copies (Kafka serves them from the page cache with sendfile, which
// gRPC cannot use). One budget of bytes covers every log of the broker; the oldest appends, of
// any log, go first. A log's entries hold its appends in offset order, each exactly as written
// (offsets and leader epoch stamped, CRCs verified before the write), and only appends that
// continue the entries before them: a truncation drops the entries it reaches.
import { Counter, Gauge, type Registry } from '../../src/metrics/index.js';

/**
 * What a broker keeps of its logs' last appends. Small on purpose: followers and tailing consumers
 * read an append within milliseconds, and what the cache holds should die young (see `add`).
 */
export const TAIL_CACHE_BYTES_DEFAULT = 1024 * 1024;

type CounterChild = ReturnType<Counter<'result'>['labels']>;

export class TailCacheMetrics {
  readonly hits: CounterChild;
  readonly misses: CounterChild;
  readonly bytes: Gauge;

  constructor(registry: Registry) {
    const reads = new Counter({
      name: 'riffle_log_tail_cache_reads_total',
      help: 'Reads at the end of a partition log, by result: hit (served from the appends kept in memory) or miss (read from the file).',
      labelNames: ['result'],
      registers: [registry],
    });
    this.hits = reads.labels({ result: 'hit' });
    this.misses = reads.labels({ result: 'miss' });
    this.hits.inc(0);
    this.misses.inc(0);
    this.bytes = new Gauge({ name: 'riffle_log_tail_cache_bytes', help: 'Bytes of recent appends kept in memory for reads at the log end, over all partition logs of the broker.', registers: [registry] });
  }
}

interface Entry {
  readonly tail: LogTail;
  readonly baseOffset: number;
  readonly nextOffset: number;
  /** Empty once the entry is dropped, so a dead entry waiting in the queue holds no buffer. */
  bytes: Buffer;
  /** What keeping `bytes` holds in memory: the whole buffer they are a small part of, if so. */
  readonly held: number;
  /** Record batches in `bytes`. */
  readonly batches: number;
  live: boolean;
}

const EMPTY = Buffer.alloc(0);

/** A read served from memory: the bytes of whole appends and the offset after them. */
export interface TailRead {
  records: Buffer;
  nextOffset: number;
}

export class TailCache {
  /** Every live entry, and dead ones not yet passed, oldest first. */
  private queue: Entry[] = [];
  private head = 0;
  /** Dropped entries still in the queue (a truncation or a closed log drops them, not eviction). */
  private dead = 0;
  private liveBytes = 0;

  constructor(
    readonly bytesMax: number = TAIL_CACHE_BYTES_DEFAULT,
    private readonly metrics: TailCacheMetrics | null = null,
  ) {}

  /** The view of one partition log. */
  forLog(): LogTail {
    return new LogTail(this);
  }

  get bytes(): number {
    return this.liveBytes;
  }

  /** @internal Takes a new entry (at most bytesMax) in, evicting the oldest ones past the budget. */
  admit(entry: Entry): void {
    this.queue.push(entry);
    this.liveBytes += entry.held;
    while (this.liveBytes > this.bytesMax) {
      const oldest = this.queue[this.head++]!;
      if (!oldest.live) {
        this.dead--;
        continue;
      }
      // A log's entries are in the order they were admitted, so its oldest live one is this.
      oldest.tail.dropOldest(oldest);
      this.drop(oldest);
    }
    // Passed entries, or many dropped ones (truncations and closed logs drop them, not the
    // budget): the queue sheds them.
    if ((this.head > 1024 && this.head * 2 > this.queue.length) || (this.dead > 64 && this.dead * 2 > this.queue.length - this.head)) {
      this.queue = this.queue.slice(this.head).filter((queued) => queued.live);
      this.head = 0;
      this.dead = 0;
    }
    this.metrics?.bytes.set(this.liveBytes);
  }

  /** @internal A live entry its log dropped (truncation, close); it stays queued until passed or shed. */
  forget(entry: Entry): void {
    this.drop(entry);
    this.dead++;
  }

  private drop(entry: Entry): void {
    entry.live = false;
    entry.bytes = EMPTY;
    this.liveBytes -= entry.held;
    this.metrics?.bytes.set(this.liveBytes);
  }

  /** @internal */
  countRead(hit: boolean): void {
    if (hit) this.metrics?.hits.inc();
    else this.metrics?.misses.inc();
  }
}

export class LogTail {
  private entries: Entry[] = [];

  constructor(private readonly cache: TailCache) {}

  /**
   * Keeps an append that was just written at `baseOffset`. The bytes are kept as they are, not
   * copied (the caller must not change them afterwards): a copy is a new buffer outside V8's heap
   * per append, and buffers that outlive a young-generation collection or two are freed only by
   * full collections, which V8 then starts every few seconds (10-16 ms each with a 64 MiB cache
   * of copies). An append that does not continue the kept ones starts over.
   */
  add(baseOffset: number, nextOffset: number, bytes: Buffer, batches: number): void {
    // A view of a much larger buffer (one partition's batches in a request for many) holds all
    // of it, and counts so: the budget bounds the memory kept, not just the bytes served.
    const held = bytes.byteLength * 2 < bytes.buffer.byteLength ? bytes.buffer.byteLength : bytes.byteLength;
    const last = this.entries.at(-1);
    if ((last !== undefined && last.nextOffset !== baseOffset) || held > this.cache.bytesMax) this.clear();
    if (held > this.cache.bytesMax) return;
    const entry: Entry = { tail: this, baseOffset, nextOffset, bytes, held, batches, live: true };
    // Pushed first: admitting may evict this log's oldest entries.
    this.entries.push(entry);
    this.cache.admit(entry);
  }

  /**
   * The whole appends from `fetchOffset` on, when one starts exactly there: at most `maxBytes`
   * (but at least the first append when it is one batch, as a file read serves at least one
   * batch), ending at or before `limit`. Null when the file must answer instead: the offset is
   * not where a kept append starts, the first append crosses `limit`, or it holds several
   * batches and exceeds `maxBytes` (the file read would split it).
   */
  read(fetchOffset: number, maxBytes: number, limit: number): TailRead | null {
    const index = this.indexOf(fetchOffset);
    const first = index < 0 ? undefined : this.entries[index]!;
    if (first === undefined || first.nextOffset > limit || (first.bytes.length > maxBytes && first.batches > 1)) {
      this.cache.countRead(false);
      return null;
    }
    let end = index + 1;
    let bytes = first.bytes.length;
    while (end < this.entries.length) {
      const next = this.entries[end]!;
      if (next.nextOffset > limit || bytes + next.bytes.length > maxBytes) break;
      bytes += next.bytes.length;
      end++;
    }
    this.cache.countRead(true);
    const last = this.entries[end - 1]!;
    const records = end === index + 1 ? first.bytes : Buffer.concat(this.entries.slice(index, end).map((entry) => entry.bytes), bytes);
    return { records, nextOffset: last.nextOffset };
  }

  /** Drops the appends that reach `offset` or beyond (the log was cut there). */
  truncate(offset: number): void {
    while (this.entries.length > 0 && this.entries.at(-1)!.nextOffset > offset) this.cache.forget(this.entries.pop()!);
  }

  /** Drops every append (the log closed or failed). */
  clear(): void {
    for (const entry of this.entries) this.cache.forget(entry);
    this.entries = [];
  }

  /** @internal The cache evicts this log's oldest entry. */
  dropOldest(entry: Entry): void {
    if (this.entries[0] === entry) this.entries.shift();
  }

  private indexOf(offset: number): number {
    for (let index = this.entries.length - 1; index >= 0; index--) {
      const base = this.entries[index]!.baseOffset;
      if (base === offset) return index;
      if (base < offset) return -1;
    }
    return -1;
  }
}
