// Shared helpers of the partition log tests: temporary directories, batches, deadlines.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Registry } from '../../../src/metrics/index.js';
import { DEFAULT_LOG_CONFIG, LogMetrics, PartitionLog, type LogConfig, type LogTail } from '../../../broker/log/index.js';
import type { Clock } from '../../../src/util/clock.js';
import { encodeRecordBatch } from '../../../src/util/record-batch.js';

export function makeTempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'riffle-log-test-'));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export const SMALL_CONFIG: LogConfig = { ...DEFAULT_LOG_CONFIG, segmentBytes: 4096, indexIntervalBytes: 256, flushPolicy: 'os' };

/** A batch of `count` records "<label>-<i>" with timestamps from `timestamp` (1 ms apart). */
export function batchOf(count: number, options: { timestamp?: number; label?: string; valueBytes?: number } = {}): Buffer {
  const timestamp = options.timestamp ?? 1_700_000_000_000;
  const label = options.label ?? 'r';
  return encodeRecordBatch(Array.from({ length: count }, (_, index) => ({
    key: null,
    value: options.valueBytes === undefined ? Buffer.from(`${label}-${index}`) : Buffer.alloc(options.valueBytes, index & 0xff),
    timestamp: timestamp + index,
  })));
}

export interface OpenedLog {
  log: PartitionLog;
  registry: Registry;
}

export async function openLog(dir: string, config: Partial<LogConfig> = {}, extra: { clock?: Clock; syncFile?: (fd: number) => Promise<void>; registry?: Registry; tail?: LogTail; recentReadBytes?: number } = {}): Promise<OpenedLog> {
  const registry = extra.registry ?? new Registry();
  const log = await PartitionLog.open({
    dir, config: { ...SMALL_CONFIG, ...config }, clock: extra.clock, syncFile: extra.syncFile,
    metrics: new LogMetrics(registry), topic: 'events', partition: 0, tail: extra.tail, recentReadBytes: extra.recentReadBytes,
  });
  return { log, registry };
}

export async function metricValue(registry: Registry, name: string): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  const data = await metric.get();
  return data.values.reduce((sum, sample) => sum + (sample.metricName === undefined || sample.metricName === name || sample.metricName === `${name}_count` ? sample.value : 0), 0);
}

/** Polls `condition` until it holds or the deadline passes. */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, deadlineMs = 10_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export function segmentFiles(dir: string, suffix = '.log'): string[] {
  return fs.readdirSync(dir).filter((name) => name.endsWith(suffix)).sort();
}

/** Every stored byte of whole batches below `offsetExclusive`, read through the serving path. */
export function storedBytesBelow(log: PartitionLog, offsetExclusive: number): Buffer {
  const parts: Buffer[] = [];
  let offset = log.logStartOffset;
  while (offset < offsetExclusive) {
    const { records, nextOffset } = log.read(offset, 1 << 20, offsetExclusive);
    if (nextOffset === offset) break;
    parts.push(records);
    offset = nextOffset;
  }
  return Buffer.concat(parts);
}
