/**
 * Where JSON text stops being JSON, found by our own scanner. `JSON.parse`
 * messages quote the text around the error (`Unexpected token 'r', "root:$6$…"
 * is not valid JSON`), and an issue file's text must never reach a skip
 * reason, a log line or the API; a line and a column tell the user as much.
 */

export interface JsonSyntaxError {
  /** Index into the text (UTF-16 code units) of the first character that cannot be JSON; the text's length when it ends too early. */
  readonly offset: number;
  /** 1-based, as editors count. */
  readonly line: number;
  /** 1-based, in characters (code points) from the start of the line. */
  readonly column: number;
  readonly endedEarly: boolean;
}

/** A UTF-8 byte order mark, which some editors save invisibly and JSON.parse rejects, removed from the start of hand-edited text. */
export function stripByteOrderMark(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

type Expected = 'value' | 'value-or-close' | 'key' | 'key-or-close' | 'colon' | 'comma-or-close' | 'end';

/**
 * The first syntax error in `text` by RFC 8259 (what `JSON.parse` accepts), or
 * undefined when it is valid. Iterative, so deep nesting cannot overflow the stack.
 */
export function findJsonSyntaxError(text: string): JsonSyntaxError | undefined {
  const offset = findErrorOffset(text);
  return offset === undefined ? undefined : locate(text, offset);
}

function findErrorOffset(text: string): number | undefined {
  const length = text.length;
  const open: ('{' | '[')[] = [];
  let index = 0;
  let expected: Expected = 'value';
  const afterValue = (): Expected => (open.length === 0 ? 'end' : 'comma-or-close');

  for (;;) {
    while (index < length && isWhitespace(text.charCodeAt(index))) index++;
    if (expected === 'end') return index < length ? index : undefined;
    if (index >= length) return length;
    const char = text[index];
    switch (expected) {
      case 'colon':
        if (char !== ':') return index;
        index++;
        expected = 'value';
        continue;
      case 'comma-or-close': {
        const container = open[open.length - 1];
        if (char === ',') {
          index++;
          expected = container === '{' ? 'key' : 'value';
        } else if ((container === '{' && char === '}') || (container === '[' && char === ']')) {
          index++;
          open.pop();
          expected = afterValue();
        } else return index;
        continue;
      }
      case 'key-or-close':
      case 'key':
        if (expected === 'key-or-close' && char === '}') {
          index++;
          open.pop();
          expected = afterValue();
          continue;
        }
        if (char !== '"') return index;
        index = scanString(text, index);
        if (index < 0) return -index - 1;
        expected = 'colon';
        continue;
      case 'value-or-close':
      case 'value': {
        if (expected === 'value-or-close' && char === ']') {
          index++;
          open.pop();
          expected = afterValue();
          continue;
        }
        if (char === '{' || char === '[') {
          open.push(char);
          index++;
          expected = char === '{' ? 'key-or-close' : 'value-or-close';
          continue;
        }
        const end = char === '"' ? scanString(text, index) : char === '-' || isDigit(text.charCodeAt(index)) ? scanNumber(text, index) : scanLiteral(text, index);
        if (end < 0) return -end - 1;
        index = end;
        expected = afterValue();
        continue;
      }
    }
  }
}

// The scanners return the index after what they read, or -(offset + 1) of the error.

function scanString(text: string, start: number): number {
  let index = start + 1;
  for (;;) {
    if (index >= text.length) return -(text.length + 1);
    const code = text.charCodeAt(index);
    if (code === 0x22) return index + 1;
    if (code < 0x20) return -(index + 1);
    if (code !== 0x5c) {
      index++;
      continue;
    }
    const escaped = text[index + 1];
    if (escaped === undefined) return -(text.length + 1);
    if ('"\\/bfnrt'.includes(escaped)) {
      index += 2;
      continue;
    }
    if (escaped !== 'u') return -(index + 2);
    for (let digit = 0; digit < 4; digit++) {
      const at = index + 2 + digit;
      if (at >= text.length) return -(text.length + 1);
      if (!/[0-9a-fA-F]/.test(text[at] as string)) return -(at + 1);
    }
    index += 6;
  }
}

function scanNumber(text: string, start: number): number {
  let index = start;
  if (text[index] === '-') index++;
  if (index >= text.length) return -(text.length + 1);
  if (text[index] === '0') index++;
  else if (isDigit(text.charCodeAt(index))) while (isDigit(text.charCodeAt(index))) index++;
  else return -(index + 1);
  if (text[index] === '.') {
    index++;
    if (index >= text.length) return -(text.length + 1);
    if (!isDigit(text.charCodeAt(index))) return -(index + 1);
    while (isDigit(text.charCodeAt(index))) index++;
  }
  if (text[index] === 'e' || text[index] === 'E') {
    index++;
    if (text[index] === '+' || text[index] === '-') index++;
    if (index >= text.length) return -(text.length + 1);
    if (!isDigit(text.charCodeAt(index))) return -(index + 1);
    while (isDigit(text.charCodeAt(index))) index++;
  }
  return index;
}

function scanLiteral(text: string, start: number): number {
  const literal = ['true', 'false', 'null'].find((word) => word[0] === text[start]);
  if (literal === undefined) return -(start + 1);
  for (let offset = 1; offset < literal.length; offset++) {
    if (start + offset >= text.length) return -(text.length + 1);
    if (text[start + offset] !== literal[offset]) return -(start + offset + 1);
  }
  return start + literal.length;
}

function isWhitespace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

function locate(text: string, offset: number): JsonSyntaxError {
  const before = text.slice(0, offset);
  const lineStart = before.lastIndexOf('\n') + 1;
  const line = before.length - before.replaceAll('\n', '').length + 1;
  // Code points, not UTF-16 units, so an emoji before the error counts as one column.
  const column = [...before.slice(lineStart)].length + 1;
  return { offset, line, column, endedEarly: offset >= text.length };
}

/** `not valid JSON at line 3 column 7`: the reason for a file `JSON.parse` rejects, with no text from the file in it. */
export function describeJsonSyntaxError(text: string): string {
  const error = findJsonSyntaxError(text);
  // JSON.parse failed, so this cannot be; say something true rather than nothing.
  if (error === undefined) return 'not valid JSON';
  return `not valid JSON at line ${error.line} column ${error.column}${error.endedEarly ? ' (the file ends too early)' : ''}`;
}
