import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ResumeRequest, ResumeRequests } from '../../ports/resume-requests.js';

/**
 * Resume requests as files in `<state.dir>/resume-requests/`, one per issue
 * (named by a hash of its key, so any key is a safe file name), written whole
 * with a rename so the daemon never reads half a request.
 */
export class FileResumeRequests implements ResumeRequests {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  async request(issueKey: string, atMs: number): Promise<void> {
    mkdirSync(this.#dir, { recursive: true });
    const name = createHash('sha256').update(issueKey).digest('hex').slice(0, 32);
    const temp = join(this.#dir, `.${name}.${process.pid}.tmp`);
    writeFileSync(temp, `${JSON.stringify({ issueKey, atMs })}\n`, { mode: 0o600 });
    renameSync(temp, join(this.#dir, `${name}.json`));
  }

  async take(): Promise<ResumeRequest[]> {
    let names: string[];
    try {
      names = readdirSync(this.#dir).filter((name) => name.endsWith('.json'));
    } catch {
      return [];
    }
    const requests: ResumeRequest[] = [];
    for (const name of names) {
      const path = join(this.#dir, name);
      try {
        const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<ResumeRequest>;
        if (typeof parsed.issueKey === 'string' && typeof parsed.atMs === 'number') requests.push({ issueKey: parsed.issueKey, atMs: parsed.atMs });
      } catch {
        // Not a request this version wrote: dropped below, like a taken one.
      }
      rmSync(path, { force: true });
    }
    return requests.sort((a, b) => a.atMs - b.atMs);
  }
}

/** Where a config's resume requests go: beside its state database. */
export function resumeRequestsDirFor(stateDir: string): string {
  return join(stateDir, 'resume-requests');
}
