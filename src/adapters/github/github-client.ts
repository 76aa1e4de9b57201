import { createAppAuth } from '@octokit/auth-app';
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { Octokit } from '@octokit/rest';
import { FactoryError } from '../../errors.js';
import { redactSecrets, secretsOf, type GitHubCredentials } from './github-auth.js';

/**
 * The one place a GitHub API client is built: Octokit with the throttling and
 * retry plugins, a timeout on every attempt, redacted logs and errors. Defaults
 * follow GitHub's guidance for integrations (honour `retry-after` and
 * `x-ratelimit-reset`, space mutating requests at least a second apart).
 */

/** The logger shape the client needs; the project's Logger port satisfies it. */
export interface GitHubLog {
  debug(fields: Record<string, unknown>, message?: string): void;
  warn(fields: Record<string, unknown>, message?: string): void;
}

export interface GitHubClientOptions {
  readonly credentials: GitHubCredentials;
  /** REST base URL; `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise Server. */
  readonly apiUrl?: string;
  /** Bound on each attempt of each request; default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Retries of a 5xx or network failure (backoff 1, 4, 9... times `retryBaseMs`); default 3. */
  readonly maxRetries?: number;
  /** Unit of the 5xx backoff; default 1000 ms. */
  readonly retryBaseMs?: number;
  /** Retries of one request after primary or secondary rate limits; default 4. */
  readonly maxRateLimitRetries?: number;
  /** A rate-limit wait longer than this fails the request instead (the next poll tries again); default 15 min. */
  readonly maxRateLimitWaitMs?: number;
  /** Minimum spacing of mutating requests; default 1000 ms (GitHub's guidance). */
  readonly minWriteIntervalMs?: number;
  readonly log?: GitHubLog;
  readonly userAgent?: string;
}

export interface GitHubClient {
  readonly octokit: Octokit;
  /** Scrubs this client's secrets, and anything shaped like a credential, from text. */
  redact(text: string): string;
  /** Turns anything a request threw into a FactoryError with a redacted message and no raw request attached. */
  toError(error: unknown, what: string): FactoryError;
}

export const DEFAULT_GITHUB_API_URL = 'https://api.github.com';

/**
 * Spaces the requests it schedules at least `intervalMs` apart. Given to the
 * throttling plugin as its write group (its `Bottleneck.Group` contract:
 * `key(id).schedule(options, task, ...args)`), so the spacing is configurable.
 */
class RequestPacer {
  #nextStartMs = 0;
  #queue: Promise<void> = Promise.resolve();

  constructor(private readonly intervalMs: number) {}

  key(): this {
    return this;
  }

  schedule<T>(_options: unknown, task: (...args: unknown[]) => Promise<T>, ...args: unknown[]): Promise<T> {
    const turn = this.#queue.then(async () => {
      const waitMs = this.#nextStartMs - Date.now();
      if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
      this.#nextStartMs = Date.now() + this.intervalMs;
    });
    this.#queue = turn;
    return turn.then(() => task(...args));
  }
}

/**
 * A fresh timeout per attempt: registered before the retry plugin, so each
 * retry gets its own bound. It sets the signal on the options object itself:
 * Octokit's hook chain binds one options object to every inner hook, so
 * passing a new object on would not reach the request.
 */
function requestTimeoutPlugin(octokit: Pick<Octokit, 'hook'>, options: Record<string, unknown>): void {
  const timeoutMs = typeof options.requestTimeoutMs === 'number' ? options.requestTimeoutMs : 30_000;
  // Signals this plugin made; anything else on the options is the caller's and keeps applying.
  const ours = new WeakMap<AbortSignal, AbortSignal | undefined>();
  octokit.hook.wrap('request', (request, requestOptions) => {
    const present = requestOptions.request?.signal as AbortSignal | undefined;
    const callerSignal = present !== undefined && ours.has(present) ? ours.get(present) : present;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = callerSignal === undefined ? timeout : AbortSignal.any([callerSignal, timeout]);
    ours.set(signal, callerSignal);
    requestOptions.request = { ...requestOptions.request, signal };
    return request(requestOptions);
  });
}

const PacedOctokit = Octokit.plugin(requestTimeoutPlugin, throttling, retry);

