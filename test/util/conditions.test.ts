import { describe, expect, it } from 'vitest';
import { Conditions } from '../../src/util/conditions.js';

describe('Conditions', () => {
  it('resolves true at once when the condition already holds', async () => {
    expect(await new Conditions().waitFor(() => true, 10)).toBe(true);
  });

  it('resolves true when a change makes the condition hold, and forgets the waiter', async () => {
    const conditions = new Conditions();
    let value = 0;
    const waiting = conditions.waitFor(() => value >= 2, 5_000);
    value = 1;
    conditions.changed();
    value = 2;
    conditions.changed();
    expect(await waiting).toBe(true);
    value = 0;
    conditions.changed();
  });

  it('resolves false when the timeout passes first', async () => {
    const conditions = new Conditions();
    expect(await conditions.waitFor(() => false, 20)).toBe(false);
  });
});
