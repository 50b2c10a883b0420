// The gRPC transport alone: messages to a peer that is down are dropped (Raft resends) while the
// link backs off, and flow again once the peer comes up; misaddressed messages are refused.
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/util/logger.js';
import { GrpcTransport, type DropReason } from '../../raft/transport.js';
import type { Message } from '../../raft/types.js';

const A = '127.0.2.4:17420';
const B = '127.0.2.5:17420';
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

const heartbeat = (term: number): Message => ({ type: 'heartbeat', from: 1, to: 2, term, commit: 0, readRound: 0 });

async function waitFor(what: string, timeoutMs: number, probe: () => boolean): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (probe()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

describe('raft gRPC transport', () => {
  it('drops while the peer is down, reconnects when it comes up, and answers on the same stream', async () => {
    const drops: DropReason[] = [];
    const atA: Message[] = [];
    const a = new GrpcTransport({ id: 1, listen: A, peers: new Map([[2, B]]), logger: silentLogger, onDrop: (reason) => drops.push(reason) });
    await a.start((message) => atA.push(message));
    stops.push(() => a.stop());

    // Nobody listens at B yet: the stream fails and the link backs off, dropping what it is given.
    let term = 1;
    await waitFor('a drop while the peer is down', 5_000, () => {
      a.send(heartbeat(term++));
      return drops.includes('backoff');
    });

    const atB: Message[] = [];
    const b = new GrpcTransport({ id: 2, listen: B, peers: new Map([[1, A]]), logger: silentLogger });
    await b.start((message) => {
      atB.push(message);
      if (message.type === 'heartbeat') b.send({ type: 'heartbeatResponse', from: 2, to: 1, term: message.term, readRound: 7 });
    });
    stops.push(() => b.stop());
    await waitFor('delivery after the peer came up', 5_000, () => {
      a.send(heartbeat(term++));
      return atB.length > 0 && atA.length > 0;
    });
    expect(atB[0]).toMatchObject({ type: 'heartbeat', from: 1, to: 2 });
    expect(atA[0]).toMatchObject({ type: 'heartbeatResponse', from: 2, to: 1, readRound: 7 });

    a.send({ ...heartbeat(term), to: 9 });
    expect(drops).toContain('misaddressed');
  });

  it('carries entries, votes and TimeoutNow', async () => {
    const atA: Message[] = [];
    const atB: Message[] = [];
    const a = new GrpcTransport({ id: 1, listen: A, peers: new Map([[2, B]]), logger: silentLogger });
    const b = new GrpcTransport({ id: 2, listen: B, peers: new Map([[1, A]]), logger: silentLogger });
    await a.start((message) => atA.push(message));
    await b.start((message) => {
      atB.push(message);
      if (message.type === 'vote') b.send({ type: 'voteResponse', from: 2, to: 1, term: message.term, preVote: message.preVote, granted: true });
    });
    stops.push(() => a.stop(), () => b.stop());
    const entries = [{ index: 4, term: 2, kind: 'normal' as const, data: Buffer.from('four') }, { index: 5, term: 2, kind: 'noop' as const, data: Buffer.alloc(0) }];
    a.send({ type: 'append', from: 1, to: 2, term: 2, prevIndex: 3, prevTerm: 1, entries, commit: 3 });
    a.send({ type: 'vote', from: 1, to: 2, term: 3, preVote: true, lastIndex: 5, lastTerm: 2, transfer: false });
    a.send({ type: 'timeoutNow', from: 1, to: 2, term: 2 });
    await waitFor('all three at B and the vote answer at A', 5_000, () => atB.length === 3 && atA.length === 1);
    const append = atB.find((m) => m.type === 'append');
    expect(append && append.type === 'append' && append.entries.map((e) => [e.index, e.kind, Buffer.from(e.data).toString()])).toEqual([[4, 'normal', 'four'], [5, 'noop', '']]);
    expect(atB.map((m) => m.type).sort()).toEqual(['append', 'timeoutNow', 'vote']);
    expect(atA[0]).toMatchObject({ type: 'voteResponse', preVote: true, granted: true, term: 3 });
  });
});
