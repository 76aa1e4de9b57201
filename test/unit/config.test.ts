import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileConfig, loadConfig } from '../../src/config/load.js';
import { FactoryError, isFactoryError } from '../../src/errors.js';

const MINIMAL = { mount: { root: './issues' }, agents: { implementer: { command: ['claude', '-p', '{{prompt}}'] } } };

function tempFolder(): string {
  return mkdtempSync(join(tmpdir(), 'factory-config-'));
}

function writeConfig(dir: string, content: unknown, name = 'factory.config.json'): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

/** The FactoryError `run` throws; fails the test when it throws nothing or something else. */
function thrownBy(run: () => unknown): FactoryError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof FactoryError, `expected a FactoryError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected an error');
}

test('defaults are applied to a minimal config', () => {
  const config = compileConfig(MINIMAL, '/srv/factory/factory.config.json');
  assert.equal(config.safety.requireLabel, 'factory');
  assert.equal(config.safety.titlePrefix, '');
  assert.deepEqual(config.dispatch, { batchSize: 1, maxAttempts: 2, backoffBaseMs: 10_000, backoffMaxMs: 300_000, teamMode: 'sequential', maxCrashInterruptions: 3, branchPrefix: 'factory/' });
  assert.deepEqual(config.runs, { maxRuntimeMs: 3_600_000, stallLimitMs: 900_000, superviseIntervalMs: 5_000, killGraceMs: 5_000, allowNoChanges: false });
  assert.deepEqual(config.intake, { transport: 'subscribe-and-poll', reconcileIntervalMs: 60_000, debounceMs: 20, probeIntervalMs: 30_000, probeTimeoutMs: 5_000, unhealthyLimitMs: 300_000 });
  assert.equal(config.loop.heartbeatStaleMs, 60_000);
  assert.equal(config.loop.heartbeatIntervalMs, 15_000);
  assert.equal(config.loop.maxConsecutiveFailures, 3);
  assert.equal(config.loop.heartbeatPath, '/srv/factory/.factory/heartbeat.json');
  assert.equal(config.loop.registryPath, '/srv/factory/.factory/registry.json');
  assert.equal(config.paths.stateDb, '/srv/factory/.factory/state.db');
  assert.deepEqual(config.repos, { default: undefined, byLabel: {}, rules: [] });
  assert.deepEqual(config.agents.implementer.env, {});
  assert.equal(config.agents.reviewer, undefined);
  assert.equal(config.reaper.graceMs, 5_000);
});

test("relative paths are resolved against the config file's folder, not the working directory", () => {
  const dir = tempFolder();
  mkdirSync(join(dir, 'conf'));
  const path = writeConfig(join(dir, 'conf'), {
    mount: { root: './issues' },
    repos: { default: '..', byLabel: { api: 'checkouts/api' }, rules: [{ keyword: 'docs', repo: '/abs/docs' }] },
    agents: { implementer: { command: ['./bin/agent', 'plain/arg', '{{prompt}}'] }, reviewer: { command: ['../tools/review', 'claude'] } },
    loop: { heartbeatPath: 'run/hb.json', registryPath: '/var/run/registry.json' },
    state: { dir: 'state' },
  });
  const before = process.cwd();
  process.chdir(tmpdir());
  try {
    const config = loadConfig(join(dir, 'conf', 'factory.config.json'));
    const conf = join(dir, 'conf');
    assert.equal(config.configPath, path);
    assert.equal(config.mount.root, join(conf, 'issues'));
    assert.equal(config.repos.default, dir);
    assert.equal(config.repos.byLabel.api, join(conf, 'checkouts/api'));
    assert.equal(config.repos.rules[0]!.repo, '/abs/docs');
    assert.deepEqual(config.agents.implementer.command, [join(conf, 'bin/agent'), 'plain/arg', '{{prompt}}'], 'only ./ and ../ arguments are paths');
    assert.deepEqual(config.agents.reviewer!.command, [join(dir, 'tools/review'), 'claude']);
    assert.equal(config.loop.heartbeatPath, join(conf, 'run/hb.json'));
    assert.equal(config.loop.registryPath, '/var/run/registry.json');
    assert.equal(config.paths.stateDir, join(conf, 'state'));
    assert.equal(config.paths.stateDb, join(conf, 'state', 'state.db'));
    assert.equal(config.paths.daemonLock, join(conf, 'state', 'daemon.lock'));
  } finally {
    process.chdir(before);
  }
});

test('the compiled config is frozen', () => {
  const config = compileConfig(MINIMAL, '/srv/factory.config.json');
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.dispatch));
  assert.ok(Object.isFrozen(config.agents.implementer.command));
});

test('several mistakes at once: one FACTORY_CONFIG_INVALID error listing each as `path: expected …, got …`', () => {
  const error = thrownBy(() =>
    compileConfig(
      {
        mount: { root: 5 },
        agents: { implementer: { command: [] }, reviewer: { command: ['codex', 7] } },
        dispatch: { batchSize: 0, maxAttempts: 'two', teamMode: 'both' },
        loop: { heartbeatStaleMs: -5, heartbeatIntervalMs: 1.5 },
        runs: { killGraceMs: null },
      },
      '/srv/factory/factory.config.json',
    ),
  );
  assert.equal(error.code, 'FACTORY_CONFIG_INVALID');
  assert.equal(error.exitCode, 2);
  assert.match(error.message, /^\/srv\/factory\/factory\.config\.json has 9 problems:/, 'the message names the file');
  const problems = error.details.problems as string[];
  assert.deepEqual(problems, [
    'mount.root: expected string, got 5',
    'agents.implementer.command: expected a command as a non-empty array of strings, e.g. ["claude", "-p", "{{prompt}}"], got []',
    'agents.reviewer.command.1: expected string, got 7',
    'dispatch.batchSize: expected a number greater than or equal to 1, got 0',
    'dispatch.maxAttempts: expected number, got "two"',
    'dispatch.teamMode: expected one of "sequential", "parallel", got "both"',
    'runs.killGraceMs: expected number, got null',
    'loop.heartbeatStaleMs: expected a positive number of milliseconds, got -5',
    'loop.heartbeatIntervalMs: expected integer, got 1.5',
  ]);
  for (const problem of problems) assert.ok(error.message.includes(problem), `the message lists ${problem}`);
});

test('a missing required key says it is missing', () => {
  const error = thrownBy(() => compileConfig({ mount: { root: './issues' } }, '/srv/factory.config.json'));
  assert.equal(error.code, 'FACTORY_CONFIG_INVALID');
  assert.deepEqual(error.details.problems, ['agents: expected object, but it is missing']);
});

test('unknown keys are named, at any depth, alongside other problems', () => {
  const error = thrownBy(() =>
    compileConfig({ ...MINIMAL, dispatch: { batchsize: 2 }, agents: { implementer: { command: ['x'], comand: ['y'] } }, extra: true, heartbeat: {} }, '/srv/factory.config.json'),
  );
  assert.equal(error.code, 'FACTORY_CONFIG_INVALID');
  const problems = error.details.problems as string[];
  assert.equal(problems.length, 3);
  assert.ok(
    problems.some((p) => p.startsWith('agents.implementer: unknown key "comand"')),
    problems.join('\n'),
  );
  assert.ok(
    problems.some((p) => p.startsWith('dispatch: unknown key "batchsize"')),
    problems.join('\n'),
  );
  assert.ok(
    problems.some((p) => p.startsWith('(top level): unknown keys "extra", "heartbeat"')),
    problems.join('\n'),
  );
});

test('a config that is not an object is reported, not crashed on', () => {
  for (const raw of [null, [], 'text', 3]) {
    const error = thrownBy(() => compileConfig(raw, '/srv/factory.config.json'));
    assert.equal(error.code, 'FACTORY_CONFIG_INVALID');
    assert.match((error.details.problems as string[])[0]!, /^\(top level\): expected object, got /);
  }
});

test('invalid JSON names the file, the line and the column (as for an issue file), quotes none of its text, and gives a hint about syntax, not keys', () => {
  const dir = tempFolder();
  const path = writeConfig(dir, '{\n  "mount": { "root": "./issues" },\n  "token": "s3cret",\n}\n');
  const error = thrownBy(() => loadConfig(path));
  assert.equal(error.code, 'FACTORY_CONFIG_INVALID');
  assert.equal(error.message, `${path} is not valid JSON at line 4 column 1`);
  assert.doesNotMatch(error.message, /s3cret|position/);
  assert.doesNotMatch(error.hint, /Fix each listed key/);
  assert.match(error.hint, /line and column/);
});

test('a missing file is FACTORY_CONFIG_NOT_FOUND naming the path', () => {
  const dir = tempFolder();
  const path = join(dir, 'nope.json');
  const error = thrownBy(() => loadConfig(path));
  assert.ok(isFactoryError(error, 'FACTORY_CONFIG_NOT_FOUND'));
  assert.equal(error.exitCode, 2);
  assert.ok(error.message.includes(path));
  assert.match(error.hint, /factory init/);
});

test('loadConfig reads a valid file and validates it like compileConfig', () => {
  const dir = tempFolder();
  const path = writeConfig(dir, { ...MINIMAL, dispatch: { batchSize: 3, teamMode: 'parallel' } });
  const config = loadConfig(path);
  assert.equal(config.dispatch.batchSize, 3);
  assert.equal(config.dispatch.teamMode, 'parallel');
  assert.equal(config.mount.root, join(dir, 'issues'));
});

test('a config saved with a UTF-8 byte order mark (as some Windows editors do) loads like one without', () => {
  const dir = tempFolder();
  const path = writeConfig(dir, `\uFEFF${JSON.stringify({ ...MINIMAL, dispatch: { batchSize: 2 } })}`);
  assert.equal(loadConfig(path).dispatch.batchSize, 2);
});

test('a config file that exists but cannot be read is FACTORY_CONFIG_UNREADABLE, not "not found"', () => {
  const dir = tempFolder();
  const error = thrownBy(() => loadConfig(dir)); // a folder: reading it fails with EISDIR
  assert.ok(isFactoryError(error, 'FACTORY_CONFIG_UNREADABLE'), String(error));
  assert.equal(error.exitCode, 2);
  assert.ok(error.message.includes(dir));
});

test('source.github.identity takes a user or App bot login and refuses anything else', () => {
  const withIdentity = (identity: string) => ({ ...MINIMAL, source: { kind: 'github', github: { repos: ['acme/api'], identity } } });
  assert.equal(compileConfig(withIdentity('factory-bot'), '/srv/factory.config.json').source.github?.identity, 'factory-bot');
  assert.equal(compileConfig(withIdentity('acme-factory[bot]'), '/srv/factory.config.json').source.github?.identity, 'acme-factory[bot]');
  for (const bad of ['', 'two words', '-leading', 'a/b']) {
    const error = thrownBy(() => compileConfig(withIdentity(bad), '/srv/factory.config.json'));
    assert.equal(error.code, 'FACTORY_CONFIG_INVALID');
    assert.match(String(error.details.problems), /source\.github\.identity/);
  }
});

test("shepherd.trustedReviewers: owners, members and collaborators by default; associations from GitHub's list, logins as GitHub spells them", () => {
  const withTrust = (trustedReviewers?: unknown) => ({ ...MINIMAL, shepherd: trustedReviewers === undefined ? {} : { trustedReviewers } });
  assert.deepEqual(compileConfig(withTrust(), '/srv/factory.config.json').shepherd.trustedReviewers, { associations: ['OWNER', 'MEMBER', 'COLLABORATOR'], logins: [] });
  assert.deepEqual(compileConfig(withTrust({ associations: ['OWNER'], logins: ['renovate[bot]'] }), '/srv/factory.config.json').shepherd.trustedReviewers, {
    associations: ['OWNER'],
    logins: ['renovate[bot]'],
  });
  for (const bad of [{ associations: ['ANYONE'] }, { logins: ['two words'] }, { users: ['x'] }]) {
    const error = thrownBy(() => compileConfig(withTrust(bad), '/srv/factory.config.json'));
    assert.equal(error.code, 'FACTORY_CONFIG_INVALID');
    assert.match(String(error.details.problems), /shepherd\.trustedReviewers/);
  }
});

test("a repo URL carrying a credential is refused (a worker's clone would keep it in .git/config, readable by agents); SSH users and plain URLs pass", () => {
  const secret = 'ghp_s3cretTOKEN';
  for (const repos of [
    { default: `https://${secret}@github.com/acme/api.git` },
    { byLabel: { api: `https://bot:${secret}@git.internal/acme/api.git` } },
    { rules: [{ keyword: 'api', repo: `ssh://deploy:${secret}@git.internal/acme/api.git` }] },
  ]) {
    const error = thrownBy(() => compileConfig({ ...MINIMAL, repos }, '/srv/factory.config.json'));
    assert.equal(error.code, 'FACTORY_CONFIG_INVALID');
    assert.match(error.message, /expected a repo URL without credentials/);
    assert.match(error.message, /^\/srv\/factory\.config\.json has 1 problem:\n {2}repos\./);
    assert.ok(!error.message.includes(secret), `the error does not print the credential: ${error.message}`);
    assert.match(error.message, /\/\/\*\*\*@/, 'the URL is shown with its credential masked');
  }
  for (const repo of ['https://github.com/acme/api.git', 'ssh://git@git.internal/acme/api.git', 'git@github.com:acme/api.git', './repo', '/srv/repos/api']) {
    assert.doesNotThrow(() => compileConfig({ ...MINIMAL, repos: { default: repo } }, '/srv/factory.config.json'), repo);
  }
});

