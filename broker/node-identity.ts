// A node's identity on disk, like Kafka's meta.properties: the cluster id, made once when the
// first node formats its data directory, and the node id, so a data directory is never started
// by mistake as another node or joined to another cluster.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface NodeIdentity {
  clusterId: string;
  nodeId: number;
}

export class IdentityMismatchError extends Error {
  override readonly name = 'IdentityMismatchError';
}

/** Loads the identity from <data-dir>/meta.json, or writes a new one (a new cluster id). */
export async function loadOrCreateIdentity(dataDir: string, nodeId: number, clusterId?: string): Promise<NodeIdentity> {
  const file = path.join(dataDir, 'meta.json');
  await fs.mkdir(dataDir, { recursive: true });
  let existing: NodeIdentity | undefined;
  try {
    existing = JSON.parse(await fs.readFile(file, 'utf8')) as NodeIdentity;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (existing) {
    if (existing.nodeId !== nodeId) {
      throw new IdentityMismatchError(`${dataDir} belongs to node ${existing.nodeId}, not node ${nodeId}`);
    }
    if (clusterId !== undefined && existing.clusterId !== clusterId) {
      throw new IdentityMismatchError(`${dataDir} belongs to cluster ${existing.clusterId}, not ${clusterId}`);
    }
    return existing;
  }
  const identity = { clusterId: clusterId ?? newClusterId(), nodeId };
  await writeFileAtomic(file, `${JSON.stringify(identity, null, 2)}\n`);
  return identity;
}

/** 16 random bytes in URL-safe base64, the form of Kafka's cluster ids. */
function newClusterId(): string {
  return randomBytes(16).toString('base64url');
}

/** Replaces a file so that a crash leaves either the old or the new contents, never a mix. */
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
