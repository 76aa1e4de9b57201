import { isLoopbackHost } from '../config/schema.js';
import type { FactorySession, FactorySessionDeps } from '../core/factory-session.js';
import { githubWiringFor, type Runtime } from '../main.js';
import { DaemonObserver } from './daemon-observer.js';
import { sessionView } from './daemon-view.js';
import { FactoryMetrics } from './metrics.js';
import { readHeartbeatAgeMs, StatusServer } from './status-server.js';

/**
 * The status server as part of `factory start`: its hooks go into the session
 * before it opens (so no dispatch or outcome is missed), the server starts
 * once the session is open, and it closes after the session's ordered stop,
 * so probes see `stopping` while the agents are released.
 */
export interface DaemonHttp {
  readonly hooks: Pick<FactorySessionDeps, 'onOutcome' | 'onIntakePass'>;
  /** Starts serving for `session` (before it dispatches, so a taken port stops the daemon early); returns the URL, or undefined when `http.enabled` is false. */
  start(session: FactorySession): Promise<string | undefined>;
  /** Names the URL in the heartbeat, once intake runs (an earlier write would record a subscription not yet listening). */
  announce(session: FactorySession): Promise<void>;
  close(): Promise<void>;
}

export function prepareDaemonHttp(runtime: Pick<Runtime, 'config' | 'clock' | 'processTable' | 'log'>, options: { warn: (message: string) => void }): DaemonHttp {
  const { config, clock, processTable, log } = runtime;
  if (!config.http.enabled) return { hooks: {}, start: async () => undefined, announce: async () => undefined, close: async () => undefined };
  const metrics = new FactoryMetrics({ heartbeatAgeMs: () => readHeartbeatAgeMs(config, clock) });
  const observer = new DaemonObserver(metrics);
  let server: StatusServer | undefined;
  let detach: (() => void) | undefined;
  return {
    hooks: observer.hooks,
    async start(session) {
      if (!isLoopbackHost(config.http.host)) {
        options.warn(`serving HTTP on ${config.http.host} (http.allowNonLoopback): anyone who can reach it can read issue text and agent logs`);
      }
      detach = observer.attach(session);
      const github = await githubWiringFor(runtime);
      // @octokit/webhooks loads only when webhooks are configured.
      const webhook =
        github?.webhookSecret === undefined
          ? undefined
          : new (await import('./github-webhooks.js')).GitHubWebhookReceiver(
              github.webhookSecret,
              github.repos,
              { wakeIntake: (repo) => github.source.wake(repo), wakeShepherd: () => void session.shepherd?.tick() },
              log.child({ component: 'github-webhooks' }),
            );
      server = await StatusServer.start({
        config,
        processTable,
        clock,
        log,
        view: sessionView(session),
        metrics,
        onChange: (listener) => observer.onChange(listener),
        ...(webhook ? { githubWebhook: webhook } : {}),
        pullRequests: () => session.shepherd?.snapshot() ?? [],
      });
      log.info({ url: server.url }, 'status server listening');
      return server.url;
    },
    async announce(session) {
      if (!server) return;
      session.heartbeat.advertiseHttp(server.url);
      // Written now rather than at the next refresh, so whoever waits for the URL (port 0) finds it at once.
      await session.writeHeartbeat('running');
    },
    async close() {
      detach?.();
      await server?.close();
    },
  };
}