test('a remote repo URL is kept as written, while a path is anchored at the config folder', () => {
  for (const url of ['https://github.com/acme/api.git', 'http://127.0.0.1:8080/api.git', 'ssh://git@git.internal/acme/api.git', 'git@github.com:acme/api.git']) {
    const config = compileConfig({ ...MINIMAL, repos: { default: url, byLabel: { api: url }, rules: [{ keyword: 'api', repo: url }] } }, '/srv/factory.config.json');
    assert.equal(config.repos.default, url);
    assert.equal(config.repos.byLabel.api, url);
    assert.equal(config.repos.rules[0]!.repo, url);
  }
  assert.equal(compileConfig({ ...MINIMAL, repos: { default: './repo' } }, '/srv/factory.config.json').repos.default, '/srv/repo');
});

test('a command written as one string and a number in quotes get a hint that says how to write them', () => {
  const error = thrownBy(() =>
    compileConfig(
      {
        mount: { root: './issues' },
        agents: { implementer: { command: 'claude -p  {{prompt}}' } },
        http: { port: '7420' },
        dispatch: { batchSize: 'two' },
        source: { github: { repos: 'acme/api' } },
      },
      '/srv/factory.config.json',
    ),
  );
  const problems = error.details.problems as string[];
  assert.ok(problems.includes('agents.implementer.command: expected array, got "claude -p  {{prompt}}" (write it as an array: ["claude", "-p", "{{prompt}}"])'), problems.join('\n'));
  assert.ok(problems.includes('http.port: expected number, got "7420" (write 7420 without quotes)'), problems.join('\n'));
  assert.ok(problems.includes('dispatch.batchSize: expected number, got "two"'), 'no hint for a word: there is no number to suggest');
  assert.ok(!problems.some((problem) => problem.includes('write it as an array') && !problem.includes('.command:')), 'only commands are split on spaces');
});
