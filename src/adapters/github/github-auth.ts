import { readFileSync } from 'node:fs';
import { FactoryError } from '../../errors.js';

/**
 * Where the GitHub credential comes from, as the config says it, and the
 * credential itself once read. A token is read from an environment variable or
 * a file, never from the config file itself, so configs can be committed.
 */
export type GitHubAuthSettings =
  | { readonly kind: 'token'; readonly tokenEnv?: string; readonly tokenFile?: string }
  | { readonly kind: 'app'; readonly appId: number; readonly privateKeyFile: string; readonly installationId: number };

export type GitHubCredentials = { readonly kind: 'token'; readonly token: string } | { readonly kind: 'app'; readonly appId: number; readonly privateKey: string; readonly installationId: number };

/** The secrets a credential holds, for redaction: every one must be scrubbed from logs and errors. */
export function secretsOf(credentials: GitHubCredentials): string[] {
  return credentials.kind === 'token' ? [credentials.token] : [credentials.privateKey];
}

function authFailure(message: string, hint: string, details: Record<string, unknown>): FactoryError {
  return new FactoryError('FACTORY_GITHUB_AUTH_FAILED', message, { hint, details });
}

/**
 * Reads the credential. Messages name the variable or file, never its content.
 * `env` and `readText` are parameters so the composition root decides where
 * they come from (and tests need not touch the real environment).
 */
export function resolveGitHubCredentials(
  settings: GitHubAuthSettings,
  env: Readonly<Record<string, string | undefined>>,
  readText: (path: string) => string = (path) => readFileSync(path, 'utf8'),
): GitHubCredentials {
  if (settings.kind === 'app') {
    let privateKey: string;
    try {
      privateKey = readText(settings.privateKeyFile);
    } catch (error) {
      throw authFailure(
        `cannot read the GitHub App private key file ${settings.privateKeyFile} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
        "Download the App's private key (.pem) and point source.github.app.privateKeyFile at it.",
        {
          privateKeyFile: settings.privateKeyFile,
        },
      );
    }
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKey)) {
      throw authFailure(`${settings.privateKeyFile} does not hold a PEM private key`, 'Use the .pem file GitHub generated for the App, unchanged.', { privateKeyFile: settings.privateKeyFile });
    }
    return { kind: 'app', appId: settings.appId, privateKey, installationId: settings.installationId };
  }
  if (settings.tokenFile !== undefined) {
    let text: string;
    try {
      text = readText(settings.tokenFile);
    } catch (error) {
      throw authFailure(
        `cannot read the GitHub token file ${settings.tokenFile} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
        'Write the token alone into the file named by source.github.tokenFile (mode 600).',
        {
          tokenFile: settings.tokenFile,
        },
      );
    }
    const token = text.trim();
    if (token.length === 0 || /\s/.test(token)) {
      throw authFailure(`the GitHub token file ${settings.tokenFile} ${token.length === 0 ? 'is empty' : 'holds more than one word'}`, 'The file must hold the token alone.', {
        tokenFile: settings.tokenFile,
      });
    }
    return { kind: 'token', token };
  }
  const variable = settings.tokenEnv ?? 'GITHUB_TOKEN';
  const token = env[variable]?.trim() ?? '';
  if (token.length === 0) {
    throw authFailure(
      `the environment variable ${variable} holding the GitHub token is not set or empty`,
      `Export ${variable} with a token (see docs/github.md for the scopes), or set source.github.tokenFile.`,
      { tokenEnv: variable },
    );
  }
  return { kind: 'token', token };
}

/**
 * GitHub credential shapes: classic and fine-grained tokens, installation and
 * OAuth tokens, JWTs and PEM blocks. Redaction scrubs these by shape as well as
 * the known secrets by value, so a token minted at run time (an App's
 * installation token) is scrubbed too.
 */
const SECRET_SHAPES: readonly RegExp[] = [
  /\bgh[pousr]_[A-Za-z0-9_]{16,}\b/g,
  /\bgithub_pat_[A-Za-z0-9_]{20,}\b/g,
  /\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g,
  /\b(authorization["']?\s*[:=]\s*["']?)(?:token|bearer|basic)\s+[^\s"',}]+/gi,
  /([?&](?:access_token|token|client_secret)=)[^&\s"']+/gi,
];

export const REDACTED = '[REDACTED]';

/** Removes every known secret and every credential-shaped string from `text`. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let result = text;
  for (const secret of secrets) {
    if (secret.length >= 4) result = result.split(secret).join(REDACTED);
  }
  for (const shape of SECRET_SHAPES) {
    result = result.replace(shape, (match, prefix?: unknown) => (typeof prefix === 'string' && match.startsWith(prefix) ? `${prefix}${REDACTED}` : REDACTED));
  }
  return result;
}
