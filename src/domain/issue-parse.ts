import { createHash } from 'node:crypto';
import { basename, extname } from 'node:path';
import { describeIssueKeyProblem, isValidIssueKey, type Issue } from './issue.js';
import { describeJsonSyntaxError, stripByteOrderMark } from './json-syntax.js';

/**
 * Issue files as untrusted text: a JSON object or Markdown with front matter
 * (docs/issues.md is the user-facing description). Parsing never throws; a file
 * that is not an issue comes back as a reason that names the file and the field
 * at fault, so a skip report tells the user exactly what to fix.
 *
 * A reason never quotes the file: it goes to logs and the status API, and the
 * file may be something it must not show (a link to a secret, a pasted token).
 * Reasons say where (field, line, column) and what kind of value was found.
 */

export type IssueParseResult = { readonly ok: true; readonly value: Issue } | { readonly ok: false; readonly reason: string };

export type IssueFileFormat = 'json' | 'markdown';

/** Issues are a few KB; a larger file is a mistake (or hostile) and is not worth holding in memory. */
export const MAX_ISSUE_FILE_BYTES = 1024 * 1024;

/** The skip reason for a file over the size limit; readers can check the size before reading the file. */
export function describeOversizeIssueFile(fileName: string, bytes: number | bigint): string {
  return `${basename(fileName)}: file is ${bytes} bytes, larger than the ${MAX_ISSUE_FILE_BYTES}-byte limit for issues`;
}

export interface IssueFileInput {
  /** Where the file lives; becomes `Issue.location`. Its base name is used in reasons and for key derivation. */
  readonly path: string;
  readonly text: string;
  /** The file's modification time: the issue's age when the file has no `createdAt`. */
  readonly mtimeMs: number;
}

/** The fields that change what a run does. Anything else (priority, age) only changes ordering. */
export interface IssueRevisionFields {
  readonly key: string;
  readonly title: string;
  readonly body: string;
  readonly labels: readonly string[];
  readonly state: string;
}

/** `.json` or `.md`, case-insensitive; anything else is not an issue file. */
export function issueFileFormatOf(fileName: string): IssueFileFormat | undefined {
  const extension = extname(fileName).toLowerCase();
  if (extension === '.json') return 'json';
  if (extension === '.md') return 'markdown';
  return undefined;
}

/** `FAC-12.md` → `FAC-12`; undefined when the name without its extension is not a valid key. */
export function deriveIssueKeyFromFileName(fileName: string): string | undefined {
  const name = basename(fileName);
  const stem = name.slice(0, name.length - extname(name).length);
  return isValidIssueKey(stem) ? stem : undefined;
}

/**
 * A content hash of the fields that affect a run, after normalization, so a
 * touch, a JSON re-indent, a label reorder or a JSON↔Markdown conversion keeps
 * the revision and does not re-dispatch the issue.
 */
export function computeIssueRevision(fields: IssueRevisionFields): string {
  const labels = [...new Set(fields.labels)].sort();
  const canonical = JSON.stringify([fields.key, fields.title, normalizeIssueBody(fields.body), labels, fields.state]);
  return createHash('sha256').update(canonical).digest('hex');
}

/**
 * Line endings become `\n`; leading blank lines and trailing whitespace go, so
 * the blank line after front matter or a trailing newline is not content.
 * Leading spaces on the first text line stay: they may be an indented code block.
 */
export function normalizeIssueBody(body: string): string {
  return body
    .replace(/\r\n?/g, '\n')
    .replace(/^(?:[ \t]*\n)+/, '')
    .trimEnd();
}

