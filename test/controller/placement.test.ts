import { describe, expect, it } from 'vitest';
import { MetadataImage } from '../../controller/index.js';
import { placeReplicas } from '../../controller/placement.js';
import { isRiffleError } from '../../src/rpc/errors.js';
import { partitionRecord, registerRecord, stateRecord, topicRecord } from './fixtures.js';

/** Brokers 1..n with racks from `racks` in turn, all active. */
function clusterImage(racks: string[], count: number, fenced: number[] = []): MetadataImage {
  let image = MetadataImage.EMPTY;
  for (let id = 1; id <= count; id++) image = image.apply(id, [registerRecord(id, racks[(id - 1) % racks.length]!)]);
  for (let id = 1; id <= count; id++) {
    if (!fenced.includes(id)) image = image.apply(count + id, [stateRecord(id, id, 'active')]);
  }
  return image;
}

function counts(assignments: number[][], pick: (replicas: number[]) => number[]): Map<number, number> {
  const result = new Map<number, number>();
  for (const replicas of assignments) for (const id of pick(replicas)) result.set(id, (result.get(id) ?? 0) + 1);
  return result;
}

function spread(values: Map<number, number>, brokers: number): number {
  const all = [...values.values()];
  while (all.length < brokers) all.push(0);
  return Math.max(...all) - Math.min(...all);
}

describe('placement', () => {
  it('puts the 3 replicas of every partition in 3 AZs on a 6-broker, 3-AZ cluster', () => {
    const image = clusterImage(['a', 'b', 'c'], 6);
    const assignments = placeReplicas(image, { partitions: 300, replicationFactor: 3, startIndex: 0 });
    for (const replicas of assignments) {
      expect(new Set(replicas.map((id) => image.broker(id)!.rack)).size).toBe(3);
    }
  });

  it('spreads leaders (max - min <= 1) and replicas evenly over 1000 partitions', () => {
    const image = clusterImage(['a', 'b', 'c'], 6);
    const assignments = placeReplicas(image, { partitions: 1000, replicationFactor: 3, startIndex: 4 });
    expect(spread(counts(assignments, (replicas) => [replicas[0]!]), 6)).toBeLessThanOrEqual(1);
    expect(spread(counts(assignments, (replicas) => replicas), 6)).toBeLessThanOrEqual(1);
  });

  it('counts the load the image already holds', () => {
    let image = clusterImage(['a', 'b', 'c'], 3);
    image = image.apply(100, [topicRecord('old', 'o1', 1), partitionRecord('o1', 0, [1]), partitionRecord('o1', 1, [1])]);
    const leaders = placeReplicas(image, { partitions: 4, replicationFactor: 1, startIndex: 0 }).map((replicas) => replicas[0]);
    expect(leaders.filter((id) => id === 1)).toHaveLength(0);
    expect(new Set(leaders)).toEqual(new Set([2, 3]));
  });

  it('uses every rack before repeating one when RF exceeds the rack count', () => {
    const image = clusterImage(['a', 'b'], 4);
    for (const replicas of placeReplicas(image, { partitions: 50, replicationFactor: 3, startIndex: 1 })) {
      expect(new Set(replicas.map((id) => image.broker(id)!.rack)).size).toBe(2);
      expect(new Set(replicas).size).toBe(3);
    }
  });

  it('places only on active brokers and refuses RF above them with INVALID_REPLICATION_FACTOR', () => {
    const image = clusterImage(['a', 'b', 'c'], 4, [2]);
    for (const replicas of placeReplicas(image, { partitions: 20, replicationFactor: 3, startIndex: 0 })) {
      expect(replicas).not.toContain(2);
    }
    for (const rf of [4, 0]) {
      let error: unknown;
      try {
        placeReplicas(image, { partitions: 1, replicationFactor: rf, startIndex: 0 });
      } catch (caught) {
        error = caught;
      }
      expect(isRiffleError(error, 'INVALID_REPLICATION_FACTOR')).toBe(true);
    }
  });

  it('is deterministic given the image and the start index', () => {
    const image = clusterImage(['a', 'b', 'c'], 6);
    const first = placeReplicas(image, { partitions: 30, replicationFactor: 3, startIndex: 7 });
    expect(placeReplicas(image, { partitions: 30, replicationFactor: 3, startIndex: 7 })).toEqual(first);
    expect(placeReplicas(image, { partitions: 30, replicationFactor: 3, startIndex: 8 })).not.toEqual(first);
  });
});
