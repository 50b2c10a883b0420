// The broker's way to the controller quorum: finds the active controller among the voters
// (following NOT_CONTROLLER leader hints, trying the others when one is down) and calls it, and
// keeps a FetchMetadata stream open to any controller, reconnecting from the last applied offset
// when the stream breaks.
import type * as grpc from '@grpc/grpc-js';
import { ConnectionPool } from '../src/rpc/client.js';
import { RiffleError, fromServiceError, toRiffleError } from '../src/rpc/errors.js';
import type { QuorumVoter } from '../src/config/node-config.js';
import type { Logger } from '../src/util/logger.js';
import type { MetadataDelivery__Output } from '../src/rpc/generated/riffle/internal/MetadataDelivery.js';

/** How long one controller call may take before the next voter is tried. */
export const CONTROLLER_CALL_TIMEOUT_MS = 5_000;
const RECONNECT_BACKOFF_MS_MIN = 100;
const RECONNECT_BACKOFF_MS_MAX = 2_000;
/** A metadata stream silent this long (five missed controller heartbeats) is given up. */
export const METADATA_STREAM_IDLE_MS = 5_000;

export class ControllerClient {
  private readonly pool = new ConnectionPool();
  /** The voter believed to be active, tried first. */
  private activeAddress?: string;
  private closed = false;

  constructor(
    private readonly voters: QuorumVoter[],
    private readonly logger: Logger,
    /** The address to dial for one a controller names as leader (--dial-overrides). */
    private readonly dial: (address: string) => string = (address) => address,
  ) {}

  private addresses(): string[] {
    const all = this.voters.map((voter) => `${voter.host}:${voter.port}`);
    return this.activeAddress ? [this.activeAddress, ...all.filter((address) => address !== this.activeAddress)] : all;
  }

  /** The node id of the controller that last answered a call, -1 when none has. */
  activeControllerId(): number {
    const voter = this.voters.find((candidate) => `${candidate.host}:${candidate.port}` === this.activeAddress);
    return voter?.nodeId ?? -1;
  }

  /**
   * Calls the active controller: a voter that says NOT_CONTROLLER points at the active one (the
   * hint is tried next); an unreachable voter is skipped. Throws the last error when no voter
   * answers, which is retriable.
   */
  async call<Response>(method: string, request: object, timeoutMs = CONTROLLER_CALL_TIMEOUT_MS): Promise<Response> {
    let lastError: RiffleError = new RiffleError('NOT_CONTROLLER', 'No controller is reachable.');
    const tried = new Set<string>();
    const queue = this.addresses();
    while (queue.length > 0 && !this.closed) {
      const address = queue.shift()!;
      if (tried.has(address)) continue;
      tried.add(address);
      try {
        const response = await this.pool.get(address).call<Response>('riffle.internal.Controller', method, request, timeoutMs);
        this.activeAddress = address;
        return response;
      } catch (error) {
        lastError = toRiffleError(error);
        if (lastError.errorName === 'NOT_CONTROLLER') {
          const hint = lastError.leaderHint ? this.dial(lastError.leaderHint) : undefined;
          if (hint && !tried.has(hint)) queue.unshift(hint);
          continue;
        }
        if (lastError.errorName !== 'NETWORK_EXCEPTION' && lastError.errorName !== 'REQUEST_TIMED_OUT') throw lastError;
      }
    }
    this.activeAddress = undefined;
    throw lastError;
  }

  /**
   * Follows committed metadata from `fromOffset()` on, calling `onDelivery` for each delivery in
   * order (heartbeats included: deliveries without payload). Reconnects with backoff until
   * `close()`; `fromOffset` is asked again on every reconnect so the stream resumes after what was
   * applied. A stream that brings nothing for METADATA_STREAM_IDLE_MS (controllers send
   * heartbeats every second while they follow a leader) is given up and the next voter is tried:
   * a connection to a frozen process can hang with no error at all (gRPC's keepalive only covers
   * an established connection), and a controller cut off from its quorum has nothing to send.
   */
  followMetadata(brokerId: number, fromOffset: () => number, onDelivery: (delivery: MetadataDelivery__Output) => void, onSilent?: (address: string) => void): void {
    let attempt = 0;
    let previous: string | undefined;
    const connect = (): void => {
      if (this.closed) return;
      const address = this.nextMetadataSource(previous);
      previous = address;
      const client = this.pool.get(address).client('riffle.internal.Controller') as unknown as {
        FetchMetadata(request: object): grpc.ClientReadableStream<MetadataDelivery__Output>;
      };
      const stream = client.FetchMetadata({ brokerId, fromOffset: fromOffset() });
      this.currentStream = stream;
      let lastDataMs = Date.now();
      const watchdog = setInterval(() => {
        if (Date.now() - lastDataMs <= METADATA_STREAM_IDLE_MS) return;
        this.logger.warn({ address }, `metadata stream from ${address} brought nothing for ${METADATA_STREAM_IDLE_MS} ms; trying another controller`);
        onSilent?.(address);
        stream.cancel();
      }, METADATA_STREAM_IDLE_MS / 5);
      watchdog.unref();
      stream.on('data', (delivery: MetadataDelivery__Output) => {
        lastDataMs = Date.now();
        attempt = 0;
        try {
          onDelivery(delivery);
        } catch (error) {
          this.logger.error({ err: error }, 'applying metadata failed; reconnecting');
          stream.cancel();
        }
      });
      stream.on('error', (error: grpc.ServiceError) => {
        const riffleError = fromServiceError(error);
        if (!this.closed && error.code !== 1) this.logger.debug({ err: riffleError, address }, 'metadata stream broke');
      });
      stream.on('close', () => {
        clearInterval(watchdog);
        if (this.closed) return;
        attempt++;
        const backoffMs = Math.min(RECONNECT_BACKOFF_MS_MAX, RECONNECT_BACKOFF_MS_MIN * 2 ** Math.min(attempt, 5));
        setTimeout(connect, backoffMs).unref();
      });
    };
    connect();
  }

  /**
   * Where to follow metadata from: the active controller when one is known and it is not the
   * voter that just failed, otherwise the voter after the one that failed, in the quorum's order
   * (a fixed order, so successive attempts go round every voter instead of returning to one).
   */
  private nextMetadataSource(failed: string | undefined): string {
    const all = this.voters.map((voter) => `${voter.host}:${voter.port}`);
    if (this.activeAddress && this.activeAddress !== failed) return this.activeAddress;
    const index = failed === undefined ? -1 : all.indexOf(failed);
    return all[(index + 1) % all.length]!;
  }

  private currentStream?: grpc.ClientReadableStream<MetadataDelivery__Output>;

  close(): void {
    this.closed = true;
    this.currentStream?.cancel();
    this.pool.close();
  }
}
