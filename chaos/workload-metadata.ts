// The metadata workload: a few clients create, describe and delete small topics of their own
// (names never reused) while the faults run, each operation recorded in the history as f
// 'metadata'. Creates and deletes go through the active controller (the Raft metadata log);
// describes are answered from a broker's metadata image. The checker (metadata-check.ts) treats
// each topic as a register (exists or not) and checks the operations for linearizability.
import { Admin, RiffleClient } from '../src/client/index.js';
import { toRiffleError } from '../src/rpc/errors.js';
import type { Prng } from '../src/util/prng.js';
import type { History } from './history.js';

export interface MetadataWorkloadOptions {
  clients: number;
  /** Pause between one client's operations, at random in [0, pauseMsMax). */
  pauseMsMax: number;
  /** Topics one client creates at most (a bound on the cluster's metadata growth). */
  topicsPerClientMax: number;
}

export const METADATA_WORKLOAD_DEFAULTS: MetadataWorkloadOptions = { clients: 2, pauseMsMax: 1_000, topicsPerClientMax: 200 };

/** Prefix of the workload's topic names (the Kafka workload's topic is "chaos"). */
export const METADATA_TOPIC_PREFIX = 'meta-';

export class MetadataWorkload {
  private stopping = false;
  private readonly loops: Promise<void>[] = [];
  private readonly clients: RiffleClient[] = [];
  /** Topics whose create was acknowledged, by any client. */
  private readonly created: string[] = [];

  constructor(
    private readonly bootstrap: string,
    private readonly history: History,
    private readonly options: MetadataWorkloadOptions,
    private readonly random: Prng,
  ) {}

  start(): void {
    for (let index = 0; index < this.options.clients; index++) this.loops.push(this.run(`meta-${index}`, index));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    for (const client of this.clients) client.close();
  }

  private async run(process: string, index: number): Promise<void> {
    const client = new RiffleClient({ bootstrap: this.bootstrap, requestTimeoutMs: 5_000, retry: { deadlineMs: 15_000 } });
    this.clients.push(client);
    const admin = new Admin(client);
    for (let sequence = 0; !this.stopping; sequence++) {
      const choice = this.random.next();
      if ((choice < 0.45 || this.created.length === 0) && sequence < this.options.topicsPerClientMax) {
        await this.create(admin, process, `${METADATA_TOPIC_PREFIX}${index}-${sequence}`);
      } else if (choice < 0.9 || this.created.length === 0) {
        // Now and then a name nobody created: its describe must always say it does not exist.
        const name = this.random.chance(0.1) || this.created.length === 0 ? `${METADATA_TOPIC_PREFIX}never-${sequence}` : this.random.pick(this.created);
        await this.describe(admin, process, name);
      } else {
        await this.delete(admin, process, this.random.pick(this.created));
      }
      await new Promise((resolve) => setTimeout(resolve, this.random.int(0, this.options.pauseMsMax)));
    }
  }

  private async create(admin: Admin, process: string, name: string): Promise<void> {
    this.history.add({ type: 'invoke', f: 'metadata', action: 'create', process, value: name });
    try {
      await admin.createTopic({ name, partitions: 1, replicationFactor: 1 });
      this.history.add({ type: 'ok', f: 'metadata', action: 'create', process, value: name });
      this.created.push(name);
    } catch (error) {
      const errorName = toRiffleError(error).errorName;
      // The name is unique to this call: "exists" means an earlier attempt of this call created it.
      if (errorName === 'TOPIC_ALREADY_EXISTS') {
        this.history.add({ type: 'ok', f: 'metadata', action: 'create', process, value: name, error: errorName });
        this.created.push(name);
      } else {
        this.history.add({ type: 'info', f: 'metadata', action: 'create', process, value: name, error: errorName });
      }
    }
  }

  private async describe(admin: Admin, process: string, name: string): Promise<void> {
    this.history.add({ type: 'invoke', f: 'metadata', action: 'describe', process, value: name });
    try {
      await admin.describeTopic(name);
      this.history.add({ type: 'ok', f: 'metadata', action: 'describe', process, value: name, exists: true });
    } catch (error) {
      const errorName = toRiffleError(error).errorName;
      if (errorName === 'UNKNOWN_TOPIC_OR_PARTITION') this.history.add({ type: 'ok', f: 'metadata', action: 'describe', process, value: name, exists: false });
      else this.history.add({ type: 'fail', f: 'metadata', action: 'describe', process, value: name, error: errorName });
    }
  }

  private async delete(admin: Admin, process: string, name: string): Promise<void> {
    this.history.add({ type: 'invoke', f: 'metadata', action: 'delete', process, value: name });
    try {
      await admin.deleteTopic(name);
      this.history.add({ type: 'ok', f: 'metadata', action: 'delete', process, value: name });
    } catch (error) {
      const errorName = toRiffleError(error).errorName;
      // Gone already: a retry of this call after its first attempt took effect, or an earlier delete.
      if (errorName === 'UNKNOWN_TOPIC_OR_PARTITION') this.history.add({ type: 'ok', f: 'metadata', action: 'delete', process, value: name, error: errorName });
      else this.history.add({ type: 'info', f: 'metadata', action: 'delete', process, value: name, error: errorName });
    }
  }
}
