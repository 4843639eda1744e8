import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startInstalled } from './testing.ts';
import { decodeJwt, signHs256 } from './jwt.ts';

void test('offline all.js: script, context token for the page token\'s user, host page with a fresh iframe URL', async () => {
  const { sim, install, close } = await startInstalled({ seed: 21 });
  try {
    const js = await fetch(`${sim.url}/all.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /javascript/);
    assert.match(await js.text(), /window\.AP = \{/);

    // Context token for the user and app of a page token (JSON and JSONP).
    const page = new URL(sim.iframeUrl('acme', 'Dan Developer', '/pages/issue', { query: { issueKey: 'TCJ-1' } }));
    const jwt = page.searchParams.get('jwt')!;
    const json = await fetch(`${sim.url}/_sim/context-token?jwt=${encodeURIComponent(jwt)}`);
    assert.equal(json.status, 200);
    const { token } = (await json.json()) as { token: string };
    const claims = decodeJwt(token)!.claims;
    const dan = sim.site('acme').user('Dan Developer')!;
    assert.equal(claims['qsh'], 'context-qsh');
    assert.equal(claims['sub'], dan.accountId);
    assert.equal(claims['iss'], install.clientKey);
    const jsonp = await (await fetch(`${sim.url}/_sim/context-token?callback=__cb1&jwt=${encodeURIComponent(jwt)}`)).text();
    assert.match(jsonp, /^__cb1\("[\w-]+\.[\w-]+\.[\w-]+"\);$/);

    // Forged or unknown page tokens get no context token; bad callback names are refused.
    const forged = signHs256({ ...decodeJwt(jwt)!.claims, sub: sim.site('acme').user('Alice Admin')!.accountId }, 'not-the-secret');
    assert.equal((await fetch(`${sim.url}/_sim/context-token?jwt=${forged}`)).status, 401);
    assert.match(await (await fetch(`${sim.url}/_sim/context-token?callback=cb&jwt=${forged}`)).text(), /^cb\(null, ".*shared secret/);
    assert.equal((await fetch(`${sim.url}/_sim/context-token?jwt=abc`)).status, 400);
    assert.equal((await fetch(`${sim.url}/_sim/context-token?callback=alert(1)//&jwt=${jwt}`)).status, 400);

    // Host page: frames a freshly signed app URL (extra parameters passed on), or redirects to it.
    const host = await fetch(`${sim.siteUrl('acme')}/_sim/open?user=Alice%20Admin&path=/pages/issue&issueKey=TCJ-2`);
    assert.equal(host.status, 200);
    const src = /<iframe id="app-frame"[^>]* src="([^"]+)"/.exec(await host.text())?.[1]?.replace(/&amp;/g, '&');
    assert.ok(src);
    const framed = new URL(src);
    assert.equal(framed.pathname, '/pages/issue');
    assert.equal(framed.searchParams.get('issueKey'), 'TCJ-2');
    assert.equal(decodeJwt(framed.searchParams.get('jwt')!)!.claims['sub'], sim.site('acme').user('Alice Admin')!.accountId);
    const redirect = await fetch(`${sim.siteUrl('acme')}/_sim/open?path=/pages/admin&redirect=1`, { redirect: 'manual' });
    assert.equal(redirect.status, 302);
    assert.match(redirect.headers.get('location') ?? '', /\/pages\/admin\?.*jwt=/);
    assert.equal((await fetch(`${sim.siteUrl('acme')}/_sim/open?user=Nobody`)).status, 404);

    // The browse page reloads itself with ?refresh=N, and not without.
    assert.match(await (await fetch(`${sim.siteUrl('acme')}/browse/TCJ-1?refresh=5`)).text(), /http-equiv="refresh" content="5"/);
    assert.doesNotMatch(await (await fetch(`${sim.siteUrl('acme')}/browse/TCJ-1`)).text(), /http-equiv="refresh"/);
    assert.deepEqual(sim.unexpectedCalls(), []);
  } finally {
    await close();
  }
});
