// JiraClient against the Jira Cloud simulator (sandbox/jira) over real loopback HTTP: the simulator
// verifies every token (HS256, iss, exp, exact qsh) independently of src/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startInstalled } from '../../sandbox/jira/testing.ts';
import type { JiraSimulator, JiraSimulatorOptions } from '../../sandbox/jira/server.ts';
import { createLogger } from '../log.ts';
import { jiraRequestSeconds, jiraRetries } from '../metrics.ts';
import { createOutboundDispatcher, OutboundBlockedError } from '../net/outbound.ts';
import { ConnectJwtCredentials, type JiraCredentials } from './credentials.ts';
import {
  JiraAuthError,
  JiraClient,
  JiraHttpError,
  JiraNetworkError,
  JiraRateLimitedError,
  JiraResponseError,
  jiraErrorMessage,
  requestedWaitMs,
  type JiraClientOptions,
} from './client.ts';
import type { BuildData, DeploymentData } from './models.ts';

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');
const silent = createLogger({ level: 'silent' });

let seedCounter = 500;

interface Env {
  sim: JiraSimulator;
  client: JiraClient;
  appKey: string;
  sharedSecret: string;
  baseUrl: string;
  authFailures: Array<{ status: number; endpoint: string }>;
  sleeps: number[];
  makeClient(o?: Partial<JiraClientOptions>): JiraClient;
  close(): Promise<void>;
}

async function setup(simOptions: JiraSimulatorOptions = {}, clientOptions: Partial<JiraClientOptions> = {}): Promise<Env> {
  const env = await startInstalled({ seed: seedCounter++, ...simOptions });
  const baseUrl = env.sim.siteUrl('acme');
  assert.match(baseUrl, /^http:\/\/127\.0\.0\.1:\d+\/sites\/acme$/, 'site with a context path');
  const dispatcher = createOutboundDispatcher({ allowHosts: [new URL(baseUrl).host] });
  const authFailures: Env['authFailures'] = [];
  const sleeps: number[] = [];
  const makeClient = (o: Partial<JiraClientOptions> = {}): JiraClient =>
    new JiraClient({
      baseUrl,
      credentials: new ConnectJwtCredentials(env.install.appKey, env.install.sharedSecret),
      dispatcher,
      log: silent,
      onAuthFailure: (status, detail) => {
        authFailures.push({ status, endpoint: detail.endpoint });
      },
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      random: () => 0.5,
      ...clientOptions,
      ...o,
    });
  return {
    sim: env.sim,
    client: makeClient(),
    appKey: env.install.appKey,
    sharedSecret: env.install.sharedSecret,
    baseUrl,
    authFailures,
    sleeps,
    makeClient,
    close: async () => {
      await dispatcher.close();
      await env.close();
    },
  };
}

/** Every request the simulator saw (except injected faults, answered before auth) carried a valid token, and none was unexpected. */
function assertCleanTraffic(env: Env): void {
  const api = env.sim.requests({ kind: 'api' });
  assert.ok(api.length > 0);
  for (const r of api) {
    if (r.fault) continue;
    assert.equal(r.authError, undefined, `${r.method} ${r.path}: ${r.authError}`);
    assert.equal(r.claims?.iss, env.appKey);
  }
  assert.deepEqual(env.sim.unexpectedCalls(), []);
}

function build(n: number, issueKeys: string[] = ['TCJ-1'], extra: Partial<BuildData> = {}): BuildData {
  return {
    schemaVersion: '1.0',
    pipelineId: 'conn-1/Project_Build',
    buildNumber: n,
    updateSequenceNumber: 1_800_000_000_000 + n,
    displayName: `Project / Build #${n} (main)`,
    url: `https://tc.example.com/buildConfiguration/Project_Build/${n}`,
    state: 'successful',
    lastUpdated: '2026-12-01T10:00:00Z',
    issueKeys,
    testInfo: { totalNumber: 10, numberPassed: 9, numberFailed: 1, numberSkipped: 0 },
    references: [{ commit: { id: 'a1b2c3', repositoryUri: 'https://git.example.com/repo' }, ref: { name: 'main', uri: 'https://git.example.com/repo/tree/main' } }],
    ...extra,
  };
}

