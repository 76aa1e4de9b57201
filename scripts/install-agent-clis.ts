import { AGENT_CLI_PINS, ensureAgentCli, type AgentCliName } from '../src/dev/agent-clis.js';

/**
 * Installs the pinned real agent CLIs into the test cache (.cache/agent-clis, or
 * $FACTORY_TEST_CACHE/agent-clis) so the integration tests need no download.
 * Run by .ci/run before `npm test`: `node --import tsx scripts/install-agent-clis.ts`.
 * Exits 1 when an install failed, naming why.
 */

let failed = false;
for (const name of Object.keys(AGENT_CLI_PINS) as AgentCliName[]) {
  const result = await ensureAgentCli(name, (line) => console.log(`== ${line}`));
  if (result.ok) console.log(`== ${name} ${result.version}: ${result.bin}${result.installedNow ? ` (installed in ${(result.installMs / 1000).toFixed(1)} s)` : ' (cached)'}`);
  else {
    failed = true;
    console.error(`== ${name}: ${result.reason}`);
  }
}
process.exitCode = failed ? 1 : 0;
