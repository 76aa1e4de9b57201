import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  computeIssueRevision,
  deriveIssueKeyFromFileName,
  MAX_ISSUE_FILE_BYTES,
  parseIssueFile,
  readFrontMatter,
  type IssueParseResult,
} from '../../src/domain/issue-parse.js';
import type { Issue } from '../../src/domain/issue.js';

const MTIME = Date.UTC(2026, 0, 15, 12, 0, 0);

function parse(path: string, text: string): IssueParseResult {
  return parseIssueFile({ path: `/mount/${path}`, text, mtimeMs: MTIME });
}

function parseOk(path: string, text: string): Issue {
  const result = parse(path, text);
  if (!result.ok) assert.fail(`expected ${path} to parse, got: ${result.reason}`);
  return result.value;
}

function reasonFor(path: string, text: string): string {
  const result = parse(path, text);
  if (result.ok) assert.fail(`expected ${path} to be rejected, got issue ${result.value.key}`);
  return result.reason;
}

const json = (value: unknown): string => JSON.stringify(value);

describe('parseIssueFile: JSON', () => {
  it('reads every field, and takes createdAt over the file time', () => {
    const issue = parseOk(
      'FAC-1.json',
      json({ key: 'FAC-1', title: '  Add login ', body: 'Use OAuth.\n', labels: ['factory', ' api ', 'factory'], state: 'ready', priority: 2, createdAt: '2026-01-02T03:04:05.000Z' }),
    );

    assert.deepEqual(issue, {
      key: 'FAC-1',
      title: 'Add login',
      body: 'Use OAuth.',
      labels: ['factory', 'api'],
      state: 'ready',
      priority: 2,
      createdAtMs: Date.UTC(2026, 0, 2, 3, 4, 5),
      revision: issue.revision,
      location: '/mount/FAC-1.json',
    });
  });

  it('defaults body and labels, leaves priority out, and ages the issue by the file time', () => {
    const issue = parseOk('FAC-1.json', json({ key: 'FAC-1', title: 'Add login', state: 'ready', priority: null }));

    assert.equal(issue.body, '');
    assert.deepEqual(issue.labels, []);
    assert.equal('priority' in issue, false);
    assert.equal(issue.createdAtMs, MTIME);
  });

  it('accepts a byte-order mark', () => {
    assert.equal(parseOk('FAC-1.json', `\uFEFF${json({ key: 'FAC-1', title: 'T', state: 'ready' })}`).key, 'FAC-1');
  });

  it('names the file and the field in every reason', () => {
    const cases: Array<[string, string, string | RegExp]> = [
      ['FAC-1.json', json({ key: 'FAC-1', title: 'T', state: 'ready', labels: 'x' }), 'FAC-1.json: labels: expected an array of strings, got "x"'],
      ['FAC-1.json', json({ key: 'FAC-1', title: 'T', state: 'ready', labels: ['a', 2] }), 'FAC-1.json: labels: expected an array of strings, got ["a",2]'],
      ['FAC-1.json', json({ key: 'FAC-1', title: 'T', state: 'ready', labels: ['a', ' '] }), 'FAC-1.json: labels: expected non-empty strings, got ["a"," "]'],
      ['FAC-1.json', json({ key: 'FAC-1', state: 'ready' }), 'FAC-1.json: title: missing; add a title'],
      ['FAC-1.json', json({ key: 'FAC-1', title: '   ', state: 'ready' }), 'FAC-1.json: title: is empty; add a title'],
      ['FAC-1.json', json({ key: 'FAC-1', title: 42, state: 'ready' }), 'FAC-1.json: title: expected a string, got 42'],
      ['FAC-1.json', json({ key: 'FAC-1', title: 'T' }), 'FAC-1.json: state: missing; add a state such as "ready"'],
      ['FAC-1.json', json({ key: 'FAC-1', title: 'T', state: 'ready', body: ['x'] }), 'FAC-1.json: body: expected a string, got ["x"]'],
      ['FAC-1.json', json({ key: 'FAC-1', title: 'T', state: 'ready', priority: 'high' }), 'FAC-1.json: priority: expected a number (lower runs first), got "high"'],
      ['FAC-1.json', json({ key: 'FAC-1', title: 'T', state: 'ready', createdAt: 'March 7' }), /^FAC-1\.json: createdAt: expected an ISO 8601 date .*, got "March 7"$/],
      ['FAC-1.json', json({ key: '../etc', title: 'T', state: 'ready' }), /^FAC-1\.json: key: expected letters, digits.*got "\.\.\/etc"$/],
      ['FAC-1.json', json({ key: 7, title: 'T', state: 'ready' }), 'FAC-1.json: key: expected a string, got 7'],
      ['FAC-1.json', json(['FAC-1']), /^FAC-1\.json: expected a JSON object like .*, got \["FAC-1"\]$/],
      ['FAC-1.json', '{"key": "FAC-1", "title": ', /^FAC-1\.json: not valid JSON \(.+\)$/],
      ['FAC-1.json', '  \n', 'FAC-1.json: file is empty'],
      ['FAC-1.txt', json({ key: 'FAC-1', title: 'T', state: 'ready' }), 'FAC-1.txt: not an issue file (expected a .json or .md file)'],
    ];
    for (const [path, text, expected] of cases) {
      const reason = reasonFor(path, text);
      if (typeof expected === 'string') assert.equal(reason, expected);
      else assert.match(reason, expected);
    }
  });

  it('rejects a file over the size limit', () => {
    const text = json({ key: 'FAC-1', title: 'T', state: 'ready', body: 'x'.repeat(MAX_ISSUE_FILE_BYTES) });
    assert.match(reasonFor('FAC-1.json', text), /^FAC-1\.json: file is \d+ bytes, larger than the 1048576-byte limit for issues$/);
  });
});

