// TeamCity build → Jira build / deployment state (design.md §3, reference/teamcity-rest.md §4.4).
// Pure functions, no I/O.
//
// | TeamCity                                                              | Jira          |
// |-----------------------------------------------------------------------|---------------|
// | any state with `canceledInfo`, or status UNKNOWN + "Cancel…" text      | cancelled     |
// | queued                                                                | pending       |
// | running (SUCCESS/FAILURE "so far" or no status)                       | in_progress   |
// | finished, `failedToStart`                                             | failed        |
// | finished SUCCESS                                                      | successful    |
// | finished FAILURE / ERROR                                              | failed        |
// | finished UNKNOWN without cancel marks, deleted, unknown               | unknown       |
//
// Canceling is not instantaneous: a build being stopped stays `running` with `status: UNKNOWN`,
// `statusText: "Canceled (Step 1/1)"` and a `canceledInfo` until the agent finishes; a build removed from
// the queue becomes a finished record with `number: "N/A"`, `status: UNKNOWN`, "Canceled" and a
// `canceledInfo`. Both are cancelled. A finished SUCCESS/FAILURE build keeps its result even if a
// `canceledInfo` is present (the build finished before the cancel took effect). Deployments use the same
// table, plus `rolled_back` for a successful build of a configuration a rule marks as a rollback.
import type { BuildState, DeploymentState } from '../jira/models.ts';
import type { TcBuild } from '../teamcity/types.ts';
import { isRollbackConfiguration, type EnvironmentRule } from './environments.ts';

type StateInput = Pick<TcBuild, 'state' | 'status' | 'statusText' | 'canceledInfo' | 'failedToStart'>;

/** Whether TeamCity marks the build as canceled (or being canceled). */
export function isCanceled(build: StateInput): boolean {
  if (build.canceledInfo) return true;
  return build.status === 'UNKNOWN' && /^\s*cancel/i.test(build.statusText ?? '');
}

export function jiraBuildState(build: StateInput): BuildState {
  switch (build.state) {
    case 'queued':
      return isCanceled(build) ? 'cancelled' : 'pending';
    case 'running':
      return isCanceled(build) ? 'cancelled' : 'in_progress';
    case 'finished':
      if (build.failedToStart) return 'failed';
      if (build.status === 'SUCCESS') return 'successful';
      if (build.status === 'FAILURE' || build.status === 'ERROR') return 'failed';
      return isCanceled(build) ? 'cancelled' : 'unknown';
    default:
      return 'unknown';
  }
}

/** As `jiraBuildState`, plus `rolled_back` for a successful build of a configuration a rule marks as a rollback. */
export function jiraDeploymentState(build: TcBuild, rules: readonly EnvironmentRule[] = []): DeploymentState {
  const state = jiraBuildState(build);
  if (state !== 'successful') return state;
  const buildType = build.buildType ?? (build.buildTypeId ? { id: build.buildTypeId } : undefined);
  return buildType && isRollbackConfiguration(buildType, rules) ? 'rolled_back' : state;
}
