import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { TcBuild } from '../teamcity/types.ts';
import { resolveEnvironment, type Environment } from './environments.ts';
import { collectIssueKeys, issueKeyInputFromBuild } from './issue-keys.ts';
import {
  buildDisplayName,
  durationSeconds,
  pipelineDisplayName,
  pipelineIdOf,
  repositoryUriOf,
  submitBuildsRequest,
  submitDeploymentsRequest,
  testInfoOf,
  toJiraBuild,
  toJiraDeployment,
  TransformError,
} from './transform.ts';

const tc = (path: string): any => JSON.parse(readFileSync(new URL(`../../../shared/fixtures/teamcity/${path}`, import.meta.url), 'utf8'));
const spec = JSON.parse(readFileSync(new URL('../../../shared/fixtures/jira/jira-software-builds-deployments.openapi.json', import.meta.url), 'utf8'));

// --- Atlassian's 2023 OpenAPI request schemas, as published (no drift applied) ---
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
ajv.addFormat('URL', { type: 'string', validate: (s: string) => URL.canParse(s) });
const requestSchema = (path: string) => spec.paths[path].post.requestBody.content['application/json'].schema;
const validateBuilds = ajv.compile(requestSchema('/rest/builds/0.1/bulk'));
const validateDeployments = ajv.compile(requestSchema('/rest/deployments/0.1/bulk'));
// The spec states the property-key rule only in prose.
const PROPERTY_KEY = /^[^_:][^:]*$/;

function assertValid(validate: ValidateFunction, body: unknown): void {
  const ok = validate(body);
  assert.ok(ok, JSON.stringify(validate.errors, null, 2));
  for (const key of Object.keys((body as { properties?: object }).properties ?? {})) assert.match(key, PROPERTY_KEY);
}

const finished: TcBuild = tc('builds/webhook-payload-BUILD_FINISHED-finished-2025-ttbuild.json').payload;
const started: TcBuild = tc('builds/webhook-payload-BUILD_STARTED-running-2025-ttbuild.json').payload;
const beingCanceled: TcBuild = tc('builds/build-running-being-canceled-icelander.json');
const listed: TcBuild[] = tc('builds/builds-list-long-fields-icelander.json').build;
const queued: TcBuild = tc('misc/buildQueue-one-queued-icelander.json').build[0];
const ALL: TcBuild[] = [finished, started, beingCanceled, ...listed, queued];

const ctx = { connectionId: 'conn-1', issueKeys: ['ABC-1'], updateSequenceNumber: 1_700_000_000_000 };
const prod: Environment = { id: 'conn-1/production', displayName: 'Production', type: 'production' };

test('exact BuildData for the finished 2025 webhook build', () => {
  assert.deepEqual(toJiraBuild(finished, { ...ctx, issueKeys: ['abc-1', 'ABC-1', 'DEF-2'] }), {
    schemaVersion: '1.0',
    pipelineId: 'conn-1/Wolf1Remaster_TelltaleTool',
    buildNumber: 901,
    updateSequenceNumber: 1_700_000_000_000,
    displayName: 'Wolf1Remaster / TelltaleTool #2031',
    url: 'http://localhost:8111/buildConfiguration/Wolf1Remaster_TelltaleTool/901',
    state: 'successful',
    lastUpdated: '2025-08-12T03:34:11.000Z',
    issueKeys: ['ABC-1', 'DEF-2'],
    description: 'Success',
    label: '2031',
  });
});

test('exact BuildData for the running build being canceled (commit reference from the VCS root URL)', () => {
  assert.deepEqual(toJiraBuild(beingCanceled, ctx), {
    schemaVersion: '1.0',
    pipelineId: 'conn-1/MattermostTeamcityPlugin_Build',
    buildNumber: 29,
    updateSequenceNumber: 1_700_000_000_000,
    displayName: 'Mattermost Teamcity Plugin / Build #22',
    url: 'http://127.0.0.1:8111/viewLog.html?buildId=29&buildTypeId=MattermostTeamcityPlugin_Build',
    state: 'cancelled',
    // canceledInfo.timestamp is the latest event of a running build being canceled.
    lastUpdated: '2020-01-20T03:23:25.000Z',
    issueKeys: ['ABC-1'],
    description: 'Canceled (Step 1/1)',
    label: '22',
    references: [{ commit: { id: '2691bc37fefa5216ace02434b8a24d042013bea9', repositoryUri: 'https://github.com/icelander/mattermost-teamcity-plugin' } }],
  });
});

