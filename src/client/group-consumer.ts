// The group consumer: a member of a consumer group under KIP-848. The coordinator (found with
// FindCoordinator) assigns partitions; this client only heartbeats its subscription and what it
// owns, and follows the assignment it is given: partitions to give up are first finished
// (the message in progress completes), their processed offsets committed and the revocation
// listeners called, and only then does the next heartbeat say they are released; new partitions
// start at the group's committed offsets (or auto.offset.reset where there is none).
//
// The API follows kafkajs: subscribe({ topics | topic, fromBeginning }), run({ eachMessage |
// eachBatch }), commitOffsets, pause/resume, seek, stop/disconnect. Auto-commit commits what the
// handlers have finished (not what was merely fetched), every autoCommitIntervalMs, on revocation
// and on stop, so a crash replays at most what was processed since the last commit
// (at-least-once).
import type { RiffleClient } from './client.js';
import type { ConsumerRecord, OffsetReset } from './consumer.js';
import { GroupFetcher, tpKeyOf, type TopicPartition } from './group-fetcher.js';
import { RiffleError, errorNameOf, toRiffleError, type ErrorName } from '../rpc/errors.js';
import type { FindCoordinatorResponse__Output } from '../rpc/generated/riffle/v1/FindCoordinatorResponse.js';
import type { ConsumerGroupHeartbeatResponse__Output } from '../rpc/generated/riffle/v1/ConsumerGroupHeartbeatResponse.js';
import type { OffsetCommitResponse__Output } from '../rpc/generated/riffle/v1/OffsetCommitResponse.js';
import type { OffsetFetchResponse__Output } from '../rpc/generated/riffle/v1/OffsetFetchResponse.js';

export interface GroupConsumerOptions {
  groupId: string;
  /** Static membership (group.instance.id): a restart within the session timeout keeps the partitions. */
  instanceId?: string;
  /**
   * The member's availability zone (client.rack): the assignor favours partitions with a replica
   * there, and leaders may send its fetches to an in-sync replica there (KIP-392).
   */
  rack?: string;
  /** Server-side assignor: 'uniform' (default) or 'range'. */
  assignor?: string;
  rebalanceTimeoutMs?: number;
  /** Where to start a partition the group has no committed offset for (default 'latest'). */
  autoOffsetReset?: OffsetReset;
  autoCommit?: boolean;
  autoCommitIntervalMs?: number;
  maxWaitMs?: number;
  maxBytes?: number;
  partitionMaxBytes?: number;
  /** Called with partitions as they are assigned / before they are given up. */
  onPartitionsAssigned?: (partitions: TopicPartition[]) => void | Promise<void>;
  onPartitionsRevoked?: (partitions: TopicPartition[]) => void | Promise<void>;
}

export interface SubscribeOptions {
  topics?: (string | RegExp)[];
  topic?: string | RegExp;
  /** kafkajs' fromBeginning: auto.offset.reset earliest for partitions without a committed offset. */
  fromBeginning?: boolean;
}

export interface EachMessagePayload {
  topic: string;
  partition: number;
  message: ConsumerRecord;
  heartbeat(): Promise<void>;
  pause(): () => void;
}

export interface EachBatchPayload {
  batch: { topic: string; partition: number; messages: ConsumerRecord[]; highWatermark: number };
  /** Marks everything up to and including `offset` processed (for partial batches). */
  resolveOffset(offset: number): void;
  isRunning(): boolean;
  isStale(): boolean;
  heartbeat(): Promise<void>;
}

export interface RunOptions {
  eachMessage?: (payload: EachMessagePayload) => Promise<void>;
  eachBatch?: (payload: EachBatchPayload) => Promise<void>;
  autoCommit?: boolean;
}

export interface OffsetToCommit {
  topic: string;
  partition: number;
  offset: number;
  metadata?: string;
}

export type GroupConsumerEvent = 'assigned' | 'revoked' | 'lost' | 'error';

const DEFAULT_HEARTBEAT_INTERVAL_MS = 1_000;
/** Until a coordinator says otherwise (the broker default). */
const DEFAULT_SESSION_TIMEOUT_MS = 10_000;

/** How long before a coordinator-side deadline the member acts on its own: a fifth, at most 2 s. */
function guardMarginMs(timeoutMs: number): number {
  return Math.min(2_000, timeoutMs / 5);
}
const COORDINATOR_CALL_TIMEOUT_MS = 5_000;
/** Offset lookups (ListOffsets) one reconciliation has in flight at most. */
const OFFSET_LOOKUPS_IN_FLIGHT_MAX = 32;
const RETRY_BACKOFF_MS = 100;
/** Errors after which the member must join again with epoch 0 (and lose what it owned). */
const REJOIN_ERRORS: ReadonlySet<ErrorName> = new Set(['UNKNOWN_MEMBER_ID', 'FENCED_MEMBER_EPOCH']);

