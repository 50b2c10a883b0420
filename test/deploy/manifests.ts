// Shared readers for the deployment tests: the server's real settings, the metric names that
// docs/metrics.md lists, and the metric names a PromQL expression uses.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { SETTINGS } from '../../src/config/node-config.js';
import { REPO_ROOT } from '../helpers/cluster.js';

/** Every RIFFLE_* variable `riffle server` reads. */
export const SERVER_ENV_NAMES: ReadonlySet<string> = new Set(Object.values(SETTINGS).map((setting) => setting.env));

/** Every flag name `riffle server` takes (without the dashes). */
export const SERVER_FLAG_NAMES: ReadonlySet<string> = new Set(Object.values(SETTINGS).map((setting) => setting.yaml));

export function readRepoFile(relative: string): string {
  return readFileSync(path.join(REPO_ROOT, relative), 'utf8');
}

export function readYaml<T = unknown>(relative: string): T {
  return parseYaml(readRepoFile(relative), { merge: true }) as T;
}

export function readYamlDocuments<T = unknown>(text: string): T[] {
  return parseAllDocuments(text).map((document) => {
    if (document.errors.length > 0) throw new Error(document.errors.map((error) => error.message).join('; '));
    return document.toJS() as T;
  }).filter((value) => value !== null);
}

/** Metric names listed in docs/metrics.md, plus prom-client's process metrics under riffle_process_. */
export function documentedMetrics(): Set<string> {
  return new Set([...readRepoFile('docs/metrics.md').matchAll(/`(riffle_[a-z0-9_]+)`/g)].map((match) => match[1]!));
}

const PROMQL_NON_METRICS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'le']);

/** The riffle_* metric names a PromQL expression reads (histogram suffixes removed). */
export function metricsIn(expression: string): string[] {
  const names = [...expression.matchAll(/\b(riffle_[a-z0-9_]+)\b/g)].map((match) => match[1]!).filter((name) => !PROMQL_NON_METRICS.has(name));
  return [...new Set(names.map((name) => name.replace(/_(bucket|sum|count)$/, '')))];
}

/** Whether docs/metrics.md documents a metric (prom-client's riffle_process_* defaults count as documented by their prefix). */
export function isDocumentedMetric(name: string, documented: ReadonlySet<string>): boolean {
  return documented.has(name) || name.startsWith('riffle_process_');
}