export function parseIssueFile(input: IssueFileInput): IssueParseResult {
  const fileName = basename(input.path);
  const fail = (reason: string): IssueParseResult => ({ ok: false, reason: `${fileName}: ${reason}` });

  const format = issueFileFormatOf(fileName);
  if (format === undefined) return fail('not an issue file (expected a .json or .md file)');
  const bytes = Buffer.byteLength(input.text, 'utf8');
  if (bytes > MAX_ISSUE_FILE_BYTES) return { ok: false, reason: describeOversizeIssueFile(fileName, bytes) };
  // A torn or half-written file often reads as empty: say so plainly.
  if (input.text.trim() === '') return fail('file is empty');

  const raw = format === 'json' ? readJsonIssueFields(input.text) : readMarkdownIssueFields(input.text);
  if (!raw.ok) return fail(raw.reason);
  const issue = buildIssue(raw.value, { path: input.path, fileName, mtimeMs: input.mtimeMs });
  return issue.ok ? issue : fail(issue.reason);
}

type FieldsResult = { readonly ok: true; readonly value: Record<string, unknown> } | { readonly ok: false; readonly reason: string };

function readJsonIssueFields(text: string): FieldsResult {
  let parsed: unknown;
  // A UTF-8 BOM is invisible in editors but JSON.parse rejects it.
  const json = stripByteOrderMark(text);
  try {
    parsed = JSON.parse(json);
  } catch {
    // The parser's message quotes the text around the error: locate it ourselves instead.
    return { ok: false, reason: describeJsonSyntaxError(json) };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { ok: false, reason: `expected a JSON object like {"key","title","body","labels","state"}, got ${describeValue(parsed)}` };
  }
  return { ok: true, value: parsed as Record<string, unknown> };
}

function readMarkdownIssueFields(text: string): FieldsResult {
  const split = splitFrontMatter(stripByteOrderMark(text));
  if (!split.ok) return split;
  const frontMatter = readFrontMatter(split.frontMatter);
  if (!frontMatter.ok) return frontMatter;
  if ('body' in frontMatter.value) {
    return { ok: false, reason: 'body: belongs after the closing ---, not in the front matter' };
  }
  return { ok: true, value: { ...coerceFrontMatterNumbers(frontMatter.value), body: split.body } };
}

/** Front matter is plain text; priority is the one numeric field, so only it is read as a number. */
function coerceFrontMatterNumbers(fields: Record<string, FrontMatterValue>): Record<string, unknown> {
  const priority = fields['priority'];
  if (typeof priority === 'string' && /^-?\d+(?:\.\d+)?$/.test(priority)) return { ...fields, priority: Number(priority) };
  return fields;
}

interface IssueLocation {
  readonly path: string;
  readonly fileName: string;
  readonly mtimeMs: number;
}

/** The one validator for both formats, so JSON and Markdown issues obey the same rules. */
function buildIssue(raw: Record<string, unknown>, location: IssueLocation): IssueParseResult {
  const key = readKey(raw['key'], location.fileName);
  if (!key.ok) return key;
  const title = readRequiredText(raw['title'], 'title', 'a title');
  if (!title.ok) return title;
  const state = readRequiredText(raw['state'], 'state', 'a state such as "ready"');
  if (!state.ok) return state;
  const body = raw['body'] ?? '';
  if (typeof body !== 'string') return { ok: false, reason: `body: expected a string, got ${describeValue(body)}` };
  const labels = readLabels(raw['labels']);
  if (!labels.ok) return labels;
  const priority = readPriority(raw['priority']);
  if (!priority.ok) return priority;
  const createdAtMs = readCreatedAt(raw['createdAt'], location.mtimeMs);
  if (!createdAtMs.ok) return createdAtMs;

  const fields: IssueRevisionFields = {
    key: key.value,
    title: title.value,
    body: normalizeIssueBody(body),
    labels: labels.value,
    state: state.value,
  };
  const issue: Issue = {
    ...fields,
    ...(priority.value === undefined ? {} : { priority: priority.value }),
    createdAtMs: createdAtMs.value,
    revision: computeIssueRevision(fields),
    location: location.path,
  };
  return { ok: true, value: issue };
}

type FieldResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

