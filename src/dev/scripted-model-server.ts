import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A fake model API on 127.0.0.1 that the real Claude Code and Codex CLIs talk
 * to, so tests and `npm run demo:claude` run the real agents offline. It plays
 * a script of turns: each streamed model request (Anthropic `POST /v1/messages`
 * with `stream: true`, or OpenAI `POST /v1/responses`) takes the next turn, or
 * the turn a responder picks from the request. The turn is written once,
 * protocol-free; the server renders it as Anthropic Messages SSE or OpenAI
 * Responses SSE depending on who asked. Every request is recorded so a test can
 * assert what the CLI sent; requests the server does not know are answered 404
 * and listed in `unknownRequests()` rather than failing silently.
 */

/** The model name the CLIs are given (an unknown name only makes Claude Code log `unrecognized_model`). */
export const SCRIPTED_MODEL = 'claude-scripted-1';
export const SCRIPTED_CODEX_MODEL = 'scripted-codex-model';
/** A fake key: the server accepts anything, and a real one must never be sent to it. */
export const FAKE_API_KEY = 'sk-scripted-not-a-real-key';

/** Tokens the fake model reports for one turn; the parsers must add them up to exactly this. */
export interface ScriptedUsage {
  /** Input tokens not read from the cache (OpenAI's input_tokens is this plus cacheRead). */
  readonly input: number;
  readonly output: number;
  /** Anthropic `cache_read_input_tokens`; OpenAI `input_tokens_details.cached_tokens`. */
  readonly cacheRead?: number;
  /** Anthropic `cache_creation_input_tokens`; OpenAI has no equivalent and ignores it. */
  readonly cacheWrite?: number;
}

export type ScriptedTurn =
  /** The model answers with text and ends its turn. */
  | { readonly kind: 'text'; readonly text: string; readonly usage: ScriptedUsage }
  /** The model runs a shell command: Claude Code's `Bash` tool, Codex's `exec_command` function. Optional text before it. */
  | { readonly kind: 'shell'; readonly command: string; readonly text?: string; readonly usage: ScriptedUsage }
  /** An HTTP error from the API (e.g. 400 invalid request, 500 overloaded), sent as each provider formats errors. */
  | { readonly kind: 'api-error'; readonly status: number; readonly errorType: string; readonly message: string }
  /** A 200 stream that fails part-way: Anthropic's `error` event, OpenAI's `response.failed`. */
  | { readonly kind: 'stream-error'; readonly errorType: string; readonly message: string }
  /** A 429 whose headers and body say when the limit resets (epoch seconds). */
  | { readonly kind: 'rate-limit'; readonly resetAtEpochSeconds: number; readonly message?: string }
  /** Headers and the first event, then silence until the client gives up or the server closes. */
  | { readonly kind: 'stall' };

export type ModelWire = 'anthropic-messages' | 'openai-responses';

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The parsed JSON body, or the raw text when it was not JSON; undefined when empty. */
  readonly body: unknown;
  /** Set for model requests: which wire it used and which turn index it consumed (undefined: a side request). */
  readonly wire?: ModelWire;
  readonly turnIndex?: number;
}

export interface ScriptedModelServer {
  /** `http://127.0.0.1:PORT`, for ANTHROPIC_BASE_URL (Codex wants `${url}/v1` as its provider base_url). */
  readonly url: string;
  readonly port: number;
  /** Every request in arrival order. */
  requests(): readonly RecordedRequest[];
  /** Requests that consumed a scripted turn. */
  modelRequests(): readonly RecordedRequest[];
  /** Requests the server did not recognise (answered 404). */
  unknownRequests(): readonly RecordedRequest[];
  /** Model requests that arrived after the script ran out (answered 500); a test usually asserts this is empty. */
  overrunRequests(): readonly RecordedRequest[];
  /** How many turns have been served. */
  turnsServed(): number;
  /** The usage the script has reported so far, summed: what a parser's ledger must equal. */
  usageSent(): Required<ScriptedUsage>;
  close(): Promise<void>;
}

/** What a responder sees of one streamed model request. */
export interface ModelRequestView {
  readonly wire: ModelWire;
  /** The parsed JSON body (Anthropic `messages` / `system`, OpenAI `input` / `instructions`). */
  readonly body: Readonly<Record<string, unknown>>;
  /** How many model requests came before this one. */
  readonly index: number;
}

