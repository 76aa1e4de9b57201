import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A real git smart-HTTP server for tests: Node's http server runs
 * `git http-backend` as a CGI program for the bare repos under `projectRoot`,
 * on 127.0.0.1 at a free port, and answers only requests that carry HTTP basic
 * auth whose password is `token` (any user name, as GitHub takes a token).
 * Anything else gets 401 with a `WWW-Authenticate` challenge, so git asks for a
 * credential exactly as it does against GitHub. A refused request's body
 * echoes the password it was sent (a careless server does such things): git
 * prints that body, so a test can see whether a caller redacts it.
 */

export interface GitHttpRequest {
  readonly method: string;
  readonly url: string;
  /** `none`: no Authorization header; `wrong`: a password other than the token; `ok`: the token. */
  readonly auth: 'none' | 'wrong' | 'ok';
}

export interface GitHttpServer {
  /** `http://127.0.0.1:<port>`: what a config's apiUrl (`<origin>/api/v3`) and repo URLs start with. */
  readonly origin: string;
  /** The URL git clones `<projectRoot>/<name>` from. */
  repoUrl(name: string): string;
  /** Every request so far, in order. */
  readonly requests: readonly GitHttpRequest[];
  close(): Promise<void>;
}

export async function startGitHttpServer(options: { readonly projectRoot: string; readonly token: string }): Promise<GitHttpServer> {
  const requests: GitHttpRequest[] = [];
  const server = createServer((req, res) => {
    const password = basicPassword(req.headers.authorization);
    const auth = password === undefined ? 'none' : password === options.token ? 'ok' : 'wrong';
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '/', auth });
    if (auth !== 'ok') {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="test git"', 'Content-Type': 'text/plain' });
      res.end(auth === 'none' ? 'credentials required\n' : `bad credentials: ${password}\n`);
      return;
    }
    serveWithBackend(req, res, options.projectRoot);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    repoUrl: (name) => `${origin}/${name}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function basicPassword(header: string | undefined): string | undefined {
  const match = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

/** One CGI request: the request body to the backend's stdin, its `Status:` and headers to the response, the rest as the body. */
function serveWithBackend(req: IncomingMessage, res: ServerResponse, projectRoot: string): void {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const backend = spawn('git', ['http-backend'], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      // An authenticated user: http-backend enables pushes (receive-pack) only for one.
      REMOTE_USER: 'factory-test',
      REMOTE_ADDR: '127.0.0.1',
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: String(req.headers['content-encoding']) } : {}),
      ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  req.pipe(backend.stdin);
  let head = Buffer.alloc(0);
  let headersSent = false;
  backend.stdout.on('data', (chunk: Buffer) => {
    if (headersSent) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    let status = 200;
    for (const line of head.subarray(0, end).toString('utf8').split('\r\n')) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
      else res.setHeader(name, value);
    }
    res.writeHead(status);
    headersSent = true;
    res.write(head.subarray(end + 4));
  });
  backend.on('close', () => {
    if (!headersSent) res.writeHead(500);
    res.end();
  });
  backend.on('error', () => {
    if (!headersSent) res.writeHead(500);
    res.end();
  });
}
