// Leader-epoch truncation end to end on real logs: replicas that led in turn, each writing its
// own epoch and replicating to some of the others only partly, are brought back in line with
// the last leader through the fetch protocol's divergence check (KIP-101/279, with KIP-595's
// diverging epoch in the fetch answer) and truncateToDivergence. Afterwards every replica must
// be byte-identical to the leader (checksumUpTo) with the same epochs, and no sync may loop.
// A failure prints the seed; RIFFLE_SEED=<seed> replays it.
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EpochEndOffset, PartitionLog } from '../../../broker/log/index.js';
import { Prng } from '../../../src/util/prng.js';
import { encodeRecordBatch } from '../../../src/util/record-batch.js';
import { makeTempDir, openLog, removeDir } from './helpers.js';

const REPLICAS = 3;
const ROUNDS = Number(process.env.RIFFLE_MODEL_STEPS ?? 80);
const CONFIG = { segmentBytes: 700, indexIntervalBytes: 128, flushPolicy: 'os' as const };

let dir: string;
beforeEach(() => {
  dir = makeTempDir();
});
afterEach(() => removeDir(dir));

/**
 * The leader's check of a fetch at `fetchOffset` from a follower whose last epoch is
 * `lastFetchedEpoch`: null when the follower's log matches up to there, else the epoch and the
 * offset it must truncate to (the end of the largest common epoch, or the log start).
 */
function divergence(leader: PartitionLog, fetchOffset: number, lastFetchedEpoch: number): EpochEndOffset | null {
  if (lastFetchedEpoch < 0) return null;
  const answer = leader.endOffsetForEpoch(lastFetchedEpoch);
  if (answer.epoch === lastFetchedEpoch && answer.endOffset >= fetchOffset) return null;
  return { epoch: answer.epoch, endOffset: answer.endOffset < 0 ? leader.logStartOffset : Math.min(answer.endOffset, fetchOffset) };
}

/** Fetches until the follower has everything (or, when `partial`, stops at random); returns the rounds taken. */
function sync(follower: PartitionLog, leader: PartitionLog, prng: Prng, partial: boolean, what: string): number {
  const roundsMax = 2 * (leader.latestEpoch + 2) + 2 * (leader.logEndOffset + 1);
  for (let round = 0; ; round++) {
    expect(round, `${what}: sync does not converge`).toBeLessThan(roundsMax);
    const diverged = divergence(leader, follower.logEndOffset, follower.latestEpoch);
    if (diverged !== null) {
      follower.truncateToDivergence(diverged.epoch, diverged.endOffset);
      continue;
    }
    expect(follower.logEndOffset, `${what}: follower ahead without divergence`).toBeLessThanOrEqual(leader.logEndOffset);
    if (follower.logEndOffset === leader.logEndOffset || (partial && prng.chance(0.3))) return round;
    follower.appendAsFollower(leader.read(follower.logEndOffset, prng.int(1, 2000)).records);
  }
}

function dataEpochs(log: PartitionLog): Array<[number, number]> {
  // An epoch begun without data (a leader that has not written yet) is not part of the log.
  return log.leaderEpochEntries().filter((entry) => entry.startOffset < log.logEndOffset).map((entry) => [entry.epoch, entry.startOffset]);
}

describe('leader-epoch truncation between replicas', () => {
  it('brings every replica back to the leader after many partial failovers', async () => {
    const seed = Number(process.env.RIFFLE_SEED ?? Date.now() % 0x7fffffff);
    console.log(`divergence walk: RIFFLE_SEED=${seed}`);
    const prng = new Prng(seed);
    const logs: PartitionLog[] = [];
    for (let index = 0; index < REPLICAS; index++) logs.push((await openLog(path.join(dir, `r${index}`), CONFIG)).log);
    let leader = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const what = `seed ${seed} round ${round}`;
      leader = prng.int(0, REPLICAS);
      const epoch = Math.max(...logs.map((log) => log.latestEpoch)) + prng.int(1, 3);
      // A new leader records its epoch before writing, so its answers are right at once; now
      // and then it skips that, and the follower check falls back to the leader's log start.
      if (prng.chance(0.9)) logs[leader]!.beginLeaderEpoch(epoch);
      for (let append = prng.int(0, 4); append > 0; append--) {
        const records = Array.from({ length: prng.int(1, 5) }, (_, index) => ({ key: null, value: Buffer.from(`e${epoch}-${round}-${index}`) }));
        logs[leader]!.append(encodeRecordBatch(records), epoch);
      }
      for (let follower = 0; follower < REPLICAS; follower++) {
        if (follower !== leader && prng.chance(0.6)) sync(logs[follower]!, logs[leader]!, prng, true, `${what} follower ${follower}`);
      }
      if (prng.chance(0.15)) {
        const index = prng.int(0, REPLICAS);
        await logs[index]!.close();
        logs[index] = (await openLog(path.join(dir, `r${index}`), CONFIG)).log;
      }
    }
    const final = logs[leader]!;
    for (let follower = 0; follower < REPLICAS; follower++) {
      if (follower === leader) continue;
      const what = `seed ${seed} final follower ${follower}`;
      sync(logs[follower]!, final, prng, false, what);
      expect(logs[follower]!.logEndOffset, what).toBe(final.logEndOffset);
      expect(await logs[follower]!.checksumUpTo(final.logEndOffset), what).toEqual(await final.checksumUpTo(final.logEndOffset));
      expect(dataEpochs(logs[follower]!), what).toEqual(dataEpochs(final));
    }
    for (const log of logs) await log.close();
  });
});
