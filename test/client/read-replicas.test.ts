// The consumer's memory of the replicas leaders preferred for it (KIP-392): used until it fails or
// grows old, then the leader again.
import { describe, expect, it } from 'vitest';
import { READ_REPLICA_MAX_AGE_MS, ReadReplicas } from '../../src/client/read-replicas.js';

describe('read replicas', () => {
  it('sends a partition to its preferred replica until the preference is forgotten or grows old', () => {
    const replicas = new ReadReplicas<string>();
    const start = 1_000_000;
    expect(replicas.nodeFor('t-0', 1, start)).toBe(1);
    replicas.prefer('t-0', 3, start);
    expect(replicas.nodeFor('t-0', 1, start + READ_REPLICA_MAX_AGE_MS - 1)).toBe(3);
    expect(replicas.nodeFor('t-1', 2, start)).toBe(2);
    // Old: back to the leader, and the preference is gone for good.
    expect(replicas.nodeFor('t-0', 1, start + READ_REPLICA_MAX_AGE_MS)).toBe(1);
    expect(replicas.forget('t-0')).toBe(false);

    replicas.prefer('t-0', 3, start);
    expect(replicas.forget('t-0')).toBe(true);
    expect(replicas.nodeFor('t-0', 1, start)).toBe(1);
  });
});
