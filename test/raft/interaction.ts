// A scripted-interaction harness for the Raft core, in the style of etcd-io/raft's datadriven
// testdata: a file of commands, each followed by "----" and the output it must produce. Run with
// RIFFLE_REWRITE=1 to rewrite the expected outputs (then review the diff by hand).
import { readFileSync, writeFileSync } from 'node:fs';
import { Prng } from '../../src/util/prng.js';
import { makeRaftConfig } from '../../raft/config.js';
import { RaftCore } from '../../raft/core.js';
import { KvStateMachine, encodeKvCommand } from '../../raft/kv-state-machine.js';
import { MemoryStorage } from '../../raft/storage.js';
import type { Message, NodeId } from '../../raft/types.js';

/** Rounds of message exchange per stabilize; a scenario that needs more is a bug. */
const STABILIZE_ROUNDS_MAX = 500;
const TICKS_PER_COMMAND_MAX = 1_000;

interface Node {
  core: RaftCore | undefined;
  readonly storage: MemoryStorage;
  machine: KvStateMachine;
}

interface Block {
  readonly command: string;
  readonly expected: string;
}

export function parseScript(text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '' || line.startsWith('#')) continue;
    if (lines[i + 1] !== '----') throw new Error(`line ${i + 2}: expected ---- after "${line}"`);
    const output: string[] = [];
    for (i += 2; i < lines.length && lines[i] !== ''; i++) output.push(lines[i]!);
    blocks.push({ command: line, expected: output.join('\n') });
  }
  return blocks;
}

export class Interaction {
  private nodes = new Map<NodeId, Node>();
  private ids: NodeId[] = [];
  private blocked = new Set<string>();
  private network: Message[] = [];
  private output: string[] = [];
  private options: Record<string, string> = {};

  run(command: string): string {
    this.output = [];
    const [name, ...args] = command.trim().split(/\s+/);
    const handler = this.commands[name!];
    if (!handler) throw new Error(`unknown command ${name}`);
    handler(args);
    return this.output.join('\n');
  }

  private readonly commands: Record<string, (args: string[]) => void> = {
    cluster: (args) => this.cluster(args),
    campaign: ([id]) => this.campaign(Number(id)),
    stabilize: () => this.stabilize(),
    tick: ([target, count]) => this.tick(target!, Number(count ?? 1)),
    propose: ([id, value]) => this.propose(Number(id), value!),
    'propose-many': ([id, count]) => {
      for (let i = 0; i < Number(count); i++) this.propose(Number(id), `bulk${i}`, true);
      this.print(`proposed ${count} on ${id}`);
    },
    read: ([id, requestId]) => {
      const result = this.core(Number(id)).readIndex(Number(requestId));
      this.print(result.ok ? `read ${requestId} accepted` : `read ${requestId} rejected: ${result.reason}, leader ${result.leader}`);
    },
    transfer: ([from, to]) => this.print(`transfer ${this.core(Number(from)).transferLeadership(Number(to)) ? 'started' : 'refused'}`),
    compact: ([id]) => this.compact(Number(id)),
    isolate: ([id]) => this.partition([Number(id)]),
    partition: (args) => this.partition(args.map(Number)),
    cut: ([link]) => {
      const [from, to] = link!.split('>');
      this.blocked.add(`${from}>${to}`);
    },
    heal: () => this.blocked.clear(),
    crash: ([id]) => {
      this.nodes.get(Number(id))!.core = undefined;
      this.network = this.network.filter((m) => m.to !== Number(id));
    },
    restart: ([id]) => this.start(Number(id)),
    status: () => this.status(),
    log: ([id]) => this.printLog(Number(id)),
    get: ([id, key]) => this.print(`node ${id} ${key}=${this.nodes.get(Number(id))!.machine.get(key!) ?? '(none)'}`),
  };

  private print(line: string): void {
    this.output.push(line);
  }

  private core(id: NodeId): RaftCore {
    const core = this.nodes.get(id)?.core;
    if (!core) throw new Error(`node ${id} is down`);
    return core;
  }

  private cluster(args: string[]): void {
    this.options = Object.fromEntries(args.filter((a) => a.includes('=')).map((a) => a.split('=') as [string, string]));
    const count = Number(this.options.n ?? 3);
    this.nodes = new Map();
    this.blocked.clear();
    this.network = [];
    this.ids = Array.from({ length: count }, (_, i) => i + 1);
    for (const id of this.ids) {
      this.nodes.set(id, { core: undefined, storage: new MemoryStorage(), machine: new KvStateMachine() });
      this.start(id);
    }
  }

  private start(id: NodeId): void {
    const node = this.nodes.get(id)!;
    const config = makeRaftConfig(id, this.ids, {
      preVote: this.options.prevote !== 'false',
      checkQuorum: this.options.checkquorum !== 'false',
      electionTicks: 10, electionTicksMax: 20, heartbeatTicks: 1,
    });
    const initial = node.storage.loadSync();
    node.core = new RaftCore(config, new Prng(id * 7919), initial, (line) => this.print(line));
    node.machine = new KvStateMachine();
    node.machine.restore(initial.snapshot.data);
  }

