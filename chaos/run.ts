// One chaos run: start the cluster behind its fault proxies, run the workload while the scenario
// injects faults, heal, let the consumers drain, read everything back, check, and write the
// report to chaos/results/<scenario>-<seed>/. The seed drives the fault schedule and the
// workload's choices; timing is real, so a rerun repeats the schedule, not every interleaving.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Prng } from '../src/util/prng.js';
import { ChaosCluster } from './cluster.js';
import { check, type CheckResult } from './checker.js';
import { History, type Op } from './history.js';
import { Nemesis } from './nemesis.js';
import { renderMarkdown } from './report.js';
import { scenarioNamed } from './scenarios.js';
import { KAFKA_WORKLOAD_DEFAULTS, KafkaWorkload } from './workload-kafka.js';
import { GroupWorkload } from './workload-groups.js';
import { KINESIS_WORKLOAD_DEFAULTS, KinesisWorkload } from './workload-kinesis.js';
import { checkKinesis, type KinesisCheckResult } from './checker-kinesis.js';
import { METADATA_WORKLOAD_DEFAULTS, MetadataWorkload } from './workload-metadata.js';
import { checkMetadata, readCommittedLogs, type MetadataCheck } from './metadata-check.js';

export interface RunOptions {
  scenario: string;
  seed: number;
  durationMs: number;
  resultsDir: string;
  /** Loopback subnet of the nodes; the next two hold the proxies. */
  subnet?: string;
  /** Print progress lines to stderr. */
  verbose?: boolean;
}

export interface UnavailabilityWindow {
  startMs: number;
  endMs: number;
  durationMs: number;
  /** Faults started shortly before or during the window. */
  faults: string[];
}

/** One partition's gaps between acknowledged writes (the producers write to every partition all along). */
export interface PartitionUnavailability {
  partition: number;
  windows: number;
  longestMs: number;
  totalMs: number;
}

export interface RunReport {
  scenario: string;
  seed: number;
  durationMs: number;
  valid: boolean;
  result: CheckResult;
  /** The Kinesis-like workload's check, in scenarios that run it. */
  kinesis?: KinesisCheckResult;
  /** Windows longer than a second without an acknowledged acks=all write to any partition. */
  unavailability: UnavailabilityWindow[];
  /** The same, partition by partition. */
  partitionUnavailability: PartitionUnavailability[];
  faults: { timeMs: number; type: string; fault: string }[];
  fullIsrAfterHeal: boolean;
  /** The Raft metadata history: client metadata operations linearizable, committed logs one log. */
  metadata: MetadataCheck;
  directory: string;
}

const WARMUP_MS = 3_000;
const READY_MS = 90_000;
const FULL_ISR_MS = 90_000;
/** Gaps between acknowledgements shorter than this are not reported as unavailability. */
const GAP_REPORTED_MS = 1_000;

