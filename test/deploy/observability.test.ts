// The alert rules and the Grafana dashboard use only metrics Riffle really exports (those listed
// in docs/metrics.md), every alert the operations guide promises exists and is explained there,
// and the Grafana provisioning points at the dashboard and datasource that exist.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cluster.js';
import { documentedMetrics, isDocumentedMetric, metricsIn, readRepoFile, readYaml } from './manifests.js';

interface Rule { alert: string; expr: string; for?: string; labels: { severity: string }; annotations: { summary: string; description: string } }
const rules = readYaml<{ groups: { name: string; rules: Rule[] }[] }>('deploy/prometheus/riffle-alerts.yml').groups.flatMap((group) => group.rules);

interface Panel { type: string; title: string; targets?: { expr: string; datasource: { uid: string } }[]; datasource?: { uid: string } }
const dashboardFiles = readdirSync(path.join(REPO_ROOT, 'deploy/grafana/dashboards')).filter((name) => name.endsWith('.json'));

describe('alert rules', () => {
  it('cover the conditions operators need paging for', () => {
    expect(rules.map((rule) => rule.alert)).toEqual(expect.arrayContaining([
      'RiffleNoActiveController', 'RiffleOfflinePartitions', 'RiffleUnderReplicatedPartitions', 'RiffleIsrShrinking',
      'RiffleConsumerLagGrowing', 'RiffleConsumerLagHigh', 'RiffleFencedBrokers', 'RiffleRaftLeaderChanges', 'RiffleNodeDown',
    ]));
  });

  it('use only documented metrics, each with a severity and a summary', () => {
    const documented = documentedMetrics();
    for (const rule of rules) {
      const used = metricsIn(rule.expr);
      expect(used.length + (rule.expr.includes('up{') ? 1 : 0), rule.alert).toBeGreaterThan(0);
      expect(used.filter((name) => !isDocumentedMetric(name, documented)), rule.alert).toEqual([]);
      expect(['critical', 'warning']).toContain(rule.labels.severity);
      expect(rule.annotations.summary.length).toBeGreaterThan(0);
    }
  });

  it('reach the Prometheus operator unchanged, as the PrometheusRule of deploy/k8s', () => {
    const resource = readYaml<{ kind: string; spec: { groups: unknown } }>('deploy/k8s/prometheus-rule.yaml');
    expect(resource.kind).toBe('PrometheusRule');
    const groups = readYaml<{ groups: unknown }>('deploy/prometheus/riffle-alerts.yml').groups;
    expect(resource.spec.groups, 'run node deploy/prometheus/to-prometheus-rule.mjs').toEqual(groups);
  });

  it('are each explained in docs/operations.md', () => {
    const operations = readRepoFile('docs/operations.md');
    for (const rule of rules) expect(operations, rule.alert).toContain(`\`${rule.alert}\``);
  });
});

describe('Grafana dashboard', () => {
  it('is provisioned from deploy/grafana/dashboards with the datasource its panels use', () => {
    expect(dashboardFiles).toContain('riffle-overview.json');
    const datasources = readYaml<{ datasources: { uid: string; url: string }[] }>('deploy/grafana/provisioning/datasources/prometheus.yml').datasources;
    const provider = readYaml<{ providers: { options: { path: string } }[] }>('deploy/grafana/provisioning/dashboards/riffle.yml').providers[0]!;
    expect(provider.options.path).toBe('/var/lib/grafana/dashboards');
    for (const file of dashboardFiles) {
      const dashboard = JSON.parse(readRepoFile(`deploy/grafana/dashboards/${file}`)) as { uid: string; panels: Panel[] };
      const uids = new Set(dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.datasource.uid)));
      expect([...uids].every((uid) => datasources.some((datasource) => datasource.uid === uid)), file).toBe(true);
    }
  });

  it('queries only documented metrics, on every panel', () => {
    const documented = documentedMetrics();
    for (const file of dashboardFiles) {
      const dashboard = JSON.parse(readRepoFile(`deploy/grafana/dashboards/${file}`)) as { panels: Panel[] };
      const dataPanels = dashboard.panels.filter((panel) => panel.type !== 'row');
      expect(dataPanels.length).toBeGreaterThan(10);
      for (const panel of dataPanels) {
        expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
        for (const target of panel.targets!) {
          expect(metricsIn(target.expr).filter((name) => !isDocumentedMetric(name, documented)), `${panel.title}: ${target.expr}`).toEqual([]);
        }
      }
    }
  });
});
