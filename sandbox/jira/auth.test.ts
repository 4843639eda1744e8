import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { callAsApp, startInstalled, startTestApp } from './testing.ts';
import { startJiraSimulator } from './server.ts';
import { signHs256 } from './jwt.ts';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

void test('app → Jira JWT: good token accepted, every broken one gets 401 with the reason recorded', async () => {
  const { sim, install, call, close } = await startInstalled({ seed: 10 });
  try {
    const ok = await call('GET', '/rest/api/3/project/TCJ');
    assert.equal(ok.status, 200);
    const rec = sim.requests({ operation: 'getProject' }).at(-1)!;
    assert.equal(rec.claims?.['iss'], install.appKey);
    assert.equal(rec.status, 200);

    // ACE-style aud: [clientKey] is accepted too.
    assert.equal((await call('GET', '/rest/api/3/project/TCJ', { aud: [install.clientKey] })).status, 200);

    const now = Math.floor(Date.now() / 1000);
    const cases: Array<[string, Parameters<typeof call>[2], RegExp]> = [
      ['missing header', { token: null }, /missing JWT/],
      ['wrong secret', { secret: 'not-the-secret' }, /signature/],
      ['expired', { iat: now - 600, expiresIn: 180 }, /expired/],
      ['wrong qsh', { qsh: sha('GET&/rest/api/3/project/DEMO&') }, /qsh mismatch/],
      ['qsh over the full path incl. context path', { qsh: sha('GET&/sites/acme/rest/api/3/project/TCJ&') }, /qsh mismatch/],
      ['context-qsh', { qsh: 'context-qsh' }, /context-qsh/],
      ['iss = clientKey instead of app key', { iss: install.clientKey }, /app key, not the clientKey/],
      ['unknown iss', { iss: 'some-other-app' }, /not an app installed/],
      ['aud without clientKey', { aud: 'https://elsewhere' }, /aud/],
      ['alg none', { token: `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: install.appKey })).toString('base64url')}.` }, /alg must be HS256/],
      ['garbage', { token: 'abc' }, /malformed/],
    ];
    for (const [name, opts, reason] of cases) {
      const r = await call('GET', '/rest/api/3/project/TCJ', opts);
      assert.equal(r.status, 401, name);
      const last = sim.requests().at(-1)!;
      assert.match(last.authError ?? '', reason, name);
    }
    // A token for one request cannot be replayed on another (qsh binds method, path and query).
    const token = signHs256({ iss: install.appKey, iat: now, exp: now + 180, qsh: sha('GET&/rest/api/3/project/TCJ&') }, install.sharedSecret);
    assert.equal((await call('GET', '/rest/api/3/project/TCJ', { token })).status, 200);
    assert.equal((await call('GET', '/rest/api/3/project/DEMO', { token })).status, 401);
    assert.equal((await call('GET', '/rest/api/3/project/TCJ?expand=lead', { token })).status, 401);
    // Query strings are part of the qsh: a correctly signed query is accepted.
    assert.equal((await call('GET', '/rest/api/3/issue/TCJ-1?fields=summary,project')).status, 200);
  } finally {
    await close();
  }
});

void test('a site on its own port has no context path (baseUrl like https://x.atlassian.net)', async () => {
  const sim = await startJiraSimulator({ seed: 11, sites: ['acme', { name: 'globex', ownPort: true }] });
  const app = await startTestApp({ keysUrl: sim.keysUrl });
  try {
    assert.doesNotMatch(sim.siteUrl('globex'), /\/sites\//);
    const install = await sim.installApp('globex', app.descriptorUrl);
    assert.equal(install.ok, true);
    assert.equal(install.payload['baseUrl'], sim.siteUrl('globex'));
    assert.notEqual(sim.site('globex').clientKey, sim.site('acme').clientKey);
    assert.equal((await callAsApp(sim.siteUrl('globex'), install, 'GET', '/rest/api/3/project/TCJ')).status, 200);
    // Installed on globex only: the same credentials do not work on acme.
    assert.equal((await callAsApp(sim.siteUrl('acme'), install, 'GET', '/rest/api/3/project/TCJ')).status, 401);
    // The main server does not expose an own-port site under /sites/.
    assert.equal((await fetch(`${sim.url}/sites/globex/rest/api/3/project/TCJ`)).status, 404);
  } finally {
    await sim.close();
    await app.close();
  }
});
