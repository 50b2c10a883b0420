// A seeded random walk over the partition log checked against a simple in-memory model: appends
// of random batches, reads at random offsets and sizes, lookups by timestamp, truncations,
// retention, clean reopens and simulated crashes (the log object abandoned without close). Every
// log of the walk keeps its last appends in one small tail cache, whose evictions, truncations and
// multi-append reads the model checks too (reads at an append's first offset are served from it).
// A failure prints the seed; RIFFLE_SEED=<seed> replays it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Prng } from '../../../src/util/prng.js';
import { decodeAllRecords, encodeRecordBatch } from '../../../src/util/record-batch.js';
import { TailCache, TailCacheMetrics, type PartitionLog } from '../../../broker/log/index.js';
import { Registry } from '../../../src/metrics/index.js';
import { makeTempDir, openLog, removeDir, segmentFiles } from './helpers.js';

interface ModelBatch {
  base: number;
  values: string[];
  timestamps: number[];
}

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

const STEPS = Number(process.env.RIFFLE_MODEL_STEPS ?? 400);

describe('partition log against a model', () => {
  it('agrees with the model through a seeded random walk', async () => {
    const seed = Number(process.env.RIFFLE_SEED ?? Date.now() % 0x7fffffff);
    console.log(`partition log model walk: RIFFLE_SEED=${seed}`);
    const prng = new Prng(seed);
    const config = { segmentBytes: prng.int(400, 4000), indexIntervalBytes: prng.int(0, 600), retentionBytes: -1, retentionMs: -1, flushPolicy: 'os' as const };
    const registry = new Registry();
    // Small batches are views of Node's 8 KiB buffer pool, and count as 8 KiB each: a few fit.
    const cache = new TailCache(prng.int(20_000, 60_000), new TailCacheMetrics(registry));
    const open = (logConfig: typeof config): ReturnType<typeof openLog> => openLog(dir, logConfig, { tail: cache.forLog() });
    let { log } = await open(config);
    let batches: ModelBatch[] = [];
    let clockMs = 1_000_000;
    const context = (step: number, what: string): string => `seed ${seed} step ${step} ${what}`;
    for (let step = 0; step < STEPS; step++) {
      const action = prng.next();
      if (action < 0.45) {
        const count = prng.int(1, 6);
        const values = Array.from({ length: count }, (_, index) => `s${step}-${index}-${'v'.repeat(prng.int(0, 150))}`);
        const timestamps = values.map(() => clockMs++);
        const info = log.append(encodeRecordBatch(values.map((value, index) => ({ key: null, value: Buffer.from(value), timestamp: timestamps[index] }))), 0);
        const expectedBase = batches.length === 0 ? log.logStartOffset : batches.at(-1)!.base + batches.at(-1)!.values.length;
        expect(info.baseOffset, context(step, 'append')).toBe(expectedBase);
        batches.push({ base: info.baseOffset, values, timestamps });
      } else if (action < 0.75) {
        checkRead(log, batches, prng, context(step, 'read'));
      } else if (action < 0.82) {
        checkTimestamp(log, batches, prng, context(step, 'timestamp'));
      } else if (action < 0.87 && batches.length > 0) {
        const cut = prng.int(log.logStartOffset, log.logEndOffset + 1);
        log.truncateTo(cut);
        batches = batches.filter((batch) => batch.base + batch.values.length <= cut);
        if (batches.length === 0 && cut <= log.logStartOffset) expect(log.logEndOffset, context(step, 'truncate all')).toBe(cut);
        else expect(log.logEndOffset, context(step, 'truncate')).toBe(batches.length === 0 ? log.logStartOffset : batches.at(-1)!.base + batches.at(-1)!.values.length);
      } else if (action < 0.9) {
        await log.flush();
        const before = log.logStartOffset;
        const retained = { ...config, retentionBytes: prng.int(0, 4000) };
        await log.close();
        ({ log } = await open(retained));
        log.applyRetention();
        expect(log.logStartOffset, context(step, 'retention')).toBeGreaterThanOrEqual(before);
        batches = batches.filter((batch) => batch.base >= log.logStartOffset);
        if (batches.length > 0) expect(batches[0]!.base, context(step, 'retention boundary')).toBe(log.logStartOffset);
        await log.close();
        ({ log } = await open(config));
      } else if (action < 0.95) {
        await log.close();
        ({ log } = await open(config));
      } else {
        // A crash: the old object is abandoned once its background syncs are done, without close.
        await (log as unknown as { whenSyncIdle(): Promise<void> }).whenSyncIdle();
        if (prng.chance(0.5)) {
          // ...in the middle of writing a batch: a torn tail that recovery must cut.
          const torn = encodeRecordBatch([{ key: null, value: Buffer.from('torn'.repeat(20)) }], { baseOffset: log.logEndOffset });
          fs.appendFileSync(path.join(dir, segmentFiles(dir).at(-1)!), torn.subarray(0, prng.int(1, torn.length)));
        }
        ({ log } = await open(config));
      }
      if (process.env.RIFFLE_TRACE) console.log(step, action.toFixed(2), log.logStartOffset, log.logEndOffset, (log as unknown as { segments: Array<{ baseOffset: number; nextOffset: number; maxTimestamp: number }> }).segments.map((s) => `${s.baseOffset}-${s.nextOffset}@${s.maxTimestamp}`).join(' '));
      const expectedEnd = batches.length === 0 ? log.logStartOffset : batches.at(-1)!.base + batches.at(-1)!.values.length;
      expect(log.logEndOffset, context(step, 'log end')).toBe(expectedEnd);
      expect(cache.bytes, context(step, 'tail cache budget')).toBeLessThanOrEqual(cache.bytesMax);
    }
    await log.close();
    // Reads at one of the last appends' first offsets were served from memory, and checked.
    const hits = (await registry.getSingleMetric('riffle_log_tail_cache_reads_total')!.get()).values.find((value) => value.labels.result === 'hit')?.value ?? 0;
    expect(hits, `seed ${seed}: reads served from the tail cache`).toBeGreaterThan(0);
  });
});

