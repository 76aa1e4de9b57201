import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { compileConfig } from '../../src/config/load.js';
import { describeBranchNameProblem } from '../../src/domain/git-ref-format.js';
import { isFactoryError } from '../../src/errors.js';
import { isValidIssueKey } from '../../src/domain/issue.js';
import { parseIssueFile } from '../../src/domain/issue-parse.js';

/**
 * Our reading of git's ref-format rules, checked against git itself so the
 * two cannot drift: every name below goes through `git check-ref-format --branch`.
 */

// Outside any repository, so `@{-1}` cannot be expanded to a previous branch.
const outsideRepo = mkdtempSync(join(tmpdir(), 'factory-refcheck-'));
after(() => rmSync(outsideRepo, { recursive: true, force: true }));

function gitAccepts(name: string): boolean {
  const result = spawnSync('git', ['check-ref-format', '--branch', name], { cwd: outsideRepo, encoding: 'utf8', env: { ...process.env, GIT_CEILING_DIRECTORIES: tmpdir() } });
  if (result.error) throw result.error;
  return result.status === 0;
}

const TRICKY_NAMES = [
  'FOO-1',
  'FOO-1.',
  'X.lock',
  'x.LOCK',
  'FOO-1.lock',
  '.lock',
  'lock',
  'a.lock.b',
  'a.lck',
  'a..b',
  'a...b',
  '.a',
  'a.',
  'a/.b',
  'a/b.',
  'a/b./c',
  'a/b.lock',
  'a.lock/b',
  'a@{b',
  '@{',
  'a@b',
  '@',
  '@x',
  'x@',
  'a/@',
  'a/',
  '/a',
  'a//b',
  'a/b',
  'a/./b',
  'a/../b',
  '-a',
  'a-',
  'HEAD',
  'head',
  'foo/HEAD',
  'a b',
  'a\tb',
  'a\x7fb',
  'a\x01b',
  'a~1',
  'a^',
  'a:b',
  'a?',
  'a*',
  'a[',
  'a]',
  'a\\b',
  'é',
  'a{b',
  'a}b',
  'a@',
  '1',
  '_',
  'refs/heads/x',
];

describe('describeBranchNameProblem', () => {
  it('agrees with git check-ref-format --branch on tricky names', () => {
    for (const name of TRICKY_NAMES) {
      const problem = describeBranchNameProblem(name);
      assert.equal(problem === undefined, gitAccepts(name), `${JSON.stringify(name)}: ours says ${problem ?? 'valid'}`);
    }
  });

  it('agrees with git on random names built from the characters the rules are about', () => {
    const alphabet = ['a', 'B', '1', '.', '/', '-', '_', '@', '{', '}', 'lock', '.lock', 'HEAD', ' ', '~', '^', ':', '?', '*', '[', '\\', '\x01', 'é'];
    let seed = 11;
    const random = (limit: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % limit;
    };
    for (let round = 0; round < 300; round++) {
      let name = '';
      for (let parts = 1 + random(5); parts > 0; parts--) name += alphabet[random(alphabet.length)];
      const problem = describeBranchNameProblem(name);
      assert.equal(problem === undefined, gitAccepts(name), `${JSON.stringify(name)}: ours says ${problem ?? 'valid'}`);
    }
  });

  it('says which rule a name breaks, without quoting the name', () => {
    assert.equal(describeBranchNameProblem('FOO-1.'), 'it ends with "."');
    assert.equal(describeBranchNameProblem('X.lock'), 'a part ends with ".lock"');
    assert.equal(describeBranchNameProblem('a..b'), 'it contains ".."');
    assert.equal(describeBranchNameProblem('a@{b'), 'it contains "@{"');
    assert.equal(describeBranchNameProblem('a/'), 'it has an empty part (a leading, trailing or double "/")');
    assert.equal(describeBranchNameProblem('a:b'), 'character 2 is a space, a control character or one of ~ ^ : ? * [ \\');
  });
});

describe('issue keys that cannot be branches', () => {
  it('are refused by the key rule, and files holding them are skipped at intake with a reason', () => {
    for (const key of ['FOO-1.', 'X.lock', 'FOO-1.LOCK.', 'A..B']) {
      assert.equal(isValidIssueKey(key), false, key);
      const result = parseIssueFile({ path: '/mount/FAC-1.json', text: JSON.stringify({ key, title: 'T', state: 'ready' }), mtimeMs: 0 });
      assert.equal(result.ok, false, key);
      if (!result.ok) assert.match(result.reason, /^FAC-1\.json: key: not a usable key \(it is not a valid git branch name: .+\)/, key);
    }
    for (const key of ['FOO-1', 'x.LOCK', 'a.lck', 'R2.D2', 'v1.2.3']) assert.equal(isValidIssueKey(key), true, key);
  });

  it('are not derived from file names either', () => {
    const result = parseIssueFile({ path: '/mount/X.lock.json', text: JSON.stringify({ title: 'T', state: 'ready' }), mtimeMs: 0 });
    assert.equal(result.ok, false);
  });
});

describe('dispatch.branchPrefix', () => {
  const configWith = (branchPrefix: string): unknown => ({ mount: { root: './issues' }, agents: { implementer: { command: ['agent'] } }, dispatch: { branchPrefix } });

  it('refuses a prefix that cannot start a valid branch for every valid key', () => {
    for (const prefix of ['factory//', '/factory/', '-factory/', 'factory.', 'a..b/', 'factory/.hidden/', 'x.lock/', 'factory.lo']) {
      assert.throws(
        () => compileConfig(configWith(prefix), '/srv/factory.config.json'),
        (error) => isFactoryError(error, 'FACTORY_CONFIG_INVALID') && /dispatch\.branchPrefix: .*git branch/.test(error.message),
        prefix,
      );
    }
    for (const prefix of ['', 'factory/', 'bots/factory-', 'f_', 'v1.2-']) assert.equal(compileConfig(configWith(prefix), '/srv/factory.config.json').dispatch.branchPrefix, prefix);
  });
});
