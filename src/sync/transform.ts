// TeamCity build → Jira BuildData / DeploymentData (design.md §3, reference/jira-cloud.md §3.1–3.2, §3.6).
// Pure functions, no I/O: the poller fetches, this maps, the outbox stores, the deliverer sends.
//
// Identities (★ stable across versions, or Jira shows duplicates):
// - pipelineId / pipeline.id = `<connectionId>/<buildType internalId, else buildType id>` (≤ 255, a hashed
//   suffix when longer). internalId (`bt12`) survives renames of the external id, so the poller must
//   request it consistently (`buildType(internalId,…)`) — a build read once with and once without it would
//   change pipeline.
// - buildNumber / deploymentSequenceNumber = the TeamCity build `id`; the display `number` is free text.
// - updateSequenceNumber comes from the caller (strictly increasing per build).
//
// Display: `displayName` = `Project / Sub / Configuration #number (branch)`: the full project path (TeamCity's
// ` :: ` separators shown as ` / `, so same-named configurations in different projects are told apart);
// `#number` omitted when the build has none (queued), "N/A" shown as is; `(branch)` shown whenever the build
// has a logical branch, the default branch included (`main` vs `feature/x` is what people look for), and
// omitted for non-branched configurations and TeamCity's `<default>` placeholder. Over 255 characters, the
// middle project segments become "…", then the branch, then the rest is shortened with "…".
// `label` = the number, else the branch. `description` = TeamCity's status text (deployments require one:
// a state sentence when TeamCity has none). Text is whitespace-collapsed and cut to the API limits.
//
// testInfo (omitted when TeamCity reports no tests, or only a bare count): total = count, passed = passed,
// failed = failed (TeamCity's `failed` excludes muted failures), skipped = the rest (ignored + muted
// failures), so the three always add up to the total.
//
// references (≤ 5): one `commit` per revision — id = the revision's version (SHA, SVN revision, P4 change),
// repositoryUri = the VCS root instance name when it is a URL (TeamCity's auto-generated names are
// `<fetch url>#<branch>`; the fragment, credentials and a trailing `.git` are removed), else
// `urn:teamcity:<connectionId>:vcs-root:<vcs root id>` — TeamCity's REST build does not expose the fetch URL
// through the endpoints we may call, and inventing a web URL would be a guess; revisions with no VCS root
// information are left out. Then one `ref` for the branch, whose uri is the build configuration's page (the
// only branch-related page TeamCity gives us without constructing URLs).
//
// properties are request-level in Jira's API (one set per bulk request): `submitBuildsRequest` /
// `submitDeploymentsRequest` put `{ connectionId }` on every request, so batches are per connection and a
// removed connection is one `bulkByProperties?connectionId=…` call per API.
//
// Builds send `issueKeys` (required by the 2023 spec, accepted by every client in production, §3.6);
// deployments send `associations: [{ associationType: "issueIdOrKeys", values }]` (issueKeys deprecated) and
// `duration` (seconds, finished deployments): in the current spec; the 2023 spec does not list it but does
// not forbid extra members, and the Jira simulator accepts it (sandbox/jira/schema.ts).
// Dates: `lastUpdated` is the latest of finishDate, canceledInfo.timestamp, startDate and queuedDate, in UTC.
import type {
  BuildData,
  BuildReference,
  BuildState,
  BuildTestInfo,
  DeploymentData,
  DeploymentState,
  EntityProperties,
  ProviderMetadata,
  SubmitBuildsRequest,
  SubmitDeploymentsRequest,
} from '../jira/models.ts';
import { tryParseTcDate } from '../teamcity/dates.ts';
import type { TcBuild, TcBuildTypeRef, TcRevision } from '../teamcity/types.ts';
import { jiraBuildState, jiraDeploymentState } from './build-state.ts';
import { BUILD_ISSUE_KEY_CAP, DEPLOYMENT_ISSUE_KEY_CAP } from './issue-keys.ts';
import { boundedId, cleanText, truncateText, type Environment } from './environments.ts';

