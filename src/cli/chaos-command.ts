// `riffle chaos list|run|smoke|all`: the chaos suite (chaos/) from the command line. A run starts
// its own six-node cluster on 127.0.40.x behind fault proxies (127.0.41.x, 127.0.42.x), writes
// chaos/results/<scenario>-<seed>/ and exits non-zero when the checker finds any anomaly.
import path from 'node:path';
import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { SCENARIOS, SMOKE_SCENARIOS, renderSummary, runScenario, scenarioNamed, type RunReport } from '../../chaos/index.js';
import { parseIntegerOption, printJson } from './output.js';

const RESULTS_DIR = path.join('chaos', 'results');

export function registerChaosCommands(program: Command): void {
  const chaos = program.command('chaos').description('Fault-injection runs against a real local cluster, with a history checker.');
  chaos
    .command('list')
    .description('List the scenarios.')
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) => {
      if (options.json) printJson(SCENARIOS.map((scenario) => ({ name: scenario.name, description: scenario.description })));
      else for (const scenario of SCENARIOS) process.stdout.write(`${scenario.name.padEnd(22)} ${scenario.description}\n`);
    });
  chaos
    .command('run <scenario>')
    .description('Run one scenario; exits 1 on any anomaly.')
    .option('--seed <n>', 'seed of the fault schedule (random when absent)', parseIntegerOption)
    .option('--duration <seconds>', 'seconds of faults before the heal', parseIntegerOption, 60)
    .option('--results <dir>', 'where results go', RESULTS_DIR)
    .action(async (scenario: string, options: { seed?: number; duration: number; results: string }) => {
      const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
      const report = await runScenario({ scenario, seed, durationMs: options.duration * 1000, resultsDir: options.results, verbose: true });
      finish([report]);
    });
  chaos
    .command('suite')
    .description('Run several scenarios one after another (all by default, --smoke, or --scenarios), each at every seed of --seeds; exits 1 on any anomaly.')
    .option('--smoke', `only the short CI set: ${SMOKE_SCENARIOS.join(', ')}`)
    .option('--scenarios <names>', 'comma-separated scenario names (default: all)')
    .option('--seed <n>', 'seed of every run (random when absent)', parseIntegerOption)
    .option('--seeds <list>', 'comma-separated seeds: every scenario runs once per seed (e.g. 1,2,3)')
    .option('--duration <seconds>', 'seconds of faults per scenario', parseIntegerOption)
    .option('--results <dir>', 'where results go', RESULTS_DIR)
    .action(async (options: { smoke?: boolean; scenarios?: string; seed?: number; seeds?: string; duration?: number; results: string }) => {
      const names = options.scenarios ? options.scenarios.split(',').map((name) => scenarioNamed(name.trim()).name) : options.smoke ? [...SMOKE_SCENARIOS] : SCENARIOS.map((scenario) => scenario.name);
      const seeds = options.seeds ? parseSeeds(options.seeds) : [options.seed];
      const durationMs = (options.duration ?? (options.smoke ? 30 : 60)) * 1000;
      const reports: RunReport[] = [];
      for (const name of names) {
        for (const fixedSeed of seeds) {
          const seed = fixedSeed ?? Math.floor(Math.random() * 2 ** 31);
          const scenarioDuration = name === 'mixed-random' && !options.smoke && options.duration === undefined ? 600_000 : durationMs;
          reports.push(await runScenario({ scenario: name, seed, durationMs: scenarioDuration, resultsDir: options.results, verbose: true }));
          writeFileSync(path.join(options.results, 'summary.md'), renderSummary(reports));
        }
      }
      finish(reports);
    });
}

function parseSeeds(list: string): number[] {
  const seeds = list.split(',').map((item) => Number(item.trim()));
  if (seeds.length === 0 || seeds.some((seed) => !Number.isSafeInteger(seed) || seed < 0)) throw new Error(`--seeds wants comma-separated non-negative integers, got '${list}'`);
  return seeds;
}

/** The anomaly kinds a run found, with their counts and examples. */
function found(report: RunReport): [string, { count: number; examples: string[] }][] {
  return Object.entries(report.result.anomalies).filter(([, anomaly]) => anomaly.count > 0);
}

function finish(reports: RunReport[]): void {
  printJson(reports.map((report) => ({
    scenario: report.scenario,
    seed: report.seed,
    valid: report.valid,
    counts: report.result.counts,
    anomalies: Object.fromEntries(found(report).map(([kind, anomaly]) => [kind, anomaly.count])),
    // Printed too, so a CI log (whose machine keeps no results directory) says what went wrong.
    examples: Object.fromEntries(found(report).map(([kind, anomaly]) => [kind, anomaly.examples.slice(0, 3)])),
    longestUnavailabilityMs: Math.max(0, ...report.unavailability.map((window) => window.durationMs)),
    longestPartitionUnavailabilityMs: Math.max(0, ...report.partitionUnavailability.map((figures) => figures.longestMs)),
    report: path.join(report.directory, 'report.md'),
  })));
  // Exit now: a run's clients and proxies are closed, but a stray timer must not keep a CI job waiting.
  process.exit(reports.some((report) => !report.valid) ? 1 : 0);
}
