/**
 * Builders for the JSON objects the fake GitHub sends, shaped like the real
 * API's (every field GitHub's OpenAPI description requires). The fake validates
 * each response against that description, so a builder that drifts fails tests.
 */

export interface FakeUser {
  readonly login: string;
  readonly id: number;
  readonly type: 'User' | 'Bot' | 'Organization';
}

export function userObject(base: string, user: FakeUser): Record<string, unknown> {
  // A bot's login has brackets (`my-app[bot]`), escaped in its URLs as GitHub does.
  const path = encodeURIComponent(user.login);
  const url = `${base}/users/${path}`;
  return {
    login: user.login,
    id: user.id,
    node_id: `U_${user.id}`,
    avatar_url: `${base}/avatars/${path}`,
    gravatar_id: '',
    url,
    html_url: `${base}/${path}`,
    followers_url: `${url}/followers`,
    following_url: `${url}/following{/other_user}`,
    gists_url: `${url}/gists{/gist_id}`,
    starred_url: `${url}/starred{/owner}{/repo}`,
    subscriptions_url: `${url}/subscriptions`,
    organizations_url: `${url}/orgs`,
    repos_url: `${url}/repos`,
    events_url: `${url}/events{/privacy}`,
    received_events_url: `${url}/received_events`,
    type: user.type,
    site_admin: false,
  };
}

const REPOSITORY_URL_FIELDS: Record<string, string> = {
  archive_url: '/{archive_format}{/ref}',
  assignees_url: '/assignees{/user}',
  blobs_url: '/git/blobs{/sha}',
  branches_url: '/branches{/branch}',
  collaborators_url: '/collaborators{/collaborator}',
  comments_url: '/comments{/number}',
  commits_url: '/commits{/sha}',
  compare_url: '/compare/{base}...{head}',
  contents_url: '/contents/{+path}',
  contributors_url: '/contributors',
  deployments_url: '/deployments',
  downloads_url: '/downloads',
  events_url: '/events',
  forks_url: '/forks',
  git_commits_url: '/git/commits{/sha}',
  git_refs_url: '/git/refs{/sha}',
  git_tags_url: '/git/tags{/sha}',
  hooks_url: '/hooks',
  issue_comment_url: '/issues/comments{/number}',
  issue_events_url: '/issues/events{/number}',
  issues_url: '/issues{/number}',
  keys_url: '/keys{/key_id}',
  labels_url: '/labels{/name}',
  languages_url: '/languages',
  merges_url: '/merges',
  milestones_url: '/milestones{/number}',
  notifications_url: '/notifications{?since,all,participating}',
  pulls_url: '/pulls{/number}',
  releases_url: '/releases{/id}',
  stargazers_url: '/stargazers',
  statuses_url: '/statuses/{sha}',
  subscribers_url: '/subscribers',
  subscription_url: '/subscription',
  tags_url: '/tags',
  teams_url: '/teams',
  trees_url: '/git/trees{/sha}',
};

export interface FakeRepoIdentity {
  readonly owner: FakeUser;
  readonly name: string;
  readonly id: number;
  readonly createdAt: string;
}

/** The full `repository` object (pull request heads and bases embed it). */
export function repositoryObject(base: string, repo: FakeRepoIdentity): Record<string, unknown> {
  const fullName = `${repo.owner.login}/${repo.name}`;
  const url = `${base}/repos/${fullName}`;
  const urls = Object.fromEntries(Object.entries(REPOSITORY_URL_FIELDS).map(([field, suffix]) => [field, `${url}${suffix}`]));
  return {
    id: repo.id,
    node_id: `R_${repo.id}`,
    name: repo.name,
    full_name: fullName,
    license: null,
    forks: 0,
    owner: userObject(base, repo.owner),
    private: true,
    html_url: `${base}/${fullName}`,
    description: null,
    fork: false,
    url,
    ...urls,
    git_url: `git://fake.invalid/${fullName}.git`,
    ssh_url: `git@fake.invalid:${fullName}.git`,
    clone_url: `${base}/${fullName}.git`,
    svn_url: `${base}/${fullName}`,
    mirror_url: null,
    homepage: null,
    language: null,
    forks_count: 0,
    stargazers_count: 0,
    watchers_count: 0,
    watchers: 0,
    size: 0,
    default_branch: 'main',
    open_issues_count: 0,
    open_issues: 0,
    has_issues: true,
    has_projects: false,
    has_wiki: false,
    has_pages: false,
    has_downloads: false,
    archived: false,
    disabled: false,
    pushed_at: repo.createdAt,
    created_at: repo.createdAt,
    updated_at: repo.createdAt,
  };
}

