// `npm run build` (also run by `npm ci` and `npm pack` through `prepare`): compiles src/ into a
// fresh dist/ and copies the files the compiled code reads next to it, so the published package
// runs from dist/ alone. dist/ is emptied first: a module renamed or deleted in src/ must not
// linger in the package.
import { spawnSync } from 'node:child_process';
import { copyFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Non-TypeScript files the compiled code loads, relative to src/ (and to dist/). */
const ASSETS = ['http/dashboard.html'];

rmSync(join(root, 'dist'), { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (compiled.status !== 0) process.exit(compiled.status ?? 1);
for (const asset of ASSETS) copyFileSync(join(root, 'src', asset), join(root, 'dist', asset));