function deployment(n: number, keys: string[] = ['TCJ-2'], extra: Partial<DeploymentData> = {}): DeploymentData {
  return {
    schemaVersion: '1.0',
    deploymentSequenceNumber: n,
    updateSequenceNumber: 1_800_000_000_000 + n,
    associations: [
      { associationType: 'issueIdOrKeys', values: keys },
      { associationType: 'commit', values: [{ commitHash: 'a1b2c3d4', repositoryId: 'repo-1' }] },
    ],
    displayName: `Deploy #${n}`,
    url: `https://tc.example.com/buildConfiguration/Project_Deploy/${n}`,
    description: 'Deploy to production',
    lastUpdated: '2026-12-01T10:00:00Z',
    label: `1.0.${n}`,
    duration: 42,
    state: 'successful',
    pipeline: { id: 'conn-1/Project_Deploy', displayName: 'Project / Deploy', url: 'https://tc.example.com/buildConfiguration/Project_Deploy' },
    environment: { id: 'prod', displayName: 'Production', type: 'production' },
    ...extra,
  };
}

function submitSizes(sim: JiraSimulator, operation: string): number[] {
  return sim.requests({ operation }).map((r) => {
    const body = r.body as { builds?: unknown[]; deployments?: unknown[] } | undefined;
    return (body?.builds ?? body?.deployments ?? []).length;
  });
}

void test('all seven endpoints pass the simulator JWT/QSH checks (context path, DELETE with query, GET issue ?fields=)', async () => {
  const env = await setup();
  const { sim, client } = env;
  try {
    const alice = sim.site('acme').user('Alice Admin')!;
    const grants = await client.checkPermissions({
      accountId: alice.accountId,
      globalPermissions: ['ADMINISTER'],
      projectPermissions: [{ permissions: ['BROWSE_PROJECTS'], projects: [10000] }],
    });
    assert.deepEqual(grants.globalPermissions, ['ADMINISTER']);
    assert.deepEqual(grants.projectPermissions.map((p) => [p.permission, p.projects]), [['BROWSE_PROJECTS', [10000]]]);

    const issue = await client.getIssue('TCJ-1', ['summary']);
    assert.equal(issue.key, 'TCJ-1');
    assert.equal(issue.fields.project.key, 'TCJ');
    assert.equal(issue.fields.project.id, '10000');
    assert.equal(typeof issue.fields['summary'], 'string');
    const byId = await client.getIssue(issue.id);
    assert.equal(byId.key, 'TCJ-1');

    const project = await client.getProject('TCJ');
    assert.deepEqual([project.id, project.key, typeof project.name], ['10000', 'TCJ', 'string']);
    assert.equal((await client.getProject(10001)).key, 'DEMO');

    const builds = await client.submitBuilds({ properties: { connectionId: 'conn-1', tenant: 't 1/x' }, builds: [build(1)], providerMetadata: { product: 'TeamCity 2026.1' } });
    assert.deepEqual(builds.acceptedBuilds, [{ pipelineId: 'conn-1/Project_Build', buildNumber: 1 }]);
    assert.deepEqual(builds.rejectedBuilds, []);
    const deps = await client.submitDeployments({ properties: { connectionId: 'conn-1' }, deployments: [deployment(7)] });
    assert.deepEqual(deps.acceptedDeployments, [{ pipelineId: 'conn-1/Project_Deploy', environmentId: 'prod', deploymentSequenceNumber: 7 }]);
    assert.equal(sim.site('acme').builds.size, 1);
    assert.equal(sim.site('acme').deployments.size, 1);

    // Values that need encoding in the query, and an AND of two properties.
    await client.deleteBuildsByProperties({ connectionId: 'conn-1', tenant: 't 1/x' });
    await client.deleteDeploymentsByProperties({ connectionId: 'conn-1' });
    assert.equal(sim.site('acme').builds.size, 0);
    assert.equal(sim.site('acme').deployments.size, 0);

    // The qsh of each call, computed here by hand relative to the site's base URL (context path stripped).
    const qshOf = (method: string, path: string) => sim.requests({ kind: 'api', method }).find((r) => r.path === path)?.claims?.['qsh'];
    assert.equal(qshOf('DELETE', '/rest/builds/0.1/bulkByProperties'), sha256('DELETE&/rest/builds/0.1/bulkByProperties&connectionId=conn-1&tenant=t%201%2Fx'));
    assert.equal(qshOf('DELETE', '/rest/deployments/0.1/bulkByProperties'), sha256('DELETE&/rest/deployments/0.1/bulkByProperties&connectionId=conn-1'));
    assert.equal(qshOf('POST', '/rest/builds/0.1/bulk'), '0947f5bc05f2c4728bc2e3905089951a4aa601772a79268aa983e2ef881b79ff');
    assert.equal(qshOf('POST', '/rest/api/3/permissions/check'), 'f376e8d4bd28bfbf285b9f7344dc08f1fbaa95eb13c4f4decdc9331ac60f6cf1');
    assert.equal(qshOf('GET', '/rest/api/3/project/10001'), sha256('GET&/rest/api/3/project/10001&'));
    const issueCall = sim.requests({ operation: 'getIssue' })[0]!;
    assert.deepEqual(issueCall.query, { fields: ['project,summary'] });
    assert.equal(issueCall.claims?.['qsh'], sha256('GET&/rest/api/3/issue/TCJ-1&fields=project%2Csummary'));

    const ops = sim.requests({ kind: 'api' }).map((r) => `${r.operation} ${r.status}`);
    assert.deepEqual(ops, [
      'getBulkPermissions 200', 'getIssue 200', 'getIssue 200', 'getProject 200', 'getProject 200',
      'submitBuilds 202', 'submitDeployments 202', 'deleteBuildsByProperty 202', 'deleteDeploymentsByProperty 202',
    ]);
    for (const r of sim.requests({ kind: 'api' })) {
      assert.ok(typeof r.claims?.exp === 'number' && typeof r.claims.iat === 'number' && r.claims.exp - r.claims.iat === 180);
    }
    assertCleanTraffic(env);
  } finally {
    await env.close();
  }
});

