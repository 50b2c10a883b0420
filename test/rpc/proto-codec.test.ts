// The services' serializers encode messages as given (proto.ts, encodeWithoutConversion): the
// bytes must be those of protobufjs's fromObject-then-encode, which proto-loader uses, for every
// form a caller may give (int64 as number or string, absent and null fields, bytes as Buffer).
import path from 'node:path';
import protobufjs from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { directSerializer, PROTO_ROOT, serviceClient } from '../../src/rpc/proto.js';

interface MethodCodec {
  requestSerialize(value: unknown): Buffer;
  requestDeserialize(bytes: Buffer): unknown;
  responseSerialize(value: unknown): Buffer;
  responseDeserialize(bytes: Buffer): unknown;
}

function method(file: string, service: string, name: string): MethodCodec {
  return (serviceClient(file, service).service as unknown as Record<string, MethodCodec>)[name]!;
}

function referenceType(file: string, name: string): protobufjs.Type {
  const root = new protobufjs.Root();
  root.resolvePath = (_origin, target) => path.join(PROTO_ROOT, target);
  root.loadSync(file, { keepCase: false });
  root.resolveAll();
  return root.lookupType(name);
}

function viaFromObject(type: protobufjs.Type, value: Record<string, unknown>): Buffer {
  return Buffer.from(type.encode(type.fromObject(value)).finish());
}

describe('service serializers', () => {
  const replicaFetch = method('riffle/internal/replication.proto', 'riffle.internal.Replication', 'ReplicaFetch');
  const request = referenceType('riffle/internal/replication.proto', 'riffle.internal.ReplicaFetchRequest');
  const response = referenceType('riffle/internal/replication.proto', 'riffle.internal.ReplicaFetchResponse');

  it('encode a request as fromObject-then-encode does, int64 fields given as numbers or strings', () => {
    const position = {
      topic: 'orders', partition: 3, currentLeaderEpoch: 7, fetchOffset: 2 ** 40 + 5, lastFetchedEpoch: 6, logStartOffset: 0,
      partitionMaxBytes: 1 << 20, unflushedRecords: 1000, highWatermark: 2 ** 40 - 995,
    };
    const value = { replicaId: 2, brokerEpoch: 12, maxWaitMs: 500, maxBytes: 1 << 24, incremental: true, partitions: [position], forgotten: [{ topic: 'gone', partition: 1 }] };
    const bytes = replicaFetch.requestSerialize(value);
    expect(bytes.equals(viaFromObject(request, value))).toBe(true);
    const asStrings = { ...value, brokerEpoch: '12', partitions: [{ ...position, fetchOffset: String(position.fetchOffset), highWatermark: String(position.highWatermark) }] };
    expect(replicaFetch.requestSerialize(asStrings).equals(bytes)).toBe(true);
    expect(replicaFetch.requestDeserialize(bytes)).toEqual({ ...value, progressOnly: false });
  });

  it('leave out absent and null fields, and carry bytes as given', () => {
    const records = Buffer.from('a record batch would be here');
    const value = { partitions: [{ topic: 'orders', partition: 0, errorCode: 0, highWatermark: 10, logStartOffset: null, records }] };
    const bytes = replicaFetch.responseSerialize(value);
    expect(bytes.equals(viaFromObject(response, value))).toBe(true);
    const decoded = replicaFetch.responseDeserialize(bytes) as { partitions: { records: Buffer; logStartOffset: number; diverging: boolean }[] };
    expect(Buffer.from(decoded.partitions[0]!.records).equals(records)).toBe(true);
    expect(decoded.partitions[0]!.logStartOffset).toBe(0);
    expect(decoded.partitions[0]!.diverging).toBe(false);
  });

  it('refuse what is not a message object', () => {
    expect(() => replicaFetch.requestSerialize([{ replicaId: 1 }])).toThrow(/got array/);
    expect(() => replicaFetch.requestSerialize(null)).toThrow(/ReplicaFetchRequest/);
    expect(() => replicaFetch.requestSerialize(7)).toThrow(/got number/);
  });

  it('keep the conversion for a message that holds an enum', () => {
    const root = protobufjs.Root.fromJSON({
      nested: {
        Color: { values: { RED: 0, GREEN: 1 } },
        Paint: { fields: { color: { type: 'Color', id: 1 } } },
        Wall: { fields: { paint: { type: 'Paint', id: 1 }, height: { type: 'int64', id: 2 } } },
        Plain: { fields: { height: { type: 'int64', id: 1 }, next: { type: 'Plain', id: 2 } } },
      },
    });
    root.resolveAll();
    expect(directSerializer(root.lookupType('Wall'))).toBeUndefined();
    const plain = directSerializer(root.lookupType('Plain'));
    expect(plain).toBeDefined();
    expect(plain!({ height: 5, next: { height: 6 } }).equals(viaFromObject(root.lookupType('Plain'), { height: 5, next: { height: 6 } }))).toBe(true);
  });
});
