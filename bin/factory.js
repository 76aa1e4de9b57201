#!/usr/bin/env node
// Runs the compiled CLI (dist/, built by `npm run build`, which `npm ci` runs via
// `prepare`) when it is at least as new as the sources; otherwise runs the
// TypeScript sources through tsx, so an edited checkout never runs stale code.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = join(root, 'dist', 'cli', 'main.js');

function newestSourceMtimeMs(folder) {
  let newest = 0;
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSourceMtimeMs(path) : statSync(path).mtimeMs);
  }
  return newest;
}

const sources = join(root, 'src');
const useCompiled = existsSync(compiled) && (!existsSync(sources) || statSync(compiled).mtimeMs >= newestSourceMtimeMs(sources));
const { runCli } = useCompiled
  ? await import(pathToFileURL(compiled).href)
  : await (async () => {
      const { register } = await import('tsx/esm/api');
      register();
      return import(pathToFileURL(join(sources, 'cli', 'main.ts')).href);
    })();
process.exitCode = await runCli(process.argv.slice(2));
