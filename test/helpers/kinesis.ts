// Writes to a Kinesis-like stream the way a Kinesis client must: PutRecords answers per record,
// and a record that failed (InternalFailure while a leader moves or a connection to a restarted
// node is re-established, ProvisionedThroughputExceeded) is the caller's to send again.
import { expect } from 'vitest';
import type { KinesisClient } from '../../src/client/index.js';
import { RiffleError } from '../../src/rpc/errors.js';

export interface PutEntry {
  partitionKey: string;
  data: string;
  explicitHashKey?: string;
}

/** Writes a batch, resending failed records until every one is acknowledged (bounded); returns their sequence numbers. */
export async function putAll(kinesis: KinesisClient, stream: string, entries: PutEntry[]): Promise<string[]> {
  const sequenceNumbers: string[] = new Array(entries.length);
  let pending = entries.map((entry, index) => ({ entry, index }));
  const failures: string[] = [];
  for (let attempt = 0; attempt < 100 && pending.length > 0; attempt++) {
    let response;
    try {
      response = await kinesis.putRecords(stream, pending.map((item) => item.entry));
    } catch (error) {
      if (!(error instanceof RiffleError) || !error.retriable) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    const failed: typeof pending = [];
    response.records.forEach((result, position) => {
      if (result.errorCode) {
        failed.push(pending[position]!);
        failures.push(`${result.errorCode}: ${result.errorMessage ?? ''}`);
      } else sequenceNumbers[pending[position]!.index] = result.sequenceNumber!;
    });
    pending = failed;
    if (failed.length > 0) await new Promise((resolve) => setTimeout(resolve, 50 * Math.min(attempt + 1, 10)));
  }
  expect(pending, `records still failing after 100 attempts; failures seen: ${failures.slice(-3).join(' | ')}`).toEqual([]);
  return sequenceNumbers;
}