void test('path parameters are percent-encoded: no traversal to another endpoint; 404 is a JiraHttpError with Jira\'s message', async () => {
  const env = await setup();
  try {
    await assert.rejects(env.client.getIssue('../project/TCJ'), (err: unknown) => {
      assert.ok(err instanceof JiraHttpError);
      assert.equal(err.status, 404);
      assert.equal(err.endpoint, '/rest/api/3/issue/{issueIdOrKey}');
      assert.ok(err.jiraMessage.length > 0);
      return true;
    });
    const r = env.sim.requests({ kind: 'api' });
    assert.equal(r.length, 1, '4xx is not retried');
    assert.equal(r[0]!.operation, 'getIssue');
    assert.equal(r[0]!.path, '/rest/api/3/issue/..%2Fproject%2FTCJ');
    await assert.rejects(env.client.getProject(''), TypeError);
    await assert.rejects(env.client.deleteBuildsByProperties({}), /at least one property/);
    await assert.rejects(env.client.deleteDeploymentsByProperties({ _updateSequenceNumber: '1' }), /invalid property name/);
    assert.equal(env.sim.requests({ kind: 'api' }).length, 1, 'invalid input never reaches Jira');
    assertCleanTraffic(env);
  } finally {
    await env.close();
  }
});

void test('429 with Retry-After: 2 is waited for (real clock, >= 2 s) and then succeeds', async () => {
  const env = await setup({}, { sleep: undefined, random: undefined });
  try {
    const before = (await jiraRetries.get()).values.find((v) => v.labels.endpoint === '/rest/builds/0.1/bulk' && v.labels.reason === '429')?.value ?? 0;
    env.sim.faults.failNext({ status: 429, retryAfterSeconds: 2, path: '/rest/builds/0.1/bulk' });
    const started = Date.now();
    const result = await env.client.submitBuilds({ builds: [build(1)] });
    const elapsed = Date.now() - started;
    assert.equal(result.acceptedBuilds.length, 1);
    const calls = env.sim.requests({ operation: 'submitBuilds' });
    assert.deepEqual(calls.map((c) => c.status), [429, 202]);
    assert.ok(calls[1]!.at - calls[0]!.at >= 2000, `retried after ${calls[1]!.at - calls[0]!.at} ms`);
    assert.ok(elapsed >= 2000 && elapsed < 10_000, `took ${elapsed} ms`);
    const after = (await jiraRetries.get()).values.find((v) => v.labels.endpoint === '/rest/builds/0.1/bulk' && v.labels.reason === '429')?.value ?? 0;
    assert.equal(after - before, 1);
    assertCleanTraffic(env);
  } finally {
    await env.close();
  }
});

