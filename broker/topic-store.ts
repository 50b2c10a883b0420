// The topic catalogue of a single-node cluster: which topics exist, their partition counts and
// configs, kept in <data-dir>/metadata/topics.json and replaced atomically (write, fsync, rename,
// fsync the directory) so a crash leaves either the old or the new catalogue, never a torn one.
//
// This is the broker's metadata source until the controller quorum exists; the controller's
// MetadataImage takes its place then, behind the same read methods.
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { RiffleError } from '../src/rpc/errors.js';
import { assert } from '../src/util/assert.js';

export type TopicKind = 'kafka' | 'stream';

export interface TopicRecord {
  readonly name: string;
  readonly topicId: string;
  readonly kind: TopicKind;
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly configs: Readonly<Record<string, string>>;
  readonly internal: boolean;
  readonly createdAtMs: number;
}

const CATALOGUE_VERSION = 1;
export const TOPIC_NAME_LENGTH_MAX = 249;
export const TOPIC_PARTITIONS_MAX = 10_000;

/** Kafka's topic name rule: 1..249 of [a-zA-Z0-9._-], and neither '.' nor '..'. */
export function validateTopicName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new RiffleError('INVALID_TOPIC_EXCEPTION', 'Topic name is empty.');
  if (name.length > TOPIC_NAME_LENGTH_MAX) {
    throw new RiffleError('INVALID_TOPIC_EXCEPTION', `Topic name is longer than ${TOPIC_NAME_LENGTH_MAX} characters.`);
  }
  if (name === '.' || name === '..') throw new RiffleError('INVALID_TOPIC_EXCEPTION', `Topic name cannot be '${name}'.`);
  if (!/^[a-zA-Z0-9._-]+$/.test(name)) {
    throw new RiffleError('INVALID_TOPIC_EXCEPTION', `Topic name '${name}' has characters other than ASCII letters, digits, '.', '_' and '-'.`);
  }
}

export class TopicStore {
  private readonly topics = new Map<string, TopicRecord>();
  private writeChain: Promise<void> = Promise.resolve();

  private constructor(private readonly file: string) {}

  static async open(dataDir: string): Promise<TopicStore> {
    const dir = path.join(dataDir, 'metadata');
    await fs.mkdir(dir, { recursive: true });
    const store = new TopicStore(path.join(dir, 'topics.json'));
    await store.load();
    return store;
  }

  private async load(): Promise<void> {
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    const parsed = JSON.parse(text) as { version: number; topics: TopicRecord[] };
    assert(parsed.version === CATALOGUE_VERSION, () => `${this.file}: unknown catalogue version ${parsed.version}`);
    for (const topic of parsed.topics) this.topics.set(topic.name, Object.freeze({ ...topic, configs: Object.freeze({ ...topic.configs }) }));
  }

  get(name: string): TopicRecord | undefined {
    return this.topics.get(name);
  }

  list(): TopicRecord[] {
    return [...this.topics.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  async create(spec: Omit<TopicRecord, 'topicId' | 'createdAtMs'>, nowMs: number): Promise<TopicRecord> {
    validateTopicName(spec.name);
    if (this.topics.has(spec.name)) throw new RiffleError('TOPIC_ALREADY_EXISTS', `Topic '${spec.name}' already exists.`);
    assert(spec.partitions >= 1 && spec.partitions <= TOPIC_PARTITIONS_MAX, 'partition count validated by the caller');
    const record: TopicRecord = Object.freeze({ ...spec, configs: Object.freeze({ ...spec.configs }), topicId: randomUUID(), createdAtMs: nowMs });
    this.topics.set(record.name, record);
    await this.persist();
    return record;
  }

  async update(name: string, change: Partial<Pick<TopicRecord, 'partitions' | 'configs'>>): Promise<TopicRecord> {
    const current = this.topics.get(name);
    if (!current) throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Topic '${name}' does not exist.`);
    const next: TopicRecord = Object.freeze({ ...current, ...change, configs: Object.freeze({ ...(change.configs ?? current.configs) }) });
    this.topics.set(name, next);
    await this.persist();
    return next;
  }

  async remove(name: string): Promise<TopicRecord> {
    const current = this.topics.get(name);
    if (!current) throw new RiffleError('UNKNOWN_TOPIC_OR_PARTITION', `Topic '${name}' does not exist.`);
    this.topics.delete(name);
    await this.persist();
    return current;
  }

  /** Writes are chained so two concurrent changes cannot interleave their renames. */
  private persist(): Promise<void> {
    const snapshot = JSON.stringify({ version: CATALOGUE_VERSION, topics: this.list() }, null, 2);
    this.writeChain = this.writeChain.then(() => writeFileAtomic(this.file, snapshot));
    return this.writeChain;
  }
}

export async function writeFileAtomic(file: string, contents: string): Promise<void> {
  const temporary = `${file}.tmp`;
  const handle = await fs.open(temporary, 'w');
  try {
    await handle.writeFile(contents);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(temporary, file);
  const dir = await fs.open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
