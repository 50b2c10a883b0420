// Log configs by their Kafka names: defaults, parsing, and INVALID_CONFIG for anything else.
import { describe, expect, it } from 'vitest';
import { DEFAULT_LOG_CONFIG, LOG_CONFIG_KEYS, parseLogConfig } from '../../../broker/log/index.js';

describe('log config', () => {
  it('has Kafka-like defaults', () => {
    expect(DEFAULT_LOG_CONFIG).toEqual({
      segmentBytes: 1024 ** 3, segmentMs: 604_800_000, retentionMs: 604_800_000, retentionBytes: -1,
      flushPolicy: 'ack', flushIntervalMs: 1000, indexIntervalBytes: 4096, maxBatchBytes: 1_048_588,
      cleanupPolicy: 'delete', deleteRetentionMs: 86_400_000,
    });
  });

  it('parses every Kafka-named setting over a base', () => {
    const config = parseLogConfig({
      'segment.bytes': '1048576', 'segment.ms': '3600000', 'retention.ms': '-1', 'retention.bytes': '10737418240',
      'flush.policy': 'interval', 'flush.interval.ms': '250', 'index.interval.bytes': '0', 'max.message.bytes': '2097152',
      'cleanup.policy': 'compact', 'delete.retention.ms': '1000',
    });
    expect(config).toEqual({
      segmentBytes: 1_048_576, segmentMs: 3_600_000, retentionMs: -1, retentionBytes: 10_737_418_240,
      flushPolicy: 'interval', flushIntervalMs: 250, indexIntervalBytes: 0, maxBatchBytes: 2_097_152,
      cleanupPolicy: 'compact', deleteRetentionMs: 1000,
    });
    expect(parseLogConfig({ 'flush.policy': 'os' }, config).segmentBytes).toBe(1_048_576);
    expect(LOG_CONFIG_KEYS).toContain('flush.policy');
  });

  it('rejects unknown keys and bad values with INVALID_CONFIG', () => {
    const bad: Array<Record<string, string>> = [
      { 'cleanup.policy': 'shred' }, { 'segment.bytes': 'lots' }, { 'segment.bytes': '3000000000' }, { 'segment.bytes': '12' },
      { 'retention.ms': '-2' }, { 'flush.policy': 'always' }, { 'segment.ms': '1.5' }, { 'flush.interval.ms': '0' }, { 'retention.bytes': '' },
    ];
    for (const entries of bad) expect(() => parseLogConfig(entries), JSON.stringify(entries)).toThrow(expect.objectContaining({ errorName: 'INVALID_CONFIG' }));
  });
});
