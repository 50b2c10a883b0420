#!/usr/bin/env node
// The `riffle` program: `server` runs a node, `dev` a local cluster, and the other commands are
// clients of a running cluster. Only this folder assembles servers from raft/, controller/ and
// broker/; it stays thin.
import { Command } from 'commander';
import { registerServerCommand } from './server-command.js';
import { registerDevCommand } from './dev-command.js';
import { registerClientCommands } from './client-commands.js';
import { registerBenchCommands } from './bench-command.js';
import { registerChaosCommands } from './chaos-command.js';

const program = new Command();
program.name('riffle').description('Riffle: a replicated streaming log with Kafka-like and Kinesis-like APIs.').version('0.1.0');
registerServerCommand(program);
registerDevCommand(program);
registerClientCommands(program);
registerBenchCommands(program);
registerChaosCommands(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`riffle: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
