// Runs the orders example (examples/orders, issue 7 item 9) end to end against three real
// `riffle server` processes on 127.0.34.1-3, once with Kafka-like consumer groups and once with
// Kinesis-like checkpoints and leases: the notification consumer crashes (kill -9) right after
// order-1-placed and, restarted, still sends order-1-shipped.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RiffleClient } from '../../src/client/index.js';
import { REPO_ROOT, startCluster, temporaryDir, waitFor, type TestCluster } from '../helpers/cluster.js';

const data = temporaryDir('riffle-orders-');
let cluster: TestCluster;

beforeAll(async () => {
  // A short group session, so the crashed member's partitions move on quickly.
  cluster = await startCluster({ subnet: '127.0.34', dataDir: data.dir, controllers: 3, extraArgs: ['--offsets-topic-partitions', '3', '--group-session-timeout-ms', '4000'] });
  const client = new RiffleClient({ bootstrap: cluster.bootstrap });
  await waitFor(async () => (await client.refreshMetadata(['__consumer_offsets'])).topics[0]?.partitions.every((partition) => partition.leaderId >= 0), { timeoutMs: 30_000, what: 'the offsets topic' });
  client.close();
}, 90_000);

afterAll(async () => {
  await cluster?.stopAll();
  data.remove();
});

function runExample(variant: 'kafka' | 'kinesis'): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'examples', 'orders', 'run.mjs'), variant, '--bootstrap', cluster.bootstrap], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the ${variant} example did not finish: ${output}`));
    }, 80_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, output });
    });
  });
}

function assertResumed(output: string): void {
  const lines = output.split('\n');
  const crash = lines.findIndex((line) => line.includes('CRASHES (kill -9) right after order-1-placed'));
  expect(crash).toBeGreaterThan(0);
  expect(lines.slice(0, crash).some((line) => line.includes('notification   sent for order-1-placed'))).toBe(true);
  expect(lines.slice(0, crash).some((line) => line.includes('notification   sent for order-1-shipped'))).toBe(false);
  expect(lines.slice(crash).some((line) => line.includes('notification   sent for order-1-shipped'))).toBe(true);
  expect(output).toContain('OK: the notification consumer resumed');
}

describe('examples/orders', () => {
  it('with consumer groups: the notification consumer resumes after its crash without missing order-1-shipped', async () => {
    const { code, output } = await runExample('kafka');
    console.log(output);
    expect(code).toBe(0);
    assertResumed(output);
  }, 90_000);

  it('with checkpoints and leases: the notification worker resumes after its crash without missing order-1-shipped', async () => {
    const { code, output } = await runExample('kinesis');
    console.log(output);
    expect(code).toBe(0);
    assertResumed(output);
  }, 90_000);
});