test('exact DeploymentData for the finished 2025 webhook build', () => {
  const keys = Array.from({ length: 600 }, (_, i) => `ABC-${i + 1}`);
  const deployment = toJiraDeployment(finished, { ...ctx, issueKeys: keys, environment: prod });
  assert.ok(deployment);
  const values = deployment.associations?.[0]?.values ?? [];
  assert.equal(values.length, 500);
  assert.deepEqual({ ...deployment, associations: 'checked' }, {
    schemaVersion: '1.0',
    deploymentSequenceNumber: 901,
    updateSequenceNumber: 1_700_000_000_000,
    associations: 'checked',
    displayName: 'Wolf1Remaster / TelltaleTool #2031',
    url: 'http://localhost:8111/buildConfiguration/Wolf1Remaster_TelltaleTool/901',
    description: 'Success',
    lastUpdated: '2025-08-12T03:34:11.000Z',
    state: 'successful',
    pipeline: {
      id: 'conn-1/Wolf1Remaster_TelltaleTool',
      displayName: 'Wolf1Remaster / TelltaleTool',
      url: 'http://localhost:8111/buildConfiguration/Wolf1Remaster_TelltaleTool?mode=builds',
    },
    environment: prod,
    label: '2031',
    duration: 2039,
  });
  assert.deepEqual(deployment.associations, [{ associationType: 'issueIdOrKeys', values: keys.slice(0, 500) }]);
});

test('every fixture build maps to a request valid against the 2023 OpenAPI schemas', () => {
  const change = tc('changes/change-single-with-jira-key-comment-files-yabm-sky-2017.json');
  const builds = ALL.map((b) => {
    const { keys } = collectIssueKeys(issueKeyInputFromBuild(b, [change]));
    assert.deepEqual(keys, ['HIRO-1231231']);
    const out = toJiraBuild(b, { ...ctx, issueKeys: keys });
    assert.ok(out, `build ${b.id}`);
    return out;
  });
  assert.deepEqual(builds.map((b) => b.state), ['successful', 'in_progress', 'cancelled', 'successful', 'successful', 'pending']);
  assert.deepEqual(builds.map((b) => b.displayName), [
    'Wolf1Remaster / TelltaleTool #2031',
    'Wolf1Remaster / TelltaleTool #2031',
    'Mattermost Teamcity Plugin / Build #22',
    'Mattermost Teamcity Plugin / Build #2',
    'Mattermost Teamcity Plugin / Build #1',
    'Mattermost Teamcity Plugin / Test Build',
  ]);
  const request = submitBuildsRequest('conn-1', builds, { product: 'TeamCity 2025.07' });
  assert.deepEqual(request.properties, { connectionId: 'conn-1' });
  assertValid(validateBuilds, request);

  const deployments = ALL.map((b) => {
    const environment = resolveEnvironment(b.buildType ?? { id: b.buildTypeId ?? '' }, b, [], { connectionId: 'conn-1' });
    const out = toJiraDeployment(b, { ...ctx, environment });
    assert.ok(out);
    return out;
  });
  assertValid(validateDeployments, submitDeploymentsRequest('conn-1', deployments));
  // Queued, running and canceled deployments still get the required description.
  assert.deepEqual(deployments.map((d) => d.description), ['Success', 'Running', 'Canceled (Step 1/1)', 'Success', 'Success', 'Deployment queued']);
  assert.deepEqual(deployments.map((d) => d.duration), [2039, undefined, undefined, 3, 6, undefined]);
});

