#!/usr/bin/env node
// Chooses what `factory` runs:
// - an installed package (its folder lies under node_modules, or it has no src/): the compiled
//   code in dist/, always. The published package ships dist/ only, and tsx is a devDependency.
// - a development checkout: dist/ when it is at least as new as every source file (`npm ci`
//   builds it through `prepare`), otherwise the TypeScript sources through tsx, so an edited
//   checkout never runs stale code.
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(realpathSync(fileURLToPath(import.meta.url))), '..');
const compiled = join(root, 'dist', 'cli', 'main.js');
const sources = join(root, 'src');
const sourceEntry = join(sources, 'cli', 'main.ts');

function newestSourceMtimeMs(folder) {
  let newest = 0;
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSourceMtimeMs(path) : statSync(path).mtimeMs);
  }
  return newest;
}

const installed = root.split(sep).includes('node_modules') || !existsSync(sourceEntry);
if (installed && !existsSync(compiled)) {
  process.stderr.write(`factory: this installation has no compiled code (${compiled} is missing); reinstall the package\n`);
  process.exit(70);
}
// Node 22.1+ keeps the compiled code of every module on disk, which saves part of the start of each
// command; Node 20 has no compile cache (the call is absent there), and a cache that cannot be
// written only leaves it off.
nodeModule.enableCompileCache?.();
const useCompiled = installed || (existsSync(compiled) && statSync(compiled).mtimeMs >= newestSourceMtimeMs(sources));
const { runCli } = useCompiled
  ? await import(pathToFileURL(compiled).href)
  : await (async () => {
      const { register } = await import('tsx/esm/api');
      register();
      return import(pathToFileURL(sourceEntry).href);
    })();
process.exitCode = await runCli(process.argv.slice(2));
