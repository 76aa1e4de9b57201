/**
 * git's rules for branch names, as `git check-ref-format --branch` applies
 * them (git-check-ref-format(1)), so a name that git would refuse is refused
 * where it enters (an issue key, a branch prefix), not later by
 * `git worktree add`, where a retry cannot help. test/unit/git-ref-format.test.ts
 * checks this against git itself. The `@{-N}` shorthand, which only git can
 * expand, is refused like any other `@{`.
 */

/** Why `name` cannot be a git branch name, or undefined when it can. Names the rule, never quotes the name. */
export function describeBranchNameProblem(name: string): string | undefined {
  if (name === '') return 'it is empty';
  if (name.startsWith('-')) return 'it starts with "-"';
  if (name === 'HEAD') return 'it is "HEAD"';
  // git checks the full ref, refs/heads/<name>, so "@" alone and names of one part are fine here.
  const bad = [...name].findIndex(isForbiddenCharacter);
  if (bad !== -1) return `character ${bad + 1} is a space, a control character or one of ~ ^ : ? * [ \\`;
  if (name.includes('..')) return 'it contains ".."';
  if (name.includes('@{')) return 'it contains "@{"';
  const parts = name.split('/');
  if (parts.some((part) => part === '')) return 'it has an empty part (a leading, trailing or double "/")';
  if (parts.some((part) => part.startsWith('.'))) return 'a part starts with "."';
  if (parts.some((part) => part.endsWith('.lock'))) return 'a part ends with ".lock"';
  if (name.endsWith('.')) return 'it ends with "."';
  return undefined;
}

function isForbiddenCharacter(char: string): boolean {
  const code = char.codePointAt(0) ?? 0;
  return code < 0x20 || code === 0x7f || ' ~^:?*[\\'.includes(char);
}