test('the validator really rejects bad payloads (guards the schema test itself)', () => {
  const good = toJiraBuild(finished, ctx);
  assert.ok(good);
  assert.equal(validateBuilds({ builds: [{ ...good, state: 'done' }] }), false);
  assert.equal(validateBuilds({ builds: [{ ...good, displayName: 'x'.repeat(256) }] }), false);
  assert.equal(validateBuilds({ builds: [{ ...good, issueKeys: ['not a key'] }] }), false);
  assert.equal(validateBuilds({ builds: [good], properties: { a: '1', b: '2', c: '3', d: '4', e: '5', f: '6' } }), false);
});

test('no issue keys → undefined', () => {
  assert.equal(toJiraBuild(finished, { ...ctx, issueKeys: [] }), undefined);
  assert.equal(toJiraBuild(finished, { ...ctx, issueKeys: ['not a key', ''] }), undefined);
  assert.equal(toJiraDeployment(finished, { ...ctx, issueKeys: [], environment: prod }), undefined);
});

test('builds that cannot be identified or linked throw TransformError', () => {
  const noConfig: TcBuild = { id: 5, state: 'finished', status: 'SUCCESS', webUrl: 'https://tc/b/5', finishDate: '20250101T000000+0000' };
  assert.throws(() => toJiraBuild(noConfig, ctx), (e: unknown) => e instanceof TransformError && e.buildId === 5 && /no build configuration id/.test(e.message));
  assert.throws(() => toJiraBuild({ ...finished, webUrl: 'javascript:alert(1)', buildType: { id: 'X' } }, ctx), /no usable http\(s\) webUrl/);
  const noDates: TcBuild = { id: 6, state: 'queued', buildTypeId: 'X', webUrl: 'https://tc/q/6' };
  assert.throws(() => toJiraBuild(noDates, ctx), /no queuedDate/);
  assert.equal(toJiraBuild(noDates, { ...ctx, observedAt: new Date('2026-01-02T03:04:05Z') })?.lastUpdated, '2026-01-02T03:04:05.000Z');
  assert.throws(() => toJiraBuild(finished, { ...ctx, updateSequenceNumber: 1.5 }), /updateSequenceNumber/);
  assert.throws(() => toJiraBuild(finished, { ...ctx, connectionId: '' }), /connectionId/);
  // The build URL falls back to the configuration's page.
  assert.equal(toJiraBuild({ ...noDates, webUrl: undefined, buildType: { id: 'X', webUrl: 'https://tc/bt/X' } }, { ...ctx, observedAt: new Date(0) })?.url, 'https://tc/bt/X');
});

const synthetic = (over: Partial<TcBuild>): TcBuild => ({
  id: 4242,
  buildTypeId: 'Shop_Backend_Build',
  number: '1.2.3',
  state: 'finished',
  status: 'SUCCESS',
  webUrl: 'https://tc.example.com/buildConfiguration/Shop_Backend_Build/4242',
  startDate: '20250601T100000+0200',
  finishDate: '20250601T101500+0200',
  buildType: { id: 'Shop_Backend_Build', internalId: 'bt17', name: 'Build', projectName: 'Shop :: Backend', webUrl: 'https://tc.example.com/buildConfiguration/Shop_Backend_Build' },
  ...over,
});

test('display names: odd and non-ASCII branches, N/A, no number, default branch placeholder', () => {
  assert.equal(buildDisplayName(synthetic({ branchName: 'feature/ABC-1(x),y' })), 'Shop / Backend / Build #1.2.3 (feature/ABC-1(x),y)');
  assert.equal(buildDisplayName(synthetic({ branchName: 'fix/ünïcödé-日本語-😀' })), 'Shop / Backend / Build #1.2.3 (fix/ünïcödé-日本語-😀)');
  assert.equal(buildDisplayName(synthetic({ branchName: 'main', defaultBranch: true })), 'Shop / Backend / Build #1.2.3 (main)');
  assert.equal(buildDisplayName(synthetic({ branchName: '<default>' })), 'Shop / Backend / Build #1.2.3');
  assert.equal(buildDisplayName(synthetic({ number: 'N/A', status: 'UNKNOWN', statusText: 'Canceled' })), 'Shop / Backend / Build #N/A');
  assert.equal(buildDisplayName(synthetic({ number: undefined, state: 'queued' })), 'Shop / Backend / Build');
  assert.equal(buildDisplayName(synthetic({ branchName: 'a\nb\tc' })), 'Shop / Backend / Build #1.2.3 (a b c)');
  assert.equal(buildDisplayName({ id: 9, state: 'queued' }), 'Build 9');
  assert.equal(pipelineDisplayName(synthetic({})), 'Shop / Backend / Build');
  // Label: the number, else the branch.
  assert.equal(toJiraBuild(synthetic({ number: undefined, branchName: 'dev' }), ctx)?.label, 'dev');
});

