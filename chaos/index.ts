// The chaos suite's surface for the CLI: scenarios, one run, and the checker.
export { SCENARIOS, SMOKE_SCENARIOS, scenarioNamed, type Scenario } from './scenarios.js';
export { runScenario, unavailabilityWindows, type RunOptions, type RunReport } from './run.js';
export { check, ANOMALY_KINDS, type AnomalyKind, type CheckResult, type FinalState } from './checker.js';
export { History, type Op } from './history.js';
export { renderMarkdown, renderSummary } from './report.js';