export interface FakeLabel {
  readonly id: number;
  readonly name: string;
  readonly color: string;
  readonly description: string | null;
}

export function labelObject(base: string, fullName: string, label: FakeLabel): Record<string, unknown> {
  return {
    id: label.id,
    node_id: `LA_${label.id}`,
    url: `${base}/repos/${fullName}/labels/${encodeURIComponent(label.name)}`,
    name: label.name,
    description: label.description,
    color: label.color,
    default: false,
  };
}

export interface FakeIssue {
  readonly id: number;
  readonly number: number;
  title: string;
  body: string | null;
  state: 'open' | 'closed';
  /** Label ids, in the order they were added. */
  labelIds: number[];
  readonly user: FakeUser;
  readonly createdAt: string;
  updatedAt: string;
  closedAt: string | null;
  comments: number;
  /** Set for pull requests, which GitHub also lists as issues. */
  readonly pullRequest: boolean;
}

export function issueObject(base: string, fullName: string, issue: FakeIssue, labels: readonly FakeLabel[]): Record<string, unknown> {
  const url = `${base}/repos/${fullName}/issues/${issue.number}`;
  const kind = issue.pullRequest ? 'pull' : 'issues';
  return {
    id: issue.id,
    node_id: `I_${issue.id}`,
    url,
    repository_url: `${base}/repos/${fullName}`,
    labels_url: `${url}/labels{/name}`,
    comments_url: `${url}/comments`,
    events_url: `${url}/events`,
    html_url: `${base}/${fullName}/${kind}/${issue.number}`,
    number: issue.number,
    state: issue.state,
    title: issue.title,
    body: issue.body,
    user: userObject(base, issue.user),
    labels: labels.map((label) => labelObject(base, fullName, label)),
    assignee: null,
    assignees: [],
    milestone: null,
    locked: false,
    comments: issue.comments,
    closed_at: issue.closedAt,
    created_at: issue.createdAt,
    updated_at: issue.updatedAt,
    author_association: 'MEMBER',
    ...(issue.pullRequest
      ? {
          pull_request: {
            url: `${base}/repos/${fullName}/pulls/${issue.number}`,
            html_url: `${base}/${fullName}/pull/${issue.number}`,
            diff_url: `${base}/${fullName}/pull/${issue.number}.diff`,
            patch_url: `${base}/${fullName}/pull/${issue.number}.patch`,
            merged_at: null,
          },
        }
      : {}),
  };
}

export interface FakeComment {
  readonly id: number;
  readonly issueNumber: number;
  body: string;
  readonly user: FakeUser;
  readonly createdAt: string;
  updatedAt: string;
}

export function commentObject(base: string, fullName: string, comment: FakeComment): Record<string, unknown> {
  return {
    id: comment.id,
    node_id: `IC_${comment.id}`,
    url: `${base}/repos/${fullName}/issues/comments/${comment.id}`,
    html_url: `${base}/${fullName}/issues/${comment.issueNumber}#issuecomment-${comment.id}`,
    issue_url: `${base}/repos/${fullName}/issues/${comment.issueNumber}`,
    body: comment.body,
    user: userObject(base, comment.user),
    created_at: comment.createdAt,
    updated_at: comment.updatedAt,
    author_association: 'MEMBER',
  };
}

export interface FakePull {
  readonly number: number;
  readonly id: number;
  title: string;
  body: string | null;
  state: 'open' | 'closed';
  draft: boolean;
  readonly head: { readonly ref: string; sha: string; readonly owner: string; readonly repo?: FakeRepoIdentity };
  readonly base: { readonly ref: string };
  readonly user: FakeUser;
  readonly createdAt: string;
  updatedAt: string;
  mergedAt?: string | null;
}