test('display names: long names are shortened to 255 with an ellipsis, project middle first', () => {
  const longProjects = { projectName: ['Company', 'Division '.repeat(12), 'Department '.repeat(10), 'Team'].join(' :: ') };
  const name1 = buildDisplayName(synthetic({ branchName: 'main', buildType: { id: 'X', name: 'Build', ...longProjects } }));
  assert.equal(name1, 'Company / … / Team / Build #1.2.3 (main)');
  const name2 = buildDisplayName(synthetic({ branchName: 'feature/' + 'b'.repeat(300), buildType: { id: 'X', name: 'Build', projectName: 'Shop' } }));
  assert.equal(name2.length, 255);
  assert.ok(name2.startsWith('Shop / Build #1.2.3 (feature/bbb'));
  assert.ok(name2.endsWith('b…)'));
  const name3 = buildDisplayName(synthetic({ branchName: 'main', buildType: { id: 'X', name: 'C'.repeat(400), projectName: 'Shop' } }));
  assert.equal(name3.length, 255);
  assert.ok(name3.startsWith('Shop / CCC'));
  assert.ok(name3.endsWith('C… #1.2.3 (main)'));
  const out = toJiraBuild(synthetic({ statusText: 'x'.repeat(1000), branchName: 'b'.repeat(300), number: 'n'.repeat(300) }), ctx);
  assert.ok(out);
  assert.equal(out.description?.length, 255);
  assert.equal(out.label?.length, 255);
  assertValid(validateBuilds, submitBuildsRequest('conn-1', [out]));
});

test('pipeline ids: internalId preferred, bounded to 255, same for a build and its configuration', () => {
  const b = synthetic({});
  assert.equal(pipelineIdOf('c', b), 'c/bt17');
  assert.equal(pipelineIdOf('c', b.buildType!), 'c/bt17');
  assert.equal(pipelineIdOf('c', { id: 'Shop_Build' }), 'c/Shop_Build');
  assert.equal(pipelineIdOf('c', { id: 1, state: 'finished', buildTypeId: 'Y' }), 'c/Y');
  assert.equal(pipelineIdOf('c', { id: 1, state: 'finished' }), undefined);
  const long = pipelineIdOf('c'.repeat(300), b);
  assert.equal(long?.length, 255);
  assert.equal(long, pipelineIdOf('c'.repeat(300), b));
  assert.equal(toJiraBuild(b, ctx)?.pipelineId, 'conn-1/bt17');
});

test('testInfo from TeamCity counters (real TeamCity Cloud snippet and edge cases)', () => {
  const snippet = tc('builds/snippet-testOccurrences-summary-teamcity-cloud-postsharp.json');
  assert.deepEqual(testInfoOf({ testOccurrences: snippet }), { totalNumber: 6553, numberPassed: 6368, numberFailed: 2, numberSkipped: 183 });
  // Muted failures are neither passed nor failed in TeamCity: reported as skipped so the numbers add up.
  assert.deepEqual(testInfoOf({ testOccurrences: { count: 10, passed: 6, failed: 1, ignored: 1, muted: 2 } }), { totalNumber: 10, numberPassed: 6, numberFailed: 1, numberSkipped: 3 });
  // Zero counters are omitted by TeamCity.
  assert.deepEqual(testInfoOf({ testOccurrences: { count: 4, passed: 4 } }), { totalNumber: 4, numberPassed: 4, numberFailed: 0, numberSkipped: 0 });
  assert.equal(testInfoOf({}), undefined);
  assert.equal(testInfoOf({ testOccurrences: { count: 7 } }), undefined);
  assert.equal(testInfoOf({ testOccurrences: { count: 0, passed: 0 } }), undefined);
  const out = toJiraBuild(synthetic({ testOccurrences: snippet }), ctx);
  assert.equal(out?.testInfo?.totalNumber, 6553);
  assertValid(validateBuilds, submitBuildsRequest('conn-1', [out]));
});

