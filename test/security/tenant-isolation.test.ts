// Tenant isolation end to end (issue #8, "Security checks"): tenant B (globex) has a server, rules,
// synced builds and deliveries; then, with tenant A's (acme) valid site-admin token, EVERY admin API
// route — enumerated from fastify's route table (the onRoute hook), so a route added later is covered
// without touching this test — is called with B's ids. Routes that take a B id answer 404/403; the
// others answer from A's data only; no response carries anything of B; B's rows in every table (read
// as the superuser, RLS bypassed) and B's data in Jira are byte-for-byte unchanged.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { dumpAllTables, startSecurityWorld, type SecurityWorld } from './world.ts';

const PASSWORD = 'iso-pw-Rb47cW';
let w: SecurityWorld;
let bServer = '';
let aServer = '';
const B_NAME = 'Globex private TeamCity';

async function rowsOfB(): Promise<string> {
  const dump = await dumpAllTables(w.admin);
  const tenantB = w.tenantIds.globex!;
  return JSON.stringify(Object.fromEntries(Object.entries(dump).map(([table, rows]) => [table, rows.filter((r) => r.includes(tenantB) || r.includes(bServer)).sort()])));
}

const jiraOfB = () =>
  JSON.stringify([...w.sim.site('globex').builds.values(), ...w.sim.site('globex').deployments.values()].map((e) => [e.properties, (e as { updateSequenceNumber?: number }).updateSequenceNumber]));

before(async () => {
  w = await startSecurityWorld({ logLevel: 'warn' });
  const m = w.tc.model;
  m.addProject({ id: 'Shop', name: 'Shop' });
  m.addVcsRoot({ id: 'Shop_Git', projectId: 'Shop', url: 'https://git.example.com/shop.git' });
  m.addBuildType({ id: 'Shop_Build', projectId: 'Shop', name: 'Build', type: 'regular', vcsRootIds: ['Shop_Git'], branched: true });
  m.addBuildType({ id: 'Shop_Deploy', projectId: 'Shop', name: 'Deploy to Production', type: 'deployment', vcsRootIds: ['Shop_Git'] });
  m.addUser({ username: 'jira-sync', password: PASSWORD, viewProjects: 'all' });
  const token = m.addToken('jira-sync');
  const b = await w.call('POST', '/api/v1/servers', { site: 'globex', body: { name: B_NAME, url: w.tc.url, auth: { type: 'basic', username: 'jira-sync', password: PASSWORD }, backfillDays: 0 } });
  assert.equal(b.status, 201, b.text);
  bServer = b.body.id;
  // A connects the same TeamCity (its own connection): A's routes have data of their own to return.
  const a = await w.call('POST', '/api/v1/servers', { site: 'acme', body: { name: 'Acme TC', url: w.tc.url, auth: { type: 'token', token }, backfillDays: 0 } });
  assert.equal(a.status, 201, a.text);
  aServer = a.body.id;
  assert.equal((await w.call('PUT', `/api/v1/servers/${bServer}/rules`, { site: 'globex', body: { exclude: [{ branch: 'secret-b/*' }] } })).status, 200);
  await w.sync(w.tenantIds.globex!);
  m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-1 globex-only work', branch: 'main' });
  m.runBuild({ buildTypeId: 'Shop_Build', branch: 'main', durationMs: 5_000 });
  m.runBuild({ buildTypeId: 'Shop_Deploy', durationMs: 5_000 });
  w.tc.advance(10_000);
  await w.sync(w.tenantIds.globex!);
  await w.sync(w.tenantIds.globex!);
  assert.ok(w.sim.site('globex').buildsForIssue('TCJ-1').length > 0, 'B has builds in Jira');
  assert.ok((await w.count('builds', 'tenant_id = $1', [w.tenantIds.globex])) > 0, 'B has builds');
  assert.ok((await w.count('deliveries', 'tenant_id = $1', [w.tenantIds.globex])) > 0, 'B has deliveries');
});

after(async () => {
  await w?.close();
});

/** A body that would succeed on A's own server, so a refusal is about the id, not the body. */
function bodyFor(method: string, url: string): unknown {
  if (method === 'GET' || method === 'HEAD' || method === 'DELETE') return undefined;
  if (method === 'PATCH') return { name: 'pwned', paused: true };
  if (url.endsWith('/rules') || url.endsWith('/rules/preview')) return { exclude: [{ branch: '*' }], include: [{ buildTypeId: 'x' }] };
  if (url.endsWith('/backfill')) return { since: '2025-01-01' };
  if (url.endsWith('/servers/test')) return { url: w.tc.url, auth: { type: 'basic', username: 'jira-sync', password: PASSWORD } };
  if (url.endsWith('/servers') && method === 'POST') return { name: 'Acme second', url: `${w.tc.url}/`, auth: { type: 'basic', username: 'jira-sync', password: PASSWORD }, backfillDays: 0 };
  return undefined;
}

