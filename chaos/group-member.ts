// One consumer group member of the chaos workload, run as its own process so the harness can
// kill -9 it like a crashed application. It consumes with the SDK's GroupConsumer, commits what
// it processed every COMMIT_INTERVAL_MS, and writes each operation as a JSON line on stdout for
// the harness's history: polls, commits (ok, or info when the outcome is unknown), and
// assignment changes (ok when partitions are assigned, info when they are revoked or lost).
//
// Usage: node group-member.js <bootstrap> <group> <topic> [rack]. SIGTERM leaves the group
// gracefully. With a rack (an AZ) the member fetches from an in-sync replica there when the
// leader is elsewhere (KIP-392).
import { GroupConsumer, RiffleClient, type TopicPartition } from '../src/client/index.js';
import { toRiffleError } from '../src/rpc/errors.js';

const COMMIT_INTERVAL_MS = 300;

const [bootstrap, group, topic, rack] = process.argv.slice(2);
if (!bootstrap || !group || !topic) {
  process.stderr.write('usage: group-member <bootstrap> <group> <topic> [rack]\n');
  process.exit(2);
}

/** One operation as a JSON line, stamped with the wall clock the harness shares on this host. */
function emit(op: object): void {
  process.stdout.write(`${JSON.stringify({ at: Date.now(), ...op })}\n`);
}

const client = new RiffleClient({ bootstrap, requestTimeoutMs: 10_000, retry: { deadlineMs: 30_000 } });
const consumer = new GroupConsumer(client, { groupId: group, autoCommit: false, maxWaitMs: 200, rebalanceTimeoutMs: 10_000, rack });
/** The next offset to process of each owned partition, as far as the handler got. */
const processed = new Map<number, number>();
/** When each partition's processed offset was reached: no commit of it can predate that. */
const processedAt = new Map<number, number>();
const committed = new Map<number, number>();

consumer.on('assigned', (payload) => {
  const partitions = (payload as TopicPartition[]).map((tp) => tp.partition);
  emit({ type: 'ok', f: 'assign', group, partitions });
});
consumer.on('revoked', (payload) => {
  const partitions = (payload as TopicPartition[]).map((tp) => tp.partition);
  // The SDK committed what was processed before releasing; the outcome is not reported to us.
  for (const partition of partitions) {
    const offset = processed.get(partition);
    if (offset !== undefined) emit({ type: 'info', f: 'commit', group, partition, offset });
    processed.delete(partition);
    committed.delete(partition);
  }
  emit({ type: 'info', f: 'assign', group, partitions });
});
consumer.on('lost', (payload) => {
  const partitions = (payload as TopicPartition[]).map((tp) => tp.partition);
  for (const partition of partitions) {
    // A revocation the loss cut short had the SDK commit what was processed; that commit may have
    // landed, any time since the offset was reached (chaos az-partition seed 4: the next owner
    // started where this member had processed, which no recorded commit explained).
    const offset = processed.get(partition);
    if (offset !== undefined && committed.get(partition) !== offset) emit({ type: 'info', f: 'commit', group, partition, offset, at: processedAt.get(partition) });
    processed.delete(partition);
    committed.delete(partition);
  }
  emit({ type: 'info', f: 'assign', group, partitions });
});
consumer.on('error', () => undefined);

consumer.subscribe({ topic, fromBeginning: true });
await consumer.run({
  eachBatch: async ({ batch }) => {
    // Once leaving, nothing more is processed: ownership is already released in the history.
    if (stopping) return;
    emit({ type: 'ok', f: 'poll', records: batch.messages.map((message) => ({ partition: message.partition, offset: message.offset, value: message.value?.toString() ?? '' })) });
    processed.set(batch.partition, batch.messages[batch.messages.length - 1]!.offset + 1);
    processedAt.set(batch.partition, Date.now());
  },
});

let stopping = false;
let commitsSent = 0;

/** Commits what was processed and not committed yet, recording each outcome. */
async function commitDue(): Promise<void> {
  const due = [...processed].filter(([partition, offset]) => committed.get(partition) !== offset);
  if (due.length === 0) return;
  const invokedAt = Date.now();
  // In flight from here: it may take effect before the answer comes (chaos controller-kill seed 4:
  // a commit answered 10 s late had already set the next owner's start). The value pairs the
  // invocation with its completion.
  const value = `commit-${commitsSent++}`;
  for (const [partition, offset] of due) emit({ type: 'invoke', f: 'commit', group, partition, offset, value });
  try {
    await consumer.commitOffsets(due.map(([partition, offset]) => ({ topic, partition, offset })));
    for (const [partition, offset] of due) {
      committed.set(partition, offset);
      emit({ type: 'ok', f: 'commit', group, partition, offset, value });
    }
  } catch (error) {
    // Unknown outcome: the commit may have taken effect any time since it was sent, so it is
    // placed in the history there (it can precede the next owner's start, as Jepsen's info ops).
    for (const [partition, offset] of due) emit({ type: 'info', f: 'commit', group, partition, offset, value, error: toRiffleError(error).errorName, at: invokedAt });
  }
}

const commitLoop = (async () => {
  while (!stopping) {
    await new Promise((resolve) => setTimeout(resolve, COMMIT_INTERVAL_MS));
    if (!stopping) await commitDue();
  }
})();

process.on('SIGTERM', () => {
  stopping = true;
  void commitLoop
    .then(() => commitDue())
    // stop() revokes everything owned (the 'revoked' listener above records the release) before
    // the coordinator hears of the leave, so no new owner can be recorded while this member still
    // counts as one; partitions given to it meanwhile are not taken up.
    .then(() => consumer.stop())
    .catch(() => undefined)
    .finally(() => {
      client.close();
      process.exit(0);
    });
});