test('references: commits per revision (≤ 4 with a branch ref), honest repository URIs, no credentials', () => {
  assert.equal(repositoryUriOf('c', { name: 'https://user:secret@github.com/org/repo.git#refs/heads/main' }), 'https://github.com/org/repo');
  assert.equal(repositoryUriOf('c', { name: 'git@github.com:org/repo.git' }), 'ssh://git@github.com/org/repo.git');
  assert.equal(repositoryUriOf('c', { name: 'ssh://git:pw@host:2222/r.git' }), 'ssh://git@host:2222/r.git');
  assert.equal(repositoryUriOf('c', { name: 'SNS Generic GitLab Repositories', 'vcs-root-id': 'SnsGenericGitLabRepositories', id: '20469' }), 'urn:teamcity:c:vcs-root:SnsGenericGitLabRepositories');
  assert.equal(repositoryUriOf('c', {}), undefined);
  assert.equal(repositoryUriOf('c', undefined), undefined);

  const revisions = Array.from({ length: 7 }, (_, i) => ({ version: `sha${i}`, vcsBranchName: 'refs/heads/main', 'vcs-root-instance': { id: String(i), name: `https://git.example.com/r${i}.git` } }));
  revisions.push({ ...revisions[0]! });
  const withBranch = toJiraBuild(synthetic({ branchName: 'feature/ABC-1', revisions: { revision: revisions } }), ctx);
  assert.equal(withBranch?.references?.length, 5);
  assert.deepEqual(withBranch?.references?.[0], { commit: { id: 'sha0', repositoryUri: 'https://git.example.com/r0' } });
  assert.deepEqual(withBranch?.references?.[4], { ref: { name: 'feature/ABC-1', uri: 'https://tc.example.com/buildConfiguration/Shop_Backend_Build' } });
  const noBranch = toJiraBuild(synthetic({ revisions: { revision: revisions } }), ctx);
  assert.equal(noBranch?.references?.length, 5);
  assert.ok(noBranch?.references?.every((r) => r.commit));
  assertValid(validateBuilds, submitBuildsRequest('conn-1', [withBranch, noBranch]));
  // The real list fixture has empty vcs-root-instance objects: no commit reference, no references at all.
  assert.equal(toJiraBuild(listed[0]!, ctx)?.references, undefined);
});

test('webUrlOverride rewrites every URL', () => {
  const rewrite = (u: string) => u.replace('http://localhost:8111', 'https://tc.public.example');
  const b = toJiraBuild(finished, { ...ctx, webUrlOverride: rewrite });
  assert.equal(b?.url, 'https://tc.public.example/buildConfiguration/Wolf1Remaster_TelltaleTool/901');
  const d = toJiraDeployment(finished, { ...ctx, environment: prod, webUrlOverride: rewrite });
  assert.equal(d?.pipeline.url, 'https://tc.public.example/buildConfiguration/Wolf1Remaster_TelltaleTool?mode=builds');
});

test('deployments: state override, rolled_back, environment fields bounded, duration only when finished', () => {
  const d = toJiraDeployment(synthetic({}), { ...ctx, environment: { id: 'e'.repeat(300), displayName: 'E'.repeat(300), type: 'staging' }, state: 'rolled_back' });
  assert.ok(d);
  assert.equal(d.state, 'rolled_back');
  assert.equal(d.environment.id.length, 255);
  assert.equal(d.environment.displayName.length, 255);
  assert.equal(d.duration, 900);
  assert.equal(d.description, 'Deployment rolled back');
  assertValid(validateDeployments, submitDeploymentsRequest('conn-1', [d]));
  assert.equal(durationSeconds(synthetic({ state: 'running', finishDate: undefined })), undefined);
  assert.equal(durationSeconds(synthetic({ finishDate: 'garbage' })), undefined);
  assert.throws(() => submitDeploymentsRequest('', [d]), TypeError);
});
