// The issue diagnostic ("why is ABC-123 missing?") and the project overview over real HTTP, with data
// produced by the real poller and deliverer from a simulated TeamCity into a simulated Jira site, and
// authorised against the simulator's users: site admin, project admin, developer, outsider.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Dispatcher } from 'undici';
import { startJiraSimulator, type JiraSimulator } from '../../sandbox/jira/server.ts';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { Secrets } from '../../src/crypto/secrets.ts';
import { InstallKeys } from '../../src/jira/install-keys.ts';
import { registerLifecycle } from '../../src/jira/lifecycle.ts';
import { createOutboundDispatcher } from '../../src/net/outbound.ts';
import { deliverTenant } from '../../src/sync/deliverer.ts';
import { pollServer } from '../../src/sync/poller.ts';
import { SyncWorker } from '../../src/sync/worker.ts';
import { TenantRepository } from '../../src/tenants/repository.ts';
import { registerAdminApi } from '../../src/web/api/index.ts';
import { nearMissReason } from '../../src/web/api/diagnose.ts';
import { buildServer } from '../../src/web/server.ts';
import { createTestDatabase, DUE_NOW, quietLog, type TestDatabase } from '../helpers/db.ts';
import { APP_KEY } from '../helpers/jira-app.ts';
import { freePort } from '../helpers/net.ts';

let t: TestDatabase;
let sim: JiraSimulator;
let tc: TeamCitySimulator;
let tc2: TeamCitySimulator;
let app: FastifyInstance;
let appUrl: string;
let dispatcher: Dispatcher;
let tenants: TenantRepository;
let keyDir: string;
let acme: string;
let worker: SyncWorker;
const builds: Record<string, number> = {};

async function call(method: string, path: string, user = 'Alice Admin', body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { authorization: `JWT ${sim.contextToken('acme', user)}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${appUrl}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function sync(): Promise<void> {
  await t.db.withTenant(acme, (tx) => tx.query(`UPDATE sync_state SET ${DUE_NOW}`));
  await worker.tick();
  await worker.idle();
  await worker.tick();
  await worker.idle();
}

const diag = (key: string, user?: string) => call('GET', `/api/v1/diagnose/${key}`, user);

before(async () => {
  t = await createTestDatabase();
  tc = await startTeamCitySimulator({ version: '2025.11.2', realTime: true, startTime: Date.now() });
  tc2 = await startTeamCitySimulator({ version: '2024.12', realTime: true, startTime: Date.now(), internalId: '0b7f6b2c-9d52-4c43-9a53-7d3c2c1f0a11' });
  keyDir = await mkdtemp(join(tmpdir(), 'tcj-api-diag-'));
  const secrets = await Secrets.local(join(keyDir, 'keyring.json'), { secretsExist: async () => false });
  tenants = new TenantRepository(t.db, secrets);
  sim = await startJiraSimulator({ seed: 11, sites: ['acme'] });
  const port = await freePort();
  appUrl = `http://127.0.0.1:${port}`;
  dispatcher = createOutboundDispatcher({ allowHosts: [new URL(sim.url).host, new URL(tc.url).host, new URL(tc2.url).host], headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 });
  app = buildServer({ db: t.db, log: quietLog });
  registerLifecycle(app, { appKey: APP_KEY, baseUrl: appUrl, tenants, installKeys: new InstallKeys(sim.keysUrl, dispatcher), allowHosts: [new URL(sim.url).host] });
  registerAdminApi(app, { db: t.db, secrets, tenants, dispatcher, log: quietLog, appKey: APP_KEY, baseUrl: appUrl, teamcity: { retryBaseMs: 5, retryMaxMs: 10 } });
  await app.listen({ port, host: '127.0.0.1' });
  const r = await sim.installApp('acme', `${appUrl}/atlassian-connect.json`);
  acme = (await tenants.authByClientKey(r.clientKey))!.tenantId;
  worker = new SyncWorker(
    t.db,
    {
      poll: async (tid, sid, wid) =>
        void (await pollServer({ db: t.db, secrets, dispatcher, log: quietLog, teamcity: { timeoutMs: 3000, maxAttempts: 1 } }, tid, sid, wid)),
      deliver: async (tid, wid) => void (await deliverTenant({ db: t.db, tenants, appKey: APP_KEY, dispatcher, log: quietLog }, tid, wid)),
    },
    quietLog,
    { workerId: 'diag-test-worker' },
  );

  for (const sim of [tc, tc2]) {
    const m = sim.model;
    m.addProject({ id: 'Shop', name: 'Shop' });
    m.addVcsRoot({ id: 'Shop_Git', projectId: 'Shop', url: 'https://git.example.com/shop.git' });
    m.addBuildType({ id: 'Shop_Build', projectId: 'Shop', name: 'Build', type: 'regular', vcsRootIds: ['Shop_Git'], branched: true });
    m.addBuildType({ id: 'Shop_DeployProd', projectId: 'Shop', name: 'Deploy to Production', type: 'deployment', vcsRootIds: ['Shop_Git'] });
    m.addUser({ username: 'jira-sync', password: 'sync-pw-123', viewProjects: 'all' });
  }
  const main = await call('POST', '/api/v1/servers', 'Alice Admin', { name: 'Main', url: tc.url, auth: { type: 'basic', username: 'jira-sync', password: 'sync-pw-123' } });
  assert.equal(main.status, 201, JSON.stringify(main.body));
  await sync();

  const m = tc.model;
  const run = (name: string, branch: string, comment: string | undefined, buildTypeId = 'Shop_Build') => {
    if (comment) m.addChange({ vcsRootId: 'Shop_Git', comment, branch });
    builds[name] = m.runBuild({ buildTypeId, branch, durationMs: 5_000 }).id;
  };
  run('branchOnly', 'feature/TCJ-1-login', 'Add the login form');
  run('commitBody', 'main', 'Refactor the cart\n\nThis also fixes TCJ-2 for good.');
  run('lowercase', 'feature/tcj-3-lowercase', 'wip');
  run('nearMiss', 'bugfix-tcj-4', 'wip on the fix');
  run('unknown', 'experiment', 'NOPE-9 a project this site does not have');
  run('deploy', 'main', 'DEMO-1 ship it', 'Shop_DeployProd');
  tc.advance(10_000);
  await sync();

  // A second server that fails: connected while up, then unreachable.
  const second = await call('POST', '/api/v1/servers', 'Alice Admin', { name: 'Legacy', url: tc2.url, auth: { type: 'basic', username: 'jira-sync', password: 'sync-pw-123' }, backfillDays: 0 });
  assert.equal(second.status, 201, JSON.stringify(second.body));
  await tc2.close();
  for (let i = 0; i < 3; i++) await sync();
});

