import type { IncomingMessage, ServerResponse } from 'node:http';
import { Webhooks } from '@octokit/webhooks';
import { parseRepoSlug, type GitHubRepoRef } from '../domain/github-issue.js';
import type { Logger } from '../ports/logger.js';

/**
 * `POST /webhooks/github`: GitHub's deliveries, an accelerator for the poll.
 * The body's signature (`X-Hub-Signature-256`, HMAC-SHA256 with the shared
 * secret) is checked with @octokit/webhooks before anything in it is read; a
 * bad or missing one is answered 401 and logged without the payload. A good
 * `issues` or `label` delivery wakes intake for its repository at once; a
 * `pull_request`, `check_run`, `check_suite`, `status` or review delivery
 * wakes the shepherd. Nothing is trusted from the payload beyond the
 * repository name: intake re-reads GitHub, so a missed or duplicated delivery
 * changes nothing the next poll would not.
 */

const MAX_BODY_BYTES = 5 * 1024 * 1024;
const ISSUE_EVENTS = new Set(['issues', 'label', 'issue_comment']);
const PULL_EVENTS = new Set(['pull_request', 'pull_request_review', 'check_run', 'check_suite', 'status']);

export interface GitHubWebhookTargets {
  /** Wakes intake (the GitHub source's poll), for one repository or all. */
  wakeIntake(repo: GitHubRepoRef | undefined): void;
  /** Wakes the shepherd. */
  wakeShepherd(): void;
}

export class GitHubWebhookReceiver {
  readonly #webhooks: Webhooks;
  /** Deliveries accepted and refused since start, for the status API and tests. */
  readonly counts = { accepted: 0, refused: 0 };

  constructor(
    secret: string,
    private readonly targets: GitHubWebhookTargets,
    private readonly log: Logger,
  ) {
    this.#webhooks = new Webhooks({ secret });
  }

  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const answer = (status: number, message: string): void => {
      response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      response.end(JSON.stringify(status < 300 ? { ok: true, message } : { error: message }));
    };
    if (request.method !== 'POST') return answer(405, 'GitHub deliveries are POSTs');
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of request) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) return answer(413, 'delivery too large');
      chunks.push(chunk as Buffer);
    }
    const body = Buffer.concat(chunks).toString('utf8');
    const signature = header(request, 'x-hub-signature-256');
    const event = header(request, 'x-github-event') ?? '';
    const delivery = header(request, 'x-github-delivery') ?? '';
    const valid = signature !== undefined && (await this.#webhooks.verify(body, signature).catch(() => false));
    if (!valid) {
      this.counts.refused++;
      // The payload is not logged: it is unauthenticated and may be large or hostile.
      this.log.warn({ event, delivery, signature: signature === undefined ? 'missing' : 'mismatch', bytes: size }, 'refused a GitHub webhook delivery: bad signature');
      return answer(401, 'signature does not match');
    }
    this.counts.accepted++;
    let repo: GitHubRepoRef | undefined;
    try {
      const fullName = (JSON.parse(body) as { repository?: { full_name?: unknown } }).repository?.full_name;
      const parsed = typeof fullName === 'string' ? parseRepoSlug(fullName) : undefined;
      repo = parsed?.ok === true ? parsed.value : undefined;
    } catch {
      return answer(400, 'body is not JSON');
    }
    if (ISSUE_EVENTS.has(event)) this.targets.wakeIntake(repo);
    if (PULL_EVENTS.has(event)) this.targets.wakeShepherd();
    this.log.debug({ event, delivery, repo: repo === undefined ? undefined : `${repo.owner}/${repo.name}` }, 'GitHub webhook delivery accepted');
    return answer(202, event === 'ping' ? 'pong' : 'accepted');
  }
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
