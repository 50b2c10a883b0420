// A TCP fault proxy for one directed link (one dialer to one listener). The harness puts one in
// front of every node for every other node and for the clients, and changes how each direction
// of the link behaves while connections are open:
//   - open:      bytes flow (after an optional delay per chunk, order kept);
//   - blackhole: bytes stop and connections hang, as in a network partition: the proxy stops
//                reading that side, so TCP back-pressure holds the sender; on heal they flow on;
//   - refused:   both directions; open connections are reset and new ones are reset at once,
//                as when a host is reachable but the port is closed.
// It never drops or reorders bytes inside a connection that stays open, which TCP would not do
// either: a partition delays bytes, it does not corrupt a stream.
import * as net from 'node:net';

export type DirectionMode = 'open' | 'blackhole';

export interface DirectionState {
  mode: DirectionMode;
  delayMs: number;
}

/** One direction of one connection: reads `from`, writes `to`, honouring the direction's state. */
class Pump {
  private readonly queue: Buffer[] = [];
  private timerPending = false;
  /** Set when the connection is gone: queued bytes are dropped and no timer runs again. */
  closed = false;

  constructor(
    private readonly from: net.Socket,
    private readonly to: net.Socket,
    private readonly state: () => DirectionState,
  ) {
    from.on('data', (chunk: Buffer) => this.onData(chunk));
    from.on('end', () => this.whenDrained(() => to.end()));
  }

  /** Applies a state change: pauses the source while blackholed, resumes otherwise. */
  refresh(): void {
    if (this.state().mode === 'blackhole') this.from.pause();
    else this.from.resume();
  }

  private onData(chunk: Buffer): void {
    const { mode, delayMs } = this.state();
    if (mode === 'blackhole') {
      // Data read just before the pause took effect waits with the rest.
      this.from.pause();
    }
    if (delayMs <= 0 && this.queue.length === 0 && mode === 'open') {
      if (!this.to.write(chunk)) {
        this.from.pause();
        this.to.once('drain', () => this.refresh());
      }
      return;
    }
    this.queue.push(chunk);
    this.schedule(delayMs);
  }

  private schedule(delayMs: number): void {
    if (this.timerPending) return;
    this.timerPending = true;
    setTimeout(() => {
      this.timerPending = false;
      if (this.closed || this.to.destroyed) {
        this.queue.length = 0;
        return;
      }
      if (this.state().mode === 'blackhole') {
        this.schedule(Math.max(10, this.state().delayMs));
        return;
      }
      const chunk = this.queue.shift();
      if (chunk && !this.to.destroyed) this.to.write(chunk);
      if (this.queue.length > 0) this.schedule(this.state().delayMs);
    }, Math.max(0, delayMs));
  }

  private whenDrained(action: () => void): void {
    if (this.closed) return;
    if (this.queue.length === 0) {
      action();
      return;
    }
    setTimeout(() => this.whenDrained(action), 5);
  }
}

interface Connection {
  client: net.Socket;
  upstream: net.Socket;
  pumps: Pump[];
}

/** How many connections one proxy keeps at most (a bound, far above what a node opens). */
const CONNECTIONS_MAX = 256;

export class FaultProxy {
  private server?: net.Server;
  private readonly connections = new Set<Connection>();
  /** Dialer-to-listener bytes. */
  readonly forward: DirectionState = { mode: 'open', delayMs: 0 };
  /** Listener-to-dialer bytes. */
  readonly backward: DirectionState = { mode: 'open', delayMs: 0 };
  private refused = false;

  constructor(
    readonly listenHost: string,
    readonly listenPort: number,
    readonly targetHost: string,
    readonly targetPort: number,
    /** Who dials through this proxy and whom it reaches, for reports (e.g. "n1->n2:raft"). */
    readonly label: string,
  ) {}

  get address(): string {
    return `${this.listenHost}:${this.listenPort}`;
  }

  async start(): Promise<void> {
    const server = net.createServer({ pauseOnConnect: true }, (client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPort, this.listenHost, () => resolve());
    });
  }

  async stop(): Promise<void> {
    for (const connection of this.connections) destroyConnection(connection);
    this.connections.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Sets one or both directions; open connections follow at once. */
  set(direction: 'forward' | 'backward' | 'both', change: Partial<DirectionState>): void {
    if (direction !== 'backward') Object.assign(this.forward, change);
    if (direction !== 'forward') Object.assign(this.backward, change);
    for (const connection of this.connections) for (const pump of connection.pumps) pump.refresh();
  }

  /** Resets open connections and refuses new ones until `heal()`. */
  refuse(): void {
    this.refused = true;
    for (const connection of this.connections) destroyConnection(connection);
    this.connections.clear();
  }

  /** Back to a clean link: both directions open without delay, connections accepted. */
  heal(): void {
    this.refused = false;
    this.set('both', { mode: 'open', delayMs: 0 });
  }

  get isFaulty(): boolean {
    return this.refused || this.forward.mode !== 'open' || this.backward.mode !== 'open' || this.forward.delayMs > 0 || this.backward.delayMs > 0;
  }

  private accept(client: net.Socket): void {
    if (this.refused || this.connections.size >= CONNECTIONS_MAX) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect({ host: this.targetHost, port: this.targetPort, noDelay: true });
    client.setNoDelay(true);
    const connection: Connection = { client, upstream, pumps: [] };
    connection.pumps.push(new Pump(client, upstream, () => this.forward), new Pump(upstream, client, () => this.backward));
    this.connections.add(connection);
    const close = (): void => {
      if (!this.connections.delete(connection)) return;
      destroyConnection(connection);
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
    for (const pump of connection.pumps) pump.refresh();
  }
}

function destroyConnection(connection: Connection): void {
  for (const pump of connection.pumps) pump.closed = true;
  if (!connection.client.destroyed) connection.client.resetAndDestroy();
  if (!connection.upstream.destroyed) connection.upstream.resetAndDestroy();
}