void test('429 asking for longer than the cap gives up at once with JiraRateLimitedError(retryAfterMs); attempts are bounded', async () => {
  const env = await setup();
  try {
    env.sim.faults.failNext({ status: 429, retryAfterSeconds: 120 });
    await assert.rejects(env.client.getProject('TCJ'), (err: unknown) => {
      assert.ok(err instanceof JiraRateLimitedError);
      assert.equal(err.status, 429);
      assert.equal(err.retryAfterMs, 120_000);
      assert.equal(err.retryable, true);
      assert.match(err.message, /retry after 120 s/);
      return true;
    });
    assert.equal(env.sim.requests({ kind: 'api' }).length, 1);
    assert.deepEqual(env.sleeps, []);

    // Jira keeps answering 429 (within the cap): maxAttempts requests, then the caller reschedules.
    env.sim.clearRequests();
    env.sim.faults.failNext({ status: 429, retryAfterSeconds: 3, count: 10 });
    const client = env.makeClient({ maxAttempts: 3 });
    await assert.rejects(client.getProject('TCJ'), (err: unknown) => err instanceof JiraRateLimitedError && err.retryAfterMs === 3000);
    assert.equal(env.sim.requests({ kind: 'api' }).length, 3);
    assert.deepEqual(env.sleeps, [3000, 3000]);
    env.sim.faults.clear();
    assertCleanTraffic(env);
  } finally {
    await env.close();
  }
});

void test('503 then success: exponential backoff with full jitter, or the Retry-After Jira sends', async () => {
  const env = await setup();
  try {
    env.sim.faults.failNext({ status: 503, count: 2, path: '/rest/api/3/project/TCJ' });
    assert.equal((await env.client.getProject('TCJ')).key, 'TCJ');
    assert.deepEqual(env.sim.requests({ kind: 'api' }).map((r) => r.status), [503, 503, 200]);
    assert.deepEqual(env.sleeps, [250, 500], 'random 0.5 × 500 ms × 2^(attempt-1)');

    env.sleeps.length = 0;
    env.sim.faults.failNext({ status: 503, retryAfterSeconds: 1 });
    assert.equal((await env.client.getIssue('DEMO-1')).fields.project.key, 'DEMO');
    assert.deepEqual(env.sleeps, [1000]);
    assertCleanTraffic(env);
  } finally {
    await env.close();
  }
});

void test('other 5xx retried up to maxAttempts then JiraHttpError(retryable); 4xx other than 429 never retried', async () => {
  const env = await setup({}, { maxAttempts: 3 });
  try {
    env.sim.faults.failNext({ status: 500, count: 5 });
    await assert.rejects(env.client.getProject('TCJ'), (err: unknown) => {
      assert.ok(err instanceof JiraHttpError);
      assert.equal(err.status, 500);
      assert.equal(err.retryable, true);
      assert.equal(err.jiraMessage, 'Injected fault 500', 'parsed from {errorMessages, errors}');
      return true;
    });
    assert.equal(env.sim.requests({ kind: 'api' }).length, 3);
    env.sim.faults.clear();

    env.sim.clearRequests();
    env.sim.faults.failNext({ status: 400 });
    await assert.rejects(env.client.submitBuilds({ builds: [build(1)] }), (err: unknown) => {
      assert.ok(err instanceof JiraHttpError);
      assert.equal(err.status, 400);
      assert.equal(err.retryable, false);
      assert.equal(err.jiraMessage, 'Injected fault 400', 'parsed from [{message}]');
      return true;
    });
    assert.equal(env.sim.requests({ kind: 'api' }).length, 1);

    // A real 400 from the simulator's validation (unknown permission key).
    await assert.rejects(env.client.checkPermissions({ globalPermissions: ['NO_SUCH_PERMISSION'] }), (err: unknown) => {
      assert.ok(err instanceof JiraHttpError);
      assert.equal(err.status, 400);
      assert.match(err.jiraMessage, /NO_SUCH_PERMISSION: Unrecognized permission/);
      return true;
    });
    assertCleanTraffic(env);
  } finally {
    await env.close();
  }
});

