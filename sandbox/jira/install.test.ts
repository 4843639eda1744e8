import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeProtectedHeader, decodeJwt as joseDecode, importSPKI, jwtVerify } from 'jose';
import { startJiraSimulator, type InstallFault } from './server.ts';
import { callAsApp, startTestApp } from './testing.ts';

void test('install: RS256 signed callback verifies with the key from the key server; payload is complete', async () => {
  const started = Date.now();
  const sim = await startJiraSimulator({ seed: 1 });
  assert.ok(Date.now() - started < 1000, 'starts in < 1 s');
  const app = await startTestApp({ keysUrl: sim.keysUrl });
  try {
    const r = await sim.installApp('acme', app.descriptorUrl);
    assert.equal(r.ok, true, JSON.stringify(app.events));
    assert.equal(r.status, 204);
    const installed = app.events.find((e) => e.event === 'installed');
    assert.ok(installed?.accepted, installed?.reason);
    // What the app received.
    const p = installed.payload;
    assert.equal(p['key'], app.appKey);
    assert.equal(p['clientKey'], sim.site('acme').clientKey);
    assert.equal(p['baseUrl'], sim.siteUrl('acme'));
    assert.equal(p['eventType'], 'installed');
    assert.equal(p['productType'], 'jira');
    for (const f of ['sharedSecret', 'displayUrl', 'description', 'serverVersion', 'pluginsVersion', 'oauthClientId', 'accountId']) {
      assert.equal(typeof p[f], 'string', f);
    }
    // Token: header kid, iss = clientKey, aud = app baseUrl, exp in the future, qsh of POST&/lifecycle/installed&.
    const header = decodeProtectedHeader(r.token!);
    assert.equal(header.alg, 'RS256');
    assert.equal(header.kid, sim.kid);
    assert.deepEqual(app.keyFetches, [sim.kid]);
    const pem = await (await fetch(`${sim.keysUrl}/${sim.kid}`)).text();
    const { payload } = await jwtVerify(r.token!, await importSPKI(pem, 'RS256'), { audience: app.baseUrl, issuer: String(p['clientKey']) });
    assert.ok(payload.exp! > Date.now() / 1000);
    // enabled follows, HS256 with the new shared secret (verified by the test app).
    assert.equal(r.enabled?.ok, true);
    assert.equal(app.events.at(-1)?.event, 'enabled');
    assert.equal(app.events.at(-1)?.accepted, true);
    assert.equal(sim.installation('acme')?.sharedSecret, p['sharedSecret']);
    // Key server: unknown kid → 404; requests recorded.
    assert.equal((await fetch(`${sim.keysUrl}/nope`)).status, 404);
    assert.ok(sim.requests({ kind: 'keys' }).length >= 2);
  } finally {
    await sim.close();
    await app.close();
  }
});

void test('reinstall issues a new shared secret; the old one stops working; clientKey is stable', async () => {
  const sim = await startJiraSimulator({ seed: 2 });
  const app = await startTestApp({ keysUrl: sim.keysUrl });
  try {
    const first = await sim.installApp('acme', app.descriptorUrl);
    const second = await sim.installApp('acme', app.descriptorUrl);
    assert.ok(first.ok && second.ok);
    assert.notEqual(first.sharedSecret, second.sharedSecret);
    assert.equal(first.clientKey, second.clientKey);
    const url = sim.siteUrl('acme');
    assert.equal((await callAsApp(url, first, 'GET', '/rest/api/3/project/TCJ')).status, 401);
    assert.equal((await callAsApp(url, second, 'GET', '/rest/api/3/project/TCJ')).status, 200);
    // Deterministic with a seed: a second simulator with the same seed issues the same values.
    const sim2 = await startJiraSimulator({ seed: 2 });
    const app2 = await startTestApp({ keysUrl: sim2.keysUrl });
    try {
      const again = await sim2.installApp('acme', app2.descriptorUrl);
      assert.equal(again.clientKey, first.clientKey);
      assert.equal(again.sharedSecret, first.sharedSecret);
      assert.deepEqual(sim2.site('acme').users.map((u) => u.accountId), sim.site('acme').users.map((u) => u.accountId));
    } finally {
      await sim2.close();
      await app2.close();
    }
  } finally {
    await sim.close();
    await app.close();
  }
});

