// Hostile input at the app's front door (issue #8, "Hostile input"): the lifecycle callbacks and the
// admin API over real HTTP, as an attacker without the tenant's secret (forged and malformed JWTs) and
// as an authenticated user sending garbage (oversized and deeply nested bodies, wrong content types,
// prototype-pollution keys, unicode edge cases) — each answered with a clear 4xx or safely ignored:
// never a 5xx, never a hang, the process alive, nothing stored, Object.prototype untouched.
// Ends with property-based tests (fast-check) over the request parsers.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { APP_KEY, startSecurityWorld, type Res, type SecurityWorld } from './world.ts';
import { hmac, hs256, nowSeconds, rawToken } from './tokens.ts';

const PASSWORD = 'hostile-pw-Lk93vQ';
let w: SecurityWorld;
let serverId = '';
let alice = '';
const protoKeysBefore = Object.getOwnPropertyNames(Object.prototype).sort();

function assertPrototypesClean(): void {
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), protoKeysBefore, 'Object.prototype gained properties');
  const probe = {} as Record<string, unknown>;
  for (const k of ['polluted', 'isAdmin', 'admin', 'x']) assert.equal(probe[k], undefined, `Object.prototype.${k} polluted`);
}

const servers = () => w.count('teamcity_servers');
const tenantsCount = () => w.count('tenants');

/** Neither a 5xx nor a hang: a clear 4xx with the API's error shape (when JSON). */
function assert4xx(r: Res, what: string, allowed: number[] = []): void {
  assert.ok((r.status >= 400 && r.status < 500) || allowed.includes(r.status), `${what}: expected 4xx, got ${r.status} ${r.text.slice(0, 300)}`);
  if (r.body && r.status < 500 && r.status >= 400 && r.headers.get('content-type')?.includes('json')) {
    // The app's `{"error": {"code", "message"}}`, or Node/fastify's own `{"error", "message"}` for what
    // never reaches a route (431 header too large, 400 malformed URL).
    const message: unknown = r.body.error?.message ?? r.body.message;
    assert.ok(typeof message === 'string' && message.length > 0, `${what}: error message in ${r.text.slice(0, 200)}`);
  }
}

async function alive(): Promise<void> {
  const r = await w.call('GET', '/healthz', { user: null });
  assert.equal(r.status, 200, 'process alive');
}

