// Server-side request forgery through the admin API (issue #8): with NO allow-list entry for them,
// TeamCity URLs pointing at loopback, private, link-local and metadata addresses (literals in every
// spelling, and names resolving there), non-http schemes and URLs with credentials are refused by
// POST /api/v1/servers/test, POST /api/v1/servers and PATCH — with a clear reason, nothing stored and
// no connection made. An allow-listed server that redirects elsewhere is not followed, nor is a
// nextHref to another origin. No test traffic leaves loopback: the world's DNS resolves no public
// name, and "canary" listeners on loopback ports that are not allow-listed prove nothing connected.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { TeamCityClient } from '../../src/teamcity/client.ts';
import { quietLog } from '../helpers/db.ts';
import { startSecurityWorld, type SecurityWorld } from './world.ts';

let w: SecurityWorld;
let canary: Server;
let canaryPort = 0;
let canaryHits = 0;
let redirector: Server;
let redirectorHost = '';
const PASSWORD = 'ssrf-pw-Ty62mN';

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

before(async () => {
  // The canary: a loopback port that is NOT allow-listed. Any connection to it is an SSRF.
  canary = createServer((_req, res) => res.end('{}'));
  canary.on('connection', () => canaryHits++);
  canaryPort = await listen(canary);
  // The redirector: an allow-listed "TeamCity" that answers every request with a redirect to the canary
  // (or, for nextHref, a page pointing at the canary).
  redirector = createServer((req, res) => {
    if (req.url?.startsWith('/paging/app/rest/builds')) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ count: 0, build: [], nextHref: `http://127.0.0.1:${canaryPort}/app/rest/builds?locator=x` }));
      return;
    }
    const status = req.url?.includes('/307/') ? 307 : req.url?.includes('/308/') ? 308 : 302;
    res.writeHead(status, { location: `http://127.0.0.1:${canaryPort}/app/rest/server` });
    res.end();
  });
  const port = await listen(redirector);
  redirectorHost = `127.0.0.1:${port}`;
  w = await startSecurityWorld({ extraAllowHosts: [redirectorHost], logLevel: 'info' });
  w.tc.model.addUser({ username: 'jira-sync', password: PASSWORD, viewProjects: 'all' });
});

after(async () => {
  await w?.close();
  canary?.closeAllConnections();
  await new Promise((r) => canary?.close(r));
  redirector?.closeAllConnections();
  await new Promise((r) => redirector?.close(r));
});

const auth = { type: 'basic', username: 'jira-sync', password: PASSWORD };

