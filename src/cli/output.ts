// Small output helpers shared by the CLI commands: aligned tables for people, JSON for scripts,
// and one exit path for typed errors.
import { RiffleError } from '../rpc/errors.js';

export function printTable(headers: string[], rows: (string | number)[][]): void {
  const cells = [headers, ...rows.map((row) => row.map(String))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  for (const row of cells) {
    process.stdout.write(`${row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()}\n`);
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints an error the way every command does and sets a failing exit code. */
export function reportError(command: string, error: unknown): void {
  if (error instanceof RiffleError) process.stderr.write(`riffle ${command}: ${error.errorName}: ${error.message}\n`);
  else process.stderr.write(`riffle ${command}: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}

/** Parses repeated `--config k=v` options into a map. */
export function parseKeyValues(pairs: string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const pair of pairs) {
    const index = pair.indexOf('=');
    if (index <= 0) throw new RiffleError('INVALID_CONFIG', `Expected key=value, got '${pair}'.`);
    result[pair.slice(0, index)] = pair.slice(index + 1);
  }
  return result;
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function parseIntegerOption(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number)) throw new Error(`expected a whole number, got '${value}'`);
  return number;
}
