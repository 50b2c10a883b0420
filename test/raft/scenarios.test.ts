// Scripted scenarios (test/raft/testdata/*.txt): each command's output must match the file.
// RIFFLE_REWRITE=1 rewrites the expectations; review the diff before committing it.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runScript } from './interaction.js';

const TESTDATA = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata');

describe('raft scripted scenarios', () => {
  for (const file of readdirSync(TESTDATA).filter((f) => f.endsWith('.txt')).sort()) {
    it(file.replace(/\.txt$/, ''), () => {
      for (const block of runScript(path.join(TESTDATA, file))) {
        expect(block.actual, `${file}: ${block.command}`).toBe(block.expected);
      }
    });
  }
});
