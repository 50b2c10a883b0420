// The notification consumer of the orders example, as its own process so it can crash. It reads
// the order events and "sends" one notification per event (a JSON line on stdout), recording its
// progress after each one: a committed offset of consumer group `notifications` (Kafka-like), or
// a checkpoint of application `notifications` (Kinesis-like). With `crashAfter` set it kills
// itself (SIGKILL, no clean shutdown) right after handling that event.
//
// Settings come as JSON in ORDERS_NOTIFIER: { variant: 'kafka' | 'kinesis', bootstrap, name
// (topic or stream), group (group id or application name), crashAfter?, failoverTimeMs? }.
import { GroupConsumer, KinesisClient, KinesisWorker, RiffleClient } from '../../dist/src/client/index.js';

const settings = JSON.parse(process.env.ORDERS_NOTIFIER ?? '{}');
const client = new RiffleClient({ bootstrap: settings.bootstrap });

function notify(value) {
  process.stdout.write(`${JSON.stringify({ event: 'notify', value, t: Date.now() })}\n`);
  if (value === settings.crashAfter) {
    process.stdout.write(`${JSON.stringify({ event: 'crash', after: value, t: Date.now() })}\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}

let stop;
if (settings.variant === 'kafka') {
  const consumer = new GroupConsumer(client, { groupId: settings.group, autoCommit: false, maxWaitMs: 200 });
  consumer.subscribe({ topics: [settings.name], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      // Commit first, then act: the position is stored before the crash can happen.
      await consumer.commitOffsets([{ topic, partition, offset: message.offset + 1 }]);
      notify(message.value.toString('utf8'));
    },
  });
  stop = () => consumer.stop();
} else {
  const worker = new KinesisWorker(client, new KinesisClient(client), {
    applicationName: settings.group,
    streamName: settings.name,
    // A stable worker id: a restarted worker takes its own leases back at once.
    workerId: 'notifier-1',
    failoverTimeMs: settings.failoverTimeMs,
    initialPosition: 'TRIM_HORIZON',
    retrieval: { type: 'polling', idleTimeBetweenReadsMs: 100 },
    processorFactory: () => ({
      async processRecords(records, checkpointer) {
        for (const record of records) {
          await checkpointer.checkpoint(record.sequenceNumber);
          notify(Buffer.from(record.data).toString('utf8'));
        }
      },
    }),
  });
  await worker.start();
  stop = () => worker.stop();
}
process.stdout.write(`${JSON.stringify({ event: 'running', t: Date.now() })}\n`);
process.once('SIGTERM', () => {
  stop().then(() => {
    client.close();
    process.exit(0);
  }, () => process.exit(1));
});
