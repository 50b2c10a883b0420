// The container HEALTHCHECK: GET /healthz on the node's own --http listener (RIFFLE_HTTP; a
// wildcard bind address is dialled on loopback). Exit 0 when it answers 200, 1 otherwise. Node
// does this itself because the slim base image has no curl or wget.
const listen = process.env.RIFFLE_HTTP ?? '0.0.0.0:9644';
const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen.trim());
if (!match) {
  console.error(`healthcheck: RIFFLE_HTTP '${listen}' is not host:port`);
  process.exit(1);
}
const bound = match[1] ?? match[2] ?? '';
const host = bound === '' || bound === '0.0.0.0' ? '127.0.0.1' : bound === '::' ? '[::1]' : bound.includes(':') ? `[${bound}]` : bound;
try {
  const response = await fetch(`http://${host}:${match[3]}/healthz`, { signal: AbortSignal.timeout(2_000) });
  process.exit(response.status === 200 ? 0 : 1);
} catch (error) {
  console.error(`healthcheck: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
