// Crash recovery: a child process SIGKILLed while appending loses nothing it had acknowledged and
// reopens at a batch boundary; a torn tail written by hand is cut; a flipped bit in an old batch
// is caught on read and never served; a corrupt batch past the checkpoint is cut on recovery.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RiffleError } from '../../../src/rpc/errors.js';
import { decodeAllRecords, iterateBatches, stampBatch } from '../../../src/util/record-batch.js';
import { RECOVERY_CHECKPOINT_FILE } from '../../../broker/log/index.js';
import { batchOf, makeTempDir, metricValue, openLog, removeDir, segmentFiles, waitFor } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHILD_SCRIPT = path.join(here, 'fixtures', 'append-loop.mjs');
const BUILT_LOG = path.join(here, '..', '..', '..', 'dist', 'broker', 'log', 'index.js');

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

function readEverything(log: Awaited<ReturnType<typeof openLog>>['log']): string[] {
  const values: string[] = [];
  for (let offset = log.logStartOffset, round = 0; offset < log.logEndOffset && round < 100_000; round++) {
    const { records, nextOffset } = log.read(offset, 64 * 1024);
    for (const record of decodeAllRecords(records)) values.push(record.value!.toString());
    offset = nextOffset;
  }
  return values;
}

/** Runs the appending child until it has acknowledged `target` offsets, SIGKILLs it, returns the highest acknowledged. */
async function appendUntilKilled(target: number): Promise<number> {
  const child = spawn(process.execPath, [CHILD_SCRIPT, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let ackedOffset = 0;
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) if (line.startsWith('acked ')) ackedOffset = Math.max(ackedOffset, Number(line.slice(6)));
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    await waitFor(() => ackedOffset >= target, `the child to acknowledge ${target} offsets`, 30_000);
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  return ackedOffset;
}

describe('crash recovery', () => {
  it('keeps every acknowledged batch when the appending process is SIGKILLed, three times over', async () => {
    if (!fs.existsSync(BUILT_LOG)) throw new Error(`${BUILT_LOG} is missing: build first (npm test does)`);
    let acknowledged = 0;
    for (let round = 0; round < 3; round++) {
      acknowledged = await appendUntilKilled(acknowledged + 10_000);
      const { log, registry } = await openLog(dir, { segmentBytes: 64 * 1024, indexIntervalBytes: 512, flushPolicy: 'ack' });
      expect(log.logEndOffset, `round ${round}`).toBeGreaterThanOrEqual(acknowledged);
      expect(log.logEndOffset % 10).toBe(0);
      const values = readEverything(log);
      expect(values.length).toBe(log.logEndOffset);
      values.forEach((value, offset) => {
        if (!value.startsWith(`b${Math.floor(offset / 10)}-r${offset % 10}-`)) throw new Error(`round ${round}: offset ${offset} holds ${value}`);
      });
      const sizes = segmentFiles(dir).map((name) => fs.statSync(path.join(dir, name)).size);
      expect(sizes.reduce((sum, size) => sum + size, 0)).toBe(log.sizeBytes);
      expect(await metricValue(registry, 'riffle_log_corrupt_batches_total')).toBe(0);
      acknowledged = log.logEndOffset;
      await log.close();
    }
  });

  it('cuts a torn tail written by hand back to the last whole batch', async () => {
    const { log } = await openLog(dir, { segmentBytes: 1 << 20 });
    for (let index = 0; index < 10; index++) log.append(batchOf(3, { label: `w${index}` }), 0);
    await log.close();
    const file = path.join(dir, segmentFiles(dir).at(-1)!);
    const sizeBefore = fs.statSync(file).size;
    const partial = batchOf(3, { label: 'torn' });
    stampBatch(partial, 0, 30, 0);
    fs.appendFileSync(file, partial.subarray(0, partial.length - 5));
    const reopened = await openLog(dir, { segmentBytes: 1 << 20 });
    expect(reopened.log.logEndOffset).toBe(30);
    expect(fs.statSync(file).size).toBe(sizeBefore);
    expect(await metricValue(reopened.registry, 'riffle_log_recovery_truncations_total')).toBe(1);
    expect(readEverything(reopened.log).at(-1)).toBe('w9-2');
    expect(reopened.log.append(batchOf(1, { label: 'after' }), 0).baseOffset).toBe(30);
    await reopened.log.close();
  });

  it('cuts a few garbage bytes after a crash without a checkpoint', async () => {
    const { log } = await openLog(dir);
    for (let index = 0; index < 20; index++) log.append(batchOf(2), 0);
    await log.close();
    fs.rmSync(path.join(dir, RECOVERY_CHECKPOINT_FILE));
    fs.appendFileSync(path.join(dir, segmentFiles(dir).at(-1)!), Buffer.from([1, 2, 3, 4, 5, 6, 7]));
    const reopened = await openLog(dir);
    expect(reopened.log.logEndOffset).toBe(40);
    expect(readEverything(reopened.log).length).toBe(40);
    await reopened.log.close();
  });

  it('does not trust a clean checkpoint once the last segment was cut to nothing', async () => {
    const { log } = await openLog(dir, { segmentBytes: 1 << 20 });
    log.append(batchOf(3), 0);
    await log.close();
    fs.truncateSync(path.join(dir, segmentFiles(dir).at(-1)!), 0);
    const reopened = await openLog(dir, { segmentBytes: 1 << 20 });
    expect(reopened.log.logEndOffset).toBe(0);
    expect(reopened.log.read(0, 1 << 20).records.length).toBe(0);
    expect(reopened.log.append(batchOf(1), 0).baseOffset).toBe(0);
    await reopened.log.close();
  });

  it('rewrites the recovery checkpoint only when its point moved, and drops the clean mark on open', async () => {
    const file = path.join(dir, RECOVERY_CHECKPOINT_FILE);
    const { log } = await openLog(dir);
    log.append(batchOf(2), 0);
    await log.flush();
    expect(fs.readFileSync(file, 'utf8')).toMatch(/^v1 2 0 \d+ 0 /);
    // Nothing new to flush: the file is left alone (a marker written over it stays).
    fs.writeFileSync(file, 'marker');
    await log.flush();
    expect(fs.readFileSync(file, 'utf8')).toBe('marker');
    log.append(batchOf(1), 0);
    await log.flush();
    expect(fs.readFileSync(file, 'utf8')).toMatch(/^v1 3 0 \d+ 0 /);
    await log.close();
    expect(fs.readFileSync(file, 'utf8')).toMatch(/^v1 3 0 \d+ 1 /);
    // Once open, the log may change: the clean mark must go at once.
    const reopened = await openLog(dir);
    expect(fs.readFileSync(file, 'utf8')).toMatch(/^v1 3 0 \d+ 0 /);
    await reopened.log.close();
  });
});

describe('corruption', () => {
  function flipBitInBatch(file: string, batchIndex: number): { baseOffset: number; lastOffset: number } {
    const bytes = fs.readFileSync(file);
    const batches = [...iterateBatches(bytes)];
    const target = batches[batchIndex]!;
    bytes[target.position + 70]! ^= 0x04;
    fs.writeFileSync(file, bytes);
    return { baseOffset: target.header.baseOffset, lastOffset: target.header.baseOffset + target.header.lastOffsetDelta };
  }

  it('detects a flipped bit in an old batch on read and never serves it', async () => {
    const { log } = await openLog(dir, { segmentBytes: 2000 });
    for (let index = 0; index < 30; index++) log.append(batchOf(4, { label: `c${index}` }), 0);
    await log.close();
    const corrupted = flipBitInBatch(path.join(dir, segmentFiles(dir)[0]!), 3);
    const { log: reopened, registry } = await openLog(dir, { segmentBytes: 2000 });
    expect(reopened.logEndOffset).toBe(120);
    const before = reopened.read(0, 1 << 20);
    expect(before.nextOffset).toBe(corrupted.baseOffset);
    expect([...decodeAllRecords(before.records)].every((record) => record.offset < corrupted.baseOffset)).toBe(true);
    for (const offset of [corrupted.baseOffset, corrupted.lastOffset]) {
      try {
        reopened.read(offset, 1 << 20);
        throw new Error('served a corrupt batch');
      } catch (error) {
        expect(error).toBeInstanceOf(RiffleError);
        expect((error as RiffleError).errorName).toBe('KAFKA_STORAGE_ERROR');
      }
    }
    expect(await metricValue(registry, 'riffle_log_corrupt_batches_total')).toBe(2);
    expect(reopened.read(corrupted.lastOffset + 1, 1).nextOffset).toBeGreaterThan(corrupted.lastOffset + 1);
    await reopened.close();
  });

  it('cuts the log at a corrupt batch past the recovery checkpoint', async () => {
    const { log } = await openLog(dir, { segmentBytes: 1 << 20 });
    for (let index = 0; index < 10; index++) log.append(batchOf(2, { label: `k${index}` }), 0);
    await log.close();
    fs.rmSync(path.join(dir, RECOVERY_CHECKPOINT_FILE));
    const corrupted = flipBitInBatch(path.join(dir, segmentFiles(dir)[0]!), 6);
    const { log: reopened, registry } = await openLog(dir, { segmentBytes: 1 << 20 });
    expect(reopened.logEndOffset).toBe(corrupted.baseOffset);
    expect(readEverything(reopened).at(-1)).toBe('k5-1');
    expect(await metricValue(registry, 'riffle_log_corrupt_batches_total')).toBe(1);
    expect(await metricValue(registry, 'riffle_log_recovery_truncations_total')).toBe(1);
    await reopened.close();
  });
});