/** A raw HTTP request (for what fetch will not send: chunked bodies without a length, raw bytes). */
function raw(method: string, path: string, headers: Record<string, string>, chunks: Buffer[]): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(w.appUrl);
    const req = httpRequest({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

before(async () => {
  w = await startSecurityWorld({ logLevel: 'info' });
  const m = w.tc.model;
  m.addProject({ id: 'Shop', name: 'Shop' });
  m.addVcsRoot({ id: 'Shop_Git', projectId: 'Shop', url: 'https://git.example.com/shop.git' });
  m.addBuildType({ id: 'Shop_Build', projectId: 'Shop', name: 'Build', type: 'regular', vcsRootIds: ['Shop_Git'], branched: true });
  m.addUser({ username: 'jira-sync', password: PASSWORD, viewProjects: 'all' });
  m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-1 first', branch: 'main' });
  m.runBuild({ buildTypeId: 'Shop_Build', branch: 'main', durationMs: 10_000 });
  alice = w.sim.site('acme').users.find((u) => u.displayName === 'Alice Admin')!.accountId;
  const r = await w.call('POST', '/api/v1/servers', { body: { name: 'Main', url: w.tc.url, auth: { type: 'basic', username: 'jira-sync', password: PASSWORD }, backfillDays: 0 } });
  assert.equal(r.status, 201, r.text);
  serverId = r.body.id;
});

after(async () => {
  await w?.close();
});

describe('forged and malformed JWTs', () => {
  const claims = (extra: Record<string, unknown> = {}) => ({ iss: w.clientKeys.acme, sub: alice, qsh: 'context-qsh', iat: nowSeconds(), exp: nowSeconds() + 600, ...extra });

  test('admin API: every forged token class is a 401, and nothing is created', async () => {
    const secret = w.sharedSecrets.acme!;
    const valid = hs256(claims(), secret);
    const [h, p, s] = valid.split('.') as [string, string, string];
    const cases: Array<[string, Record<string, string>, string?]> = [
      ['alg none', { authorization: `JWT ${rawToken({ alg: 'none', typ: 'JWT' }, claims())}` }],
      ['alg None (case)', { authorization: `JWT ${rawToken({ alg: 'None' }, claims(), 'x')}` }],
      ['alg none with the real signature', { authorization: `JWT ${rawToken({ alg: 'none' }, claims(), s)}` }],
      ['HS512 with the shared secret', { authorization: `JWT ${rawToken({ alg: 'HS512', typ: 'JWT' }, claims(), hmac('sha512', secret))}` }],
      ['HS384 with the shared secret', { authorization: `JWT ${rawToken({ alg: 'HS384' }, claims(), hmac('sha384', secret))}` }],
      ['RS256 header, HMAC signature with the shared secret', { authorization: `JWT ${rawToken({ alg: 'RS256', typ: 'JWT' }, claims(), hmac('sha256', secret))}` }],
      ['ES256 header, junk signature', { authorization: `JWT ${rawToken({ alg: 'ES256' }, claims(), 'AAAA')}` }],
      ['signed with another tenant’s secret', { authorization: `JWT ${hs256(claims(), w.sharedSecrets.globex!)}` }],
      ['signed with an empty secret', { authorization: `JWT ${hs256(claims(), '')}` }],
      ['tampered claims', { authorization: `JWT ${h}.${Buffer.from(JSON.stringify(claims({ sub: 'someone-else' }))).toString('base64url')}.${s}` }],
      ['signature stripped', { authorization: `JWT ${h}.${p}.` }],
      ['expired', { authorization: `JWT ${hs256(claims({ exp: nowSeconds() - 3600, iat: nowSeconds() - 4000 }), secret)}` }],
      ['no exp', { authorization: `JWT ${hs256({ iss: w.clientKeys.acme, sub: alice, qsh: 'context-qsh' }, secret)}` }],
      ['no qsh', { authorization: `JWT ${hs256({ iss: w.clientKeys.acme, sub: alice, exp: nowSeconds() + 60 }, secret)}` }],
      ['unknown issuer', { authorization: `JWT ${hs256(claims({ iss: 'no-such-client' }), secret)}` }],
      ['iss with a NUL byte', { authorization: `JWT ${hs256(claims({ iss: `${w.clientKeys.acme}\u0000` }), secret)}` }],
      ['iss as a lone surrogate', { authorization: `JWT ${hs256(claims({ iss: '\ud800' }), secret)}` }],
      ['iss of 8 KB', { authorization: `JWT ${hs256(claims({ iss: 'k'.repeat(8192) }), secret)}` }],
      ['iss as an object', { authorization: `JWT ${hs256(claims({ iss: { $ne: null } }), secret)}` }],
      ['iss as an array', { authorization: `JWT ${hs256(claims({ iss: [w.clientKeys.acme] }), secret)}` }],
      ['kid path traversal (HS256, wrong key)', { authorization: `JWT ${rawToken({ alg: 'HS256', kid: '../../../../etc/passwd' }, claims(), hmac('sha256', 'guess'))}` }],
      // JSON injection: duplicate members — the parser keeps the last one, which must then be refused.
      ['duplicate alg in the header (last: none)', { authorization: `JWT ${rawToken('{"alg":"HS256","typ":"JWT","alg":"none"}', claims(), hmac('sha256', secret))}` }],
      ['duplicate iss (signed for acme, last names globex)', { authorization: `JWT ${hs256(`{"iss":"${w.clientKeys.acme}","sub":"${alice}","qsh":"context-qsh","exp":${nowSeconds() + 60},"iss":"${w.clientKeys.globex}"}`, secret)}` }],
      ['two JSON objects in the header', { authorization: `JWT ${rawToken('{"alg":"HS256"}{"alg":"none"}', claims(), hmac('sha256', secret))}` }],
      ['crit header jose does not know', { authorization: `JWT ${hs256(claims(), secret, { alg: 'HS256', crit: ['exp'], exp: 1 })}` }],
      ['unencoded payload (b64:false)', { authorization: `JWT ${hs256(claims(), secret, { alg: 'HS256', b64: false, crit: ['b64'] })}` }],
      ['header is a JSON array', { authorization: `JWT ${rawToken('[]', claims(), hmac('sha256', secret))}` }],
      ['header is null', { authorization: `JWT ${rawToken('null', claims(), hmac('sha256', secret))}` }],
      ['claims are a JSON array', { authorization: `JWT ${hs256('[1,2]', secret)}` }],
      ['claims are not JSON', { authorization: `JWT ${hs256('{"iss":', secret)}` }],
      ['not base64url', { authorization: 'JWT ###.$$$.%%%' }],
      ['four segments', { authorization: `JWT ${valid}.extra` }],
      ['one segment', { authorization: 'JWT eyJhbGciOiJIUzI1NiJ9' }],
      ['empty JWT', { authorization: 'JWT ' }],
      ['Bearer scheme', { authorization: `Bearer ${valid}` }],
      ['two tokens in one header', { authorization: `JWT ${valid}, JWT ${valid}` }],
      ['huge token (8 KB)', { authorization: `JWT ${hs256(claims({ pad: 'x'.repeat(8_000) }), 'wrong')}` }],
      ['control characters in the token', { authorization: `JWT ${h}.\t${p}.${s}` }],
    ];
    const before = await servers();
    for (const [what, headers] of cases) {
      const get = await w.call('GET', '/api/v1/servers', { headers });
      assert.equal(get.status, 401, `${what}: ${get.status} ${get.text}`);
      assert.equal(get.body.error.code, 'unauthorized', what);
      assert.equal(get.headers.get('www-authenticate'), 'JWT');
      const post = await w.call('POST', '/api/v1/servers', { headers, body: { name: 'Forged', url: w.tc.url, auth: { type: 'token', token: 'forged-token-123' } } });
      assert.equal(post.status, 401, `${what} (POST): ${post.status} ${post.text}`);
    }
    assert.equal(await servers(), before, 'nothing stored');
    // The response never echoes the token.
    assert.ok(!w.responses.some((r) => r.includes(s)), 'a token signature was echoed');

    // Two tokens: header and ?jwt= at once.
    const both = await w.call('GET', `/api/v1/servers?jwt=${encodeURIComponent(valid)}`, { headers: { authorization: `JWT ${valid}` } });
    assert.equal(both.status, 401);
    assert.match(both.body.error.message, /both/);
    // A token far beyond the header limit: refused by the HTTP layer (431), not parsed at all.
    const giant = await w.call('GET', '/api/v1/servers', { headers: { authorization: `JWT ${'A'.repeat(200_000)}` } });
    assert4xx(giant, 'giant token header');
    const giantQuery = await w.call('GET', `/api/v1/servers?jwt=${'A'.repeat(200_000)}`, { user: null });
    assert4xx(giantQuery, 'giant token in the query');
    // The genuine token still works: none of the above disturbed the verifier.
    assert.equal((await w.call('GET', '/api/v1/servers', { headers: { authorization: `JWT ${valid}` } })).status, 200);
    assertPrototypesClean();
    await alive();
  });

  test('claims carrying __proto__ / constructor do not pollute anything', async () => {
    const secret = w.sharedSecrets.acme!;
    const json = `{"iss":"${w.clientKeys.acme}","sub":"${alice}","qsh":"context-qsh","exp":${nowSeconds() + 60},"__proto__":{"isAdmin":true,"polluted":1},"constructor":{"prototype":{"polluted":1}}}`;
    const r = await w.call('GET', '/api/v1/servers', { headers: { authorization: `JWT ${hs256(json, secret, '{"alg":"HS256","__proto__":{"alg":"none","polluted":1}}')}` } });
    // Correctly signed by the tenant: authenticated (200) or refused (401), but never more than Alice's rights.
    assert.ok(r.status === 200 || r.status === 401, `${r.status} ${r.text}`);
    assertPrototypesClean();
  });

  test('page routes: forged tokens and context tokens are refused', async () => {
    const secret = w.sharedSecrets.acme!;
    const forged = [
      rawToken({ alg: 'none' }, { iss: w.clientKeys.acme, qsh: 'context-qsh', exp: nowSeconds() + 60 }),
      hs256({ iss: w.clientKeys.acme, sub: alice, qsh: 'context-qsh', exp: nowSeconds() + 60 }, secret),
      hs256({ iss: w.clientKeys.acme, sub: alice, qsh: 'a'.repeat(64), exp: nowSeconds() + 60 }, secret),
      rawToken({ alg: 'HS512' }, { iss: w.clientKeys.acme, sub: alice, qsh: 'x', exp: nowSeconds() + 60 }, hmac('sha512', secret)),
    ];
    for (const [i, token] of forged.entries()) {
      const r = await w.call('GET', `/pages/admin?jwt=${encodeURIComponent(token)}`, { user: null });
      assert.equal(r.status, 401, `page token ${i}: ${r.status}`);
    }
  });

  test('lifecycle: forged installs (alg, kid traversal, confusion, size, injection) store nothing and fetch no odd key', async () => {
    const tenantsBefore = await tenantsCount();
    const acmeSecret = w.sharedSecrets.acme!;
    const keysBefore = w.sim.requests({ kind: 'keys' }).length;
    const publicPem = await (await fetch(`${w.sim.keysUrl}/${w.sim.kid}`)).text();
    const evilKey = 'evil-client-key';
    const payload = { key: APP_KEY, clientKey: evilKey, sharedSecret: 'attacker-chosen-secret', baseUrl: w.sim.siteUrl('acme'), eventType: 'installed', productType: 'jira' };
    const claims = { iss: evilKey, aud: w.appUrl, qsh: 'x', iat: nowSeconds(), exp: nowSeconds() + 180 };
    const tokens: Array<[string, string]> = [
      ['none', rawToken({ alg: 'none', kid: w.sim.kid }, claims)],
      ['HS256 with an attacker secret', rawToken({ alg: 'HS256', kid: w.sim.kid }, claims, hmac('sha256', 'attacker-chosen-secret'))],
      ['HS256 with the public key as HMAC key', rawToken({ alg: 'HS256', kid: w.sim.kid }, claims, hmac('sha256', publicPem))],
      ['RS256 header, HMAC with the public key', rawToken({ alg: 'RS256', kid: w.sim.kid }, claims, hmac('sha256', publicPem))],
      ['RS256 header, HMAC with a tenant’s shared secret', rawToken({ alg: 'RS256', kid: w.sim.kid }, { ...claims, iss: w.clientKeys.acme }, hmac('sha256', acmeSecret))],
      ['HS512', rawToken({ alg: 'HS512', kid: w.sim.kid }, claims, hmac('sha512', publicPem))],
      ['kid ../ traversal', rawToken({ alg: 'RS256', kid: '../../../../etc/passwd' }, claims, 'sig')],
      ['kid URL-encoded traversal', rawToken({ alg: 'RS256', kid: '..%2F..%2Fadmin' }, claims, 'sig')],
      ['kid absolute URL', rawToken({ alg: 'RS256', kid: 'http://169.254.169.254/latest' }, claims, 'sig')],
      ['kid with NUL', rawToken({ alg: 'RS256', kid: 'abc\u0000def' }, claims, 'sig')],
      ['kid of 5 KB', rawToken({ alg: 'RS256', kid: 'k'.repeat(5000) }, claims, 'sig')],
      ['kid as an object', rawToken({ alg: 'RS256', kid: { $gt: '' } }, claims, 'sig')],
      ['no kid', rawToken({ alg: 'RS256' }, claims, 'sig')],
      ['duplicate alg', rawToken(`{"alg":"RS256","kid":"${w.sim.kid}","alg":"none"}`, claims, '')],
      ['huge token (8 KB)', rawToken({ alg: 'RS256', kid: w.sim.kid }, { ...claims, pad: 'p'.repeat(8_000) }, 'sig')],
    ];
    for (const [what, token] of tokens) {
      const r = await w.call('POST', '/lifecycle/installed', { user: null, headers: { authorization: `JWT ${token}` }, body: payload });
      assert.equal(r.status, 401, `${what}: ${r.status} ${r.text}`);
    }
    const both = await w.call('POST', `/lifecycle/installed?jwt=${tokens[0]![1]}`, { user: null, headers: { authorization: `JWT ${tokens[1]![1]}` }, body: payload });
    assert.equal(both.status, 401);
    const noToken = await w.call('POST', '/lifecycle/installed', { user: null, body: payload });
    assert.equal(noToken.status, 401);
    assert.equal(await tenantsCount(), tenantsBefore, 'no tenant created');
    assert.equal(await w.count('tenants', 'client_key = $1', [evilKey]), 0);
    const keyFetches = w.sim.requests({ kind: 'keys' }).slice(keysBefore);
    assert.ok(keyFetches.every((q) => !q.path.includes('..') && !q.path.includes('%')), `odd key fetches: ${keyFetches.map((q) => q.path).join(', ')}`);

    // HS256 lifecycle callbacks: a forged uninstall/disable does nothing.
    const disabled = await w.call('POST', '/lifecycle/disabled', {
      user: null,
      headers: { authorization: `JWT ${hs256({ iss: `${w.clientKeys.acme}\u0000`, qsh: 'x', exp: nowSeconds() + 60 }, acmeSecret)}` },
      body: { ...payload, clientKey: w.clientKeys.acme, eventType: 'disabled' },
    });
    assert.equal(disabled.status, 401, `NUL iss on /lifecycle/disabled: ${disabled.status} ${disabled.text}`);
    const uninstall = await w.call('POST', '/lifecycle/uninstalled', {
      user: null,
      headers: { authorization: `JWT ${hs256({ iss: w.clientKeys.acme, qsh: 'x', exp: nowSeconds() + 60 }, acmeSecret)}` },
      body: { ...payload, clientKey: w.clientKeys.acme, eventType: 'uninstalled' },
    });
    assert.equal(uninstall.status, 401, 'uninstall needs RS256 from Atlassian');
    assert.equal((await w.tenants.authByClientKey(w.clientKeys.acme!))?.state, 'installed');
    assertPrototypesClean();
    await alive();
  });
});

describe('hostile bodies', () => {
  const serverBody = { name: 'X', url: 'https://tc.example.invalid', auth: { type: 'token', token: 'tok-123456' } };

  test('bodies over the 1 MiB limit are a 413 (with and without a content-length)', async () => {
    const big = JSON.stringify({ ...serverBody, name: 'n'.repeat(1_100_000) });
    const before = await servers();
    for (const [method, path, user] of [
      ['POST', '/api/v1/servers', 'Alice Admin'],
      ['PUT', `/api/v1/servers/${serverId}/rules`, 'Alice Admin'],
      ['POST', '/lifecycle/installed', null],
    ] as const) {
      const r = await w.call(method, path, { rawBody: big, user });
      assert.equal(r.status, 413, `${method} ${path}: ${r.status} ${r.text.slice(0, 200)}`);
    }
    const auth = `JWT ${w.sim.contextToken('acme', 'Alice Admin')}`;
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const chunked = await raw('POST', '/api/v1/servers', { authorization: auth, 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, Array.from({ length: 20 }, () => chunk));
    assert.equal(chunked.status, 413, chunked.text);
    const lying = await raw('POST', '/api/v1/servers', { authorization: auth, 'content-type': 'application/json', 'content-length': '2000000' }, [Buffer.from('{}')]).catch(() => ({ status: 413, text: '' }));
    assert4xx({ ...lying, body: undefined, headers: new Headers() }, 'content-length beyond the limit');
    assert.equal(await servers(), before);
    await alive();
  });

  test('deeply nested JSON (10,000 and 100,000 levels) is a 400, fast', async () => {
    const started = Date.now();
    const before = await servers();
    for (const depth of [10_000, 100_000]) {
      const arrays = '['.repeat(depth) + ']'.repeat(depth);
      const objects = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
      const inName = `{"name":${objects},"url":"https://x.invalid","auth":{"type":"token","token":"t"}}`;
      const inRules = `{"exclude":[${objects}]}`;
      const inEnv = `{"environments":[{"match":${objects}}]}`;
      for (const [method, path, body, user] of [
        ['POST', '/api/v1/servers', arrays, 'Alice Admin'],
        ['POST', '/api/v1/servers', objects, 'Alice Admin'],
        ['POST', '/api/v1/servers', inName, 'Alice Admin'],
        ['POST', '/api/v1/servers/test', inName, 'Alice Admin'],
        ['PUT', `/api/v1/servers/${serverId}/rules`, inRules, 'Alice Admin'],
        ['POST', `/api/v1/servers/${serverId}/rules/preview`, inEnv, 'Alice Admin'],
        ['PATCH', `/api/v1/servers/${serverId}`, objects, 'Alice Admin'],
        ['POST', `/api/v1/servers/${serverId}/backfill`, `{"since":${arrays}}`, 'Alice Admin'],
        ['POST', '/lifecycle/installed', objects, null],
        ['POST', '/lifecycle/enabled', arrays, null],
      ] as const) {
        const r = await w.call(method, path, { rawBody: body, user });
        if (body.length > 1024 * 1024) assert.equal(r.status, 413, `${depth} ${path}`);
        else assert4xx(r, `depth ${depth} ${method} ${path}`);
      }
    }
    assert.ok(Date.now() - started < 20_000, `nested JSON took ${Date.now() - started} ms`);
    assert.equal(await servers(), before);
    assert.deepEqual((await w.call('GET', `/api/v1/servers/${serverId}/rules`)).body.rules, { include: [], exclude: [], environments: [] });
    await alive();
  });

  test('wrong content types are a 415 (or a 400), nothing stored', async () => {
    const json = JSON.stringify(serverBody);
    const before = await servers();
    for (const [type, body] of [
      ['text/plain', json],
      ['application/x-www-form-urlencoded', 'name=X&url=https://x.invalid'],
      ['multipart/form-data; boundary=abc', `--abc\r\nContent-Disposition: form-data; name="name"\r\n\r\nX\r\n--abc--\r\n`],
      ['application/xml', '<server><name>X</name></server>'],
      ['application/json-patch+json', json],
      ['application/json; charset=utf-16', json],
      ['application/json', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d])], // invalid UTF-8
      ['application/json', 'null'],
      ['application/json', '"just a string"'],
      ['application/json', '12345678901234567890123456789'],
      ['application/json', '\ufeff{"exlude":[]}'],
      ['', json],
    ] as const) {
      for (const [method, path] of [
        ['POST', '/api/v1/servers'],
        ['PUT', `/api/v1/servers/${serverId}/rules`],
        ['POST', '/lifecycle/installed'],
      ] as const) {
        const headers: Record<string, string> = type ? { 'content-type': type } : { 'content-type': '' };
        const r = await w.call(method, path, { rawBody: body, headers, user: path.startsWith('/lifecycle') ? null : 'Alice Admin' });
        assert4xx(r, `${type || 'no type'} → ${method} ${path}`);
      }
    }
    assert.equal(await servers(), before);
    assert.deepEqual((await w.call('GET', `/api/v1/servers/${serverId}/rules`)).body.rules, { include: [], exclude: [], environments: [] });
    await alive();
  });

  test('prototype-pollution keys in bodies and queries: refused or ignored, Object.prototype untouched', async () => {
    const before = await servers();
    const bodies = [
      '{"__proto__":{"polluted":1},"name":"X","url":"https://x.invalid","auth":{"type":"token","token":"t"}}',
      '{"constructor":{"prototype":{"polluted":1}},"name":"X","url":"https://x.invalid","auth":{"type":"token","token":"t"}}',
      '{"name":"X","url":"https://x.invalid","auth":{"type":"token","token":"t","__proto__":{"type":"basic"}}}',
      '{"prototype":{"polluted":1},"name":"X"}',
      '{"exclude":[{"branch":"x","__proto__":{"polluted":1}}]}',
      '{"environments":[{"match":{"constructor":{"prototype":{"polluted":1}}}}]}',
      '{"__proto__":{"include":[{"branch":"*"}]}}',
    ];
    for (const body of bodies) {
      for (const [method, path, user] of [
        ['POST', '/api/v1/servers', 'Alice Admin'],
        ['PUT', `/api/v1/servers/${serverId}/rules`, 'Alice Admin'],
        ['PATCH', `/api/v1/servers/${serverId}`, 'Alice Admin'],
        ['POST', '/lifecycle/installed', null],
      ] as const) {
        const r = await w.call(method, path, { rawBody: body, user });
        assert4xx(r, `${method} ${path} ${body}`);
      }
    }
    for (const q of [
      '__proto__[polluted]=1',
      '__proto__.polluted=1',
      'constructor[prototype][polluted]=1',
      '__proto__=x',
      'constructor=x',
      'prototype=x',
      'toString=x',
      'hasOwnProperty=x',
      'limit=5&limit=6',
      'serverId[]=x',
    ]) {
      const r = await w.call('GET', `/api/v1/activity?${q}`);
      assert4xx(r, `activity?${q}`);
    }
    assert.equal(await servers(), before);
    const stored = await w.call('GET', `/api/v1/servers/${serverId}/rules`);
    assert.deepEqual(stored.body.rules, { include: [], exclude: [], environments: [] });
    assert.equal((await w.call('GET', `/api/v1/servers/${serverId}`)).body.name, 'Main');
    assertPrototypesClean();
  });

  test('unicode edge cases in names, rules and URLs: a clear 4xx or stored verbatim, never a 5xx', async () => {
    const names: Array<[string, string, 'refused' | 'kept']> = [
      ['NUL byte', 'Main\u0000TC', 'refused'],
      ['lone high surrogate', 'Main \ud800 TC', 'refused'],
      ['lone low surrogate', 'Main \udfff', 'refused'],
      ['RTL override', 'Main \u202egnp.exe', 'refused'],
      ['bidi isolate', 'x\u2066y\u2069', 'refused'],
      ['C1 control', 'Main\u0085TC', 'refused'],
      ['escape sequence', 'Main\u001b[31mRED', 'refused'],
      ['emoji and CJK', 'TeamCity 🚀 本番', 'kept'],
      ['Arabic (right-to-left text is fine)', 'خادم البناء', 'kept'],
      ['combining marks', 'Cafe\u0301', 'kept'],
      ['HTML', '<script>alert(1)</script>', 'kept'],
    ];
    for (const [what, name, expect] of names) {
      const r = await w.call('PATCH', `/api/v1/servers/${serverId}`, { body: { name } });
      if (expect === 'refused') {
        assert.equal(r.status, 400, `${what}: ${r.status} ${r.text}`);
        assert.equal(r.body.error.issues[0].path, 'name', what);
      } else {
        assert.equal(r.status, 200, `${what}: ${r.text}`);
        assert.equal((await w.call('GET', `/api/v1/servers/${serverId}`)).body.name, name.trim(), `${what} verbatim`);
      }
      // The same name on create is judged the same way (the connection test never runs for a refused name).
      if (expect === 'refused') {
        const c = await w.call('POST', '/api/v1/servers', { body: { name, url: w.tc.url, auth: { type: 'token', token: 'tok-123456' } } });
        assert.equal(c.status, 400, `create ${what}: ${c.status}`);
      }
    }
    const ruleValues = ['\u0000', 'release/\u0000*', '\ud800', 'feature/\u202e*'];
    for (const v of ruleValues) {
      const r = await w.call('PUT', `/api/v1/servers/${serverId}/rules`, { body: { exclude: [{ branch: v }] } });
      assert4xx(r, `rule ${JSON.stringify(v)}`);
      const e = await w.call('PUT', `/api/v1/servers/${serverId}/rules`, { body: { environments: [{ match: { namePattern: v }, environment: { name: v, type: 'staging' } }] } });
      assert4xx(e, `environment rule ${JSON.stringify(v)}`);
    }
    for (const url of ['https://tc\u0000.example.com', 'https://tc.example.com/\u0000', 'https://\u202etc.example.com', 'https://tc.example.com/\ud800', 'https://xn--80ak6aa92e.com', 'https://exa\u200bmple.com']) {
      const r = await w.call('POST', '/api/v1/servers/test', { body: { url, auth: { type: 'token', token: 'tok-123456' } } });
      assert.ok(r.status === 400 || (r.status === 200 && r.body.ok === false), `${JSON.stringify(url)}: ${r.status} ${r.text}`);
      const c = await w.call('POST', '/api/v1/servers', { body: { name: 'U', url, auth: { type: 'token', token: 'tok-123456' } } });
      assert4xx(c, `create ${JSON.stringify(url)}`);
    }
    for (const path of ['/api/v1/diagnose/TCJ-1%00', '/api/v1/diagnose/%E0%A4%A', '/api/v1/diagnose/%F0%9F%98%80-1', '/api/v1/servers/%00', '/api/v1/servers/%ZZ', '/api/v1/activity?issueKey=TCJ-1%00', '/api/v1/activity?issueKey=%E2%80%AETCJ-1', '/api/v1/projects/10000%00/overview']) {
      const r = await w.call('GET', path);
      assert4xx(r, path);
    }
    assert.equal(await servers(), 1);
    await alive();
  });
});

describe('property-based: random input to the request parsers never yields a 5xx', () => {
  const jsonValue = fc.jsonValue({ maxDepth: 4 });
  const protoKeys = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty');
  const anyKey = fc.oneof(fc.string({ maxLength: 12 }), protoKeys, fc.constantFrom('name', 'url', 'auth', 'type', 'token', 'username', 'password', 'backfillDays', 'include', 'exclude', 'environments', 'branch', 'buildTypeId', 'match'));
  const hostileString = fc.oneof(
    fc.string({ maxLength: 40, unit: 'grapheme' }),
    fc.string({ maxLength: 20, unit: 'binary' }), // lone surrogates included
    fc.constantFrom('\u0000', '\u202e', '../../etc', '<script>', "'; DROP TABLE tenants; --", '%00', '${jndi:ldap://x}', 'https://127.0.0.1/', 'file:///etc/passwd'),
  );
  // Mostly-plausible server bodies: the right keys with random (often wrong) values, plus random extra keys.
  // URLs are never public IP literals, and the world's DNS resolves no public name: nothing leaves loopback.
  const url = fc.oneof(fc.webUrl({ validSchemes: ['https', 'http', 'ftp', 'file', 'gopher'] }), hostileString, fc.constant('https://intranet.test/'));
  const auth = fc.oneof(
    fc.record({ type: fc.constant('basic'), username: hostileString, password: hostileString }, { requiredKeys: [] }),
    fc.record({ type: fc.constant('token'), token: hostileString }, { requiredKeys: [] }),
    jsonValue,
  );
  const serverBody = fc.oneof(
    fc.record({ name: fc.oneof(hostileString, jsonValue), url, auth, backfillDays: fc.oneof(fc.integer(), fc.double(), hostileString) }, { requiredKeys: [] }),
    fc.dictionary(anyKey, jsonValue, { maxKeys: 6 }),
    jsonValue,
  );
  const matcher = fc.record({ branch: hostileString, buildTypeId: hostileString, projectId: hostileString, namePattern: hostileString }, { requiredKeys: [] });
  const rulesBody = fc.oneof(
    fc.record(
      {
        include: fc.array(fc.oneof(matcher, jsonValue), { maxLength: 3 }),
        exclude: fc.array(fc.oneof(matcher, jsonValue), { maxLength: 3 }),
        environments: fc.array(fc.record({ match: fc.oneof(matcher, jsonValue), environment: fc.oneof(fc.record({ name: hostileString, type: fc.oneof(fc.constantFrom('production', 'staging', 'testing', 'development', 'unmapped'), hostileString) }, { requiredKeys: [] }), jsonValue), deployment: fc.oneof(fc.boolean(), jsonValue) }, { requiredKeys: [] }), { maxLength: 3 }),
      },
      { requiredKeys: [] },
    ),
    fc.dictionary(anyKey, jsonValue, { maxKeys: 5 }),
    jsonValue,
  );
  const encode = (v: unknown): string => {
    const text = JSON.stringify(v);
    return text === undefined ? 'null' : text;
  };

  test('POST /api/v1/servers and /servers/test', async () => {
    const before = await servers();
    await fc.assert(
      fc.asyncProperty(serverBody, fc.boolean(), async (body, test) => {
        const r = await w.call('POST', test ? '/api/v1/servers/test' : '/api/v1/servers', { rawBody: encode(body) });
        assert.ok(r.status < 500, `${r.status} ${r.text} for ${encode(body)}`);
        if (!test) assert.notEqual(r.status, 201, `created from ${encode(body)}`);
      }),
      { numRuns: 150 },
    );
    assert.equal(await servers(), before, 'no random body created a server');
    assertPrototypesClean();
    await alive();
  });

  test('PUT /servers/{id}/rules: valid bodies stored as given, invalid ones change nothing', async () => {
    await fc.assert(
      fc.asyncProperty(rulesBody, async (body) => {
        const before = (await w.call('GET', `/api/v1/servers/${serverId}/rules`)).body.rules;
        const r = await w.call('PUT', `/api/v1/servers/${serverId}/rules`, { rawBody: encode(body) });
        assert.ok(r.status === 200 || (r.status >= 400 && r.status < 500), `${r.status} ${r.text} for ${encode(body)}`);
        const afterRules = (await w.call('GET', `/api/v1/servers/${serverId}/rules`)).body.rules;
        if (r.status === 200) assert.deepEqual(afterRules, r.body.rules);
        else assert.deepEqual(afterRules, before, 'a refused body changed the rules');
      }),
      { numRuns: 120 },
    );
    assertPrototypesClean();
  });

  test('POST /lifecycle/installed with random payloads and tokens', async () => {
    const tenantsBefore = await tenantsCount();
    const payload = fc.oneof(
      fc.record(
        {
          key: fc.oneof(fc.constant(APP_KEY), hostileString),
          clientKey: hostileString,
          sharedSecret: hostileString,
          baseUrl: fc.oneof(fc.constant(w.sim.siteUrl('acme')), url),
          eventType: fc.oneof(fc.constant('installed'), hostileString),
          displayUrl: url,
        },
        { requiredKeys: [] },
      ),
      fc.dictionary(anyKey, jsonValue, { maxKeys: 5 }),
      jsonValue,
    );
    const token = fc.oneof(
      fc.constant(undefined),
      hostileString,
      fc.tuple(fc.jsonValue({ maxDepth: 2 }), fc.jsonValue({ maxDepth: 2 }), fc.string({ maxLength: 20 })).map(([h, c, s]) => rawToken(encode(h), encode(c), s)),
      fc.record({ alg: fc.constantFrom('RS256', 'HS256', 'none', 'HS512', 'ES256'), kid: fc.oneof(fc.constant(w.sim.kid), hostileString) }).map((h) => rawToken(h, { iss: 'x', exp: nowSeconds() + 60, qsh: 'q', aud: w.appUrl }, 'sig')),
    );
    await fc.assert(
      fc.asyncProperty(payload, token, async (body, tok) => {
        const headers: Record<string, string> = {};
        // eslint-disable-next-line no-control-regex
        if (tok !== undefined) headers.authorization = `JWT ${tok.replace(/[\r\n\u0000-\u001f\u007f-\uffff]/g, '')}`;
        const r = await w.call('POST', '/lifecycle/installed', { rawBody: encode(body), user: null, headers });
        assert.ok(r.status === 400 || r.status === 401, `${r.status} ${r.text} for ${encode(body)}`);
      }),
      { numRuns: 150 },
    );
    assert.equal(await tenantsCount(), tenantsBefore, 'no forged install stored a tenant');
    assertPrototypesClean();
  });

  test('GET /api/v1/activity with random query strings', async () => {
    const param = fc.tuple(fc.oneof(anyKey, fc.constantFrom('limit', 'before', 'serverId', 'issueKey', 'outcome', 'jwt')), hostileString);
    await fc.assert(
      fc.asyncProperty(fc.array(param, { maxLength: 5 }), fc.boolean(), async (params, rawForm) => {
        const q = rawForm
          ? params.map(([k, v]) => `${k}=${v.replace(/[#\s]/g, '')}`).join('&')
          : new URLSearchParams(params.map(([k, v]): [string, string] => [k, v.replace(/[\ud800-\udfff]/g, '')])).toString();
        const r = await w.call('GET', `/api/v1/activity?${q}`);
        assert.ok(r.status === 200 || (r.status >= 400 && r.status < 500), `${r.status} ${r.text} for ?${q}`);
      }),
      { numRuns: 150 },
    );
    assertPrototypesClean();
    await alive();
  });
});
