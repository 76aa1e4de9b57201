import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { compileConfig } from '../../src/config/load.js';
import { isFactoryError } from '../../src/errors.js';
import { createHarness } from '../support/session-harness.js';

const BASE = { mount: { root: './issues' }, repos: { default: '/repos/main' } };
const compile = (raw: Record<string, unknown>) => compileConfig({ ...BASE, ...raw }, join('/configs', 'factory.config.json'));
const shape = (raw: Record<string, unknown>) => compile(raw).teamStages.map((stage) => stage.agents.map((a) => a.slot));

test('the built-in team: implementer then reviewer (sequential), both at once (parallel), or the implementer alone', () => {
  const agents = { implementer: { command: ['impl'] }, reviewer: { command: ['rev'] } };
  assert.deepEqual(shape({ agents }), [['implementer'], ['reviewer']]);
  assert.deepEqual(shape({ agents, dispatch: { teamMode: 'parallel' } }), [['implementer', 'reviewer']]);
  assert.deepEqual(shape({ agents: { implementer: agents.implementer } }), [['implementer']]);
  assert.deepEqual(compile({ agents }).teamStages[1]!.agents[0]!.agent.command, ['rev'], 'each stage agent carries its role’s command');
});

test('team.stages lists roles per stage; a role named twice gets its own slot each time', () => {
  const config = compile({
    agents: { implementer: { command: ['impl'] }, reviewer: { command: ['rev'] }, fixer: { command: ['./bin/fix'], instruction: 'Fix what the reviewers found.' } },
    team: { stages: [['implementer'], ['reviewer', 'reviewer'], ['fixer']] },
  });
  assert.deepEqual(
    config.teamStages.map((stage) => stage.agents.map((a) => [a.role, a.slot])),
    [
      [['implementer', 'implementer']],
      [
        ['reviewer', 'reviewer'],
        ['reviewer', 'reviewer-2'],
      ],
      [['fixer', 'fixer']],
    ],
  );
  assert.deepEqual(config.teamStages[2]!.agents[0]!.agent.command, ['/configs/bin/fix'], 'extra roles get the same path resolution');
});

test('a stage naming a role with no agent, or an agent no stage uses, is a config error naming the key', () => {
  const unknown = (() => {
    try {
      compile({ agents: { implementer: { command: ['impl'] } }, team: { stages: [['implementer'], ['reviwer']] } });
    } catch (error) {
      return error;
    }
  })();
  assert.ok(isFactoryError(unknown, 'FACTORY_CONFIG_INVALID'));
  assert.deepEqual(unknown.details.problems, ['team.stages.1.0: expected a role configured under agents (implementer), got "reviwer"']);

  const unused = (() => {
    try {
      compile({ agents: { implementer: { command: ['impl'] }, reveiwer: { command: ['rev'] } } });
    } catch (error) {
      return error;
    }
  })();
  assert.ok(isFactoryError(unused, 'FACTORY_CONFIG_INVALID'));
  assert.match((unused.details.problems as string[])[0]!, /^agents\.reveiwer: expected a role used by team\.stages; "reveiwer" is in no stage/);
});

test('a three-stage team runs its stages in order, each after the one before succeeded, with one agent name and log per slot', async () => {
  const h = createHarness({
    agents: { implementer: { command: ['impl'] }, reviewer: { command: ['rev', '{{role}}'] }, fixer: { command: ['fix', '{{role}}'] } },
    team: { stages: [['implementer'], ['reviewer', 'reviewer'], ['fixer']] },
  });
  h.source.put({ key: 'FAC-1', title: 'three stages', labels: ['factory'] });
  const session = h.newSession();
  await session.open();
  await session.startLive();
  await h.settle();
  const spawned = () => h.fleet.agents.map((a) => a.spec.agentName);
  assert.deepEqual(spawned(), ['FAC-1-implementer']);
  h.fleet.agents[0]!.exit(0);
  await h.settle();
  assert.deepEqual(spawned(), ['FAC-1-implementer', 'FAC-1-reviewer', 'FAC-1-reviewer-2'], 'the second stage starts both reviewers at once');
  assert.deepEqual(
    h.fleet.agents.slice(1).map((a) => a.spec.command),
    [
      ['rev', 'reviewer'],
      ['rev', 'reviewer'],
    ],
  );
  h.fleet.agents[1]!.exit(0);
  await h.settle();
  assert.deepEqual(spawned().length, 3, 'the fixer waits for the whole stage');
  h.fleet.agents[2]!.exit(0);
  await h.settle();
  assert.deepEqual(spawned().at(-1), 'FAC-1-fixer');
  assert.match(h.fleet.agents[3]!.spec.logPath, /FAC-1-e1-a1-[0-9a-f]+-fixer\.log$/);
  h.fleet.agents[3]!.exit(0);
  await h.settle();
  const outcome = h.source.writeBacks[0]!.outcome;
  assert.equal(outcome.reason, 'succeeded');
  assert.deepEqual(
    outcome.agents.map((a) => a.agentName),
    ['FAC-1-implementer', 'FAC-1-reviewer', 'FAC-1-reviewer-2', 'FAC-1-fixer'],
  );
  await session.close();
});

test('a failed agent of a stage stops its siblings and the later stages never start', async () => {
  const h = createHarness({
    agents: { implementer: { command: ['impl'] }, reviewer: { command: ['rev'] }, fixer: { command: ['fix'] } },
    team: { stages: [['implementer', 'reviewer'], ['fixer']] },
  });
  h.source.put({ key: 'FAC-2', title: 'fails', labels: ['factory'] });
  const session = h.newSession();
  await session.open();
  await session.startLive();
  await h.settle();
  h.fleet.find('FAC-2', 'implementer')!.exit(4);
  await h.settle();
  assert.equal(h.fleet.find('FAC-2', 'reviewer')!.stopRequests > 0, true, 'the sibling was stopped');
  assert.equal(h.fleet.find('FAC-2', 'fixer'), undefined, 'the next stage never started');
  assert.equal(session.dispatcher.claim('FAC-2')?.status, 'retry-wait');
  await session.close();
});
