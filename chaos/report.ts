// A run's report for people: verdict, counts, each anomaly with examples, the unavailability
// windows and the fault timeline. report.json holds the same data for tools.
import { ANOMALY_KINDS } from './checker.js';
import { KINESIS_ANOMALY_KINDS } from './checker-kinesis.js';
import type { RunReport } from './run.js';

export function renderMarkdown(report: RunReport): string {
  const { result } = report;
  const lines: string[] = [];
  lines.push(`# Chaos run: ${report.scenario}, seed ${report.seed}`, '');
  lines.push(`**Verdict: ${report.valid ? 'valid (no anomalies)' : 'INVALID'}**`, '');
  lines.push(`Faults for ${Math.round(report.durationMs / 1000)} s, then heal. Full ISR after heal: ${report.fullIsrAfterHeal ? 'yes' : 'NO'}.`, '');
  lines.push('## Counts', '', '| what | count |', '|---|---|');
  lines.push(`| sends invoked | ${result.counts.sends} |`);
  lines.push(`| acknowledged | ${result.counts.acknowledged} |`);
  lines.push(`| definitely failed | ${result.counts.failed} |`);
  lines.push(`| indeterminate (info) | ${result.counts.indeterminate} |`);
  lines.push(`| distinct values received by consumers | ${result.counts.polled} |`);
  lines.push(`| records in the final log | ${result.counts.finalRecords} |`, '');
  lines.push('## Anomalies', '', '| anomaly | count |', '|---|---|');
  for (const kind of ANOMALY_KINDS) lines.push(`| ${kind} | ${result.anomalies[kind].count} |`);
  lines.push('');
  for (const kind of ANOMALY_KINDS) {
    const anomaly = result.anomalies[kind];
    if (anomaly.count === 0) continue;
    lines.push(`### ${kind}`, '');
    for (const example of anomaly.examples) lines.push(`- ${example}`);
    lines.push('');
  }
  if (report.kinesis) {
    const kinesis = report.kinesis;
    lines.push('## Kinesis-like workload', '', '| what | count |', '|---|---|');
    lines.push(`| records put (invoked) | ${kinesis.counts.puts} |`);
    lines.push(`| acknowledged | ${kinesis.counts.acknowledged} |`);
    lines.push(`| indeterminate (info) | ${kinesis.counts.indeterminate} |`);
    lines.push(`| values written twice (retried puts; allowed, at-least-once as in Kinesis) | ${kinesis.counts.duplicates} |`);
    lines.push(`| shards at the end (open and closed) | ${kinesis.counts.shards} |`);
    lines.push(`| records in the final read | ${kinesis.counts.finalRecords} |`);
    lines.push(`| records received by ${kinesis.counts.readers} readers (the application counts as one) | ${kinesis.counts.received} |`);
    lines.push(`| leases acquired by the application's workers | ${kinesis.counts.leases} |`);
    lines.push(`| checkpoints acknowledged | ${kinesis.counts.checkpoints} |`, '');
    lines.push('| anomaly | count |', '|---|---|');
    for (const kind of KINESIS_ANOMALY_KINDS) lines.push(`| ${kind} | ${kinesis.anomalies[kind].count} |`);
    lines.push('');
    for (const kind of KINESIS_ANOMALY_KINDS) {
      const anomaly = kinesis.anomalies[kind];
      if (anomaly.count === 0) continue;
      lines.push(`### Kinesis ${kind}`, '');
      for (const example of anomaly.examples) lines.push(`- ${example}`);
      lines.push('');
    }
  }
  const { metadata } = report;
  lines.push('## Raft metadata history', '');
  lines.push(`${metadata.operations} metadata operations (create, describe, delete topic) checked for linearizability; ${metadata.logsCompared} controllers' committed logs compared up to index ${metadata.commitIndexMax}: ${metadata.valid ? 'linearizable, one log' : 'PROBLEMS'}.`, '');
  for (const problem of metadata.problems) lines.push(`- ${problem}`);
  if (metadata.problems.length > 0) lines.push('');
  lines.push('## Unavailability (gaps of 1 s or more between acknowledged writes)', '');
  if (report.unavailability.length === 0) lines.push('None.');
  else {
    lines.push('| from (ms) | to (ms) | length (ms) | faults around it |', '|---|---|---|---|');
    for (const window of report.unavailability) lines.push(`| ${window.startMs} | ${window.endMs} | ${window.durationMs} | ${window.faults.join('; ')} |`);
  }
  lines.push('', '### By partition (gaps of 1 s or more between acknowledged writes to the partition)', '');
  if (report.partitionUnavailability.length === 0) lines.push('No acknowledged writes.');
  else {
    lines.push('| partition | windows | longest (ms) | total (ms) |', '|---|---|---|---|');
    for (const figures of report.partitionUnavailability) lines.push(`| ${figures.partition} | ${figures.windows} | ${figures.longestMs} | ${figures.totalMs} |`);
  }
  lines.push('', '## Fault timeline', '', '| time (ms) | event |', '|---|---|');
  for (const fault of report.faults) lines.push(`| ${fault.timeMs} | ${fault.type === 'invoke' ? 'start' : 'end'}: ${fault.fault} |`);
  lines.push('');
  return lines.join('\n');
}

/**
 * One line per run of a suite: verdict, the workload's counts, the anomalies found, the
 * unavailability windows (how many, the longest, their total) and, partition by partition, the
 * longest gap and the mean total. Written as summary.md.
 */
export function renderSummary(reports: readonly RunReport[]): string {
  const lines = ['# Chaos suite summary', '', '| scenario | seed | verdict | acked | lost | duplicate | unseen | other anomalies | metadata | windows | longest (ms) | total (ms) | partition longest (ms) | partition mean total (ms) |', '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|'];
  for (const report of reports) {
    const { anomalies, counts } = report.result;
    const others = ANOMALY_KINDS.filter((kind) => !['lost', 'duplicate', 'unseen'].includes(kind) && anomalies[kind].count > 0).map((kind) => `${kind} ${anomalies[kind].count}`);
    const windows = report.unavailability;
    const longest = Math.max(0, ...windows.map((window) => window.durationMs));
    const total = windows.reduce((sum, window) => sum + window.durationMs, 0);
    const metadata = report.metadata.valid ? `ok (${report.metadata.operations} ops)` : 'INVALID';
    const partitions = report.partitionUnavailability;
    const partitionLongest = Math.max(0, ...partitions.map((figures) => figures.longestMs));
    const partitionMeanTotal = partitions.length === 0 ? 0 : Math.round(partitions.reduce((sum, figures) => sum + figures.totalMs, 0) / partitions.length);
    lines.push(`| ${report.scenario} | ${report.seed} | ${report.valid ? 'valid' : 'INVALID'} | ${counts.acknowledged} | ${anomalies.lost.count} | ${anomalies.duplicate.count} | ${anomalies.unseen.count} | ${others.join(', ') || '-'} | ${metadata} | ${windows.length} | ${longest} | ${total} | ${partitionLongest} | ${partitionMeanTotal} |`);
  }
  lines.push('');
  return lines.join('\n');
}
