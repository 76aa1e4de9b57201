import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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
