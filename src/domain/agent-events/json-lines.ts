/**
 * An incremental JSON-lines splitter for an agent's stdout as it grows: bytes
 * in (any chunking, UTF-8 characters split across chunks included), complete
 * lines out. The unfinished last line is held until its newline arrives, or
 * handed out by `flush()` when the stream ends. A line longer than the limit
 * is not held in memory: it is dropped and counted, so one hostile line cannot
 * grow the reader without bound.
 */

export const MAX_JSON_LINE_CHARS = 8 * 1024 * 1024;

export interface JsonLinesChunk {
  /** Complete lines, without their newline (`\r\n` is accepted), empty lines left out. */
  readonly lines: readonly string[];
  /** Lines dropped for exceeding the limit since the previous push. */
  readonly oversizeDropped: number;
}

export class JsonLinesReader {
  private readonly decoder = new TextDecoder('utf-8');
  private pending = '';
  /** True while discarding the rest of an oversize line up to its newline. */
  private discarding = false;

  constructor(private readonly maxLineChars: number = MAX_JSON_LINE_CHARS) {}

  push(chunk: Uint8Array | string): JsonLinesChunk {
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    return this.split(text, false);
  }

  /** The stream ended: whatever is held (a torn last line) comes out as a line of its own. */
  flush(): JsonLinesChunk {
    return this.split(this.decoder.decode(), true);
  }

  private split(text: string, final: boolean): JsonLinesChunk {
    const lines: string[] = [];
    let oversizeDropped = 0;
    let start = 0;
    for (;;) {
      const newline = text.indexOf('\n', start);
      if (newline === -1) break;
      const piece = text.slice(start, newline);
      start = newline + 1;
      if (this.discarding) {
        this.discarding = false;
        this.pending = '';
        continue;
      }
      const line = trimCarriageReturn(this.pending + piece);
      this.pending = '';
      if (line.length > this.maxLineChars) oversizeDropped++;
      else if (line.trim().length > 0) lines.push(line);
    }
    const rest = text.slice(start);
    if (!this.discarding) {
      this.pending += rest;
      if (this.pending.length > this.maxLineChars) {
        this.pending = '';
        this.discarding = true;
        oversizeDropped++;
      }
    }
    if (final) {
      if (!this.discarding && this.pending.trim().length > 0) lines.push(trimCarriageReturn(this.pending));
      this.pending = '';
      this.discarding = false;
    }
    return { lines, oversizeDropped };
  }
}

function trimCarriageReturn(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
