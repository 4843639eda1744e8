// The Connect side end to end against the Jira simulator over HTTP: the simulator fetches our
// descriptor, installs with RS256-signed callbacks, loads our pages with its own iframe tokens.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { SignJWT } from 'jose';
import { Agent } from 'undici';
import { startJiraSimulator, type InstallFault, type JiraSimulator } from '../../sandbox/jira/server.ts';
import { Secrets } from '../../src/crypto/secrets.ts';
import { InstallKeys } from '../../src/jira/install-keys.ts';
import { isAcceptedSiteUrl, registerLifecycle } from '../../src/jira/lifecycle.ts';
import { qsh } from '../../src/jira/qsh.ts';
import { jiraAuthHooks } from '../../src/jira/request-auth.ts';
import { TenantRepository } from '../../src/tenants/repository.ts';
import { buildServer } from '../../src/web/server.ts';
import { createTestDatabase, quietLog, type TestDatabase } from '../helpers/db.ts';
import { freePort } from '../helpers/net.ts';

const APP_KEY = 'teamcity-integration-for-jira';
let t: TestDatabase;
let sim: JiraSimulator;
let app: FastifyInstance;
let appUrl: string;
let tenants: TenantRepository;
let keyDir: string;
const dispatcher = new Agent();
const handled: string[] = [];

async function stateOf(clientKey: string): Promise<Record<string, any>> {
  const tenant = await tenants.authByClientKey(clientKey);
  if (!tenant) throw new Error(`no tenant for ${clientKey}`);
  return t.db.withTenant(tenant.tenantId, async (tx) => (await tx.query('SELECT state, enabled, purge_after, shared_secret_ct FROM tenants')).rows[0]!);
}

before(async () => {
  t = await createTestDatabase();
  keyDir = await mkdtemp(join(tmpdir(), 'tcj-lifecycle-'));
  const secrets = await Secrets.local(join(keyDir, 'keyring.json'), { secretsExist: async () => false });
  tenants = new TenantRepository(t.db, secrets);
  sim = await startJiraSimulator({ seed: 7, sites: ['acme', 'globex', 'initech'] });
  const port = await freePort();
  appUrl = `http://127.0.0.1:${port}`;
  app = buildServer({ db: t.db, log: quietLog });
  const simHost = new URL(sim.url).host;
  registerLifecycle(app, { appKey: APP_KEY, baseUrl: appUrl, tenants, installKeys: new InstallKeys(sim.keysUrl, dispatcher), allowHosts: [simHost] });
  const auth = jiraAuthHooks({ tenants, baseUrl: appUrl });
  // Routes of both kinds, to prove what reaches a handler.
  app.get('/pages/admin', { preHandler: auth.page }, async (req) => {
    handled.push(req.url);
    return { page: 'admin', ...req.jira };
  });
  app.get('/api/v1/whoami', { preHandler: auth.api }, async (req) => {
    handled.push(req.url);
    return { ...req.jira };
  });
  await app.listen({ port, host: '127.0.0.1' });
});

after(async () => {
  await app.close();
  await sim.close();
  await dispatcher.close();
  await t.drop();
  await rm(keyDir, { recursive: true, force: true });
});

describe('descriptor', () => {
  test('declares what Jira needs, shaped like a real Connect descriptor', async () => {
    const res = await fetch(`${appUrl}/atlassian-connect.json`);
    assert.equal(res.status, 200);
    const d = (await res.json()) as Record<string, any>;
    const sample = JSON.parse(readFileSync(new URL('../../../shared/fixtures/jira/samples/github-for-jira.atlassian-connect.descriptor.json', import.meta.url), 'utf8'));
    assert.equal(d.key, APP_KEY);
    assert.equal(d.baseUrl, appUrl);
    assert.deepEqual(d.authentication, { type: 'jwt' });
    assert.deepEqual(d.scopes, ['READ', 'WRITE', 'DELETE']);
    assert.deepEqual(d.apiMigrations, { 'signed-install': true, 'context-qsh': true, gdpr: true });
    assert.deepEqual(d.lifecycle, { installed: '/lifecycle/installed', uninstalled: '/lifecycle/uninstalled', enabled: '/lifecycle/enabled', disabled: '/lifecycle/disabled' });
    // Same top-level structure as Atlassian's own app (github-for-jira) for the fields both use.
    for (const key of Object.keys(sample)) assert.ok(key in d, `missing top-level ${key}`);
    for (const provider of ['jiraBuildInfoProvider', 'jiraDeploymentInfoProvider']) {
      assert.deepEqual(Object.keys(d.modules[provider]).sort(), Object.keys(sample.modules[provider]).sort(), provider);
      assert.match(d.modules[provider].key, /^[a-zA-Z0-9-]{1,100}$/);
    }
    const shape = (o: object) => Object.keys(o).sort();
    assert.deepEqual(shape(d.modules.adminPages[0]), shape(sample.modules.adminPages[0]));
    assert.deepEqual(d.modules.adminPages[0].conditions, [{ condition: 'user_is_admin' }]);
    assert.deepEqual(shape(d.modules.postInstallPage), shape(sample.modules.postInstallPage));
    assert.deepEqual(d.modules.webSections[0].location, sample.modules.webSections[0].location);
    assert.ok(d.modules.configurePage.url && d.modules.jiraProjectAdminTabPanels[0].url.startsWith('/pages/project?'));
    assert.ok(d.modules.jiraIssueGlances[0].target.url.startsWith('/pages/issue?'));
  });
});