void test('401/403 stop at once, call onAuthFailure once and throw JiraAuthError', async () => {
  const env = await setup();
  try {
    env.sim.faults.failNext({ status: 401 });
    await assert.rejects(env.client.submitBuilds({ builds: [build(1)] }), (err: unknown) => err instanceof JiraAuthError && err.status === 401);
    assert.deepEqual(env.authFailures, [{ status: 401, endpoint: '/rest/builds/0.1/bulk' }]);
    assert.equal(env.sim.requests({ kind: 'api' }).length, 1);
    assert.deepEqual(env.sleeps, []);

    env.sim.faults.failNext({ status: 403 });
    await assert.rejects(env.client.getIssue('TCJ-1'), (err: unknown) => err instanceof JiraAuthError && err.status === 403);
    assert.deepEqual(env.authFailures.map((f) => f.status), [401, 403]);
    assert.equal(env.sim.requests({ kind: 'api' }).length, 2);
    assertCleanTraffic(env);

    // A genuinely wrong shared secret (e.g. after a reinstall): the simulator's own verification says 401.
    env.sim.clearRequests();
    const stale = env.makeClient({ credentials: new ConnectJwtCredentials(env.appKey, 'an-outdated-shared-secret') });
    await assert.rejects(stale.getProject('TCJ'), (err: unknown) => {
      assert.ok(err instanceof JiraAuthError);
      assert.match(err.jiraMessage, /Unauthorized/);
      assert.doesNotMatch(err.message, /an-outdated-shared-secret/);
      return true;
    });
    assert.equal(env.authFailures.length, 3);
    const [r] = env.sim.requests({ kind: 'api' });
    assert.match(r!.authError ?? '', /signature/);
    assert.deepEqual(env.sim.unexpectedCalls(), []);

    // A failing onAuthFailure callback does not change the outcome.
    const throwing = env.makeClient({ credentials: new ConnectJwtCredentials(env.appKey, 'another-wrong-secret'), onAuthFailure: () => Promise.reject(new Error('db down')) });
    await assert.rejects(throwing.getProject('TCJ'), JiraAuthError);
  } finally {
    await env.close();
  }
});

