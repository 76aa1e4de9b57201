import type { Verb } from '../verb.js';

export const initVerb: Verb = {
  name: 'init',
  usage: 'factory init [--config PATH] [--force]',
  summary: 'write a starter config and an example issue for the checkout you are in',
  details: [
    'Writes factory.config.json (routing every issue to this checkout, with Claude Code as implementer',
    'and Codex as reviewer) and issues/EXAMPLE-1.json in state "draft". Edit, then run',
    '`factory run-once --dry-run`. Refuses to overwrite an existing config unless --force.',
    'Exit codes: 0 written, 2 the config exists (without --force).',
  ].join('\n'),
  flags: [{ name: 'force', takesValue: false, description: 'overwrite an existing config' }],
  load: () => import('./init-run.js'),
};