describe('install lifecycle', () => {
  test('the simulator installs the app end to end; the secret is stored encrypted', async () => {
    const result = await sim.installApp('acme', `${appUrl}/atlassian-connect.json`);
    assert.equal(result.status, 204, result.responseBody);
    assert.equal(result.enabled?.status, 204);
    const tenant = await tenants.authByClientKey(result.clientKey);
    assert.ok(tenant);
    assert.equal(tenant.sharedSecret, result.sharedSecret);
    assert.equal(tenant.baseUrl, sim.siteUrl('acme'));
    assert.equal(tenant.state, 'installed');
    const row = await stateOf(result.clientKey);
    assert.ok(!(row.shared_secret_ct as Buffer).includes(Buffer.from(result.sharedSecret)));
  });

  test('forged installs are refused with 401 and store nothing', async () => {
    const faults: InstallFault[] = ['unsigned', 'alg-none', 'hs256', 'tampered-signature', 'tampered-claims', 'unknown-kid', 'wrong-key', 'wrong-aud', 'wrong-iss', 'wrong-qsh', 'expired'];
    const clientKey = sim.site('globex').clientKey;
    for (const fault of faults) {
      const r = await sim.installApp('globex', `${appUrl}/atlassian-connect.json`, { fault });
      assert.equal(r.status, 401, `${fault}: ${r.responseBody}`);
      assert.equal(await tenants.authByClientKey(clientKey), undefined, fault);
    }
  });

  test('a key server that is down means 401 and nothing stored', async () => {
    const port = await freePort();
    const other = buildServer({ db: t.db, log: quietLog });
    const otherUrl = `http://127.0.0.1:${port}`;
    registerLifecycle(other, {
      appKey: APP_KEY,
      baseUrl: otherUrl,
      tenants,
      installKeys: new InstallKeys(`http://127.0.0.1:${await freePort()}/keys`, dispatcher, 1000),
      allowHosts: [new URL(sim.url).host],
    });
    await other.listen({ port, host: '127.0.0.1' });
    try {
      const r = await sim.installApp('initech', `${otherUrl}/atlassian-connect.json`);
      assert.equal(r.status, 401);
      assert.match(r.responseBody, /install key server unreachable/);
      assert.equal(await tenants.authByClientKey(sim.site('initech').clientKey), undefined);
    } finally {
      await other.close();
    }
  });

  test('a site outside Atlassian domains and the allow-list is refused', () => {
    assert.equal(isAcceptedSiteUrl('https://acme.atlassian.net', []), true);
    assert.equal(isAcceptedSiteUrl('https://acme.jira.com', []), true);
    assert.equal(isAcceptedSiteUrl('http://acme.atlassian.net', []), false);
    assert.equal(isAcceptedSiteUrl('https://atlassian.net.evil.com', []), false);
    assert.equal(isAcceptedSiteUrl('https://evil.com/acme.atlassian.net', []), false);
    assert.equal(isAcceptedSiteUrl('https://acme.atlassian.net:8443', []), false);
    assert.equal(isAcceptedSiteUrl('https://user:pw@acme.atlassian.net', []), false);
    assert.equal(isAcceptedSiteUrl('http://127.0.0.1:9000/sites/a', ['127.0.0.1:9000']), true);
    assert.equal(isAcceptedSiteUrl('http://127.0.0.1:9001/sites/a', ['127.0.0.1:9000']), false);
  });

  test('disable and enable are verified with the shared secret and recorded', async () => {
    const clientKey = sim.site('acme').clientKey;
    assert.equal((await sim.disableApp('acme')).status, 204);
    assert.equal((await stateOf(clientKey)).enabled, false);
    assert.equal((await sim.enableApp('acme')).status, 204);
    assert.equal((await stateOf(clientKey)).enabled, true);
  });

  test('reinstall replaces the secret: old tokens stop working, new ones work', async () => {
    const oldPage = sim.iframeUrl('acme', 'Alice Admin', '/pages/admin');
    const before = await fetch(oldPage);
    assert.equal(before.status, 200);
    const again = await sim.installApp('acme', `${appUrl}/atlassian-connect.json`);
    assert.equal(again.status, 204);
    assert.equal((await tenants.authByClientKey(again.clientKey))?.sharedSecret, again.sharedSecret);
    const stale = await fetch(oldPage);
    assert.equal(stale.status, 401);
    assert.deepEqual(await stale.json(), { error: { code: 'unauthorized', message: 'signature verification failed' } });
    const fresh = await fetch(sim.iframeUrl('acme', 'Alice Admin', '/pages/admin'));
    assert.equal(fresh.status, 200);
  });
});

