import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeIssueRevision, deriveIssueKeyFromFileName, MAX_ISSUE_FILE_BYTES, parseIssueFile, readFrontMatter, type IssueParseResult } from '../../src/domain/issue-parse.js';
import type { Issue } from '../../src/domain/issue.js';
import { findJsonSyntaxError } from '../../src/domain/json-syntax.js';

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
      ['FAC-1.json', json({ key: 'FAC-1', title: 'T', state: 'ready', labels: 'x' }), 'FAC-1.json: labels: expected an array of strings, got a string'],
      ['FAC-1.json', json({ key: 'FAC-1', title: 'T', state: 'ready', labels: ['a', 2] }), 'FAC-1.json: labels: expected an array of strings, got an array holding a number'],
      ['FAC-1.json', json({ key: 'FAC-1', title: 'T', state: 'ready', labels: ['a', ' '] }), 'FAC-1.json: labels: expected non-empty strings, got an empty label at position 2'],
      ['FAC-1.json', json({ key: 'FAC-1', state: 'ready' }), 'FAC-1.json: title: missing; add a title'],
      ['FAC-1.json', json({ key: 'FAC-1', title: '   ', state: 'ready' }), 'FAC-1.json: title: is empty; add a title'],
      ['FAC-1.json', json({ key: 'FAC-1', title: 42, state: 'ready' }), 'FAC-1.json: title: expected a string, got a number'],
      ['FAC-1.json', json({ key: 'FAC-1', title: 'T' }), 'FAC-1.json: state: missing; add a state such as "ready"'],
      ['FAC-1.json', json({ key: 'FAC-1', title: 'T', state: 'ready', body: ['x'] }), 'FAC-1.json: body: expected a string, got an array'],
      ['FAC-1.json', json({ key: 'FAC-1', title: 'T', state: 'ready', priority: 'high' }), 'FAC-1.json: priority: expected a number (lower runs first), got a string'],
      ['FAC-1.json', json({ key: 'FAC-1', title: 'T', state: 'ready', createdAt: 'March 7' }), /^FAC-1\.json: createdAt: expected an ISO 8601 date .*, got a string in another format$/],
      [
        'FAC-1.json',
        json({ key: '../etc', title: 'T', state: 'ready' }),
        'FAC-1.json: key: not a usable key (it must start with a letter or digit); keys are letters, digits, ".", "_" and "-", and must also be valid git branch names',
      ],
      ['FAC-1.json', json({ key: 7, title: 'T', state: 'ready' }), 'FAC-1.json: key: expected a string, got a number'],
      ['FAC-1.json', json(['FAC-1']), /^FAC-1\.json: expected a JSON object like .*, got an array$/],
      ['FAC-1.json', '{"key": "FAC-1", "title": ', 'FAC-1.json: not valid JSON at line 1 column 27 (the file ends too early)'],
      ['FAC-1.json', '  \n', 'FAC-1.json: file is empty'],
      ['FAC-1.txt', json({ key: 'FAC-1', title: 'T', state: 'ready' }), 'FAC-1.txt: not an issue file (expected a .json or .md file)'],
    ];
    for (const [path, text, expected] of cases) {
      const reason = reasonFor(path, text);
      if (typeof expected === 'string') assert.equal(reason, expected);
      else assert.match(reason, expected);
    }
  });

  it('says where JSON breaks by line and column, never quoting the text', () => {
    const cases: Array<[string, string]> = [
      ['{"key": "FAC-1",\n  "title": x}', 'line 2 column 12'],
      ['root:$6$s3cr3tHash:19000:0:99999:7:::\n', 'line 1 column 1'],
      ['{"a": 1} trailing', 'line 1 column 10'],
      ['{"a": "tab\there"}', 'line 1 column 11'],
      ['{"a": "bad \\q escape"}', 'line 1 column 13'],
      ['{"a": 01}', 'line 1 column 8'],
      ['{"a": [1, 2,]}', 'line 1 column 13'],
      ['{\r\n"a": tru}', 'line 2 column 9'],
      ['{"a": "\u00e9\u00e9", "b": bad}', 'line 1 column 18'],
    ];
    for (const [text, where] of cases) {
      assert.equal(reasonFor('FAC-1.json', text).replace(/ \(.*\)$/, ''), `FAC-1.json: not valid JSON at ${where}`, `for ${JSON.stringify(text)}`);
    }
  });

  it('finds a JSON syntax error exactly when JSON.parse does, at the position V8 reports when it reports one', () => {
    const seeds = ['{"key":"FAC-1","title":"T","labels":["a","b"],"priority":-1.5e3,"ok":true,"n":null}', '[[[[{"a":{}}]]]]', '"\\u00e9\\n"', '0'];
    const alphabet = ['{', '}', '[', ']', '"', ':', ',', '\\', 'u', '0', '1', '-', '.', 'e', '+', 't', 'n', ' ', '\n', '\t', 'x', '\u0001'];
    let seed = 7;
    const random = (limit: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % limit;
    };
    for (let round = 0; round < 5000; round++) {
      let text = seeds[random(seeds.length)] as string;
      for (let edits = 1 + random(3); edits > 0; edits--) {
        const at = random(text.length + 1);
        const char = alphabet[random(alphabet.length)] as string;
        text = random(2) === 0 ? text.slice(0, at) + char + text.slice(at) : text.slice(0, at) + text.slice(at + 1);
      }
      let v8Error: Error | undefined;
      try {
        JSON.parse(text);
      } catch (error) {
        v8Error = error as Error;
      }
      const offset = findJsonSyntaxError(text)?.offset;
      assert.equal(offset !== undefined, v8Error !== undefined, `valid/invalid disagree for ${JSON.stringify(text)}: ${v8Error?.message}`);
      const v8Position = /at position (\d+)/.exec(v8Error?.message ?? '')?.[1];
      if (v8Position !== undefined) assert.equal(offset, Number(v8Position), `position for ${JSON.stringify(text)}: ${v8Error?.message}`);
    }
  });

  it('never puts what the file holds into a reason', () => {
    const secret = 'sk_live_5ECRET';
    const texts: Array<[string, string]> = [
      ['FAC-1.json', `${secret}\n`],
      ['FAC-1.json', `{"key": "${secret}"}`],
      ['FAC-1.json', `{"key": "FAC-1", "title": ["${secret}"], "state": "ready"}`],
      ['FAC-1.json', `{"key": "FAC-1", "title": "T", "state": "ready", "labels": "${secret}"}`],
      ['FAC-1.json', `{"key": "FAC-1", "title": "T", "state": "ready", "labels": ["${secret}", 1]}`],
      ['FAC-1.json', `{"key": "FAC-1", "title": "T", "state": "ready", "priority": "${secret}"}`],
      ['FAC-1.json', `{"key": "FAC-1", "title": "T", "state": "ready", "createdAt": "${secret}"}`],
      ['FAC-1.json', `{"key": "FAC-1", "title": "T", "state": "ready", "body": {"${secret}": 1}}`],
      ['FAC-1.json', `"${secret}"`],
      ['FAC-1.json', `{"key": "FAC-1", "${secret}`],
      ['FAC-1.md', `---\n${secret}\n---\n`],
      ['FAC-1.md', `---\ntitle: "${secret}\n---\n`],
      ['FAC-1.md', `---\ntitle: *${secret}\n---\n`],
      ['FAC-1.md', `---\ntitle: {${secret}}\n---\n`],
      ['FAC-1.md', `---\nlabels: [a, [${secret}]]\n---\n`],
      ['FAC-1.md', `---\nlabels: [${secret}\n---\n`],
      ['FAC-1.md', `---\nlabels: ["${secret}" x]\n---\n`],
      ['FAC-1.md', `---\ntitle: "\\${secret}"\n---\n`],
      ['FAC-1.md', `---\n${secret}: "open\n---\n`],
      ['FAC-1.md', `---\n${secret}: x\n${secret}: y\n---\n`],
      ['FAC-1.md', `---\ntitle: T\nstate: ready\npriority: ${secret}\n---\n`],
    ];
    for (const [path, text] of texts) {
      const reason = reasonFor(path, text);
      assert.ok(!reason.includes('5ECRET'), `reason quotes the file: ${reason}`);
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
      ['---\ntitle: "open\n---\n', 'FAC-2.md: front matter line 2: title: unterminated " quote'],
      ['---\nlabels: [a, [b]]\n---\n', 'FAC-2.md: front matter line 2: labels: nested lists are not supported'],
      ['---\nlabels: [a, b\n---\n', 'FAC-2.md: front matter line 2: labels: inline list is not closed with ]'],
      ['---\nlabels: [a, , b]\n---\n', 'FAC-2.md: front matter line 2: labels: empty item in the inline list'],
      ['---\nowner: {name: x}\n---\n', 'FAC-2.md: front matter line 2: a field: inline maps are not supported'],
      ['---\ntitle: *ref\n---\n', 'FAC-2.md: front matter line 2: title: anchors, aliases and tags are not supported; quote the value if it is text'],
      ['---\njust words\n---\n', 'FAC-2.md: front matter line 2: expected "field: value"'],
      ['---\ntitle: T\nstate: ready\nbody: text\n---\n', 'FAC-2.md: body: belongs after the closing ---, not in the front matter'],
      ['---\ntitle: T\nstate: ready\nlabels: factory\n---\n', 'FAC-2.md: labels: expected an array of strings, got a string'],
      ['---\ntitle:\nstate: ready\n---\n', 'FAC-2.md: title: missing; add a title'],
      ['---\ntitle: T\nstate: ready\npriority: high\n---\n', 'FAC-2.md: priority: expected a number (lower runs first), got a string'],
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
