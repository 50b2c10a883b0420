// A seeded random walk over the controller: brokers register, restart, die, come back and shut
// down; topics come and go; leaders alter ISRs; time jumps and tick() fences and elects. Image
// invariants are checked after every step, then everything heals and every partition must have a
// leader again. A failure prints the seed; RIFFLE_SEED=<seed> replays it.
import { describe, expect, it } from 'vitest';
import { MetadataImage, NO_LEADER } from '../../controller/index.js';
import { RiffleError } from '../../src/rpc/errors.js';
import { Prng } from '../../src/util/prng.js';
import { createHarness, type Harness } from './controller-harness.js';

const STEPS = 400;
const NODE_IDS = [1, 2, 3, 4, 5, 6];
const RACKS = ['a', 'b', 'c'];

interface SimBroker {
  epoch: number | null;
  incarnation: number;
  alive: boolean;
}

class Simulation {
  readonly harness: Harness;
  readonly prng: Prng;
  readonly brokers = new Map<number, SimBroker>();
  private topicCount = 0;

  constructor(readonly seed: number) {
    this.prng = new Prng(seed);
    this.harness = createHarness(seed, { config: { preferredLeaderCheckIntervalMs: 2_000 } });
  }

  /** Always the first controller's image (both replay the same log), so identity compares work across failovers. */
  get image(): MetadataImage {
    return this.harness.controllers[0].image;
  }

  async step(): Promise<string> {
    const roll = this.prng.int(0, 100);
    if (roll < 12) return this.register();
    if (roll < 40) return this.heartbeatAll();
    if (roll < 46) return this.kill();
    if (roll < 52) return this.revive();
    if (roll < 60) return this.createTopic();
    if (roll < 63) return this.deleteTopic();
    if (roll < 75) return this.alterPartition();
    if (roll < 78) return this.shutdown();
    if (roll < 80) return this.growTopic();
    if (roll < 82) return this.failover();
    return this.tick();
  }

  async register(nodeId = this.prng.pick(NODE_IDS)): Promise<string> {
    const broker = this.brokers.get(nodeId) ?? { epoch: null, incarnation: 0, alive: true };
    broker.incarnation += 1;
    broker.alive = true;
    this.brokers.set(nodeId, broker);
    const response = await this.harness.controller.registerBroker({ nodeId, incarnationId: `${nodeId}.${broker.incarnation}`, rack: RACKS[nodeId % RACKS.length] });
    broker.epoch = response.brokerEpoch;
    return `register ${nodeId} -> epoch ${broker.epoch}`;
  }

  async heartbeatAll(wantShutdownOf?: number): Promise<string> {
    for (const [nodeId, broker] of this.brokers) {
      if (!broker.alive || broker.epoch === null) continue;
      const lagging = this.prng.chance(0.1);
      const metadataOffset = lagging ? Math.max(0, this.image.offset - 3) : this.image.offset;
      try {
        await this.harness.controller.brokerHeartbeat({ nodeId, brokerEpoch: broker.epoch, metadataOffset, wantShutdown: nodeId === wantShutdownOf });
      } catch (error) {
        expectTyped(error);
        broker.epoch = null; // STALE_BROKER_EPOCH: it must register again
      }
    }
    return 'heartbeat all';
  }

  kill(): string {
    const alive = [...this.brokers].filter(([, broker]) => broker.alive);
    if (alive.length === 0) return 'kill: nobody alive';
    const [nodeId, broker] = this.prng.pick(alive);
    broker.alive = false;
    return `kill ${nodeId}`;
  }

  async revive(): Promise<string> {
    const dead = [...this.brokers].filter(([, broker]) => !broker.alive);
    if (dead.length === 0) return 'revive: nobody dead';
    const [nodeId, broker] = this.prng.pick(dead);
    // Half come back as the same process (a partition healed), half restart as a new incarnation.
    if (broker.epoch !== null && this.prng.chance(0.5)) {
      broker.alive = true;
      return `revive ${nodeId}`;
    }
    return this.register(nodeId);
  }

