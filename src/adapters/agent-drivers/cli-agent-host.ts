import { existsSync, statSync, watch, type FSWatcher } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { CliDriverSpec } from '../../domain/agent-events/agent-driver.js';
import type { AgentCliHost, AgentCommandOptions, LogFollower } from '../../ports/agent-cli.js';
import { claudeCodeArgv, codexArgv } from './agent-argv.js';

/** Polling backs up inotify: a watch can miss writes (network file systems, some containers). */
const POLL_MS = 250;
const READ_CHUNK_BYTES = 256 * 1024;

/** Command lines from the argv builders, and a run log followed with inotify plus a slow poll. */
export class CliAgentHost implements AgentCliHost {
  commandFor(executable: readonly string[], driver: CliDriverSpec, prompt: string, options: AgentCommandOptions = {}): string[] {
    if (driver.kind === 'claude-code') {
      const o = driver.options;
      return [
        ...executable,
        ...claudeCodeArgv({
          prompt,
          ...(o.model !== undefined ? { model: o.model } : {}),
          ...(o.maxTurns !== undefined ? { maxTurns: o.maxTurns } : {}),
          ...(o.allowedTools !== undefined ? { allowedTools: o.allowedTools } : {}),
          ...(o.permissionMode !== undefined ? { permissionMode: o.permissionMode } : {}),
          ...(options.resumeSessionId !== undefined ? { resumeSessionId: options.resumeSessionId } : {}),
          ...(options.liveUsage ? { includePartialMessages: true } : {}),
        }),
      ];
    }
    const o = driver.options;
    return [
      ...executable,
      ...codexArgv({
        prompt,
        ...(o.model !== undefined ? { model: o.model } : {}),
        ...(o.config !== undefined ? { config: o.config } : {}),
        ...(o.sandbox !== undefined ? { sandbox: o.sandbox } : {}),
        ...(o.approvalPolicy !== undefined ? { approvalPolicy: o.approvalPolicy } : {}),
        ...(o.bypassApprovalsAndSandbox !== undefined ? { bypassApprovalsAndSandbox: o.bypassApprovalsAndSandbox } : {}),
        ...(options.resumeSessionId !== undefined ? { resumeThreadId: options.resumeSessionId } : {}),
      }),
    ];
  }

  sizeOf(path: string): number {
    try {
      return statSync(path).size;
    } catch {
      return 0;
    }
  }

  follow(path: string, fromByte: number, onChunk: (chunk: Uint8Array) => void): LogFollower {
    return new FileFollower(path, fromByte, onChunk);
  }
}

/** One reader at a time: reads are chained, so chunks arrive in file order whatever woke the reader. */
class FileFollower implements LogFollower {
  readonly #path: string;
  readonly #onChunk: (chunk: Uint8Array) => void;
  #position: number;
  #file: FileHandle | undefined;
  #watcher: FSWatcher | undefined;
  readonly #timer: NodeJS.Timeout;
  #reading: Promise<void> = Promise.resolve();
  #stopped: Promise<void> | undefined;

  constructor(path: string, fromByte: number, onChunk: (chunk: Uint8Array) => void) {
    this.#path = path;
    this.#position = fromByte;
    this.#onChunk = onChunk;
    this.#timer = setInterval(() => this.#wake(), POLL_MS);
    this.#timer.unref();
    this.#watch();
    this.#wake();
  }

  #watch(): void {
    if (!existsSync(this.#path)) return;
    try {
      this.#watcher = watch(this.#path, { persistent: false }, () => this.#wake());
      this.#watcher.on('error', () => this.#watcher?.close());
    } catch {
      // The poll alone still follows the file.
    }
  }

  #wake(): void {
    this.#reading = this.#reading.then(() => this.#readToEnd()).catch(() => undefined);
  }

  async #readToEnd(): Promise<void> {
    if (!this.#file) {
      if (!existsSync(this.#path)) return;
      this.#file = await open(this.#path, 'r');
      if (!this.#watcher) this.#watch();
    }
    const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
    for (;;) {
      const { bytesRead } = await this.#file.read(buffer, 0, buffer.length, this.#position);
      if (bytesRead === 0) return;
      this.#position += bytesRead;
      this.#onChunk(Buffer.from(buffer.subarray(0, bytesRead)));
    }
  }

  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      clearInterval(this.#timer);
      this.#watcher?.close();
      this.#wake();
      await this.#reading;
      await this.#file?.close().catch(() => undefined);
    })();
    return this.#stopped;
  }
}