after(async () => {
  await worker?.stop();
  await app?.close();
  await sim?.close();
  await tc?.close();
  await dispatcher?.close();
  await rm(keyDir, { recursive: true, force: true });
  await t?.drop();
});

describe('diagnose', () => {
  test('a key found only in the branch name: seen, sent, accepted', async () => {
    const r = await diag('TCJ-1', 'Dan Developer');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.issueKey, 'TCJ-1');
    assert.equal(r.body.issue.projectKey, 'TCJ');
    const b = r.body.builds.find((x: { buildId: number }) => x.buildId === builds.branchOnly);
    assert.deepEqual(b.foundIn, [
      { source: 'branch', ref: 'feature/TCJ-1-login' },
      { source: 'vcs-branch', ref: 'refs/heads/feature/TCJ-1-login' },
    ]);
    assert.equal(b.sent, true);
    assert.equal(b.verdict, 'accepted');
    assert.equal(b.delivery.verdict, 'accepted');
    assert.match(r.body.summary, /Jira accepted 1/);
  });

  test('a key only in a commit body', async () => {
    const r = await diag('TCJ-2');
    const b = r.body.builds.find((x: { buildId: number }) => x.buildId === builds.commitBody);
    assert.equal(b.foundIn.length, 1);
    assert.equal(b.foundIn[0].source, 'commit');
    assert.match(b.foundIn[0].ref, /^\d+$/);
    assert.equal(b.verdict, 'accepted');
  });

  test('a lowercase key in a branch is read, uppercased; the request key is case-insensitive', async () => {
    const r = await diag('tcj-3');
    assert.equal(r.status, 200);
    assert.equal(r.body.issueKey, 'TCJ-3');
    const b = r.body.builds.find((x: { buildId: number }) => x.buildId === builds.lowercase);
    assert.deepEqual(b.foundIn, [
      { source: 'branch', ref: 'feature/tcj-3-lowercase' },
      { source: 'vcs-branch', ref: 'refs/heads/feature/tcj-3-lowercase' },
    ]);
    assert.equal(b.verdict, 'accepted');
  });

  test('a near miss: the key written in a way that is not read as a key', async () => {
    const r = await diag('TCJ-4');
    assert.deepEqual(r.body.builds, []);
    assert.equal(r.body.nearMisses.length, 1);
    assert.equal(r.body.nearMisses[0].branch, 'bugfix-tcj-4');
    assert.equal(r.body.nearMisses[0].buildId, builds.nearMiss);
    assert.match(r.body.nearMisses[0].reason, /uppercase/);
    assert.match(r.body.summary, /bugfix-tcj-4/);
    assert.equal(nearMissReason('release-1.0-Tcj-4', 'TCJ-4')?.written, 'Tcj-4');
    assert.match(nearMissReason('fix TCJ-4.1', 'TCJ-4')!.reason, /version/);
    assert.equal(nearMissReason('TCJ-40', 'TCJ-4'), undefined);
  });

  test("a key of a project the site does not have: Jira's unknown issue key verdict (site admins only)", async () => {
    const r = await diag('NOPE-9');
    assert.equal(r.status, 200);
    assert.equal(r.body.issue, null);
    const b = r.body.builds.find((x: { buildId: number }) => x.buildId === builds.unknown);
    assert.equal(b.verdict, 'unknown_key');
    assert.deepEqual(b.delivery.unknownKeys, ['NOPE-9']);
    assert.ok(b.delivery.errors.length > 0);
    assert.match(r.body.summary, /does not know NOPE-9/);
    assert.equal((await diag('NOPE-9', 'Dan Developer')).status, 403);
  });

  test('a failing server is reported', async () => {
    const r = await diag('TCJ-5');
    assert.deepEqual(r.body.builds, []);
    const legacy = r.body.servers.find((s: { name: string }) => s.name === 'Legacy');
    assert.equal(legacy.state, 'failing');
    assert.ok(legacy.lastError);
    assert.match(r.body.summary, /No build seen so far mentions TCJ-5\. Server "Legacy" is failing/);
    const withBuilds = await diag('TCJ-1');
    assert.match(withBuilds.body.summary, /Note: server "Legacy" is failing/);
  });

  test('authorisation: BROWSE_PROJECTS on the issue, or site admin', async () => {
    assert.equal((await diag('TCJ-1', 'Alice Admin')).status, 200);
    assert.equal((await diag('TCJ-1', 'Dan Developer')).status, 200);
    assert.equal((await diag('TCJ-1', 'Paula ProjectAdmin')).status, 403);
    assert.equal((await diag('DEMO-1', 'Paula ProjectAdmin')).status, 200);
    const out = await diag('TCJ-1', 'Otto Outsider');
    assert.equal(out.status, 403);
    assert.equal(out.body.error.code, 'forbidden');
    for (const bad of ['TCJ', '1-TCJ', 'TCJ-0', 'T-1']) {
      const r = await diag(bad);
      assert.equal(r.status, 400, bad);
      assert.equal(r.body.error.code, 'validation_failed');
    }
    // Cached: the same question within 60 s asks Jira nothing.
    const checks = () => sim.requests().filter((q) => q.path === '/rest/api/3/permissions/check' || q.path.startsWith('/rest/api/3/issue/')).length;
    const n = checks();
    assert.equal((await diag('TCJ-1', 'Dan Developer')).status, 200);
    assert.equal(checks(), n);
  });
});