/**
 * Chooses each turn from the request itself rather than from a fixed order:
 * for agents that talk to the server at the same time (a daemon running
 * several teams), each conversation gets the turn its own state calls for.
 * undefined: the script has nothing for this request (answered as an overrun).
 */
export type ScriptedResponder = (request: ModelRequestView) => ScriptedTurn | undefined;

/** True when the conversation already holds a tool result: the model's tool call has run. */
export function conversationHasToolResult(request: ModelRequestView): boolean {
  const body = request.body;
  if (request.wire === 'anthropic-messages') {
    const messages = Array.isArray(body.messages) ? (body.messages as { content?: unknown }[]) : [];
    return messages.some((message) => Array.isArray(message.content) && (message.content as { type?: unknown }[]).some((block) => block.type === 'tool_result'));
  }
  const input = Array.isArray(body.input) ? (body.input as { type?: unknown }[]) : [];
  return input.some((item) => item.type === 'function_call_output');
}

/** The request's whole text (system prompt, messages, tool results), for a responder that looks for a phrase. */
export function requestText(request: ModelRequestView): string {
  return JSON.stringify(request.body);
}

export interface ScriptedModelServerOptions {
  /** The model name echoed back when the request does not name one. */
  readonly model?: string;
}

const MAX_BODY_BYTES = 20 * 1024 * 1024;

export async function startScriptedModelServer(script: readonly ScriptedTurn[] | ScriptedResponder, options: ScriptedModelServerOptions = {}): Promise<ScriptedModelServer> {
  const recorded: RecordedRequest[] = [];
  const unknown: RecordedRequest[] = [];
  const overrun: RecordedRequest[] = [];
  const sent = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
  let nextTurn = 0;
  let idCounter = 0;
  const stalled = new Set<ServerResponse>();
  const fallbackModel = options.model ?? 'scripted-model';

  let modelRequests = 0;
  const takeTurn = (wire: ModelWire, body: Record<string, unknown>): { turn: ScriptedTurn; index: number } | undefined => {
    const index = modelRequests++;
    const turn = typeof script === 'function' ? script({ wire, body, index }) : script[nextTurn];
    if (turn === undefined) return undefined;
    return { turn, index: nextTurn++ };
  };
  const scriptRanOut = (): string =>
    typeof script === 'function' ? 'scripted model server: the responder has no turn for this request' : `scripted model server: the script has only ${script.length} turns`;

  const countUsage = (turn: ScriptedTurn, wire: ModelWire): void => {
    if (turn.kind !== 'text' && turn.kind !== 'shell') return;
    sent.input += turn.usage.input;
    sent.output += turn.usage.output;
    sent.cacheRead += turn.usage.cacheRead ?? 0;
    // The Responses API has no cache-write figure, so nothing is sent for it.
    if (wire === 'anthropic-messages') sent.cacheWrite += turn.usage.cacheWrite ?? 0;
  };

  const handle = (req: IncomingMessage, res: ServerResponse, rawBody: string): void => {
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    let body: unknown = undefined;
    if (rawBody.length > 0) {
      try {
        body = JSON.parse(rawBody);
      } catch {
        body = rawBody;
      }
    }
    const base = { method: req.method ?? 'GET', url, headers: { ...req.headers }, body };
    const jsonBody = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
    const model = typeof jsonBody.model === 'string' ? jsonBody.model : fallbackModel;

    if (req.method === 'POST' && path === '/v1/messages' && jsonBody.stream === true) {
      const taken = takeTurn('anthropic-messages', jsonBody);
      const request: RecordedRequest = { ...base, wire: 'anthropic-messages', turnIndex: taken?.index };
      recorded.push(request);
      if (!taken) {
        overrun.push(request);
        return sendAnthropicError(res, 500, 'api_error', scriptRanOut());
      }
      countUsage(taken.turn, 'anthropic-messages');
      return playAnthropicTurn(res, taken.turn, model, `msg_scripted_${++idCounter}`, `toolu_scripted_${idCounter}`, stalled);
    }
    if (req.method === 'POST' && path === '/v1/messages') {
      // A non-streamed side request (titles, quota probes): answered, never takes a scripted turn.
      recorded.push(base);
      return sendJson(res, 200, {
        id: `msg_side_${++idCounter}`,
        type: 'message',
        role: 'assistant',
        model,
        content: [{ type: 'text', text: 'ok' }],
        stop_reason: 'end_turn',
        stop_sequence: null,
        usage: { input_tokens: 0, output_tokens: 0 },
      });
    }
    if (req.method === 'POST' && path === '/v1/messages/count_tokens') {
      recorded.push(base);
      return sendJson(res, 200, { input_tokens: Math.ceil(rawBody.length / 4) });
    }
    if (req.method === 'POST' && path === '/v1/responses') {
      const taken = takeTurn('openai-responses', jsonBody);
      const request: RecordedRequest = { ...base, wire: 'openai-responses', turnIndex: taken?.index };
      recorded.push(request);
      if (!taken) {
        overrun.push(request);
        return sendOpenAiError(res, 500, 'server_error', scriptRanOut());
      }
      countUsage(taken.turn, 'openai-responses');
      return playResponsesTurn(res, taken.turn, model, ++idCounter, stalled);
    }
    if (req.method === 'GET' && path === '/v1/models') {
      recorded.push(base);
      return sendJson(res, 200, { object: 'list', data: [{ id: model, object: 'model', created: 0, owned_by: 'scripted' }], models: [] });
    }
    recorded.push(base);
    unknown.push(base);
    return sendJson(res, 404, { error: { type: 'not_found_error', message: `scripted model server: no route for ${base.method} ${path}` } });
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests: () => recorded.slice(),
    modelRequests: () => recorded.filter((r) => r.wire !== undefined && r.turnIndex !== undefined),
    unknownRequests: () => unknown.slice(),
    overrunRequests: () => overrun.slice(),
    turnsServed: () => nextTurn,
    usageSent: () => ({ ...sent }),
    close: async () => {
      for (const res of stalled) res.destroy();
      stalled.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function startEventStream(res: ServerResponse): (event: string, data: Record<string, unknown>) => void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  return (event, data) => {
    res.write(`event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`);
  };
}

function sendAnthropicError(res: ServerResponse, status: number, errorType: string, message: string, headers: Record<string, string> = {}): void {
  // x-should-retry: false keeps the SDK from retrying, so an error turn costs one request, not ten with backoff.
  sendJson(res, status, { type: 'error', error: { type: errorType, message } }, { 'x-should-retry': 'false', ...headers });
}

function sendOpenAiError(res: ServerResponse, status: number, errorType: string, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: { type: errorType, code: errorType, message, param: null, ...extra } }, headers);
}

