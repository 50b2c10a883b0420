// The client-side commands: `cluster status`, `topic ...`, `produce` and `consume`. Each one
// talks to the cluster through the SDK, takes --bootstrap (env RIFFLE_BOOTSTRAP), and offers
// --json where a script would want it.
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { Admin, GroupAdmin, GroupConsumer, PartitionConsumer, Producer, RiffleClient, type Acks, type ConsumerRecord, type OffsetResetTarget } from '../client/index.js';
import { DEFAULT_BOOTSTRAP } from '../client/client.js';
import { RiffleError } from '../rpc/errors.js';
import { registerStreamCommands } from './stream-commands.js';
import { collect, parseIntegerOption, parseKeyValues, printJson, printTable, reportError } from './output.js';

function bootstrapOption(command: Command): Command {
  return command.option('--bootstrap <addresses>', 'any node\'s gRPC address(es), comma-separated', process.env.RIFFLE_BOOTSTRAP ?? DEFAULT_BOOTSTRAP);
}

/** Runs an action with a client, closing it afterwards and turning errors into exit code 1. */
async function withClient(name: string, bootstrap: string, action: (client: RiffleClient) => Promise<void>): Promise<void> {
  const client = new RiffleClient({ bootstrap, retry: { deadlineMs: 10_000 } });
  try {
    await action(client);
  } catch (error) {
    reportError(name, error);
  } finally {
    client.close();
  }
}

export function registerClientCommands(program: Command): void {
  registerClusterCommands(program);
  registerTopicCommands(program);
  registerProduceCommand(program);
  registerConsumeCommand(program);
  registerGroupCommands(program);
  registerStreamCommands(program);
}

function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('Inspect the cluster.');
  bootstrapOption(cluster.command('status').description('Nodes, listeners and topics; exits 1 when the cluster is unreachable.'))
    .option('--json', 'print JSON')
    .action(async (options: { bootstrap: string; json?: boolean }) =>
      withClient('cluster status', options.bootstrap, async (client) => {
        const admin = new Admin(client);
        const description = await admin.describeCluster();
        const topics = await admin.listTopics({ includeInternal: true });
        if (options.json) {
          printJson({ ...description, topics });
          return;
        }
        const quorum = description.quorum;
        process.stdout.write(`cluster ${description.clusterId}, active controller ${description.controllerId}, metadata offset ${description.metadataOffset}\n`);
        process.stdout.write(`partitions ${description.partitionCount}, under-replicated ${description.underReplicatedPartitions}, offline ${description.offlinePartitions}\n\n`);
        if (quorum) {
          printTable(
            ['VOTER', 'CONTROLLER', 'ROLE', 'LAG'],
            quorum.voters.map((voter) => [voter.nodeId, `${voter.host}:${voter.port}`, voter.nodeId === quorum.leaderId ? 'leader' : 'follower', voter.lag < 0 ? '?' : voter.lag]),
          );
          process.stdout.write(`(Raft term ${quorum.term}, commit offset ${quorum.commitOffset})\n\n`);
        } else {
          process.stdout.write('controller quorum: not reachable\n\n');
        }
        printTable(
          ['NODE', 'STATE', 'EPOCH', 'ROLES', 'AZ', 'GRPC', 'HTTP'],
          description.brokers.map((broker) => [broker.brokerId, broker.state, broker.brokerEpoch, broker.roles.join(','), broker.rack, `${broker.host}:${broker.port}`, broker.httpEndpoint]),
        );
        process.stdout.write('\n');
        printTable(['TOPIC', 'PARTITIONS', 'RF'], topics.map((topic) => [topic.name, topic.numPartitions, topic.replicationFactor]));
      }),
    );
}

