// Jira issue keys found in TeamCity data (product.md items 3–8, design.md §3). Pure functions, no I/O.
//
// What counts as a key (`extractIssueKeys`):
// - `<project>-<number>` anywhere in text, case-insensitive, returned UPPERCASE, deduplicated, in order of
//   first appearance. The project part is a letter followed by letters, digits or `_`, 2–10 characters in
//   total (Jira Cloud's project key limit; `ABC_2`, `A1B` are fine). The number has no leading zero (Jira
//   numbers issues from 1, so `ABC-0` / `ABC-007` are dates, versions or counters, not keys) and at most 18
//   digits.
// - Whole words only: nothing glued on the left (a letter or digit before the project part means the key
//   is part of a longer word, e.g. `XABC-1` is project XABC, never ABC) and no letter or digit glued on
//   the right (`ABC-12x`). `_` on the right is a separator (`ABC-12_fix` → ABC-12), and so is `_` after a
//   number on the left (`ABC-1_DEF-2`).
// - Version-like tails reject the match: `-<digit>` or `.<digit>` right after the number (`ABC-1-2`,
//   `ISO-8859-1`, `CVE-2024-1234`, `TLS-1.2`, `GPL-3.0`). `-<letter>` is a separator (`abc-123-login`).
// - A key preceded by `-` (`bugfix-ABC-123`) counts only when its project part is written in UPPERCASE:
//   Jira's suggested branch names (`ABC-123-upgrade-to-node-20`) would otherwise yield NODE-20.
// - Mixed-case project parts (`Python-3`, `Windows-1252`, `Step-2`) are words, not keys; all-lowercase
//   (`abc-123`, typical of branch names) and all-uppercase are accepted.
// - An `_` inside the project part is ambiguous (`feature_ABC-123` is a branch prefix, `ABC_2-7` a project
//   with an underscore): the whole word and every suffix after an `_` that starts with a letter are tried
//   (FEATURE_ABC is 11 characters so only ABC-123 survives there; `DEV_ABC-5` yields DEV_ABC-5 and
//   ABC-5). `knownProjects` settles it when the site's project keys are known.
// - Look-alikes: project parts in DEFAULT_DENIED_PROJECTS (standards, encodings, hashes, crypto: `UTF-8`,
//   `SHA-256`, `MD-5`, `RFC-2616`, `CVE-…`) are ignored unless the site really has such a project
//   (`knownProjects`); an extra, per-connection `denylist` always applies. Single letters (`X-1`) fail the
//   2-character minimum.
// - `GH-123` (GitHub's autolink form) is accepted: it is a well-formed key and `GH` is a plausible
//   project. Jira reports it as an unknown issue key if the site has no such project, and an admin can add
//   `GH` to the connection's denylist.
import type { TcBuild, TcChange } from '../teamcity/types.ts';

/** Jira's build API accepts at most 100 issue keys per build (reference/jira-cloud.md §3.1). */
export const BUILD_ISSUE_KEY_CAP = 100;
/** Jira's deployment API accepts at most 500 association values per deployment (§3.2). */
export const DEPLOYMENT_ISSUE_KEY_CAP = 500;
/** Jira Cloud project keys are 2–10 characters. */
export const MAX_PROJECT_KEY_LENGTH = 10;

/**
 * Project parts that look like keys but are standards, encodings, hashes or algorithms. Ignored unless
 * `knownProjects` says the site has that project.
 */
export const DEFAULT_DENIED_PROJECTS: ReadonlySet<string> = new Set([
  'CVE', 'CWE', 'CAPEC', // vulnerability ids (CVE-2024-1234 is also version-like)
  'UTF', 'UCS', 'ISO', 'IEC', 'IEEE', 'ECMA', 'RFC', 'PEP', 'JSR', 'JEP', 'ES', // standards and encodings
  'CP', 'WINDOWS', 'LATIN', 'IBM', 'GB', 'BIG', 'KOI', 'EUC', // code pages (cp-1252, latin-1, big-5)
  'SHA', 'SHA1', 'SHA2', 'SHA3', 'MD', 'CRC', 'HMAC', 'BLAKE', 'BASE', // hashes and encodings (base-64)
  'AES', 'RSA', 'DES', 'ECDSA', 'ED', 'CURVE', 'CHACHA', 'POLY', 'SALSA', 'PBKDF', // crypto
  'TLS', 'SSL', 'HTTP', 'IPV', // protocols (http-2, ipv-6)
  'X86', 'AMD', 'ARM', 'WIN', // architectures (x86-64, win-32)
  'MPEG', 'COVID', 'GPL', 'LGPL', 'AGPL', 'MPL',
]);

export type IssueKeySource = 'parameter' | 'branch' | 'vcs-branch' | 'pull-request' | 'commit';

export interface IssueKeyOptions {
  /** Extra project keys to ignore (any case). Always applies, even to known projects. */
  denylist?: Iterable<string>;
  /** The Jira site's project keys (any case). When given, only keys of these projects are returned. */
  knownProjects?: Iterable<string>;
}

interface Filter {
  deny: ReadonlySet<string>;
  known: ReadonlySet<string> | undefined;
}

