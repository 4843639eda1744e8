import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { TcBuild } from '../teamcity/types.ts';
import { isCanceled, jiraBuildState, jiraDeploymentState } from './build-state.ts';
import type { EnvironmentRule } from './environments.ts';

const fixture = (path: string): any => JSON.parse(readFileSync(new URL(`../../../shared/fixtures/teamcity/${path}`, import.meta.url), 'utf8'));

const canceledInfo = { timestamp: '20200120T032325+0000', text: 'Cancelling via curl', user: { id: 1, username: 'paul' } };
const base = { id: 1, buildTypeId: 'P_Deploy', buildType: { id: 'P_Deploy', name: 'Deploy to Production', projectName: 'P' } };

// Every state of the simulator brief, plus edge cases: [name, build, build state, deployment state]
const CASES: Array<[string, TcBuild, string]> = [
  ['queued', { ...base, state: 'queued' }, 'pending'],
  ['running', { ...base, state: 'running', status: 'SUCCESS', statusText: 'Step 1/2' }, 'in_progress'],
  ['running, failing so far', { ...base, state: 'running', status: 'FAILURE', statusText: 'Tests failed: 1' }, 'in_progress'],
  ['running, no status yet', { ...base, state: 'running' }, 'in_progress'],
  ['running, being canceled (canceledInfo)', { ...base, state: 'running', status: 'UNKNOWN', statusText: 'Canceled (Step 1/1)', canceledInfo }, 'cancelled'],
  ['running, being canceled (status text only)', { ...base, state: 'running', status: 'UNKNOWN', statusText: 'Canceled' }, 'cancelled'],
  ['running, canceledInfo with a "so far" status', { ...base, state: 'running', status: 'SUCCESS', canceledInfo }, 'cancelled'],
  ['finished success', { ...base, number: '12', state: 'finished', status: 'SUCCESS', statusText: 'Success' }, 'successful'],
  ['finished failure', { ...base, number: '12', state: 'finished', status: 'FAILURE', statusText: 'Tests failed: 2' }, 'failed'],
  ['finished legacy ERROR', { ...base, number: '12', state: 'finished', status: 'ERROR' }, 'failed'],
  ['canceled while running', { ...base, number: '12', state: 'finished', status: 'UNKNOWN', statusText: 'Canceled (Step 2/3)', canceledInfo }, 'cancelled'],
  ['canceled, British spelling, no canceledInfo', { ...base, number: '12', state: 'finished', status: 'UNKNOWN', statusText: 'Cancelled' }, 'cancelled'],
  ['canceled while queued (number N/A)', { ...base, number: 'N/A', state: 'finished', status: 'UNKNOWN', statusText: 'Canceled', canceledInfo }, 'cancelled'],
  ['failed to start', { ...base, number: '13', state: 'finished', status: 'FAILURE', statusText: 'Failed to start', failedToStart: true }, 'failed'],
  ['failed to start, no status', { ...base, state: 'finished', failedToStart: true }, 'failed'],
  ['finished UNKNOWN without cancel marks', { ...base, state: 'finished', status: 'UNKNOWN', statusText: 'Agent lost' }, 'unknown'],
  ['finished SUCCESS with a late canceledInfo keeps its result', { ...base, state: 'finished', status: 'SUCCESS', canceledInfo }, 'successful'],
  ['deleted', { ...base, state: 'deleted' }, 'unknown'],
  ['unknown state', { ...base, state: 'unknown' }, 'unknown'],
];

test('jiraBuildState: every TeamCity state', () => {
  for (const [name, build, expected] of CASES) assert.equal(jiraBuildState(build), expected, name);
});

test('jiraDeploymentState: same table without rules', () => {
  for (const [name, build, expected] of CASES) assert.equal(jiraDeploymentState(build), expected, name);
});

test('jiraDeploymentState: rolled_back only for successful builds of a rule-marked configuration', () => {
  const rules: EnvironmentRule[] = [{ match: { namePattern: 'Rollback *' }, rollback: true }];
  const rollback = { id: 5, buildType: { id: 'P_Rollback', name: 'Rollback Production' } };
  assert.equal(jiraDeploymentState({ ...rollback, state: 'finished', status: 'SUCCESS' }, rules), 'rolled_back');
  assert.equal(jiraDeploymentState({ ...rollback, state: 'finished', status: 'FAILURE' }, rules), 'failed');
  assert.equal(jiraDeploymentState({ ...rollback, state: 'running', status: 'SUCCESS' }, rules), 'in_progress');
  assert.equal(jiraDeploymentState({ ...base, state: 'finished', status: 'SUCCESS' }, rules), 'successful');
  assert.equal(jiraDeploymentState({ id: 6, buildTypeId: 'P_Rollback', state: 'finished', status: 'SUCCESS' }, [{ match: { buildTypeId: 'p_rollback' }, rollback: true }]), 'rolled_back');
  // A more specific rule above can switch it off again.
  const refined: EnvironmentRule[] = [{ match: { namePattern: 'Rollback Production' }, rollback: false }, ...rules];
  assert.equal(jiraDeploymentState({ ...rollback, state: 'finished', status: 'SUCCESS' }, refined), 'successful');
  // No build type at all: no rule can apply.
  assert.equal(jiraDeploymentState({ id: 7, state: 'finished', status: 'SUCCESS' }, rules), 'successful');
});

test('states of the real fixtures', () => {
  const list = fixture('builds/builds-list-long-fields-icelander.json').build as TcBuild[];
  assert.deepEqual(list.map(jiraBuildState), ['successful', 'successful']);
  const beingCanceled = fixture('builds/build-running-being-canceled-icelander.json') as TcBuild;
  assert.equal(beingCanceled.state, 'running');
  assert.equal(isCanceled(beingCanceled), true);
  assert.equal(jiraBuildState(beingCanceled), 'cancelled');
  assert.equal(jiraBuildState(fixture('builds/webhook-payload-BUILD_STARTED-running-2025-ttbuild.json').payload), 'in_progress');
  assert.equal(jiraBuildState(fixture('builds/webhook-payload-BUILD_FINISHED-finished-2025-ttbuild.json').payload), 'successful');
  const queued = fixture('misc/buildQueue-one-queued-icelander.json').build[0] as TcBuild;
  assert.equal(jiraBuildState(queued), 'pending');
});
