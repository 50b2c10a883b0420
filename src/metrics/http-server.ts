// The HTTP listener of a node: GET /metrics (Prometheus text), /healthz (the process is up) and
// /readyz (the node can serve: listeners bound, metadata caught up and, on a broker, its replicas
// back in the ISR; see broker/replica-readiness.ts). Readiness is a callback
// so each kind of node decides what "ready" means without this module knowing about it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface Readiness {
  ready: boolean;
  /** Why not, when not ready; shown in the /readyz body. */
  reasons: string[];
}

export interface HttpServerOptions {
  host: string;
  port: number;
  registry: Registry;
  readiness: () => Readiness;
}

export class NodeHttpServer {
  private readonly server: http.Server;

  private constructor(private readonly options: HttpServerOptions) {
    this.server = http.createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        response.writeHead(500, { 'content-type': 'text/plain' });
        response.end(`internal error: ${error instanceof Error ? error.message : String(error)}\n`);
      });
    });
  }

  static async start(options: HttpServerOptions): Promise<NodeHttpServer> {
    const instance = new NodeHttpServer(options);
    await new Promise<void>((resolve, reject) => {
      instance.server.once('error', reject);
      instance.server.listen(options.port, options.host, () => {
        instance.server.off('error', reject);
        resolve();
      });
    });
    return instance;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url.pathname === '/metrics') {
      const body = await this.options.registry.metrics();
      response.writeHead(200, { 'content-type': this.options.registry.contentType }).end(body);
    } else if (url.pathname === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (url.pathname === '/readyz') {
      const readiness = this.options.readiness();
      const body = readiness.ready ? 'ready\n' : `not ready: ${readiness.reasons.join('; ')}\n`;
      response.writeHead(readiness.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(body);
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