  async createTopic(): Promise<string> {
    const name = `topic-${this.topicCount++}`;
    const request = { name, numPartitions: this.prng.int(1, 20), replicationFactor: this.prng.int(1, 5) };
    const { topics } = await this.harness.controller.createTopics({ topics: [request] });
    return `create ${name} ${request.numPartitions}x${request.replicationFactor}: ${topics[0]!.errorCode}`;
  }

  async deleteTopic(): Promise<string> {
    const topics = [...this.image.topics.values()];
    if (topics.length === 0) return 'delete: no topics';
    const topic = this.prng.pick(topics);
    const { responses } = await this.harness.controller.deleteTopics({ topicNames: [topic.name] });
    expect(responses[0]!.errorCode).toBe(0);
    return `delete ${topic.name}`;
  }

  async growTopic(): Promise<string> {
    const topics = [...this.image.topics.values()];
    if (topics.length === 0) return 'grow: no topics';
    const topic = this.prng.pick(topics);
    const count = topic.partitions.length + this.prng.int(1, 4);
    const { results } = await this.harness.controller.createPartitions({ topics: [{ name: topic.name, count }] });
    return `grow ${topic.name} to ${count}: ${results[0]!.errorCode}`;
  }

  /** A live leader proposes a random ISR that includes itself (sometimes with a stale epoch). */
  async alterPartition(): Promise<string> {
    const led = [...this.image.allPartitions()].filter((p) => p.leader !== NO_LEADER && this.brokers.get(p.leader)?.alive);
    if (led.length === 0) return 'alter: no led partitions';
    const partition = this.prng.pick(led);
    const others = partition.replicas.filter((id) => id !== partition.leader && this.prng.chance(0.6));
    const stale = this.prng.chance(0.1);
    const response = await this.harness.controller.alterPartition({
      brokerId: partition.leader, brokerEpoch: this.image.broker(partition.leader)!.epoch, topicId: partition.topicId,
      partition: partition.partition, leaderEpoch: partition.leaderEpoch, partitionEpoch: partition.partitionEpoch - (stale ? 1 : 0),
      newIsr: [partition.leader, ...others],
    });
    return `alter ${partition.topicId}-${partition.partition} isr [${partition.leader},${others}]: ${response.errorCode}`;
  }

  async shutdown(): Promise<string> {
    const alive = [...this.brokers].filter(([, broker]) => broker.alive && broker.epoch !== null);
    if (alive.length === 0) return 'shutdown: nobody alive';
    const [nodeId, broker] = this.prng.pick(alive);
    await this.heartbeatAll(nodeId);
    await this.heartbeatAll(nodeId);
    // The process exits: it comes back only as a new incarnation.
    broker.alive = false;
    broker.epoch = null;
    return `controlled shutdown ${nodeId}`;
  }

  /** The standby becomes active; the old active controller notices on its next tick. */
  async failover(): Promise<string> {
    const { log } = this.harness;
    log.activeIndex = 1 - log.activeIndex;
    for (const controller of this.harness.controllers) await controller.tick();
    return `failover to controller ${log.activeIndex}`;
  }

  async tick(): Promise<string> {
    const jumpMs = this.prng.int(0, 1_500);
    this.harness.clock.advance(jumpMs);
    for (const controller of this.harness.controllers) await controller.tick();
    return `tick +${jumpMs} ms`;
  }

  /** Everyone alive and registered, heartbeating through several session timeouts. */
  async heal(): Promise<void> {
    for (const nodeId of this.brokers.keys()) {
      const broker = this.brokers.get(nodeId)!;
      if (broker.epoch === null || this.image.broker(nodeId)?.epoch !== broker.epoch) await this.register(nodeId);
      broker.alive = true;
    }
    for (let round = 0; round < 10; round++) {
      this.harness.clock.advance(500);
      await this.heartbeatAll();
      await this.harness.controller.tick();
    }
  }
}

function expectTyped(error: unknown): void {
  if (!(error instanceof RiffleError)) throw error;
}

/** Plain checks (not expect) because they run for every partition after every step. */
function check(condition: boolean, message: () => string): void {
  if (!condition) throw new Error(`invariant violated: ${message()}`);
}

