import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './sandbox.js';

/** Shared by the package-install test and the CLI start bench: this checkout as a user installs it. */

export interface PackReport {
  readonly filename: string;
  readonly size: number;
  readonly unpackedSize: number;
  readonly files: readonly { path: string }[];
}

export interface InstalledPackage {
  readonly pack: PackReport;
  /** `npm install --global --prefix` target: `bin/factory` and `lib/node_modules/factory`. */
  readonly prefix: string;
  readonly packageDir: string;
  readonly bin: string;
  readonly installMs: number;
}

function npm(args: readonly string[], cwd: string): string {
  const result = spawnSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  if (result.status !== 0) throw new Error(`npm ${args.join(' ')} exited ${result.status}:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

/** `npm pack` of this checkout into `scratch`; it runs `prepare` (the build) first, as publishing does. */
export function packCheckout(scratch: string): PackReport {
  const [pack] = JSON.parse(npm(['pack', '--json', '--pack-destination', scratch], REPO_ROOT)) as PackReport[];
  return pack!;
}

/** A global install of the tarball into `scratch/prefix`, without devDependencies. */
export function installTarball(scratch: string, pack: PackReport): InstalledPackage {
  const prefix = join(scratch, 'prefix');
  const startedAt = Date.now();
  npm(['install', '--global', '--prefix', prefix, '--omit=dev', '--no-audit', '--no-fund', join(scratch, pack.filename)], scratch);
  return { pack, prefix, packageDir: join(prefix, 'lib', 'node_modules', 'factory'), bin: join(prefix, 'bin', 'factory'), installMs: Date.now() - startedAt };
}
