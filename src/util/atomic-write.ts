import { mkdir, open, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { filesystemError, type PathUse } from '../errors.js';

/**
 * Writes a file so readers see either the old or the new content, never a
 * torn mix: temp file in the same folder, fsync, rename over the target.
 * The folder is created when missing.
 */
export async function writeFileAtomic(path: string, content: string, use: Omit<PathUse, 'path' | 'access'> = { action: 'write' }): Promise<void> {
  try {
    await writeAtomically(path, content);
  } catch (error) {
    // A folder the user made unwritable, a full disk or a path through a file: one coded line naming the path.
    throw filesystemError(error, { path, access: 'write', ...use }) ?? error;
  }
}

async function writeAtomically(path: string, content: string): Promise<void> {
  const folder = dirname(path);
  await mkdir(folder, { recursive: true });
  const temp = join(folder, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'w', 0o644);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

export function writeJsonAtomic(path: string, value: unknown, use?: Omit<PathUse, 'path' | 'access'>): Promise<void> {
  return writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, use);
}
