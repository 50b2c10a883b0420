// Flush policies: `ack` resolves durability waiters only after an fdatasync that started after
// their append, and many waiters share one fdatasync (group commit); `os` and `interval` do not
// hold appends; a failed fdatasync fails the waiters and the log; a new leader epoch's checkpoint
// is fsynced in the round, off the event loop, and its offsets count as flushed only after it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LEADER_EPOCH_CHECKPOINT_FILE } from '../../../broker/log/index.js';
import { RiffleError } from '../../../src/rpc/errors.js';
import { batchOf, makeTempDir, metricValue, openLog, removeDir, waitFor } from './helpers.js';

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

/** An fdatasync stand-in that, once armed, holds every call until released. */
class HeldSync {
  armed = false;
  calls = 0;
  failNext = false;
  private held: Array<{ fd: number; resolve: () => void }> = [];

  readonly syncFile = (fd: number): Promise<void> => {
    if (!this.armed) return Promise.resolve();
    this.calls++;
    if (this.failNext) return Promise.reject(new Error('EIO: simulated disk failure'));
    return new Promise((resolve) => this.held.push({ fd, resolve }));
  };

  get heldCount(): number {
    return this.held.length;
  }

  get heldFds(): number[] {
    return this.held.map((call) => call.fd);
  }

  /** Releases the held calls, or those whose fd `which` picks. */
  release(which: (fd: number) => boolean = () => true): void {
    const released = this.held.filter((call) => which(call.fd));
    this.held = this.held.filter((call) => !which(call.fd));
    for (const call of released) call.resolve();
  }
}

async function settle(): Promise<void> {
  for (let round = 0; round < 5; round++) await new Promise((resolve) => setImmediate(resolve));
}

