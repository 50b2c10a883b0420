// Writes deploy/k8s/prometheus-rule.yaml, the Prometheus operator's PrometheusRule carrying the
// rule groups of riffle-alerts.yml unchanged. Run it after editing the rules:
//   node deploy/prometheus/to-prometheus-rule.mjs
// (test/deploy/observability.test.ts fails while the two differ).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { parse, stringify } from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));
const rules = parse(readFileSync(path.join(here, 'riffle-alerts.yml'), 'utf8'));
const resource = {
  apiVersion: 'monitoring.coreos.com/v1',
  kind: 'PrometheusRule',
  metadata: { name: 'riffle', labels: { 'app.kubernetes.io/name': 'riffle' } },
  spec: { groups: rules.groups },
};
const header = '# Generated from deploy/prometheus/riffle-alerts.yml by deploy/prometheus/to-prometheus-rule.mjs:\n# the alert rules for the Prometheus operator. Edit the rules there, then run the script.\n';
writeFileSync(path.join(here, '..', 'k8s', 'prometheus-rule.yaml'), header + stringify(resource, { lineWidth: 0 }));