function toFilter(options: IssueKeyOptions | undefined): Filter {
  const upper = (it: Iterable<string>) => new Set([...it].map((s) => s.trim().toUpperCase()).filter(Boolean));
  return {
    deny: upper(options?.denylist ?? []),
    known: options?.knownProjects === undefined ? undefined : upper(options.knownProjects),
  };
}

// A letter-led word (the project part, possibly with `_`), a dash and digits, not glued to a preceding
// letter or digit nor to a following letter or digit. Unicode-aware so that `éABC-1` is not a key either.
// After a letter, `_` belongs to the word (its suffixes are tried separately); after a digit it separates
// (`ABC-1_DEF-2`).
const CANDIDATE = /(?<![\p{L}\p{N}])(?<![\p{L}_]_)([A-Za-z][A-Za-z0-9_]*)-(\d+)(?![\p{L}\p{N}])/gu;
const NUMBER = /^[1-9]\d{0,17}$/;
const PROJECT = /^[A-Za-z][A-Za-z0-9_]*$/;

type Verdict = 'ok' | 'denied' | 'unknown-project' | 'malformed';

function judgeProject(project: string, opts: { hyphenBefore: boolean }, filter: Filter): Verdict {
  if (project.length < 2 || project.length > MAX_PROJECT_KEY_LENGTH || !PROJECT.test(project)) return 'malformed';
  const upper = project.toUpperCase();
  if (filter.deny.has(upper)) return 'denied';
  const known = filter.known?.has(upper) ?? false;
  if (!known) {
    const hasLower = /[a-z]/.test(project);
    const hasUpper = /[A-Z]/.test(project);
    if (hasLower && hasUpper) return 'malformed';
    if (opts.hyphenBefore && hasLower) return 'malformed';
    if (DEFAULT_DENIED_PROJECTS.has(upper)) return 'denied';
  }
  if (filter.known && !known) return 'unknown-project';
  return 'ok';
}

interface Found {
  key: string;
  verdict: Verdict;
}

function scan(text: string, filter: Filter): Found[] {
  const out: Found[] = [];
  for (const m of text.matchAll(CANDIDATE)) {
    const [whole, project = '', number = ''] = m;
    const start = m.index;
    const end = start + whole.length;
    if (!NUMBER.test(number)) continue;
    // Version-like tail: `-<digit>` or `.<digit>` right after the number.
    if (/^[-.]\d/.test(text.slice(end, end + 2))) continue;
    const hyphenBefore = start > 0 && text[start - 1] === '-';
    // The whole word first, then each suffix after an `_` that starts with a letter (only suffixes short
    // enough to be a project key: a long word must not cost quadratic time).
    const parts = [project];
    const from = Math.max(0, project.length - MAX_PROJECT_KEY_LENGTH - 1);
    for (let i = project.indexOf('_', from); i !== -1; i = project.indexOf('_', i + 1)) {
      const rest = project.slice(i + 1);
      if (/^[A-Za-z]/.test(rest)) parts.push(rest);
    }
    parts.forEach((p, i) => {
      const verdict = judgeProject(p, { hyphenBefore: i === 0 && hyphenBefore }, filter);
      if (verdict !== 'malformed' && verdict !== 'denied') out.push({ key: `${p.toUpperCase()}-${number}`, verdict });
    });
  }
  return out;
}

/**
 * Jira issue keys in free text (commit subject and body, branch names, PR titles), uppercase, deduplicated,
 * in order of first appearance. See the rules at the top of this file.
 */
export function extractIssueKeys(text: string, options?: IssueKeyOptions): string[] {
  const filter = toFilter(options);
  const keys = new Set<string>();
  for (const f of scan(text, filter)) if (f.verdict === 'ok') keys.add(f.key);
  return [...keys];
}

/** A bare key token as written in an explicit parameter: trusted, but still well-formed. */
const BARE_KEY = /^([A-Za-z][A-Za-z0-9_]{1,254})-([1-9]\d{0,17})$/;

function scanExplicit(value: string, filter: Filter): Found[] {
  const out: Found[] = [];
  for (const token of value.split(/[\s,;]+/)) {
    if (!token) continue;
    const m = BARE_KEY.exec(token);
    if (!m) {
      out.push(...scan(token, filter));
      continue;
    }
    const project = (m[1] ?? '').toUpperCase();
    if (filter.deny.has(project)) continue;
    const verdict: Verdict = filter.known && !filter.known.has(project) ? 'unknown-project' : 'ok';
    out.push({ key: `${project}-${m[2] ?? ''}`, verdict });
  }
  return out;
}

export interface IssueKeyInput {
  /** Changes of the build (for deployments: all changes since the last successful deployment to that environment), newest first. */
  changes: readonly TcChange[];
  /** The build's logical branch name (`feature/ABC-1`). */
  branchName?: string;
  /** Full VCS refs of the build's revisions (`refs/heads/feature/ABC-1`). */
  vcsBranchNames?: readonly string[];
  /** Pull request details where TeamCity exposes them (Pull Requests build feature parameters). */
  pullRequest?: { title?: string; sourceBranch?: string };
  /** Explicit keys, e.g. the `jira.issues` build parameter: separated by commas, semicolons or whitespace. */
  explicit?: string;
  /** The site's project keys; when given, keys of other projects are dropped (and listed in `filtered`). */
  knownProjects?: ReadonlySet<string>;
  /** The connection's extra project-key denylist. */
  denylist?: Iterable<string>;
}

