// Retry policy of the SDK: only errors the table marks retriable are retried, with exponential
// backoff and jitter, within an overall deadline.
import { RiffleError, toRiffleError } from '../rpc/errors.js';

export interface RetryOptions {
  /** Give up once this much time has passed since the first attempt. */
  deadlineMs: number;
  backoffMsInitial: number;
  backoffMsMax: number;
  /** Called before each retry, e.g. to refresh metadata after NOT_LEADER_OR_FOLLOWER. */
  onRetry?: (error: RiffleError, attempt: number) => void | Promise<void>;
  /** Narrows which retriable errors are retried (all of them when absent). */
  retryIf?: (error: RiffleError) => boolean;
}

export const DEFAULT_RETRY: RetryOptions = { deadlineMs: 30_000, backoffMsInitial: 50, backoffMsMax: 1_000 };

export async function withRetries<T>(attempt: (attemptNumber: number) => Promise<T>, options: RetryOptions = DEFAULT_RETRY): Promise<T> {
  const started = Date.now();
  for (let attemptNumber = 1; ; attemptNumber++) {
    try {
      return await attempt(attemptNumber);
    } catch (thrown) {
      const error = toRiffleError(thrown);
      const backoffMs = Math.min(options.backoffMsMax, options.backoffMsInitial * 2 ** (attemptNumber - 1)) * (0.5 + Math.random() / 2);
      if (!error.retriable || (options.retryIf && !options.retryIf(error)) || Date.now() - started + backoffMs > options.deadlineMs) throw error;
      await options.onRetry?.(error, attemptNumber);
      await new Promise((resolve) => setTimeout(resolve, backoffMs));
    }
  }
}
