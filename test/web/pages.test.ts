// The pages Jira shows in iframes, over real HTTP: page JWT (real qsh, never a context token),
// security headers (CSP with a nonce and no unsafe-inline scripts, frame-ancestors = the tenant's own
// Jira origin, no-store, no X-Frame-Options), escaping of everything user-controlled, the static
// module and stylesheet, and a type check of the browser module.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import type { Dispatcher } from 'undici';
import { startJiraSimulator, type JiraSimulator } from '../../sandbox/jira/server.ts';
import { Secrets } from '../../src/crypto/secrets.ts';
import { InstallKeys } from '../../src/jira/install-keys.ts';
import { registerLifecycle } from '../../src/jira/lifecycle.ts';
import { createOutboundDispatcher } from '../../src/net/outbound.ts';
import { TenantRepository } from '../../src/tenants/repository.ts';
import { escapeHtml, html } from '../../src/web/pages/html.ts';
import { pageCsp } from '../../src/web/pages/headers.ts';
import { registerPages } from '../../src/web/pages/index.ts';
import { renderShell } from '../../src/web/pages/templates.ts';
import { buildServer } from '../../src/web/server.ts';
import { createTestDatabase, quietLog, type TestDatabase } from '../helpers/db.ts';
import { freePort } from '../helpers/net.ts';

const XSS_NAME = '<img src=x onerror=alert(1)>';

let t: TestDatabase;
let sim: JiraSimulator;
let app: FastifyInstance;
let appUrl: string;
let keyDir: string;
let dispatcher: Dispatcher;

before(async () => {
  t = await createTestDatabase();
  keyDir = await mkdtemp(join(tmpdir(), 'tcj-pages-'));
  const secrets = await Secrets.local(join(keyDir, 'keyring.json'), { secretsExist: async () => false });
  const tenants = new TenantRepository(t.db, secrets);
  sim = await startJiraSimulator({ seed: 7, sites: ['acme', { name: 'globex', ownPort: true }] });
  const port = await freePort();
  appUrl = `http://127.0.0.1:${port}`;
  const allow = [new URL(sim.url).host, new URL(sim.siteUrl('globex')).host];
  dispatcher = createOutboundDispatcher({ allowHosts: allow });
  app = buildServer({ db: t.db, log: quietLog });
  registerLifecycle(app, { appKey: 'teamcity-integration-for-jira', baseUrl: appUrl, tenants, installKeys: new InstallKeys(sim.keysUrl, dispatcher), allowHosts: allow });
  registerPages(app, { tenants, baseUrl: appUrl });
  await app.listen({ port, host: '127.0.0.1' });
  for (const site of ['acme', 'globex']) {
    const r = await sim.installApp(site, `${appUrl}/atlassian-connect.json`);
    assert.equal(r.status, 204, `install on ${site}: ${r.responseBody}`);
  }
});

after(async () => {
  await app?.close();
  await sim?.close();
  await dispatcher?.close();
  await t?.drop();
  if (keyDir) await rm(keyDir, { recursive: true, force: true });
});

/** Parses a CSP header into directive → sources. */
function csp(header: string | null): Map<string, string[]> {
  assert.ok(header, 'content-security-policy is set');
  return new Map(
    header
      .split(';')
      .map((d) => d.trim().split(/\s+/))
      .filter((parts) => parts[0])
      .map(([name, ...values]) => [name!, values]),
  );
}

describe('pages: authentication', () => {
  test('no jwt → 401', async () => {
    for (const path of ['/pages/admin', '/pages/project?projectId=10000&projectKey=TCJ', '/pages/issue?issueId=1&issueKey=TCJ-1']) {
      const res = await fetch(`${appUrl}${path}`);
      assert.equal(res.status, 401, path);
      assert.doesNotMatch(await res.text(), /<script/);
    }
  });

  test('a malformed, forged, misplaced or context token → 401', async () => {
    const good = new URL(sim.iframeUrl('acme', 'Alice Admin', '/pages/admin'));
    const token = good.searchParams.get('jwt')!;
    const [h, p] = token.split('.');
    const cases: Array<[string, string]> = [
      ['garbage', `${appUrl}/pages/admin?jwt=not.a.jwt`],
      ['bad signature', `${appUrl}/pages/admin?${new URLSearchParams({ ...Object.fromEntries(good.searchParams), jwt: `${h}.${p}.${'A'.repeat(43)}` }).toString()}`],
      // Signed for /pages/admin, replayed on /pages/issue: the qsh does not match.
      ['other page', `${appUrl}/pages/issue?${good.searchParams.toString()}`],
      // Query changed after signing.
      ['tampered query', `${good.toString()}&issueKey=TCJ-1`],
      // AP.context.getToken() tokens are for the API only.
      ['context token', `${appUrl}/pages/admin?jwt=${sim.contextToken('acme', 'Alice Admin')}`],
    ];
    for (const [what, url] of cases) {
      const res = await fetch(url);
      assert.equal(res.status, 401, what);
    }
  });

  test('a valid iframe URL loads the page for any user (data access is checked by the API)', async () => {
    for (const user of ['Alice Admin', 'Otto Outsider']) {
      const res = await fetch(sim.iframeUrl('acme', user, '/pages/admin'));
      assert.equal(res.status, 200, user);
      assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
      const body = await res.text();
      assert.match(body, /data-page="admin"/);
      // The shell carries no tenant data: no server names, no URLs other than our own assets.
      assert.doesNotMatch(body, /teamcity_servers|sharedSecret|clientKey/i);
    }
  });
});

