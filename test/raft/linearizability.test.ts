// The linearizability checker must accept every linearizable register history and reject the
// non-linearizable ones, including when some writes have unknown outcomes.
import { describe, expect, it } from 'vitest';
import { Prng } from '../../src/util/prng.js';
import { checkLinearizable, type KvOperation } from '../../raft/linearizability.js';

const w = (client: number, value: string, invokeMs: number, completeMs: number, key = 'x'): KvOperation =>
  ({ client, kind: 'write', key, value, invokeMs, completeMs });
const r = (client: number, value: string | null, invokeMs: number, completeMs: number, key = 'x'): KvOperation =>
  ({ client, kind: 'read', key, value, invokeMs, completeMs });

describe('linearizability checker', () => {
  it('rejects a read that misses a write which completed before the read began', () => {
    const result = checkLinearizable([w(1, '1', 0, 10), r(2, null, 20, 30)]);
    expect(result.ok).toBe(false);
  });

  it('rejects a stale read after a newer value was observed', () => {
    const history = [w(1, '1', 0, 10), w(2, '2', 15, 25), r(3, '2', 30, 40), r(3, '1', 50, 60)];
    const result = checkLinearizable(history);
    expect(result).toMatchObject({ ok: false, key: 'x' });
  });

  it('rejects flip-flopping reads even when the second write has an unknown outcome', () => {
    const history = [w(1, '1', 0, 10), w(2, '2', 15, Infinity), r(3, '2', 20, 30), r(3, '1', 40, 50)];
    expect(checkLinearizable(history).ok).toBe(false);
  });

  it('accepts a write with unknown outcome that takes effect late', () => {
    const history = [w(1, '1', 0, 10), w(2, '2', 15, Infinity), r(3, '1', 20, 30), r(3, '2', 40, 50)];
    expect(checkLinearizable(history)).toEqual({ ok: true, operations: 4 });
  });

  it('accepts a write with unknown outcome that never takes effect', () => {
    const history = [w(1, '1', 0, 10), w(2, '2', 15, Infinity), r(3, '1', 20, 30), r(3, '1', 400, 500)];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  it('accepts concurrent operations in either order', () => {
    const history = [w(1, '1', 0, 100), w(2, '2', 10, 90), r(3, '1', 20, 95), r(4, '2', 5, 30)];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  it('checks keys independently', () => {
    const history = [w(1, '1', 0, 10, 'a'), r(2, null, 20, 30, 'b'), r(2, '1', 40, 50, 'a')];
    expect(checkLinearizable(history).ok).toBe(true);
    expect(checkLinearizable([...history, r(3, null, 60, 70, 'a')])).toMatchObject({ ok: false, key: 'a' });
  });

  it('accepts random sequential histories and rejects them after one read is corrupted', () => {
    const seed = 20261122;
    const prng = new Prng(seed);
    console.log(`linearizability random history seed ${seed}`);
    const history: KvOperation[] = [];
    let value: string | null = null;
    for (let i = 0; i < 400; i++) {
      const start = i * 10;
      if (prng.chance(0.5)) history.push(w(i % 4, (value = `v${i}`), start, start + 5));
      else history.push(r(i % 4, value, start, start + 5));
    }
    expect(checkLinearizable(history).ok).toBe(true);
    const readAt = history.findIndex((op, i) => i > 200 && op.kind === 'read' && op.value !== null);
    history[readAt] = { ...history[readAt]!, value: 'never-written' };
    expect(checkLinearizable(history).ok).toBe(false);
  });

  it('gives up after its step budget instead of running unbounded', () => {
    const history: KvOperation[] = [];
    for (let i = 0; i < 14; i++) history.push(w(i, `v${i}`, 0, 1000));
    history.push(r(99, 'missing', 0, 1000));
    const result = checkLinearizable(history, 1_000);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(/gave up/);
  });
});