describe('flush policy ack', () => {
  it('resolves a waiter only after an fdatasync covering its append', async () => {
    const sync = new HeldSync();
    const { log, registry } = await openLog(dir, { flushPolicy: 'ack' }, { syncFile: sync.syncFile });
    sync.armed = true;
    const info = log.append(batchOf(3), 0);
    let resolved = false;
    const durable = log.waitDurable(info.lastOffset + 1).then(() => (resolved = true));
    await waitFor(() => sync.heldCount > 0, 'the fdatasync to start');
    await settle();
    expect(resolved).toBe(false);
    expect(log.flushedOffset).toBe(0);
    sync.release();
    await durable;
    expect(log.flushedOffset).toBe(3);
    expect(await metricValue(registry, 'riffle_log_flushes_total')).toBeGreaterThanOrEqual(2);
    sync.armed = false;
    await log.close();
  });

  it('lets many concurrent appends share fdatasync rounds', async () => {
    const sync = new HeldSync();
    const { log, registry } = await openLog(dir, { flushPolicy: 'ack', segmentBytes: 1 << 20 }, { syncFile: sync.syncFile });
    // The epoch's checkpoint is synced before the count starts (its own round is the next test's).
    log.beginLeaderEpoch(0);
    await log.flush();
    const flushesBefore = await metricValue(registry, 'riffle_log_flushes_total');
    sync.armed = true;
    const first = log.append(batchOf(1), 0);
    const waiters = [log.waitDurable(first.lastOffset + 1)];
    await waitFor(() => sync.heldCount > 0, 'the first fdatasync');
    for (let index = 0; index < 200; index++) {
      const info = log.append(batchOf(2), 0);
      waiters.push(log.waitDurable(info.lastOffset + 1));
    }
    sync.release();
    await waitFor(() => sync.heldCount > 0, 'the second fdatasync');
    expect(log.flushedOffset).toBe(1);
    sync.release();
    await Promise.all(waiters);
    expect(log.flushedOffset).toBe(401);
    expect(await metricValue(registry, 'riffle_log_flushes_total') - flushesBefore).toBe(2);
    expect(sync.calls).toBe(2);
    sync.armed = false;
    await log.close();
  });

  it('runs no round for a second wait on an offset whose round is already out', async () => {
    const sync = new HeldSync();
    const { log, registry } = await openLog(dir, { flushPolicy: 'ack' }, { syncFile: sync.syncFile });
    log.beginLeaderEpoch(0);
    await log.flush();
    const flushesBefore = await metricValue(registry, 'riffle_log_flushes_total');
    const roundsBefore = await metricValue(registry, 'riffle_log_fsync_duration_seconds');
    sync.armed = true;
    const info = log.append(batchOf(4), 0);
    const first = log.waitDurable(info.lastOffset + 1);
    await waitFor(() => sync.heldCount > 0, 'the fdatasync to start');
    // Two waits on the end of the same batch, the second while its round is out.
    const second = log.waitDurable(info.lastOffset + 1);
    sync.release();
    await Promise.all([first, second]);
    await settle();
    expect(log.flushedOffset).toBe(4);
    expect(sync.calls).toBe(1);
    expect(await metricValue(registry, 'riffle_log_flushes_total') - flushesBefore).toBe(1);
    expect(await metricValue(registry, 'riffle_log_fsync_duration_seconds') - roundsBefore).toBe(1);
    // Nothing dirty: a flush runs no round either.
    await log.flush();
    expect(await metricValue(registry, 'riffle_log_flushes_total') - flushesBefore).toBe(1);
    sync.armed = false;
    await log.close();
  });

  it('fsyncs a new epoch\'s checkpoint in the round with the data, which counts as flushed only after it', async () => {
    const sync = new HeldSync();
    const { log } = await openLog(dir, { flushPolicy: 'ack' }, { syncFile: sync.syncFile });
    sync.armed = true;
    const checkpoint = path.join(dir, LEADER_EPOCH_CHECKPOINT_FILE);
    const checkpointInode = fs.statSync(checkpoint).ino;
    const info = log.append(batchOf(3), 7);
    // Written at once, in place (the event loop did not wait for an fsync of it) ...
    expect(fs.readFileSync(checkpoint, 'utf8')).toContain('7 0');
    expect(fs.statSync(checkpoint).ino).toBe(checkpointInode);
    const durable = log.waitDurable(info.lastOffset + 1);
    // ... and fsynced in the round, beside the segment (no directory: no file was created or renamed).
    await waitFor(() => sync.heldCount === 2, 'the round to sync the segment and the checkpoint');
    await settle();
    expect(sync.heldCount).toBe(2);
    const isCheckpoint = (fd: number): boolean => fs.fstatSync(fd).ino === checkpointInode;
    expect(sync.heldFds.filter(isCheckpoint)).toHaveLength(1);
    sync.release((fd) => !isCheckpoint(fd));
    await settle();
    expect(log.flushedOffset).toBe(0);
    sync.release();
    await durable;
    expect(log.flushedOffset).toBe(3);
    // The same epoch again writes nothing, so the next round syncs the segment alone.
    const next = log.append(batchOf(1), 7);
    const nextDurable = log.waitDurable(next.lastOffset + 1);
    await waitFor(() => sync.heldCount > 0, 'the next round');
    await settle();
    expect(sync.heldFds.filter(isCheckpoint)).toHaveLength(0);
    expect(sync.heldCount).toBe(1);
    sync.release();
    await nextDurable;
    sync.armed = false;
    await log.close();
  });

  it('syncs the directory in the round when the checkpoint file had to be created again', async () => {
    const sync = new HeldSync();
    const { log } = await openLog(dir, { flushPolicy: 'ack' }, { syncFile: sync.syncFile });
    fs.rmSync(path.join(dir, LEADER_EPOCH_CHECKPOINT_FILE));
    sync.armed = true;
    const info = log.append(batchOf(2), 4);
    expect(fs.readFileSync(path.join(dir, LEADER_EPOCH_CHECKPOINT_FILE), 'utf8')).toContain('4 0');
    const durable = log.waitDurable(info.lastOffset + 1);
    await waitFor(() => sync.heldCount === 3, 'the round to sync the segment, the checkpoint and the directory');
    const directoryInode = fs.statSync(dir).ino;
    expect(sync.heldFds.filter((fd) => fs.fstatSync(fd).ino === directoryInode)).toHaveLength(1);
    sync.release();
    await durable;
    sync.armed = false;
    await log.close();
  });

  it('resolves at once for offsets already durable', async () => {
    const { log } = await openLog(dir, { flushPolicy: 'ack' });
    const info = log.append(batchOf(1), 0);
    await log.waitDurable(info.lastOffset + 1);
    await log.waitDurable(info.lastOffset + 1);
    expect(log.flushedOffset).toBe(1);
    await log.close();
  });

  it('fails waiters and the log when fdatasync fails', async () => {
    const sync = new HeldSync();
    const { log } = await openLog(dir, { flushPolicy: 'ack' }, { syncFile: sync.syncFile });
    sync.armed = true;
    sync.failNext = true;
    const info = log.append(batchOf(1), 0);
    await expect(log.waitDurable(info.lastOffset + 1)).rejects.toMatchObject({ errorName: 'KAFKA_STORAGE_ERROR' });
    expect(() => log.append(batchOf(1), 0)).toThrow(RiffleError);
    expect(() => log.read(0, 100)).toThrow(/fdatasync/);
    await log.close();
  });
});

describe('flush policies os and interval', () => {
  it('os acknowledges at once and syncs only on flush, roll or close', async () => {
    const sync = new HeldSync();
    const { log } = await openLog(dir, { flushPolicy: 'os', segmentBytes: 1 << 20 }, { syncFile: sync.syncFile });
    sync.armed = true;
    const info = log.append(batchOf(2), 0);
    await log.waitDurable(info.lastOffset + 1);
    await settle();
    expect(sync.calls).toBe(0);
    expect(log.flushedOffset).toBe(0);
    const flushed = log.flush();
    await waitFor(() => sync.heldCount > 0, 'the flush');
    sync.release();
    await flushed;
    expect(log.flushedOffset).toBe(2);
    sync.armed = false;
    await log.close();
  });

  it('interval flushes in the background', async () => {
    const { log } = await openLog(dir, { flushPolicy: 'interval', flushIntervalMs: 10 });
    const info = log.append(batchOf(2), 0);
    await log.waitDurable(info.lastOffset + 1);
    await waitFor(() => log.flushedOffset === 2, 'the interval flush');
    await log.close();
  });
});
