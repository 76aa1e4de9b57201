import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { filesystemError, type FactoryError } from '../errors.js';

/** System calls that only look: refused, they mean a path cannot be read, not written. */
const READ_SYSCALLS = new Set(['stat', 'lstat', 'fstat', 'access', 'scandir', 'opendir', 'read', 'readlink', 'realpath', 'watch']);

/** What each system call was doing, said the way the error line says it (`cannot <action> <path>`). */
const ACTION_OF_SYSCALL: Readonly<Record<string, string>> = {
  mkdir: 'create the folder',
  open: 'open',
  rename: 'replace',
  link: 'create',
  symlink: 'create',
  unlink: 'remove',
  rmdir: 'remove',
  rm: 'remove',
  write: 'write',
  copyfile: 'copy to',
  chmod: 'change the mode of',
  utime: 'touch',
  scandir: 'list the folder',
  opendir: 'list the folder',
  read: 'read',
  readlink: 'read the link',
};

/**
 * The boundary's last word on an error that is not a FactoryError: a
 * filesystem error the user caused (a mode, an owner, a read-only mount, a
 * full disk, a path through a file, a missing parent folder) becomes a coded
 * exit-2 line naming the path and the operation, wherever it was thrown. The
 * places that know what a path is for (the state database, the heartbeat,
 * the registry, the locks, the logs) name it better before it gets here;
 * anything left undefined is a bug and keeps its stack.
 */
export function codedFilesystemError(error: unknown): FactoryError | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { path, syscall } = error as { path?: unknown; syscall?: unknown };
  const call = typeof syscall === 'string' ? syscall : '';
  const target = typeof path === 'string' ? path : undefined;
  const missingParent = target !== undefined && !existsSync(dirname(target));
  return filesystemError(
    error,
    { path: target ?? '(a file whose path the system did not report)', action: ACTION_OF_SYSCALL[call] ?? (call || 'use'), access: READ_SYSCALLS.has(call) ? 'read' : 'write' },
    { missingParent },
  );
}
