// The admin API over real HTTP on loopback: the app (lifecycle + /api/v1) installed on two sites of
// the Jira simulator, a simulated TeamCity, the real poller/deliverer for data, real PostgreSQL.
// Covers every server route, the authorisation matrix, validation, connection-test failures, the
// permission cache, deletion from Jira (also while Jira fails), and that no secret is ever echoed
// or logged.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
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
import { createLogger } from '../../src/log.ts';
import { createOutboundDispatcher } from '../../src/net/outbound.ts';
import { deliverTenant } from '../../src/sync/deliverer.ts';
import { pollServer } from '../../src/sync/poller.ts';
import { createServer } from '../../src/sync/servers.ts';
import { SyncWorker } from '../../src/sync/worker.ts';
import { TenantRepository } from '../../src/tenants/repository.ts';
import { registerAdminApi, retryPendingDeletions, tenantsWithPendingDeletions } from '../../src/web/api/index.ts';
import { buildServer } from '../../src/web/server.ts';
import { createTestDatabase, DUE_NOW, quietLog, type TestDatabase } from '../helpers/db.ts';
import { APP_KEY } from '../helpers/jira-app.ts';
import { freePort } from '../helpers/net.ts';

const PASSWORD = 'sync-pw-Zq81xK';
const WRONG_PASSWORD = 'wrong-pw-Hh27sL';
let TOKEN = '';

let t: TestDatabase;
let sim: JiraSimulator;
let tc: TeamCitySimulator;
let app: FastifyInstance;
let appUrl: string;
let dispatcher: Dispatcher;
let secrets: Secrets;
let tenants: TenantRepository;
let keyDir: string;
let acme: string;
let globex: string;
let closedPort: number;
let worker: SyncWorker;
const logLines: string[] = [];
const bodies: string[] = [];
const log = createLogger({ level: 'debug', destination: { write: (s: string) => void logLines.push(s) } });

interface Res {
  status: number;
  body: any;
}

