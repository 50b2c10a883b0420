// The real-process tests run the compiled node (dist/raft/node-main.js). `npm test` builds first
// (pretest); when run alone (`npx vitest run test/raft`) this compiles if dist is missing or older
// than the raft sources.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const NODE_MAIN_JS = path.join(ROOT, 'dist/raft/node-main.js');

function newestSourceMs(): number {
  const dir = path.join(ROOT, 'raft');
  return Math.max(...readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => statSync(path.join(dir, f)).mtimeMs));
}

export function ensureBuilt(): void {
  const fresh = existsSync(NODE_MAIN_JS) && statSync(NODE_MAIN_JS).mtimeMs >= newestSourceMs();
  if (fresh) return;
  try {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.json')], { cwd: ROOT, stdio: 'pipe', timeout: 120_000 });
  } catch {
    // Type errors elsewhere in the repository still emit JavaScript; only a missing file is fatal.
  }
  if (!existsSync(NODE_MAIN_JS)) throw new Error(`build did not produce ${NODE_MAIN_JS}`);
}
