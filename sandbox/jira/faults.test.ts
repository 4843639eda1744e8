import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { jwtVerify } from 'jose';
import { startInstalled } from './testing.ts';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

void test('429 with Retry-After for the next N requests, 503, latency; faults are recorded', async () => {
  const { sim, call, close } = await startInstalled({ seed: 40 });
  try {
    sim.faults.failNext({ status: 429, count: 2, retryAfterSeconds: 7, path: '/rest/builds/0.1/bulk' });
    const body = { builds: [{ pipelineId: 'p', buildNumber: 1, updateSequenceNumber: 1, displayName: 'b', url: 'https://x.example/1', state: 'successful', lastUpdated: '2026-12-01T10:00:00Z', issueKeys: ['TCJ-1'] }] };
    assert.equal((await call('GET', '/rest/api/3/project/TCJ')).status, 200, 'other paths unaffected');
    for (let i = 0; i < 2; i++) {
      const r = await call('POST', '/rest/builds/0.1/bulk', { body });
      assert.equal(r.status, 429);
      assert.equal(r.headers.get('retry-after'), '7');
      assert.ok(r.headers.get('x-ratelimit-reset'));
      assert.equal(r.headers.get('ratelimit-reason'), 'jira-burst-based');
    }
    assert.equal((await call('POST', '/rest/builds/0.1/bulk', { body })).status, 202);
    assert.equal(sim.requests({ operation: 'submitBuilds' }).filter((r) => r.fault).length, 2);

    sim.faults.failNext({ status: 503, retryAfterSeconds: 1 });
    const u = await call('GET', '/rest/api/3/project/TCJ');
    assert.equal(u.status, 503);
    assert.equal(u.headers.get('retry-after'), '1');
    sim.faults.failNext({ status: 401, site: 'acme' });
    assert.equal((await call('GET', '/rest/api/3/project/TCJ')).status, 401);

    sim.faults.setLatency(150);
    const t0 = Date.now();
    assert.equal((await call('GET', '/rest/api/3/project/TCJ')).status, 200);
    assert.ok(Date.now() - t0 >= 140);
    sim.faults.clear();
  } finally {
    await close();
  }
});

void test('token bucket per site: burst then 429 until refilled (injected clock)', async () => {
  let clock = 1_800_000_000_000;
  const { sim, call, close } = await startInstalled({ seed: 41, now: () => clock });
  try {
    sim.faults.setRateLimit('acme', { capacity: 3, refillPerSecond: 0.5 });
    for (let i = 0; i < 3; i++) assert.equal((await call('GET', '/rest/api/3/project/TCJ', { iat: Math.floor(clock / 1000) })).status, 200);
    const limited = await call('GET', '/rest/api/3/project/TCJ', { iat: Math.floor(clock / 1000) });
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '2');
    clock += 2000;
    assert.equal((await call('GET', '/rest/api/3/project/TCJ', { iat: Math.floor(clock / 1000) })).status, 200);
    sim.faults.setRateLimit('acme', null);
  } finally {
    await close();
  }
});

void test('calls outside the allowed endpoint list are 404 and show up in unexpectedCalls()', async () => {
  const { sim, call, close } = await startInstalled({ seed: 42 });
  try {
    assert.deepEqual(sim.unexpectedCalls(), []);
    assert.equal((await call('GET', '/rest/api/3/myself')).status, 404);
    assert.equal((await call('DELETE', '/rest/builds/0.1/pipelines/p/builds/1')).status, 404);
    assert.equal((await call('GET', '/rest/deployments/0.1/pipelines/p/environments/e/deployments/1/gating-status')).status, 404);
    assert.equal((await call('GET', '/rest/builds/0.1/bulk')).status, 404, 'wrong method');
    assert.equal((await fetch(`${sim.url}/rest/builds/0.1/bulk`, { method: 'POST', body: '{}' })).status, 404, 'missing site context path');
    const unexpected = sim.unexpectedCalls();
    assert.deepEqual(unexpected.map((r) => `${r.method} ${r.path}`), [
      'GET /rest/api/3/myself',
      'DELETE /rest/builds/0.1/pipelines/p/builds/1',
      'GET /rest/deployments/0.1/pipelines/p/environments/e/deployments/1/gating-status',
      'GET /rest/builds/0.1/bulk',
      'POST /rest/builds/0.1/bulk',
    ]);
    assert.equal(unexpected[4]!.kind, 'unknown');
    sim.clearRequests();
    assert.deepEqual(sim.unexpectedCalls(), []);
  } finally {
    await close();
  }
});

