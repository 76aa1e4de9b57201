import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, dirname } from 'node:path';
import { isLoopbackHost } from '../config/schema.js';
import type { FactoryConfig } from '../config/load.js';
import { judgeLiveness } from '../core/liveness.js';
import type { Logger } from '../ports/logger.js';
import { readStatusSnapshot } from '../core/status-snapshot.js';
import { heartbeatAgeMs } from '../domain/heartbeat.js';
import { FactoryError } from '../errors.js';
import { nodeStateFor, runLogStoreFor, statusSourcesFor } from '../main.js';
import type { Clock } from '../ports/clock.js';
import type { ProcessTable } from '../ports/process-table.js';
import type { DaemonView } from './daemon-view.js';
import { FactoryMetrics } from './metrics.js';
import { buildStateDocument, judgeHealth, type StateDocument } from './state-document.js';

/**
 * The daemon's HTTP face: health for supervisors and probes, the state API,
 * Prometheus metrics, run log tails, a server-sent event stream, and the
 * dashboard. Plain node:http: six routes do not need a framework.
 *
 * It reads the daemon's files exactly as `factory status` does, so it tells
 * the same story, and adds what only the running daemon knows (the view)
 * when it runs inside it. Routes are listed in docs/observability.md.
 */

export interface StatusServerOptions {
  readonly config: FactoryConfig;
  readonly processTable: ProcessTable;
  readonly clock: Clock;
  readonly log: Logger;
  /** In-process extras; without it the server reads files only. */
  readonly view?: DaemonView;
  /** Built from the heartbeat file when not given. */
  readonly metrics?: FactoryMetrics;
  /** Subscribes to "the state changed" (the DaemonObserver), so the dashboard hears of it at once. */
  readonly onChange?: (listener: () => void) => () => void;
  /** Dashboard snapshot push interval when nothing changes; ages on the page tick by themselves in between. */
  readonly pushIntervalMs?: number;
  /** Overrides `config.http` (tests, benches). */
  readonly listen?: { readonly host: string; readonly port: number };
  /** `POST /webhooks/github` (docs/github.md); absent, the route answers 404. */
  readonly githubWebhook?: { handle(request: IncomingMessage, response: ServerResponse): Promise<void> };
  /** The pull requests the shepherd follows, for `GET /api/v1/pull-requests`. */
  readonly pullRequests?: () => unknown[];
}

const DEFAULT_PUSH_INTERVAL_MS = 5_000;
/** Coalesces bursts of changes (a reconcile that queues 500 issues) into one push. */
const CHANGE_PUSH_DELAY_MS = 100;
const MAX_EVENT_STREAMS = 64;
const DEFAULT_LOG_TAIL_LINES = 200;
const MAX_LOG_TAIL_LINES = 5_000;
/** An agent's name in its team (a config role, or `<role>-2` …), as a `role` filter may give it. */
const AGENT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

/** The dashboard page, read once at startup; no build step. */
export function loadDashboardHtml(): string {
  // Compiled code runs from dist/http/, which tsc does not copy the page into;
  // src/ ships in the package too, so fall back to the source copy.
  const candidates = [new URL('./dashboard.html', import.meta.url), new URL('../../src/http/dashboard.html', import.meta.url)];
  for (const candidate of candidates) {
    try {
      return readFileSync(candidate, 'utf8');
    } catch {
      // try the next place
    }
  }
  throw new Error(`dashboard.html not found next to ${import.meta.url} or in src/http/`);
}

/**
 * A Content-Security-Policy that allows exactly the page's own inline script
 * and style (by hash) and requests to this server: even if untrusted issue
 * text ever slipped past the page's escaping, no injected script would run.
 */
