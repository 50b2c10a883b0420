// The orders example: order events keyed by order id, read by two independent consumers, an
// order-processing consumer and a notification consumer. The notification consumer crashes right
// after `order-1-placed`; `order-1-shipped` and `order-1-delivered` are written while it is down;
// when it comes back it resumes from its stored position and still sends `order-1-shipped`.
//
//   node examples/orders/run.mjs kafka   [--bootstrap host:port]   consumer groups and committed offsets
//   node examples/orders/run.mjs kinesis [--bootstrap host:port]   a stream, checkpoints and leases
//
// Needs a running cluster (`npm start`) and the built SDK (`npm run build`). Exits 0 when the
// notification consumer sent order-1-shipped after its restart and nothing was lost.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Admin, GroupConsumer, KinesisClient, KinesisWorker, Producer, RiffleClient } from '../../dist/src/client/index.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const variant = process.argv[2];
if (variant !== 'kafka' && variant !== 'kinesis') {
  console.error('usage: node examples/orders/run.mjs kafka|kinesis [--bootstrap host:port]');
  process.exit(2);
}
const bootstrapFlag = process.argv.indexOf('--bootstrap');
const bootstrap = bootstrapFlag > 0 ? process.argv[bootstrapFlag + 1] : process.env.RIFFLE_BOOTSTRAP ?? '127.0.0.1:9094';
// A fresh topic or stream per run, so the example can run again on the same cluster.
const suffix = Date.now().toString(36);
const name = `orders-${variant}-${suffix}`;
const FAILOVER_TIME_MS = 3_000;
const DEADLINE_MS = 60_000;

const client = new RiffleClient({ bootstrap });
const log = (line) => console.log(`[${variant}] ${line}`);
const processed = [];

// ---- the order events (the "order system") ----
const kinesis = new KinesisClient(client);
const producer = variant === 'kafka' ? new Producer(client, { acks: 'all' }) : null;
async function send(events) {
  for (const value of events) {
    const orderId = value.split('-').slice(0, 2).join('-');
    if (producer) await producer.send({ topic: name, key: orderId, value });
    else await kinesis.putRecord(name, { partitionKey: orderId, data: value });
    log(`order system   wrote ${value} (key ${orderId})`);
  }
}

// ---- the order-processing consumer, in this process ----
async function startOrderProcessing() {
  const handle = (value) => {
    processed.push(value);
    log(`order processing handled ${value}`);
  };
  if (variant === 'kafka') {
    const consumer = new GroupConsumer(client, { groupId: `order-processing-${suffix}`, maxWaitMs: 200 });
    consumer.subscribe({ topics: [name], fromBeginning: true });
    await consumer.run({ eachMessage: async ({ message }) => handle(message.value.toString('utf8')) });
    return () => consumer.stop();
  }
  const worker = new KinesisWorker(client, kinesis, {
    applicationName: `order-processing-${suffix}`, streamName: name, workerId: 'order-processor-1', initialPosition: 'TRIM_HORIZON',
    retrieval: { type: 'polling', idleTimeBetweenReadsMs: 100 },
    processorFactory: () => ({
      async processRecords(records, checkpointer) {
        for (const record of records) handle(Buffer.from(record.data).toString('utf8'));
        await checkpointer.checkpoint();
      },
    }),
  });
  await worker.start();
  return () => worker.stop();
}

// ---- the notification consumer, as a child process that can crash ----
function startNotifier(crashAfter) {
  const child = spawn(process.execPath, [path.join(HERE, 'notification-consumer.mjs')], {
    env: { ...process.env, ORDERS_NOTIFIER: JSON.stringify({ variant, bootstrap, name, group: `notifications-${suffix}`, crashAfter, failoverTimeMs: FAILOVER_TIME_MS }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const notifier = { child, sent: [], exited: false, running: false };
  createInterface({ input: child.stdout }).on('line', (line) => {
    const event = JSON.parse(line);
    if (event.event === 'notify') {
      notifier.sent.push(event.value);
      log(`notification   sent for ${event.value}`);
    } else if (event.event === 'crash') log(`notification   consumer CRASHES (kill -9) right after ${event.after}`);
    else if (event.event === 'running') notifier.running = true;
  });
  child.once('exit', () => (notifier.exited = true));
  return notifier;
}

async function until(condition, what) {
  const deadline = Date.now() + DEADLINE_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let stopOrderProcessing;
let notifier;
let exitCode = 1;
try {
  if (variant === 'kafka') await new Admin(client).createTopic({ name, partitions: 3 });
  else await kinesis.createStream(name, { shardCount: 2 });
  log(`created ${variant === 'kafka' ? 'topic' : 'stream'} ${name}`);
  stopOrderProcessing = await startOrderProcessing();
  notifier = startNotifier('order-1-placed');
  await until(() => notifier.running, 'the notification consumer to start');
  await send(['order-1-placed', 'order-2-placed']);
  await until(() => notifier.exited, 'the notification consumer to crash');
  await send(['order-1-shipped', 'order-2-shipped', 'order-1-delivered']);
  log('notification   consumer restarts (same group / application)');
  const before = notifier.sent.length;
  notifier = startNotifier(undefined);
  await until(() => notifier.sent.includes('order-1-delivered') && notifier.sent.includes('order-2-shipped'), 'the restarted notification consumer to catch up');
  await until(() => processed.includes('order-1-delivered') && processed.includes('order-2-shipped'), 'order processing to catch up');
  const afterRestart = notifier.sent;
  const expected = ['order-1-placed', 'order-2-placed', 'order-1-shipped', 'order-2-shipped', 'order-1-delivered'];
  const order1 = processed.filter((value) => value.startsWith('order-1-'));
  const resumed = afterRestart.includes('order-1-shipped');
  const complete = expected.every((value) => processed.includes(value));
  const inOrder = JSON.stringify(order1) === JSON.stringify(['order-1-placed', 'order-1-shipped', 'order-1-delivered']);
  log(`crashed after ${before} notification(s); after the restart it sent ${JSON.stringify(afterRestart)}`);
  if (resumed && complete && inOrder) {
    log('OK: the notification consumer resumed from its stored position and sent order-1-shipped; order processing saw every event, order-1 in order');
    exitCode = 0;
  } else log(`FAILED: resumed=${resumed} complete=${complete} inOrder=${inOrder}`);
} catch (error) {
  log(`FAILED: ${error?.message ?? error}`);
} finally {
  if (notifier && !notifier.exited) {
    notifier.child.kill('SIGTERM');
    await until(() => notifier.exited, 'the notification consumer to stop').catch(() => notifier.child.kill('SIGKILL'));
  }
  await stopOrderProcessing?.().catch(() => undefined);
  await producer?.close();
  client.close();
}
process.exit(exitCode);