void test('iframe URL: HS256 with the shared secret, qsh of that GET relative to the app baseUrl, sub = user', async () => {
  const { sim, app, install, close } = await startInstalled({ seed: 43 }, { contextPath: '/app' });
  try {
    const dev = sim.site('acme').user('Dan Developer')!;
    const url = sim.iframeUrl('acme', dev.accountId, '/pages/issue?issueKey=TCJ-1', { moduleKey: 'issue-panel' });
    assert.ok(url.startsWith(`${app.baseUrl}/pages/issue?`));
    const u = new URL(url);
    assert.equal(u.searchParams.get('issueKey'), 'TCJ-1');
    assert.equal(u.searchParams.get('xdm_e'), new URL(sim.url).origin);
    const token = u.searchParams.get('jwt')!;
    const { payload } = await jwtVerify(token, new TextEncoder().encode(install.sharedSecret), { algorithms: ['HS256'], issuer: install.clientKey });
    assert.equal(payload.sub, dev.accountId);
    assert.ok(payload.exp! > Date.now() / 1000);
    // qsh computed by hand: path without the app's /app context, query sorted and encoded, jwt excluded.
    const params = [...u.searchParams.entries()].filter(([k]) => k !== 'jwt').sort(([a], [b]) => (a < b ? -1 : 1));
    const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    const canonical = `GET&/pages/issue&${params.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&')}`;
    assert.equal(payload['qsh'], sha(canonical));
    // Wrong secret does not verify.
    await assert.rejects(jwtVerify(token, new TextEncoder().encode('nope'), { algorithms: ['HS256'] }));

    const ctx = sim.contextToken('acme', 'Alice Admin');
    const c = await jwtVerify(ctx, new TextEncoder().encode(install.sharedSecret), { algorithms: ['HS256'], issuer: install.clientKey });
    assert.equal(c.payload['qsh'], 'context-qsh');
    assert.equal(c.payload.sub, sim.site('acme').siteAdmin()!.accountId);
    assert.throws(() => sim.iframeUrl('acme', 'nobody', '/pages/admin'), /unknown user/);
  } finally {
    await close();
  }
});

void test('the browse page lists each issue with its builds and deployments by environment', async () => {
  const { sim, call, close } = await startInstalled({ seed: 44 });
  try {
    await call('POST', '/rest/builds/0.1/bulk', {
      body: { builds: [{ pipelineId: 'p', buildNumber: 7, updateSequenceNumber: 1, displayName: 'Proj / Config #7 (main)', url: 'https://tc.example.com/b/7', state: 'failed', lastUpdated: '2026-12-01T10:00:00Z', issueKeys: ['TCJ-1'] }] },
    });
    await call('POST', '/rest/deployments/0.1/bulk', {
      body: { deployments: [{ deploymentSequenceNumber: 3, updateSequenceNumber: 1, displayName: 'Deploy <3>', url: 'https://tc.example.com/b/3', description: 'd', lastUpdated: '2026-12-01T10:00:00Z', state: 'successful', pipeline: { id: 'd', displayName: 'Deploy', url: 'https://tc.example.com/bt/d' }, environment: { id: 'stg', displayName: 'Staging', type: 'staging' }, associations: [{ associationType: 'issueKeys', values: ['TCJ-1'] }] }] },
    });
    const r = await fetch(`${sim.siteUrl('acme')}/browse`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /text\/html/);
    const html = await r.text();
    assert.match(html, /TCJ-1/);
    assert.match(html, /Proj \/ Config #7 \(main\)/);
    assert.match(html, /href="https:\/\/tc.example.com\/b\/7"/);
    assert.match(html, />failed</);
    assert.match(html, /Staging \(staging\)/);
    assert.match(html, /Deploy &lt;3&gt;/, 'escaped');
    const one = await (await fetch(`${sim.siteUrl('acme')}/browse/TCJ-2`)).text();
    assert.match(one, /TCJ-2/);
    assert.doesNotMatch(one, /TCJ-1/);
    assert.deepEqual(sim.unexpectedCalls(), []);
  } finally {
    await close();
  }
});
