// Always-on assertions (TigerBeetle style): they guard arguments, results and invariants in
// production too. A failed assertion is a bug in Riffle, never a user error; user input is
// validated separately and answered with a typed RiffleError.
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new AssertionError(typeof message === 'string' ? message : message());
}

export function unreachable(value: never, what: string): never {
  throw new AssertionError(`unreachable ${what}: ${JSON.stringify(value)}`);
}
