import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileConfig } from '../../src/config/load.js';
import type { Issue } from '../../src/domain/issue.js';
import { triageIssue, type TriageRules } from '../../src/domain/triage.js';
import { isFactoryError } from '../../src/errors.js';

/** Labels compare without case, as GitHub and Linear compare them. */

const issue = (labels: string[]): Issue => ({ key: 'FAC-1', title: 'T', body: '', labels, state: 'ready', createdAtMs: 0, revision: 'r', location: '/m/FAC-1.json' });
const rules = (overrides: Partial<TriageRules> = {}): TriageRules => ({ requireLabel: 'factory', titlePrefix: '', repos: { default: '/repos/main', byLabel: {}, rules: [] }, ...overrides });

describe('labels in triage', () => {
  it('match safety.requireLabel whatever their case', () => {
    assert.equal(triageIssue(issue(['Factory']), rules()).verdict, 'dispatch');
    assert.equal(triageIssue(issue(['FACTORY']), rules()).verdict, 'dispatch');
    assert.equal(triageIssue(issue(['factory']), rules({ requireLabel: 'Factory' })).verdict, 'dispatch');
    assert.deepEqual(triageIssue(issue(['factory-ish']), rules()), { verdict: 'skip', reason: 'missing the required label "factory"' });
  });

  it('route by repos.byLabel whatever their case', () => {
    const byLabel = { API: '/repos/api', web: '/repos/web' };
    assert.deepEqual(triageIssue(issue(['factory', 'api']), rules({ repos: { byLabel, rules: [] } })), { verdict: 'dispatch', repo: '/repos/api', routedBy: 'label "api"' });
    assert.deepEqual(triageIssue(issue(['Factory', 'WEB']), rules({ repos: { byLabel, rules: [] } })), { verdict: 'dispatch', repo: '/repos/web', routedBy: 'label "WEB"' });
  });

  it('a config naming one label twice in different case is refused', () => {
    const raw = { mount: { root: './issues' }, agents: { implementer: { command: ['agent'] } }, repos: { byLabel: { API: './a', api: './b' } } };
    assert.throws(
      () => compileConfig(raw, '/srv/factory.config.json'),
      (error) => isFactoryError(error, 'FACTORY_CONFIG_INVALID') && /repos\.byLabel: .*"API" and "api" are the same label/.test(error.message),
    );
  });
});
