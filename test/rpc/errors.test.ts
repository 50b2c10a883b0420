import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ERRORS, RiffleError, errorNameOf, fromServiceError, type ErrorName } from '../../src/rpc/errors.js';

describe('error table', () => {
  it('gives every error a unique code and an explicit retriable flag', () => {
    const codes = new Set<number>();
    for (const [name, spec] of Object.entries(ERRORS)) {
      expect(codes.has(spec.code), `${name} reuses code ${spec.code}`).toBe(false);
      codes.add(spec.code);
      expect(typeof spec.retriable).toBe('boolean');
      expect(spec.message.length).toBeGreaterThan(0);
      expect(errorNameOf(spec.code)).toBe(name);
    }
  });

  it('uses Kafka protocol codes where Kafka has the error', () => {
    expect(ERRORS.CORRUPT_MESSAGE.code).toBe(2);
    expect(ERRORS.NOT_LEADER_OR_FOLLOWER.code).toBe(6);
    expect(ERRORS.NOT_ENOUGH_REPLICAS.code).toBe(19);
    expect(ERRORS.TOPIC_ALREADY_EXISTS.code).toBe(36);
    expect(ERRORS.OUT_OF_ORDER_SEQUENCE_NUMBER.code).toBe(45);
    expect(ERRORS.FENCED_LEADER_EPOCH.code).toBe(74);
    expect(ERRORS.STALE_MEMBER_EPOCH.code).toBe(113);
  });

  it('round-trips a typed error through a gRPC status and metadata', () => {
    const original = new RiffleError('NOT_LEADER_OR_FOLLOWER', 'moved', { leaderHint: '127.0.0.2:9094' });
    const wire = original.toServiceError() as grpc.ServiceError;
    const back = fromServiceError(wire);
    expect(back.errorName).toBe('NOT_LEADER_OR_FOLLOWER');
    expect(back.message).toBe('moved');
    expect(back.retriable).toBe(true);
    expect(back.leaderHint).toBe('127.0.0.2:9094');
  });

  it('maps transport failures without typed metadata to retriable network errors', () => {
    const unavailable = { code: grpc.status.UNAVAILABLE, details: 'connection refused', metadata: new grpc.Metadata() } as grpc.ServiceError;
    expect(fromServiceError(unavailable).errorName).toBe<ErrorName>('NETWORK_EXCEPTION');
    expect(fromServiceError(unavailable).retriable).toBe(true);
    const deadline = { code: grpc.status.DEADLINE_EXCEEDED, details: 'deadline', metadata: new grpc.Metadata() } as grpc.ServiceError;
    expect(fromServiceError(deadline).errorName).toBe<ErrorName>('REQUEST_TIMED_OUT');
  });
});