void test('413 splits the batch in halves recursively and merges the 202 verdicts', async () => {
  const env = await setup({ maxEntitiesPerRequest: 4 });
  try {
    const builds = Array.from({ length: 10 }, (_, i) => build(i + 1));
    builds[1] = build(2, ['NOPE-1']);
    builds[6] = build(7, ['TCJ-2', 'GONE-9']);
    const result = await env.client.submitBuilds({ properties: { connectionId: 'c1' }, builds });
    assert.deepEqual(submitSizes(env.sim, 'submitBuilds'), [10, 5, 3, 2, 5, 3, 2]);
    assert.deepEqual(env.sim.requests({ operation: 'submitBuilds' }).map((r) => r.status), [413, 413, 202, 202, 413, 202, 202]);
    assert.deepEqual(result.acceptedBuilds.map((b) => b.buildNumber), [1, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(result.rejectedBuilds.map((b) => [b.key.buildNumber, b.errors[0]!.message]), [[2, 'No valid issues found for build']]);
    assert.deepEqual(result.unknownIssueKeys, ['NOPE-1', 'GONE-9']);
    assert.equal(env.sim.site('acme').builds.size, 9);

    const deps = await env.client.submitDeployments({
      deployments: Array.from({ length: 6 }, (_, i) => deployment(i + 1, i === 0 ? ['ZZZ-1'] : i === 5 ? ['TCJ-3', 'ZZZ-2'] : ['TCJ-3'])),
    });
    assert.deepEqual(submitSizes(env.sim, 'submitDeployments'), [6, 3, 3]);
    assert.deepEqual(deps.acceptedDeployments.map((d) => d.deploymentSequenceNumber), [2, 3, 4, 5, 6]);
    assert.deepEqual(deps.rejectedDeployments.map((d) => [d.key.deploymentSequenceNumber, d.errors[0]!.message]), [[1, 'No valid issues or services found for deployment']]);
    assert.deepEqual(deps.unknownIssueKeys, []);
    assert.deepEqual(deps.unknownAssociations, [{ associationType: 'issueIdOrKeys', values: ['ZZZ-1', 'ZZZ-2'] }]);
    assertCleanTraffic(env);
  } finally {
    await env.close();
  }
});

void test('a single entity that still gets 413 is reported as rejected with a clear error, not thrown', async () => {
  const env = await setup({ maxRequestBytes: 4000 });
  try {
    const huge = build(2, ['TCJ-1'], { description: 'x'.repeat(6000) });
    const result = await env.client.submitBuilds({ builds: [build(1), huge, build(3)] });
    assert.deepEqual(env.sim.requests({ operation: 'submitBuilds' }).map((r) => r.status), [413, 413, 202, 413, 202]);
    assert.deepEqual(result.acceptedBuilds.map((b) => b.buildNumber), [1, 3]);
    assert.equal(result.rejectedBuilds.length, 1);
    assert.deepEqual(result.rejectedBuilds[0]!.key, { pipelineId: 'conn-1/Project_Build', buildNumber: 2 });
    assert.match(result.rejectedBuilds[0]!.errors[0]!.message, /too large \(413\) even when sent on its own: Data is too large/);
    assertCleanTraffic(env);
  } finally {
    await env.close();
  }
});

void test('more than 100 builds are chunked up front (100, 100, 50)', async () => {
  const env = await setup();
  try {
    const builds = Array.from({ length: 250 }, (_, i) => build(i + 1, [`TCJ-${(i % 5) + 1}`]));
    const result = await env.client.submitBuilds({ builds });
    assert.deepEqual(submitSizes(env.sim, 'submitBuilds'), [100, 100, 50]);
    assert.deepEqual(env.sim.requests({ operation: 'submitBuilds' }).map((r) => r.status), [202, 202, 202]);
    assert.equal(result.acceptedBuilds.length, 250);
    assert.equal(env.sim.site('acme').builds.size, 250);
    const empty = await env.client.submitBuilds({ builds: [] });
    assert.deepEqual(empty, { acceptedBuilds: [], rejectedBuilds: [], unknownIssueKeys: [], unknownAssociations: [] });
    assert.equal(env.sim.requests({ operation: 'submitBuilds' }).length, 3, 'nothing sent for an empty batch');
    assertCleanTraffic(env);
  } finally {
    await env.close();
  }
});

void test('rejected builds/deployments, unknownIssueKeys and unknownAssociations come back parsed', async () => {
  const env = await setup();
  try {
    const result = await env.client.submitBuilds({
      builds: [build(1), build(2, ['NOPE-7']), build(3, ['TCJ-1'], { url: 'not a url' }), build(4, ['TCJ-4', 'UTF-8'])],
    });
    assert.deepEqual(result.acceptedBuilds.map((b) => b.buildNumber), [1, 4]);
    const rejected = new Map(result.rejectedBuilds.map((r) => [r.key.buildNumber, r.errors.map((e) => e.message).join(' | ')]));
    assert.deepEqual([...rejected.keys()], [2, 3]);
    assert.equal(rejected.get(2), 'No valid issues found for build');
    assert.match(rejected.get(3)!, /url/i);
    assert.deepEqual([...result.unknownIssueKeys].sort(), ['NOPE-7', 'UTF-8']);

    const deps = await env.client.submitDeployments({
      deployments: [deployment(1, ['TCJ-1']), deployment(2, ['NOPE-1'], { associations: [{ associationType: 'issueKeys', values: ['NOPE-1'] }] })],
    });
    assert.deepEqual(deps.acceptedDeployments.map((d) => d.deploymentSequenceNumber), [1]);
    assert.equal(deps.rejectedDeployments[0]!.key.deploymentSequenceNumber, 2);
    assert.match(deps.rejectedDeployments[0]!.errors[0]!.message, /No valid issues/);
    assert.deepEqual(deps.unknownAssociations, [{ associationType: 'issueKeys', values: ['NOPE-1'] }]);
    assertCleanTraffic(env);
  } finally {
    await env.close();
  }
});

void test('requests are observed in jiraRequestSeconds by route template and logged at debug without tokens or bodies', async () => {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(s) } });
  const env = await setup({}, { log });
  try {
    const count = async (endpoint: string, status: string) =>
      (await jiraRequestSeconds.get()).values.find((v) => v.metricName === 'tcj_jira_request_duration_seconds_count' && v.labels.endpoint === endpoint && v.labels.status === status && v.labels.method === 'GET')?.value ?? 0;
    const before = await count('/rest/api/3/issue/{issueIdOrKey}', '200');
    await env.client.getIssue('TCJ-3');
    await env.client.getIssue('DEMO-2');
    assert.equal((await count('/rest/api/3/issue/{issueIdOrKey}', '200')) - before, 2);
    const labels = (await jiraRequestSeconds.get()).values.map((v) => String(v.labels.endpoint));
    assert.ok(!labels.some((l) => /TCJ-3|DEMO-2/.test(l)), 'no raw paths as labels');

    await env.client.submitBuilds({ properties: { connectionId: 'secret-looking-value' }, builds: [build(1)] });
    const debug = lines.map((l) => JSON.parse(l) as { level: string; msg: string; jira?: Record<string, unknown> }).filter((l) => l.msg === 'jira request');
    assert.deepEqual(debug.map((l) => [l.level, l.jira?.['method'], l.jira?.['endpoint'], l.jira?.['status']]), [
      ['debug', 'GET', '/rest/api/3/issue/{issueIdOrKey}', 200],
      ['debug', 'GET', '/rest/api/3/issue/{issueIdOrKey}', 200],
      ['debug', 'POST', '/rest/builds/0.1/bulk', 202],
    ]);
    assert.ok(debug.every((l) => typeof l.jira?.['durationMs'] === 'number'));
    const all = lines.join('\n');
    assert.doesNotMatch(all, /eyJ|JWT |secret-looking-value|Project \/ Build/);
    assert.ok(!all.includes(env.sharedSecret));
    assertCleanTraffic(env);
  } finally {
    await env.close();
  }
});

