import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startInstalled, DEFAULT_MODULES, type BuildsResponse, type DeploymentsResponse, type ErrorMessages } from './testing.ts';

interface Sample { properties?: unknown; builds: Array<Record<string, unknown>>; deployments: Array<Record<string, unknown> & { pipeline: Record<string, unknown> }> }
const sample = (name: string): Sample =>
  JSON.parse(readFileSync(new URL(`../../../shared/fixtures/jira/samples/${name}`, import.meta.url), 'utf8')) as Sample;

function build(n: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: '1.0', pipelineId: 'conn-1/bt1', buildNumber: n, updateSequenceNumber: 1000 + n, displayName: `Build #${n}`,
    url: `https://tc.example.com/build/${n}`, state: 'successful', lastUpdated: '2026-12-01T10:00:00Z', issueKeys: ['TCJ-1'], ...over,
  };
}

function deployment(n: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: '1.0', deploymentSequenceNumber: n, updateSequenceNumber: 2000 + n, displayName: `Deploy #${n}`,
    url: `https://tc.example.com/build/${n}`, description: 'deploy', lastUpdated: '2026-12-01T10:00:00Z', state: 'successful',
    pipeline: { id: 'conn-1/deploy', displayName: 'Deploy', url: 'https://tc.example.com/bt/deploy' },
    environment: { id: 'prod', displayName: 'Production', type: 'production' },
    associations: [{ associationType: 'issueIdOrKeys', values: ['TCJ-2'] }], ...over,
  };
}

void test('official sample bodies: the Jenkins ones are valid and accepted; github-for-jira ones break the spec as documented', async () => {
  const { sim, call, close } = await startInstalled({ seed: 20 });
  try {
    sim.site('acme').addProject({ key: 'JEN', name: 'Jenkins' });
    sim.site('acme').addIssue('JEN', 'x'); // JEN-1 … JEN-25
    for (let i = 2; i <= 25; i++) sim.site('acme').addIssue('JEN', `issue ${i}`);
    const b = await call('POST', '/rest/builds/0.1/bulk', { body: sample('jenkins-plugin.builds-bulk.request.json') });
    assert.equal(b.status, 202);
    assert.deepEqual(b.body, { acceptedBuilds: [{ pipelineId: 'pipelineId', buildNumber: 12 }], rejectedBuilds: [], unknownIssueKeys: [] });
    const d = await call('POST', '/rest/deployments/0.1/bulk', { body: sample('jenkins-plugin.deployments-bulk.request.json') });
    assert.equal(d.status, 202);
    assert.deepEqual(d.body, {
      acceptedDeployments: [{ pipelineId: 'pipelineId', environmentId: 'stg-east', deploymentSequenceNumber: 42 }],
      rejectedDeployments: [], unknownIssueKeys: [], unknownAssociations: [],
    });

    // github-for-jira sends numeric property values: the spec says string → 400 for the whole request.
    const gh = sample('github-for-jira.builds-bulk.request.json');
    const bad = await call('POST', '/rest/builds/0.1/bulk', { body: gh });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, [{ message: "'properties.gitHubInstallationId' must be string" }, { message: "'properties.repositoryId' must be string" }]);
    // With string properties the envelope passes; its test url "test-repo-url" is not a URL → rejected item.
    gh.properties = { gitHubInstallationId: '1234', repositoryId: '123' };
    const item = await call('POST', '/rest/builds/0.1/bulk', { body: gh });
    assert.equal(item.status, 202);
    assert.deepEqual((item.body as BuildsResponse).rejectedBuilds, [{ key: { pipelineId: '9751894', buildNumber: 84 }, errors: [{ message: `'url' must match format "URL"` }] }]);
    // Same sample with a real URL and a known key: accepted (undocumented preventTransitions/operationType tolerated).
    gh.builds[0]!['url'] = 'https://github.com/o/r/actions/runs/1';
    gh.builds[0]!['issueKeys'] = ['TCJ-3'];
    assert.deepEqual(((await call('POST', '/rest/builds/0.1/bulk', { body: gh })).body as BuildsResponse).acceptedBuilds, [{ pipelineId: '9751894', buildNumber: 84 }]);
    // github-for-jira deployment: commit association (2026 API) accepted once url and properties are valid.
    const ghd = sample('github-for-jira.deployments-bulk.request.json');
    ghd.properties = { gitHubInstallationId: '1234' };
    ghd.deployments[0]!['url'] = 'https://github.com/o/r/commit/1/checks';
    ghd.deployments[0]!.pipeline['url'] = 'https://github.com/o/r/commit/1/checks';
    const dr = await call('POST', '/rest/deployments/0.1/bulk', { body: ghd });
    assert.equal(dr.status, 202);
    assert.deepEqual((dr.body as DeploymentsResponse).unknownAssociations, [{ associationType: 'issueIdOrKeys', values: ['TEST-123'] }]);
    assert.equal((dr.body as DeploymentsResponse).rejectedDeployments[0]!.errors[0]!.message, 'No valid issues or services found for deployment');
  } finally {
    await close();
  }
});

