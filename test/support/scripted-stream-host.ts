import assert from 'node:assert/strict';
import { CliAgentHost } from '../../src/adapters/agent-drivers/cli-agent-host.js';
import type { CliDriverSpec } from '../../src/domain/agent-events/agent-driver.js';
import type { AgentCliHost, AgentCommandOptions, LogFollower } from '../../src/ports/agent-cli.js';

/** The real argv builders; the run log is replaced by lines the test pushes. */
export class ScriptedStreamHost implements AgentCliHost {
  readonly #argv = new CliAgentHost();
  readonly #followers = new Map<string, (chunk: Uint8Array) => void>();
  readonly commands: string[][] = [];

  commandFor(executable: readonly string[], driver: CliDriverSpec, prompt: string, options?: AgentCommandOptions): string[] {
    const command = this.#argv.commandFor(executable, driver, prompt, options);
    this.commands.push(command);
    return command;
  }
  sizeOf(): number {
    return 0;
  }
  follow(path: string, _fromByte: number, onChunk: (chunk: Uint8Array) => void): LogFollower {
    this.#followers.set(path, onChunk);
    return { stop: async () => void this.#followers.delete(path) };
  }
  /** Writes JSON lines to the agent's stream, as if it printed them. */
  emit(logPath: string, ...events: object[]): void {
    const onChunk = this.#followers.get(logPath);
    assert.ok(onChunk, `nobody follows ${logPath}`);
    onChunk(new TextEncoder().encode(events.map((event) => `${JSON.stringify(event)}\n`).join('')));
  }
}