void test('forged install requests are rejected by a correct app and never create an installation', async () => {
  const sim = await startJiraSimulator({ seed: 3 });
  const app = await startTestApp({ keysUrl: sim.keysUrl });
  const faults: InstallFault[] = [
    'unsigned', 'alg-none', 'hs256', 'tampered-signature', 'tampered-claims', 'unknown-kid', 'wrong-key', 'wrong-aud', 'wrong-iss', 'wrong-qsh', 'expired',
  ];
  try {
    for (const fault of faults) {
      const r = await sim.installApp('acme', app.descriptorUrl, { fault });
      assert.equal(r.ok, false, `${fault} must be rejected`);
      assert.equal(r.status, 401, fault);
      assert.equal(sim.installation('acme'), undefined, fault);
      const last = app.events.at(-1)!;
      assert.equal(last.accepted, false, fault);
    }
    // The broken tokens are broken in the advertised way.
    const wrongAud = await sim.installApp('acme', app.descriptorUrl, { fault: 'wrong-aud' });
    assert.notEqual(joseDecode(wrongAud.token!).aud, app.baseUrl);
    const unknownKid = await sim.installApp('acme', app.descriptorUrl, { fault: 'unknown-kid' });
    assert.equal((await fetch(`${sim.keysUrl}/${String(decodeProtectedHeader(unknownKid.token!).kid)}`)).status, 404);
    // And a proper install still works afterwards.
    assert.equal((await sim.installApp('acme', app.descriptorUrl)).ok, true);
  } finally {
    await sim.close();
    await app.close();
  }
});

void test('uninstall: disabled (HS256) then uninstalled (RS256); data purged; app calls get 401', async () => {
  const sim = await startJiraSimulator({ seed: 4 });
  const app = await startTestApp({ keysUrl: sim.keysUrl, contextPath: '/app' });
  try {
    const install = await sim.installApp('acme', app.descriptorUrl);
    assert.equal(install.ok, true, JSON.stringify(app.events));
    const url = sim.siteUrl('acme');
    const body = {
      properties: { teamcityServerId: 's1' },
      builds: [{ pipelineId: 'p', buildNumber: 1, updateSequenceNumber: 1, displayName: 'b', url: 'https://tc.example.com/b/1', state: 'successful', lastUpdated: '2026-12-01T10:00:00Z', issueKeys: ['TCJ-1'] }],
    };
    assert.equal((await callAsApp(url, install, 'POST', '/rest/builds/0.1/bulk', { body })).status, 202);
    assert.equal(sim.site('acme').builds.size, 1);

    const d = await sim.disableApp('acme');
    assert.equal(d.ok, true);
    assert.equal((await callAsApp(url, install, 'GET', '/rest/api/3/project/TCJ')).status, 401, 'disabled app');
    assert.equal((await sim.enableApp('acme')).ok, true);
    assert.equal((await callAsApp(url, install, 'GET', '/rest/api/3/project/TCJ')).status, 200);

    const u = await sim.uninstallApp('acme');
    assert.equal(u.ok, true, JSON.stringify(app.events.at(-1)));
    assert.deepEqual(app.events.slice(-2).map((e) => [e.event, e.accepted]), [['disabled', true], ['uninstalled', true]]);
    assert.equal(decodeProtectedHeader(u.token!).alg, 'RS256');
    assert.equal(sim.site('acme').builds.size, 0, 'Jira deletes the app data on uninstall');
    assert.equal((await callAsApp(url, install, 'POST', '/rest/builds/0.1/bulk', { body })).status, 401);
    // A forged uninstall is refused by the app (Jira has removed the app anyway).
    await sim.installApp('acme', app.descriptorUrl);
    const forged = await sim.uninstallApp('acme', undefined, { fault: 'wrong-key' });
    assert.equal(forged.ok, false);
  } finally {
    await sim.close();
    await app.close();
  }
});

void test('rotated install key: new kid, old kid still served, app fetches the new one', async () => {
  const sim = await startJiraSimulator({ seed: 5 });
  const app = await startTestApp({ keysUrl: sim.keysUrl });
  try {
    const oldKid = sim.kid;
    const newKid = await sim.rotateInstallKey();
    assert.notEqual(oldKid, newKid);
    assert.equal((await fetch(`${sim.keysUrl}/${oldKid}`)).status, 200);
    assert.equal((await sim.installApp('acme', app.descriptorUrl)).ok, true);
    assert.deepEqual(app.keyFetches, [newKid]);
  } finally {
    await sim.close();
    await app.close();
  }
});