export async function runScenario(options: RunOptions): Promise<RunReport> {
  const scenario = scenarioNamed(options.scenario);
  const directory = path.join(options.resultsDir, `${scenario.name}-${options.seed}`);
  rmSync(directory, { recursive: true, force: true });
  mkdirSync(directory, { recursive: true });
  const log = (line: string): void => {
    if (options.verbose) process.stderr.write(`[chaos ${scenario.name} seed ${options.seed}] ${line}\n`);
  };
  const history = new History(path.join(directory, 'history.jsonl'));
  const flushTimer = setInterval(() => history.flush(), 1_000);
  const azs = ['a', 'b', 'c'];
  const cluster = new ChaosCluster({ subnet: options.subnet ?? '127.0.40', controllers: 3, brokers: 3, azs, runDir: directory });
  const topic = 'chaos';
  const faultRandom = new Prng(options.seed);
  const workload = new KafkaWorkload(cluster.bootstrap, history, { ...KAFKA_WORKLOAD_DEFAULTS, topic }, new Prng(options.seed ^ 0x5eed));
  const nemesis = new Nemesis(cluster, history, faultRandom, topic);
  const stream = 'chaos-stream';
  const kinesis = scenario.kinesis ? new KinesisWorkload(cluster.bootstrap, history, { ...KINESIS_WORKLOAD_DEFAULTS, stream }, new Prng(options.seed ^ 0x4b15)) : null;
  const metadataWorkload = new MetadataWorkload(cluster.bootstrap, history, METADATA_WORKLOAD_DEFAULTS, new Prng(options.seed ^ 0x3e7a));
  const groups = new GroupWorkload(cluster.bootstrap, history, { topic, group: 'chaos-group', partitions: KAFKA_WORKLOAD_DEFAULTS.partitions, members: 3, restartEveryMs: 10_000, racks: azs }, new Prng(options.seed ^ 0x9e0));
  try {
    log('starting cluster');
    await cluster.startProxies();
    for (const id of cluster.nodes.keys()) cluster.start(id);
    await Promise.all([...cluster.nodes.keys()].map((id) => cluster.waitReady(id, READY_MS)));
    await workload.setUp();
    await kinesis?.setUp();
    await nemesis.waitFullIsr(FULL_ISR_MS);
    log('workload running');
    workload.start();
    groups.start();
    kinesis?.start();
    metadataWorkload.start();
    await sleep(WARMUP_MS);
    const endAt = Date.now() + options.durationMs;
    await scenario.run({ cluster, nemesis, groups, kinesis, random: faultRandom, running: () => Date.now() < endAt, sleep: (ms) => sleep(Math.max(0, Math.min(ms, endAt - Date.now()))) });
    log('healing');
    await nemesis.healAll();
    const fullIsrAfterHeal = await nemesis.waitFullIsr(FULL_ISR_MS, kinesis ? [stream] : []);
    log(`full ISR after heal: ${fullIsrAfterHeal}; draining`);
    await workload.stop();
    await metadataWorkload.stop();
    await groups.stop(workload.partitionEnds);
    await kinesis?.stop();
    const logs = await workload.finalRead(acknowledgedEnds(history.ops));
    const checksums = await workload.replicaChecksums((id) => cluster.clientAddress(id));
    // A stream is a topic underneath: its replicas are compared like the workload topic's.
    if (kinesis) checksums.push(...(await workload.replicaChecksums((id) => cluster.clientAddress(id), stream)));
    const kinesisResult = kinesis ? checkKinesis(history.ops, await kinesis.finalRead()) : undefined;
    history.flush();
    const result = check(history.ops, { logs, checksums });
    // The controllers' Raft logs are read from disk once every node has stopped.
    await groups.abort();
    await cluster.shutdown();
    const committedLogs = await readCommittedLogs([...cluster.nodes.values()].filter((node) => node.isController).map((node) => ({ id: node.id, dataDir: node.dataDir })));
    const metadata = checkMetadata(history.ops, committedLogs);
    log(`metadata: ${metadata.operations} operations, ${metadata.logsCompared} committed logs to index ${metadata.commitIndexMax}: ${metadata.valid ? 'ok' : metadata.problems.join('; ')}`);
    const report: RunReport = {
      scenario: scenario.name,
      seed: options.seed,
      durationMs: options.durationMs,
      valid: result.valid && fullIsrAfterHeal && metadata.valid && (kinesisResult?.valid ?? true),
      result,
      kinesis: kinesisResult,
      unavailability: unavailabilityWindows(history.ops),
      partitionUnavailability: partitionUnavailability(history.ops),
      faults: history.ops.filter((op) => op.f === 'nemesis').map((op) => ({ timeMs: op.timeMs, type: op.type, fault: op.fault ?? '' })),
      fullIsrAfterHeal,
      metadata,
      directory,
    };
    writeFileSync(path.join(directory, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(path.join(directory, 'report.md'), renderMarkdown(report));
    log(`done: ${report.valid ? 'valid' : 'ANOMALIES'}`);
    return report;
  } finally {
    clearInterval(flushTimer);
    await groups.abort();
    await kinesis?.abort();
    history.flush();
    nemesis.close();
    await cluster.shutdown();
    rmSync(path.join(directory, 'data'), { recursive: true, force: true });
  }
}

/** Per partition, one past the highest acknowledged offset. */
function acknowledgedEnds(ops: readonly Op[]): Map<number, number> {
  const ends = new Map<number, number>();
  for (const op of ops) {
    if (op.f === 'send' && op.type === 'ok' && op.partition !== undefined && op.offset !== undefined) {
      ends.set(op.partition, Math.max(ends.get(op.partition) ?? 0, op.offset + 1));
    }
  }
  return ends;
}

/** Gaps between consecutive acknowledged sends, with the faults around them. */
export function unavailabilityWindows(ops: readonly Op[]): UnavailabilityWindow[] {
  const acks = ops.filter((op) => op.f === 'send' && op.type === 'ok').map((op) => op.timeMs);
  const faults = ops.filter((op) => op.f === 'nemesis' && op.type === 'invoke');
  const windows: UnavailabilityWindow[] = [];
  for (let index = 1; index < acks.length; index++) {
    const gap = acks[index]! - acks[index - 1]!;
    if (gap < GAP_REPORTED_MS) continue;
    const startMs = acks[index - 1]!;
    const endMs = acks[index]!;
    const around = faults.filter((op) => op.timeMs >= startMs - 2_000 && op.timeMs <= endMs).map((op) => op.fault ?? '');
    windows.push({ startMs, endMs, durationMs: gap, faults: around });
  }
  return windows;
}

/**
 * Gaps of a second or more between consecutive acknowledged sends to each partition: how long
 * each partition took no writes, where the windows above count only the times no partition did.
 */
export function partitionUnavailability(ops: readonly Op[]): PartitionUnavailability[] {
  const lastAck = new Map<number, number>();
  const byPartition = new Map<number, PartitionUnavailability>();
  for (const op of ops) {
    if (op.f !== 'send' || op.type !== 'ok' || op.partition === undefined) continue;
    let figures = byPartition.get(op.partition);
    if (!figures) byPartition.set(op.partition, (figures = { partition: op.partition, windows: 0, longestMs: 0, totalMs: 0 }));
    const previous = lastAck.get(op.partition);
    lastAck.set(op.partition, op.timeMs);
    if (previous === undefined || op.timeMs - previous < GAP_REPORTED_MS) continue;
    const gap = op.timeMs - previous;
    figures.windows++;
    figures.longestMs = Math.max(figures.longestMs, gap);
    figures.totalMs += gap;
  }
  return [...byPartition.values()].sort((a, b) => a.partition - b.partition);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
