// Record builders shared by the controller tests.
import type { MetadataRecord } from '../../src/rpc/generated/riffle/internal/MetadataRecord.js';

export function registerRecord(nodeId: number, rack = 'a', incarnationId = `inc-${nodeId}`): MetadataRecord {
  return {
    registerBroker: {
      nodeId, incarnationId, rack, roles: ['broker'], fenced: true,
      listener: { host: '127.0.0.1', port: 9000 + nodeId }, http: { host: '127.0.0.1', port: 9600 + nodeId },
    },
  };
}

export function stateRecord(nodeId: number, brokerEpoch: number, state: string): MetadataRecord {
  return { brokerState: { nodeId, brokerEpoch, state } };
}

export function topicRecord(name: string, topicId: string, replicationFactor = 3, kind = 'kafka'): MetadataRecord {
  return { topic: { name, topicId, kind, replicationFactor, configs: { 'retention.ms': '1000' }, createdAtMs: 5 } };
}

export function partitionRecord(topicId: string, partition: number, replicas: number[], leader = replicas[0]!): MetadataRecord {
  return { partition: { topicId, partition, replicas, isr: replicas, leader, leaderEpoch: 0, partitionEpoch: 0, state: 'open', createdAtMs: 5 } };
}