export type JiraBuild = BuildData;
export type JiraDeployment = DeploymentData;

const MAX_TEXT = 255;
const MAX_URL = 2000;
const MAX_REFERENCES = 5;
/** What Jira accepts as an issue key (builds: `^\w{1,255}-\d{1,255}$`). */
const JIRA_KEY = /^\w{1,255}-\d{1,255}$/;

/** A build that cannot be mapped (no configuration id, no URL, no date, bad sequence number). */
export class TransformError extends Error {
  readonly buildId: number | undefined;
  constructor(buildId: number | undefined, message: string) {
    super(`build ${buildId ?? '?'}: ${message}`);
    this.name = 'TransformError';
    this.buildId = buildId;
  }
}

export interface BuildContext {
  connectionId: string;
  /** From `collectIssueKeys`; normalised again here (uppercase, deduplicated, capped). */
  issueKeys: readonly string[];
  updateSequenceNumber: number;
  /** Rewrites TeamCity URLs (the server's root URL may be internal). */
  webUrlOverride?: (url: string) => string;
  /** `lastUpdated` when the build carries no date at all. */
  observedAt?: Date;
}

export interface DeploymentContext extends BuildContext {
  environment: Environment;
  /** Overrides the computed state (e.g. `rolled_back` from `jiraDeploymentState(build, rules)`). */
  state?: DeploymentState;
}

// ------------------------------------------------------------------------------------------------
// Dates (TeamCity's `yyyyMMdd'T'HHmmss±HHMM`, parsed by the client's own parser: never a guessed zone)

function lastUpdated(build: TcBuild, observedAt: Date | undefined): string {
  const dates = [build.finishDate, build.canceledInfo?.timestamp, build.startDate, build.queuedDate]
    .map(tryParseTcDate)
    .filter((d): d is Date => d !== undefined);
  const latest = dates.reduce<Date | undefined>((a, b) => (a === undefined || b > a ? b : a), undefined) ?? observedAt;
  if (!latest) throw new TransformError(build.id, 'no queuedDate, startDate or finishDate and no observedAt');
  return latest.toISOString();
}

// ------------------------------------------------------------------------------------------------
// Identity and names

function buildTypeOf(build: TcBuild): TcBuildTypeRef | undefined {
  if (build.buildType) return build.buildType;
  return build.buildTypeId ? { id: build.buildTypeId } : undefined;
}

/**
 * `<connectionId>/<internalId or id>` (≤ 255) of a build configuration, or of a build's configuration
 * (undefined when the build's configuration is unknown: deleted).
 */
export function pipelineIdOf(connectionId: string, buildType: TcBuildTypeRef): string;
export function pipelineIdOf(connectionId: string, build: TcBuild): string | undefined;
export function pipelineIdOf(connectionId: string, subject: TcBuild | TcBuildTypeRef): string | undefined {
  const buildType = typeof subject.id === 'string' ? (subject as TcBuildTypeRef) : buildTypeOf(subject as TcBuild);
  const configuration = buildType?.internalId || buildType?.id;
  return configuration ? boundedId(`${connectionId}/${configuration}`) : undefined;
}

function projectSegments(buildType: TcBuildTypeRef | undefined): string[] {
  return (buildType?.projectName ?? '')
    .split(' :: ')
    .map(cleanText)
    .filter(Boolean);
}

function configurationName(build: TcBuild): string {
  const bt = buildTypeOf(build);
  return cleanText(bt?.name ?? bt?.id ?? '') || `Build ${build.id}`;
}

/** The branch to show and send: the logical branch name, not TeamCity's `<default>` placeholder. */
export function branchOf(build: TcBuild): string | undefined {
  const name = cleanText(build.branchName ?? '');
  return name && name !== '<default>' ? name : undefined;
}

