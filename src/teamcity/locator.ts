// TeamCity locators (reference/teamcity-rest.md §2): value escaping and the exact queries the poller uses.
// Builders return the locator text; the client URL-encodes it as the `locator` query parameter (so a date's
// `+` travels as `%2B`), or as a path segment for the single-entity endpoints.
import { formatTcDate } from './dates.ts';

const b64url = (v: string): string => Buffer.from(v, 'utf8').toString('base64url');

/**
 * Escapes one locator value (TCR Locator / official CLI `escapeLocatorValue`): raw when it has none of
 * `: , ( ) $`; `(value)` when it has `:` or `,` only; `($base64:<base64url UTF-8>)` when it has `(`, `)` or
 * `$` (parentheses must balance inside `(…)`, `$` would start a special value).
 */
export function locatorValue(v: string): string {
  if (v === '') return '($base64:)';
  if (!/[:,()$]/.test(v)) return v;
  if (!/[()$]/.test(v)) return `(${v})`;
  return `($base64:${b64url(v)})`;
}

/**
 * Like locatorValue, for locators that travel in a URL path segment (`/buildTypes/{loc}`, `/users/{loc}`):
 * also base64-escapes `/` `\` `%` `?` `#` `;` and whitespace, which servlet containers treat specially in paths.
 */