describe('incoming requests', () => {
  const call = async (url: string, init?: RequestInit) => {
    const before = handled.length;
    const res = await fetch(url, init);
    return { status: res.status, body: (await res.json()) as Record<string, any>, reached: handled.length > before };
  };

  test('a page load with the iframe token reaches the handler as that user and tenant', async () => {
    const user = sim.site('acme').user('Dan Developer')!;
    const r = await call(sim.iframeUrl('acme', user, '/pages/admin'));
    assert.equal(r.status, 200);
    assert.equal(r.reached, true);
    assert.equal(r.body.accountId, user.accountId);
    assert.equal(r.body.clientKey, sim.site('acme').clientKey);
    assert.equal(r.body.baseUrl, sim.siteUrl('acme'));
  });

  test('a context token works on the API but not on a page', async () => {
    const token = sim.contextToken('acme', 'Alice Admin');
    const api = await call(`${appUrl}/api/v1/whoami`, { headers: { authorization: `JWT ${token}` } });
    assert.equal(api.status, 200);
    const page = await call(`${appUrl}/pages/admin?jwt=${token}`);
    assert.deepEqual([page.status, page.reached, page.body.error.message], [401, false, 'context token not accepted on this route']);
  });

  test('expired, wrong secret, unknown iss, wrong qsh, alg none, both header and query: 401, no handler', async () => {
    const site = sim.site('acme');
    const secret = (await tenants.authByClientKey(site.clientKey))!.sharedSecret;
    const sign = (claims: Record<string, unknown>, key = secret, alg = 'HS256') =>
      new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' }).sign(new TextEncoder().encode(key));
    const now = Math.floor(Date.now() / 1000);
    const pageQsh = qsh('GET', '/pages/admin');
    const cases: [string, string, RequestInit | undefined, string][] = [
      ['expired', sim.iframeUrl('acme', 'Alice Admin', '/pages/admin', { expiresIn: -120 }), undefined, 'token expired'],
      ['wrong secret', `${appUrl}/pages/admin?jwt=${await sign({ iss: site.clientKey, iat: now, exp: now + 60, qsh: pageQsh }, 'not-the-secret')}`, undefined, 'signature verification failed'],
      ['unknown iss', `${appUrl}/pages/admin?jwt=${await sign({ iss: 'some-other-client', iat: now, exp: now + 60, qsh: pageQsh })}`, undefined, 'unknown issuer'],
      ['wrong qsh', sim.iframeUrl('acme', 'Alice Admin', '/pages/admin').replace('/pages/admin?', '/pages/admin?extra=1&'), undefined, 'qsh does not match the request'],
      ['HS512', `${appUrl}/pages/admin?jwt=${await sign({ iss: site.clientKey, iat: now, exp: now + 60, qsh: pageQsh }, secret, 'HS512')}`, undefined, 'algorithm HS512 not allowed'],
      [
        'alg none',
        `${appUrl}/pages/admin?jwt=${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: site.clientKey, exp: now + 60, qsh: pageQsh })).toString('base64url')}.`,
        undefined,
        'algorithm none not allowed',
      ],
      ['no token', `${appUrl}/pages/admin`, undefined, 'no JWT (Authorization: JWT … or ?jwt=)'],
      ['header and query', sim.iframeUrl('acme', 'Alice Admin', '/pages/admin'), { headers: { authorization: `JWT ${sim.contextToken('acme', 'Alice Admin')}` } }, 'token given in both header and query'],
    ];
    for (const [name, url, init, message] of cases) {
      const r = await call(url, init);
      assert.deepEqual([r.status, r.reached, r.body.error?.message], [401, false, message], name);
    }
  });

  test('after uninstall the tenant is kept for 60 days but its tokens are refused', async () => {
    const site = sim.site('acme');
    const url = sim.iframeUrl('acme', 'Alice Admin', '/pages/admin');
    const r = await sim.uninstallApp('acme');
    assert.equal(r.status, 204);
    const row = await stateOf(site.clientKey);
    assert.equal(row.state, 'uninstalled');
    const days = ((row.purge_after as Date).getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 59.9 && days <= 60, `purge in ${days} days`);
    const after = await call(url);
    assert.deepEqual([after.status, after.reached, after.body.error.message], [401, false, 'the app is not installed on this site']);
    // Reinstalling within the retention period brings the same tenant back.
    const tenantBefore = (await tenants.authByClientKey(site.clientKey))!.tenantId;
    assert.equal((await sim.installApp('acme', `${appUrl}/atlassian-connect.json`)).status, 204);
    const back = await tenants.authByClientKey(site.clientKey);
    assert.deepEqual([back?.tenantId, back?.state], [tenantBefore, 'installed']);
    assert.equal((await stateOf(site.clientKey)).purge_after, null);
  });

  test('an install payload for another app key or with a bad shape is a 400 and stores nothing', async () => {
    const res = await fetch(`${appUrl}/lifecycle/installed`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: 'other-app', clientKey: 'x', baseUrl: 'https://x.atlassian.net', eventType: 'installed' }) });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /payload is for app other-app/);
    const bad = await fetch(`${appUrl}/lifecycle/installed`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"clientKey": 5}' });
    assert.equal(bad.status, 400);
    assert.equal(await tenants.authByClientKey('x'), undefined);
  });
});