void test('builds: 400 for a bad envelope, per-item rejection, unknownIssueKeys, partial keys', async () => {
  const { sim, call, close } = await startInstalled({ seed: 21 });
  try {
    assert.equal((await call('POST', '/rest/builds/0.1/bulk', { body: { builds: [] } })).status, 400);
    assert.equal((await call('POST', '/rest/builds/0.1/bulk', { body: {} })).status, 400);
    assert.equal((await call('POST', '/rest/builds/0.1/bulk', { rawBody: '{not json' })).status, 400);
    const props6 = { a: '1', b: '2', c: '3', d: '4', e: '5', f: '6' };
    assert.equal((await call('POST', '/rest/builds/0.1/bulk', { body: { properties: props6, builds: [build(1)] } })).status, 400);
    assert.equal((await call('POST', '/rest/builds/0.1/bulk', { body: { properties: { _x: '1' }, builds: [build(1)] } })).status, 400);
    assert.equal((await call('POST', '/rest/builds/0.1/bulk', { body: { properties: { 'a:b': '1' }, builds: [build(1)] } })).status, 400);
    assert.equal((await call('POST', '/rest/builds/0.1/bulk', { body: { builds: [{ displayName: 'no key' }] } })).status, 400);

    const { url: _url, ...noUrl } = build(2);
    const r = await call('POST', '/rest/builds/0.1/bulk', {
      body: {
        builds: [
          build(1),
          noUrl,
          build(3, { issueKeys: ['NOPE-1', 'TCJ-2'] }),
          build(4, { issueKeys: ['NOPE-2'] }),
          build(5, { state: 'exploded', displayName: 'x'.repeat(256) }),
          build(6, { issueKeys: Array.from({ length: 101 }, (_, i) => `TCJ-${i + 1}`) }),
          build(7, { issueKeys: ['TCJ 1'] }),
          build(10, { issueKeys: ['tcj-1'] }),
        ],
      },
    });
    assert.equal(r.status, 202);
    const body = r.body as BuildsResponse;
    assert.deepEqual(body.acceptedBuilds, [{ pipelineId: 'conn-1/bt1', buildNumber: 1 }, { pipelineId: 'conn-1/bt1', buildNumber: 3 }]);
    assert.deepEqual(body.rejectedBuilds.map((x) => [x.key.buildNumber, x.errors.map((e) => e.message)]), [
      [2, ["'url' is required"]],
      [4, ['No valid issues found for build']],
      [5, ["'displayName' must NOT have more than 255 characters", "'state' must be equal to one of the allowed values"]],
      [6, ["'issueKeys' must NOT have more than 100 items"]],
      [7, ["'issueKeys[0]' must match pattern \"^\\w{1,255}-\\d{1,255}$\""]],
      [10, ['No valid issues found for build']],
    ]);
    // Keys are matched case-sensitively (Jira keys are upper case).
    assert.deepEqual(body.unknownIssueKeys, ['NOPE-1', 'NOPE-2', 'tcj-1']);
    assert.deepEqual(sim.site('acme').getBuild('conn-1/bt1', 3)?.issueKeys, ['TCJ-2']);
    // 2026 drift: builds may use associations instead of issueKeys (ids resolve too).
    const issueId = sim.site('acme').findIssue('TCJ-4')!.id;
    const a = await call('POST', '/rest/builds/0.1/bulk', { body: { builds: [build(8, { issueKeys: undefined, associations: [{ associationType: 'issueIdOrKeys', values: [issueId] }] })] } });
    assert.deepEqual((a.body as BuildsResponse).acceptedBuilds, [{ pipelineId: 'conn-1/bt1', buildNumber: 8 }]);
    assert.deepEqual(sim.site('acme').getBuild('conn-1/bt1', 8)?.issueKeys, ['TCJ-4']);
    const none = await call('POST', '/rest/builds/0.1/bulk', { body: { builds: [build(9, { issueKeys: undefined })] } });
    assert.deepEqual((none.body as BuildsResponse).rejectedBuilds[0]!.errors, [{ message: "'issueKeys' is required" }]);
  } finally {
    await close();
  }
});

