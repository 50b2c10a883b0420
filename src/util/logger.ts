// Structured JSON logs (pino). Components take a Logger so tests can pass a silent one.
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export function createLogger(options: { level?: string; name?: string; nodeId?: number } = {}): Logger {
  const base: Record<string, unknown> = {};
  if (options.nodeId !== undefined) base.node = options.nodeId;
  return pino({ level: options.level ?? process.env.RIFFLE_LOG_LEVEL ?? 'info', name: options.name, base });
}

export const silentLogger: Logger = pino({ level: 'silent' });