function checkRead(log: PartitionLog, batches: ModelBatch[], prng: Prng, what: string): void {
  // A third of the reads start where one of the last appends does, as followers and tailing
  // consumers read; the others anywhere.
  const recent = batches.slice(-3);
  const offset = recent.length > 0 && prng.chance(0.35) ? prng.pick(recent).base : prng.int(log.logStartOffset, log.logEndOffset + 1);
  const limit = prng.chance(0.3) ? prng.int(offset, log.logEndOffset + 1) : log.logEndOffset;
  const { records, nextOffset } = log.read(offset, prng.int(0, 3000), limit);
  const decoded = [...decodeAllRecords(records)];
  const containing = batches.findIndex((batch) => batch.base <= offset && offset < batch.base + batch.values.length);
  if (containing < 0 || batches[containing]!.base + batches[containing]!.values.length > limit) {
    expect(decoded.length, what).toBe(0);
    expect(nextOffset, what).toBe(offset);
    return;
  }
  expect(decoded.length, what).toBeGreaterThan(0);
  expect(decoded[0]!.offset, what).toBe(batches[containing]!.base);
  const expectedValues = batches.slice(containing).flatMap((batch) => batch.values).slice(0, decoded.length);
  expect(decoded.map((record) => record.value!.toString()), what).toEqual(expectedValues);
  expect(nextOffset, what).toBe(decoded.at(-1)!.offset + 1);
  expect(nextOffset, what).toBeLessThanOrEqual(limit);
}

function checkTimestamp(log: PartitionLog, batches: ModelBatch[], prng: Prng, what: string): void {
  const all = batches.flatMap((batch) => batch.timestamps.map((timestamp, index) => ({ offset: batch.base + index, timestamp })));
  const target = all.length === 0 ? 0 : prng.int(all[0]!.timestamp - 5, all.at(-1)!.timestamp + 5);
  const expected = all.find((record) => record.timestamp >= target) ?? null;
  expect(log.offsetForTimestamp(target), `${what} ${target}`).toEqual(expected);
}
