// `riffle dev` (what `npm start` runs) as a newcomer would use it: three nodes come up, the CLI
// works against the first one, Ctrl-C stops everything cleanly, and a restart keeps the data.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { BUILT_CLI, runCli, temporaryDir, waitFor } from '../helpers/cluster.js';

const HOST = '127.0.6.1';
const data = temporaryDir('riffle-dev-');
let dev: ChildProcess | undefined;
let output = '';

function startDev(): ChildProcess {
  output = '';
  const child = spawn(process.execPath, [BUILT_CLI, 'dev', '--host', HOST, '--data-dir', data.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return child;
}

async function stopDev(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGINT');
  return exited;
}

afterAll(async () => {
  if (dev && dev.exitCode === null) await stopDev(dev);
  data.remove();
});

describe('riffle dev', () => {
  it('starts a three-node cluster the CLI can use, stops on Ctrl-C and keeps data across restarts', async () => {
    dev = startDev();
    await waitFor(() => output.includes('Press Ctrl-C'), { timeoutMs: 60_000, what: `the dev cluster (output so far: ${output})` });
    const bootstrap = ['--bootstrap', `${HOST}:9094`];
    const status = JSON.parse((await runCli(['cluster', 'status', '--json', ...bootstrap])).stdout) as { brokers: { brokerId: number; rack: string }[] };
    expect(status.brokers.map((broker) => [broker.brokerId, broker.rack])).toEqual([[1, 'a'], [2, 'b'], [3, 'c']]);
    expect((await runCli(['topic', 'create', 'notes', '--partitions', '2', ...bootstrap])).code).toBe(0);
    expect((await runCli(['produce', 'notes', ...bootstrap], { input: 'first\nsecond\n' })).code).toBe(0);
    expect(await stopDev(dev)).toBe(0);
    expect(output).toContain('stopped');

    dev = startDev();
    await waitFor(() => output.includes('Press Ctrl-C'), { timeoutMs: 60_000, what: 'the restarted dev cluster' });
    const consumed = await runCli(['consume', 'notes', '--from-beginning', '--max-messages', '2', ...bootstrap]);
    expect(consumed.stdout.trim().split('\n').sort()).toEqual(['first', 'second']);
    expect(await stopDev(dev)).toBe(0);
  }, 150_000);
});