function readKey(value: unknown, fileName: string): FieldResult<string> {
  if (value === undefined || value === null || value === '') {
    const derived = deriveIssueKeyFromFileName(fileName);
    if (derived !== undefined) return { ok: true, value: derived };
    return {
      ok: false,
      reason: 'key: missing, and the file name is not a valid key to fall back on; add a key such as "FAC-1" or rename the file to FAC-1.json',
    };
  }
  if (typeof value !== 'string') return { ok: false, reason: `key: expected a string, got ${describeValue(value)}` };
  const key = value.trim();
  const problem = describeIssueKeyProblem(key);
  if (problem !== undefined) {
    return {
      ok: false,
      reason: `key: not a usable key (${problem}); keys are letters, digits, ".", "_" and "-", and must also be valid git branch names`,
    };
  }
  return { ok: true, value: key };
}

function readRequiredText(value: unknown, field: string, what: string): FieldResult<string> {
  if (value === undefined || value === null) return { ok: false, reason: `${field}: missing; add ${what}` };
  if (typeof value !== 'string') return { ok: false, reason: `${field}: expected a string, got ${describeValue(value)}` };
  const text = value.trim();
  if (text === '') return { ok: false, reason: `${field}: is empty; add ${what}` };
  return { ok: true, value: text };
}

/** Labels are compared exactly by triage, so stray spaces are trimmed and repeats dropped here. */
function readLabels(value: unknown): FieldResult<readonly string[]> {
  if (value === undefined || value === null) return { ok: true, value: [] };
  if (!Array.isArray(value) || !value.every((label) => typeof label === 'string')) {
    return { ok: false, reason: `labels: expected an array of strings, got ${describeValue(value)}` };
  }
  const labels = (value as string[]).map((label) => label.trim());
  const empty = labels.indexOf('');
  if (empty !== -1) return { ok: false, reason: `labels: expected non-empty strings, got an empty label at position ${empty + 1}` };
  return { ok: true, value: [...new Set(labels)] };
}

function readPriority(value: unknown): FieldResult<number | undefined> {
  if (value === undefined || value === null) return { ok: true, value: undefined };
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return { ok: false, reason: `priority: expected a number (lower runs first), got ${describeValue(value)}` };
  }
  return { ok: true, value };
}

/** ISO 8601 only: Date.parse also accepts forms like "March 7" whose meaning depends on the host. */
const ISO_DATE_PATTERN = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

function readCreatedAt(value: unknown, mtimeMs: number): FieldResult<number> {
  if (value === undefined || value === null || value === '') return { ok: true, value: mtimeMs };
  const parsed = typeof value === 'string' && ISO_DATE_PATTERN.test(value.trim()) ? Date.parse(value.trim()) : Number.NaN;
  if (Number.isNaN(parsed)) {
    const found = typeof value === 'string' ? 'a string in another format' : describeValue(value);
    return { ok: false, reason: `createdAt: expected an ISO 8601 date such as "2026-01-31T09:00:00Z", got ${found}` };
  }
  return { ok: true, value: parsed };
}

/** What kind of value was found, for reasons: `a string`, `a number`, `an array`; never the value itself. */
function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) {
    const odd = value.find((item) => typeof item !== 'string');
    return odd === undefined || value.every((item) => typeof item !== 'string') ? 'an array' : `an array holding ${describeValue(odd)}`;
  }
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'boolean') return 'a boolean';
  return typeof value === 'number' ? 'a number' : 'a string';
}

// ---------------------------------------------------------------------------
// Front matter: a small, strict subset of YAML. Enough for issue metadata, and
// strict so a typo is reported instead of silently changing what a field means.

/** A scalar (always text; the caller decides what is numeric) or a list of strings; null when empty. */
export type FrontMatterValue = string | readonly string[] | null;

type FrontMatterSplit = { readonly ok: true; readonly frontMatter: string; readonly body: string } | { readonly ok: false; readonly reason: string };

