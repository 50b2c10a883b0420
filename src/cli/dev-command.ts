// `riffle dev` (what `npm start` runs): a local cluster for development. For now one combined
// controller+broker node on the default ports (gRPC 9094, controller 9093, HTTP 9644) of
// 127.0.0.1, with its data under ./.riffle-dev/ so a restart keeps every topic and record. It
// prints the bootstrap address and a status table, and stops the node cleanly on Ctrl-C.
import path from 'node:path';
import type { Command } from 'commander';
import { Admin, RiffleClient } from '../client/index.js';
import { NodeProcess } from './node-process.js';
import { printTable } from './output.js';

export function registerDevCommand(program: Command): void {
  program
    .command('dev')
    .description('Run a local development cluster until Ctrl-C.')
    .option('--data-dir <dir>', 'where the nodes keep their data', './.riffle-dev')
    .option('--host <address>', 'loopback address to listen on', '127.0.0.1')
    .action(async (options: { dataDir: string; host: string }) => {
      const dataDir = path.resolve(options.dataDir);
      const node = new NodeProcess({
        nodeId: 1,
        dataDir: path.join(dataDir, 'node-1'),
        host: options.host,
        grpcPort: 9094,
        controllerPort: 9093,
        httpPort: 9644,
        az: 'a',
        stdio: { logFile: path.join(dataDir, 'node-1', 'server.log') },
      });
      let stopping = false;
      const stop = async (): Promise<void> => {
        if (stopping) return;
        stopping = true;
        process.stdout.write('\nstopping the dev cluster...\n');
        await node.stop();
        process.stdout.write('stopped\n');
        process.exit(0);
      };
      process.on('SIGINT', () => void stop());
      process.on('SIGTERM', () => void stop());
      try {
        await node.waitReady(30_000);
      } catch (error) {
        process.stderr.write(`riffle dev: ${error instanceof Error ? error.message : String(error)}; see ${path.join(dataDir, 'node-1', 'server.log')}\n`);
        await node.stop();
        process.exit(1);
      }
      await printStatus(node.bootstrap, dataDir);
      const code = await node.waitExit();
      if (!stopping) {
        process.stderr.write(`riffle dev: node 1 exited unexpectedly (code ${code}); see ${path.join(dataDir, 'node-1', 'server.log')}\n`);
        process.exit(1);
      }
    });
}

async function printStatus(bootstrap: string, dataDir: string): Promise<void> {
  const client = new RiffleClient({ bootstrap });
  try {
    const cluster = await new Admin(client).describeCluster();
    process.stdout.write(`Riffle dev cluster ${cluster.clusterId} is up; data in ${dataDir}\n`);
    process.stdout.write(`bootstrap: ${bootstrap}   (the CLI uses it by default; or export RIFFLE_BOOTSTRAP=${bootstrap})\n\n`);
    printTable(
      ['NODE', 'STATE', 'ROLES', 'AZ', 'GRPC', 'METRICS'],
      cluster.brokers.map((broker) => [broker.brokerId, broker.state, broker.roles.join(','), broker.rack, `${broker.host}:${broker.port}`, `http://${broker.httpEndpoint}/metrics`]),
    );
    process.stdout.write('\nPress Ctrl-C to stop.\n');
  } finally {
    client.close();
  }
}
