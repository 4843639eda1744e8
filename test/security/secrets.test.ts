// No plaintext secret anywhere (issue #8, "Security checks"): a realistic flow — install (Jira sends
// the shared secret), add a server with a password and one with a token, a failed connection test
// with a wrong password, a credential change, sync to Jira, every read route, /metrics, delete both
// servers, disable and uninstall — with every log line (debug level) captured. Then each secret (the
// sites' shared secrets, the passwords, the tokens, and their Basic/Bearer encodings) is searched in
// the log lines, every response body, /metrics, every request the app sent to Jira, and a full dump
// of every table read as the PostgreSQL superuser (RLS bypassed), both mid-flow and at the end.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { dumpAllTables, startSecurityWorld, type SecurityWorld } from './world.ts';

const PASSWORD = 'plain-pw-Vx38qJ1';
const NEW_PASSWORD = 'rotated-pw-Mc19zT4';
const WRONG_PASSWORD = 'wrong-pw-Ke55hD8';
let TOKEN = '';
let w: SecurityWorld;
const dumps: string[] = [];
let metricsText = '';

function secrets(): Record<string, string> {
  const all: Record<string, string> = {
    'acme shared secret': w.sharedSecrets.acme!,
    'globex shared secret': w.sharedSecrets.globex!,
    password: PASSWORD,
    'new password': NEW_PASSWORD,
    'wrong password': WRONG_PASSWORD,
    'access token': TOKEN,
    'basic header (password)': Buffer.from(`jira-sync:${PASSWORD}`).toString('base64'),
    'basic header (new password)': Buffer.from(`jira-sync:${NEW_PASSWORD}`).toString('base64'),
  };
  for (const [k, v] of Object.entries(all)) assert.ok(v && v.length >= 8, `${k} is a searchable secret`);
  return all;
}

async function dump(): Promise<void> {
  dumps.push(JSON.stringify(await dumpAllTables(w.admin)));
}

before(async () => {
  w = await startSecurityWorld({ logLevel: 'debug' });
  const m = w.tc.model;
  m.addProject({ id: 'Shop', name: 'Shop' });
  m.addVcsRoot({ id: 'Shop_Git', projectId: 'Shop', url: 'https://git.example.com/shop.git' });
  m.addBuildType({ id: 'Shop_Build', projectId: 'Shop', name: 'Build', type: 'regular', vcsRootIds: ['Shop_Git'], branched: true });
  m.addBuildType({ id: 'Shop_Deploy', projectId: 'Shop', name: 'Deploy to Staging', type: 'deployment', vcsRootIds: ['Shop_Git'] });
  m.addUser({ username: 'jira-sync', password: PASSWORD, viewProjects: 'all' });
  TOKEN = m.addToken('jira-sync');
});

after(async () => {
  await w?.close();
});

