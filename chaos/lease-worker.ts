// One worker of the chaos workload's Kinesis-like application, run as its own process so the
// harness can kill -9 it like a crashed application. It runs the SDK's KinesisWorker (server-side
// leases and checkpoints), checkpoints after every batch it processed, and writes each operation
// as a JSON line on stdout for the history: records processed ('get'), checkpoints (ok, or info
// when the outcome is unknown), leases ('lease': ok with the checkpoint it resumes after when
// acquired, info when released, lost or ended) and shards read to their end ('shard-end').
//
// Usage: node lease-worker.js <bootstrap> <app> <stream> <polling|fan-out> <failover-ms>.
// SIGTERM stops it gracefully (checkpoint and release every lease, then leave).
import { KinesisClient, KinesisWorker, RiffleClient } from '../src/client/index.js';
import { toRiffleError } from '../src/rpc/errors.js';

const [bootstrap, app, stream, retrieval, failover] = process.argv.slice(2);
if (!bootstrap || !app || !stream || (retrieval !== 'polling' && retrieval !== 'fan-out') || !failover) {
  process.stderr.write('usage: lease-worker <bootstrap> <app> <stream> <polling|fan-out> <failover-ms>\n');
  process.exit(2);
}

/** One operation as a JSON line, stamped with the wall clock the harness shares on this host. */
function emit(op: object): void {
  process.stdout.write(`${JSON.stringify({ ...op, group: app, at: Date.now() })}\n`);
}

const client = new RiffleClient({ bootstrap, requestTimeoutMs: 10_000, retry: { deadlineMs: 30_000 } });
const worker = new KinesisWorker(client, new KinesisClient(client), {
  applicationName: app,
  streamName: stream,
  failoverTimeMs: Number(failover),
  initialPosition: 'TRIM_HORIZON',
  retrieval: retrieval === 'polling' ? { type: 'polling', idleTimeBetweenReadsMs: 100 } : { type: 'fan-out', consumerName: `${app}-efo` },
  processorFactory: (shardId) => ({
    async processRecords(records, checkpointer) {
      if (records.length === 0) return;
      emit({ type: 'ok', f: 'get', shard: shardId, kinesisRecords: records.map((record) => ({ sequence: record.sequenceNumber, value: Buffer.from(record.data).toString() })) });
      const sequence = records[records.length - 1]!.sequenceNumber;
      try {
        await checkpointer.checkpoint(sequence);
        emit({ type: 'ok', f: 'checkpoint', shard: shardId, sequence });
      } catch (error) {
        // Lost the lease meanwhile, or the coordinator moved: the checkpoint may or may not exist.
        emit({ type: 'info', f: 'checkpoint', shard: shardId, sequence, error: toRiffleError(error).errorName });
      }
    },
  }),
  onEvent: (event) => {
    if (event.type === 'lease-acquired') emit({ type: 'ok', f: 'lease', shard: event.shardId, sequence: event.checkpoint ?? '' });
    else if (event.type === 'shard-ended') {
      emit({ type: 'ok', f: 'shard-end', shard: event.shardId });
      emit({ type: 'info', f: 'lease', shard: event.shardId });
    } else if (event.type === 'lease-released' || event.type === 'lease-lost') emit({ type: 'info', f: 'lease', shard: event.shardId, error: event.type });
  },
});

// The coordinator may be moving (a fault in force): keep trying to join, within a bound.
for (let attempt = 0; ; attempt++) {
  try {
    await worker.start();
    break;
  } catch (error) {
    if (attempt >= 200) throw error;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

process.on('SIGTERM', () => {
  void worker
    .stop()
    .catch(() => undefined)
    .finally(() => {
      client.close();
      process.exit(0);
    });
});