export function pathLocatorValue(v: string): string {
  if (/[/\\%?#;\s]/.test(v) || v === '') return `($base64:${b64url(v)})`;
  return locatorValue(v);
}

/**
 * The branch dimension's value for one branch name, exact whatever the characters: `(name:(value:($base64:…)))`.
 * The branch dimension re-parses its value as a branch locator even after base64 decoding, so the name has to
 * sit inside a value condition (reference §2.1). Use as `branch:${branchByName(name)}`. Matches the logical
 * (display) name or the VCS name (`refs/heads/…`), case-insensitively (TeamCity's default value condition).
 */
export function branchByName(name: string): string {
  return `(name:(value:($base64:${b64url(name)})))`;
}

/** `id:N` for one build (bypasses the default filter). */
export function buildIdLocator(id: number): string {
  assertId(id, 'build id');
  return `id:${id}`;
}

/** `id:<externalId>` for a build configuration (the id seen in the UI; renameable — see internalId). */
export function buildTypeIdLocator(externalId: string): string {
  return `id:${pathLocatorValue(externalId)}`;
}

/** `internalId:btN` — stable across renames of the external id. */
export function buildTypeInternalIdLocator(internalId: string): string {
  return `internalId:${pathLocatorValue(internalId)}`;
}

/** `username:<login>` for `/users/{userLocator}`. */
export function userByUsernameLocator(username: string): string {
  return `username:${pathLocatorValue(username)}`;
}

/** The changes of one build (what TeamCity detected for it): `build:(id:N),count:N`. */
export function changesOfBuildLocator(buildId: number, count = 200): string {
  assertId(buildId, 'build id');
  assertCount(count);
  return `build:(id:${buildId}),count:${count}`;
}

// ---------------------------------------------------------------------------------------------------------
// Build queries (§5.4)

/** Narrows a build query to one project subtree or one configuration (external ids). */
export interface BuildScope {
  /** `affectedProject:(id:X)` — the project and all its subprojects. */
  affectedProject?: string;
  /** `buildType:(id:X)`. */
  buildType?: string;
  /** Only builds of this branch (logical or VCS name) instead of every branch. */
  branch?: string;
}

export interface BuildQueryBase {
  scope?: BuildScope;
  /** Page size, default 100. */
  count?: number;
}

function assertId(id: number, what: string): void {
  if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`${what} must be a non-negative integer, got ${String(id)}`);
}

function assertCount(count: number): void {
  if (!Number.isSafeInteger(count) || count < 1 || count > 10_000) throw new RangeError(`count must be 1..10000, got ${String(count)}`);
}

function branchDim(scope: BuildScope | undefined): string {
  return scope?.branch === undefined ? 'branch:default:any' : `branch:${branchByName(scope.branch)}`;
}

function scopeDims(scope: BuildScope | undefined): string[] {
  const dims: string[] = [];
  if (scope?.affectedProject !== undefined) dims.push(`affectedProject:(id:${locatorValue(scope.affectedProject)})`);
  if (scope?.buildType !== undefined) dims.push(`buildType:(id:${locatorValue(scope.buildType)})`);
  return dims;
}

function dateCondition(d: Date, offsetMinutes: number): string {
  return `(date:${formatTcDate(d, offsetMinutes)},condition:after)`;
}

export interface FinishedBuildsQuery extends BuildQueryBase {
  /** Server-clock instant: only builds STARTED after it (T − W, W = the longest build we expect). The scan cut-off. */
  startedAfter: Date;
  /** Server-clock instant: only builds FINISHED after it (the poll cursor T minus an overlap). */
  finishedAfter: Date;
  /** The server's UTC offset (ServerClock.offsetMinutes), for formatting the dates. */
  offsetMinutes?: number;
}

/**
 * Newly finished builds — every state incl. canceled and failed-to-start, every branch, no personal builds:
 * `defaultFilter:false,state:finished,personal:false,branch:default:any,startDate:(date:…,condition:after),
 * finishDate:(date:…,condition:after)[,affectedProject:(id:…)][,buildType:(id:…)],count:N`.
 *
 * The startDate condition gives the server a scan cut-off (finished builds are scanned newest-STARTED first),
 * so this query has a start cut-off: page it with `stopOnEmptyPage: false` (an empty page with a nextHref only
 * raises lookupLimit, which is bounded here). Builds that started before `startedAfter` and finish later are
 * missed — pick the window from the longest expected build and catch stragglers via the running set.
 */
export function finishedBuildsLocator(q: FinishedBuildsQuery): string {
  const count = q.count ?? 100;
  assertCount(count);
  const off = q.offsetMinutes ?? 0;
  return [
    'defaultFilter:false',
    'state:finished',
    'personal:false',
    branchDim(q.scope),
    `startDate:${dateCondition(q.startedAfter, off)}`,
    `finishDate:${dateCondition(q.finishedAfter, off)}`,
    ...scopeDims(q.scope),
    `count:${count}`,
  ].join(',');
}

/**
 * Running builds (Jira in_progress), every branch, no personal builds:
 * `defaultFilter:false,state:running,personal:false,branch:default:any[,scope…],count:N`.
 * No start cut-off: page with the default `stopOnEmptyPage: true`. A build that leaves this set finished,
 * was canceled or deleted — fetch it with `getBuild(id)` (404 → deleted).
 */
export function runningBuildsLocator(q: BuildQueryBase = {}): string {
  const count = q.count ?? 100;
  assertCount(count);
  return ['defaultFilter:false', 'state:running', 'personal:false', branchDim(q.scope), ...scopeDims(q.scope), `count:${count}`].join(',');
}

/**
 * Queued and running builds in one list (Jira pending / in_progress), queued first in queue order,
 * then running: `defaultFilter:false,state:(queued:true,running:true,finished:false),personal:false,
 * branch:default:any[,scope…],count:N` (reference §2.2, the `state` sub-locator). One request per
 * poll instead of one per state. No start cut-off.
 */
export function activeBuildsLocator(q: BuildQueryBase = {}): string {
  const count = q.count ?? 100;
  assertCount(count);
  return ['defaultFilter:false', 'state:(queued:true,running:true,finished:false)', 'personal:false', branchDim(q.scope), ...scopeDims(q.scope), `count:${count}`].join(',');
}

export interface BackfillQuery extends BuildQueryBase {
  /** Server-clock instant: builds that STARTED after it. The scan cut-off. */
  since: Date;
  offsetMinutes?: number;
}

/**
 * History backfill: finished builds that started after `since`:
 * `defaultFilter:false,state:finished,personal:false,branch:default:any,startDate:(date:…,condition:after)[,scope…],count:N`.
 *
 * TeamCity returns finished builds newest-STARTED first and cannot be asked for oldest-first, so a backfill
 * pages from now back to `since` and the caller collects (or sends newest first, which Jira accepts since
 * every build has its own updateSequenceNumber). `start:` offsets shift when new builds finish during a long
 * backfill, so page only via nextHref and dedupe by build id. Has a start cut-off: `stopOnEmptyPage: false`.
 */
export function backfillBuildsLocator(q: BackfillQuery): string {
  const count = q.count ?? 100;
  assertCount(count);
  return [
    'defaultFilter:false',
    'state:finished',
    'personal:false',
    branchDim(q.scope),
    `startDate:${dateCondition(q.since, q.offsetMinutes ?? 0)}`,
    ...scopeDims(q.scope),
    `count:${count}`,
  ].join(',');
}

/**
 * True when a build locator carries a start-time condition (`startDate:(…condition:after…)`, `sinceDate`,
 * `sinceBuild`) — the only kind that bounds TeamCity's scan (§5.2), and so the only kind for which following a
 * nextHref after an empty page is safe. A heuristic on top-level text; pass `stopOnEmptyPage` explicitly when
 * in doubt.
 */
export function hasStartCutoff(locator: string): boolean {
  return /(^|,)startDate:\((?![^)]*condition:before)/.test(locator) || /(^|,)since(Date|Build):/.test(locator);
}