function registerTopicCommands(program: Command): void {
  const topic = program.command('topic').description('Create, list, describe and delete topics.');
  bootstrapOption(topic.command('create <name>').description('Create a topic.'))
    .option('--partitions <n>', 'number of partitions (broker default when absent)', parseIntegerOption)
    .option('--replication-factor <n>', 'replicas per partition (broker default when absent)', parseIntegerOption)
    .option('--config <key=value>', 'topic config, repeatable', collect, [])
    .option('--json', 'print JSON')
    .action(async (name: string, options: { bootstrap: string; partitions?: number; replicationFactor?: number; config: string[]; json?: boolean }) =>
      withClient('topic create', options.bootstrap, async (client) => {
        const created = await new Admin(client).createTopic({
          name,
          partitions: options.partitions,
          replicationFactor: options.replicationFactor,
          configs: parseKeyValues(options.config),
        });
        if (options.json) printJson({ name, ...created });
        else process.stdout.write(`created topic ${name} (${created.partitions} partitions, replication factor ${created.replicationFactor})\n`);
      }),
    );
  bootstrapOption(topic.command('list').description('List topics.'))
    .option('--internal', 'include internal topics')
    .option('--json', 'print JSON')
    .action(async (options: { bootstrap: string; internal?: boolean; json?: boolean }) =>
      withClient('topic list', options.bootstrap, async (client) => {
        const topics = await new Admin(client).listTopics({ includeInternal: options.internal });
        if (options.json) printJson(topics);
        else for (const listed of topics) process.stdout.write(`${listed.name}\n`);
      }),
    );
  bootstrapOption(topic.command('describe <name>').description('Partitions, leaders, replicas and offsets of a topic.'))
    .option('--json', 'print JSON')
    .action(async (name: string, options: { bootstrap: string; json?: boolean }) =>
      withClient('topic describe', options.bootstrap, async (client) => {
        const description = await new Admin(client).describeTopic(name);
        if (options.json) {
          printJson(description);
          return;
        }
        const configs = description.configs.map((entry) => `${entry.name}=${entry.value}`).join(',') || '-';
        process.stdout.write(`topic ${description.name} id ${description.topicId} kind ${description.kind} partitions ${description.partitions.length} rf ${description.replicationFactor} configs ${configs}\n\n`);
        printTable(
          ['PARTITION', 'LEADER', 'EPOCH', 'REPLICAS', 'ISR', 'START', 'HIGH-WATERMARK', 'END', 'BYTES'],
          description.partitions.map((partition) => [
            partition.partitionIndex, partition.leaderId, partition.leaderEpoch, partition.replicaNodes.join(','), partition.isrNodes.join(','),
            partition.logStartOffset, partition.highWatermark, partition.logEndOffset, partition.sizeBytes,
          ]),
        );
      }),
    );
  bootstrapOption(topic.command('delete <name>').description('Delete a topic and its data.'))
    .action(async (name: string, options: { bootstrap: string }) =>
      withClient('topic delete', options.bootstrap, async (client) => {
        await new Admin(client).deleteTopic(name);
        process.stdout.write(`deleted topic ${name}\n`);
      }),
    );
}

function parseAcks(value: string): Acks {
  if (value === 'all' || value === '-1') return -1;
  if (value === '0') return 0;
  if (value === '1') return 1;
  throw new Error(`--acks must be 0, 1 or all, got '${value}'`);
}

function registerProduceCommand(program: Command): void {
  bootstrapOption(program.command('produce <topic>').description('Produce one record per line of standard input; exits 0 only when every record is acknowledged.'))
    .option('--key-separator <sep>', 'split each line at the first separator into key and value')
    .option('--acks <acks>', '0, 1 or all', parseAcks, -1 as Acks)
    .option('--partition <n>', 'write every record to this partition', parseIntegerOption)
    .option('--linger-ms <ms>', 'how long a batch waits for more records', parseIntegerOption, 5)
    .option('--json', 'print a JSON summary')
    .action(async (topic: string, options: { bootstrap: string; keySeparator?: string; acks: Acks; partition?: number; lingerMs: number; json?: boolean }) =>
      withClient('produce', options.bootstrap, async (client) => {
        // Fail at once on an unknown topic rather than wait for it to appear.
        await client.topicMetadata(topic);
        const producer = new Producer(client, { acks: options.acks, lingerMs: options.lingerMs });
        const pending: Promise<unknown>[] = [];
        let failed = 0;
        let firstError: unknown;
        const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
        for await (const line of lines) {
          const separatorAt = options.keySeparator ? line.indexOf(options.keySeparator) : -1;
          const key = separatorAt >= 0 ? line.slice(0, separatorAt) : null;
          const value = separatorAt >= 0 ? line.slice(separatorAt + options.keySeparator!.length) : line;
          pending.push(
            producer.send({ topic, key, value, partition: options.partition }).catch((error: unknown) => {
              failed++;
              firstError ??= error;
            }),
          );
        }
        await Promise.all(pending);
        await producer.close();
        const summary = { topic, records: pending.length, acknowledged: pending.length - failed, failed };
        if (options.json) printJson(summary);
        else process.stderr.write(`produced ${summary.acknowledged} of ${summary.records} records to ${topic}\n`);
        if (failed > 0) throw firstError instanceof RiffleError ? firstError : new Error(`${failed} records were not acknowledged`);
      }),
    );
}