describe('parseIssueFile: Markdown', () => {
  it('reads front matter with inline and block lists, quoted strings and comments', () => {
    const issue = parseOk(
      'FAC-2.md',
      [
        '---',
        '# metadata for Factory',
        'key: FAC-2',
        "title: 'It''s #12: fix the footer'",
        'labels:',
        '  - factory',
        '  - "web, ui"',
        '',
        'state: ready',
        'priority: -1.5',
        'createdAt: 2026-01-02',
        'assignee: someone   ',
        '---',
        '',
        'The footer overlaps the page.',
        '',
        '    indented code stays',
        '',
      ].join('\r\n'),
    );

    assert.equal(issue.key, 'FAC-2');
    assert.equal(issue.title, "It's #12: fix the footer");
    assert.deepEqual(issue.labels, ['factory', 'web, ui']);
    assert.equal(issue.state, 'ready');
    assert.equal(issue.priority, -1.5);
    assert.equal(issue.createdAtMs, Date.UTC(2026, 0, 2));
    assert.equal(issue.body, 'The footer overlaps the page.\n\n    indented code stays');
  });

  it('reads an inline list with quoted items and an explicit empty list', () => {
    const frontMatter = readFrontMatter('labels: [factory, "a, b", \'c\']\nempty: []\nblank:\ntitle: "say \\"hi\\""');
    assert.deepEqual(frontMatter, { ok: true, value: { labels: ['factory', 'a, b', 'c'], empty: [], blank: null, title: 'say "hi"' } });
  });

  it('derives the key from the file name when the front matter has none', () => {
    assert.equal(parseOk('FAC-3.md', '---\ntitle: T\nstate: ready\n---\n').key, 'FAC-3');
  });

  it('rejects what it does not understand, naming the line', () => {
    const cases: Array<[string, string]> = [
      ['no front matter', 'FAC-2.md: expected front matter: the first line must be --- followed by fields such as "title: ..." and a closing ---'],
      ['---\ntitle: T\nstate: ready\n', 'FAC-2.md: front matter is not closed: add a line with --- after the last field'],
      ['---\ntitle: T\ntitle: U\n---\n', 'FAC-2.md: front matter line 3: duplicate field "title"'],
      ['---\ntitle: T\n  more title\n---\n', 'FAC-2.md: front matter line 3: unexpected indentation (nested values are not supported)'],
      ['---\n- factory\n---\n', 'FAC-2.md: front matter line 2: a "- item" must follow a field with no value, such as "labels:"'],
      ['---\ntitle: |\n---\n', 'FAC-2.md: front matter line 2: title: block scalars (| or >) are not supported; put long text in the body'],
      ['---\ntitle: "open\n---\n', 'FAC-2.md: front matter line 2: title: unterminated " quote in "\\"open"'],
      ['---\nlabels: [a, [b]]\n---\n', 'FAC-2.md: front matter line 2: labels: nested lists are not supported, got "[b]"'],
      ['---\nlabels: [a, b\n---\n', 'FAC-2.md: front matter line 2: labels: inline list is not closed with ], got "[a, b"'],
      ['---\nlabels: [a, , b]\n---\n', 'FAC-2.md: front matter line 2: labels: empty item in inline list "[a, , b]"'],
      ['---\nowner: {name: x}\n---\n', 'FAC-2.md: front matter line 2: owner: inline maps are not supported, got "{name: x}"'],
      ['---\ntitle: *ref\n---\n', 'FAC-2.md: front matter line 2: title: anchors, aliases and tags are not supported; quote the value if it is text, got "*ref"'],
      ['---\njust words\n---\n', 'FAC-2.md: front matter line 2: expected "field: value", got "just words"'],
      ['---\ntitle: T\nstate: ready\nbody: text\n---\n', 'FAC-2.md: body: belongs after the closing ---, not in the front matter'],
      ['---\ntitle: T\nstate: ready\nlabels: factory\n---\n', 'FAC-2.md: labels: expected an array of strings, got "factory"'],
      ['---\ntitle:\nstate: ready\n---\n', 'FAC-2.md: title: missing; add a title'],
      ['---\ntitle: T\nstate: ready\npriority: high\n---\n', 'FAC-2.md: priority: expected a number (lower runs first), got "high"'],
    ];
    for (const [text, expected] of cases) assert.equal(reasonFor('FAC-2.md', text), expected, `for ${JSON.stringify(text)}`);
  });
});

