// TeamCity REST JSON as we request it (reference/teamcity-rest.md §3–4). Every field is optional
// unless the server always sends it: with explicit `fields`, booleans equal to false, zero counters
// and empty collections may still be absent on older servers, and unknown fields must be ignored.
// Dates are TeamCity strings `yyyyMMdd'T'HHmmss±HHMM` in the server's time zone (see dates.ts).

export type TcBuildState = 'queued' | 'running' | 'finished' | 'deleted' | 'unknown';
export type TcBuildStatus = 'SUCCESS' | 'FAILURE' | 'UNKNOWN' | 'ERROR';
export type TcBuildTypeKind = 'regular' | 'composite' | 'deployment';

export interface TcBuildTypeRef {
  id: string;
  internalId?: string;
  name?: string;
  /** Full project path joined with " :: ". */
  projectName?: string;
  projectId?: string;
  webUrl?: string;
  /** Only present when requested explicitly (§4.6). Absent means regular. */
  type?: TcBuildTypeKind;
}

export interface TcUserRef {
  id?: number;
  username?: string;
  name?: string;
}

export interface TcChange {
  id: number;
  /** Display revision (git SHA, SVN revision, P4 changelist). */
  version?: string;
  username?: string;
  date?: string;
  /** Full commit message: subject and body. Only when requested. */
  comment?: string;
  webUrl?: string;
  vcsRootInstance?: { id?: string; 'vcs-root-id'?: string; name?: string };
}

export interface TcChanges {
  count?: number;
  href?: string;
  nextHref?: string;
  change?: TcChange[];
}

export interface TcRevision {
  version?: string;
  /** Full VCS ref, e.g. refs/heads/feature/ABC-1. */
  vcsBranchName?: string;
  'vcs-root-instance'?: { id?: string; 'vcs-root-id'?: string; name?: string };
}

export interface TcProperty {
  name: string;
  value?: string;
}

export interface TcBuild {
  id: number;
  buildTypeId?: string;
  /** Free text ("183.2940"); absent for queued builds; "N/A" for builds canceled while queued. */
  number?: string;
  status?: TcBuildStatus;
  state: TcBuildState;
  statusText?: string;
  /** Logical branch name (main, feature/ABC-1, pull/42); absent on non-branched configurations. */
  branchName?: string;
  defaultBranch?: boolean;
  personal?: boolean;
  composite?: boolean;
  failedToStart?: boolean;
  /** Added to history after the fact (e.g. a build run on an older revision). */
  history?: boolean;
  webUrl?: string;
  queuedDate?: string;
  startDate?: string;
  finishDate?: string;
  buildType?: TcBuildTypeRef;
  canceledInfo?: { timestamp?: string; text?: string; user?: TcUserRef };
  'running-info'?: {
    percentageComplete?: number;
    elapsedSeconds?: number;
    estimatedTotalSeconds?: number;
    currentStageText?: string;
    outdated?: boolean;
    probablyHanging?: boolean;
  };
  revisions?: { count?: number; revision?: TcRevision[] };
  /** Inline changes when requested with `changes($locator(count:N),change(...))`. */
  changes?: TcChanges;
  testOccurrences?: { count?: number; passed?: number; failed?: number; newFailed?: number; ignored?: number; muted?: number };
  /** Build problems (absent when there are none). */
  problemOccurrences?: { count?: number; newFailed?: number };
  /** Build parameters, when requested (e.g. jira.issues, teamcity.pullRequest.*). */
  properties?: { count?: number; property?: TcProperty[] };
  triggered?: { type?: string; details?: string; date?: string; user?: TcUserRef };
}

export interface TcBuildsPage {
  count?: number;
  href?: string;
  nextHref?: string;
  build?: TcBuild[];
}

export interface TcServer {
  version?: string;
  versionMajor?: number;
  versionMinor?: number;
  buildNumber?: string;
  currentTime?: string;
  startTime?: string;
  webUrl?: string;
  internalId?: string;
}

export interface TcUser {
  id?: number;
  username?: string;
  name?: string;
}

export interface TcBuildTypeDetails extends TcBuildTypeRef {
  description?: string;
  paused?: boolean;
  parameters?: { count?: number; property?: TcProperty[] };
}