function registerConsumeCommand(program: Command): void {
  bootstrapOption(program.command('consume <topic>').description('Print records of a topic, one value per line; with --group, as a member of a consumer group that resumes where the group left off.'))
    .option('--group <group>', 'consume as a member of this consumer group; what was printed is committed before exit')
    .option('--from-beginning', 'start at the earliest offset instead of the end (with --group: only where the group has no committed offset)')
    .option('--offset <offset>', 'start at this offset in every partition (not with --group)', parseIntegerOption)
    .option('--partition <n>', 'read only this partition (not with --group)', parseIntegerOption)
    .option('--max-messages <n>', 'exit after this many records', parseIntegerOption)
    .option('--timeout-ms <ms>', 'exit when no record arrives for this long', parseIntegerOption)
    .option('--json', 'print each record as a JSON line (partition, offset, timestamp, key, value, headers)')
    .action(async (topic: string, options: ConsumeOptions) =>
      withClient('consume', options.bootstrap, async (client) => {
        if (options.group !== undefined) {
          if (options.offset !== undefined || options.partition !== undefined) throw new RiffleError('INVALID_REQUEST', '--offset and --partition do not apply with --group.');
          await consumeAsGroup(client, topic, options);
          return;
        }
        const consumer = new PartitionConsumer(client, {
          topic,
          partitions: options.partition === undefined ? undefined : [options.partition],
          from: options.offset ?? (options.fromBeginning ? 'earliest' : 'latest'),
          autoOffsetReset: options.fromBeginning ? 'earliest' : 'latest',
          maxWaitMs: 500,
        });
        const stop = new AbortController();
        process.once('SIGINT', () => stop.abort());
        let printed = 0;
        let lastRecordAt = Date.now();
        while (!stop.signal.aborted) {
          const records = await consumer.poll();
          if (records.length > 0) lastRecordAt = Date.now();
          for (const record of records) {
            if (options.maxMessages !== undefined && printed >= options.maxMessages) break;
            printRecord(record, options.json);
            printed++;
          }
          if (options.maxMessages !== undefined && printed >= options.maxMessages) break;
          if (options.timeoutMs !== undefined && Date.now() - lastRecordAt >= options.timeoutMs) break;
        }
      }),
    );
}

interface ConsumeOptions {
  bootstrap: string;
  group?: string;
  fromBeginning?: boolean;
  offset?: number;
  partition?: number;
  maxMessages?: number;
  timeoutMs?: number;
  json?: boolean;
}

function printRecord(record: ConsumerRecord, json: boolean | undefined): void {
  process.stdout.write(json ? `${JSON.stringify(recordJson(record))}\n` : `${record.value?.toString('utf8') ?? ''}\n`);
}

/**
 * `consume --group`: joins the group, prints records as the group assigns partitions, and on
 * exit (max messages, timeout, Ctrl-C) commits exactly what it printed and leaves the group.
 */
async function consumeAsGroup(client: RiffleClient, topic: string, options: ConsumeOptions): Promise<void> {
  await client.topicMetadata(topic);
  const consumer = new GroupConsumer(client, { groupId: options.group!, autoOffsetReset: options.fromBeginning ? 'earliest' : 'latest', maxWaitMs: 500 });
  consumer.subscribe({ topics: [topic] });
  let printed = 0;
  let lastRecordAt = Date.now();
  let failure: unknown;
  let timer: NodeJS.Timeout | undefined;
  const finished = new Promise<void>((resolve) => {
    const done = (): void => resolve();
    process.once('SIGINT', done);
    consumer.on('error', (error) => {
      failure ??= error;
      done();
    });
    timer = setInterval(() => {
      if (options.timeoutMs !== undefined && Date.now() - lastRecordAt >= options.timeoutMs) done();
    }, 50);
    void consumer.run({
      eachMessage: async ({ message }) => {
        printRecord(message, options.json);
        printed++;
        lastRecordAt = Date.now();
        // Stopping here, inside the handler, means no later record reaches it: exactly the
        // printed records count as processed and get committed.
        if (options.maxMessages !== undefined && printed >= options.maxMessages) {
          void consumer.stop();
          done();
        }
      },
    }).catch((error: unknown) => {
      failure ??= error;
      done();
    });
  });
  await finished;
  clearInterval(timer);
  await consumer.stop();
  if (failure) throw failure;
}