describe('no secret in logs, responses, metrics, Jira requests or the database', () => {
  test('a realistic flow', async () => {
    const acme = w.tenantIds.acme!;
    const basic = (password: string) => ({ type: 'basic', username: 'jira-sync', password });
    assert.equal((await w.call('POST', '/api/v1/servers/test', { body: { url: w.tc.url, auth: basic(WRONG_PASSWORD) } })).body.ok, false);
    assert.equal((await w.call('POST', '/api/v1/servers', { body: { name: 'Wrong', url: w.tc.url, auth: basic(WRONG_PASSWORD) } })).status, 422);
    const one = await w.call('POST', '/api/v1/servers', { body: { name: 'Basic', url: w.tc.url, auth: basic(PASSWORD), backfillDays: 1 } });
    assert.equal(one.status, 201, one.text);
    w.tc.model.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-1 change', branch: 'main' });
    w.tc.model.runBuild({ buildTypeId: 'Shop_Build', branch: 'main', durationMs: 5_000 });
    w.tc.model.runBuild({ buildTypeId: 'Shop_Deploy', durationMs: 5_000 });
    w.tc.advance(10_000);
    await w.sync(acme);
    await w.sync(acme);
    assert.ok(w.sim.site('acme').buildsForIssue('TCJ-1').length > 0, 'synced to Jira');
    await dump();
    // The second connection of the same TeamCity would be a duplicate: change the first's credentials
    // to the token and back to a new password instead, then add the token one after deleting.
    assert.equal((await w.call('PATCH', `/api/v1/servers/${one.body.id}`, { body: { auth: { type: 'token', token: TOKEN } } })).status, 200);
    await w.sync(acme);
    await dump();
    w.tc.model.changePassword('jira-sync', NEW_PASSWORD);
    assert.equal((await w.call('PATCH', `/api/v1/servers/${one.body.id}`, { body: { auth: basic(NEW_PASSWORD) } })).status, 200);
    // A server whose credentials TeamCity no longer accepts: the failure is logged and stored.
    w.tc.model.changePassword('jira-sync', 'yet-another-pw-0001');
    await w.sync(acme);
    w.tc.model.changePassword('jira-sync', NEW_PASSWORD);
    for (const path of ['/api/v1/servers', `/api/v1/servers/${one.body.id}`, `/api/v1/servers/${one.body.id}/status`, `/api/v1/servers/${one.body.id}/rules`, '/api/v1/activity', '/api/v1/diagnose/TCJ-1', '/api/v1/projects/10000/overview']) {
      const r = await w.call('GET', path);
      assert.ok(r.status < 500, `${path}: ${r.status}`);
    }
    await dump();
    metricsText = (await w.call('GET', '/metrics', { user: null })).text;
    assert.match(metricsText, /tcj_teamcity_request_duration_seconds/);
    assert.equal((await w.call('DELETE', `/api/v1/servers/${one.body.id}`)).status, 204);
    const two = await w.call('POST', '/api/v1/servers', { body: { name: 'Token', url: w.tc.url, auth: { type: 'token', token: TOKEN }, backfillDays: 0 } });
    assert.equal(two.status, 201, two.text);
    await w.sync(acme);
    await dump();
    assert.equal((await w.call('DELETE', `/api/v1/servers/${two.body.id}`)).status, 204);
    const un = await w.sim.uninstallApp('globex');
    assert.equal(un.status, 204, un.responseBody);
    await dump();
    metricsText += (await w.call('GET', '/metrics', { user: null })).text;
  });

  test('the secrets are stored — as ciphertext only', async () => {
    // Mid-flow (a server existed): both kinds of ciphertext were there, and not the plaintext.
    const mid = JSON.parse(dumps[0]!) as Record<string, string[]>;
    const tenantRows = mid.tenants!.map((r) => JSON.parse(r) as { shared_secret_ct: string | null });
    assert.ok(tenantRows.length >= 2 && tenantRows.every((r) => typeof r.shared_secret_ct === 'string' && r.shared_secret_ct.startsWith('\\x')), 'shared secrets stored as bytea ciphertext');
    const servers = mid.teamcity_servers!.map((r) => JSON.parse(r) as Record<string, unknown>);
    assert.equal(servers.length, 1);
    const ct = Object.entries(servers[0]!).filter(([k]) => k.endsWith('_ct'));
    assert.ok(ct.length >= 1 && ct.every(([, v]) => typeof v === 'string' && v.startsWith('\\x')), `credential ciphertext columns: ${ct.map(([k]) => k).join(', ')}`);
  });

  test('no secret anywhere', () => {
    const places: Record<string, string[]> = {
      'log lines': w.logLines,
      'API responses': w.responses,
      '/metrics': [metricsText],
      'requests the app sent to Jira': w.sim.requests().map((r) => JSON.stringify(r)),
      'database dumps': dumps,
    };
    // bytea columns dump as hex: a plaintext stored in one would only show up hex-encoded.
    const hexDumps = dumps.map((d) => d.toLowerCase());
    assert.ok(w.logLines.length > 50, 'logs were captured');
    assert.ok(w.responses.length > 5);
    for (const [secretName, value] of Object.entries(secrets())) {
      for (const [place, lines] of Object.entries(places)) {
        const hit = lines.find((l) => l.includes(value));
        assert.equal(hit, undefined, `${secretName} in ${place}: ${hit?.slice(Math.max(0, hit.indexOf(value) - 200), hit.indexOf(value) + 100)}`);
      }
      const hex = Buffer.from(value).toString('hex');
      assert.ok(!hexDumps.some((d) => d.includes(hex)), `${secretName} hex-encoded in a bytea column`);
    }
  });
});
