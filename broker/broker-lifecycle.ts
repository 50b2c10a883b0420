// A broker's standing with the controller: it registers (a new incarnation id per process start
// gets a new broker epoch), heartbeats every heartbeatIntervalMs with the metadata offset it has
// applied, and is fenced until the controller sees it caught up. On SIGTERM it asks for a
// controlled shutdown: the controller moves its leaderships away first, so clients see a
// leader change within milliseconds instead of waiting for a session timeout.
//
// State transitions (each logs one line):
//   registering -> fenced -> active -> shutting-down -> stopped
//   fenced/active -> registering   (the controller no longer knows this epoch)
//
// Good standing: an unfenced heartbeat answer vouches for the broker for the controller's session
// timeout, counted from when the heartbeat was sent (the controller counts from its arrival, so
// this lapses first), and only once the broker's image has reached the controller's metadata
// offset of that answer. A broker paused, cut off or slow past that time may have been fenced
// and its leaderships moved without knowing it yet; what only a current leader may say (a
// consumer's position is past the log, an acks=0/1 write is in) waits until standing returns.
import { randomUUID } from 'node:crypto';
import type { ControllerClient } from './controller-client.js';
import type { NodeConfig } from '../src/config/node-config.js';
import { isRiffleError } from '../src/rpc/errors.js';
import type { Logger } from '../src/util/logger.js';
import type { RegisterBrokerResponse__Output } from '../src/rpc/generated/riffle/internal/RegisterBrokerResponse.js';
import type { BrokerHeartbeatResponse__Output } from '../src/rpc/generated/riffle/internal/BrokerHeartbeatResponse.js';

export type BrokerState = 'registering' | 'fenced' | 'active' | 'shutting-down' | 'stopped';

export const HEARTBEAT_INTERVAL_MS_DEFAULT = 500;

export class BrokerLifecycle {
  readonly incarnationId = randomUUID();
  private currentState: BrokerState = 'registering';
  private epoch = -1;
  private timer?: NodeJS.Timeout;
  private wantShutdown = false;
  private shutdownDone?: () => void;
  private inFlight = false;
  /** Set when a request (the controlled-shutdown heartbeat) must go as soon as the current one returns. */
  private urgent = false;
  private caughtUpOnce = false;
  private readonly caughtUpListeners = new Set<() => void>();
  /** When the last unfenced heartbeat answer's request left, per `clock`; -Infinity for none. */
  private vouchedSentMs = -Infinity;
  private vouchedForMs = 0;
  private vouchedOffset = Infinity;

  constructor(
    private readonly config: NodeConfig,
    private readonly controller: ControllerClient,
    private readonly metadataOffset: () => number,
    private readonly logger: Logger,
    private readonly heartbeatIntervalMs = HEARTBEAT_INTERVAL_MS_DEFAULT,
    private readonly clusterId = '',
    private readonly clock: () => number = () => performance.now(),
  ) {}

  get state(): BrokerState {
    return this.currentState;
  }

  get brokerEpoch(): number {
    return this.epoch;
  }

  /**
   * True once the active controller has said this broker caught up with the metadata log (in a
   * heartbeat answer). Until then the broker's image may come from a controller that is itself
   * behind, so the broker must not act on the roles it holds.
   */
  get hasCaughtUp(): boolean {
    return this.caughtUpOnce;
  }

  /**
   * True while the controller's last unfenced answer still vouches for this broker (see the top
   * of this file): its session has not lapsed since that heartbeat left, and this broker's image
   * has reached the controller's metadata as of that answer.
   */
  get inGoodStanding(): boolean {
    if (this.currentState !== 'active' && this.currentState !== 'shutting-down') return false;
    return this.clock() - this.vouchedSentMs < this.vouchedForMs && this.metadataOffset() >= this.vouchedOffset;
  }

  /** Milliseconds since the heartbeat behind the last unfenced answer left (Infinity before one). */
  get standingAgeMs(): number {
    return this.clock() - this.vouchedSentMs;
  }

  onCaughtUp(listener: () => void): void {
    this.caughtUpListeners.add(listener);
  }

  start(): void {
    this.schedule(0);
  }

  private transition(next: BrokerState): void {
    if (next === 'registering' || next === 'fenced' || next === 'stopped') this.vouchedSentMs = -Infinity;
    if (next === this.currentState) return;
    this.logger.info(`broker ${this.config.nodeId} became ${next} at epoch ${this.epoch}`);
    this.currentState = next;
  }

  private schedule(delayMs: number): void {
    if (this.currentState === 'stopped') return;
    this.timer = setTimeout(() => void this.tick(), delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.inFlight) {
      // A request is on its way; the urgent one goes right after it, not a heartbeat later.
      this.urgent = true;
      return;
    }
    this.inFlight = true;
    try {
      if (this.currentState === 'registering') await this.register();
      else await this.heartbeat();
    } catch (error) {
      if (isRiffleError(error, 'STALE_BROKER_EPOCH')) this.transition('registering');
      else this.logger.debug({ err: error }, 'controller request failed; retrying');
    } finally {
      this.inFlight = false;
      clearTimeout(this.timer);
      this.schedule(this.urgent ? 0 : this.heartbeatIntervalMs);
      this.urgent = false;
    }
  }

  private async register(): Promise<void> {
    const { config } = this;
    const response = await this.controller.call<RegisterBrokerResponse__Output>('RegisterBroker', {
      nodeId: config.nodeId,
      incarnationId: this.incarnationId,
      rack: config.az,
      listener: config.advertisedListen,
      http: config.advertisedHttp,
      roles: config.roles,
      clusterId: this.clusterId,
    });
    this.epoch = response.brokerEpoch;
    this.transition(this.wantShutdown ? 'shutting-down' : 'fenced');
  }

  private async heartbeat(): Promise<void> {
    const sentMs = this.clock();
    const response = await this.controller.call<BrokerHeartbeatResponse__Output>('BrokerHeartbeat', {
      nodeId: this.config.nodeId,
      brokerEpoch: this.epoch,
      metadataOffset: this.metadataOffset(),
      wantShutdown: this.wantShutdown,
    });
    if (response.isCaughtUp && !this.caughtUpOnce) {
      this.caughtUpOnce = true;
      this.logger.info(`broker ${this.config.nodeId} caught up with the metadata log at offset ${this.metadataOffset()}`);
      for (const listener of this.caughtUpListeners) listener();
    }
    if (response.isFenced) {
      this.vouchedSentMs = -Infinity;
    } else if (sentMs > this.vouchedSentMs) {
      this.vouchedSentMs = sentMs;
      this.vouchedForMs = response.sessionTimeoutMs;
      this.vouchedOffset = response.metadataOffset;
    }
    if (this.wantShutdown) {
      if (response.shouldShutDown) this.shutdownDone?.();
      return;
    }
    this.transition(response.isFenced ? 'fenced' : 'active');
  }

  /**
   * Asks the controller to move this broker's leaderships away; resolves once it says the broker
   * may stop, or after timeoutMs (a broker must stop even when the controller is gone).
   */
  async controlledShutdown(timeoutMs: number): Promise<boolean> {
    if (this.currentState === 'registering' || this.currentState === 'stopped') return false;
    this.wantShutdown = true;
    this.transition('shutting-down');
    clearTimeout(this.timer);
    this.schedule(0);
    const done = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.shutdownDone = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
    return done;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.transition('stopped');
  }
}
