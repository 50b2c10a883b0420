// A key-value register state machine: the workload of the simulator, the real-process test and
// the benchmark. Commands are small JSON documents; reads are served locally after ReadIndex.
// Departure: it also keeps a rolling hash of everything applied, so the simulator can check that
// two nodes that applied the same prefix hold the same state.
import { assert } from '../src/util/assert.js';
import type { Entry } from './types.js';

export interface KvCommand {
  readonly key: string;
  readonly value: string;
}

/** The interface the driver applies committed entries to. */
export interface StateMachine {
  apply(entry: Entry): unknown;
  snapshot(): Uint8Array;
  restore(data: Uint8Array): void;
}

/** Keys and values are bounded so one command stays small. */
export const KV_KEY_BYTES_MAX = 256;
export const KV_VALUE_BYTES_MAX = 64 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeKvCommand(command: KvCommand): Uint8Array {
  assert(command.key.length <= KV_KEY_BYTES_MAX && command.value.length <= KV_VALUE_BYTES_MAX, 'kv command too large');
  return encoder.encode(JSON.stringify([command.key, command.value]));
}

export function decodeKvCommand(data: Uint8Array): KvCommand {
  const parsed: unknown = JSON.parse(decoder.decode(data));
  assert(Array.isArray(parsed) && parsed.length === 2 && typeof parsed[0] === 'string' && typeof parsed[1] === 'string', 'malformed kv command');
  return { key: parsed[0], value: parsed[1] };
}

/** FNV-1a step over a string, for the rolling state hash. */
function hashStep(hash: number, text: string): number {
  let h = hash >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export class KvStateMachine implements StateMachine {
  private readonly values = new Map<string, string>();
  appliedIndex = 0;
  stateHash = 0x811c9dc5;

  apply(entry: Entry): string | undefined {
    assert(entry.index === this.appliedIndex + 1, () => `apply ${entry.index} after ${this.appliedIndex}`);
    this.appliedIndex = entry.index;
    this.stateHash = hashStep(this.stateHash, `${entry.index}/${entry.term}/${entry.kind}`);
    if (entry.kind !== 'normal' || entry.data.byteLength === 0) return undefined;
    const command = decodeKvCommand(entry.data);
    const previous = this.values.get(command.key);
    this.values.set(command.key, command.value);
    this.stateHash = hashStep(this.stateHash, `${command.key}=${command.value}`);
    return previous;
  }

  get(key: string): string | undefined {
    return this.values.get(key);
  }

  size(): number {
    return this.values.size;
  }

  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify({ applied: this.appliedIndex, hash: this.stateHash, values: [...this.values] }));
  }

  restore(data: Uint8Array): void {
    this.values.clear();
    if (data.byteLength === 0) {
      this.appliedIndex = 0;
      this.stateHash = 0x811c9dc5;
      return;
    }
    const parsed = JSON.parse(decoder.decode(data)) as { applied: number; hash: number; values: [string, string][] };
    for (const [key, value] of parsed.values) this.values.set(key, value);
    this.appliedIndex = parsed.applied;
    this.stateHash = parsed.hash;
  }
}