function splitFrontMatter(text: string): FrontMatterSplit {
  const lines = text.split(/\r\n?|\n/);
  if (lines[0]?.trimEnd() !== '---') {
    return { ok: false, reason: 'expected front matter: the first line must be --- followed by fields such as "title: ..." and a closing ---' };
  }
  const closing = lines.findIndex((line, index) => index > 0 && line.trimEnd() === '---');
  if (closing === -1) return { ok: false, reason: 'front matter is not closed: add a line with --- after the last field' };
  return { ok: true, frontMatter: lines.slice(1, closing).join('\n'), body: lines.slice(closing + 1).join('\n') };
}

const FIELD_LINE_PATTERN = /^([A-Za-z_][A-Za-z0-9_-]*)[ \t]*:(?:[ \t]+(.*)|[ \t]*)$/;
const LIST_ITEM_PATTERN = /^[ \t]*-(?:[ \t]+(.*)|[ \t]*)$/;

/**
 * Reads front matter text (between the `---` lines). Supported: `field: value`
 * with plain or quoted scalars, inline lists `[a, "b c"]`, block lists of
 * `- item` lines, blank lines and whole-line `#` comments. A `#` inside a value
 * is text, not a comment, so titles like "Fix #12" survive. Anything else
 * (nesting, block scalars, anchors) is a reason naming the line.
 */
export function readFrontMatter(text: string): FieldResult<Record<string, FrontMatterValue>> {
  // No prototype: a field named `__proto__` or `constructor` is just a field.
  const fields: Record<string, FrontMatterValue> = Object.create(null) as Record<string, FrontMatterValue>;
  const lines = text.split('\n');
  // Line numbers in reasons count the opening --- as line 1, as an editor shows them.
  const lineNumber = (index: number): number => index + 2;
  let openList: { field: string; items: string[] } | undefined;

  for (let index = 0; index < lines.length; index++) {
    const line = (lines[index] ?? '').trimEnd();
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;

    const item = LIST_ITEM_PATTERN.exec(line);
    if (item) {
      if (openList === undefined) {
        return { ok: false, reason: `front matter line ${lineNumber(index)}: a "- item" must follow a field with no value, such as "labels:"` };
      }
      const scalar = readScalar(item[1] ?? '', false);
      if (!scalar.ok) return { ok: false, reason: `front matter line ${lineNumber(index)}: ${scalar.reason}` };
      if (scalar.value === null) return { ok: false, reason: `front matter line ${lineNumber(index)}: empty list item` };
      openList.items.push(scalar.value);
      fields[openList.field] = openList.items;
      continue;
    }
    if (/^[ \t]/.test(line)) {
      return { ok: false, reason: `front matter line ${lineNumber(index)}: unexpected indentation (nested values are not supported)` };
    }

    const match = FIELD_LINE_PATTERN.exec(line);
    if (!match) return { ok: false, reason: `front matter line ${lineNumber(index)}: expected "field: value"` };
    const field = match[1] as string;
    if (field in fields) return { ok: false, reason: `front matter line ${lineNumber(index)}: duplicate field ${describeFieldName(field)}` };
    const rawValue = (match[2] ?? '').trim();
    openList = undefined;

    if (rawValue === '') {
      // Either an empty value or the head of a block list; the next lines decide.
      // Either an empty value (null, so `title:` reads as a missing title) or
      // the head of a block list; the first `- item` line turns it into a list.
      openList = { field, items: [] };
      fields[field] = null;
      continue;
    }
    const value = rawValue.startsWith('[') ? readInlineList(rawValue) : readScalar(rawValue, false);
    if (!value.ok) return { ok: false, reason: `front matter line ${lineNumber(index)}: ${KNOWN_FIELDS.has(field) ? field : 'a field'}: ${value.reason}` };
    fields[field] = value.value;
  }

  // Spread into a plain object for callers; spreading defines own properties, so `__proto__` stays a plain field.
  return { ok: true, value: { ...fields } };
}

/** Names are echoed only when they are ours: an unknown one is text from the file like any other. */
const KNOWN_FIELDS = new Set(['key', 'title', 'body', 'labels', 'state', 'priority', 'createdAt']);

