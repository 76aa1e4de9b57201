import type { IncomingMessage, ServerResponse } from 'node:http';
import { Webhooks } from '@octokit/webhooks';
import { formatRepoSlug, parseRepoSlug, sameRepo, type GitHubRepoRef } from '../domain/github-issue.js';
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
 * changes nothing the next poll would not. A signed payload is still checked
 * for the fields Factory reads: one not shaped like GitHub's (no repository
 * `full_name`, an issue or pull request without a whole number) is answered
 * 400, one about a repository outside `source.github.repos` 202 and ignored;
 * an event Factory does not act on is 202 and ignored too. Each is logged by
 * event, delivery and reason, never with the payload. The event and delivery
 * headers are not covered by the signature: they are logged only when shaped
 * like GitHub's (an event name, a GUID), else as `<malformed>`.
 */

const MAX_BODY_BYTES = 5 * 1024 * 1024;
const LOGGABLE_EVENT = /^[a-z_]{1,64}$/;
const LOGGABLE_DELIVERY = /^[0-9a-f-]{1,64}$/i;
const ISSUE_EVENTS = new Set(['issues', 'label', 'issue_comment']);
const PULL_EVENTS = new Set(['pull_request', 'pull_request_review', 'check_run', 'check_suite', 'status']);
/** Events about one issue or pull request, and the payload field that holds it (its `number` must be a whole number). */
const SUBJECT_FIELD: Readonly<Record<string, string>> = { issues: 'issue', issue_comment: 'issue', pull_request: 'pull_request', pull_request_review: 'pull_request' };

export interface GitHubWebhookTargets {
  /** Wakes intake (the GitHub source's poll), for one repository or all. */
  wakeIntake(repo: GitHubRepoRef | undefined): void;
  /** Wakes the shepherd. */
  wakeShepherd(): void;
}

export class GitHubWebhookReceiver {
  readonly #webhooks: Webhooks;
  /** Deliveries since start, for the status API and tests: acted on, refused (bad signature or malformed), and ignored (signed, well-formed, out of scope). */
  readonly counts = { accepted: 0, refused: 0, ignored: 0 };

  constructor(
    secret: string,
    /** `source.github.repos`: a delivery about any other repository is ignored. */
    private readonly repos: readonly GitHubRepoRef[],
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
    // What the logs say about the delivery: anyone can send these headers, so a value not shaped like GitHub's is never written out.
    const named = { event: loggable(event, LOGGABLE_EVENT), delivery: loggable(delivery, LOGGABLE_DELIVERY) };
    const valid = signature !== undefined && (await this.#webhooks.verify(body, signature).catch(() => false));
    if (!valid) {
      this.counts.refused++;
      // The payload is not logged: it is unauthenticated and may be large or hostile.
      this.log.warn({ ...named, signature: signature === undefined ? 'missing' : 'mismatch', bytes: size }, 'refused a GitHub webhook delivery: bad signature');
      return answer(401, 'signature does not match');
    }
    if (event === 'ping') {
      this.counts.accepted++;
      return answer(202, 'pong');
    }
    // An App gets some events whatever it subscribes to (installation, for one); Factory acts on none of them.
    if (!ISSUE_EVENTS.has(event) && !PULL_EVENTS.has(event)) {
      this.counts.ignored++;
      this.log.debug(named, 'ignored a GitHub webhook delivery: Factory does not act on this event');
      return answer(202, 'ignored: event not used');
    }
    const read = readDelivery(body, event);
    if (!read.ok) {
      this.counts.refused++;
      this.log.warn({ ...named, reason: read.reason, bytes: size }, 'refused a signed GitHub webhook delivery: not the shape GitHub sends');
      return answer(400, `malformed delivery: ${read.reason}`);
    }
    const repo = read.repo;
    const slug = formatRepoSlug(repo);
    if (!this.repos.some((configured) => sameRepo(configured, repo))) {
      this.counts.ignored++;
      this.log.info({ ...named, repo: slug }, 'ignored a GitHub webhook delivery about a repository not in source.github.repos');
      return answer(202, 'ignored: repository not configured');
    }
    this.counts.accepted++;
    if (ISSUE_EVENTS.has(event)) this.targets.wakeIntake(repo);
    if (PULL_EVENTS.has(event)) this.targets.wakeShepherd();
    this.log.debug({ ...named, repo: slug }, 'GitHub webhook delivery accepted');
    return answer(202, 'accepted');
  }
}

/** The repository a delivery is about, once the fields Factory reads are shaped as GitHub sends them. The reason names a field, never its value. */
function readDelivery(body: string, event: string): { ok: true; repo: GitHubRepoRef } | { ok: false; reason: string } {
  let payload: unknown;
  try {
    payload = JSON.parse(body);
  } catch {
    return { ok: false, reason: 'body is not JSON' };
  }
  if (!isObject(payload)) return { ok: false, reason: 'body is not a JSON object' };
  const repository = payload.repository;
  const fullName = isObject(repository) ? repository.full_name : undefined;
  if (typeof fullName !== 'string') return { ok: false, reason: 'repository.full_name is missing' };
  const parsed = parseRepoSlug(fullName);
  if (!parsed.ok) return { ok: false, reason: 'repository.full_name is not "owner/name"' };
  const field = SUBJECT_FIELD[event];
  if (field !== undefined) {
    const subject = payload[field];
    const number = isObject(subject) ? subject.number : undefined;
    if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < 1) return { ok: false, reason: `${field}.number is not a positive whole number` };
  }
  return { ok: true, repo: parsed.value };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `value` when it matches `pattern`; otherwise only that it was missing or malformed. */
function loggable(value: string, pattern: RegExp): string {
  if (value === '') return '<missing>';
  return pattern.test(value) ? value : '<malformed>';
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
