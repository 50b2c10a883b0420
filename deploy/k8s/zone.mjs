// Init container of a Riffle pod: reads the zone of the Kubernetes node the pod was scheduled
// on (its topology.kubernetes.io/zone label) and writes it to a file that start.sh passes to the
// server as RIFFLE_AZ, so replicas of a partition go to distinct zones. Pods cannot see node
// labels through the downward API, so this asks the API server with the pod's service account
// (which may `get` nodes, see rbac.yaml). A node without the label gives the zone 'default'.
// Inputs: NODE_NAME (downward API spec.nodeName), ZONE_FILE, and KUBE_API_URL to override the
// in-cluster API address.
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';
const ZONE_LABEL = 'topology.kubernetes.io/zone';
const REQUEST_TIMEOUT_MS = 10_000;
const ATTEMPTS_MAX = 30;

export function zoneOf(node) {
  const zone = node?.metadata?.labels?.[ZONE_LABEL];
  if (typeof zone !== 'string' || zone === '') return 'default';
  // RIFFLE_AZ accepts [A-Za-z0-9._-]{1,64}.
  return zone.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
}

function getJson(url, token, ca) {
  const client = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.get(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, ca, timeout: REQUEST_TIMEOUT_MS }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () => {
        if (response.statusCode !== 200) reject(new Error(`GET ${url}: HTTP ${response.statusCode}: ${body.slice(0, 200)}`));
        else resolve(JSON.parse(body));
      });
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url}: timed out`)));
    request.on('error', reject);
  });
}

function readOptional(file) {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

async function main() {
  const nodeName = process.env.NODE_NAME;
  const zoneFile = process.env.ZONE_FILE ?? '/var/run/riffle/zone';
  if (!nodeName) throw new Error('NODE_NAME is not set (downward API spec.nodeName)');
  const api = process.env.KUBE_API_URL ?? `https://${process.env.KUBERNETES_SERVICE_HOST}:${process.env.KUBERNETES_SERVICE_PORT}`;
  const token = readOptional(`${SERVICE_ACCOUNT}/token`);
  const ca = readOptional(`${SERVICE_ACCOUNT}/ca.crt`);
  let lastError;
  for (let attempt = 1; attempt <= ATTEMPTS_MAX; attempt++) {
    try {
      const node = await getJson(`${api}/api/v1/nodes/${encodeURIComponent(nodeName)}`, token, ca);
      const zone = zoneOf(node);
      writeFileSync(zoneFile, `${zone}\n`);
      console.log(`node ${nodeName} is in zone ${zone}`);
      return;
    } catch (error) {
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(1_000 * attempt, 5_000)));
    }
  }
  throw lastError;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error) => {
    console.error(`zone.mjs: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
