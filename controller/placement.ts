// Replica placement for new partitions (KRaft's ReplicaPlacer, simplified): the replicas of a
// partition go to distinct racks (AZs) while the cluster has racks left unused by that partition,
// and both preferred leaders and replicas are spread evenly over brokers, counting the load the
// image already holds. The first replica is the preferred leader. Only active brokers (neither
// fenced nor in controlled shutdown) take new replicas. Ties are broken by a rotation of the
// broker list starting at `startIndex`, so the result is deterministic given the image and it.
// Departure from Kafka: Kafka stripes replicas over a rack-alternating broker list per topic;
// this greedy least-loaded choice is simpler and balances across topics too.
import { RiffleError } from '../src/rpc/errors.js';
import { assert } from '../src/util/assert.js';
import type { MetadataImage } from './metadata-image.js';
import type { BrokerInfo } from './metadata-types.js';

/** The most partitions one placement call assigns (a topic's partition limit). */
export const PLACEMENT_PARTITIONS_MAX = 10_000;

export interface PlacementRequest {
  /** How many new partitions to place. */
  readonly partitions: number;
  readonly replicationFactor: number;
  /** Where the tie-breaking rotation of the broker list starts (any integer). */
  readonly startIndex: number;
}

interface Candidate {
  readonly broker: BrokerInfo;
  /** Position in the rotated broker list: the tie-breaker. */
  readonly order: number;
  replicas: number;
  leaders: number;
}

/** Replica lists for `partitions` new partitions; throws INVALID_REPLICATION_FACTOR when impossible. */
export function placeReplicas(image: MetadataImage, request: PlacementRequest): number[][] {
  assert(Number.isInteger(request.partitions) && request.partitions >= 1 && request.partitions <= PLACEMENT_PARTITIONS_MAX,
    () => `placement of ${request.partitions} partitions`);
  assert(Number.isInteger(request.startIndex), () => `placement start index ${request.startIndex}`);
  const candidates = loadOf(image, request.startIndex);
  const rf = request.replicationFactor;
  if (!Number.isInteger(rf) || rf < 1 || rf > candidates.length) {
    throw new RiffleError('INVALID_REPLICATION_FACTOR',
      `Replication factor ${rf} is below 1 or larger than the ${candidates.length} available broker(s).`);
  }
  const rackCount = new Set(candidates.map((candidate) => candidate.broker.rack)).size;
  const result: number[][] = [];
  for (let index = 0; index < request.partitions; index++) result.push(placeOne(candidates, rf, rackCount));
  return result;
}

function placeOne(candidates: Candidate[], replicationFactor: number, rackCount: number): number[] {
  const chosen: Candidate[] = [];
  const leader = best(candidates, (a, b) => a.leaders - b.leaders || a.replicas - b.replicas || a.order - b.order);
  chosen.push(leader);
  leader.leaders += 1;
  leader.replicas += 1;
  while (chosen.length < replicationFactor) {
    const racksUsed = new Set(chosen.map((candidate) => candidate.broker.rack));
    const spreadRacks = racksUsed.size < rackCount;
    const eligible = candidates.filter((candidate) =>
      !chosen.includes(candidate) && (!spreadRacks || !racksUsed.has(candidate.broker.rack)));
    const next = best(eligible, (a, b) => a.replicas - b.replicas || a.leaders - b.leaders || a.order - b.order);
    chosen.push(next);
    next.replicas += 1;
  }
  const replicas = chosen.map((candidate) => candidate.broker.nodeId);
  assert(new Set(replicas).size === replicationFactor, () => `placement chose ${replicas}`);
  return replicas;
}

function best(candidates: readonly Candidate[], compare: (a: Candidate, b: Candidate) => number): Candidate {
  assert(candidates.length > 0, 'placement ran out of candidate brokers');
  let winner = candidates[0]!;
  for (const candidate of candidates) if (compare(candidate, winner) < 0) winner = candidate;
  return winner;
}

/** Active brokers with the replicas and preferred leaderships they already hold. */
function loadOf(image: MetadataImage, startIndex: number): Candidate[] {
  const brokers = image.activeBrokers();
  const count = brokers.length;
  const start = count === 0 ? 0 : ((startIndex % count) + count) % count;
  const byId = new Map<number, Candidate>();
  brokers.forEach((broker, index) => {
    byId.set(broker.nodeId, { broker, order: (index - start + count) % count, replicas: 0, leaders: 0 });
  });
  for (const partition of image.allPartitions()) {
    partition.replicas.forEach((replica, position) => {
      const candidate = byId.get(replica);
      if (!candidate) return;
      candidate.replicas += 1;
      if (position === 0) candidate.leaders += 1;
    });
  }
  return [...byId.values()];
}