function pullCommon(base: string, repo: FakeRepoIdentity, pull: FakePull, labels: readonly FakeLabel[]): Record<string, unknown> {
  const fullName = `${repo.owner.login}/${repo.name}`;
  const api = `${base}/repos/${fullName}`;
  const url = `${api}/pulls/${pull.number}`;
  const html = `${base}/${fullName}/pull/${pull.number}`;
  const repository = repositoryObject(base, repo);
  const owner = userObject(base, repo.owner);
  return {
    url,
    id: pull.id,
    node_id: `PR_${pull.id}`,
    html_url: html,
    diff_url: `${html}.diff`,
    patch_url: `${html}.patch`,
    issue_url: `${api}/issues/${pull.number}`,
    commits_url: `${url}/commits`,
    review_comments_url: `${url}/comments`,
    review_comment_url: `${api}/pulls/comments{/number}`,
    comments_url: `${api}/issues/${pull.number}/comments`,
    statuses_url: `${api}/statuses/${pull.head.sha}`,
    number: pull.number,
    state: pull.state,
    locked: false,
    title: pull.title,
    user: userObject(base, pull.user),
    body: pull.body,
    labels: labels.map((label) => labelObject(base, fullName, label)),
    milestone: null,
    created_at: pull.createdAt,
    updated_at: pull.updatedAt,
    closed_at: pull.mergedAt ?? null,
    merged_at: pull.mergedAt ?? null,
    merge_commit_sha: null,
    assignee: null,
    assignees: [],
    requested_reviewers: [],
    requested_teams: [],
    // A pull request from a fork has its head in the fork, owned by whoever forked.
    head: {
      label: `${pull.head.owner}:${pull.head.ref}`,
      ref: pull.head.ref,
      repo: pull.head.repo === undefined ? repository : { ...repositoryObject(base, pull.head.repo), fork: true },
      sha: pull.head.sha,
      user: pull.head.repo === undefined ? owner : userObject(base, pull.head.repo.owner),
    },
    base: { label: `${repo.owner.login}:${pull.base.ref}`, ref: pull.base.ref, repo: repository, sha: '0'.repeat(40), user: owner },
    _links: {
      self: { href: url },
      html: { href: html },
      issue: { href: `${api}/issues/${pull.number}` },
      comments: { href: `${api}/issues/${pull.number}/comments` },
      review_comments: { href: `${url}/comments` },
      review_comment: { href: `${api}/pulls/comments{/number}` },
      commits: { href: `${url}/commits` },
      statuses: { href: `${api}/statuses/${pull.head.sha}` },
    },
    author_association: 'MEMBER',
    auto_merge: null,
    draft: pull.draft,
  };
}

/** The `pull-request-simple` shape of list responses. */
export function pullSimpleObject(base: string, repo: FakeRepoIdentity, pull: FakePull, labels: readonly FakeLabel[]): Record<string, unknown> {
  return pullCommon(base, repo, pull, labels);
}

/** The full `pull-request` shape of get, create and update responses. */
export function pullObject(base: string, repo: FakeRepoIdentity, pull: FakePull, labels: readonly FakeLabel[]): Record<string, unknown> {
  return {
    ...pullCommon(base, repo, pull, labels),
    merged: typeof pull.mergedAt === 'string',
    mergeable: null,
    rebaseable: null,
    mergeable_state: 'unknown',
    merged_by: null,
    comments: 0,
    review_comments: 0,
    maintainer_can_modify: false,
    commits: 1,
    additions: 0,
    deletions: 0,
    changed_files: 0,
  };
}

export interface FakeCheckRun {
  readonly id: number;
  readonly headSha: string;
  readonly name: string;
  readonly status: 'queued' | 'in_progress' | 'completed';
  readonly conclusion: 'success' | 'failure' | 'neutral' | 'cancelled' | 'skipped' | 'timed_out' | 'action_required' | null;
  readonly summary: string | null;
  readonly text: string | null;
  readonly startedAt: string;
  readonly completedAt: string | null;
}

export function checkRunObject(base: string, fullName: string, run: FakeCheckRun): Record<string, unknown> {
  return {
    id: run.id,
    node_id: `CR_${run.id}`,
    head_sha: run.headSha,
    external_id: null,
    url: `${base}/repos/${fullName}/check-runs/${run.id}`,
    html_url: `${base}/${fullName}/runs/${run.id}`,
    details_url: null,
    status: run.status,
    conclusion: run.conclusion,
    started_at: run.startedAt,
    completed_at: run.completedAt,
    output: {
      title: run.name,
      summary: run.summary,
      text: run.text,
      annotations_count: 0,
      annotations_url: `${base}/repos/${fullName}/check-runs/${run.id}/annotations`,
    },
    name: run.name,
    check_suite: { id: run.id },
    app: null,
    pull_requests: [],
  };
}