describe('deriveIssueKeyFromFileName', () => {
  it('uses the name without its extension only when that is a valid key', () => {
    assert.equal(deriveIssueKeyFromFileName('/mount/FAC-12.md'), 'FAC-12');
    assert.equal(deriveIssueKeyFromFileName('api.v2-migration.json'), 'api.v2-migration');
    assert.equal(deriveIssueKeyFromFileName('my issue.json'), undefined);
    assert.equal(deriveIssueKeyFromFileName('-draft.json'), undefined);
  });

  it('rejects a keyless file whose name is not a key, saying how to fix it', () => {
    assert.match(reasonFor('my issue.json', json({ title: 'T', state: 'ready' })), /^my issue\.json: key: missing, and the file name is not a valid key to fall back on; add a key such as "FAC-1"/);
  });
});

describe('revision', () => {
  const fields = { key: 'FAC-1', title: 'Add login', body: 'Use OAuth.', labels: ['factory', 'api'], state: 'ready' };
  const revisionOf = (path: string, text: string): string => parseOk(path, text).revision;
  const baseline = revisionOf('FAC-1.json', json(fields));

  it('ignores formatting, label order, repeats, priority, age and file name', () => {
    const equivalents: Array<[string, string]> = [
      ['FAC-1.json', JSON.stringify(fields, null, 4)],
      ['FAC-1.json', `\n\n  ${JSON.stringify(fields, null, '\t').replace(/\n/g, '\r\n')}  \n`],
      ['FAC-1.json', json({ ...fields, labels: ['api', 'factory', 'api'] })],
      ['FAC-1.json', json({ ...fields, body: '\n\nUse OAuth.\r\n\n' })],
      ['FAC-1.json', json({ ...fields, priority: 1, createdAt: '2020-01-01T00:00:00Z' })],
      ['other-name.json', json(fields)],
      ['FAC-1.md', '---\nkey: FAC-1\ntitle: Add login\nlabels: [api, factory]\nstate: ready\n---\n\nUse OAuth.\n'],
    ];
    for (const [path, text] of equivalents) assert.equal(revisionOf(path, text), baseline, `${path}: ${JSON.stringify(text)}`);
  });

  it('changes when the key, title, body, labels or state change', () => {
    const changes = [
      { ...fields, key: 'FAC-2' },
      { ...fields, title: 'Add login page' },
      { ...fields, body: 'Use OAuth 2.1.' },
      { ...fields, labels: ['factory'] },
      { ...fields, labels: ['factory', 'api', 'web'] },
      { ...fields, state: 'done' },
    ];
    const revisions = changes.map((changed) => revisionOf('FAC-1.json', json(changed)));
    assert.equal(new Set([baseline, ...revisions]).size, changes.length + 1);
  });

  it('is the hash parseIssueFile stores', () => {
    assert.equal(computeIssueRevision(fields), baseline);
    assert.match(baseline, /^[0-9a-f]{64}$/);
  });
});