function checkInvariants(image: MetadataImage, previous: MetadataImage, stats: Stats): void {
  for (const partition of image.allPartitions()) {
    const what = (): string => `${partition.topicId}-${partition.partition} ${JSON.stringify(partition)}`;
    check(new Set(partition.replicas).size === partition.replicas.length, () => `replicas distinct: ${what()}`);
    check(partition.isr.length > 0, () => `isr non-empty: ${what()}`);
    check(partition.isr.every((member) => partition.replicas.includes(member)), () => `isr within replicas: ${what()}`);
    if (partition.leader !== NO_LEADER) {
      check(partition.isr.includes(partition.leader), () => `leader in isr: ${what()}`);
      check(image.broker(partition.leader)!.state === 'active', () => `leader active: ${what()}`);
    }
    const before = previous.partition(partition.topicId, partition.partition);
    if (!before || before === partition) continue;
    check(partition.leaderEpoch >= before.leaderEpoch, () => `leader epoch monotonic: ${what()}`);
    check(partition.partitionEpoch > before.partitionEpoch, () => `a change bumps the partition epoch: ${what()}`);
    if (partition.leader !== before.leader) {
      check(partition.leaderEpoch > before.leaderEpoch, () => `a leader change bumps the leader epoch: ${what()}`);
      stats.leaderChanges += 1;
    }
  }
  for (const broker of image.brokers.values()) {
    const before = previous.broker(broker.nodeId);
    check(broker.epoch >= (before?.epoch ?? 0), () => `broker ${broker.nodeId} epoch monotonic`);
    if (broker.state === 'fenced' && before?.state === 'active') stats.fencings += 1;
  }
  stats.maxOffline = Math.max(stats.maxOffline, image.offline().length);
}

interface Stats {
  failovers: number;
  leaderChanges: number;
  fencings: number;
  maxOffline: number;
}

async function run(seed: number): Promise<void> {
  const simulation = new Simulation(seed);
  const trail: string[] = [];
  const stats: Stats = { failovers: 0, leaderChanges: 0, fencings: 0, maxOffline: 0 };
  try {
    for (const nodeId of [1, 2, 3]) await simulation.register(nodeId);
    await simulation.heartbeatAll();
    for (let step = 0; step < STEPS; step++) {
      const previous = simulation.image;
      const active = simulation.harness.log.activeIndex;
      trail.push(await simulation.step());
      if (simulation.harness.log.activeIndex !== active) stats.failovers += 1;
      checkInvariants(simulation.image, previous, stats);
      expect(simulation.harness.standby.image.offset).toBe(simulation.image.offset);
      if (step % 50 === 0) expect(MetadataImage.fromSnapshot(simulation.image.toSnapshot()).toSnapshot()).toEqual(simulation.image.toSnapshot());
    }
    await simulation.heal();
    checkInvariants(simulation.image, simulation.image, stats);
    expect(simulation.image.offline().map((p) => `${p.topicId}-${p.partition} isr ${p.isr}`)).toEqual([]);
    expect(simulation.image.fencedBrokers()).toEqual([]);
    expect(simulation.harness.standby.image.toSnapshot()).toEqual(simulation.image.toSnapshot());
    // The walk must have exercised failures, not only happy paths.
    expect(stats.fencings).toBeGreaterThan(0);
    expect(stats.leaderChanges).toBeGreaterThan(0);
    console.log(`controller simulation seed ${seed}: ${JSON.stringify(stats)}, ${simulation.image.topics.size} topics, offset ${simulation.image.offset}`);
  } catch (error) {
    console.error(`controller simulation failed with seed ${seed}; last steps:\n${trail.slice(-15).join('\n')}`);
    throw error;
  }
}

describe('controller simulation', () => {
  const base = process.env.RIFFLE_SEED ? Number(process.env.RIFFLE_SEED) : Date.now() % 2 ** 31;
  // RIFFLE_SIM_RUNS=<n> walks n consecutive seeds from the base (a longer soak).
  const runs = Number(process.env.RIFFLE_SIM_RUNS ?? 0);
  const seeds = runs > 0 ? Array.from({ length: runs }, (_, index) => base + index) : process.env.RIFFLE_SEED ? [base] : [base, base + 1, base + 2, 7, 42];
  for (const seed of seeds) {
    it(`keeps the image invariants through a random walk (seed ${seed})`, async () => {
      await run(seed);
    });
  }
});