function contentSecurityPolicyFor(html: string): string {
  const hashes = (tag: string): string => [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`).join(' ');
  return [
    "default-src 'none'",
    `script-src ${hashes('script') || "'none'"}`,
    `style-src ${hashes('style') || "'none'"}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Age of the heartbeat file as the metrics report it: null when missing, unreadable or dated in the future. */
export async function readHeartbeatAgeMs(config: FactoryConfig, clock: Clock): Promise<number | null> {
  const read = await nodeStateFor(config).heartbeats.read();
  if (read.kind !== 'ok') return null;
  const age = heartbeatAgeMs(read.value, clock.now());
  return Number.isFinite(age) ? age : null;
}

class HttpProblem extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

export class StatusServer {
  readonly #options: StatusServerOptions;
  readonly #server: Server;
  readonly #metrics: FactoryMetrics;
  readonly #dashboard: { html: string; csp: string };
  readonly #streams = new Set<ServerResponse>();
  readonly #unsubscribe: (() => void) | undefined;
  readonly #watchers: FSWatcher[] = [];
  readonly #loopbackOnly: boolean;
  #pushTimer: NodeJS.Timeout | undefined;
  #changeTimer: NodeJS.Timeout | undefined;
  #building: Promise<StateDocument> | undefined;
  #eventId = 0;
  #closing: Promise<void> | undefined;
  #url = '';

  private constructor(options: StatusServerOptions, dashboardHtml: string) {
    this.#options = options;
    this.#metrics = options.metrics ?? new FactoryMetrics({ heartbeatAgeMs: () => readHeartbeatAgeMs(options.config, options.clock), processMetrics: false });
    if (options.view) this.#metrics.attach(options.view);
    this.#dashboard = { html: dashboardHtml, csp: contentSecurityPolicyFor(dashboardHtml) };
    this.#loopbackOnly = isLoopbackHost(options.listen?.host ?? options.config.http.host);
    this.#server = createServer((request, response) => void this.#handle(request, response));
    // Probes and scrapers open a connection per request; do not let idle ones pile up.
    this.#server.keepAliveTimeout = 5_000;
    this.#unsubscribe = options.onChange?.(() => this.#scheduleChangePush());
    this.#watchDaemonFiles();
  }

  /**
   * The registry changes when an agent spawns or exits, the heartbeat when the
   * daemon's status does: both are rewritten by rename, so their folders are
   * watched. This is what makes a new agent show on the dashboard at once,
   * with or without a daemon in this process.
   */
  #watchDaemonFiles(): void {
    const { registryPath, heartbeatPath } = this.#options.config.loop;
    const namesByFolder = new Map<string, Set<string>>();
    for (const path of [registryPath, heartbeatPath]) namesByFolder.set(dirname(path), (namesByFolder.get(dirname(path)) ?? new Set()).add(basename(path)));
    for (const [folder, names] of namesByFolder) {
      try {
        const watcher = watch(folder, { persistent: false }, (_event, name) => {
          if (name !== null && names.has(name.toString())) this.#scheduleChangePush();
        });
        watcher.on('error', () => watcher.close());
        this.#watchers.push(watcher);
      } catch {
        // No folder yet (no daemon ever ran here): the periodic push still covers it.
      }
    }
  }

  /** Binds and listens; a port in use or a bad host is a FactoryError naming the config key. */
  static async start(options: StatusServerOptions): Promise<StatusServer> {
    const server = new StatusServer(options, loadDashboardHtml());
    const { host, port } = options.listen ?? options.config.http;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        reject(
          new FactoryError('FACTORY_HTTP_BIND_FAILED', `cannot serve HTTP on ${host}:${port} (http.host, http.port): ${error.code === 'EADDRINUSE' ? 'the port is in use' : error.message}`, {
            cause: error,
          }),
        );
      };
      server.#server.once('error', onError);
      server.#server.listen(port, host, () => {
        server.#server.off('error', onError);
        resolve();
      });
    });
    const address = server.#server.address() as AddressInfo;
    const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    server.#url = `http://${shownHost}:${address.port}`;
    return server;
  }

  /** Where it listens, e.g. `http://127.0.0.1:7420` (the real port when bound to 0). */
  get url(): string {
    return this.#url;
  }

  get metrics(): FactoryMetrics {
    return this.#metrics;
  }

  /** Closes event streams and open connections, then the listener. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#unsubscribe?.();
      for (const watcher of this.#watchers) watcher.close();
      clearInterval(this.#pushTimer);
      clearTimeout(this.#changeTimer);
      for (const stream of this.#streams) stream.end();
      this.#streams.clear();
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
    return this.#closing;
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      const url = new URL(request.url ?? '/', 'http://localhost');
      // Before the Host check: GitHub delivers to the public name, and the signature, not the Host, authenticates a delivery.
      if (url.pathname === '/webhooks/github' && this.#options.githubWebhook) return await this.#options.githubWebhook.handle(request, response);
      this.#checkHost(request);
      if (request.method !== 'GET' && request.method !== 'HEAD') throw new HttpProblem(405, `${request.method} is not supported; every route is GET`);
      const path = url.pathname;
      if (path === '/') return this.#send(response, 200, 'text/html; charset=utf-8', this.#dashboard.html, { 'content-security-policy': this.#dashboard.csp });
      if (path === '/healthz' || path === '/readyz') return await this.#serveHealth(response, path === '/readyz' ? 'status' : url.searchParams.get('check'));
      if (path === '/api/v1/state') return this.#sendJson(response, 200, await this.#stateDocument());
      if (path === '/api/v1/pull-requests') return this.#sendJson(response, 200, { pullRequests: this.#options.pullRequests?.() ?? [] });
      if (path === '/metrics') return this.#send(response, 200, this.#metrics.contentType, await this.#metrics.render());
      // HEAD answers like GET without a body; for the stream that means headers only, not a held connection.
      if (path === '/events') return request.method === 'HEAD' ? this.#send(response, 200, 'text/event-stream; charset=utf-8', '') : this.#openEventStream(request, response);
      const logRoute = /^\/api\/v1\/runs\/([^/]+)\/log$/.exec(path);
      if (logRoute) return await this.#serveRunLog(response, logRoute[1]!, url.searchParams);
      throw new HttpProblem(404, `no route ${path}; see docs/observability.md`);
    } catch (error) {
      if (error instanceof HttpProblem) return this.#sendJson(response, error.statusCode, { error: error.message });
      this.#options.log.warn({ err: (error as Error).message, url: request.url }, 'status server request failed');
      if (!response.headersSent) this.#sendJson(response, 500, { error: 'internal error; see the daemon log' });
      else response.end();
    }
  }

  /**
   * Bound to loopback, only loopback Host headers are answered: a web page the
   * operator visits cannot use DNS rebinding to read issue text and logs.
   */
  #checkHost(request: IncomingMessage): void {
    if (!this.#loopbackOnly) return;
    const host = (request.headers.host ?? '').replace(/:\d+$/, '');
    if (!isLoopbackHost(host)) throw new HttpProblem(403, `Host "${host}" is not a loopback name; this server answers loopback requests only (http.allowNonLoopback)`);
  }

  async #serveHealth(response: ServerResponse, check: string | null): Promise<void> {
    if (check !== null && check !== 'ok' && check !== 'status') throw new HttpProblem(400, `check: expected "ok" or "status", got "${check}"`);
    const { config, processTable, clock, view } = this.#options;
    const nowMs = clock.now();
    const liveness = judgeLiveness(await nodeStateFor(config).heartbeats.read(), { nowMs, staleMs: config.loop.heartbeatStaleMs, processTable });
    const health = judgeHealth(liveness, { nowMs, staleMs: config.loop.heartbeatStaleMs, view });
    // Liveness answers 503 only for a dead or stale daemon; readiness for one that is not dispatching.
    const healthy = check === 'status' ? health.status.state !== 'unavailable' : health.ok;
    this.#sendJson(response, healthy ? 200 : 503, { ...health, check: check ?? 'ok' });
  }

  /** One snapshot build at a time: concurrent requests and pushes share it. */
  #stateDocument(): Promise<StateDocument> {
    this.#building ??= (async () => {
      try {
        const { config, processTable, clock, view } = this.#options;
        const snapshot = await readStatusSnapshot(statusSourcesFor(config, processTable), { nowMs: clock.now() });
        return buildStateDocument(snapshot, { staleMs: config.loop.heartbeatStaleMs, view });
      } finally {
        this.#building = undefined;
      }
    })();
    return this.#building;
  }

  async #serveRunLog(response: ServerResponse, encodedRunId: string, params: URLSearchParams): Promise<void> {
    let runId: string;
    try {
      runId = decodeURIComponent(encodedRunId);
    } catch {
      throw new HttpProblem(400, 'the run id is not valid percent-encoding');
    }
    const tailText = params.get('tail');
    const tail = tailText === null ? DEFAULT_LOG_TAIL_LINES : Number(tailText);
    if (!Number.isSafeInteger(tail) || tail < 1 || tail > MAX_LOG_TAIL_LINES) throw new HttpProblem(400, `tail: expected a whole number from 1 to ${MAX_LOG_TAIL_LINES}, got "${tailText}"`);
    // Roles are free names from the config: one filters the run's agents, it never builds a path.
    const role = params.get('role');
    if (role !== null && !AGENT_NAME_PATTERN.test(role)) throw new HttpProblem(400, `role: expected an agent name (letters, digits, ".", "_", "-"), got "${role.slice(0, 100)}"`);
    const store = runLogStoreFor(this.#options.config);
    const logs = await store.findRun(runId);
    if (logs === undefined) {
      // Malformed ids (anything with a slash, "..", odd characters) never reach the file system.
      throw /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(runId) ? new HttpProblem(404, `no logs for run ${runId}`) : new HttpProblem(400, 'malformed run id; expected <KEY>-e<epoch>-a<attempt>-<hex>');
    }
    const files = logs.files.filter((file) => role === null || file.agent === role);
    const agents = await Promise.all(
      files.map(async (file) => {
        const text = await store.tail(file, { lines: tail });
        return { role: file.agent, sizeBytes: text.sizeBytes, modifiedAtMs: file.modifiedAtMs, truncated: text.truncated, text: text.text };
      }),
    );
    this.#sendJson(response, 200, { runId: logs.run.runId, issueKey: logs.run.issueKey, attempt: logs.run.attempt, tail, agents });
  }

  #openEventStream(request: IncomingMessage, response: ServerResponse): void {
    if (this.#streams.size >= MAX_EVENT_STREAMS) throw new HttpProblem(503, `too many open event streams (${MAX_EVENT_STREAMS}); close a dashboard tab`);
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-content-type-options': 'nosniff',
      // Reverse proxies must not buffer the stream.
      'x-accel-buffering': 'no',
    });
    // A dropped stream reconnects after this many ms (EventSource does it by itself).
    response.write('retry: 3000\n\n');
    this.#streams.add(response);
    request.on('close', () => {
      this.#streams.delete(response);
      if (this.#streams.size === 0) {
        clearInterval(this.#pushTimer);
        this.#pushTimer = undefined;
      }
    });
    void this.#push([response]);
    this.#pushTimer ??= setInterval(() => void this.#push([...this.#streams]), this.#options.pushIntervalMs ?? DEFAULT_PUSH_INTERVAL_MS);
  }

  #scheduleChangePush(): void {
    if (this.#streams.size === 0 || this.#changeTimer !== undefined) return;
    this.#changeTimer = setTimeout(() => {
      this.#changeTimer = undefined;
      void this.#push([...this.#streams]);
    }, CHANGE_PUSH_DELAY_MS);
  }

  /** Builds one snapshot and sends it to every listed stream. */
  async #push(streams: ServerResponse[]): Promise<void> {
    if (streams.length === 0) return;
    let frame: string;
    try {
      const document = await this.#stateDocument();
      frame = `id: ${++this.#eventId}\nevent: state\ndata: ${JSON.stringify(document)}\n\n`;
    } catch (error) {
      this.#options.log.warn({ err: (error as Error).message }, 'could not build the state snapshot for the event stream');
      frame = `event: problem\ndata: ${JSON.stringify({ error: (error as Error).message })}\n\n`;
    }
    for (const stream of streams) if (this.#streams.has(stream)) stream.write(frame);
  }

  #sendJson(response: ServerResponse, statusCode: number, body: unknown): void {
    this.#send(response, statusCode, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`);
  }

  #send(response: ServerResponse, statusCode: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
    response.writeHead(statusCode, {
      'content-type': contentType,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      ...headers,
    });
    response.end(response.req.method === 'HEAD' ? undefined : body);
  }
}
