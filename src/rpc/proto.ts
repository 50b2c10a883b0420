// Loads the .proto contracts under proto/ into grpc-js service definitions. Every process loads
// a file once; the options here must match the type generator's flags in package.json ("gen"),
// so the generated TypeScript types describe exactly what the loader produces at run time.
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { existsSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

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