function composeName(projects: string[], configuration: string, suffix: string, branch: string | undefined): string {
  const heads = [[...projects, configuration]];
  if (projects.length > 2) heads.push([projects[0] ?? '', '…', projects[projects.length - 1] ?? '', configuration]);
  if (projects.length > 1) heads.push(['…', projects[projects.length - 1] ?? '', configuration]);
  const branchPart = (b: string | undefined) => (b ? ` (${b})` : '');
  for (const head of heads) {
    const text = `${head.join(' / ')}${suffix}${branchPart(branch)}`;
    if (text.length <= MAX_TEXT) return text;
  }
  const head = (heads[heads.length - 1] ?? []).join(' / ');
  let shortBranch = branch;
  if (branch) {
    const room = MAX_TEXT - head.length - suffix.length - 3;
    shortBranch = truncateText(branch, Math.max(room, 40));
  }
  const tail = `${suffix}${branchPart(shortBranch)}`;
  return truncateText(`${truncateText(head, MAX_TEXT - tail.length)}${tail}`, MAX_TEXT);
}

/** `Project / Configuration #number (branch)`, ≤ 255 (see the header). */
export function buildDisplayName(build: TcBuild): string {
  const number = cleanText(build.number ?? '');
  return composeName(projectSegments(buildTypeOf(build)), configurationName(build), number ? ` #${number}` : '', branchOf(build));
}

/** `Project / Configuration`, ≤ 255. */
export function pipelineDisplayName(build: TcBuild): string {
  return composeName(projectSegments(buildTypeOf(build)), configurationName(build), '', undefined);
}

function label(build: TcBuild): string | undefined {
  const value = cleanText(build.number ?? '') || branchOf(build);
  return value ? truncateText(value, MAX_TEXT) : undefined;
}

// ------------------------------------------------------------------------------------------------
// URLs, tests, references

function url(raw: string | undefined, ctx: BuildContext): string | undefined {
  if (!raw) return undefined;
  const value = ctx.webUrlOverride ? ctx.webUrlOverride(raw) : raw;
  if (value.length > MAX_URL || !URL.canParse(value)) return undefined;
  const protocol = new URL(value).protocol;
  return protocol === 'http:' || protocol === 'https:' ? value : undefined;
}

/** Jira testInfo from TeamCity's testOccurrences summary (see the header), or undefined. */
export function testInfoOf(build: Pick<TcBuild, 'testOccurrences'>): BuildTestInfo | undefined {
  const t = build.testOccurrences;
  if (!t) return undefined;
  const n = (v: number | undefined) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0);
  if (t.passed === undefined && t.failed === undefined && t.ignored === undefined && t.muted === undefined) return undefined;
  const passed = n(t.passed);
  const failed = n(t.failed);
  const total = Math.max(n(t.count), passed + failed + n(t.ignored));
  if (total === 0) return undefined;
  return { totalNumber: total, numberPassed: passed, numberFailed: failed, numberSkipped: Math.max(0, total - passed - failed) };
}

