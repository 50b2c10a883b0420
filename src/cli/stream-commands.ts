// The Kinesis-like commands: `stream create|list|describe|delete|split|merge|scale|register-consumer|checkpoints`,
// `put-record`, `get-records` and `subscribe`. Records print with Kinesis's field names
// (SequenceNumber, ApproximateArrivalTimestamp, Data, PartitionKey); errors print the Kinesis
// exception name (ResourceNotFoundException, ...) after Riffle's.
import type { Command } from 'commander';
import { KinesisClient, RiffleClient, getCheckpoints, type StartingPosition } from '../client/index.js';
import { DEFAULT_BOOTSTRAP } from '../client/client.js';
import { RiffleError, kinesisNameOf } from '../rpc/errors.js';
import { shardIdOf, streamArnOf } from '../util/kinesis.js';
import { parseIntegerOption, printJson, printTable } from './output.js';

function bootstrapOption(command: Command): Command {
  return command.option('--bootstrap <addresses>', 'any node\'s gRPC address(es), comma-separated', process.env.RIFFLE_BOOTSTRAP ?? DEFAULT_BOOTSTRAP);
}

async function withKinesis(name: string, bootstrap: string, action: (kinesis: KinesisClient, client: RiffleClient) => Promise<void>): Promise<void> {
  const client = new RiffleClient({ bootstrap, retry: { deadlineMs: 10_000 } });
  try {
    await action(new KinesisClient(client), client);
  } catch (error) {
    if (error instanceof RiffleError) process.stderr.write(`riffle ${name}: ${kinesisNameOf(error.errorName)} (${error.errorName}): ${error.message}\n`);
    else process.stderr.write(`riffle ${name}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

/** Accepts `shardId-000000000003` or just `3`. */
function shardIdOption(value: string): string {
  return /^\d+$/.test(value) ? shardIdOf(Number(value)) : value;
}

export function registerStreamCommands(program: Command): void {
  const stream = program.command('stream').description('Kinesis-like streams: create, list, describe, delete and reshard.');
  bootstrapOption(stream.command('create <name>').description('Create a stream.'))
    .option('--shard-count <n>', 'number of shards (4 for --mode ON_DEMAND when absent)', parseIntegerOption)
    .option('--mode <mode>', 'PROVISIONED or ON_DEMAND', 'PROVISIONED')
    .option('--limits <profile>', "throughput profile: 'kinesis' (Kinesis's per-shard limits) or 'off'", 'off')
    .option('--retention-hours <h>', 'retention period, 1..8760 hours (24 when absent)', parseIntegerOption)
    .option('--replication-factor <n>', 'replicas per shard', parseIntegerOption)
    .option('--record-bytes-max <n>', 'largest record data, up to 10 MiB (1 MiB when absent)', parseIntegerOption)
    .action(async (name: string, options: { bootstrap: string; shardCount?: number; mode: string; limits: string; retentionHours?: number; replicationFactor?: number; recordBytesMax?: number }) =>
      withKinesis('stream create', options.bootstrap, async (kinesis) => {
        await kinesis.createStream(name, {
          shardCount: options.shardCount, streamMode: options.mode as 'PROVISIONED', limitsProfile: options.limits as 'off',
          retentionPeriodHours: options.retentionHours, replicationFactor: options.replicationFactor, recordBytesMax: options.recordBytesMax,
        });
        const summary = await kinesis.describeStreamSummary(name);
        process.stdout.write(`created stream ${name} (${summary.openShardCount} shards, ${summary.streamModeDetails?.streamMode}, retention ${summary.retentionPeriodHours} h)\n`);
      }),
    );
  bootstrapOption(stream.command('list').description('List streams.'))
    .option('--json', 'print JSON')
    .action(async (options: { bootstrap: string; json?: boolean }) =>
      withKinesis('stream list', options.bootstrap, async (kinesis) => {
        const names = await kinesis.listStreams();
        if (options.json) printJson({ StreamNames: names });
        else for (const name of names) process.stdout.write(`${name}\n`);
      }),
    );
  bootstrapOption(stream.command('describe <name>').description('Summary and shards of a stream (open and closed).'))
    .option('--json', 'print JSON')
    .action(async (name: string, options: { bootstrap: string; json?: boolean }) =>
      withKinesis('stream describe', options.bootstrap, async (kinesis) => {
        const summary = await kinesis.describeStreamSummary(name);
        const shards = await kinesis.listShards(name);
        if (options.json) {
          printJson({ StreamDescriptionSummary: summary, Shards: shards });
          return;
        }
        process.stdout.write(`stream ${summary.streamName} ${summary.streamStatus} ${summary.streamModeDetails?.streamMode} retention ${summary.retentionPeriodHours} h, ${summary.openShardCount} open shards, ${summary.consumerCount} consumers, limits ${summary.limitsProfile}\n${summary.streamArn}\n\n`);
        printTable(
          ['SHARD', 'STATE', 'PARENT', 'ADJACENT-PARENT', 'STARTING-HASH-KEY', 'ENDING-HASH-KEY'],
          shards.map((shard) => [
            shard.shardId, shard.sequenceNumberRange?.endingSequenceNumber ? 'closed' : 'open', shard.parentShardId ?? '-', shard.adjacentParentShardId ?? '-',
            shard.hashKeyRange?.startingHashKey ?? '', shard.hashKeyRange?.endingHashKey ?? '',
          ]),
        );
      }),
    );
  bootstrapOption(stream.command('checkpoints <application>').description('Checkpoints and shard leases of a consumer application (KinesisWorker), from its coordinator.'))
    .option('--shard-id <id>', 'one shard only (GetCheckpoint)', shardIdOption)
    .option('--json', 'print JSON')
    .action(async (application: string, options: { bootstrap: string; shardId?: string; json?: boolean }) =>
      withKinesis('stream checkpoints', options.bootstrap, async (_kinesis, client) => {
        const answer = await getCheckpoints(client, application, { shardId: options.shardId });
        if (options.json) {
          printJson({
            ApplicationName: application, FailoverTimeMs: answer.failoverTimeMs, Workers: answer.workers,
            Shards: answer.shards.map((shard) => ({ ShardId: shard.shardId, Checkpoint: shard.checkpoint || null, LeaseOwner: shard.leaseOwner || null, LeaseEpoch: shard.leaseEpoch, CheckpointTimestamp: Number(shard.checkpointTimestampMs) || null })),
          });
          return;
        }
        process.stdout.write(`application ${application}: ${answer.workers.length} live worker(s) ${answer.workers.join(', ')}, failover ${answer.failoverTimeMs} ms\n\n`);
        printTable(
          ['SHARD', 'CHECKPOINT', 'LEASE-OWNER', 'LEASE-EPOCH', 'CHECKPOINTED-AT'],
          answer.shards.map((shard) => [
            shard.shardId, shard.checkpoint || '-', shard.leaseOwner || '-', shard.leaseEpoch, Number(shard.checkpointTimestampMs) > 0 ? new Date(Number(shard.checkpointTimestampMs)).toISOString() : '-',
          ]),
        );
      }),
    );
  bootstrapOption(stream.command('delete <name>').description('Delete a stream and its data.'))
    .option('--enforce-consumer-deletion', 'delete even with registered EFO consumers')
    .action(async (name: string, options: { bootstrap: string; enforceConsumerDeletion?: boolean }) =>
      withKinesis('stream delete', options.bootstrap, async (kinesis) => {
        await kinesis.deleteStream(name, options.enforceConsumerDeletion ?? false);
        process.stdout.write(`deleted stream ${name}\n`);
      }),
    );
  bootstrapOption(stream.command('split <name>').description('SplitShard: split a shard at a hash key (its midpoint when absent).'))
    .requiredOption('--shard-id <id>', 'shard to split', shardIdOption)
    .option('--new-starting-hash-key <key>', 'first hash key of the upper child')
    .action(async (name: string, options: { bootstrap: string; shardId: string; newStartingHashKey?: string }) =>
      withKinesis('stream split', options.bootstrap, async (kinesis) => {
        let key = options.newStartingHashKey;
        if (!key) {
          const shard = (await kinesis.listShards(name)).find((candidate) => candidate.shardId === options.shardId);
          if (!shard?.hashKeyRange) throw new RiffleError('RESOURCE_NOT_FOUND', `Shard ${options.shardId} of stream ${name} not found.`);
          const start = BigInt(shard.hashKeyRange.startingHashKey);
          key = ((start + BigInt(shard.hashKeyRange.endingHashKey)) / 2n + 1n).toString();
        }
        await kinesis.splitShard(name, options.shardId, key);
        process.stdout.write(`split ${options.shardId} of ${name} at ${key}\n`);
      }),
    );
  bootstrapOption(stream.command('merge <name>').description('MergeShards: merge two adjacent shards.'))
    .requiredOption('--shard-id <id>', 'shard to merge', shardIdOption)
    .requiredOption('--adjacent-shard-id <id>', 'the adjacent shard', shardIdOption)
    .action(async (name: string, options: { bootstrap: string; shardId: string; adjacentShardId: string }) =>
      withKinesis('stream merge', options.bootstrap, async (kinesis) => {
        await kinesis.mergeShards(name, options.shardId, options.adjacentShardId);
        process.stdout.write(`merged ${options.shardId} and ${options.adjacentShardId} of ${name}\n`);
      }),
    );
  bootstrapOption(stream.command('scale <name>').description('UpdateShardCount with uniform scaling (half to double the open shards).'))
    .requiredOption('--shard-count <n>', 'target number of open shards', parseIntegerOption)
    .action(async (name: string, options: { bootstrap: string; shardCount: number }) =>
      withKinesis('stream scale', options.bootstrap, async (kinesis) => {
        const response = await kinesis.updateShardCount(name, options.shardCount);
        process.stdout.write(`scaled ${name} from ${response.currentShardCount} to ${response.targetShardCount} open shards\n`);
      }),
    );
  bootstrapOption(stream.command('register-consumer <name>').description('RegisterStreamConsumer: an Enhanced Fan-Out consumer; prints its ARN.'))
    .requiredOption('--consumer <consumerName>', 'consumer name')
    .action(async (name: string, options: { bootstrap: string; consumer: string }) =>
      withKinesis('stream register-consumer', options.bootstrap, async (kinesis, client) => {
        await client.refreshMetadata([]);
        const consumer = await kinesis.registerStreamConsumer(streamArnOf(client.clusterId, name), options.consumer);
        process.stdout.write(`${consumer.consumerArn}\n`);
      }),
    );
  registerRecordCommands(program);
}

function recordJson(record: { sequenceNumber: string; approximateArrivalTimestamp: number | string; data: Buffer; partitionKey: string }): object {
  return {
    SequenceNumber: record.sequenceNumber,
    ApproximateArrivalTimestamp: Number(record.approximateArrivalTimestamp),
    Data: record.data.toString('base64'),
    PartitionKey: record.partitionKey,
  };
}

interface ChildShardOutput {
  shardId: string;
  parentShards: string[];
  hashKeyRange: { startingHashKey: string; endingHashKey: string } | null;
}

function childShardJson(child: ChildShardOutput): object {
  return {
    ShardId: child.shardId, ParentShards: child.parentShards,
    HashKeyRange: { StartingHashKey: child.hashKeyRange?.startingHashKey, EndingHashKey: child.hashKeyRange?.endingHashKey },
  };
}

function registerRecordCommands(program: Command): void {
  bootstrapOption(program.command('put-record <stream>').description('PutRecord: write one record; prints its shard and sequence number.'))
    .requiredOption('--partition-key <key>', 'partition key (1..256 characters)')
    .requiredOption('--data <data>', 'record data (UTF-8)')
    .option('--explicit-hash-key <key>', 'route by this hash key instead of MD5(partition key)')
    .option('--json', 'print JSON')
    .action(async (stream: string, options: { bootstrap: string; partitionKey: string; data: string; explicitHashKey?: string; json?: boolean }) =>
      withKinesis('put-record', options.bootstrap, async (kinesis) => {
        const result = await kinesis.putRecord(stream, { partitionKey: options.partitionKey, data: options.data, explicitHashKey: options.explicitHashKey });
        if (options.json) printJson({ ShardId: result.shardId, SequenceNumber: result.sequenceNumber });
        else process.stdout.write(`${result.shardId} ${result.sequenceNumber}\n`);
      }),
    );
  bootstrapOption(program.command('get-records <stream>').description('GetShardIterator then GetRecords until the shard has no more records (or --limit is reached).'))
    .requiredOption('--shard-id <id>', 'shard to read', shardIdOption)
    .option('--iterator-type <type>', 'TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER or AT_TIMESTAMP', 'TRIM_HORIZON')
    .option('--sequence-number <s>', 'for AT_/AFTER_SEQUENCE_NUMBER')
    .option('--timestamp <t>', 'for AT_TIMESTAMP: milliseconds since the epoch or an ISO date')
    .option('--limit <n>', 'at most this many records', parseIntegerOption)
    .option('--json', 'print a JSON object with Records, NextShardIterator, MillisBehindLatest and ChildShards')
    .action(async (stream: string, options: { bootstrap: string; shardId: string; iteratorType: string; sequenceNumber?: string; timestamp?: string; limit?: number; json?: boolean }) =>
      withKinesis('get-records', options.bootstrap, async (kinesis) => {
        const timestamp = options.timestamp === undefined ? undefined : /^\d+$/.test(options.timestamp) ? Number(options.timestamp) : Date.parse(options.timestamp);
        let iterator: string | undefined = await kinesis.getShardIterator(stream, options.shardId, {
          type: options.iteratorType as StartingPosition['type'], sequenceNumber: options.sequenceNumber, timestamp,
        });
        const records: object[] = [];
        let last = { millisBehindLatest: 0, childShards: [] as ChildShardOutput[] };
        for (let call = 0; call < 10_000 && iterator; call++) {
          const wanted = options.limit === undefined ? undefined : Math.min(10_000, options.limit - records.length);
          const response = await kinesis.getRecords(iterator, wanted);
          records.push(...response.records.map(recordJson));
          for (const record of response.records) if (!options.json) process.stdout.write(`${record.sequenceNumber} ${record.partitionKey} ${record.data.toString('utf8')}\n`);
          last = { millisBehindLatest: Number(response.millisBehindLatest), childShards: response.childShards };
          iterator = response.nextShardIterator ?? undefined;
          if (response.records.length === 0 || (options.limit !== undefined && records.length >= options.limit)) break;
        }
        if (options.json) printJson({ Records: records, NextShardIterator: iterator ?? null, MillisBehindLatest: last.millisBehindLatest, ChildShards: last.childShards.map(childShardJson) });
      }),
    );
  bootstrapOption(program.command('subscribe <stream>').description('SubscribeToShard (Enhanced Fan-Out): print records as they are pushed, one JSON line each.'))
    .requiredOption('--consumer <name>', 'registered consumer name (see stream register-consumer)')
    .requiredOption('--shard-id <id>', 'shard to follow', shardIdOption)
    .option('--starting-position <type>', 'TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER or AT_TIMESTAMP', 'LATEST')
    .option('--sequence-number <s>', 'for AT_/AFTER_SEQUENCE_NUMBER')
    .option('--timestamp <ms>', 'for AT_TIMESTAMP', parseIntegerOption)
    .option('--max-records <n>', 'exit after this many records', parseIntegerOption)
    .option('--timeout-ms <ms>', 'exit when no record arrives for this long', parseIntegerOption)
    .action(async (stream: string, options: { bootstrap: string; consumer: string; shardId: string; startingPosition: string; sequenceNumber?: string; timestamp?: number; maxRecords?: number; timeoutMs?: number }) =>
      withKinesis('subscribe', options.bootstrap, async (kinesis, client) => {
        await client.refreshMetadata([stream]);
        const consumers = await kinesis.listStreamConsumers(streamArnOf(client.clusterId, stream));
        const consumer = consumers.find((candidate) => candidate.consumerName === options.consumer);
        if (!consumer) throw new RiffleError('RESOURCE_NOT_FOUND', `Consumer ${options.consumer} of stream ${stream} not found.`);
        const stop = new AbortController();
        process.once('SIGINT', () => stop.abort());
        let printed = 0;
        let timer: NodeJS.Timeout | undefined;
        const arm = (): void => {
          if (options.timeoutMs === undefined) return;
          clearTimeout(timer);
          timer = setTimeout(() => stop.abort(), options.timeoutMs);
        };
        arm();
        const position = { type: options.startingPosition as StartingPosition['type'], sequenceNumber: options.sequenceNumber, timestamp: options.timestamp };
        try {
          for await (const event of kinesis.subscribeToShard(consumer.consumerArn, options.shardId, position, { signal: stop.signal })) {
            for (const record of event.records) {
              process.stdout.write(`${JSON.stringify(recordJson(record))}\n`);
              printed++;
              arm();
              if (options.maxRecords !== undefined && printed >= options.maxRecords) stop.abort();
            }
            if (event.childShards.length > 0) process.stderr.write(`shard ended; children ${event.childShards.map((child) => child.shardId).join(', ')}\n`);
            if (stop.signal.aborted) break;
          }
        } finally {
          clearTimeout(timer);
        }
      }),
    );
}
