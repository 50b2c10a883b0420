// A linearizability checker for a key-value register history, after Wing & Gong with Lowe's
// memoization ("Testing for linearizability", 2017): depth-first search over the order in which
// concurrent operations may take effect, caching (linearized set, state) pairs already explored.
// The history is partitioned per key (registers are independent), which keeps each search small.
//
// Indeterminate operations (the client crashed or timed out, so it never learned the outcome)
// have no completion: a write may take effect at any time after its invocation or never; an
// indeterminate read tells nothing and is dropped.
import { assert } from '../src/util/assert.js';

export interface KvOperation {
  readonly client: number;
  readonly kind: 'write' | 'read';
  readonly key: string;
  /** Written value, or the value the read returned (null: the key was absent). */
  readonly value: string | null;
  readonly invokeMs: number;
  /** Infinity when the outcome is unknown. */
  readonly completeMs: number;
}

export type CheckResult =
  | { readonly ok: true; readonly operations: number }
  | { readonly ok: false; readonly key: string; readonly reason: string };

/** Search steps per key before giving up; a bounded search that gives up fails the check. */
export const SEARCH_STEPS_MAX = 5_000_000;

export function checkLinearizable(history: readonly KvOperation[], stepsMax = SEARCH_STEPS_MAX): CheckResult {
  const byKey = new Map<string, KvOperation[]>();
  for (const op of history) {
    assert(op.completeMs >= op.invokeMs, () => `operation completes before it starts: ${JSON.stringify(op)}`);
    if (op.kind === 'read' && op.completeMs === Infinity) continue;
    let list = byKey.get(op.key);
    if (!list) byKey.set(op.key, (list = []));
    list.push(op);
  }
  let operations = 0;
  for (const [key, ops] of byKey) {
    const result = checkKey(ops, stepsMax);
    if (result !== 'ok') return { ok: false, key, reason: result };
    operations += ops.length;
  }
  return { ok: true, operations };
}

interface Event {
  readonly op: number;
  readonly isCall: boolean;
  readonly time: number;
  match: Event | undefined;
  prev: Event | undefined;
  next: Event | undefined;
}

function buildEvents(ops: readonly KvOperation[]): Event {
  const events: Event[] = [];
  ops.forEach((op, i) => {
    const call: Event = { op: i, isCall: true, time: op.invokeMs, match: undefined, prev: undefined, next: undefined };
    events.push(call);
    if (op.completeMs !== Infinity) {
      const ret: Event = { op: i, isCall: false, time: op.completeMs, match: undefined, prev: undefined, next: undefined };
      call.match = ret;
      events.push(ret);
    }
  });
  // At equal times calls sort first: touching operations count as concurrent (the permissive
  // reading, so clock granularity never produces a false alarm).
  events.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall));
  const head: Event = { op: -1, isCall: false, time: -Infinity, match: undefined, prev: undefined, next: undefined };
  let last = head;
  for (const event of events) {
    last.next = event;
    event.prev = last;
    last = event;
  }
  return head;
}

function lift(event: Event): void {
  event.prev!.next = event.next;
  if (event.next) event.next.prev = event.prev;
  const match = event.match;
  if (match) {
    match.prev!.next = match.next;
    if (match.next) match.next.prev = match.prev;
  }
}

function unlift(event: Event): void {
  const match = event.match;
  if (match) {
    match.prev!.next = match;
    if (match.next) match.next.prev = match;
  }
  event.prev!.next = event;
  if (event.next) event.next.prev = event;
}

/** Applies one operation to the register; undefined when the operation cannot happen here. */
function stepModel(state: string | null, op: KvOperation): string | null | undefined {
  if (op.kind === 'write') return op.value;
  return op.value === state ? state : undefined;
}

function checkKey(ops: readonly KvOperation[], stepsMax: number): 'ok' | string {
  const head = buildEvents(ops);
  const linearized = new Uint8Array(ops.length);
  const cache = new Set<string>();
  const stack: { event: Event; state: string | null }[] = [];
  let remaining = ops.filter((op) => op.completeMs !== Infinity).length;
  let state: string | null = null;
  let event = head.next;
  for (let steps = 0; steps < stepsMax; steps++) {
    if (remaining === 0) return 'ok';
    if (event !== undefined && event.isCall) {
      const op = ops[event.op]!;
      const next = stepModel(state, op);
      if (next !== undefined) {
        linearized[event.op] = 1;
        const cacheKey = `${linearized.join('')}|${next}`;
        if (!cache.has(cacheKey)) {
          cache.add(cacheKey);
          stack.push({ event, state });
          state = next;
          lift(event);
          if (op.completeMs !== Infinity) remaining--;
          event = head.next;
          continue;
        }
        linearized[event.op] = 0;
      }
      event = event.next;
      continue;
    }
    // A completion of an operation not yet linearized: this branch is dead, backtrack.
    const top = stack.pop();
    if (top === undefined) return `no linearization: ${describe(ops)}`;
    state = top.state;
    linearized[top.event.op] = 0;
    unlift(top.event);
    if (ops[top.event.op]!.completeMs !== Infinity) remaining++;
    event = top.event.next;
  }
  return `search gave up after ${stepsMax} steps over ${ops.length} operations`;
}

function describe(ops: readonly KvOperation[]): string {
  const shown = ops.slice(0, 20).map((op) => `c${op.client} ${op.kind}(${op.value}) [${op.invokeMs}, ${op.completeMs}]`);
  return shown.join('; ') + (ops.length > 20 ? ` ... (${ops.length} operations)` : '');
}
