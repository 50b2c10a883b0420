import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, dialAddress, resolveNodeConfig } from '../../src/config/node-config.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'riffle-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('node configuration', () => {
  it('uses the documented defaults', () => {
    const config = resolveNodeConfig({}, {});
    expect(config.nodeId).toBe(1);
    expect(config.roles).toEqual(['controller', 'broker']);
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 9094 });
    expect(config.controllerListen.port).toBe(9093);
    expect(config.http.port).toBe(9644);
    // A wildcard bind is advertised as loopback, never as 0.0.0.0.
    expect(config.advertisedListen).toEqual({ host: '127.0.0.1', port: 9094 });
    expect(config.controllerQuorum).toEqual([{ nodeId: 1, host: '127.0.0.1', port: 9093 }]);
    expect(config.replicaLagTimeMaxMs).toBe(10_000);
  });

  it('takes replica.lag.time.max.ms from a flag, the environment or the file, and refuses one an idle follower would miss', () => {
    const file = path.join(dir, 'lag.yaml');
    writeFileSync(file, 'replica-lag-time-max-ms: 4000\n');
    expect(resolveNodeConfig({}, {}, file).replicaLagTimeMaxMs).toBe(4_000);
    expect(resolveNodeConfig({}, { RIFFLE_REPLICA_LAG_TIME_MAX_MS: '3000' }, file).replicaLagTimeMaxMs).toBe(3_000);
    expect(resolveNodeConfig({ replicaLagTimeMaxMs: '2500' }, { RIFFLE_REPLICA_LAG_TIME_MAX_MS: '3000' }, file).replicaLagTimeMaxMs).toBe(2_500);
    // A caught-up follower's fetch waits up to 500 ms at the leader: a shorter lag time would flap.
    expect(() => resolveNodeConfig({ replicaLagTimeMaxMs: '999' }, {})).toThrow(/replica-lag-time-max-ms/);
    expect(() => resolveNodeConfig({ replicaLagTimeMaxMs: 'soon' }, {})).toThrow(/replica-lag-time-max-ms/);
  });

  it('takes flags over environment over the YAML file', () => {
    const file = path.join(dir, 'node.yaml');
    writeFileSync(file, 'node-id: 3\naz: from-file\ndata-dir: /from/file\nlisten: 127.0.0.9:7000\ncontroller-quorum: 3@127.0.0.9:7001\n');
    const config = resolveNodeConfig({ dataDir: '/from/flag' }, { RIFFLE_AZ: 'from-env' }, file);
    expect(config.nodeId).toBe(3);
    expect(config.az).toBe('from-env');
    expect(config.dataDir).toBe('/from/flag');
    expect(config.listen).toEqual({ host: '127.0.0.9', port: 7000 });
  });

  it('parses dial overrides and maps only the addresses they name', () => {
    const config = resolveNodeConfig({ dialOverrides: '127.0.42.2:19094=127.0.41.12:19094, 127.0.42.3:19094=127.0.41.13:19094' }, {});
    expect(dialAddress(config, '127.0.42.2:19094')).toBe('127.0.41.12:19094');
    expect(dialAddress(config, '127.0.42.3:19094')).toBe('127.0.41.13:19094');
    expect(dialAddress(config, '127.0.42.4:19094')).toBe('127.0.42.4:19094');
    expect(resolveNodeConfig({}, {}).dialOverrides.size).toBe(0);
    expect(() => resolveNodeConfig({ dialOverrides: '127.0.42.2:19094' }, {})).toThrow(/advertised=dialed/);
    expect(() => resolveNodeConfig({ dialOverrides: 'a:1=b:2=c:3' }, {})).toThrow(/advertised=dialed/);
    expect(() => resolveNodeConfig({ dialOverrides: 'host=127.0.0.1:1' }, {})).toThrow(/host:port/);
  });

  it('rejects unknown YAML settings, bad numbers, bad roles and bad addresses', () => {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, 'no-such-setting: 1\n');
    expect(() => resolveNodeConfig({}, {}, file)).toThrow(ConfigError);
    expect(() => resolveNodeConfig({ nodeId: 'x' }, {})).toThrow(/node-id/);
    expect(() => resolveNodeConfig({ roles: 'broker,teapot' }, {})).toThrow(/teapot/);
    expect(() => resolveNodeConfig({ listen: 'nohostport' }, {})).toThrow(/host:port/);
    expect(() => resolveNodeConfig({ listen: '127.0.0.1:70000' }, {})).toThrow(/out of range/);
  });

  it('checks relations between settings', () => {
    expect(() => resolveNodeConfig({ listen: '127.0.0.1:9000', http: '127.0.0.1:9000' }, {})).toThrow(/share/);
    expect(() => resolveNodeConfig({ nodeId: '2', controllerQuorum: '1@127.0.0.1:9093' }, {})).toThrow(/not in --controller-quorum/);
    expect(() => resolveNodeConfig({ controllerQuorum: '1@127.0.0.1:9093,1@127.0.0.2:9093' }, {})).toThrow(/twice/);
    // A broker-only node need not be a voter.
    expect(resolveNodeConfig({ nodeId: '4', roles: 'broker', controllerQuorum: '1@127.0.0.1:9093' }, {}).roles).toEqual(['broker']);
  });
});
