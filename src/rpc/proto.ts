// Loads the .proto contracts under proto/ into grpc-js service definitions. Every process loads
// a file once; the options here must match the type generator's flags in package.json ("gen"),
// so the generated TypeScript types describe exactly what the loader produces at run time.
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { existsSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobufjs from 'protobufjs';

/** Directory that holds the proto/ tree, found from sources (vitest) and from dist/ (built). */
export const PROTO_ROOT = findProtoRoot(path.dirname(fileURLToPath(import.meta.url)));

function findProtoRoot(start: string): string {
  for (let dir = start; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'proto');
    if (existsSync(path.join(candidate, 'riffle'))) return candidate;
  }
  throw new Error(`proto/ directory not found above ${start}`);
}

export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

const cache = new Map<string, grpc.GrpcObject>();

/** Loads one proto file (path relative to proto/, e.g. 'riffle/v1/kafka.proto'). */
export function loadProto(relativePath: string): grpc.GrpcObject {
  const cached = cache.get(relativePath);
  if (cached) return cached;
  const definition = protoLoader.loadSync(relativePath, PROTO_LOADER_OPTIONS);
  encodeWithoutConversion(definition, relativePath);
  const loaded = grpc.loadPackageDefinition(definition);
  cache.set(relativePath, loaded);
  return loaded;
}

/** Looks up a service constructor by its full name, e.g. 'riffle.v1.Kafka'. */
export function serviceClient(relativePath: string, fullName: string): grpc.ServiceClientConstructor {
  let node: unknown = loadProto(relativePath);
  for (const part of fullName.split('.')) {
    node = (node as Record<string, unknown>)[part];
    if (node === undefined) throw new Error(`service ${fullName} not found in ${relativePath}`);
  }
  return node as grpc.ServiceClientConstructor;
}

/**
 * Gives every method of the file's services serializers that encode a message as it is, without
 * proto-loader's `fromObject` copy first. That copy converts what a caller may give in another
 * form: enum names (our .proto files declare no enums, and a file that did would keep the
 * conversion) and int64 values, which protobufjs's encoder takes as numbers, strings or Longs
 * alike. The copy cost a broker about 5% of its CPU at 100,000 records/s: every answer, fetch and
 * produce was built twice, with a Long allocated for each int64 field on the way.
 */
function encodeWithoutConversion(definition: protoLoader.PackageDefinition, relativePath: string): void {
  const root = new protobufjs.Root();
  root.resolvePath = (_origin, target) => path.join(PROTO_ROOT, target);
  root.loadSync(relativePath, { keepCase: false });
  root.resolveAll();
  for (const [name, entry] of Object.entries(definition)) {
    const service = root.lookup(name);
    if (!(service instanceof protobufjs.Service)) continue;
    const methods = entry as protoLoader.ServiceDefinition;
    for (const [methodName, method] of Object.entries(methods)) {
      const resolved = service.methods[methodName];
      if (!resolved?.resolvedRequestType || !resolved.resolvedResponseType) throw new Error(`method ${name}.${methodName} not resolved`);
      const writable = method as { requestSerialize: (value: unknown) => Buffer; responseSerialize: (value: unknown) => Buffer };
      writable.requestSerialize = directSerializer(resolved.resolvedRequestType) ?? writable.requestSerialize;
      writable.responseSerialize = directSerializer(resolved.resolvedResponseType) ?? writable.responseSerialize;
    }
  }
}

/** A serializer that encodes the value as given; none for a type that holds an enum somewhere. */
export function directSerializer(type: protobufjs.Type): ((value: unknown) => Buffer) | undefined {
  if (holdsEnum(type, new Set())) return undefined;
  return (value: unknown): Buffer => {
    if (Array.isArray(value) || typeof value !== 'object' || value === null) {
      throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got ${Array.isArray(value) ? 'array' : typeof value} instead`);
    }
    return type.encode(value as Record<string, unknown>).finish() as Buffer;
  };
}

function holdsEnum(type: protobufjs.Type, seen: Set<protobufjs.Type>): boolean {
  if (seen.has(type)) return false;
  seen.add(type);
  return type.fieldsArray.some((field) => {
    const resolved = field.resolve().resolvedType;
    if (resolved instanceof protobufjs.Enum) return true;
    return resolved instanceof protobufjs.Type && holdsEnum(resolved, seen);
  });
}