export interface IssueKeySourceRecord {
  key: string;
  source: IssueKeySource;
  /** The change id for commits, the branch or ref name for branches; absent for the parameter and PR titles. */
  ref?: string;
}

export interface CollectedIssueKeys {
  /** What to send: uppercase, deduplicated, ≤ cap, highest priority / newest first. */
  keys: string[];
  /** Where every key (sent or truncated) was found, one record per key, source and ref. */
  sources: IssueKeySourceRecord[];
  /** Keys dropped by the cap (lowest priority / oldest), in order. */
  truncated: string[];
  /** Keys whose project is not in `knownProjects`, in order (for the "why is ABC-123 missing?" diagnostic). */
  filtered: string[];
}

/**
 * All issue keys of a build, in priority order: the explicit parameter, the branch, the VCS branches,
 * the pull request (title, then source branch), then commit messages newest first. The cap keeps the first
 * `cap` keys of that order (so the newest commits win) and reports the rest in `truncated`.
 */
export function collectIssueKeys(input: IssueKeyInput, cap: number = BUILD_ISSUE_KEY_CAP): CollectedIssueKeys {
  if (!Number.isInteger(cap) || cap < 0) throw new RangeError(`issue key cap must be a non-negative integer, got ${cap}`);
  const filter = toFilter({ denylist: input.denylist, knownProjects: input.knownProjects });
  const ordered: string[] = [];
  const seen = new Set<string>();
  const filtered = new Set<string>();
  const sources: IssueKeySourceRecord[] = [];
  const recorded = new Set<string>();

  const take = (found: Found[], source: IssueKeySource, ref?: string) => {
    for (const { key, verdict } of found) {
      if (verdict === 'unknown-project') {
        filtered.add(key);
        continue;
      }
      if (!seen.has(key)) {
        seen.add(key);
        ordered.push(key);
      }
      const id = `${key}\u0000${source}\u0000${ref ?? ''}`;
      if (!recorded.has(id)) {
        recorded.add(id);
        sources.push(ref === undefined ? { key, source } : { key, source, ref });
      }
    }
  };

  if (input.explicit) take(scanExplicit(input.explicit, filter), 'parameter');
  if (input.branchName) take(scan(input.branchName, filter), 'branch', input.branchName);
  for (const ref of input.vcsBranchNames ?? []) if (ref) take(scan(ref, filter), 'vcs-branch', ref);
  if (input.pullRequest?.title) take(scan(input.pullRequest.title, filter), 'pull-request');
  if (input.pullRequest?.sourceBranch) take(scan(input.pullRequest.sourceBranch, filter), 'pull-request', input.pullRequest.sourceBranch);
  for (const change of input.changes) if (change.comment) take(scan(change.comment, filter), 'commit', String(change.id));

  return {
    keys: ordered.slice(0, cap),
    sources,
    truncated: ordered.slice(cap),
    filtered: [...filtered].filter((k) => !seen.has(k)),
  };
}

/** TeamCity build parameters as a map (the build's `properties`, when requested). */
export function buildParameters(build: Pick<TcBuild, 'properties'>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of build.properties?.property ?? []) if (p.value !== undefined) out[p.name] = p.value;
  return out;
}

export interface IssueKeyInputOptions {
  /** Build parameter holding explicit keys. Default `jira.issues`. */
  explicitParameter?: string;
  knownProjects?: ReadonlySet<string>;
  denylist?: Iterable<string>;
}

/**
 * The `collectIssueKeys` input for a TeamCity build: its branch, the VCS refs of its revisions, the
 * Pull Requests feature's `teamcity.pullRequest.title` / `teamcity.pullRequest.source.branch` parameters and
 * the explicit-keys parameter (when the build's `properties` were requested), plus the given changes.
 */
export function issueKeyInputFromBuild(build: TcBuild, changes: readonly TcChange[], options: IssueKeyInputOptions = {}): IssueKeyInput {
  const params = buildParameters(build);
  const title = params['teamcity.pullRequest.title'];
  const sourceBranch = params['teamcity.pullRequest.source.branch'];
  const vcsBranchNames = (build.revisions?.revision ?? []).map((r) => r.vcsBranchName).filter((b): b is string => !!b);
  const input: IssueKeyInput = { changes, vcsBranchNames };
  if (build.branchName) input.branchName = build.branchName;
  if (title || sourceBranch) input.pullRequest = { ...(title ? { title } : {}), ...(sourceBranch ? { sourceBranch } : {}) };
  const explicit = params[options.explicitParameter ?? 'jira.issues'];
  if (explicit) input.explicit = explicit;
  if (options.knownProjects) input.knownProjects = options.knownProjects;
  if (options.denylist) input.denylist = options.denylist;
  return input;
}