describe('pages: security headers', () => {
  test('CSP: nonce-only scripts (no unsafe-inline/eval), frame-ancestors = the tenant’s Jira origin, no-store', async () => {
    const res = await fetch(sim.iframeUrl('acme', 'Alice Admin', '/pages/admin'));
    assert.equal(res.status, 200);
    const policy = csp(res.headers.get('content-security-policy'));
    const scripts = policy.get('script-src') ?? [];
    assert.ok(scripts.length > 0, 'script-src present');
    assert.ok(!scripts.includes("'unsafe-inline'"), 'no unsafe-inline');
    assert.ok(!scripts.includes("'unsafe-eval'"), 'no unsafe-eval');
    assert.ok(!scripts.includes('*') && !scripts.some((s) => s.includes('*')), 'no wildcard script source');
    const nonce = scripts.find((s) => s.startsWith("'nonce-"))?.slice(7, -1);
    assert.ok(nonce && nonce.length >= 16, 'a nonce');
    assert.deepEqual(policy.get('frame-ancestors'), [new URL(sim.siteUrl('acme')).origin]);
    assert.deepEqual(policy.get('default-src'), ["'none'"]);
    assert.deepEqual(policy.get('object-src'), ["'none'"]);
    assert.deepEqual(policy.get('base-uri'), ["'none'"]);
    assert.ok(!(policy.get('style-src') ?? []).includes("'unsafe-inline'"), 'no inline styles either');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(res.headers.get('x-frame-options'), null, 'X-Frame-Options would break embedding in Jira');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');

    // Every script element carries the nonce and has a src: no inline script, no inline handlers.
    const body = await res.text();
    const tags = [...body.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    assert.equal(tags.length, 2, 'all.js and our module');
    for (const [, attrs, content] of tags) {
      assert.match(attrs!, new RegExp(`nonce="${nonce.replace(/[+/=]/g, (c) => `\\${c}`)}"`));
      assert.match(attrs!, /\bsrc="/);
      assert.equal(content!.trim(), '');
    }
    assert.match(body, /src="https:\/\/connect-cdn\.atl-paas\.net\/all\.js"/);
    assert.doesNotMatch(body, /\son[a-z]+=/i, 'no inline event handlers');
  });

  test('a fresh nonce per response', async () => {
    const nonces = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const res = await fetch(sim.iframeUrl('acme', 'Alice Admin', '/pages/admin'));
      const n = /'nonce-([^']+)'/.exec(res.headers.get('content-security-policy') ?? '')?.[1];
      assert.ok(n);
      nonces.add(n);
    }
    assert.equal(nonces.size, 3);
  });

  test('frame-ancestors follows the tenant: an own-port site gets its own origin, never a wildcard', async () => {
    const res = await fetch(sim.iframeUrl('globex', 'Alice Admin', '/pages/issue', { query: { issueId: '10001', issueKey: 'TCJ-1' } }));
    assert.equal(res.status, 200);
    const ancestors = csp(res.headers.get('content-security-policy')).get('frame-ancestors');
    assert.deepEqual(ancestors, [new URL(sim.siteUrl('globex')).origin]);
    assert.notDeepEqual(ancestors, [new URL(sim.siteUrl('acme')).origin]);
  });

  test('project and issue pages get the same headers', async () => {
    for (const url of [
      sim.iframeUrl('acme', 'Paula ProjectAdmin', '/pages/project', { query: { projectId: '10001', projectKey: 'DEMO' } }),
      sim.iframeUrl('acme', 'Dan Developer', '/pages/issue', { query: { issueId: '10000', issueKey: 'TCJ-1' } }),
    ]) {
      const res = await fetch(url);
      assert.equal(res.status, 200);
      const policy = csp(res.headers.get('content-security-policy'));
      assert.ok(!(policy.get('script-src') ?? []).includes("'unsafe-inline'"));
      assert.deepEqual(policy.get('frame-ancestors'), [new URL(sim.siteUrl('acme')).origin]);
      assert.equal(res.headers.get('cache-control'), 'no-store');
    }
  });
});

