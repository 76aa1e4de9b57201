import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileConfig } from '../../src/config/load.js';
import { DEFAULT_ENV_PASSTHROUGH, envPassthroughFor, passThroughEnvironment } from '../../src/domain/env-passthrough.js';
import { isFactoryError } from '../../src/errors.js';

describe('envPassthrough', () => {
  const daemon = { PATH: '/bin', HOME: '/h', LC_ALL: 'C', LC_TIME: 'C', LCX: 'no', TERM: 'xterm', SECRET_TOKEN: 's', GIT_DIR: '/g', AWS_REGION: 'eu', AWS_SECRET: 'x', EMPTY: undefined };

  it('keeps only allowlisted names, with NAME_* prefix globs', () => {
    assert.deepEqual(passThroughEnvironment(daemon, envPassthroughFor([])), { PATH: '/bin', HOME: '/h', LC_ALL: 'C', LC_TIME: 'C', TERM: 'xterm' });
    assert.deepEqual(passThroughEnvironment(daemon, envPassthroughFor(['AWS_REGION'])), { PATH: '/bin', HOME: '/h', LC_ALL: 'C', LC_TIME: 'C', TERM: 'xterm', AWS_REGION: 'eu' });
    assert.deepEqual(passThroughEnvironment(daemon, ['AWS_*']), { AWS_REGION: 'eu', AWS_SECRET: 'x' });
    assert.deepEqual([...DEFAULT_ENV_PASSTHROUGH], ['PATH', 'HOME', 'LANG', 'LC_*', 'TERM', 'TMPDIR', 'USER', 'SHELL']);
  });

  it('is validated and defaulted by the config for every role', () => {
    const config = compileConfig(
      { mount: { root: './i' }, agents: { implementer: { command: ['a'], envPassthrough: ['ANTHROPIC_API_KEY', 'OPENAI_*'] }, reviewer: { command: ['b'] } } },
      '/srv/f.json',
    );
    assert.deepEqual(config.agents.implementer.envPassthrough, ['ANTHROPIC_API_KEY', 'OPENAI_*']);
    assert.deepEqual(config.agents.reviewer?.envPassthrough, []);
    for (const bad of ['A B', '*', 'A*B', '1X', '']) {
      assert.throws(
        () => compileConfig({ mount: { root: './i' }, agents: { implementer: { command: ['a'], envPassthrough: [bad] } } }, '/srv/f.json'),
        (error) => isFactoryError(error, 'FACTORY_CONFIG_INVALID') && error.message.includes('agents.implementer.envPassthrough.0'),
        bad,
      );
    }
  });
});
