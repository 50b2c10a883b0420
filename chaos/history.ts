// The history of a chaos run: every client operation as Jepsen records it, an `invoke` when it
// starts and one completion: `ok` (it happened, with what the system answered), `fail` (it
// definitely did not happen) or `info` (unknown: it may or may not have happened). Faults and
// consumer (re)assignments are recorded too, so the checker can tell which gaps are excused.
// Kept in memory for the checker and appended to history.jsonl as it goes.
import { appendFileSync } from 'node:fs';

export type OpType = 'invoke' | 'ok' | 'fail' | 'info';

export type OpFunction =
  /** A producer's write of one unique value. */
  | 'send'
  /** Values a consumer received, with their partition and offsets. */
  | 'poll'
  /** A consumer (re)starts on partitions: from here its positions may jump. */
  | 'assign'
  /** A consumer group's offset commit. */
  | 'commit'
  /** A fault starting or ending. */
  | 'nemesis'
  /** Kinesis: a PutRecords write of one unique value (ok with its shard and sequence number). */
  | 'put'
  /** Kinesis: records a reader received from one shard, in order. */
  | 'get'
  /** Kinesis: a reader read a shard to its end (SHARD_END). */
  | 'shard-end'
  /** Kinesis: a reader (re)starts: from here its positions may jump. */
  | 'reader-start'
  /** Kinesis application: a worker's lease of a shard (ok: acquired, resuming after `sequence`; info: given up). */
  | 'lease'
  /** Kinesis application: a checkpoint of a shard at `sequence` (ok, or info when unknown). */
  | 'checkpoint'
  /** A metadata operation through the controller (create or delete a topic) or a broker (describe). */
  | 'metadata';

export interface Op {
  /** Order in the history. */
  index: number;
  type: OpType;
  f: OpFunction;
  /** The client (e.g. "producer-2", "consumer-1") or "nemesis". */
  process: string;
  /** Milliseconds since the run started. */
  timeMs: number;
  value?: string;
  topic?: string;
  partition?: number;
  offset?: number;
  /** poll: what was received, in order. */
  records?: { partition: number; offset: number; value: string }[];
  /** commit with type info: the outcome is unknown for any offset from this one to `offset`. */
  fromOffset?: number;
  /** assign: the partitions and where reading starts; commit: the group (Kinesis: the application). */
  partitions?: number[];
  group?: string;
  error?: string;
  /** nemesis: what fault, on what. */
  fault?: string;
  /** Kinesis: the shard and sequence number of a put or checkpoint, the shard of a get, lease or shard-end. */
  shard?: string;
  sequence?: string;
  /** get: what was received from `shard`, in order. */
  kinesisRecords?: { sequence: string; value: string }[];
  /** metadata: which operation on the topic named by `value`; a describe's answer in `exists`. */
  action?: 'create' | 'delete' | 'describe';
  exists?: boolean;
}

export class History {
  readonly ops: Op[] = [];
  private readonly startedMs = Date.now();
  private written = 0;

  constructor(private readonly file?: string) {}

  /**
   * Records an operation. `atMs` (wall clock) is when it happened if it was observed elsewhere,
   * e.g. in a group member's process: lines from different processes can arrive out of order.
   */
  add(op: Omit<Op, 'index' | 'timeMs'>, atMs = Date.now()): Op {
    const full: Op = { index: this.ops.length, timeMs: atMs - this.startedMs, ...op };
    this.ops.push(full);
    return full;
  }

  /** Appends the operations recorded since the last flush to the history file. */
  flush(): void {
    if (!this.file || this.written === this.ops.length) return;
    const lines = this.ops.slice(this.written).map((op) => JSON.stringify(op)).join('\n');
    appendFileSync(this.file, `${lines}\n`);
    this.written = this.ops.length;
  }

  get elapsedMs(): number {
    return Date.now() - this.startedMs;
  }
}
