 
// Auth (§1), permissions (§1.5/§1.6), endpoints, content negotiation, faults and request recording.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startTeamCitySimulator } from './server.ts';
import type { TeamCitySimulator } from './server.ts';
import { basic, enc, get } from './test-helpers.ts';

async function server(): Promise<TeamCitySimulator> {
  const sim = await startTeamCitySimulator({ version: '2025.07.3', superuserPassword: 'su-secret', utcOffsetMinutes: 180, seed: 7 });
  const m = sim.model;
  m.addProject({ id: 'Team', name: 'Team' });
  m.addProject({ id: 'Team_Sub', name: 'Sub', parentId: 'Team' });
  m.addProject({ id: 'Secret', name: 'Secret' });
  m.addVcsRoot({ id: 'Team_Git', projectId: 'Team' });
  m.addVcsRoot({ id: 'Secret_Git', projectId: 'Secret' });
  m.addBuildType({ id: 'Team_Build', projectId: 'Team', vcsRootIds: ['Team_Git'] });
  m.addBuildType({ id: 'Team_Sub_Deploy', projectId: 'Team_Sub', vcsRootIds: ['Team_Git'], type: 'deployment' });
  m.addBuildType({ id: 'Secret_Build', projectId: 'Secret', vcsRootIds: ['Secret_Git'] });
  m.addUser({ username: 'svc', password: 'svc-pw', name: 'Service', email: 'svc@example.com', viewProjects: ['Team'], viewRuntimeData: false });
  m.addUser({ username: 'other', password: 'o', email: 'other@example.com' });
  m.addChange({ vcsRootId: 'Secret_Git', comment: 'SEC-1 secret' });
  m.runBuild({ buildTypeId: 'Team_Build' });
  m.runBuild({ buildTypeId: 'Team_Sub_Deploy' });
  m.runBuild({ buildTypeId: 'Secret_Build' });
  return sim;
}

describe('authentication', () => {
  let sim: TeamCitySimulator;
  before(async () => {
    sim = await server();
  });
  after(async () => {
    await sim.close();
  });

  it('basic auth on /app/rest and /httpAuth/app/rest (hrefs keep the prefix), version segments', async () => {
    const a = await get(sim.url, '/app/rest/users/current', { authorization: basic('svc', 'svc-pw') });
    assert.equal(a.status, 200);
    assert.equal(a.json.username, 'svc');
    assert.equal(a.json.href, '/app/rest/users/id:2');
    const h = await get(sim.url, '/httpAuth/app/rest/users/current', { authorization: basic('svc', 'svc-pw') });
    assert.equal(h.json.href, '/httpAuth/app/rest/users/id:2');
    const v = await get(sim.url, '/app/rest/latest/server');
    assert.equal(v.status, 200);
    const v2 = await get(sim.url, '/app/rest/2018.1/server');
    assert.equal(v2.status, 200);
  });

  it('Bearer tokens, token as basic password (also with empty username), superuser', async () => {
    const token = sim.model.addToken('svc');
    const b = await get(sim.url, '/app/rest/users/current', { authorization: `Bearer ${token}` });
    assert.equal(b.json.username, 'svc');
    assert.equal((await get(sim.url, '/app/rest/users/current', { authorization: basic('svc', token) })).json.username, 'svc');
    assert.equal((await get(sim.url, '/app/rest/users/current', { authorization: basic('', token) })).json.username, 'svc');
    const su = await get(sim.url, '/app/rest/users/current', { authorization: basic('', 'su-secret') });
    assert.deepEqual([su.json.id, su.json.username, su.json.name], [-42, '', 'Super user']);
    sim.model.revokeToken(token);
    assert.equal((await get(sim.url, '/app/rest/users/current', { authorization: `Bearer ${token}` })).status, 401);
  });

  it('wrong password, unknown user, garbage header, guest disabled → identical 401', async () => {
    for (const h of [{ authorization: basic('svc', 'nope') }, { authorization: basic('ghost', 'x') }, { authorization: 'Digest abc' }, { authorization: '' }]) {
      const r = await get(sim.url, '/app/rest/server', h);
      assert.equal(r.status, 401);
      assert.equal(r.text, 'Authentication required\nTo login manually go to "/login.html" page\n');
    }
    const g = await fetch(`${sim.url}/guestAuth/app/rest/server`);
    assert.equal(g.status, 401);
  });

  it('401 after a password change (tokens keep working)', async () => {
    const token = sim.model.addToken('other');
    assert.equal((await get(sim.url, '/app/rest/server', { authorization: basic('other', 'o') })).status, 200);
    sim.model.changePassword('other', 'o2');
    const r = await get(sim.url, '/app/rest/server', { authorization: basic('other', 'o') });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Basic realm="TeamCity", Bearer realm="TeamCity"');
    assert.equal((await get(sim.url, '/app/rest/server', { authorization: basic('other', 'o2') })).status, 200);
    assert.equal((await get(sim.url, '/app/rest/server', { authorization: `Bearer ${token}` })).status, 200);
  });

  it('records every request with auth identity', async () => {
    sim.clearRequests();
    await get(sim.url, `/app/rest/builds?locator=${enc('count:1')}`, { authorization: basic('svc', 'svc-pw') });
    await get(sim.url, '/app/rest/nope', { authorization: basic('svc', 'bad') });
    await get(sim.url, '/app/rest/nope');
    const reqs = sim.requests();
    assert.equal(reqs.length, 3);
    assert.deepEqual(
      reqs.map((r) => [r.method, r.path, r.status, r.auth.scheme, r.auth.username, r.auth.authenticated, r.endpoint]),
      [
        ['GET', '/app/rest/builds', 200, 'basic', 'svc', true, 'builds'],
        ['GET', '/app/rest/nope', 401, 'basic', 'svc', false, null],
        ['GET', '/app/rest/nope', 404, 'basic', 'admin', true, null],
      ],
    );
    assert.deepEqual(reqs[0]!.query, { locator: 'count:1' });
    assert.equal(reqs[0]!.rawQuery, 'locator=count%3A1');
  });
});

