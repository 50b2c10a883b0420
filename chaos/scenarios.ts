// The scenarios: each is a fault schedule driven by the run's seeded PRNG for a given duration.
// Between faults the cluster gets a few seconds to recover, as in Jepsen's standard nemesis
// cadence; the runner then heals everything and checks the history.
import type { Prng } from '../src/util/prng.js';
import type { ChaosCluster } from './cluster.js';
import type { Nemesis } from './nemesis.js';

export interface ScenarioContext {
  cluster: ChaosCluster;
  nemesis: Nemesis;
  random: Prng;
  /** True until the scenario's duration is over. */
  running: () => boolean;
  /** The consumer group of the workload, for faults aimed at the application. */
  groups: { crashOne(): Promise<void> };
  /** The Kinesis-like workload, in scenarios that run it (`kinesis: true`); null otherwise. */
  kinesis: { reshard(): Promise<void> } | null;
  sleep: (ms: number) => Promise<void>;
}

export interface Scenario {
  name: string;
  description: string;
  /** Also runs the Kinesis-like workload (a stream with PutRecords producers and readers). */
  kinesis?: boolean;
  run: (context: ScenarioContext) => Promise<void>;
}

/** A random delay in [minMs, maxMs). */
function between(random: Prng, minMs: number, maxMs: number): number {
  return random.int(minMs, maxMs);
}

