// `riffle bench failover`: how long acks=all writes stop when a partition leader dies (kill -9)
// or stops gracefully (SIGTERM, controlled shutdown), and how long a broker holding 1,000
// partition replicas takes to serve again after a clean and an unclean restart. Starts its own
// three-node cluster on loopback (127.0.5.1-3), prints JSON, stops the cluster.
//
// Unavailability of a trial is the longest gap between two consecutive acknowledged writes of a
// producer that writes one record at a time, retrying through the fault.
import type { Command } from 'commander';
import { Admin, Producer, RiffleClient } from '../client/index.js';
import { BenchCluster, median, waitForFullIsr } from './bench-cluster.js';
import { parseIntegerOption, printJson, reportError } from './output.js';

export function registerFailoverBench(bench: Command): void {
  bench
    .command('failover')
    .description('Unavailability of acks=all writes after kill -9 / SIGTERM of a leader, and broker restart times; prints JSON.')
    .option('--trials <n>', 'trials of each fault', parseIntegerOption, 10)
    .option('--restart-partitions <n>', 'partitions (RF 3) on the cluster for the restart measurement', parseIntegerOption, 1_000)
    .action(async (options: { trials: number; restartPartitions: number }) => {
      let cluster: BenchCluster | undefined;
      try {
        cluster = await BenchCluster.start();
        const client = new RiffleClient({ bootstrap: cluster.bootstrap, retry: { deadlineMs: 60_000 } });
        try {
          const kill = await trials(cluster, client, options.trials, 'kill');
          const sigterm = await trials(cluster, client, options.trials, 'sigterm');
          const restart = await restartTimes(cluster, client, options.restartPartitions);
          printJson({ benchmark: 'bench failover', trials: options.trials, killUnavailabilityMs: kill, sigtermUnavailabilityMs: sigterm, restartToReadyMs: restart });
        } finally {
          client.close();
        }
      } catch (error) {
        reportError('bench failover', error);
      } finally {
        await cluster?.stop();
      }
    });
}

async function trials(cluster: BenchCluster, client: RiffleClient, count: number, fault: 'kill' | 'sigterm'): Promise<object> {
  const admin = new Admin(client);
  const gaps: number[] = [];
  for (let trial = 0; trial < count; trial++) {
    const topic = `failover-${fault}-${trial}`;
    await admin.createTopic({ name: topic, partitions: 1, replicationFactor: 3 });
    const leaderId = (await admin.describeTopic(topic)).partitions[0]!.leaderId;
    gaps.push(await measureGap(client, topic, async () => {
      const node = cluster.nodes.get(leaderId)!;
      if (fault === 'kill') await node.kill();
      else await node.stop();
    }));
    await cluster.spawn(leaderId).waitReady(60_000);
    await waitForFullIsr(admin, topic);
  }
  return { median: Math.round(median(gaps)), max: Math.round(Math.max(...gaps)), all: gaps.map(Math.round) };
}

/** Writes one record at a time; applies the fault after a steady start; returns the longest gap between acknowledgements. */
async function measureGap(client: RiffleClient, topic: string, fault: () => Promise<void>): Promise<number> {
  const producer = new Producer(client, { acks: 'all', lingerMs: 0, deliveryTimeoutMs: 60_000, requestTimeoutMs: 5_000 });
  let last = performance.now();
  let longest = 0;
  let faultDone: Promise<void> | undefined;
  let afterFault = 0;
  for (let index = 0; index < 10_000 && afterFault < 50; index++) {
    await producer.send({ topic, value: `r${index}` });
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (index === 50) faultDone = fault();
    if (faultDone) afterFault++;
  }
  await faultDone;
  await producer.close();
  return longest;
}

async function restartTimes(cluster: BenchCluster, client: RiffleClient, partitions: number): Promise<object> {
  const admin = new Admin(client);
  await admin.createTopic({ name: 'restart', partitions, replicationFactor: 3 });
  // Both restarts start from the same state, every replica created and in sync, so each measures
  // a restart and not the end of the topic's creation.
  await waitForFullIsr(admin, 'restart');
  const node = cluster.nodes.get(3)!;
  await node.stop();
  let started = performance.now();
  await cluster.spawn(3).waitReady(120_000);
  const clean = performance.now() - started;
  await waitForFullIsr(admin, 'restart');
  await cluster.nodes.get(3)!.kill();
  started = performance.now();
  await cluster.spawn(3).waitReady(120_000);
  const unclean = performance.now() - started;
  return { partitionReplicas: partitions, afterCleanShutdown: Math.round(clean), afterKill: Math.round(unclean) };
}
