// The external tools the ops suite drives (promtool and prometheus from Debian's `prometheus`
// package, kubectl for `kubectl kustomize`). `bash deploy/ci/install-tools.sh` installs them;
// CI runs it before this suite. A missing tool fails the suite with that hint, never skips it.
import { execFileSync } from 'node:child_process';

export function requireTool(name: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${name} is not installed: run \`bash deploy/ci/install-tools.sh\` (as root) first`);
  }
}