// ---- against a plain loopback server (misbehaving "Jira" the simulator cannot be made to be) ----

interface FakeJira {
  baseUrl: string;
  hits: string[];
  close(): Promise<void>;
}

async function fakeJira(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<FakeJira> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    req.resume();
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ctx`,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const fixedCredentials: JiraCredentials = { headersFor: async () => ({ authorization: 'JWT test' }) };

function fakeClient(fake: FakeJira, o: Partial<JiraClientOptions> = {}): { client: JiraClient; close: () => Promise<void>; sleeps: number[] } {
  const dispatcher = createOutboundDispatcher({ allowHosts: [new URL(fake.baseUrl).host] });
  const sleeps: number[] = [];
  const client = new JiraClient({
    baseUrl: fake.baseUrl, credentials: fixedCredentials, dispatcher, log: silent,
    sleep: async (ms) => void sleeps.push(ms), random: () => 1, ...o,
  });
  return { client, sleeps, close: () => dispatcher.close() };
}

void test('a malformed 2xx body is a clear JiraResponseError, not a crash', async () => {
  const fake = await fakeJira((req, res) => {
    const send = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body);
    };
    if (req.url === '/ctx/rest/builds/0.1/bulk') return send(202, JSON.stringify({ acceptedBuilds: 'all of them', rejectedBuilds: [{ key: { pipelineId: 'p' } }] }));
    if (req.url === '/ctx/rest/deployments/0.1/bulk') return send(202, '<html>gateway</html>');
    if (req.url?.startsWith('/ctx/rest/api/3/issue/')) return send(200, JSON.stringify({ id: '1', key: 'X-1', fields: {} }));
    if (req.url === '/ctx/rest/api/3/project/X') return send(200, '');
    return send(200, '{}');
  });
  const { client, close } = fakeClient(fake);
  try {
    await assert.rejects(client.submitBuilds({ builds: [build(1)] }), (err: unknown) => {
      assert.ok(err instanceof JiraResponseError);
      assert.equal(err.status, 202);
      assert.match(err.message, /POST \/rest\/builds\/0\.1\/bulk answered 202 with an unexpected body: acceptedBuilds: .*expected array/);
      assert.ok(err.problems.some((p) => p.startsWith('rejectedBuilds.0.key.buildNumber')));
      return true;
    });
    await assert.rejects(client.submitDeployments({ deployments: [deployment(1)] }), /unexpected body: body is not JSON/);
    await assert.rejects(client.getIssue('X-1'), /unexpected body: fields\.project/);
    await assert.rejects(client.getProject('X'), /unexpected body: empty body/);
    assert.equal(fake.hits.length, 4, 'a malformed success is not retried');
    assert.deepEqual(fake.hits.slice(0, 1), ['POST /ctx/rest/builds/0.1/bulk']);
  } finally {
    await close();
    await fake.close();
  }
});

void test('timeouts and dropped connections are retried with backoff, then JiraNetworkError', async () => {
  let flakyHits = 0;
  const fake = await fakeJira((req, res) => {
    if (req.url === '/ctx/rest/api/3/project/SLOW') return; // never answers
    if (req.url === '/ctx/rest/api/3/project/FLAKY' && ++flakyHits <= 3) {
      res.socket?.destroy(); // connection dropped mid-request
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: '10', key: 'FLAKY', name: 'Flaky' }));
  });
  const { client, sleeps, close } = fakeClient(fake, { timeoutMs: 300, maxAttempts: 2, backoffBaseMs: 100 });
  try {
    await assert.rejects(client.getProject('SLOW'), (err: unknown) => {
      assert.ok(err instanceof JiraNetworkError);
      assert.equal(err.timedOut, true);
      assert.equal(err.retryable, true);
      return true;
    });
    assert.deepEqual(fake.hits, ['GET /ctx/rest/api/3/project/SLOW', 'GET /ctx/rest/api/3/project/SLOW']);
    assert.deepEqual(sleeps, [100]);

    await assert.rejects(client.getProject('FLAKY'), (err: unknown) => err instanceof JiraNetworkError && !err.timedOut);
    const flaky = fakeClient(fake, { maxAttempts: 3 });
    try {
      assert.equal((await flaky.client.getProject('FLAKY')).name, 'Flaky');
    } finally {
      await flaky.close();
    }
    assert.equal(fake.hits.length, 6);
  } finally {
    await close();
    await fake.close();
  }
});

void test('the client refuses base URLs the outbound rules forbid, and blocked addresses are not retried', async () => {
  const dispatcher = createOutboundDispatcher({ allowHosts: [] });
  try {
    const make = (baseUrl: string) => new JiraClient({ baseUrl, credentials: fixedCredentials, dispatcher, log: silent });
    assert.throws(() => make('http://acme.atlassian.net'), (e: unknown) => e instanceof OutboundBlockedError && e.reason === 'plain-http');
    assert.throws(() => make('https://user:pw@acme.atlassian.net'), (e: unknown) => e instanceof OutboundBlockedError && e.reason === 'userinfo');
    assert.throws(() => make('https://acme.atlassian.net/?x=1'), /query or fragment/);
    assert.equal(make('https://acme.atlassian.net/').baseUrl, 'https://acme.atlassian.net');
    const sleeps: number[] = [];
    const local = new JiraClient({ baseUrl: 'https://localhost:1', credentials: fixedCredentials, dispatcher, log: silent, sleep: async (ms) => void sleeps.push(ms) });
    await assert.rejects(local.getProject('TCJ'), (e: unknown) => e instanceof OutboundBlockedError && e.reason === 'blocked-address');
    assert.deepEqual(sleeps, []);
  } finally {
    await dispatcher.close();
  }
});

void test('Retry-After / X-RateLimit-Reset parsing and Jira error bodies', () => {
  const now = Date.parse('2026-12-04T10:00:00Z');
  assert.equal(requestedWaitMs({ 'retry-after': '2' }, now), 2000);
  assert.equal(requestedWaitMs({ 'retry-after': '0' }, now), 0);
  assert.equal(requestedWaitMs({ 'retry-after': 'Fri, 04 Dec 2026 10:00:30 GMT' }, now), 30_000);
  assert.equal(requestedWaitMs({ 'retry-after': 'Fri, 04 Dec 2026 09:00:00 GMT' }, now), 0);
  assert.equal(requestedWaitMs({ 'x-ratelimit-reset': '2026-12-04T10:00:05.500Z' }, now), 5500);
  assert.equal(requestedWaitMs({ 'retry-after': '3', 'x-ratelimit-reset': '2026-12-04T10:00:05Z' }, now), 3000, 'Retry-After first');
  assert.equal(requestedWaitMs({ 'retry-after': 'soon' }, now), undefined);
  assert.equal(requestedWaitMs({}, now), undefined);

  assert.equal(jiraErrorMessage('{"errorMessages":["Issue does not exist"],"errors":{}}'), 'Issue does not exist');
  assert.equal(jiraErrorMessage('{"errorMessages":[],"errors":{"PERM":"Unrecognized permission"}}'), 'PERM: Unrecognized permission');
  assert.equal(jiraErrorMessage('[{"message":"a"},{"message":"b","errorTraceId":"t"}]'), 'a; b');
  assert.equal(jiraErrorMessage('{"message":"plain"}'), 'plain');
  assert.equal(jiraErrorMessage(''), '');
  assert.equal(jiraErrorMessage('x'.repeat(400)).length, 301);
});
