/**
 * `npm run bench`: every benchmark in one run, printed as a table and as JSON
 * (bench-results.json). Figures are medians or ratios against a baseline
 * measured in the same run, so they compare across machines.
 * `npm run bench -- heartbeat latency` runs only the named ones.
 */
import { writeFileSync } from 'node:fs';
import { benchHeartbeatRefresh } from './heartbeat-bench.js';
import { benchLiveLatency } from './live-latency-bench.js';
import { benchIntakeThroughput } from './intake-throughput-bench.js';
import { benchIdleDaemon } from './idle-daemon-bench.js';

type Bench = () => Promise<Record<string, unknown>>;

const BENCHES: Record<string, Bench> = {
  heartbeat: () => benchHeartbeatRefresh(),
  latency: () => benchLiveLatency(),
  intake: () => benchIntakeThroughput(),
  idle: () => benchIdleDaemon(),
};

async function loadOptional(name: string, path: string, exportName: string): Promise<void> {
  try {
    const module = (await import(path)) as Record<string, () => Promise<Record<string, unknown>>>;
    if (typeof module[exportName] === 'function') BENCHES[name] = module[exportName]!;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw error;
  }
}

await loadOptional('reap', './reap-bench.js', 'benchReap');
await loadOptional('state-api', './state-api-bench.js', 'benchStateApi');
await loadOptional('cli-start', './cli-start-bench.js', 'benchCliStart');
await loadOptional('agent-parser', './agent-parser-bench.js', 'benchAgentParsers');
await loadOptional('usage-ledger', './usage-ledger-bench.js', 'benchUsageLedger');
await loadOptional('resources', './resources-bench.js', 'benchResources');
await loadOptional('dispatch', './dispatch-selection-bench.js', 'benchDispatchSelection');

const wanted = process.argv.slice(2);
const results: Record<string, unknown>[] = [];
for (const [name, run] of Object.entries(BENCHES)) {
  if (wanted.length > 0 && !wanted.includes(name)) continue;
  process.stderr.write(`bench: ${name}…\n`);
  const result = await run();
  results.push(result);
  process.stdout.write(
    `\n${name}\n${Object.entries(result)
      .map(([k, v]) => `  ${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
      .join('\n')}\n`,
  );
}
writeFileSync('bench-results.json', `${JSON.stringify({ at: new Date().toISOString(), node: process.version, results }, null, 2)}\n`);
process.stdout.write('\nwrote bench-results.json\n');