function describeFieldName(field: string): string {
  return KNOWN_FIELDS.has(field) ? `"${field}"` : 'of an unknown field';
}

/** `[a, "b, c", 'd']` → strings. Nested lists and empty items are reasons. */
function readInlineList(text: string): FieldResult<readonly string[]> {
  if (!text.endsWith(']')) return { ok: false, reason: 'inline list is not closed with ]' };
  const inner = text.slice(1, -1).trim();
  if (inner === '') return { ok: true, value: [] };
  const items: string[] = [];
  let rest = inner;
  for (;;) {
    const next = takeListItem(rest);
    if (!next.ok) return next;
    const scalar = readScalar(next.item, true);
    if (!scalar.ok) return scalar;
    if (scalar.value === null) return { ok: false, reason: 'empty item in the inline list' };
    items.push(scalar.value);
    if (next.rest === undefined) return { ok: true, value: items };
    rest = next.rest;
  }
}

/** Splits off the first item of a list body at the first comma outside quotes. */
function takeListItem(text: string): { ok: true; item: string; rest: string | undefined } | { ok: false; reason: string } {
  const trimmed = text.trimStart();
  const quote = trimmed[0];
  if (quote === '"' || quote === "'") {
    const end = findClosingQuote(trimmed, quote);
    if (end === -1) return { ok: false, reason: `unterminated ${quote} quote` };
    const after = trimmed.slice(end + 1).trimStart();
    if (after === '') return { ok: true, item: trimmed.slice(0, end + 1), rest: undefined };
    if (!after.startsWith(',')) return { ok: false, reason: 'expected , after a quoted item' };
    return { ok: true, item: trimmed.slice(0, end + 1), rest: after.slice(1) };
  }
  const comma = trimmed.indexOf(',');
  return comma === -1 ? { ok: true, item: trimmed, rest: undefined } : { ok: true, item: trimmed.slice(0, comma), rest: trimmed.slice(comma + 1) };
}

/** Index of the quote that closes the string opened at index 0, honouring `\"` and `''` escapes. */
function findClosingQuote(text: string, quote: '"' | "'"): number {
  for (let index = 1; index < text.length; index++) {
    const char = text[index];
    if (quote === '"' && char === '\\') {
      index++;
      continue;
    }
    if (char !== quote) continue;
    if (quote === "'" && text[index + 1] === "'") {
      index++;
      continue;
    }
    return index;
  }
  return -1;
}

/**
 * A scalar: `"double"` (JSON escapes), `'single'` (`''` is a quote), or plain
 * text. `null`, `~` and empty are null. Characters that would mean structure in
 * YAML are refused rather than read as text the user did not intend.
 */
function readScalar(raw: string, insideList: boolean): FieldResult<string | null> {
  const text = raw.trim();
  if (text === '' || text === '~' || text === 'null') return { ok: true, value: null };
  const first = text[0];
  if (first === '"' || first === "'") {
    const end = findClosingQuote(text, first);
    if (end === -1) return { ok: false, reason: `unterminated ${first} quote` };
    if (end !== text.length - 1) return { ok: false, reason: 'unexpected text after the closing quote' };
    if (first === "'") return { ok: true, value: text.slice(1, -1).replace(/''/g, "'") };
    try {
      return { ok: true, value: JSON.parse(text) as string };
    } catch {
      return { ok: false, reason: 'invalid escape in a "double-quoted" value (use JSON escapes such as \\n or \\u00e9)' };
    }
  }
  if (/^[|>][-+0-9]*$/.test(text)) return { ok: false, reason: 'block scalars (| or >) are not supported; put long text in the body' };
  if (first === '[' || (insideList && text.includes(']'))) return { ok: false, reason: 'nested lists are not supported' };
  if (first === '{') return { ok: false, reason: 'inline maps are not supported' };
  if (first === '&' || first === '*' || first === '!') {
    return { ok: false, reason: 'anchors, aliases and tags are not supported; quote the value if it is text' };
  }
  return { ok: true, value: text };
}