async function call(method: string, path: string, opts: { user?: string | null; site?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {}): Promise<Res> {
  const headers: Record<string, string> = { ...opts.headers };
  const user = opts.user === undefined ? 'Alice Admin' : opts.user;
  if (user !== null) headers.authorization = `JWT ${sim.contextToken(opts.site ?? 'acme', user)}`;
  let body: string | undefined;
  if (opts.rawBody !== undefined) body = opts.rawBody;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  const res = await fetch(`${appUrl}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  bodies.push(text);
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const basic = (password = PASSWORD) => ({ type: 'basic', username: 'jira-sync', password });
const permissionChecks = () => sim.requests().filter((r) => r.path === '/rest/api/3/permissions/check').length;

async function sync(): Promise<void> {
  await t.db.withTenant(acme, (tx) => tx.query(`UPDATE sync_state SET ${DUE_NOW}`));
  await worker.tick();
  await worker.idle();
  await worker.tick();
  await worker.idle();
}

before(async () => {
  t = await createTestDatabase();
  tc = await startTeamCitySimulator({ version: '2025.11.2', realTime: true, startTime: Date.now() });
  closedPort = await freePort();
  keyDir = await mkdtemp(join(tmpdir(), 'tcj-api-'));
  secrets = await Secrets.local(join(keyDir, 'keyring.json'), { secretsExist: async () => false });
  tenants = new TenantRepository(t.db, secrets);
  sim = await startJiraSimulator({ seed: 7, sites: ['acme', 'globex'] });
  const port = await freePort();
  appUrl = `http://127.0.0.1:${port}`;
  dispatcher = createOutboundDispatcher({
    allowHosts: [new URL(sim.url).host, new URL(tc.url).host, `127.0.0.1:${closedPort}`],
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
  });
  app = buildServer({ db: t.db, log });
  registerLifecycle(app, { appKey: APP_KEY, baseUrl: appUrl, tenants, installKeys: new InstallKeys(sim.keysUrl, dispatcher), allowHosts: [new URL(sim.url).host] });
  registerAdminApi(app, {
    db: t.db,
    secrets,
    tenants,
    dispatcher,
    log,
    appKey: APP_KEY,
    baseUrl: appUrl,
    jiraClient: { backoffBaseMs: 1, backoffMaxMs: 5 },
    teamcity: { retryBaseMs: 5, retryMaxMs: 10, timeoutMs: 5_000 },
  });
  await app.listen({ port, host: '127.0.0.1' });
  const install = async (site: string) => {
    const r = await sim.installApp(site, `${appUrl}/atlassian-connect.json`);
    assert.equal(r.status, 204, r.responseBody);
    return (await tenants.authByClientKey(r.clientKey))!.tenantId;
  };
  acme = await install('acme');
  globex = await install('globex');

  const m = tc.model;
  m.addProject({ id: 'Shop', name: 'Shop' });
  m.addVcsRoot({ id: 'Shop_Git', projectId: 'Shop', url: 'https://git.example.com/shop.git' });
  m.addBuildType({ id: 'Shop_Build', projectId: 'Shop', name: 'Build', type: 'regular', vcsRootIds: ['Shop_Git'], branched: true });
  m.addBuildType({ id: 'Shop_DeployStaging', projectId: 'Shop', name: 'Deploy to Staging', type: 'deployment', vcsRootIds: ['Shop_Git'] });
  m.addUser({ username: 'jira-sync', password: PASSWORD, viewProjects: 'all' });
  TOKEN = m.addToken('jira-sync');
  m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-1 first', branch: 'main' });
  m.runBuild({ buildTypeId: 'Shop_Build', branch: 'main', durationMs: 10_000 });

  worker = new SyncWorker(
    t.db,
    {
      poll: async (tid, sid, wid) =>
        void (await pollServer({ db: t.db, secrets, dispatcher, log: quietLog, teamcity: { timeoutMs: 5000, maxAttempts: 2, retryBaseMs: 10 } }, tid, sid, wid)),
      deliver: async (tid, wid) => void (await deliverTenant({ db: t.db, tenants, appKey: APP_KEY, dispatcher, log: quietLog }, tid, wid)),
    },
    quietLog,
    { workerId: 'api-test-worker' },
  );
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

let serverId = '';

describe('admin API', () => {
  test('requests without a valid Jira token get 401', async () => {
    const none = await call('GET', '/api/v1/servers', { user: null });
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'unauthorized');
    const forged = await call('GET', '/api/v1/servers', { user: null, headers: { authorization: 'JWT eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln' } });
    assert.equal(forged.status, 401);
  });

  test('site-admin routes: only Jira site admins pass', async () => {
    for (const [user, status] of [['Alice Admin', 200], ['Paula ProjectAdmin', 403], ['Dan Developer', 403], ['Otto Outsider', 403]] as const) {
      const r = await call('GET', '/api/v1/servers', { user });
      assert.equal(r.status, status, user);
      if (status === 403) assert.equal(r.body.error.code, 'forbidden');
    }
    assert.deepEqual((await call('GET', '/api/v1/servers')).body, { servers: [] });
    // A token with no user (sub) is refused.
    const site = sim.site('acme');
    const token = sim.jiraToken('acme', 'GET', `${appUrl}/api/v1/servers`);
    const r = await fetch(`${appUrl}/api/v1/servers`, { headers: { authorization: `JWT ${token}` } });
    assert.equal(r.status, 403, `no sub → 403 (site ${site.projects.length} projects)`);
  });

  test('the connection test names the reason of each failure', async () => {
    const ok = await call('POST', '/api/v1/servers/test', { body: { url: tc.url, auth: basic() } });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.ok, true);
    assert.match(ok.body.version, /^2025\.11\.2/);
    assert.equal(ok.body.user.username, 'jira-sync');

    const tokenOk = await call('POST', '/api/v1/servers/test', { body: { url: `${tc.url}/`, auth: { type: 'token', token: TOKEN } } });
    assert.equal(tokenOk.body.ok, true);

    const cases: Array<[string, unknown, string, RegExp]> = [
      ['wrong password', { url: tc.url, auth: basic(WRONG_PASSWORD) }, 'teamcity_unauthorized', /401/],
      ['unreachable port', { url: `http://127.0.0.1:${closedPort}`, auth: basic() }, 'unreachable', /connection refused/],
      ['private address', { url: 'https://10.20.30.40/teamcity', auth: basic() }, 'url_blocked', /private/],
      ['loopback name without allow-list', { url: 'https://localhost:9/', auth: basic() }, 'url_blocked', /loopback|OUTBOUND_ALLOW_HOSTS/],
      ['plain http to a public host', { url: 'http://teamcity.example.com', auth: basic() }, 'url_blocked', /https/],
      ['TLS to a plain-http port', { url: `https://127.0.0.1:${new URL(tc.url).port}`, auth: basic() }, 'tls_error', /TLS/],
    ];
    for (const [what, body, code, message] of cases) {
      const r = await call('POST', '/api/v1/servers/test', { body });
      assert.equal(r.status, 200, what);
      assert.equal(r.body.ok, false, what);
      assert.equal(r.body.error.code, code, `${what}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error.message, message, what);
    }

    tc.faults.inject({ kind: 'htmlLogin', count: 2 });
    const html = await call('POST', '/api/v1/servers/test', { body: { url: tc.url, auth: basic() } });
    tc.faults.clear();
    assert.equal(html.body.error.code, 'not_teamcity');
    assert.match(html.body.error.message, /HTML/);

    const notTc = await call('POST', '/api/v1/servers/test', { body: { url: `${tc.url}/not-here`, auth: basic() } });
    assert.equal(notTc.body.error.code, 'not_teamcity');
  });

  test('creating a server validates the body precisely', async () => {
    const cases: Array<[unknown, string]> = [
      [{ url: tc.url, auth: basic() }, 'name'],
      [{ name: 'TC', url: 'not a url', auth: basic() }, 'url'],
      [{ name: 'TC', url: tc.url, auth: { type: 'basic', username: 'jira-sync' } }, 'auth.password'],
      [{ name: 'TC', url: tc.url, auth: { type: 'oauth', token: 'x' } }, 'auth.type'],
      [{ name: 'TC', url: tc.url, auth: basic(), backfillDays: -1 }, 'backfillDays'],
      [{ name: 'TC', url: tc.url, auth: basic(), extra: true }, '(body)'],
      [{ name: '', url: tc.url, auth: basic() }, 'name'],
    ];
    for (const [body, path] of cases) {
      const r = await call('POST', '/api/v1/servers', { body });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, 'validation_failed');
      assert.ok(r.body.error.issues.some((i: { path: string }) => i.path === path), `${path} in ${JSON.stringify(r.body.error.issues)}`);
    }
    const bad = await call('POST', '/api/v1/servers', { rawBody: '{"name": ' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /JSON/);
    // A failed connection test saves nothing and says why.
    const wrong = await call('POST', '/api/v1/servers', { body: { name: 'TC', url: tc.url, auth: basic(WRONG_PASSWORD) } });
    assert.equal(wrong.status, 422);
    assert.equal(wrong.body.error.code, 'teamcity_unauthorized');
    assert.equal(wrong.body.error.teamcityStatus, 401);
    assert.deepEqual((await call('GET', '/api/v1/servers')).body.servers, []);
  });

  test('POST /servers tests, creates, starts a backfill and answers 201 Server', async () => {
    const r = await call('POST', '/api/v1/servers', { body: { name: 'Main TeamCity', url: `${tc.url}/`, auth: basic(), backfillDays: 30 } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    serverId = r.body.id;
    assert.equal(r.body.name, 'Main TeamCity');
    assert.equal(r.body.url, tc.url);
    assert.deepEqual(r.body.auth, { type: 'basic', username: 'jira-sync' });
    assert.equal(r.body.state, 'ok');
    assert.match(r.body.version, /^2025\.11\.2/);
    const since = await t.db.withTenant(acme, async (tx) => (await tx.query(`SELECT backfill_since FROM sync_state WHERE server_id = $1`, [serverId])).rows[0]!.backfill_since as Date);
    assert.ok(Math.abs(since.getTime() - (Date.now() - 30 * 86_400_000)) < 120_000);

    const dup = await call('POST', '/api/v1/servers', { body: { name: 'Again', url: tc.url, auth: { type: 'token', token: TOKEN } } });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, 'server_exists');

    const list = await call('GET', '/api/v1/servers');
    assert.deepEqual(list.body.servers.map((s: { id: string }) => s.id), [serverId]);
    const one = await call('GET', `/api/v1/servers/${serverId}`);
    assert.equal(one.status, 200);
    assert.equal(one.body.id, serverId);
  });

  test('another tenant, unknown and malformed ids are simply not found', async () => {
    for (const path of [`/api/v1/servers/${serverId}`, `/api/v1/servers/${serverId}/status`, `/api/v1/servers/${serverId}/rules`]) {
      const r = await call('GET', path, { site: 'globex' });
      assert.equal(r.status, 404, path);
      assert.equal(r.body.error.code, 'server_not_found');
    }
    assert.equal((await call('DELETE', `/api/v1/servers/${serverId}`, { site: 'globex' })).status, 404);
    assert.equal((await call('PATCH', `/api/v1/servers/${serverId}`, { site: 'globex', body: { paused: true } })).status, 404);
    assert.equal((await call('POST', `/api/v1/servers/${serverId}/sync`, { site: 'globex' })).status, 404);
    assert.equal((await call('GET', `/api/v1/servers/${randomUUID()}`)).status, 404);
    assert.equal((await call('GET', '/api/v1/servers/not-a-uuid')).body.error.code, 'server_not_found');
    assert.deepEqual((await call('GET', '/api/v1/servers', { site: 'globex' })).body.servers, []);
    assert.notEqual(globex, acme);
  });

  test('sync and status: builds are read and sent, counts and backfill progress are reported', async () => {
    const r = await call('POST', `/api/v1/servers/${serverId}/sync`, { headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 202);
    assert.equal(r.body.status, 'scheduled');
    await sync();
    const m = tc.model;
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-2 second\n\nand NOPE-7', branch: 'feature/TCJ-3-x' });
    m.runBuild({ buildTypeId: 'Shop_Build', branch: 'feature/TCJ-3-x', durationMs: 10_000 });
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'NOPE-8 only unknown', branch: 'main' });
    m.runBuild({ buildTypeId: 'Shop_Build', branch: 'main', durationMs: 10_000 });
    m.runBuild({ buildTypeId: 'Shop_DeployStaging', durationMs: 10_000 });
    tc.advance(20_000);
    await sync();
    await sync();
    const s = await call('GET', `/api/v1/servers/${serverId}/status`);
    assert.equal(s.status, 200);
    assert.equal(s.body.state, 'ok');
    assert.ok(s.body.lastSuccessfulPoll);
    assert.ok(s.body.counts.builds >= 3, JSON.stringify(s.body.counts));
    assert.ok(s.body.counts.sent24h >= 2, JSON.stringify(s.body.counts));
    assert.ok(s.body.counts.rejected24h >= 1, JSON.stringify(s.body.counts));
    assert.equal(s.body.counts.pendingDeliveries, 0);
    assert.ok(s.body.backfill, 'backfill reported');
    assert.equal(s.body.backfill.progress, 1, JSON.stringify(s.body));
    assert.ok(s.body.backfill.finishedAt);
    assert.deepEqual(Object.keys(s.body.delivery).sort(), ['jiraAuthError', 'lastError', 'pausedUntil']);
    assert.ok(sim.site('acme').buildsForIssue('TCJ-2').length > 0);
  });

  test('backfill requests are validated and restart the backfill', async () => {
    const future = new Date(Date.now() + 86_400_000).toISOString();
    for (const [since, msg] of [[future, /future/], ['2009-12-31', /2010/], ['yesterday', /ISO 8601/]] as const) {
      const r = await call('POST', `/api/v1/servers/${serverId}/backfill`, { body: { since } });
      assert.equal(r.status, 400, since);
      assert.equal(r.body.error.issues[0].path, 'since');
      assert.match(r.body.error.message, msg);
    }
    assert.equal((await call('POST', `/api/v1/servers/${serverId}/backfill`, { body: {} })).status, 400);
    const r = await call('POST', `/api/v1/servers/${serverId}/backfill`, { body: { since: '2025-01-15' } });
    assert.equal(r.status, 202);
    const st = await call('GET', `/api/v1/servers/${serverId}/status`);
    assert.equal(st.body.backfill.since, '2025-01-15T00:00:00.000Z');
    assert.equal(st.body.backfill.progress, 0);
    assert.equal(st.body.backfill.finishedAt, null);
  });

  test('activity: newest first, with Jira verdicts, filterable', async () => {
    const all = await call('GET', '/api/v1/activity');
    assert.equal(all.status, 200);
    assert.ok(all.body.items.length >= 3);
    const times = all.body.items.map((i: { at: string }) => Date.parse(i.at));
    assert.deepEqual(times, [...times].sort((a: number, b: number) => b - a));
    const item = all.body.items[0];
    assert.deepEqual(Object.keys(item).sort(), ['at', 'buildId', 'entityKey', 'errors', 'id', 'issueKeys', 'kind', 'serverId', 'serverName', 'unknownKeys', 'verdict']);
    assert.equal(item.serverName, 'Main TeamCity');
    const rejected = await call('GET', '/api/v1/activity?outcome=rejected');
    assert.ok(rejected.body.items.length >= 1);
    assert.ok(rejected.body.items.every((i: { verdict: string }) => i.verdict === 'rejected'));
    const nope = rejected.body.items.find((i: { issueKeys: string[] }) => i.issueKeys.includes('NOPE-8'));
    assert.deepEqual(nope.unknownKeys, ['NOPE-8']);
    assert.ok(nope.errors.length > 0 && typeof nope.errors[0].message === 'string', 'Jira messages verbatim');
    const byKey = await call('GET', '/api/v1/activity?issueKey=tcj-2');
    assert.ok(byKey.body.items.length >= 1);
    assert.ok(byKey.body.items.every((i: { issueKeys: string[] }) => i.issueKeys.includes('TCJ-2')));
    assert.equal((await call('GET', `/api/v1/activity?serverId=${serverId}&limit=1`)).body.items.length, 1);
    assert.equal((await call('GET', `/api/v1/activity?serverId=${randomUUID()}`)).body.items.length, 0);
    for (const q of ['limit=0', 'limit=501', 'outcome=maybe', 'serverId=x', 'issueKey=nokey', 'bogus=1']) {
      const r = await call('GET', `/api/v1/activity?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.body.error.code, 'validation_failed');
    }
    assert.deepEqual((await call('GET', '/api/v1/activity', { site: 'globex' })).body.items, []);
    assert.equal((await call('GET', '/api/v1/activity', { user: 'Dan Developer' })).status, 403);
  });

  test('rules: validated on PUT, stored, and previewed for the configurations seen', async () => {
    const initial = await call('GET', `/api/v1/servers/${serverId}/rules`);
    assert.equal(initial.status, 200);
    assert.deepEqual(initial.body.rules, { include: [], exclude: [], environments: [] });
    const staging = initial.body.preview.configurations.find((c: { buildTypeId: string }) => c.buildTypeId === 'Shop_DeployStaging');
    assert.equal(staging.deployment, true);
    assert.equal(staging.environment.type, 'staging');
    assert.equal(staging.name, 'Deploy to Staging');
    const build = initial.body.preview.configurations.find((c: { buildTypeId: string }) => c.buildTypeId === 'Shop_Build');
    assert.equal(build.deployment, false);

    const badRegex = await call('PUT', `/api/v1/servers/${serverId}/rules`, { body: { environments: [{ match: { namePattern: '/([/' } }] } });
    assert.equal(badRegex.status, 400);
    assert.match(badRegex.body.error.message, /regular expression/);
    const badType = await call('PUT', `/api/v1/servers/${serverId}/rules`, { body: { environments: [{ match: {}, environment: { type: 'prod' } }] } });
    assert.equal(badType.status, 400);
    assert.match(badType.body.error.issues[0].path, /^environments\[0\]\.environment\.type$/);
    const badMatcher = await call('PUT', `/api/v1/servers/${serverId}/rules`, { body: { exclude: [{}] } });
    assert.equal(badMatcher.status, 400);

    const rules = {
      exclude: [{ branch: 'experiment/*' }],
      environments: [{ match: { buildTypeId: 'Shop_DeployStaging' }, environment: { name: 'EU Production', type: 'production' } }],
    };
    const put = await call('PUT', `/api/v1/servers/${serverId}/rules`, { body: rules });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const env = put.body.preview.configurations.find((c: { buildTypeId: string }) => c.buildTypeId === 'Shop_DeployStaging').environment;
    assert.equal(env.displayName, 'EU Production');
    assert.equal(env.type, 'production');
    const again = await call('GET', `/api/v1/servers/${serverId}/rules`);
    assert.deepEqual(again.body.rules, { include: [], ...rules });
    const preview = await call('POST', `/api/v1/servers/${serverId}/rules/preview`, { body: { environments: [{ match: { namePattern: 'Deploy*' }, deployment: false }] } });
    assert.equal(preview.body.preview.configurations.find((c: { buildTypeId: string }) => c.buildTypeId === 'Shop_DeployStaging').deployment, false);
    assert.deepEqual((await call('GET', `/api/v1/servers/${serverId}/rules`)).body.rules, { include: [], ...rules }, 'preview does not save');
  });

  test('PATCH: rename, pause/resume, credentials re-tested, auth_failed lifted', async () => {
    const renamed = await call('PATCH', `/api/v1/servers/${serverId}`, { body: { name: 'TeamCity (prod)' } });
    assert.equal(renamed.status, 200);
    assert.equal(renamed.body.name, 'TeamCity (prod)');
    const paused = await call('PATCH', `/api/v1/servers/${serverId}`, { body: { paused: true } });
    assert.equal(paused.body.state, 'paused');
    assert.equal(paused.body.paused, true);
    const claimed = await t.db.pool.query('SELECT * FROM claim_polls($1, 60, 10)', ['probe']);
    assert.equal(claimed.rowCount, 0, 'a paused server is not polled');
    const syncPaused = await call('POST', `/api/v1/servers/${serverId}/sync`);
    assert.equal(syncPaused.status, 409);
    assert.equal(syncPaused.body.error.code, 'server_paused');
    const resumed = await call('PATCH', `/api/v1/servers/${serverId}`, { body: { paused: false } });
    assert.equal(resumed.body.state, 'ok');

    assert.equal((await call('PATCH', `/api/v1/servers/${serverId}`, { body: {} })).status, 400);
    assert.equal((await call('PATCH', `/api/v1/servers/${serverId}`, { body: { paused: 'yes' } })).status, 400);
    const wrong = await call('PATCH', `/api/v1/servers/${serverId}`, { body: { auth: basic(WRONG_PASSWORD) } });
    assert.equal(wrong.status, 422);
    assert.equal(wrong.body.error.code, 'teamcity_unauthorized');
    assert.equal((await call('GET', `/api/v1/servers/${serverId}`)).body.auth.type, 'basic', 'unchanged');

    await t.db.withTenant(acme, (tx) => tx.query(`UPDATE teamcity_servers SET state = 'auth_failed' WHERE id = $1`, [serverId]));
    const fixed = await call('PATCH', `/api/v1/servers/${serverId}`, { body: { auth: { type: 'token', token: TOKEN } } });
    assert.equal(fixed.status, 200, JSON.stringify(fixed.body));
    assert.equal(fixed.body.state, 'ok');
    assert.deepEqual(fixed.body.auth, { type: 'token' });

    // auth_failed, then the same credentials work again (account fixed in TeamCity): sync re-tests and resumes.
    await t.db.withTenant(acme, (tx) => tx.query(`UPDATE teamcity_servers SET state = 'auth_failed' WHERE id = $1`, [serverId]));
    const retried = await call('POST', `/api/v1/servers/${serverId}/sync`);
    assert.equal(retried.status, 202);
    assert.equal((await call('GET', `/api/v1/servers/${serverId}`)).body.state, 'ok');

    const moved = await call('PATCH', `/api/v1/servers/${serverId}`, { body: { url: `http://127.0.0.1:${closedPort}` } });
    assert.equal(moved.status, 422);
    assert.equal(moved.body.error.code, 'unreachable');
  });

  test('permission answers are cached per user for up to 60 s', async () => {
    sim.site('acme').addUser({ displayName: 'Carl Cache', siteAdmin: true });
    const before = permissionChecks();
    assert.equal((await call('GET', '/api/v1/servers', { user: 'Carl Cache' })).status, 200);
    assert.equal(permissionChecks(), before + 1);
    assert.equal((await call('GET', `/api/v1/servers/${serverId}/status`, { user: 'Carl Cache' })).status, 200);
    assert.equal((await call('GET', '/api/v1/servers', { user: 'Carl Cache' })).status, 200);
    assert.equal(permissionChecks(), before + 1, 'no new permissions/check within 60 s');
    const check = sim.requests().filter((r) => r.path === '/rest/api/3/permissions/check').at(-1)!;
    assert.deepEqual(Object.keys(check.body as object).sort(), ['accountId', 'globalPermissions']);
    assert.deepEqual((check.body as { globalPermissions: string[] }).globalPermissions, ['ADMINISTER']);
  });

  test('DELETE removes the server’s builds and deployments from Jira, then its rows and credentials', async () => {
    const site = sim.site('acme');
    const ours = () => [...site.builds.values(), ...site.deployments.values()].filter((e) => e.properties.connectionId === serverId);
    // A second connection of the same tenant, with its own data in Jira, must survive the removal.
    const otherId = randomUUID();
    await t.db.withTenant(acme, (tx) => createServer(tx, secrets, acme, { id: otherId, name: 'Other', url: tc.url, auth: { type: 'token', token: TOKEN } }));
    tc.model.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-2 for the other connection', branch: 'main' });
    tc.model.runBuild({ buildTypeId: 'Shop_Build', branch: 'main', durationMs: 1_000 });
    await sync();
    const theirs = () => [...site.builds.values()].filter((e) => e.properties.connectionId === otherId);
    const theirsBefore = theirs().length;
    assert.ok(ours().length > 0, 'data in Jira before');
    assert.ok(theirsBefore > 0, "the other connection's data in Jira before");
    const r = await call('DELETE', `/api/v1/servers/${serverId}`);
    assert.equal(r.status, 204);
    assert.equal(ours().length, 0, 'Jira data deleted');
    assert.equal(theirs().length, theirsBefore, "the other connection's data untouched");
    assert.equal((await call('GET', `/api/v1/servers/${otherId}`)).status, 200);
    await call('DELETE', `/api/v1/servers/${otherId}`);
    const deletes = sim.requests().filter((q) => q.method === 'DELETE' && q.query.connectionId?.[0] === serverId);
    assert.deepEqual(deletes.map((q) => [q.path, q.query]), [
      ['/rest/builds/0.1/bulkByProperties', { connectionId: [serverId] }],
      ['/rest/deployments/0.1/bulkByProperties', { connectionId: [serverId] }],
    ]);
    const left = await t.db.withTenant(acme, async (tx) =>
      (await tx.query(`SELECT (SELECT count(*) FROM teamcity_servers)::int AS s, (SELECT count(*) FROM builds)::int AS b, (SELECT count(*) FROM deliveries)::int AS d, (SELECT count(*) FROM sync_state)::int AS st`)).rows[0],
    );
    assert.deepEqual(left, { s: 0, b: 0, d: 0, st: 0 });
    assert.equal((await call('GET', `/api/v1/servers/${serverId}`)).status, 404);
    assert.deepEqual(sim.unexpectedCalls(), []);
  });

  test('DELETE while Jira fails: 202 pending, polling stopped, then retryPendingDeletions completes it', async () => {
    const created = await call('POST', '/api/v1/servers', { body: { name: 'Doomed', url: tc.url, auth: { type: 'token', token: TOKEN }, backfillDays: 0 } });
    assert.equal(created.status, 201);
    const id = created.body.id as string;
    await sync();
    tc.model.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-4 doomed', branch: 'main' });
    tc.model.runBuild({ buildTypeId: 'Shop_Build', branch: 'main', durationMs: 5_000 });
    tc.advance(10_000);
    await sync();
    const site = sim.site('acme');
    const ours = () => [...site.builds.values()].filter((e) => e.properties.connectionId === id);
    assert.ok(ours().length > 0);

    await call('GET', '/api/v1/servers'); // permission answer cached: the fault hits the deletion only
    sim.faults.failNext({ status: 503, count: 20, path: /bulkByProperties/ });
    const r = await call('DELETE', `/api/v1/servers/${id}`);
    assert.equal(r.status, 202);
    assert.equal(r.body.status, 'deletion_pending');
    const pending = await call('GET', `/api/v1/servers/${id}`);
    assert.equal(pending.body.state, 'paused');
    assert.ok(pending.body.deletion.requestedAt);
    assert.match(pending.body.deletion.lastError, /503/);
    assert.equal((await call('PATCH', `/api/v1/servers/${id}`, { body: { paused: false } })).body.error.code, 'server_deleting');
    assert.ok(ours().length > 0, 'still in Jira');
    assert.deepEqual(await tenantsWithPendingDeletions(t.db), [acme]);

    sim.faults.clear();
    const report = await retryPendingDeletions({ db: t.db, tenants, appKey: APP_KEY, dispatcher, log }, acme);
    assert.deepEqual(report, { deleted: [id], pending: [] });
    assert.equal(ours().length, 0);
    assert.equal((await call('GET', `/api/v1/servers/${id}`)).status, 404);
    assert.deepEqual(await tenantsWithPendingDeletions(t.db), []);
  });

  test('no response and no log line ever contains a password or token', async () => {
    assert.ok(bodies.length > 50);
    for (const secret of [PASSWORD, WRONG_PASSWORD, TOKEN]) {
      assert.ok(!bodies.some((b) => b.includes(secret)), 'secret in a response');
      assert.ok(!logLines.some((l) => l.includes(secret)), 'secret in a log line');
    }
    assert.ok(logLines.some((l) => l.includes('admin: server created')), 'admin actions are logged');
  });
});
