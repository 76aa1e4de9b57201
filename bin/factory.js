#!/usr/bin/env node
// Runs the compiled CLI when it exists (after `npm run build`, which `npm ci` runs via
// `prepare`), else the TypeScript sources through tsx, so a fresh clone works either way.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = join(root, 'dist', 'cli', 'main.js');
process.env.FACTORY_CLI_ENTRY = '1';
if (existsSync(compiled)) {
  await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(root, 'src', 'cli', 'main.ts')).href);
}
