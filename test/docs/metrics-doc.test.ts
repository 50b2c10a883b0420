// Every Prometheus metric the code registers is listed in docs/metrics.md, and the page lists
// nothing the code does not register.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cluster.js';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (name === 'generated' || name === 'node_modules') return [];
    return statSync(full).isDirectory() ? sourceFiles(full) : full.endsWith('.ts') ? [full] : [];
  });
}

describe('docs/metrics.md', () => {
  it('lists exactly the metrics the code registers', () => {
    const registered = new Set<string>();
    for (const area of ['src', 'raft', 'controller', 'broker', 'chaos']) {
      for (const file of sourceFiles(path.join(REPO_ROOT, area))) {
        for (const match of readFileSync(file, 'utf8').matchAll(/(?:name:\s*|gauge\(\s*|perLeaderPartition\(\s*)['`"](riffle_[a-z0-9_]+)['`"]/g)) registered.add(match[1]!);
      }
    }
    const documented = new Set([...readFileSync(path.join(REPO_ROOT, 'docs', 'metrics.md'), 'utf8').matchAll(/`(riffle_[a-z0-9_]+)`/g)].map((match) => match[1]!));
    expect(registered.size).toBeGreaterThan(20);
    expect([...registered].filter((name) => !documented.has(name)).sort()).toEqual([]);
    const prefixes = ['riffle_process_'];
    expect([...documented].filter((name) => !registered.has(name) && !prefixes.some((prefix) => name.startsWith(prefix))).sort()).toEqual([]);
  });
});