function registerGroupCommands(program: Command): void {
  const group = program.command('group').description('List, describe, reset and delete consumer groups.');
  bootstrapOption(group.command('list').description('Consumer groups of the cluster with their state.'))
    .option('--json', 'print JSON')
    .action(async (options: { bootstrap: string; json?: boolean }) =>
      withClient('group list', options.bootstrap, async (client) => {
        const groups = await new GroupAdmin(client).listGroups();
        if (options.json) printJson(groups);
        else printTable(['GROUP', 'STATE', 'TYPE'], groups.map((entry) => [entry.groupId, entry.groupState, entry.groupType]));
      }),
    );
  bootstrapOption(group.command('describe <group>').description('Members, assignments, committed offsets and lag of a group.'))
    .option('--json', 'print JSON')
    .action(async (groupId: string, options: { bootstrap: string; json?: boolean }) =>
      withClient('group describe', options.bootstrap, async (client) => {
        const description = await new GroupAdmin(client).describeGroup(groupId);
        if (options.json) {
          printJson(description);
          return;
        }
        process.stdout.write(`group ${description.groupId} state ${description.groupState} epoch ${description.groupEpoch} assignment epoch ${description.assignmentEpoch} assignor ${description.assignorName} coordinator ${description.coordinatorId}\n\n`);
        printTable(['MEMBER', 'INSTANCE', 'EPOCH', 'STATE', 'ASSIGNED'], description.members.map((member) => [
          member.memberId, member.instanceId || '-', member.memberEpoch, member.memberState,
          (member.assignment?.topicPartitions ?? []).map((entry) => `${entry.topicName}:${entry.partitions.join(',')}`).join(' ') || '-',
        ]));
        process.stdout.write('\n');
        printTable(['TOPIC', 'PARTITION', 'COMMITTED', 'LOG-END', 'LAG', 'LAG-MS', 'OWNER'], description.offsets.map((offset) => [
          offset.topic, offset.partitionIndex, offset.committedOffset, offset.logEndOffset, offset.lag, offset.lagMs, offset.ownerMemberId || '-',
        ]));
      }),
    );
  bootstrapOption(group.command('reset-offsets <group>').description('Move the committed offsets of an inactive group (no members) for a topic.'))
    .requiredOption('--topic <topic>', 'the topic whose offsets move')
    .option('--to-earliest', 'to the log start')
    .option('--to-latest', 'to the high watermark')
    .option('--to-timestamp <ms>', 'to the first record at or after this time (ms since the epoch)', parseIntegerOption)
    .option('--to-offset <partition=offset>', 'explicit offset of a partition, repeatable', collect, [])
    .option('--partitions <list>', 'only these partitions (comma-separated)')
    .option('--json', 'print JSON')
    .action(async (groupId: string, options: { bootstrap: string; topic: string; toEarliest?: boolean; toLatest?: boolean; toTimestamp?: number; toOffset: string[]; partitions?: string; json?: boolean }) =>
      withClient('group reset-offsets', options.bootstrap, async (client) => {
        const target = resetTarget(options);
        const partitions = options.partitions?.split(',').map((part) => parseIntegerOption(part.trim()));
        const offsets = await new GroupAdmin(client).resetOffsets(groupId, options.topic, target, partitions);
        if (options.json) printJson({ group: groupId, topic: options.topic, offsets });
        else printTable(['TOPIC', 'PARTITION', 'NEW-OFFSET'], offsets.map((entry) => [options.topic, entry.partition, entry.offset]));
      }),
    );
  bootstrapOption(group.command('delete <group>').description('Delete an inactive group and its committed offsets.'))
    .option('--json', 'print JSON')
    .action(async (groupId: string, options: { bootstrap: string; json?: boolean }) =>
      withClient('group delete', options.bootstrap, async (client) => {
        await new GroupAdmin(client).deleteGroup(groupId);
        if (options.json) printJson({ group: groupId, deleted: true });
        else process.stdout.write(`deleted group ${groupId}\n`);
      }),
    );
}

function resetTarget(options: { toEarliest?: boolean; toLatest?: boolean; toTimestamp?: number; toOffset: string[] }): OffsetResetTarget {
  const chosen = [options.toEarliest, options.toLatest, options.toTimestamp !== undefined, options.toOffset.length > 0].filter(Boolean).length;
  if (chosen !== 1) throw new RiffleError('INVALID_REQUEST', 'Give exactly one of --to-earliest, --to-latest, --to-timestamp, --to-offset.');
  if (options.toEarliest) return { to: 'earliest' };
  if (options.toLatest) return { to: 'latest' };
  if (options.toTimestamp !== undefined) return { to: 'timestamp', timestampMs: options.toTimestamp };
  const offsets: Record<number, number> = {};
  for (const [partition, offset] of Object.entries(parseKeyValues(options.toOffset))) offsets[parseIntegerOption(partition)] = parseIntegerOption(offset);
  return { to: 'offsets', offsets };
}

function recordJson(record: { partition: number; offset: number; timestamp: number; key: Buffer | null; value: Buffer | null; headers: { key: string; value: Buffer | null }[] }): object {
  return {
    partition: record.partition,
    offset: record.offset,
    timestamp: record.timestamp,
    key: record.key?.toString('utf8') ?? null,
    value: record.value?.toString('utf8') ?? null,
    headers: Object.fromEntries(record.headers.map((header) => [header.key, header.value?.toString('utf8') ?? null])),
  };
}
