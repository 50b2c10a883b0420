export * from './assert.js';
export * from './clock.js';
export * from './prng.js';
export * from './crc32c.js';
export * from './logger.js';
