// /readyz's replica condition: a broker is caught up once it is in the ISR of every partition it
// replicates that has a leader; leaderless partitions cannot take it back and do not hold it up.
import { describe, expect, it } from 'vitest';
import { MetadataImage, NO_LEADER } from '../../controller/index.js';
import { outOfIsrReason, READINESS_PARTITIONS_NAMED_MAX, replicasOutOfIsr } from '../../broker/replica-readiness.js';
import { partitionRecord, registerRecord, topicRecord } from '../controller/fixtures.js';

function threeReplicaImage(): MetadataImage {
  return MetadataImage.EMPTY
    .apply(1, [registerRecord(1, 'a'), registerRecord(2, 'b'), registerRecord(3, 'c')])
    .apply(2, [topicRecord('orders', 't1'), partitionRecord('t1', 0, [1, 2, 3]), partitionRecord('t1', 1, [2, 3, 1])])
    .apply(3, [topicRecord('solo', 't2', 1), partitionRecord('t2', 0, [2])]);
}

describe('replicasOutOfIsr', () => {
  it('is empty while the broker is in the ISR of every partition it replicates', () => {
    const image = threeReplicaImage();
    for (const id of [1, 2, 3]) expect(replicasOutOfIsr(image, id)).toEqual([]);
  });

  it('names the partitions whose ISR has dropped the broker, until it is back', () => {
    const shrunk = threeReplicaImage().apply(4, [
      { partitionChange: { topicId: 't1', partition: 0, isr: [2, 3], isrChanged: true, leader: 2 } },
      { partitionChange: { topicId: 't1', partition: 1, isr: [2, 3], isrChanged: true } },
    ]);
    expect(replicasOutOfIsr(shrunk, 1)).toEqual(['orders-0', 'orders-1']);
    expect(replicasOutOfIsr(shrunk, 2)).toEqual([]);
    const expanded = shrunk.apply(5, [{ partitionChange: { topicId: 't1', partition: 0, isr: [1, 2, 3], isrChanged: true } }]);
    expect(replicasOutOfIsr(expanded, 1)).toEqual(['orders-1']);
  });

  it('ignores leaderless partitions, which cannot take the broker back', () => {
    const leaderless = threeReplicaImage().apply(4, [{ partitionChange: { topicId: 't1', partition: 0, isr: [2], isrChanged: true, leader: NO_LEADER } }]);
    expect(replicasOutOfIsr(leaderless, 1)).toEqual([]);
  });
});

describe('outOfIsrReason', () => {
  it('says nothing when all replicas are in sync and names a bounded number otherwise', () => {
    expect(outOfIsrReason([])).toBeUndefined();
    expect(outOfIsrReason(['a-0'])).toBe('1 replica(s) not yet back in the ISR: a-0');
    const many = Array.from({ length: READINESS_PARTITIONS_NAMED_MAX + 3 }, (_, index) => `t-${index}`);
    const reason = outOfIsrReason(many)!;
    expect(reason).toContain('and 3 more');
    expect(reason).not.toContain(`t-${READINESS_PARTITIONS_NAMED_MAX}`);
  });
});