function azGroups(cluster: ChaosCluster): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  for (const node of cluster.nodes.values()) groups.set(node.az, [...(groups.get(node.az) ?? []), node.id]);
  return groups;
}

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'leader-kill',
    description: 'kill -9 the node leading most partitions, restart it a few seconds later, repeat',
    async run({ nemesis, random, running, sleep }) {
      while (running()) {
        const leader = await nemesis.leaderOfMost();
        if (leader !== undefined) await nemesis.kill([leader], 'leader', between(random, 2_000, 6_000));
        await sleep(between(random, 6_000, 10_000));
      }
    },
  },
  {
    name: 'controller-kill',
    description: 'kill -9 the active controller (a combined node), restart it later, repeat',
    async run({ nemesis, random, running, sleep }) {
      while (running()) {
        const controller = await nemesis.activeController();
        if (controller !== undefined) await nemesis.kill([controller], 'controller', between(random, 2_000, 6_000));
        await sleep(between(random, 6_000, 10_000));
      }
    },
  },
  {
    name: 'az-outage',
    description: 'kill -9 every node of one availability zone, bring the zone back, repeat with another',
    async run({ cluster, nemesis, random, running, sleep }) {
      const zones = [...azGroups(cluster)];
      while (running()) {
        const [az, ids] = random.pick(zones);
        await nemesis.kill(ids, `az ${az}`, between(random, 5_000, 10_000));
        await sleep(between(random, 12_000, 16_000));
      }
    },
  },
  {
    name: 'az-partition',
    description: 'cut one availability zone off from the others (bytes hang both ways), heal, repeat',
    async run({ cluster, nemesis, random, running, sleep }) {
      const zones = [...azGroups(cluster)];
      while (running()) {
        const [az, ids] = random.pick(zones);
        nemesis.isolate(ids, `az ${az}`);
        await sleep(between(random, 5_000, 10_000));
        await nemesis.endOne();
        await sleep(between(random, 5_000, 8_000));
      }
    },
  },
  {
    name: 'pause-leader',
    description: 'SIGSTOP the node leading most partitions past its session timeout (a zombie leader), SIGCONT, repeat',
    async run({ nemesis, random, running, sleep }) {
      while (running()) {
        const leader = await nemesis.leaderOfMost();
        if (leader !== undefined) nemesis.pause([leader], 'leader');
        await sleep(between(random, 4_000, 8_000));
        await nemesis.endOne();
        await sleep(between(random, 5_000, 8_000));
      }
    },
  },
  {
    name: 'rolling-restart',
    description: 'SIGTERM (controlled shutdown) every node in turn, waiting for it to be ready again',
    async run({ cluster, nemesis, random, running, sleep }) {
      while (running()) {
        for (const id of cluster.nodes.keys()) {
          if (!running()) break;
          await nemesis.restartGracefully(id);
          await sleep(between(random, 1_000, 3_000));
        }
      }
    },
  },
  {
    name: 'flapping-partitions',
    description: 'every few seconds, isolate a random node, cut a random link one way, or split the nodes into a majorities ring, then heal it',
    async run({ cluster, nemesis, random, running, sleep }) {
      const ids = [...cluster.nodes.keys()];
      while (running()) {
        const choice = random.next();
        if (choice < 0.4) nemesis.isolate([random.pick(ids)], 'node');
        else if (choice < 0.6) nemesis.majorityRing();
        else {
          const from = random.pick(ids);
          nemesis.cutOneWay(from, random.pick(ids.filter((id) => id !== from)));
        }
        await sleep(between(random, 2_000, 5_000));
        await nemesis.endOne();
        await sleep(between(random, 1_000, 3_000));
      }
    },
  },
  {
    name: 'isolate-controller',
    description: 'cut the active controller off from every other node, heal, repeat',
    async run({ nemesis, random, running, sleep }) {
      while (running()) {
        const controller = await nemesis.activeController();
        if (controller !== undefined) nemesis.isolate([controller], 'controller');
        await sleep(between(random, 5_000, 9_000));
        await nemesis.endOne();
        await sleep(between(random, 5_000, 8_000));
      }
    },
  },
  {
    name: 'disk-torn-tail',
    description: 'kill -9 a random node and cut bytes off the end of one of its partition segments, restart it',
    async run({ cluster, nemesis, random, running, sleep }) {
      const ids = [...cluster.nodes.keys()];
      while (running()) {
        await nemesis.tearTail(random.pick(ids), between(random, 1, 4_096));
        await sleep(between(random, 6_000, 10_000));
      }
    },
  },
  {
    name: 'majority-ring',
    description: 'Jepsen majorities ring: every node hears a bare majority, no two the same one; heal, repeat with another ring',
    async run({ nemesis, random, running, sleep }) {
      while (running()) {
        nemesis.majorityRing();
        await sleep(between(random, 5_000, 10_000));
        await nemesis.endOne();
        await sleep(between(random, 4_000, 7_000));
      }
    },
  },
  {
    name: 'disk-bitflip',
    description: 'stop a random node (SIGTERM or kill -9), flip a byte in a batch of an older segment of one of its replicas, restart it',
    async run({ cluster, nemesis, random, running, sleep }) {
      const ids = [...cluster.nodes.keys()];
      while (running()) {
        await nemesis.flipByte(random.pick(ids), random.chance(0.5));
        await sleep(between(random, 6_000, 10_000));
      }
    },
  },
  {
    name: 'consumer-crash-loop',
    description: 'kill -9 a consumer group member every few seconds (a crash-looping application), no broker faults',
    async run({ groups, random, running, sleep }) {
      while (running()) {
        await groups.crashOne();
        await sleep(between(random, 2_000, 5_000));
      }
    },
  },
  {
    name: 'kinesis-reshard-under-faults',
    description: 'Kinesis workload too: split, merge and scale the stream again and again while nodes and the active controller are killed',
    kinesis: true,
    async run({ cluster, nemesis, kinesis, random, running, sleep }) {
      const ids = [...cluster.nodes.keys()];
      while (running()) {
        await kinesis!.reshard();
        await sleep(between(random, 1_000, 3_000));
        if (random.chance(0.5)) {
          await nemesis.kill([random.pick(ids)], 'node', between(random, 2_000, 6_000));
        } else {
          const controller = await nemesis.activeController();
          if (controller !== undefined) await nemesis.kill([controller], 'controller', between(random, 2_000, 6_000));
        }
        await sleep(between(random, 4_000, 8_000));
      }
    },
  },
  {
    name: 'mixed-random',
    description: 'random faults of every kind, sometimes overlapping',
    async run(context) {
      const { cluster, nemesis, random, running, sleep } = context;
      const ids = [...cluster.nodes.keys()];
      const zones = [...azGroups(cluster)];
      while (running()) {
        const choice = random.int(0, 9);
        if (choice === 0) {
          const leader = await nemesis.leaderOfMost();
          if (leader !== undefined) await nemesis.kill([leader], 'leader', between(random, 2_000, 8_000));
        } else if (choice === 1) {
          const controller = await nemesis.activeController();
          if (controller !== undefined) await nemesis.kill([controller], 'controller', between(random, 2_000, 8_000));
        } else if (choice === 2) {
          const [az, members] = random.pick(zones);
          await nemesis.kill(members, `az ${az}`, between(random, 4_000, 10_000));
        } else if (choice === 3) {
          nemesis.pause([random.pick(ids)], 'node');
        } else if (choice === 4) {
          const [az, members] = random.pick(zones);
          nemesis.isolate(members, `az ${az}`);
        } else if (choice === 5) {
          const from = random.pick(ids);
          nemesis.cutOneWay(from, random.pick(ids.filter((id) => id !== from)));
        } else if (choice === 6) {
          await nemesis.restartGracefully(random.pick(ids));
        } else if (choice === 7) {
          nemesis.majorityRing();
        } else {
          await nemesis.flipByte(random.pick(ids), random.chance(0.5));
        }
        await sleep(between(random, 3_000, 7_000));
        if (random.chance(0.7)) await nemesis.endOne();
      }
    },
  },
];

/** The short scenarios CI runs. */
export const SMOKE_SCENARIOS = ['leader-kill', 'controller-kill', 'pause-leader'] as const;

export function scenarioNamed(name: string): Scenario {
  const scenario = SCENARIOS.find((candidate) => candidate.name === name);
  if (!scenario) throw new Error(`unknown scenario '${name}'; known: ${SCENARIOS.map((candidate) => candidate.name).join(', ')}`);
  return scenario;
}
