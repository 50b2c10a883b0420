// `riffle bench metadata`: how fast the controller quorum creates a large topic and how fast every
// broker's metadata cache reflects it, and what that costs each broker in memory. It starts its
// own three-node cluster (combined controller+broker nodes on 127.0.5.1-3, a temporary data
// directory), prints JSON and stops the cluster.
import type { Command } from 'commander';
import { Admin, RiffleClient } from '../client/index.js';
import type { NodeProcess } from './node-process.js';
import { BenchCluster, rssMegabytes } from './bench-cluster.js';
import { parseIntegerOption, printJson, reportError } from './output.js';


export function registerMetadataBench(bench: Command): void {
  bench
    .command('metadata')
    .description('Create a large topic on a fresh 3-node cluster; time the create and the propagation; report broker memory.')
    .option('--partitions <n>', 'partitions of the topic', parseIntegerOption, 1_000)
    .option('--replication-factor <n>', 'replicas per partition', parseIntegerOption, 3)
    .action(async (options: { partitions: number; replicationFactor: number }) => {
      let cluster: BenchCluster | undefined;
      try {
        cluster = await BenchCluster.start();
        printJson(await measure([...cluster.nodes.values()], options.partitions, options.replicationFactor));
      } catch (error) {
        reportError('bench metadata', error);
      } finally {
        await cluster?.stop();
      }
    });
}

async function measure(nodes: NodeProcess[], partitions: number, replicationFactor: number): Promise<object> {
  const client = new RiffleClient({ bootstrap: nodes[0]!.bootstrap });
  const rssBeforeMb = nodes.map(rssMegabytes);
  try {
    const started = performance.now();
    await new Admin(client).createTopic({ name: 'bench-metadata', partitions, replicationFactor });
    const createdMs = performance.now() - started;
    const propagationMs = await Promise.all(nodes.map((node) => timeUntilBrokerKnows(node, partitions)));
    // Give the brokers a moment to settle their partition logs before reading memory.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    return {
      benchmark: 'bench metadata',
      brokers: nodes.length,
      partitions,
      replicationFactor,
      createTopicMs: Math.round(createdMs),
      propagationAfterCreateMs: Object.fromEntries(nodes.map((node, index) => [`node${node.options.nodeId}`, Math.round(propagationMs[index]!)])),
      rssMegabytesBefore: Object.fromEntries(nodes.map((node, index) => [`node${node.options.nodeId}`, rssBeforeMb[index]])),
      rssMegabytesAfter: Object.fromEntries(nodes.map((node) => [`node${node.options.nodeId}`, rssMegabytes(node)])),
      partitionReplicasPerBroker: Math.round((partitions * replicationFactor) / nodes.length),
    };
  } finally {
    client.close();
  }
}

/** Milliseconds from now until the broker's metadata shows every partition with a leader. */
async function timeUntilBrokerKnows(node: NodeProcess, partitions: number): Promise<number> {
  const client = new RiffleClient({ bootstrap: node.bootstrap });
  const started = performance.now();
  try {
    for (let attempt = 0; attempt < 2_000; attempt++) {
      const response = await client.refreshMetadata(['bench-metadata']);
      const topic = response.topics[0];
      if (topic && topic.errorCode === 0 && topic.partitions.length === partitions && topic.partitions.every((partition) => partition.leaderId > 0)) {
        return performance.now() - started;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    throw new Error(`node ${node.options.nodeId} never showed the topic`);
  } finally {
    client.close();
  }
}