describe('tenant isolation over every admin API route', () => {
  test('the route table is enumerated (and covers the known routes)', () => {
    const api = w.routes.filter((r) => r.url.startsWith('/api/v1'));
    const names = new Set(api.map((r) => `${r.method} ${r.url}`));
    for (const known of ['GET /api/v1/servers', 'POST /api/v1/servers', 'POST /api/v1/servers/test', 'GET /api/v1/servers/:id', 'PATCH /api/v1/servers/:id', 'DELETE /api/v1/servers/:id', 'POST /api/v1/servers/:id/sync', 'POST /api/v1/servers/:id/backfill', 'GET /api/v1/servers/:id/status', 'GET /api/v1/servers/:id/rules', 'PUT /api/v1/servers/:id/rules', 'POST /api/v1/servers/:id/rules/preview', 'GET /api/v1/activity', 'GET /api/v1/diagnose/:issueKey', 'GET /api/v1/projects/:projectId/overview']) {
      assert.ok(names.has(known), `${known} missing from ${[...names].join(', ')}`);
    }
  });

  test("with A's token, B's ids are not found on every route, nothing of B is read or changed", async () => {
    const api = w.routes.filter((r) => r.url.startsWith('/api/v1'));
    const bRowsBefore = await rowsOfB();
    const bJiraBefore = jiraOfB();
    const bSecrets = [bServer, B_NAME, w.tenantIds.globex!, w.clientKeys.globex!, 'secret-b/*', w.sim.siteUrl('globex')];
    const checked: string[] = [];
    // Destructive routes last, so that every other route meets B's server intact.
    const ordered = [...api].sort((x, y) => Number(x.method === 'DELETE') - Number(y.method === 'DELETE'));
    for (const { method, url } of ordered) {
      const params = [...url.matchAll(/:(\w+)/g)].map((m) => m[1]!);
      const unknownParams = params.filter((p) => !['id', 'issueKey', 'projectId'].includes(p));
      assert.deepEqual(unknownParams, [], `route ${method} ${url} has a parameter this test cannot fill: teach it`);
      const path = url.replace(':id', bServer).replace(':issueKey', 'TCJ-1').replace(':projectId', '10000');
      const variants = params.includes('id') ? [path] : [path, `${path}?serverId=${bServer}`];
      for (const p of variants) {
        const body = bodyFor(method, url);
        const r = await w.call(method, p, { site: 'acme', ...(body !== undefined ? { body } : {}) });
        checked.push(`${method} ${p} → ${r.status}`);
        assert.ok(r.status < 500, `${method} ${p}: ${r.status} ${r.text}`);
        if (params.includes('id')) {
          assert.ok(r.status === 404 || r.status === 403, `${method} ${p}: B's server reachable with A's token (${r.status} ${r.text.slice(0, 300)})`);
        }
        for (const s of bSecrets) assert.ok(!r.text.includes(s), `${method} ${p} leaked ${s}: ${r.text.slice(0, 300)}`);
      }
    }
    assert.ok(checked.length >= 15, checked.join('\n'));
    assert.equal(await rowsOfB(), bRowsBefore, "B's rows changed");
    assert.equal(jiraOfB(), bJiraBefore, "B's data in Jira changed");
    // B's server is still whole for B, and A's own server still answers A.
    const own = await w.call('GET', `/api/v1/servers/${bServer}`, { site: 'globex' });
    assert.equal(own.status, 200);
    assert.equal(own.body.name, B_NAME);
    assert.equal(own.body.paused, false);
    assert.equal((await w.call('GET', `/api/v1/servers/${aServer}`, { site: 'acme' })).status, 200);
  });

  test("B's token cannot read A's servers either (the mirror image), and a tenant's own token cannot name the other tenant", async () => {
    for (const path of [`/api/v1/servers/${aServer}`, `/api/v1/servers/${aServer}/status`, `/api/v1/servers/${aServer}/rules`]) {
      const r = await w.call('GET', path, { site: 'globex' });
      assert.equal(r.status, 404, path);
    }
    const listed = await w.call('GET', '/api/v1/servers', { site: 'globex' });
    assert.deepEqual(listed.body.servers.map((s: { id: string }) => s.id), [bServer]);
    const activity = await w.call('GET', `/api/v1/activity?serverId=${aServer}`, { site: 'globex' });
    assert.deepEqual(activity.body.items, []);
  });
});
