// Generates TypeScript types for every .proto under proto/ with @grpc/proto-loader's generator,
// then adds the `.js` extensions that ESM (NodeNext) needs to the generated relative imports.
// Run by `npm run gen` (and so by `npm run build`); the output is not committed.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const protoDir = path.join(root, 'proto');
const outDir = path.join(root, 'src', 'rpc', 'generated');

function listFiles(dir, suffix) {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? listFiles(full, suffix) : full.endsWith(suffix) ? [full] : [];
  });
}

const protos = listFiles(protoDir, '.proto').map((file) => path.relative(protoDir, file)).sort();
const generator = createRequire(import.meta.url).resolve('@grpc/proto-loader/build/bin/proto-loader-gen-types.js');
rmSync(outDir, { recursive: true, force: true });
execFileSync(process.execPath, [
  generator, '--grpcLib=@grpc/grpc-js', '--longs=Number', '--enums=String', '--defaults', '--oneofs',
  '-I', protoDir, '-O', outDir, ...protos,
], { stdio: 'inherit' });

for (const file of listFiles(outDir, '.ts')) {
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, text.replace(/from '(\.{1,2}\/[^']+)'/g, "from '$1.js'"));
}
console.log(`generated types for ${protos.length} proto files`);