export class GroupConsumer {
  private readonly fetcher: GroupFetcher;
  private topics: string[] = [];
  private regex = '';
  private subscriptionChanged = true;
  private memberId = '';
  private memberEpoch = 0;
  private heartbeatIntervalMs = DEFAULT_HEARTBEAT_INTERVAL_MS;
  private coordinator?: string;
  private heartbeatTimer?: NodeJS.Timeout;
  /** Fires a margin before the coordinator could expire this member's session. */
  private sessionTimer?: NodeJS.Timeout;
  private sessionTimeoutMs = DEFAULT_SESSION_TIMEOUT_MS;
  private heartbeatInFlight?: Promise<void>;
  private heartbeatAgain = false;
  /** Cancels the heartbeat in flight when it is a long-poll one (held by the coordinator). */
  private longPollInFlight?: AbortController;
  /** The coordinator holds "no change" heartbeats (the long-poll extension): the next goes right after an answer. */
  private longPollSupported = false;
  /** How long a long-poll heartbeat may be held: the longest heartbeat interval the coordinator gave. */
  private longPollWaitMs = DEFAULT_HEARTBEAT_INTERVAL_MS;
  private reconciliation: Promise<void> = Promise.resolve();
  private reconciliationsPending = 0;
  /** The assignment waiting for the reconciliation in progress to finish (at most one waits). */
  private queuedTarget?: { target: Map<string, TopicPartition>; askedAtMs: number };
  /** Partitions the reconciliation in progress is starting on (reported as owned meanwhile). */
  private readonly adding = new Map<string, TopicPartition>();
  /** What this member owns (has been given and has not revoked). */
  private readonly owned = new Map<string, TopicPartition>();
  /** Offsets processed by the handlers and not yet committed, by partition. */
  private readonly processed = new Map<string, number>();
  private readonly committed = new Map<string, number>();
  /** Bumped whenever everything owned is lost; a reconciliation started before is stale. */
  private generation = 0;
  /** The last commit sent; the next waits for it. */
  private commitChain: Promise<unknown> = Promise.resolve();
  /** Seeks made from onPartitionsAssigned, applied when fetching of those partitions starts. */
  private readonly startOverrides = new Map<string, number>();
  private currentProcessing: Promise<unknown> = Promise.resolve();
  private autoCommitTimer?: NodeJS.Timeout;
  private state: 'idle' | 'joined' | 'stopping' | 'stopped' = 'idle';
  private runLoop?: Promise<void>;
  private readonly listeners = new Map<GroupConsumerEvent, Set<(payload: unknown) => void>>();
  private fatal?: RiffleError;
  private stopping?: Promise<void>;

  constructor(
    private readonly client: RiffleClient,
    private readonly options: GroupConsumerOptions,
  ) {
    if (!options.groupId) throw new RiffleError('INVALID_GROUP_ID', 'A group consumer needs a group id.');
    this.fetcher = new GroupFetcher(client, {
      maxWaitMs: options.maxWaitMs ?? 500,
      maxBytes: options.maxBytes ?? 50 * 1024 * 1024,
      partitionMaxBytes: options.partitionMaxBytes ?? 1024 * 1024,
      autoOffsetReset: options.autoOffsetReset ?? 'latest',
      rack: options.rack,
    });
  }

  get groupId(): string {
    return this.options.groupId;
  }

  /** The member id and epoch the coordinator gave this member (empty / 0 before joining). */
  member(): { memberId: string; memberEpoch: number } {
    return { memberId: this.memberId, memberEpoch: this.memberEpoch };
  }

  /** The partitions this member owns now. */
  assignment(): TopicPartition[] {
    return [...this.owned.values()].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
  }