void test('limits: > 100 entities → 413, body over maxRequestBytes → 413', async () => {
  const { call, close } = await startInstalled({ seed: 22, maxRequestBytes: 64_000 });
  try {
    const hundred = Array.from({ length: 100 }, (_, i) => build(i + 1));
    assert.equal((await call('POST', '/rest/builds/0.1/bulk', { body: { builds: hundred } })).status, 202);
    const many = await call('POST', '/rest/builds/0.1/bulk', { body: { builds: [...hundred, build(101)] } });
    assert.equal(many.status, 413);
    assert.match((many.body as ErrorMessages)[0]!.message, /Submit fewer builds/);
    const deps = Array.from({ length: 101 }, (_, i) => deployment(i + 1));
    assert.equal((await call('POST', '/rest/deployments/0.1/bulk', { body: { deployments: deps } })).status, 413);
    const big = await call('POST', '/rest/builds/0.1/bulk', { body: { builds: [build(1, { description: 'x'.repeat(70_000) })] } });
    assert.equal(big.status, 413);
  } finally {
    await close();
  }
});

void test('upsert by updateSequenceNumber: older or equal ignored (still accepted), newer replaces', async () => {
  const { sim, call, close } = await startInstalled({ seed: 23 });
  try {
    const post = (b: Record<string, unknown>) => call('POST', '/rest/builds/0.1/bulk', { body: { builds: [b] } });
    await post(build(1, { updateSequenceNumber: 10, state: 'in_progress' }));
    const older = await post(build(1, { updateSequenceNumber: 9, state: 'failed' }));
    assert.deepEqual((older.body as BuildsResponse).acceptedBuilds, [{ pipelineId: 'conn-1/bt1', buildNumber: 1 }]);
    assert.equal(sim.site('acme').getBuild('conn-1/bt1', 1)?.data['state'], 'in_progress');
    await post(build(1, { updateSequenceNumber: 10, state: 'failed' }));
    assert.equal(sim.site('acme').getBuild('conn-1/bt1', 1)?.data['state'], 'in_progress', 'equal is ignored');
    await post(build(1, { updateSequenceNumber: 11, state: 'successful', issueKeys: ['TCJ-5'] }));
    const stored = sim.site('acme').getBuild('conn-1/bt1', 1)!;
    assert.equal(stored.data['state'], 'successful');
    assert.deepEqual(stored.issueKeys, ['TCJ-5']);
    assert.equal(sim.site('acme').builds.size, 1);

    const dpost = (d: Record<string, unknown>) => call('POST', '/rest/deployments/0.1/bulk', { body: { deployments: [d] } });
    await dpost(deployment(1, { updateSequenceNumber: 5, state: 'in_progress' }));
    await dpost(deployment(1, { updateSequenceNumber: 4, state: 'failed' }));
    assert.equal(sim.site('acme').getDeployment('conn-1/deploy', 'prod', 1)?.data['state'], 'in_progress');
    await dpost(deployment(1, { updateSequenceNumber: 6, state: 'successful' }));
    assert.equal(sim.site('acme').getDeployment('conn-1/deploy', 'prod', 1)?.data['state'], 'successful');
  } finally {
    await close();
  }
});

void test('bulkByProperties deletes exactly the matching entities (AND); no property → 400', async () => {
  const { sim, call, close } = await startInstalled({ seed: 24 });
  try {
    const post = (props: Record<string, string>, n: number) => call('POST', '/rest/builds/0.1/bulk', { body: { properties: props, builds: [build(n)] } });
    await post({ teamcityServerId: 's1', projectId: 'p1' }, 1);
    await post({ teamcityServerId: 's1', projectId: 'p2' }, 2);
    await post({ teamcityServerId: 's2', projectId: 'p1' }, 3);
    await call('POST', '/rest/deployments/0.1/bulk', { body: { properties: { teamcityServerId: 's1' }, deployments: [deployment(1)] } });
    assert.equal((await call('DELETE', '/rest/builds/0.1/bulkByProperties')).status, 400);
    assert.equal((await call('DELETE', '/rest/builds/0.1/bulkByProperties?teamcityServerId=s1&projectId=p1')).status, 202);
    assert.deepEqual([...sim.site('acme').builds.values()].map((b) => b.buildNumber).sort(), [2, 3]);
    assert.equal((await call('DELETE', '/rest/builds/0.1/bulkByProperties?teamcityServerId=s1')).status, 202);
    assert.deepEqual([...sim.site('acme').builds.values()].map((b) => b.buildNumber), [3]);
    assert.equal(sim.site('acme').deployments.size, 1, 'builds delete leaves deployments');
    assert.equal((await call('DELETE', '/rest/deployments/0.1/bulkByProperties?teamcityServerId=s1')).status, 202);
    assert.equal(sim.site('acme').deployments.size, 0);
  } finally {
    await close();
  }
});