describe('pages: escaping', () => {
  test('page parameters from the URL are escaped in the shell', async () => {
    const evil = '"><script>alert(1)</script>';
    const res = await fetch(sim.iframeUrl('acme', 'Dan Developer', '/pages/project', { query: { projectId: '10000', projectKey: evil } }));
    assert.equal(res.status, 200);
    const body = await res.text();
    assert.ok(!body.includes(evil), 'raw value never appears');
    assert.ok(body.includes('&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;'), 'escaped value appears');
    assert.equal([...body.matchAll(/<script\b/gi)].length, 2);

    const issue = await (await fetch(sim.iframeUrl('acme', 'Dan Developer', '/pages/issue', { query: { issueId: '1', issueKey: evil } }))).text();
    assert.ok(!issue.includes(evil));
    assert.ok(issue.includes('data-issue-key="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"'));
  });

  test('a non-numeric projectId is dropped', async () => {
    const body = await (await fetch(sim.iframeUrl('acme', 'Dan Developer', '/pages/project', { query: { projectId: '1 OR 1=1', projectKey: 'TCJ' } }))).text();
    assert.match(body, /data-project-id=""/);
  });

  test('the escaping helper: a server name like <img src=x onerror=alert(1)> is inert in content and attributes', () => {
    assert.equal(escapeHtml(XSS_NAME), '&lt;img src=x onerror=alert(1)&gt;');
    assert.equal(escapeHtml(`"'\`&`), '&quot;&#39;&#96;&amp;');
    const out = html`<td title="${XSS_NAME}">${XSS_NAME}</td>${[XSS_NAME, 1]}`.value;
    assert.equal(out, '<td title="&lt;img src=x onerror=alert(1)&gt;">&lt;img src=x onerror=alert(1)&gt;</td>&lt;img src=x onerror=alert(1)&gt;1');
    const shell = renderShell({ page: 'project', nonce: 'n', allJsUrl: 'https://x/all.js', scriptUrl: '../s.js', styleUrl: '../s.css', params: { projectKey: XSS_NAME } });
    assert.ok(!shell.includes(XSS_NAME));
    assert.ok(shell.includes('&lt;img src=x onerror=alert(1)&gt;'));
  });

  test('pageCsp names exactly the frame ancestor it is given', () => {
    const p = pageCsp({ nonce: 'abc', frameAncestor: 'https://acme.atlassian.net', scriptOrigins: ['https://connect-cdn.atl-paas.net'] });
    assert.match(p, /frame-ancestors https:\/\/acme\.atlassian\.net$/);
    assert.match(p, /script-src 'nonce-abc' 'self' https:\/\/connect-cdn\.atl-paas\.net;/);
  });
});

describe('pages: static module', () => {
  test('the module and stylesheet are served content-addressed and cacheable, referenced relative to the page', async () => {
    const body = await (await fetch(sim.iframeUrl('acme', 'Alice Admin', '/pages/admin'))).text();
    const js = /<script type="module" src="\.\.(\/static\/tcj-pages\.[0-9a-f]{12}\.js)"/.exec(body)?.[1];
    const css = /<link rel="stylesheet" href="\.\.(\/static\/tcj-pages\.[0-9a-f]{12}\.css)"/.exec(body)?.[1];
    assert.ok(js && css, 'asset URLs in the shell');
    const jsRes = await fetch(`${appUrl}${js}`);
    assert.equal(jsRes.status, 200);
    assert.match(jsRes.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(jsRes.headers.get('cache-control') ?? '', /immutable/);
    const source = await jsRes.text();
    assert.match(source, /AP\.context\.getToken|context\.getToken/);
    assert.doesNotMatch(source, /\.innerHTML\s*=|insertAdjacentHTML|outerHTML\s*=|document\.write/, 'data never goes through HTML parsing');
    const cssRes = await fetch(`${appUrl}${css}`);
    assert.equal(cssRes.status, 200);
    assert.match(cssRes.headers.get('content-type') ?? '', /^text\/css/);
    assert.match(await cssRes.text(), /#e3fcef/i);
  });

  test('the browser module type-checks (tsc with the DOM library, src/web/static/tsconfig.json)', async () => {
    const tsc = join(process.cwd(), 'node_modules', 'typescript', 'bin', 'tsc');
    const run = promisify(execFile);
    try {
      await run(process.execPath, [tsc, '-p', 'src/web/static/tsconfig.json'], { cwd: process.cwd() });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      assert.fail(`tsc found problems in src/web/static:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
  });
});