export interface FakeStatus {
  readonly id: number;
  readonly sha: string;
  readonly context: string;
  readonly state: 'error' | 'failure' | 'pending' | 'success';
  readonly description: string | null;
  readonly targetUrl: string | null;
  readonly createdAt: string;
}

export function simpleStatusObject(base: string, fullName: string, status: FakeStatus): Record<string, unknown> {
  return {
    id: status.id,
    node_id: `SC_${status.id}`,
    url: `${base}/repos/${fullName}/statuses/${status.sha}`,
    avatar_url: null,
    state: status.state,
    description: status.description,
    target_url: status.targetUrl,
    context: status.context,
    created_at: status.createdAt,
    updated_at: status.createdAt,
  };
}

/** `minimal-repository`: the combined status embeds it. */
export function minimalRepositoryObject(base: string, repo: FakeRepoIdentity): Record<string, unknown> {
  const fullName = `${repo.owner.login}/${repo.name}`;
  const url = `${base}/repos/${fullName}`;
  const urls = Object.fromEntries(Object.entries(REPOSITORY_URL_FIELDS).map(([field, suffix]) => [field, `${url}${suffix}`]));
  return {
    id: repo.id,
    node_id: `R_${repo.id}`,
    name: repo.name,
    full_name: fullName,
    owner: userObject(base, repo.owner),
    private: true,
    html_url: `${base}/${fullName}`,
    description: null,
    fork: false,
    url,
    ...urls,
  };
}

/** GitHub's `author_association` (the `author-association` schema): how the author relates to the repository. */
export type AuthorAssociation = 'COLLABORATOR' | 'CONTRIBUTOR' | 'FIRST_TIMER' | 'FIRST_TIME_CONTRIBUTOR' | 'MANNEQUIN' | 'MEMBER' | 'NONE' | 'OWNER';

export interface FakeReview {
  readonly id: number;
  readonly pullNumber: number;
  readonly user: FakeUser;
  readonly association: AuthorAssociation;
  readonly body: string;
  readonly state: 'APPROVED' | 'CHANGES_REQUESTED' | 'COMMENTED' | 'DISMISSED' | 'PENDING';
  readonly commitId: string;
  readonly submittedAt: string;
}

export function reviewObject(base: string, fullName: string, review: FakeReview): Record<string, unknown> {
  const html = `${base}/${fullName}/pull/${review.pullNumber}#pullrequestreview-${review.id}`;
  const pullUrl = `${base}/repos/${fullName}/pulls/${review.pullNumber}`;
  return {
    id: review.id,
    node_id: `PRR_${review.id}`,
    user: userObject(base, review.user),
    body: review.body,
    state: review.state,
    html_url: html,
    pull_request_url: pullUrl,
    _links: { html: { href: html }, pull_request: { href: pullUrl } },
    submitted_at: review.submittedAt,
    commit_id: review.commitId,
    author_association: review.association,
  };
}

/** `private-user`: what `GET /user` answers about the token's own account. */
export function privateUserObject(base: string, user: FakeUser, createdAt: string): Record<string, unknown> {
  return {
    ...userObject(base, user),
    user_view_type: 'private',
    name: null,
    company: null,
    blog: null,
    location: null,
    email: null,
    hireable: null,
    bio: null,
    public_repos: 0,
    public_gists: 0,
    followers: 0,
    following: 0,
    created_at: createdAt,
    updated_at: createdAt,
    private_gists: 0,
    total_private_repos: 0,
    owned_private_repos: 0,
    disk_usage: 0,
    collaborators: 0,
    two_factor_authentication: true,
  };
}

export interface FakeApp {
  readonly id: number;
  readonly slug: string;
  readonly owner: FakeUser;
  readonly createdAt: string;
}

/** `integration`: what `GET /app` answers about the App its JWT names. */
export function integrationObject(base: string, app: FakeApp): Record<string, unknown> {
  return {
    id: app.id,
    slug: app.slug,
    node_id: `A_${app.id}`,
    client_id: `Iv1.${app.id}`,
    owner: userObject(base, app.owner),
    name: app.slug,
    description: null,
    external_url: `${base}/apps/${app.slug}`,
    html_url: `${base}/apps/${app.slug}`,
    created_at: app.createdAt,
    updated_at: app.createdAt,
    permissions: { issues: 'write', contents: 'write', pull_requests: 'write', metadata: 'read', checks: 'read', statuses: 'read' },
    events: ['issues', 'label', 'pull_request'],
  };
}