describe('project overview', () => {
  test("a project admin sees their project's builds and deployments and the environment mapping", async () => {
    const r = await call('GET', '/api/v1/projects/10001/overview', 'Paula ProjectAdmin');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.project, { id: '10001', key: 'DEMO', name: r.body.project.name });
    assert.deepEqual(r.body.builds, []);
    assert.equal(r.body.deployments.length, 1);
    const d = r.body.deployments[0];
    assert.equal(d.buildId, builds.deploy);
    assert.ok(d.issueKeys.includes('DEMO-1'));
    assert.ok(d.issueKeys.every((k: string) => k.startsWith('DEMO-')), 'only this project’s keys');
    assert.equal(d.verdict, 'accepted');
    assert.equal(r.body.environments.length, 1);
    assert.equal(r.body.environments[0].buildTypeId, 'Shop_DeployProd');
    assert.equal(r.body.environments[0].environment.type, 'production');

    const tcj = await call('GET', '/api/v1/projects/10000/overview', 'Alice Admin');
    assert.equal(tcj.status, 200);
    assert.ok(tcj.body.builds.some((b: { buildId: number }) => b.buildId === builds.branchOnly));
    assert.ok(tcj.body.builds.every((b: { issueKeys: string[] }) => b.issueKeys.every((k) => k.startsWith('TCJ-'))));
  });

  test('authorisation and validation', async () => {
    assert.equal((await call('GET', '/api/v1/projects/10000/overview', 'Paula ProjectAdmin')).status, 403);
    assert.equal((await call('GET', '/api/v1/projects/10001/overview', 'Dan Developer')).status, 403);
    assert.equal((await call('GET', '/api/v1/projects/10001/overview', 'Otto Outsider')).status, 403);
    const missing = await call('GET', '/api/v1/projects/99999/overview', 'Alice Admin');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'project_not_found');
    assert.equal((await call('GET', '/api/v1/projects/DEMO/overview', 'Alice Admin')).status, 400);
    assert.deepEqual(sim.unexpectedCalls(), []);
  });
});
