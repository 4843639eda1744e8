// The explicit `fields` strings we request (reference/teamcity-rest.md §3). With explicit fields TeamCity
// returns only what is listed — also on collections, so every collection lists `count,nextHref` or paging
// links disappear. Each string matches the models in types.ts.
//
// Deliberately absent: build parameters (`properties` / `resultingProperties`). They need the "view build
// runtime parameters and data" permission — without it the whole page fails with 403, not just the field —
// and filtering them with `$locator(name:(value:…,matchType:…))` is unverified against real servers and not
// supported by our simulator. Pull-request titles/branches from `teamcity.pullRequest.*` are therefore not
// fetched; branch names (`pull/42`) and commit messages are.

/** Build configuration as embedded in a build (type only when requested, §4.6). */
export const BUILD_TYPE_REF_FIELDS = 'id,internalId,name,projectName,projectId,webUrl,type';

const USER_REF_FIELDS = 'id,username,name';

/** Change fields for commit-message key extraction. */
export const CHANGE_FIELDS = 'id,version,username,date,comment,webUrl';

/** One build, as the poller and the mapping need it (no nested changes). */
export const BUILD_FIELDS =
  'id,buildTypeId,number,status,state,statusText,branchName,defaultBranch,personal,composite,failedToStart,history,' +
  'webUrl,queuedDate,startDate,finishDate,' +
  `buildType(${BUILD_TYPE_REF_FIELDS}),` +
  `canceledInfo(timestamp,text,user(${USER_REF_FIELDS})),` +
  'running-info(percentageComplete,elapsedSeconds,estimatedTotalSeconds,currentStageText,outdated,probablyHanging),' +
  `triggered(type,details,date,user(${USER_REF_FIELDS})),` +
  'revisions(revision(version,vcsBranchName,vcs-root-instance(id,vcs-root-id,name))),' +
  'testOccurrences(count,passed,failed,newFailed,ignored,muted),' +
  'problemOccurrences(count,newFailed)';

export interface BuildFieldsOptions {
  /**
   * Also return up to N changes of each build inline (`changes($locator(count:N),change(…comment…))`), newest
   * first. Heavier per build (§5.5); if a build comes back with exactly N changes, fetch the rest with
   * `client.changes(id)`. Default: none inline.
   */
  inlineChanges?: number;
}

function checkInline(n: number | undefined): void {
  if (n !== undefined && (!Number.isSafeInteger(n) || n < 1 || n > 10_000)) {
    throw new RangeError(`inlineChanges must be 1..10000, got ${String(n)}`);
  }
}

/** Fields of one build (`GET /app/rest/builds/{buildLocator}`). */
export function buildFields(opts: BuildFieldsOptions = {}): string {
  checkInline(opts.inlineChanges);
  return opts.inlineChanges === undefined ? BUILD_FIELDS : `${BUILD_FIELDS},changes($locator(count:${opts.inlineChanges}),change(${CHANGE_FIELDS}))`;
}

/** Fields of a builds page (`GET /app/rest/builds`): `count,nextHref,build(…)`. */
export function buildsPageFields(opts: BuildFieldsOptions = {}): string {
  return `count,nextHref,build(${buildFields(opts)})`;
}

/** Fields of a changes page (`GET /app/rest/changes?locator=build:(id:N)`), comments included. */
export const CHANGES_PAGE_FIELDS = `count,nextHref,change(${CHANGE_FIELDS},vcsRootInstance(id,vcs-root-id,name))`;

/** Build configuration (`GET /app/rest/buildTypes/{btLocator}`); `type` must be asked for. */
export const BUILD_TYPE_FIELDS = `${BUILD_TYPE_REF_FIELDS},description,paused`;

/** Server info (`GET /app/rest/server`): version, clock (currentTime carries the server offset), identity. */
export const SERVER_FIELDS = 'version,versionMajor,versionMinor,buildNumber,currentTime,startTime,webUrl,internalId';

/** A user (`GET /app/rest/users/{userLocator}`); email is left out (needs a permission, never needed). */
export const USER_FIELDS = USER_REF_FIELDS;