void test('deployments: deprecated issueKeys, unknown keys, service associations, 500-value cap', async () => {
  const { sim, call, close } = await startInstalled({ seed: 25 });
  try {
    const r = await call('POST', '/rest/deployments/0.1/bulk', {
      body: {
        deployments: [
          deployment(1, { associations: undefined, issueKeys: ['TCJ-1', 'NOPE-9'] }),
          deployment(2, { associations: [{ associationType: 'serviceIdOrKeys', values: ['svc-1'] }] }),
          deployment(3, { associations: [{ associationType: 'issueKeys', values: Array.from({ length: 300 }, (_, i) => `TCJ-${i + 1}`) }, { associationType: 'serviceIdOrKeys', values: Array.from({ length: 201 }, (_, i) => `s${i}`) }] }),
          deployment(4, { associations: [{ associationType: 'commit', values: [{ commitHash: 'abc', repositoryId: '1' }] }] }),
          deployment(5, { associations: undefined }),
          deployment(6, { environment: { id: 'x', displayName: 'X', type: 'prod' } }),
        ],
      },
    });
    assert.equal(r.status, 202);
    const body = r.body as DeploymentsResponse;
    assert.deepEqual(body.acceptedDeployments.map((d) => d.deploymentSequenceNumber), [1, 2]);
    assert.deepEqual(body.unknownIssueKeys, ['NOPE-9']);
    assert.deepEqual(body.rejectedDeployments.map((d) => [d.key.deploymentSequenceNumber, d.errors[0]!.message]), [
      [3, 'The total number of association values must not exceed 500 (got 501)'],
      [4, "'associations' must contain at least one issue or service association"],
      [5, "Must specify one of 'issueKeys' or 'associations'"],
      [6, "'environment.type' must be equal to one of the allowed values"],
    ]);
    assert.deepEqual(sim.site('acme').getDeployment('conn-1/deploy', 'prod', 1)?.issueKeys, ['TCJ-1']);
  } finally {
    await close();
  }
});

void test('403 without the provider module or the scope; GET-by-key works but is flagged test-only', async () => {
  const noDeployments = await startInstalled({ seed: 26 }, { modules: { jiraBuildInfoProvider: DEFAULT_MODULES.jiraBuildInfoProvider }, scopes: ['READ', 'WRITE'] });
  try {
    const { call, sim } = noDeployments;
    const d = await call('POST', '/rest/deployments/0.1/bulk', { body: { deployments: [deployment(1)] } });
    assert.equal(d.status, 403);
    assert.match((d.body as ErrorMessages)[0]!.message, /jiraDeploymentInfoProvider/);
    assert.equal((await call('POST', '/rest/builds/0.1/bulk', { body: { builds: [build(1)] } })).status, 202);
    const del = await call('DELETE', '/rest/builds/0.1/bulkByProperties?x=1');
    assert.equal(del.status, 403, 'DELETE scope missing');
    assert.match((del.body as ErrorMessages)[0]!.message, /'DELETE' scope/);

    const got = await call('GET', `/rest/builds/0.1/pipelines/${encodeURIComponent('conn-1/bt1')}/builds/1`);
    assert.equal(got.status, 200);
    assert.equal((got.body as { displayName: string }).displayName, 'Build #1');
    assert.equal((await call('GET', '/rest/builds/0.1/pipelines/nope/builds/1')).status, 404);
    const flagged = sim.unexpectedCalls();
    assert.equal(flagged.length, 2);
    assert.ok(flagged.every((r) => r.operation === 'getBuildByKey' && /test-only/.test(r.unexpected ?? '')));
  } finally {
    await noDeployments.close();
  }
});