function playAnthropicTurn(res: ServerResponse, turn: ScriptedTurn, model: string, messageId: string, toolUseId: string, stalled: Set<ServerResponse>): void {
  if (turn.kind === 'api-error') return sendAnthropicError(res, turn.status, turn.errorType, turn.message);
  if (turn.kind === 'rate-limit') {
    const retryAfter = Math.max(0, turn.resetAtEpochSeconds - Math.floor(Date.now() / 1000));
    return sendAnthropicError(res, 429, 'rate_limit_error', turn.message ?? 'This request would exceed your rate limit.', {
      'retry-after': String(retryAfter),
      'anthropic-ratelimit-unified-status': 'rejected',
      'anthropic-ratelimit-unified-reset': String(turn.resetAtEpochSeconds),
      'anthropic-ratelimit-unified-representative-claim': 'five_hour',
      'anthropic-ratelimit-unified-5h-status': 'rejected',
      'anthropic-ratelimit-unified-5h-reset': String(turn.resetAtEpochSeconds),
      'anthropic-ratelimit-requests-reset': new Date(turn.resetAtEpochSeconds * 1000).toISOString(),
    });
  }
  const send = startEventStream(res);
  const startUsage =
    turn.kind === 'stall' || turn.kind === 'stream-error'
      ? { input_tokens: 0, output_tokens: 0 }
      : { input_tokens: turn.usage.input, output_tokens: 1, cache_read_input_tokens: turn.usage.cacheRead ?? 0, cache_creation_input_tokens: turn.usage.cacheWrite ?? 0 };
  send('message_start', { message: { id: messageId, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: startUsage } });
  if (turn.kind === 'stall') {
    stalled.add(res);
    res.on('close', () => stalled.delete(res));
    return;
  }
  if (turn.kind === 'stream-error') {
    send('error', { error: { type: turn.errorType, message: turn.message } });
    res.end();
    return;
  }
  let index = 0;
  const text = turn.kind === 'text' ? turn.text : turn.text;
  if (text !== undefined) {
    send('content_block_start', { index, content_block: { type: 'text', text: '' } });
    // Two deltas so a client that only keeps the last delta would be caught out.
    const cut = Math.ceil(text.length / 2);
    send('content_block_delta', { index, delta: { type: 'text_delta', text: text.slice(0, cut) } });
    if (cut < text.length) send('content_block_delta', { index, delta: { type: 'text_delta', text: text.slice(cut) } });
    send('content_block_stop', { index });
    index++;
  }
  if (turn.kind === 'shell') {
    const input = JSON.stringify({ command: turn.command, description: 'Run a scripted command' });
    send('content_block_start', { index, content_block: { type: 'tool_use', id: toolUseId, name: 'Bash', input: {} } });
    const cut = Math.ceil(input.length / 2);
    send('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: input.slice(0, cut) } });
    send('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: input.slice(cut) } });
    send('content_block_stop', { index });
  }
  // Output tokens arrive in message_delta as the cumulative figure for the message.
  send('message_delta', { delta: { stop_reason: turn.kind === 'shell' ? 'tool_use' : 'end_turn', stop_sequence: null }, usage: { output_tokens: turn.usage.output } });
  send('message_stop', {});
  res.end();
}

function playResponsesTurn(res: ServerResponse, turn: ScriptedTurn, model: string, id: number, stalled: Set<ServerResponse>): void {
  if (turn.kind === 'api-error') return sendOpenAiError(res, turn.status, turn.errorType, turn.message);
  if (turn.kind === 'rate-limit') {
    const now = Math.floor(Date.now() / 1000);
    // Codex treats `usage_limit_reached` as final (no retry) and reads `resets_at` from it.
    return sendOpenAiError(
      res,
      429,
      'usage_limit_reached',
      turn.message ?? 'The usage limit has been reached',
      { resets_at: turn.resetAtEpochSeconds, resets_in_seconds: Math.max(0, turn.resetAtEpochSeconds - now) },
      { 'retry-after': String(Math.max(0, turn.resetAtEpochSeconds - now)) },
    );
  }
  const send = startEventStream(res);
  const responseId = `resp_scripted_${id}`;
  send('response.created', { response: { id: responseId, object: 'response', status: 'in_progress', model } });
  if (turn.kind === 'stall') {
    stalled.add(res);
    res.on('close', () => stalled.delete(res));
    return;
  }
  if (turn.kind === 'stream-error') {
    send('response.failed', { response: { id: responseId, object: 'response', status: 'failed', model, error: { code: turn.errorType, message: turn.message } } });
    res.end();
    return;
  }
  const text = turn.kind === 'text' ? turn.text : turn.text;
  if (text !== undefined) {
    send('response.output_item.added', { output_index: 0, item: { type: 'message', id: `msg_scripted_${id}`, role: 'assistant', status: 'in_progress', content: [] } });
    send('response.output_text.delta', { item_id: `msg_scripted_${id}`, output_index: 0, content_index: 0, delta: text });
    send('response.output_item.done', {
      output_index: 0,
      item: { type: 'message', id: `msg_scripted_${id}`, role: 'assistant', status: 'completed', content: [{ type: 'output_text', text, annotations: [] }] },
    });
  }
  if (turn.kind === 'shell') {
    send('response.output_item.done', {
      output_index: 1,
      item: { type: 'function_call', id: `fc_scripted_${id}`, call_id: `call_scripted_${id}`, name: 'exec_command', arguments: JSON.stringify({ cmd: turn.command }), status: 'completed' },
    });
  }
  send('response.completed', {
    response: {
      id: responseId,
      object: 'response',
      status: 'completed',
      model,
      usage: {
        // OpenAI counts cached input inside input_tokens; Anthropic (and ScriptedUsage.input) count it apart.
        input_tokens: turn.usage.input + (turn.usage.cacheRead ?? 0),
        input_tokens_details: { cached_tokens: turn.usage.cacheRead ?? 0 },
        output_tokens: turn.usage.output,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: turn.usage.input + (turn.usage.cacheRead ?? 0) + turn.usage.output,
      },
    },
  });
  res.end();
}