interface RequestErrorShape {
  readonly status?: number;
  readonly message?: string;
  readonly name?: string;
  readonly request?: { readonly method?: string; readonly url?: string };
  readonly response?: { readonly headers?: Record<string, string | undefined> };
}

export function createGitHubClient(options: GitHubClientOptions): GitHubClient {
  const secrets = secretsOf(options.credentials);
  const redact = (text: string): string => redactSecrets(text, secrets);
  const log = options.log;
  const maxRateLimitRetries = options.maxRateLimitRetries ?? 4;
  const maxRateLimitWaitMs = options.maxRateLimitWaitMs ?? 15 * 60_000;
  const writePacer = new RequestPacer(options.minWriteIntervalMs ?? 1000);
  const describeRequest = (requestOptions: { method?: string; url?: string }): string => redact(`${requestOptions.method ?? 'GET'} ${requestOptions.url ?? '?'}`);
  const onLimit =
    (kind: 'primary' | 'secondary') =>
    (retryAfterSeconds: number, requestOptions: { method?: string; url?: string }, _octokit: unknown, retryCount: number): boolean => {
      const retrying = retryCount < maxRateLimitRetries && retryAfterSeconds * 1000 <= maxRateLimitWaitMs;
      log?.warn({ request: describeRequest(requestOptions), retryAfterSeconds, retryCount, retrying }, `GitHub ${kind} rate limit hit`);
      return retrying;
    };

  const credentials = options.credentials;
  const octokit = new PacedOctokit({
    baseUrl: (options.apiUrl ?? DEFAULT_GITHUB_API_URL).replace(/\/+$/, ''),
    userAgent: options.userAgent ?? 'factory-github-source',
    requestTimeoutMs: options.requestTimeoutMs,
    ...(credentials.kind === 'token'
      ? { auth: credentials.token }
      : { authStrategy: createAppAuth, auth: { appId: credentials.appId, privateKey: credentials.privateKey, installationId: credentials.installationId } }),
    throttle: {
      onRateLimit: onLimit('primary'),
      onSecondaryRateLimit: onLimit('secondary'),
      write: writePacer as never,
      notifications: writePacer as never,
    },
    retry: { retries: options.maxRetries ?? 3, retryAfterBaseValue: options.retryBaseMs ?? 1000 },
    // Octokit's own log lines name URLs and sometimes bodies: redact them and keep them out of the error stream.
    log: {
      debug: (message: string) => log?.debug({}, redact(message)),
      info: (message: string) => log?.debug({}, redact(message)),
      warn: (message: string) => log?.warn({}, redact(message)),
      error: (message: string) => log?.debug({}, redact(message)),
    },
  } as ConstructorParameters<typeof PacedOctokit>[0]);

  const toError = (error: unknown, what: string): FactoryError => {
    if (error instanceof FactoryError) return error;
    const shape = (error ?? {}) as RequestErrorShape;
    const status = typeof shape.status === 'number' ? shape.status : undefined;
    const request = shape.request?.method !== undefined ? describeRequest(shape.request) : undefined;
    const reason = redact(String(shape.message ?? error));
    const requestId = shape.response?.headers?.['x-github-request-id'];
    // A 403 or 429 may be a rate limit rather than a refusal: callers must not treat it as "no access".
    const rateLimited = (status === 403 || status === 429) && (shape.response?.headers?.['x-ratelimit-remaining'] === '0' || /rate limit/i.test(reason));
    const details = {
      ...(status === undefined ? {} : { status }),
      ...(rateLimited ? { rateLimited } : {}),
      ...(request === undefined ? {} : { request }),
      ...(requestId === undefined ? {} : { requestId }),
    };
    if (status === 401 || (error instanceof Error && error.name === 'AuthError')) {
      return new FactoryError('FACTORY_GITHUB_AUTH_FAILED', `GitHub refused the credential while trying to ${what}${request === undefined ? '' : ` (${request})`}: ${reason}`, { details });
    }
    return new FactoryError('FACTORY_GITHUB_REQUEST_FAILED', `could not ${what}: ${request ?? 'request'} ${status === undefined ? 'failed' : `answered ${status}`}: ${reason}`, { details });
  };

  return { octokit: octokit as unknown as Octokit, redact, toError };
}
