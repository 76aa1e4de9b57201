import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { ERROR_CATALOG } from '../../src/errors.js';
import { VERBS } from '../../src/cli/main.js';
import { configSchema } from '../../src/config/schema.js';

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

test('docs/errors.md lists exactly the codes in the error catalog, each with its exit code', () => {
  const doc = read('docs/errors.md');
  const documented = new Set([...doc.matchAll(/^\| `(FACTORY_[A-Z_]+)`/gm)].map((m) => m[1]));
  const codes = Object.keys(ERROR_CATALOG);
  assert.deepEqual(
    codes.filter((c) => !documented.has(c)),
    [],
    'codes missing from docs/errors.md',
  );
  assert.deepEqual(
    [...documented].filter((c) => !codes.includes(c!)),
    [],
    'codes documented but not in src/errors.ts',
  );
  for (const [code, { exitCode }] of Object.entries(ERROR_CATALOG)) {
    const row = doc.split('\n').find((line) => line.startsWith(`| \`${code}\``));
    assert.ok(row?.includes(`| ${exitCode} |`), `${code}: docs/errors.md should give exit code ${exitCode}`);
  }
});

test('docs/cli.md documents every verb', () => {
  const doc = read('docs/cli.md');
  for (const verb of VERBS) assert.ok(doc.includes(`## \`factory ${verb.name}`), `docs/cli.md has no section for ${verb.name}`);
});

test('docs/configuration.md documents every config key', () => {
  const doc = read('docs/configuration.md');
  const keys: string[] = [];
  const walk = (schema: unknown, prefix: string): void => {
    let s = schema as { _def: { typeName: string; innerType?: unknown; schema?: unknown; shape?: () => Record<string, unknown> } };
    while (s._def.innerType || (s._def.typeName === 'ZodEffects' && s._def.schema)) s = (s._def.innerType ?? s._def.schema) as typeof s;
    if (s._def.typeName === 'ZodObject' && prefix.split('.').length < 2) {
      for (const [key, child] of Object.entries(s._def.shape!())) walk(child, prefix ? `${prefix}.${key}` : key);
    } else keys.push(prefix);
  };
  walk(configSchema, '');
  for (const key of keys) assert.ok(doc.includes(`\`${key}`), `docs/configuration.md does not mention ${key}`);
});

/** A heading's anchor as GitHub makes it: lower case, punctuation dropped (but `-` and `_`), each space a `-`; repeats get `-1`, `-2`. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of withoutCodeBlocks(markdown).split('\n')) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const base = heading
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

function withoutCodeBlocks(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
}

test('every relative link in README.md and docs/*.md points at a file that exists, and at a heading that exists in it', () => {
  const docs = [
    'README.md',
    ...readdirSync(new URL('../../docs/', import.meta.url))
      .filter((name) => name.endsWith('.md'))
      .map((name) => `docs/${name}`),
  ];
  const broken: string[] = [];
  for (const doc of docs) {
    const text = withoutCodeBlocks(read(doc)).replace(/`[^`\n]*`/g, '');
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      if (target === undefined || /^[a-z]+:/i.test(target)) continue;
      const [path = '', anchor] = target.split('#');
      const resolved = path === '' ? doc : posix.normalize(posix.join(posix.dirname(doc), path));
      if (!existsSync(new URL(`../../${resolved}`, import.meta.url))) {
        broken.push(`${doc}: ${target} (no file ${resolved})`);
        continue;
      }
      if (anchor !== undefined && resolved.endsWith('.md') && !anchorsOf(read(resolved)).has(decodeURIComponent(anchor))) broken.push(`${doc}: ${target} (no heading #${anchor} in ${resolved})`);
    }
  }
  assert.deepEqual(broken, []);
});

/** The exit codes a text lists: each number that starts an item of a comma or semicolon list (`0 done, 1 failed; 2 usage`). */
function exitCodesIn(text: string): number[] {
  return [...text.matchAll(/(?:^|[,;])\s*(\d+)\b/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
}

test("README's command table gives each verb the exit codes its --help gives", () => {
  const rows = read('README.md')
    .split('\n')
    .map((line) => /^\| `factory ([a-z-]+)[^`]*` \|.*\| ([^|]+) \|$/.exec(line))
    .filter((match) => match !== null);
  const mismatches: string[] = [];
  for (const verb of VERBS) {
    const row = rows.find((match) => match[1] === verb.name);
    const help = /Exit codes?:(.*)$/is.exec(verb.details)?.[1]?.replace(/\s+/g, ' ');
    if (row === undefined || help === undefined) {
      mismatches.push(`${verb.name}: ${row === undefined ? 'no README row' : 'no exit codes in its help'}`);
      continue;
    }
    const [readme, helpCodes] = [exitCodesIn(row[2]!), exitCodesIn(help)];
    if (readme.join() !== helpCodes.join()) mismatches.push(`${verb.name}: README ${readme.join(', ')}, --help ${helpCodes.join(', ')}`);
  }
  assert.deepEqual(mismatches, []);
});