describe('SSRF through the admin API', () => {
  const blocked: Array<[string, string, RegExp]> = [
    // [what, url, message]
    ['IPv4 loopback', 'https://127.0.0.1/', /loopback/],
    ['IPv4 loopback, canary port', `https://127.0.0.1:${0}/`, /loopback/],
    ['IPv4 loopback, other /8 address', 'https://127.45.6.7:8111/', /loopback/],
    ['IPv4 loopback, decimal', 'https://2130706433/', /loopback/],
    ['IPv4 loopback, hex', 'https://0x7f000001/', /loopback/],
    ['IPv4 loopback, octal', 'https://0177.0.0.1/', /loopback/],
    ['IPv4 loopback, short form', 'https://127.1/', /loopback/],
    ['IPv6 loopback', 'https://[::1]/', /loopback/],
    ['IPv4-mapped IPv6 loopback', 'https://[::ffff:127.0.0.1]/', /loopback/],
    ['IPv4-mapped metadata', 'https://[::ffff:a9fe:a9fe]/', /metadata/],
    ['unspecified', 'https://0.0.0.0/', /unspecified/],
    ['10/8', 'https://10.0.0.1/', /private/],
    ['10/8 with a path', 'https://10.255.255.254/teamcity', /private/],
    ['172.16/12 low', 'https://172.16.0.1/', /private/],
    ['172.16/12 high', 'https://172.31.255.254/', /private/],
    ['192.168/16', 'https://192.168.1.10/', /private/],
    ['cloud metadata', 'https://169.254.169.254/latest/meta-data/', /metadata/],
    ['cloud metadata over http', 'http://169.254.169.254/latest/meta-data/iam/', /https|metadata/],
    ['link-local', 'https://169.254.1.1/', /link-local/],
    ['IPv6 unique-local', 'https://[fd00::1]/', /unique-local/],
    ['IPv6 link-local', 'https://[fe80::1]/', /link-local/],
    ['CGNAT', 'https://100.64.0.1/', /CGNAT/],
    ['localhost', 'https://localhost/', /loopback/],
    ['localhost with a port', 'https://localhost:8111/', /loopback/],
    ['LOCALHOST. (case, trailing dot)', 'https://LOCALHOST./', /loopback/],
    ['name resolving to metadata', 'https://metadata.internal.test/', /metadata/],
    ['name resolving to 10/8', 'https://intranet.test/teamcity', /private/],
    ['name resolving to 192.168/16', 'https://router.test/', /private/],
    ['name resolving to 172.17 (docker)', 'https://docker.test/', /private/],
    ['name resolving to ::1', 'https://v6-loopback.test/', /loopback/],
    ['name with one public and one private address', 'https://rebind.test/', /private/],
    ['plain http to a public name', 'http://teamcity.example.com/', /https/],
    ['plain http to the simulator’s host on another port', 'http://127.0.0.1:1/', /https|loopback/],
  ];
  const badUrls: Array<[string, string]> = [
    ['file:', 'file:///etc/passwd'],
    ['gopher:', 'gopher://127.0.0.1:6379/_FLUSHALL'],
    ['ftp:', 'ftp://ftp.example.com/'],
    ['dict:', 'dict://127.0.0.1:11211/stat'],
    ['javascript:', 'javascript:alert(1)'],
    ['data:', 'data:text/plain,hi'],
    ['ldap:', 'ldap://127.0.0.1/'],
    ['no scheme', '//127.0.0.1/'],
    ['relative', '/app/rest/server'],
  ];

  test('/servers/test refuses every non-public target with a clear reason, and connects nowhere', async () => {
    blocked[1]![1] = `https://127.0.0.1:${canaryPort}/`;
    blocked.push(['canary port over http', `http://127.0.0.1:${canaryPort}/`, /https|OUTBOUND_ALLOW_HOSTS/], ['canary via localhost', `http://localhost:${canaryPort}/`, /https|OUTBOUND_ALLOW_HOSTS/]);
    for (const [what, url, message] of blocked) {
      const r = await w.call('POST', '/api/v1/servers/test', { body: { url, auth } });
      assert.equal(r.status, 200, `${what}: ${r.text}`);
      assert.equal(r.body.ok, false, `${what}: ${r.text}`);
      assert.ok(['url_blocked', 'invalid_url'].includes(r.body.error.code), `${what}: ${r.text}`);
      assert.match(r.body.error.message, message, what);
    }
    for (const [what, url] of badUrls) {
      const r = await w.call('POST', '/api/v1/servers/test', { body: { url, auth } });
      assert.equal(r.status, 400, `${what}: ${r.text}`);
      assert.equal(r.body.error.issues[0].path, 'url', what);
      assert.match(r.body.error.message, /https/, what);
    }
    assert.equal(canaryHits, 0, 'a refused URL was connected to');
  });

  test('POST /servers and PATCH refuse them too, and store nothing', async () => {
    for (const [what, url] of [...blocked.map(([a, b]) => [a, b] as const), ...badUrls]) {
      const r = await w.call('POST', '/api/v1/servers', { body: { name: what, url, auth, backfillDays: 0 } });
      assert.ok(r.status === 400 || r.status === 422, `${what}: ${r.status} ${r.text}`);
      assert.ok(['url_blocked', 'invalid_url', 'validation_failed'].includes(r.body.error.code), `${what}: ${r.text}`);
    }
    assert.equal(await w.count('teamcity_servers'), 0, 'nothing stored');
    const created = await w.call('POST', '/api/v1/servers', { body: { name: 'Real', url: w.tc.url, auth, backfillDays: 0 } });
    assert.equal(created.status, 201, created.text);
    for (const url of ['https://169.254.169.254/', 'https://localhost/', 'https://intranet.test/', 'gopher://127.0.0.1:70/']) {
      const r = await w.call('PATCH', `/api/v1/servers/${created.body.id}`, { body: { url } });
      assert.ok(r.status === 400 || r.status === 422, `${url}: ${r.status} ${r.text}`);
    }
    assert.equal((await w.call('GET', `/api/v1/servers/${created.body.id}`)).body.url, w.tc.url, 'URL unchanged');
    assert.equal(canaryHits, 0);
  });

  test('credentials in the URL are refused and never echoed', async () => {
    for (const url of [`https://admin:hunter2-secret@teamcity.example.com/`, `http://jira-sync:${PASSWORD}@${new URL(w.tc.url).host}/`, 'https://user@teamcity.example.com/']) {
      const t = await w.call('POST', '/api/v1/servers/test', { body: { url, auth } });
      assert.ok(t.status === 400 || (t.status === 200 && t.body.ok === false), `${url}: ${t.text}`);
      assert.match(t.body.error.message ?? '', /credentials/, t.text);
      const c = await w.call('POST', '/api/v1/servers', { body: { name: 'Creds', url, auth } });
      assert.equal(c.status, 400, `${url}: ${c.text}`);
      for (const r of [t, c]) {
        assert.ok(!r.text.includes('hunter2-secret') && !r.text.includes(PASSWORD), `password echoed: ${r.text}`);
      }
    }
    assert.ok(!w.logLines.some((l) => l.includes('hunter2-secret') || l.includes(PASSWORD)), 'password logged');
    assert.equal(await w.count('teamcity_servers', `url LIKE '%@%'`), 0);
  });

  test('an allow-listed server redirecting to a private address is not followed (302, 307, 308)', async () => {
    for (const path of ['', '/307', '/308']) {
      const r = await w.call('POST', '/api/v1/servers/test', { body: { url: `http://${redirectorHost}${path}`, auth } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.ok, false, r.text);
      const c = await w.call('POST', '/api/v1/servers', { body: { name: `Redirect ${path}`, url: `http://${redirectorHost}${path}`, auth } });
      assert.ok(c.status === 422 || c.status === 400, c.text);
    }
    assert.equal(canaryHits, 0, 'a redirect was followed');
    assert.equal(await w.count('teamcity_servers', 'url LIKE $1', [`%${redirectorHost}%`]), 0);
  });

  test('the TeamCity client follows no nextHref to another origin', async () => {
    const client = new TeamCityClient({ baseUrl: `http://${redirectorHost}/paging`, auth: { type: 'token', token: 'tok-abcdef' }, dispatcher: w.dispatcher, log: quietLog, maxAttempts: 1 });
    await assert.rejects(async () => {
      for await (const page of client.builds('defaultFilter:false', 'count,build(id)', { stopOnEmptyPage: false })) void page;
    }, /another origin|not followed/);
    assert.equal(canaryHits, 0);
  });
});