/** A repository URI for a VCS root instance (see the header), or undefined. */
export function repositoryUriOf(connectionId: string, instance: TcRevision['vcs-root-instance']): string | undefined {
  const name = cleanText(instance?.name ?? '').replace(/#.*$/, '');
  const scp = /^([\w.-]+)@([\w.-]+):(?!\/\/)(.+)$/.exec(name);
  const candidate = scp ? `ssh://${scp[1] ?? ''}@${scp[2] ?? ''}/${scp[3] ?? ''}` : name;
  if (/^(https?|ssh|git|svn|svn\+ssh|p4):\/\//i.test(candidate) && URL.canParse(candidate)) {
    const u = new URL(candidate);
    u.password = '';
    if (u.protocol === 'http:' || u.protocol === 'https:') {
      u.username = '';
      u.pathname = u.pathname.replace(/\.git\/?$/, '').replace(/\/+$/, '') || '/';
    }
    u.hash = '';
    u.search = '';
    const href = u.href;
    if (href.length <= MAX_URL) return href;
  }
  const id = instance?.['vcs-root-id'] ?? instance?.id;
  if (!id) return undefined;
  return truncateText(`urn:teamcity:${encodeURIComponent(connectionId)}:vcs-root:${encodeURIComponent(id)}`, MAX_URL);
}

function referencesOf(build: TcBuild, ctx: BuildContext): BuildReference[] | undefined {
  const branch = branchOf(build);
  const refUri = url(buildTypeOf(build)?.webUrl, ctx) ?? url(build.webUrl, ctx);
  const ref = branch && refUri ? { name: truncateText(branch, MAX_TEXT), uri: refUri } : undefined;
  const commits: BuildReference[] = [];
  const seen = new Set<string>();
  for (const revision of build.revisions?.revision ?? []) {
    const id = cleanText(revision.version ?? '');
    const repositoryUri = repositoryUriOf(ctx.connectionId, revision['vcs-root-instance']);
    if (!id || id.length > MAX_TEXT || !repositoryUri) continue;
    const key = `${id}\u0000${repositoryUri}`;
    if (seen.has(key)) continue;
    seen.add(key);
    commits.push({ commit: { id, repositoryUri } });
  }
  const out = [...commits.slice(0, ref ? MAX_REFERENCES - 1 : MAX_REFERENCES), ...(ref ? [{ ref }] : [])];
  return out.length ? out : undefined;
}

function normaliseKeys(keys: readonly string[], cap: number): string[] {
  const out = new Set<string>();
  for (const k of keys) {
    const key = k.trim().toUpperCase();
    if (JIRA_KEY.test(key)) out.add(key);
    if (out.size === cap) break;
  }
  return [...out];
}

function checkCommon(build: TcBuild, ctx: BuildContext): { pipelineId: string; buildUrl: string } {
  if (!Number.isSafeInteger(build.id)) throw new TransformError(undefined, `build id ${String(build.id)} is not an integer`);
  if (!Number.isSafeInteger(ctx.updateSequenceNumber) || ctx.updateSequenceNumber < 0) {
    throw new TransformError(build.id, `updateSequenceNumber ${ctx.updateSequenceNumber} is not a non-negative integer`);
  }
  if (!ctx.connectionId) throw new TransformError(build.id, 'connectionId is empty');
  const pipelineId = pipelineIdOf(ctx.connectionId, build);
  if (!pipelineId) throw new TransformError(build.id, 'the build has no build configuration id (deleted configuration?)');
  const buildUrl = url(build.webUrl, ctx) ?? url(buildTypeOf(build)?.webUrl, ctx);
  if (!buildUrl) throw new TransformError(build.id, 'the build has no usable http(s) webUrl');
  return { pipelineId, buildUrl };
}

// ------------------------------------------------------------------------------------------------
// Builds and deployments

/**
 * Jira BuildData for a TeamCity build, or undefined when it has no issue keys (nothing to show in Jira).
 * Throws TransformError when the build cannot be identified or linked (see checkCommon).
 */
export function toJiraBuild(build: TcBuild, ctx: BuildContext): JiraBuild | undefined {
  const issueKeys = normaliseKeys(ctx.issueKeys, BUILD_ISSUE_KEY_CAP);
  if (issueKeys.length === 0) return undefined;
  const { pipelineId, buildUrl } = checkCommon(build, ctx);
  const state: BuildState = jiraBuildState(build);
  const out: JiraBuild = {
    schemaVersion: '1.0',
    pipelineId,
    buildNumber: build.id,
    updateSequenceNumber: ctx.updateSequenceNumber,
    displayName: buildDisplayName(build),
    url: buildUrl,
    state,
    lastUpdated: lastUpdated(build, ctx.observedAt),
    issueKeys,
  };
  const description = truncateText(cleanText(build.statusText ?? ''), MAX_TEXT);
  if (description) out.description = description;
  const lbl = label(build);
  if (lbl) out.label = lbl;
  const testInfo = testInfoOf(build);
  if (testInfo) out.testInfo = testInfo;
  const references = referencesOf(build, ctx);
  if (references) out.references = references;
  return out;
}

const STATE_SENTENCE: Record<DeploymentState, string> = {
  pending: 'Deployment queued',
  in_progress: 'Deployment in progress',
  successful: 'Deployment successful',
  failed: 'Deployment failed',
  cancelled: 'Deployment cancelled',
  rolled_back: 'Deployment rolled back',
  unknown: 'Deployment state unknown',
};

/** Duration in seconds of a finished build with a start and a finish date. */
export function durationSeconds(build: TcBuild): number | undefined {
  if (build.state !== 'finished') return undefined;
  const start = tryParseTcDate(build.startDate);
  const finish = tryParseTcDate(build.finishDate);
  if (!start || !finish) return undefined;
  return Math.max(0, Math.round((finish.getTime() - start.getTime()) / 1000));
}

/**
 * Jira DeploymentData for a build of a deployment configuration, or undefined when it has no issue keys.
 * Throws TransformError when the build cannot be identified or linked.
 */
export function toJiraDeployment(build: TcBuild, ctx: DeploymentContext): JiraDeployment | undefined {
  const values = normaliseKeys(ctx.issueKeys, DEPLOYMENT_ISSUE_KEY_CAP);
  if (values.length === 0) return undefined;
  const { pipelineId, buildUrl } = checkCommon(build, ctx);
  const state = ctx.state ?? jiraDeploymentState(build);
  const pipelineUrl = url(buildTypeOf(build)?.webUrl, ctx) ?? buildUrl;
  const environment = ctx.environment;
  const out: JiraDeployment = {
    schemaVersion: '1.0',
    deploymentSequenceNumber: build.id,
    updateSequenceNumber: ctx.updateSequenceNumber,
    associations: [{ associationType: 'issueIdOrKeys', values }],
    displayName: buildDisplayName(build),
    url: buildUrl,
    description: truncateText(cleanText(build.statusText ?? ''), MAX_TEXT) || STATE_SENTENCE[state],
    lastUpdated: lastUpdated(build, ctx.observedAt),
    state,
    pipeline: { id: pipelineId, displayName: pipelineDisplayName(build), url: pipelineUrl },
    environment: {
      id: boundedId(environment.id),
      displayName: truncateText(cleanText(environment.displayName), MAX_TEXT) || environment.id.slice(0, MAX_TEXT),
      type: environment.type,
    },
  };
  const lbl = label(build);
  if (lbl) out.label = lbl;
  const duration = durationSeconds(build);
  if (duration !== undefined) out.duration = duration;
  return out;
}

/** The properties sent with every request: `{ connectionId }` (for bulkByProperties deletion). */
export function jiraProperties(connectionId: string): EntityProperties {
  if (!connectionId) throw new TypeError('connectionId is empty');
  return { connectionId: truncateText(connectionId, MAX_TEXT) };
}

/** A builds bulk request for one connection (Jira's properties are per request). */
export function submitBuildsRequest(connectionId: string, builds: JiraBuild[], providerMetadata?: ProviderMetadata): SubmitBuildsRequest {
  return { properties: jiraProperties(connectionId), builds, ...(providerMetadata ? { providerMetadata } : {}) };
}

/** A deployments bulk request for one connection. */
export function submitDeploymentsRequest(connectionId: string, deployments: JiraDeployment[], providerMetadata?: ProviderMetadata): SubmitDeploymentsRequest {
  return { properties: jiraProperties(connectionId), deployments, ...(providerMetadata ? { providerMetadata } : {}) };
}
