// deploy/k8s/zone.mjs, the init container that tells a pod its zone: it asks the API server for
// the pod's node (here a stand-in API on 127.0.22.1) and writes the node's
// topology.kubernetes.io/zone label, made a valid RIFFLE_AZ, to the zone file.
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, temporaryDir } from '../helpers/cluster.js';
// @ts-expect-error: a plain ES module without types, run as is by the init container.
import { zoneOf } from '../../deploy/k8s/zone.mjs';

const run = promisify(execFile);
const SCRIPT = path.join(REPO_ROOT, 'deploy', 'k8s', 'zone.mjs');
const scratch = temporaryDir('riffle-zone-');
const requests: { url: string; authorization?: string }[] = [];
const nodes: Record<string, object> = {
  'worker-1': { metadata: { name: 'worker-1', labels: { 'topology.kubernetes.io/zone': 'eu-west-1a', 'kubernetes.io/hostname': 'worker-1' } } },
  'worker-2': { metadata: { name: 'worker-2', labels: {} } },
};
const api = http.createServer((request, response) => {
  requests.push({ url: request.url ?? '', authorization: request.headers.authorization });
  const node = nodes[decodeURIComponent((request.url ?? '').replace('/api/v1/nodes/', ''))];
  response.writeHead(node ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(node ?? { kind: 'Status', code: 404 }));
});

beforeAll(async () => {
  await new Promise<void>((resolve) => api.listen(0, '127.0.22.1', resolve));
});

afterAll(async () => {
  await new Promise((resolve) => api.close(resolve));
  scratch.remove();
});

async function zoneFor(nodeName: string): Promise<string> {
  const zoneFile = path.join(scratch.dir, `${nodeName}.zone`);
  const port = (api.address() as AddressInfo).port;
  await run(process.execPath, [SCRIPT], { env: { ...process.env, NODE_NAME: nodeName, ZONE_FILE: zoneFile, KUBE_API_URL: `http://127.0.22.1:${port}` }, timeout: 20_000 });
  return readFileSync(zoneFile, 'utf8').trim();
}

describe('zone.mjs', () => {
  it("writes the zone label of the pod's node", async () => {
    expect(await zoneFor('worker-1')).toBe('eu-west-1a');
    expect(requests.at(-1)!.url).toBe('/api/v1/nodes/worker-1');
  });

  it("falls back to 'default' for a node without a zone label", async () => {
    expect(await zoneFor('worker-2')).toBe('default');
  });

  it('turns any label value into a valid AZ name', () => {
    expect(zoneOf({ metadata: { labels: { 'topology.kubernetes.io/zone': 'zone a/1' } } })).toBe('zone-a-1');
    expect(zoneOf({ metadata: { labels: { 'topology.kubernetes.io/zone': 'x'.repeat(80) } } })).toHaveLength(64);
    expect(zoneOf({})).toBe('default');
  });
});
