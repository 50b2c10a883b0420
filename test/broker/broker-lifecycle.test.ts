// BrokerLifecycle's good standing: an unfenced heartbeat answer vouches for the broker for the
// controller's session timeout counted from when the heartbeat left (the controller counts from
// its arrival, so the broker's standing lapses first), once the broker's image has reached the
// controller's metadata offset of that answer. Driven by a scripted controller and a manual clock.
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerLifecycle } from '../../broker/broker-lifecycle.js';
import type { ControllerClient } from '../../broker/controller-client.js';
import type { NodeConfig } from '../../src/config/node-config.js';
import { RiffleError } from '../../src/rpc/errors.js';
import { silentLogger } from '../../src/util/logger.js';
import { waitFor } from './log/helpers.js';

type Reply = () => object;

/** Answers RegisterBroker at once and each BrokerHeartbeat with the next scripted reply (waiting for one). */
class ScriptedController {
  heartbeats = 0;
  private readonly replies: Reply[] = [];
  private waiting?: () => void;

  reply(reply: Reply): void {
    this.replies.push(reply);
    this.waiting?.();
  }

  async call(method: string): Promise<object> {
    if (method === 'RegisterBroker') return { brokerEpoch: 7, clusterId: '' };
    while (this.replies.length === 0) await new Promise<void>((resolve) => (this.waiting = resolve));
    this.heartbeats++;
    return this.replies.shift()!();
  }
}

const UNFENCED = { isCaughtUp: true, isFenced: false, shouldShutDown: false, sessionTimeoutMs: 3_000, metadataOffset: 12 };

let lifecycle: BrokerLifecycle | undefined;
afterEach(() => lifecycle?.stop());

function start(controller: ScriptedController, clock: { now: number }, applied: { offset: number }): BrokerLifecycle {
  const config = { nodeId: 1, az: 'a', advertisedListen: '127.0.0.1:1', advertisedHttp: '', roles: ['broker'] } as unknown as NodeConfig;
  lifecycle = new BrokerLifecycle(config, controller as unknown as ControllerClient, () => applied.offset, silentLogger, 5, '', () => clock.now);
  lifecycle.start();
  return lifecycle;
}

describe('broker standing', () => {
  it('lasts a session timeout from when the heartbeat left, once the image has reached the answer\'s offset', async () => {
    const controller = new ScriptedController();
    const clock = { now: 1_000 };
    const applied = { offset: 11 };
    const broker = start(controller, clock, applied);
    expect(broker.inGoodStanding).toBe(false);
    expect(broker.standingAgeMs).toBe(Infinity);
    // Sent at 1,000, answered a second later.
    controller.reply(() => {
      clock.now += 1_000;
      return UNFENCED;
    });
    await waitFor(() => broker.state === 'active', 'the broker active');
    // The answer was given at metadata offset 12; this image is at 11.
    expect(broker.inGoodStanding).toBe(false);
    applied.offset = 12;
    expect(broker.inGoodStanding).toBe(true);
    clock.now = 3_999;
    expect(broker.inGoodStanding).toBe(true);
    expect(broker.standingAgeMs).toBe(2_999);
    // The controller fences at 3 s after the heartbeat's arrival at the earliest.
    clock.now = 4_000;
    expect(broker.inGoodStanding).toBe(false);
    // The next answer restores it.
    controller.reply(() => UNFENCED);
    await waitFor(() => controller.heartbeats === 2 && broker.inGoodStanding, 'standing again');
    expect(broker.standingAgeMs).toBe(0);
  });

  it('ends with a fenced answer or an unknown broker epoch', async () => {
    const controller = new ScriptedController();
    const clock = { now: 0 };
    const broker = start(controller, clock, { offset: 12 });
    controller.reply(() => UNFENCED);
    await waitFor(() => broker.inGoodStanding, 'standing');
    // The controller fenced it (say its heartbeats stopped reaching the controller for a while).
    controller.reply(() => ({ ...UNFENCED, isFenced: true }));
    await waitFor(() => broker.state === 'fenced', 'the broker fenced');
    expect(broker.inGoodStanding).toBe(false);
    controller.reply(() => UNFENCED);
    await waitFor(() => broker.inGoodStanding, 'standing again');
    // The controller no longer knows this epoch: the broker registers again, out of standing.
    controller.reply(() => {
      throw new RiffleError('STALE_BROKER_EPOCH', 'unknown epoch');
    });
    await waitFor(() => controller.heartbeats === 4, 'the stale heartbeat');
    await waitFor(() => broker.state === 'fenced', 'the broker registered again');
    expect(broker.inGoodStanding).toBe(false);
    expect(broker.standingAgeMs).toBe(Infinity);
  });
});