describe('endpoints, permissions and representations', () => {
  let sim: TeamCitySimulator;
  const svc = { authorization: basic('svc', 'svc-pw') };
  before(async () => {
    sim = await server();
  });
  after(async () => {
    await sim.close();
  });

  it('anything but the six endpoints → 404 (recorded); non-GET → 405', async () => {
    for (const p of ['/app/rest/projects', '/app/rest/buildQueue', '/app/rest/builds/id:1/artifacts', '/app/rest/buildTypes/id:Team_Build/builds/', '/app/rest/changes/id:1', '/nothing']) {
      const r = await get(sim.url, p);
      assert.equal(r.status, 404, p);
    }
    assert.ok(sim.requests().filter((r) => r.endpoint === null && r.status === 404).length >= 6);
    const post = await fetch(`${sim.url}/app/rest/builds`, { method: 'POST', headers: { authorization: basic('admin', 'admin') } });
    assert.equal(post.status, 405);
  });

  it('per-project view permission: invisible builds/buildTypes/changes are filtered or 404', async () => {
    const all = await get(sim.url, '/app/rest/builds?fields=build(buildTypeId)', svc);
    assert.deepEqual(all.json.build.map((b: { buildTypeId: string }) => b.buildTypeId).sort(), ['Team_Build', 'Team_Sub_Deploy']);
    const secretId = sim.model.finishedByBt.get(sim.model.buildType('Secret_Build').internalId)![0]!.id;
    assert.equal((await get(sim.url, `/app/rest/builds/id:${secretId}`, svc)).status, 404);
    assert.equal((await get(sim.url, `/app/rest/builds/id:${secretId}`)).status, 200);
    assert.equal((await get(sim.url, '/app/rest/buildTypes/id:Secret_Build', svc)).status, 404);
    assert.equal((await get(sim.url, `/app/rest/builds?locator=${enc('buildType:(id:Secret_Build)')}`, svc)).status, 404);
    assert.equal((await get(sim.url, `/app/rest/changes?locator=${enc(`build:(id:${secretId})`)}`, svc)).status, 404);
    const ch = await get(sim.url, '/app/rest/changes?fields=change(comment)', svc);
    assert.ok(!ch.json.change.some((c: { comment: string }) => c.comment.includes('SEC-1')));
  });

  it('users: current always, others 404 "User not found" without the permission, email needs it', async () => {
    assert.equal((await get(sim.url, '/app/rest/users/current', svc)).json.email, 'svc@example.com');
    const o = await get(sim.url, '/app/rest/users/username:other', svc);
    assert.equal(o.status, 404);
    assert.equal(o.json.errors[0].message, 'User not found');
    const admin = await get(sim.url, '/app/rest/users/other');
    assert.equal(admin.json.email, 'other@example.com');
    assert.equal((await get(sim.url, '/app/rest/users/id:999')).status, 404);
  });

  it('403 for runtime data without permission', async () => {
    const r = await get(sim.url, '/app/rest/builds?fields=build(id,resultingProperties)', svc);
    assert.equal(r.status, 403);
    assert.match(r.json.errors[0].statusText, /403 \(Forbidden\)/);
  });

  it('XML by default, JSON with Accept: application/json; server offset in dates', async () => {
    const x = await get(sim.url, '/app/rest/server', { accept: '*/*' });
    assert.match(x.headers.get('content-type')!, /^application\/xml/);
    assert.match(x.text, /^<\?xml version="1.0" encoding="UTF-8" standalone="yes"\?><server version="2025\.07\.3 \(build \d+\)" versionMajor="2025"/);
    const none = await fetch(`${sim.url}/app/rest/builds?locator=count:1`, { headers: { authorization: basic('admin', 'admin'), accept: '' } });
    assert.match(await none.text(), /^<\?xml[^>]*><builds count="1"/);
    const mixed = await get(sim.url, '/app/rest/server', { accept: 'application/json, application/xml;q=0.9' });
    assert.equal(mixed.json.versionMinor, 7);
    assert.match(mixed.json.currentTime, /^\d{8}T\d{6}\+0300$/);
    const b = await get(sim.url, '/app/rest/buildTypes/Team_Sub_Deploy?fields=id,projectName,type');
    assert.deepEqual(b.json, { id: 'Team_Sub_Deploy', projectName: 'Team :: Sub', type: 'deployment' });
  });
});

