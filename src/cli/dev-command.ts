// `riffle dev` (what `npm start` runs): a local cluster for development on 127.0.0.1, its data
// under ./.riffle-dev/ so a restart keeps every topic and record. Node 1 listens on the default
// ports (gRPC 9094, controller 9093, HTTP 9644) so the CLI reaches it with no flags; node i adds
// 100 * (i - 1) to each port. The first three nodes are combined controller+broker nodes (the
// controller quorum), further ones are brokers only; AZs go a, b, c in turn. Each node logs to
// .riffle-dev/node-<id>/server.log. Ctrl-C stops every node cleanly.
import path from 'node:path';
import type { Command } from 'commander';
import { Admin, RiffleClient } from '../client/index.js';
import { NodeProcess } from './node-process.js';
import { parseIntegerOption, printTable } from './output.js';

export const DEV_NODES_DEFAULT = 3;
export const DEV_NODES_MAX = 9;
const VOTERS_MAX = 3;
const AZS = ['a', 'b', 'c'];

export interface DevNodeLayout {
  nodeId: number;
  grpcPort: number;
  controllerPort: number;
  httpPort: number;
  az: string;
  roles: string;
}

/** Ports, AZ and roles of every node of an n-node dev cluster. */
export function devLayout(nodes: number): DevNodeLayout[] {
  return Array.from({ length: nodes }, (_, index) => ({
    nodeId: index + 1,
    grpcPort: 9094 + 100 * index,
    controllerPort: 9093 + 100 * index,
    httpPort: 9644 + 100 * index,
    az: AZS[index % AZS.length]!,
    roles: index < VOTERS_MAX ? 'controller,broker' : 'broker',
  }));
}

export function registerDevCommand(program: Command): void {
  program
    .command('dev')
    .description('Run a local development cluster until Ctrl-C.')
    .option('--data-dir <dir>', 'where the nodes keep their data', './.riffle-dev')
    .option('--host <address>', 'loopback address to listen on', '127.0.0.1')
    .option('--nodes <n>', `number of nodes (1..${DEV_NODES_MAX}); the first three form the controller quorum`, parseIntegerOption, DEV_NODES_DEFAULT)
    .action(async (options: { dataDir: string; host: string; nodes: number }) => {
      if (options.nodes < 1 || options.nodes > DEV_NODES_MAX) {
        process.stderr.write(`riffle dev: --nodes must be between 1 and ${DEV_NODES_MAX}\n`);
        process.exit(2);
      }
      const dataDir = path.resolve(options.dataDir);
      const layout = devLayout(options.nodes);
      const quorum = layout
        .filter((node) => node.roles.includes('controller'))
        .map((node) => `${node.nodeId}@${options.host}:${node.controllerPort}`)
        .join(',');
      const nodes = layout.map(
        (node) =>
          new NodeProcess({
            nodeId: node.nodeId,
            dataDir: path.join(dataDir, `node-${node.nodeId}`),
            host: options.host,
            grpcPort: node.grpcPort,
            controllerPort: node.controllerPort,
            httpPort: node.httpPort,
            az: node.az,
            extraArgs: ['--roles', node.roles, '--controller-quorum', quorum],
            stdio: { logFile: path.join(dataDir, `node-${node.nodeId}`, 'server.log') },
          }),
      );
      await runDevCluster(nodes, dataDir);
    });
}

async function runDevCluster(nodes: NodeProcess[], dataDir: string): Promise<void> {
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping the dev cluster...\n');
    await Promise.all(nodes.map((node) => node.stop()));
    process.stdout.write('stopped\n');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  try {
    await Promise.all(nodes.map((node) => node.waitReady(60_000)));
  } catch (error) {
    process.stderr.write(`riffle dev: ${error instanceof Error ? error.message : String(error)}; see the server.log files under ${dataDir}\n`);
    await stop(1);
    return;
  }
  await printStatus(nodes[0]!.bootstrap, dataDir);
  for (const node of nodes) {
    void node.waitExit().then((code) => {
      if (stopping) return;
      process.stderr.write(`riffle dev: node ${node.options.nodeId} exited unexpectedly (code ${code}); see ${path.join(dataDir, `node-${node.options.nodeId}`, 'server.log')}\n`);
      void stop(1);
    });
  }
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
