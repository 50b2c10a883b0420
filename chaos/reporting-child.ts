// Application processes of the chaos workloads (consumer group members, Kinesis application
// workers): each runs as a child process that reports its operations as JSON lines on stdout,
// stamped with the wall clock, so the harness can kill -9 it like a crashed application. This
// file starts them, turns their lines into history operations, stops them, and churns them
// (now and then one is killed or stopped and a new one started).
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Prng } from '../src/util/prng.js';
import type { Op } from './history.js';

/** An operation as a child reports it: no index, time or process yet; `at` is its wall clock. */
export type ReportedOp = Omit<Op, 'index' | 'timeMs' | 'process'>;

/** How long a child stopped with SIGTERM may take to leave before it is killed. */
const STOP_GRACE_MS = 20_000;

export interface ReportingChild {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
}

/** Starts `node entry args...`; every JSON line it prints goes to `onOp` with its wall-clock time. */
export function startReportingChild(name: string, entry: string, args: string[], onOp: (op: ReportedOp, atMs: number | undefined) => void): ReportingChild {
  const child = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let parsed: ReportedOp & { at?: number };
    try {
      parsed = JSON.parse(line) as typeof parsed;
    } catch {
      return;
    }
    const { at, ...op } = parsed;
    onOp(op, at);
  });
  return { name, child, exited };
}

/** kill -9, resolved once the process is gone. */
export async function killChild(handle: ReportingChild): Promise<void> {
  handle.child.kill('SIGKILL');
  await handle.exited;
}

/** SIGTERM (the child leaves gracefully), then kill -9 if it has not exited within the grace. */
export async function stopChild(handle: ReportingChild): Promise<void> {
  handle.child.kill('SIGTERM');
  const timer = setTimeout(() => handle.child.kill('SIGKILL'), STOP_GRACE_MS);
  await handle.exited;
  clearTimeout(timer);
}

/**
 * Until `stopping()`, every `everyMs` on average: picks one of `names()` by the seed, and has
 * `replace` kill it (crash) or stop it (planned), each half the time, and start another.
 */
export async function churn(options: {
  everyMs: number;
  random: Prng;
  stopping: () => boolean;
  names: () => string[];
  replace: (name: string, crash: boolean) => Promise<void>;
}): Promise<void> {
  while (!options.stopping()) {
    await new Promise((resolve) => setTimeout(resolve, options.everyMs * (0.5 + options.random.next())));
    if (options.stopping()) break;
    const names = options.names().sort();
    if (names.length === 0) continue;
    const victim = options.random.pick(names);
    await options.replace(victim, options.random.chance(0.5));
  }
}