  on(event: GroupConsumerEvent, listener: (payload: unknown) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  private emit(event: GroupConsumerEvent, payload: unknown): void {
    for (const listener of this.listeners.get(event) ?? []) listener(payload);
  }

  /** Adds topics (names, or regexes matched against whole topic names on the server) to the subscription. */
  subscribe(options: SubscribeOptions): void {
    const wanted = [...(options.topics ?? []), ...(options.topic !== undefined ? [options.topic] : [])];
    if (wanted.length === 0) throw new RiffleError('INVALID_REQUEST', 'subscribe needs a topic or topics.');
    for (const item of wanted) {
      if (typeof item === 'string') {
        if (!this.topics.includes(item)) this.topics.push(item);
      } else {
        this.regex = this.regex ? `${this.regex}|${item.source}` : item.source;
      }
    }
    if (options.fromBeginning) this.fetcher.options.autoOffsetReset = 'earliest';
    this.subscriptionChanged = true;
    if (this.state === 'joined') this.heartbeatSoon(0);
  }

  /** Joins the group and starts consuming in the background; resolves once the loop is running. */
  async run(options: RunOptions): Promise<void> {
    if (this.runLoop) throw new RiffleError('INVALID_REQUEST', 'run() was already called.');
    if (!options.eachMessage && !options.eachBatch) throw new RiffleError('INVALID_REQUEST', 'run() needs eachMessage or eachBatch.');
    if (this.topics.length === 0 && !this.regex) throw new RiffleError('INVALID_REQUEST', 'subscribe() before run().');
    this.state = 'joined';
    this.heartbeatSoon(0);
    const autoCommit = options.autoCommit ?? this.options.autoCommit ?? true;
    if (autoCommit) {
      this.autoCommitTimer = setInterval(() => {
        this.commitProcessed().catch((error: unknown) => this.emit('error', error));
      }, this.options.autoCommitIntervalMs ?? 5_000);
    }
    this.runLoop = this.loop(options).catch((error: unknown) => {
      this.fatal = toRiffleError(error);
      this.emit('error', this.fatal);
    });
  }

  private async loop(options: RunOptions): Promise<void> {
    while (this.state === 'joined') {
      if (this.fatal) throw this.fatal;
      let records: ConsumerRecord[];
      try {
        // With nothing owned the fetcher has nothing to fetch: it waits until a partition is added.
        records = await this.fetcher.poll();
      } catch (error) {
        const riffleError = toRiffleError(error);
        if (!riffleError.retriable) throw riffleError;
        await delay(RETRY_BACKOFF_MS);
        continue;
      }
      const byPartition = new Map<string, ConsumerRecord[]>();
      for (const record of records) {
        const key = tpKeyOf(record.topic, record.partition);
        let list = byPartition.get(key);
        if (!list) byPartition.set(key, (list = []));
        list.push(record);
      }
      for (const [key, batch] of byPartition) {
        if (this.state !== 'joined') return;
        if (options.eachBatch) await this.processBatch(key, batch, options.eachBatch);
        else await this.processMessages(key, batch, options.eachMessage!);
      }
    }
  }

  private usable(key: string, record: ConsumerRecord): boolean {
    return this.state === 'joined' && this.owned.has(key) && !this.fetcher.isPaused(record.topic, record.partition);
  }

  private async processMessages(key: string, batch: ConsumerRecord[], eachMessage: NonNullable<RunOptions['eachMessage']>): Promise<void> {
    for (const message of batch) {
      if (!this.usable(key, message)) return;
      const done = eachMessage({
        topic: message.topic, partition: message.partition, message,
        heartbeat: async () => undefined,
        pause: () => {
          this.pause([{ topic: message.topic, partitions: [message.partition] }]);
          return () => this.resume([{ topic: message.topic, partitions: [message.partition] }]);
        },
      });
      this.currentProcessing = done.catch(() => undefined);
      await done;
      this.processed.set(key, message.offset + 1);
      // A pause from inside the handler: the next fetch starts right after this message.
      if (this.fetcher.isPaused(message.topic, message.partition)) this.rewind(message.topic, message.partition);
    }
  }

  private async processBatch(key: string, messages: ConsumerRecord[], eachBatch: NonNullable<RunOptions['eachBatch']>): Promise<void> {
    const first = messages[0]!;
    if (!this.usable(key, first)) return;
    const done = eachBatch({
      batch: { topic: first.topic, partition: first.partition, messages, highWatermark: this.fetcher.highWatermarks.get(key) ?? -1 },
      resolveOffset: (offset) => this.processed.set(key, offset + 1),
      isRunning: () => this.state === 'joined',
      isStale: () => !this.owned.has(key),
      heartbeat: async () => undefined,
    });
    this.currentProcessing = done.catch(() => undefined);
    await done;
    if (this.owned.has(key)) this.processed.set(key, messages[messages.length - 1]!.offset + 1);
  }

  /** Pauses fetching of partitions; records already fetched but not processed are fetched again on resume. */
  pause(topics: { topic: string; partitions?: number[] }[]): void {
    for (const { topic, partition } of this.matching(topics)) {
      this.fetcher.pause(topic, partition);
      this.rewind(topic, partition);
    }
  }

  resume(topics: { topic: string; partitions?: number[] }[]): void {
    for (const { topic, partition } of this.matching(topics)) this.fetcher.resume(topic, partition);
  }

  paused(): TopicPartition[] {
    return this.assignment().filter(({ topic, partition }) => this.fetcher.isPaused(topic, partition));
  }

  /** The next record consumed from the partition will be the one at `offset`. */
  seek({ topic, partition, offset }: { topic: string; partition: number; offset: number }): void {
    const key = tpKeyOf(topic, partition);
    // From an onPartitionsAssigned listener the partition is owned but not fetched yet.
    if (this.owned.has(key) && !this.fetcher.has(topic, partition)) this.startOverrides.set(key, offset);
    else this.fetcher.seek(topic, partition, offset);
  }

  private rewind(topic: string, partition: number): void {
    const processed = this.processed.get(tpKeyOf(topic, partition)) ?? this.committed.get(tpKeyOf(topic, partition));
    if (processed !== undefined && this.fetcher.has(topic, partition)) this.fetcher.seek(topic, partition, processed);
  }

  private matching(topics: { topic: string; partitions?: number[] }[]): TopicPartition[] {
    return this.assignment().filter(({ topic, partition }) => topics.some((wanted) => wanted.topic === topic && (wanted.partitions === undefined || wanted.partitions.includes(partition))));
  }

  // ---- heartbeats and reconciliation ----

  private heartbeatSoon(delayMs: number): void {
    clearTimeout(this.heartbeatTimer);
    if (this.state !== 'joined') return;
    this.heartbeatTimer = setTimeout(() => this.heartbeatNow(), delayMs);
  }

  /**
   * One heartbeat at a time; asking while one is out sends another right after it. A long-poll
   * heartbeat in flight may be held by the coordinator for up to an interval: it is cancelled,
   * so the news (a revocation done, a new subscription) goes out at once.
   */
  private heartbeatNow(): void {
    if (this.heartbeatInFlight) {
      this.heartbeatAgain = true;
      this.longPollInFlight?.abort();
      return;
    }
    clearTimeout(this.heartbeatTimer);
    this.heartbeatInFlight = this.sendHeartbeat()
      .then((nextInMs) => this.heartbeatSoon(this.heartbeatAgain ? 0 : nextInMs))
      .catch((error: unknown) => {
        this.fatal = toRiffleError(error);
        this.emit('error', this.fatal);
      })
      .finally(() => {
        this.heartbeatInFlight = undefined;
        this.heartbeatAgain = false;
      });
  }

  /** Sends one heartbeat and handles the answer; returns when the next one is due. */
  private async sendHeartbeat(leaving = false): Promise<number> {
    const request = this.heartbeatRequest(leaving);
    const sentAtMs = performance.now();
    let response: ConsumerGroupHeartbeatResponse__Output;
    const longPoll = request.longPollMaxWaitMs > 0 ? new AbortController() : undefined;
    this.longPollInFlight = longPoll;
    try {
      response = await this.callCoordinator<ConsumerGroupHeartbeatResponse__Output>('ConsumerGroupHeartbeat', request, request.longPollMaxWaitMs, longPoll?.signal);
    } catch (error) {
      if (leaving) throw error;
      // Cancelled here to send a newer heartbeat at once (the coordinator drops the held one).
      if (longPoll?.signal.aborted) return 0;
      return this.retryAfter(toRiffleError(error));
    } finally {
      if (this.longPollInFlight === longPoll) this.longPollInFlight = undefined;
    }
    if (response.errorCode !== 0) {
      const error = new RiffleError(errorNameOf(response.errorCode), response.errorMessage || undefined);
      if (leaving) return 0;
      if (REJOIN_ERRORS.has(error.errorName)) {
        await this.loseAll();
        this.memberEpoch = 0;
        this.subscriptionChanged = true;
        return 0;
      }
      return this.retryAfter(error);
    }
    if (leaving) return 0;
    // Only an answer to a long-poll request says whether the coordinator holds heartbeats.
    if (request.longPollMaxWaitMs > 0) this.longPollSupported = response.longPoll;
    if (request.hasSubscription) this.subscriptionChanged = false;
    this.memberId = response.memberId;
    this.memberEpoch = response.memberEpoch;
    this.heartbeatIntervalMs = response.heartbeatIntervalMs > 0 ? response.heartbeatIntervalMs : DEFAULT_HEARTBEAT_INTERVAL_MS;
    // The shorter interval of a reconciling member is not the group's: hold for the longest heard.
    this.longPollWaitMs = Math.max(this.longPollWaitMs, this.heartbeatIntervalMs);
    if (response.sessionTimeoutMs > 0) this.sessionTimeoutMs = response.sessionTimeoutMs;
    this.armSessionGuard(sentAtMs);
    if (response.assignment) {
      const target = new Map<string, TopicPartition>();
      for (const topic of response.assignment.topicPartitions) for (const partition of topic.partitions) target.set(tpKeyOf(topic.topicName, partition), { topic: topic.topicName, partition });
      // Only the newest assignment matters: one that arrives while another waits its turn
      // replaces it (the revocation deadline still counts from the first ask).
      const queued = this.queuedTarget;
      this.queuedTarget = { target, askedAtMs: Math.min(sentAtMs, queued?.askedAtMs ?? sentAtMs) };
      if (queued) return this.heartbeatIntervalMs;
      this.reconciliationsPending += 1;
      this.reconciliation = this.reconciliation
        .then(() => {
          const next = this.queuedTarget!;
          this.queuedTarget = undefined;
          return this.reconcile(next.target, next.askedAtMs);
        })
        .catch((error: unknown) => {
          this.emit('error', error);
          return false;
        })
        .then((changed) => {
          this.reconciliationsPending -= 1;
          // Tell the coordinator at once: revoked partitions can go to their new owner; and a
          // long-polling member goes back to waiting for news.
          if (this.reconciliationsPending === 0 && this.state === 'joined' && (changed || this.longPollSupported)) this.heartbeatNow();
        });
      return this.heartbeatIntervalMs;
    }
    // Long-poll: the coordinator held this heartbeat until there was news or an interval passed.
    return response.longPoll && this.reconciliationsPending === 0 ? 0 : this.heartbeatIntervalMs;
  }

  /**
   * The coordinator removes a member one session timeout after the last heartbeat it received,
   * and may then give its partitions to another. This member counts from when it sent its last
   * answered heartbeat (earlier), and gives everything up a margin before that, so the group never
   * has two owners of a partition, even while this member cannot reach the coordinator.
   */
  private armSessionGuard(sentAtMs: number): void {
    clearTimeout(this.sessionTimer);
    const dueInMs = sentAtMs + this.sessionTimeoutMs - guardMarginMs(this.sessionTimeoutMs) - performance.now();
    this.sessionTimer = setTimeout(() => void this.sessionExpired(), Math.max(0, dueInMs));
  }

  private async sessionExpired(): Promise<void> {
    if (this.state !== 'joined' || this.memberEpoch === 0) return;
    // As after FENCED_MEMBER_EPOCH: everything owned is lost, and the member joins again. At once,
    // not after a reconciliation that may itself be stuck on the unreachable coordinator.
    this.memberEpoch = 0;
    this.subscriptionChanged = true;
    await this.loseAll();
  }

  private heartbeatRequest(leaving: boolean): { hasSubscription: boolean; longPollMaxWaitMs: number } & Record<string, unknown> {
    const staticMember = Boolean(this.options.instanceId);
    const joining = this.memberEpoch === 0;
    // Held only while nothing is pending here: a member busy reconciling speaks up when it is done.
    const longPoll = !leaving && !joining && this.reconciliationsPending === 0 && this.state === 'joined';
    const sendSubscription = joining || this.subscriptionChanged;
    return {
      groupId: this.options.groupId,
      memberId: this.memberId,
      memberEpoch: leaving ? (staticMember ? -2 : -1) : this.memberEpoch,
      instanceId: this.options.instanceId ?? '',
      rackId: this.options.rack ?? '',
      rebalanceTimeoutMs: this.options.rebalanceTimeoutMs ?? 60_000,
      subscribedTopicNames: sendSubscription ? this.topics : [],
      subscribedTopicRegex: sendSubscription ? this.regex : '',
      serverAssignor: this.options.assignor ?? '',
      topicPartitions: joining ? [] : ownedAsTopicPartitions(new Map([...this.owned, ...this.adding])),
      hasSubscription: sendSubscription,
      hasOwnedPartitions: !joining,
      longPollMaxWaitMs: longPoll ? this.longPollWaitMs : 0,
    };
  }

  private retryAfter(error: RiffleError): number {
    if (!error.retriable && error.errorName !== 'NOT_COORDINATOR') throw error;
    // The coordinator moved, is loading, or is down: find it again.
    this.coordinator = undefined;
    return RETRY_BACKOFF_MS;
  }

  /**
   * Applies a new assignment: revoke first (finish, commit, tell listeners), then take the new.
   * Resolves whether anything was revoked or added (the coordinator should hear of it at once).
   */
  private async reconcile(target: Map<string, TopicPartition>, askedAtMs: number): Promise<boolean> {
    if (this.memberEpoch === 0 || this.state !== 'joined') return false;
    // Losing everything (fenced, or the session guard) while this waits makes its work stale, and
    // so does stop(): a member on its way out takes nothing up (stop() revokes what it owns).
    const generation = this.generation;
    const stale = (): boolean => this.generation !== generation || this.state !== 'joined';
    const revoked = [...this.owned].filter(([key]) => !target.has(key)).map(([, partition]) => partition);
    let added = [...target].filter(([key]) => !this.owned.has(key)).map(([, partition]) => partition);
    if (revoked.length > 0) {
      for (const { topic, partition } of revoked) this.fetcher.pause(topic, partition);
      // The coordinator takes the partitions away anyway once the rebalance timeout has passed
      // since it asked; finishing and committing must not outlast that (a margin before it).
      const rebalanceTimeoutMs = this.options.rebalanceTimeoutMs ?? 60_000;
      const leftMs = askedAtMs + rebalanceTimeoutMs - guardMarginMs(rebalanceTimeoutMs) - performance.now();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        (async () => {
          await this.currentProcessing;
          await this.commitProcessed(revoked).catch((error: unknown) => this.emit('error', error));
        })(),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, leftMs)))),
      ]);
      clearTimeout(timer);
      if (stale()) return false;
      for (const { topic, partition } of revoked) {
        this.owned.delete(tpKeyOf(topic, partition));
        this.fetcher.remove(topic, partition);
        this.processed.delete(tpKeyOf(topic, partition));
      }
      await this.options.onPartitionsRevoked?.(revoked);
      this.emit('revoked', revoked);
    }
    // Partitions a newer assignment (already received, waiting its turn) takes away again are not
    // taken up at all: the coordinator sees them released, and nothing is fetched from them.
    const stillWanted = (tp: TopicPartition): boolean => !this.queuedTarget || this.queuedTarget.target.has(tpKeyOf(tp.topic, tp.partition));
    added = added.filter(stillWanted);
    if (added.length > 0) {
      // Until they are owned, they are reported as owned: the coordinator must not hand them to
      // another member while this one may still start on them.
      for (const tp of added) this.adding.set(tpKeyOf(tp.topic, tp.partition), tp);
      try {
        return await this.takeUp(added, stale, stillWanted) || revoked.length > 0;
      } finally {
        this.adding.clear();
      }
    }
    return revoked.length > 0;
  }

  /** The second half of reconcile: start on newly assigned partitions. */
  private async takeUp(wanted: TopicPartition[], stale: () => boolean, stillWanted: (tp: TopicPartition) => boolean): Promise<boolean> {
    const offsets = await this.committedOffsets(wanted);
    if (stale()) return false;
    const starts: [TopicPartition, number][] = [];
    // Offsets where the group has none are looked up a batch at a time; a newer assignment that
    // arrives meanwhile drops what it takes away.
    for (let index = 0; index < wanted.length; index += OFFSET_LOOKUPS_IN_FLIGHT_MAX) {
      const batch = wanted.slice(index, index + OFFSET_LOOKUPS_IN_FLIGHT_MAX).filter((tp) => {
        if (stillWanted(tp)) return true;
        this.adding.delete(tpKeyOf(tp.topic, tp.partition));
        return false;
      });
      const found = await Promise.all(batch.map(async (tp): Promise<[TopicPartition, number]> => {
        const key = tpKeyOf(tp.topic, tp.partition);
        const committed = offsets.get(key) ?? -1;
        if (committed >= 0) {
          this.committed.set(key, committed);
          return [tp, committed];
        }
        return [tp, await this.resetOffset(tp)];
      }));
      if (stale()) return false;
      starts.push(...found);
    }
    const added = starts.map(([tp]) => tp);
    // All dropped: still news for the coordinator, which saw them reported as being taken up.
    if (added.length === 0) return true;
    // As Kafka's onPartitionsAssigned: the listeners run before anything of the new partitions
    // is fetched, so nothing is handed to the handlers before the application heard of them.
    for (const [tp] of starts) this.owned.set(tpKeyOf(tp.topic, tp.partition), tp);
    await this.options.onPartitionsAssigned?.(added);
    this.emit('assigned', added);
    if (stale()) return false;
    for (const [tp, offset] of starts) {
      const key = tpKeyOf(tp.topic, tp.partition);
      if (this.owned.has(key)) this.fetcher.add(tp.topic, tp.partition, this.startOverrides.get(key) ?? offset);
      this.startOverrides.delete(key);
    }
    return true;
  }

  private async resetOffset(tp: TopicPartition): Promise<number> {
    const policy = this.fetcher.options.autoOffsetReset;
    if (policy === 'none') throw new RiffleError('OFFSET_OUT_OF_RANGE', `Group '${this.options.groupId}' has no committed offset for ${tp.topic}-${tp.partition} and auto.offset.reset is none.`);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.fetcher.lookupOffset(tp.topic, tp.partition, policy === 'earliest' ? -2 : -1);
      } catch (error) {
        if (!toRiffleError(error).retriable || attempt >= 50) throw error;
        await delay(RETRY_BACKOFF_MS);
      }
    }
  }

  /** Fenced or unknown: everything owned is lost (not revoked: no commit, its epoch is gone). */
  private loseAll(): Promise<void> {
    return this.releaseAll('lost');
  }

  /**
   * Gives up everything owned, telling the listeners with `event`. Synchronous up to the
   * listeners: from this moment nothing owned is fetched or handled, and a reconciliation in
   * progress finds its work stale.
   */
  private async releaseAll(event: 'lost' | 'revoked'): Promise<void> {
    this.generation++;
    const released = this.assignment();
    for (const { topic, partition } of released) this.fetcher.remove(topic, partition);
    this.owned.clear();
    this.processed.clear();
    if (released.length > 0) {
      await this.options.onPartitionsRevoked?.(released);
      this.emit(event, released);
    }
  }

  // ---- offsets ----

  private async committedOffsets(partitions: TopicPartition[]): Promise<Map<string, number>> {
    const byTopic = new Map<string, number[]>();
    for (const { topic, partition } of partitions) {
      let list = byTopic.get(topic);
      if (!list) byTopic.set(topic, (list = []));
      list.push(partition);
    }
    const response = await this.withCoordinator<OffsetFetchResponse__Output>('OffsetFetch', () => ({
      groups: [{ groupId: this.options.groupId, memberId: this.memberId, memberEpoch: this.memberEpoch, topics: [...byTopic].map(([name, partitionIndexes]) => ({ name, partitionIndexes })) }],
    }), (answer) => answer.groups[0]?.errorCode ?? 0);
    const result = new Map<string, number>();
    for (const topic of response.groups[0]?.topics ?? []) for (const partition of topic.partitions) result.set(tpKeyOf(topic.name, partition.partitionIndex), Number(partition.committedOffset));
    return result;
  }

  /** Commits what the handlers have processed (of the given partitions, or all) and not committed yet. */
  async commitProcessed(partitions?: TopicPartition[]): Promise<void> {
    const keys = partitions ? partitions.map(({ topic, partition }) => tpKeyOf(topic, partition)) : [...this.processed.keys()];
    const offsets: OffsetToCommit[] = [];
    for (const key of keys) {
      const offset = this.processed.get(key);
      const tp = this.owned.get(key);
      if (offset === undefined || !tp || this.committed.get(key) === offset) continue;
      offsets.push({ topic: tp.topic, partition: tp.partition, offset });
    }
    if (offsets.length > 0) await this.commitOffsets(offsets);
  }

  /** Commits the given offsets (the next offset to consume of each partition) for the group. */
  commitOffsets(offsets: OffsetToCommit[]): Promise<void> {
    if (offsets.length === 0) return Promise.resolve();
    // One commit at a time, in call order: gRPC calls can overtake each other, and an older commit
    // landing after a newer one would move the group's offset back.
    // Which ownership of each partition these offsets belong to, from the moment they are given
    // (a commit may wait here behind another, while its partition is lost and taken up again).
    const ownedAtCall = new Map<string, TopicPartition>();
    for (const entry of offsets) {
      const key = tpKeyOf(entry.topic, entry.partition);
      const tp = this.owned.get(key);
      if (tp) ownedAtCall.set(key, tp);
    }
    const commit = this.commitChain.then(() => this.commitNow(offsets, ownedAtCall));
    this.commitChain = commit.catch(() => undefined);
    return commit;
  }

  private async commitNow(offsets: OffsetToCommit[], ownedAtCall: ReadonlyMap<string, TopicPartition>): Promise<void> {
    const byTopic = new Map<string, OffsetToCommit[]>();
    for (const offset of offsets) {
      let list = byTopic.get(offset.topic);
      if (!list) byTopic.set(offset.topic, (list = []));
      list.push(offset);
    }
    // Every attempt goes with the member's current epoch, so it must not carry a partition whose
    // ownership ended since the offsets were given (revoked, or lost and perhaps taken up again):
    // another owner, or this member starting over from the committed offset it fetched, may have
    // committed since, and this late commit would move the group's offset back (the chaos
    // checker's commit-backwards found both: a revoke, and a loss and a new assignment).
    /** Offsets an attempt left out (their ownership ended meanwhile): their outcome is unknown. */
    const abandoned = new Set<OffsetToCommit>();
    const request = (): object => {
      const stillOwned = (entry: OffsetToCommit): boolean => {
        const key = tpKeyOf(entry.topic, entry.partition);
        const owned = !ownedAtCall.has(key) || this.owned.get(key) === ownedAtCall.get(key);
        if (!owned) abandoned.add(entry);
        return owned;
      };
      const topics = [...byTopic].map(([name, list]) => [name, list.filter(stillOwned)] as const).filter(([, list]) => list.length > 0);
      return {
        groupId: this.options.groupId, generationIdOrMemberEpoch: this.memberId ? this.memberEpoch : -1, memberId: this.memberId, groupInstanceId: this.options.instanceId ?? '',
        topics: topics.map(([name, list]) => ({ name, partitions: list.map((entry) => ({ partitionIndex: entry.partition, committedOffset: entry.offset, committedLeaderEpoch: -1, committedMetadata: entry.metadata ?? '' })) })),
      };
    };
    const response = await this.withCoordinator<OffsetCommitResponse__Output>('OffsetCommit', request, (answer) => answer.topics.flatMap((topic) => topic.partitions).find((partition) => partition.errorCode !== 0)?.errorCode ?? 0);
    for (const topic of response.topics) {
      for (const partition of topic.partitions) {
        const sent = offsets.find((entry) => entry.topic === topic.name && entry.partition === partition.partitionIndex);
        if (sent) this.committed.set(tpKeyOf(sent.topic, sent.partition), sent.offset);
      }
    }
    if (abandoned.size > 0) {
      // Resolving would tell the caller these offsets were committed; an earlier attempt may or
      // may not have committed them (the chaos checker's restart-offset found a harness trusting it).
      const which = [...abandoned].map((entry) => `${entry.topic}-${entry.partition}@${entry.offset}`).join(', ');
      throw new RiffleError('STALE_MEMBER_EPOCH', `The commit of ${which} was abandoned: the partition was revoked or lost while the commit waited or was retried, so whether it was committed is unknown.`);
    }
  }

  /** kafkajs-style alias: commit everything processed now. */
  commit(): Promise<void> {
    return this.commitProcessed();
  }

  /** Fire-and-forget commit; errors go to the 'error' listeners. */
  commitAsync(): void {
    this.commitProcessed().catch((error: unknown) => this.emit('error', error));
  }

  // ---- coordinator calls ----

  private async coordinatorAddress(): Promise<string> {
    if (this.coordinator) return this.coordinator;
    const response = await this.client.callAny<FindCoordinatorResponse__Output>('riffle.v1.Kafka', 'FindCoordinator', { keyType: 0, coordinatorKeys: [this.options.groupId] }, COORDINATOR_CALL_TIMEOUT_MS);
    const found = response.coordinators[0];
    if (!found) throw new RiffleError('COORDINATOR_NOT_AVAILABLE', 'FindCoordinator answered without a coordinator.');
    if (found.errorCode !== 0) throw new RiffleError(errorNameOf(found.errorCode), found.errorMessage || undefined);
    this.coordinator = `${found.host}:${found.port}`;
    return this.coordinator;
  }

  /** `heldMs`: how long the coordinator may hold the call (a long-poll heartbeat), on top of the call timeout. */
  private async callCoordinator<Response>(method: string, request: object, heldMs = 0, signal?: AbortSignal): Promise<Response> {
    const address = await this.coordinatorAddress();
    try {
      return await this.client.connection(address).call<Response>('riffle.v1.Kafka', method, request, COORDINATOR_CALL_TIMEOUT_MS + heldMs, undefined, signal);
    } catch (error) {
      if (!signal?.aborted) this.coordinator = undefined;
      throw error;
    }
  }

  /** Calls the coordinator, finding it again and retrying on coordinator errors until the retry deadline. */
  private async withCoordinator<Response>(method: string, request: () => object, errorOf: (response: Response) => number): Promise<Response> {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      let error: RiffleError;
      try {
        const response = await this.callCoordinator<Response>(method, request());
        const code = errorOf(response);
        if (code === 0) return response;
        error = new RiffleError(errorNameOf(code));
      } catch (thrown) {
        error = toRiffleError(thrown);
      }
      const coordinatorMoved = error.errorName === 'NOT_COORDINATOR' || error.errorName === 'COORDINATOR_NOT_AVAILABLE' || error.errorName === 'COORDINATOR_LOAD_IN_PROGRESS';
      if (coordinatorMoved) this.coordinator = undefined;
      if ((!error.retriable && !coordinatorMoved) || Date.now() - started > this.client.retry.deadlineMs) throw error;
      await delay(Math.min(1_000, RETRY_BACKOFF_MS * 2 ** Math.min(attempt, 4)));
    }
  }

  // ---- leaving ----

  /**
   * Stops consuming: the message in progress finishes, processed offsets are committed, what the
   * member owns is revoked (onPartitionsRevoked, then the 'revoked' event), and it leaves the group.
   */
  stop(): Promise<void> {
    this.stopping ??= this.stopNow();
    return this.stopping;
  }

  private async stopNow(): Promise<void> {
    const wasJoined = this.state === 'joined';
    this.state = 'stopping';
    // A poll waiting with nothing to fetch ends now, and with it the run loop.
    this.fetcher.wake();
    clearTimeout(this.heartbeatTimer);
    clearTimeout(this.sessionTimer);
    clearInterval(this.autoCommitTimer);
    // A held heartbeat would keep stop() waiting for up to an interval.
    this.longPollInFlight?.abort();
    await this.runLoop;
    await this.heartbeatInFlight;
    // The heartbeat may have queued one more; each ends early now (stale), and only after the
    // last is the set of owned partitions final.
    while (this.reconciliationsPending > 0) await this.reconciliation;
    if (wasJoined && this.memberId) {
      try {
        if (this.options.autoCommit ?? true) await this.commitProcessed();
      } finally {
        // As Kafka's consumer on close: the listeners hear that everything owned is revoked before
        // the coordinator hears of the leave (and may give it to another member), so the group
        // never has two owners of a partition. A listener that throws does not keep the member in.
        await this.releaseAll('revoked').catch((error: unknown) => this.emit('error', error));
        await this.sendHeartbeat(true).catch(() => undefined);
      }
    }
    this.state = 'stopped';
  }

  /** kafkajs' name for stop. */
  disconnect(): Promise<void> {
    return this.stop();
  }
}

function ownedAsTopicPartitions(owned: Map<string, TopicPartition>): { topicName: string; topicId: string; partitions: number[] }[] {
  const byTopic = new Map<string, number[]>();
  for (const { topic, partition } of owned.values()) {
    let list = byTopic.get(topic);
    if (!list) byTopic.set(topic, (list = []));
    list.push(partition);
  }
  return [...byTopic].map(([topicName, partitions]) => ({ topicName, topicId: '', partitions: partitions.sort((a, b) => a - b) }));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
