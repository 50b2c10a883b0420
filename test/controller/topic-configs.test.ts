import { describe, expect, it } from 'vitest';
import { TOPIC_CONFIG_KEYS, defaultMinInsyncReplicas, minInsyncReplicasOf, validateTopicConfig } from '../../controller/index.js';
import { LOG_CONFIG_KEYS } from '../../broker/log/index.js';
import { isRiffleError } from '../../src/rpc/errors.js';

function rejects(name: string, value: string, replicationFactor = 3): boolean {
  try {
    validateTopicConfig(name, value, replicationFactor);
    return false;
  } catch (error) {
    return isRiffleError(error, 'INVALID_CONFIG');
  }
}

describe('topic configs', () => {
  it('knows every log config the broker understands, plus min.insync.replicas', () => {
    expect([...TOPIC_CONFIG_KEYS].sort()).toEqual([...LOG_CONFIG_KEYS, 'min.insync.replicas'].sort());
  });

  it('checks values and ranges', () => {
    expect(rejects('segment.bytes', '10')).toBe(true);
    expect(rejects('segment.bytes', '1048576')).toBe(false);
    expect(rejects('retention.ms', '-1')).toBe(false);
    expect(rejects('retention.ms', '-2')).toBe(true);
    expect(rejects('retention.ms', '1.5')).toBe(true);
    expect(rejects('flush.policy', 'interval')).toBe(false);
    expect(rejects('flush.policy', 'sometimes')).toBe(true);
    expect(rejects('min.insync.replicas', '3', 3)).toBe(false);
    expect(rejects('min.insync.replicas', '4', 3)).toBe(true);
    expect(rejects('min.insync.replicas', '0', 3)).toBe(true);
    expect(rejects('cleanup.policy', 'compact')).toBe(false);
    expect(rejects('cleanup.policy', 'shred')).toBe(true);
  });

  it('defaults min.insync.replicas to 2 from RF 3 on', () => {
    expect([1, 2, 3, 5].map(defaultMinInsyncReplicas)).toEqual([1, 1, 2, 2]);
    expect(minInsyncReplicasOf({}, 3)).toBe(2);
    expect(minInsyncReplicasOf({ 'min.insync.replicas': '3' }, 3)).toBe(3);
  });
});