describe('fault injection', () => {
  let sim: TeamCitySimulator;
  before(async () => {
    sim = await server();
  });
  after(async () => {
    await sim.close();
  });

  it('latency', async () => {
    sim.faults.setLatency(150);
    const t = Date.now();
    assert.equal((await get(sim.url, '/app/rest/server')).status, 200);
    assert.ok(Date.now() - t >= 140);
    sim.faults.setLatency(0);
  });

  it('5xx for the next N requests, then normal', async () => {
    sim.faults.failNext(2, 503);
    assert.equal((await get(sim.url, '/app/rest/server')).status, 503);
    assert.equal((await get(sim.url, '/app/rest/server')).status, 503);
    assert.equal((await get(sim.url, '/app/rest/server')).status, 200);
    assert.deepEqual(sim.requests().slice(-3).map((r) => r.fault), ['status', 'status', null]);
  });

  it('5xx with a probability is deterministic per seed and path-scoped', async () => {
    sim.faults.inject({ kind: 'status', status: 500, probability: 0.5, path: '/builds' });
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await get(sim.url, '/app/rest/builds?fields=count')).status);
    assert.ok(statuses.includes(500) && statuses.includes(200), statuses.join());
    assert.equal((await get(sim.url, '/app/rest/server')).status, 200, 'other paths unaffected');
    sim.faults.clear();
    const again = await server();
    again.faults.inject({ kind: 'status', status: 500, probability: 0.5, path: '/builds' });
    const statuses2: number[] = [];
    for (let i = 0; i < 20; i++) statuses2.push((await get(again.url, '/app/rest/builds?fields=count')).status);
    await again.close();
    assert.deepEqual(statuses2, statuses);
  });

  it('hang (client timeout), connection reset mid-body, malformed JSON, HTML login page', async () => {
    sim.faults.inject({ kind: 'hang' });
    await assert.rejects(fetch(`${sim.url}/app/rest/server`, { headers: { authorization: basic('admin', 'admin') }, signal: AbortSignal.timeout(200) }), /abort|timeout/i);

    sim.faults.inject({ kind: 'reset' });
    const res = await new Promise<{ status: number; error: string | null }>((resolve) => {
      const req = http.get(`${sim.url}/app/rest/builds`, { headers: { authorization: basic('admin', 'admin'), accept: 'application/json' } }, (r) => {
        r.on('data', () => undefined);
        r.on('error', (e) => resolve({ status: r.statusCode ?? 0, error: e.message }));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, error: null }));
      });
      req.on('error', (e) => resolve({ status: 0, error: e.message }));
    });
    assert.equal(res.status, 200);
    assert.ok(res.error, 'body must be cut');

    sim.faults.inject({ kind: 'malformedJson' });
    const mj = await get(sim.url, '/app/rest/builds');
    assert.equal(mj.status, 200);
    assert.match(mj.headers.get('content-type')!, /application\/json/);
    assert.throws(() => JSON.parse(mj.text) as unknown, SyntaxError);

    sim.faults.inject({ kind: 'htmlLogin' });
    const html = await get(sim.url, '/app/rest/builds');
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-type')!, /^text\/html/);
    assert.match(html.text, /<form action="\/loginSubmit.html"/);

    assert.equal((await get(sim.url, '/app/rest/builds')).status, 200, 'one-shot faults are consumed');
  });
});