  private campaign(id: NodeId): void {
    const core = this.core(id);
    for (let i = 0; i < TICKS_PER_COMMAND_MAX && core.role === 'follower'; i++) core.tick();
  }

  private tick(target: string, count: number): void {
    const ids = target === 'all' ? this.ids : target.split(',').map(Number);
    for (let i = 0; i < Math.min(count, TICKS_PER_COMMAND_MAX); i++) {
      for (const id of ids) this.nodes.get(id)!.core?.tick();
      this.stabilize();
    }
  }

  private propose(id: NodeId, value: string, quiet = false): void {
    const result = this.core(id).propose(encodeKvCommand({ key: 'k', value }));
    if (quiet && result.ok) return;
    this.print(result.ok ? `proposal ${value} at index ${result.index} term ${result.term}` : `proposal ${value} rejected: ${result.reason}, leader ${result.leader}`);
  }

  private compact(id: NodeId): void {
    const node = this.nodes.get(id)!;
    const core = this.core(id);
    const applied = node.machine.appliedIndex;
    const data = node.machine.snapshot();
    node.storage.saveSnapshotSync({ meta: { index: applied, term: core.log.term(applied)! }, data });
    core.compact(applied, data);
    this.print(`node ${id} compacted to index ${applied}`);
  }

  private partition(side: NodeId[]): void {
    for (const a of side) {
      for (const b of this.ids) {
        if (side.includes(b)) continue;
        this.blocked.add(`${a}>${b}`);
        this.blocked.add(`${b}>${a}`);
      }
    }
  }

  /** Handles Readies and delivers messages until nothing moves. */
  private stabilize(): void {
    for (let round = 0; round < STABILIZE_ROUNDS_MAX; round++) {
      let moved = false;
      for (const id of this.ids) moved = this.processReady(id) || moved;
      const deliver = this.network;
      this.network = [];
      for (const message of deliver) {
        const core = this.nodes.get(message.to)!.core;
        if (core && !this.blocked.has(`${message.from}>${message.to}`)) core.step(message);
        moved = true;
      }
      if (!moved) return;
    }
    throw new Error('stabilize did not settle');
  }

  private processReady(id: NodeId): boolean {
    const node = this.nodes.get(id)!;
    const core = node.core;
    if (!core || !core.hasReady()) return false;
    const ready = core.ready();
    node.storage.saveSync({ hardState: ready.hardState, entries: ready.entries, snapshot: ready.snapshot });
    if (ready.snapshot) node.machine.restore(ready.snapshot.data);
    this.network.push(...ready.messages);
    for (const entry of ready.committedEntries) if (entry.index > node.machine.appliedIndex) node.machine.apply(entry);
    for (const read of ready.readStates) this.print(`node ${id} read ${read.requestId} ready at index ${read.index}`);
    core.advance();
    return true;
  }

  private status(): void {
    for (const id of this.ids) {
      const node = this.nodes.get(id)!;
      const s = node.core?.status();
      if (!s) this.print(`${id}: down`);
      else this.print(`${id}: ${s.role} term=${s.term} leader=${s.leader} commit=${s.commit} applied=${node.machine.appliedIndex} last=${s.lastIndex} snapshot=${s.snapshotIndex}`);
    }
  }

  private printLog(id: NodeId): void {
    const core = this.core(id);
    const terms: string[] = [];
    for (let i = core.log.firstIndex(); i <= core.log.lastIndex(); i++) terms.push(`${i}/${core.log.term(i)}`);
    this.print(`node ${id} log after snapshot ${core.log.snapshot().meta.index}: ${terms.join(' ') || '(empty)'}`);
  }
}

/** Runs a script file; returns [command, expected, actual] for every block. */
export function runScript(path: string): { command: string; expected: string; actual: string }[] {
  const blocks = parseScript(readFileSync(path, 'utf8'));
  const interaction = new Interaction();
  const results = blocks.map((block) => ({ ...block, actual: interaction.run(block.command) }));
  if (process.env.RIFFLE_REWRITE === '1') rewrite(path, results);
  return results;
}

function rewrite(path: string, results: { command: string; actual: string }[]): void {
  const original = readFileSync(path, 'utf8').split('\n');
  const comments: string[] = [];
  const out: string[] = [];
  let block = 0;
  for (let i = 0; i < original.length; i++) {
    const line = original[i]!;
    if (line.startsWith('#')) { comments.push(line); continue; }
    if (line.trim() === '') continue;
    out.push(...comments.splice(0), results[block]!.command, '----', ...(results[block]!.actual ? [results[block]!.actual] : []), '');
    block++;
    for (i += 2; i < original.length && original[i] !== ''; i++);
  }
  writeFileSync(path, out.join('\n'));
}
