// TeamCityClient over real HTTP against the TeamCity simulator on loopback: paging (exactly-once, request
// counts, empty-page stop, page cap, context path behind a proxy), auth (basic, token, 401 without retry),
// 404, retries (5xx bursts, hangs, resets) with bounded time, protocol errors (malformed JSON, HTML login
// page, redirects, foreign nextHref), SSRF guard, logs without secrets, metrics, and the six-endpoint promise.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { createOutboundDispatcher, OutboundBlockedError } from '../net/outbound.ts';
import { createLogger, type Logger } from '../log.ts';
import { teamcityRequestSeconds } from '../metrics.ts';
import { TeamCityClient, encodePathLocator, resolveNextHref, type TcPage, type TeamCityAuth, type TeamCityClientOptions } from './client.ts';
import {
  TeamCityAuthError,
  TeamCityHttpError,
  TeamCityNotFoundError,
  TeamCityProtocolError,
  TeamCityUnavailableError,
} from './errors.ts';
import { buildsPageFields } from './fields.ts';
import { backfillBuildsLocator, branchByName, runningBuildsLocator } from './locator.ts';
import type { TcBuild } from './types.ts';

const DAY = 86_400_000;
const ADMIN: TeamCityAuth = { type: 'basic', username: 'admin', password: 'admin' };
const silent = createLogger({ level: 'silent' });

/** The six endpoints of product.md, as paths (query excluded). */
const SIX_ENDPOINTS = [
  /^\/app\/rest\/server$/,
  /^\/app\/rest\/users\/[^/]+$/,
  /^\/app\/rest\/buildTypes\/[^/]+$/,
  /^\/app\/rest\/changes$/,
  /^\/app\/rest\/builds$/,
  /^\/app\/rest\/builds\/[^/]+$/,
];

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => assert.fail('expected a rejection'),
    (e: unknown) => e,
  );
}

async function collect<T>(it: AsyncIterable<TcPage<T>>): Promise<{ items: T[]; pages: TcPage<T>[] }> {
  const items: T[] = [];
  const pages: TcPage<T>[] = [];
  for await (const p of it) {
    pages.push(p);
    items.push(...p.items);
  }
  return { items, pages };
}

function captureLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { log: createLogger({ level: 'debug', destination }), lines };
}

async function listen(handler: http.RequestListener): Promise<{ server: http.Server; url: string; port: number }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return { server, url: `http://127.0.0.1:${port}`, port };
}

async function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('TeamCityClient against the simulator', () => {
  let sim: TeamCitySimulator;
  let dispatcher: Dispatcher;
  let sleeps: number[];
  const make = (over: Partial<TeamCityClientOptions> = {}): TeamCityClient =>
    new TeamCityClient({
      baseUrl: sim.url,
      auth: ADMIN,
      dispatcher,
      log: silent,
      retryBaseMs: 10,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      ...over,
    });
  let since: Date;
  let expectedIds: Set<number>;

  before(async () => {
    sim = await startTeamCitySimulator({ utcOffsetMinutes: 60 });
    dispatcher = createOutboundDispatcher({ allowHosts: [`127.0.0.1:${sim.port}`] });
    sim.generateHistory({ seed: 7, projects: 3, buildTypesPerProject: 4, buildsPerType: 60 });
    sim.model.addUser({ username: 'svc', password: 'svc-password-1' });
    // Independent expectation from the model: finished, not personal, started after `since`.
    since = new Date(Math.floor((sim.model.now() - 45 * DAY) / 1000) * 1000);
    expectedIds = new Set(
      [...sim.model.builds.values()]
        .filter((b) => b.state === 'finished' && !b.personal && b.startDate !== null && b.number !== 'N/A' && b.startDate > since.getTime())
        .map((b) => b.id),
    );
  });
  after(async () => {
    await sim.close();
    await dispatcher.close();
  });

  describe('paging', () => {
    it('a backfill returns every build exactly once in ceil(N/count) (+1) requests, newest-started first', async () => {
      assert.ok(expectedIds.size > 200, `history too small: ${expectedIds.size}`);
      for (const count of [50, 100, 7]) {
        sim.clearRequests();
        const client = make();
        const { items, pages } = await collect(
          client.builds(backfillBuildsLocator({ since, count, offsetMinutes: 60 }), 'count,nextHref,build(id,startDate)', { stopOnEmptyPage: false }),
        );
        const ids = items.map((b) => b.id);
        assert.equal(new Set(ids).size, ids.length, 'no duplicates');
        assert.deepEqual(new Set(ids), expectedIds, 'exactly the expected builds');
        const requests = sim.requests().length;
        const min = Math.ceil(expectedIds.size / count);
        assert.ok(requests >= min && requests <= min + 1, `count ${count}: ${requests} requests for ${expectedIds.size} builds`);
        assert.equal(pages.length, requests);
        assert.equal(pages.at(-1)!.end, 'last');
        assert.ok(pages.slice(0, -1).every((p) => p.end === undefined));
        const starts = items.map((b) => Date.parse(b.startDate!.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)(.*)$/, '$1-$2-$3T$4:$5:$6$7')));
        assert.ok(starts.every((t, i) => i === 0 || t <= starts[i - 1]!), 'newest started first');
      }
    });

    it('stops at the first empty page without a start cut-off (nextHref would only raise lookupLimit)', async () => {
      const loc = `defaultFilter:false,state:finished,branch:${branchByName('no/such-branch')},lookupLimit:100,count:10`;
      sim.clearRequests();
      const { items, pages } = await collect(make().builds(loc, 'count,nextHref,build(id)'));
      assert.equal(items.length, 0);
      assert.equal(pages.length, 1);
      assert.equal(pages[0]!.end, 'empty');
      assert.equal(sim.requests().length, 1);
      // Following it (as for a start-cut-off query) escalates lookupLimit 100 → 200 → 400 …, bounded by maxPages.
      sim.clearRequests();
      const followed = await collect(make().builds(loc, 'count,nextHref,build(id)', { stopOnEmptyPage: false, maxPages: 3 }));
      assert.equal(followed.pages.length, 3);
      assert.equal(followed.pages.at(-1)!.end, 'maxPages');
      assert.deepEqual(
        sim.requests().map((r) => /lookupLimit:(\d+)/.exec(r.query.locator ?? '')?.[1]),
        ['100', '200', '400'],
      );
    });

    it('hard page cap', async () => {
      sim.clearRequests();
      const { items, pages } = await collect(make().builds(backfillBuildsLocator({ since, count: 10 }), 'count,nextHref,build(id)', { maxPages: 2 }));
      assert.equal(items.length, 20);
      assert.equal(pages.at(-1)!.end, 'maxPages');
      assert.equal(sim.requests().length, 2);
      assert.throws(() => make().builds('id:1', 'id', { maxPages: 0 }), RangeError);
    });

    it('changes of a build, paged, comments included', async () => {
      const withChanges = [...sim.model.builds.values()].find((b) => b.changeIds.length >= 3)!;
      sim.clearRequests();
      const { items, pages } = await collect(make().changes(withChanges.id, undefined, { count: 2 }));
      assert.deepEqual(
        items.map((c) => c.id),
        [...withChanges.changeIds].sort((a, b) => b - a),
      );
      assert.ok(items.every((c) => typeof c.comment === 'string' && c.comment.length > 0));
      assert.equal(pages.length, sim.requests().length);
      assert.equal((await make().allChanges(withChanges.id)).length, withChanges.changeIds.length);
    });
  });

  describe('auth', () => {
    it('basic auth with Accept: application/json on /app/rest', async () => {
      sim.clearRequests();
      const user = await make({ auth: { type: 'basic', username: 'svc', password: 'svc-password-1' } }).getCurrentUser();
      assert.equal(user.username, 'svc');
      const [r] = sim.requests();
      assert.deepEqual(r!.auth, { scheme: 'basic', username: 'svc', authenticated: true });
      assert.equal(r!.path, '/app/rest/users/current');
    });

    it('token auth sends Bearer; a revoked token → TeamCityAuthError', async () => {
      const token = sim.model.addToken('svc');
      const client = make({ auth: { type: 'token', token } });
      sim.clearRequests();
      assert.equal((await client.getCurrentUser()).username, 'svc');
      assert.deepEqual(sim.requests()[0]!.auth, { scheme: 'bearer', username: 'svc', authenticated: true });
      sim.model.revokeToken(token);
      assert.ok((await rejection(client.getServer())) instanceof TeamCityAuthError);
    });

    it('401 after a password change → TeamCityAuthError at once, no retry', async () => {
      sim.model.addUser({ username: 'rotating', password: 'old-password-1' });
      const client = make({ auth: { type: 'basic', username: 'rotating', password: 'old-password-1' } });
      await client.getServer();
      sim.model.changePassword('rotating', 'new-password-2');
      sim.clearRequests();
      sleeps = [];
      const err = await rejection(client.getServer());
      assert.ok(err instanceof TeamCityAuthError, String(err));
      assert.equal(err.status, 401);
      assert.equal(err.message, 'TeamCity rejected the credentials (401): Authentication required');
      assert.equal(sim.requests().length, 1);
      assert.deepEqual(sleeps, []);
      // …also mid-paging
      const pages = client.builds(runningBuildsLocator());
      assert.ok((await rejection(pages.next())) instanceof TeamCityAuthError);
    });

    it('refuses credentials that cannot be sent safely', () => {
      assert.throws(() => make({ auth: { type: 'basic', username: 'a:b', password: 'x' } }), RangeError);
      assert.throws(() => make({ auth: { type: 'basic', username: 'a', password: 'x\r\nX-Evil: 1' } }), RangeError);
      assert.throws(() => make({ auth: { type: 'token', token: '' } }), RangeError);
      assert.throws(() => make({ auth: { type: 'token', token: 'a b' } }), RangeError);
    });
  });

  describe('single entities', () => {
    it('getBuild: fields honoured; 404 → undefined', async () => {
      const id = [...sim.model.builds.values()].find((b) => b.state === 'finished' && b.changeIds.length > 0)!.id;
      const b = await make().getBuild(id);
      assert.equal(b?.id, id);
      assert.equal(b?.state, 'finished');
      assert.ok(b?.buildType?.type);
      assert.equal(await make().getBuild(9_999_999), undefined);
      assert.equal(sim.requests().at(-1)!.status, 404);
    });

    it('getServer, getBuildType; a 404 buildType is undefined, other 404s throw TeamCityNotFoundError', async () => {
      const s = await make().getServer();
      assert.equal(s.versionMajor, 2025);
      assert.match(s.currentTime!, /\+0100$/);
      assert.equal(await make().getBuildType('id:Missing'), undefined);
      assert.ok((await rejection(collect(make().changes(9_999_999)))) instanceof TeamCityNotFoundError);
    });

    it('path locators: readable ":" "," "$", everything else encoded; "/" refused', () => {
      assert.equal(encodePathLocator('id:5'), 'id:5');
      assert.equal(encodePathLocator('username:(a,b)'), 'username:(a,b)');
      assert.equal(encodePathLocator('name:($base64:YQ)'), 'name:($base64:YQ)');
      assert.equal(encodePathLocator('name:a b?c#d'), 'name:a%20b%3Fc%23d');
      assert.throws(() => encodePathLocator('name:a/b'), RangeError);
      assert.throws(() => encodePathLocator(''), RangeError);
    });
  });

  describe('retries, timeouts and protocol errors', () => {
    it('a 5xx burst is retried with exponential backoff + jitter, then succeeds', async () => {
      sim.faults.failNext(2, 503);
      sim.clearRequests();
      sleeps = [];
      const before503 = await histogramCount('/app/rest/server', '503');
      const s = await make({ random: () => 1 }).getServer();
      assert.ok(s.version);
      assert.deepEqual(
        sim.requests().map((r) => r.status),
        [503, 503, 200],
      );
      assert.deepEqual(sleeps, [10, 20]);
      assert.equal((await histogramCount('/app/rest/server', '503')) - before503, 2);
      sleeps = [];
      sim.faults.failNext(3, 500);
      await make({ random: () => 0 }).getServer();
      assert.deepEqual(sleeps, [5, 10, 20], 'jitter: half to full of the exponential step');
    });

    it('5xx that persists → TeamCityUnavailableError after maxAttempts', async () => {
      sim.faults.failNext(10, 502);
      sim.clearRequests();
      const err = await rejection(make({ maxAttempts: 3 }).getServer());
      assert.ok(err instanceof TeamCityUnavailableError);
      assert.equal(err.attempts, 3);
      assert.equal(err.status, 502);
      assert.equal(sim.requests().length, 3);
      sim.faults.clear();
    });

    it('4xx is never retried', async () => {
      sim.clearRequests();
      const err = await rejection(collect(make().builds('state:nonsense')));
      assert.ok(err instanceof TeamCityHttpError && err.status === 400, String(err));
      assert.equal(sim.requests().length, 1);
    });

    it('a hanging server: each attempt times out, retried, then TeamCityUnavailableError in bounded time', async () => {
      sim.faults.inject({ kind: 'hang', count: 3 });
      sim.clearRequests();
      const t0 = Date.now();
      const err = await rejection(make({ timeoutMs: 150, maxAttempts: 3 }).getServer());
      const elapsed = Date.now() - t0;
      assert.ok(err instanceof TeamCityUnavailableError, String(err));
      assert.match(err.message, /timeout after 150 ms/);
      assert.ok(elapsed >= 450 && elapsed < 15_000, `${elapsed} ms`); // bounded, not timed: CI may be loaded
      assert.deepEqual(
        sim.requests().map((r) => r.fault),
        ['hang', 'hang', 'hang'],
      );
    });

    it('one hang, then an answer: the retry succeeds', async () => {
      sim.faults.inject({ kind: 'hang', count: 1 });
      sim.clearRequests();
      const b = await collect(make({ timeoutMs: 150 }).builds(runningBuildsLocator(), 'count,nextHref,build(id,state)'));
      assert.ok(b.items.length > 0 && b.items.every((x) => x.state === 'running'));
      assert.equal(sim.requests().length, 2);
    });

    it('a connection reset mid-body is retried', async () => {
      sim.faults.inject({ kind: 'reset', count: 2 });
      sim.clearRequests();
      const s = await make().getServer();
      assert.ok(s.internalId);
      assert.deepEqual(
        sim.requests().map((r) => r.fault),
        ['reset', 'reset', null],
      );
    });

    it('malformed JSON → TeamCityProtocolError, not retried, body not echoed', async () => {
      sim.faults.inject({ kind: 'malformedJson', count: 1 });
      sim.clearRequests();
      const err = await rejection(collect(make().builds(runningBuildsLocator())));
      assert.ok(err instanceof TeamCityProtocolError, String(err));
      assert.match(err.message, /malformed JSON \(\d+ bytes\)/);
      assert.doesNotMatch(err.message, /SUCC|buildTypeId/);
      assert.equal(sim.requests().length, 1);
    });

    it('an HTML login page instead of JSON → TeamCityProtocolError without the HTML', async () => {
      sim.faults.inject({ kind: 'htmlLogin', count: 1 });
      const err = await rejection(make().getBuild(1));
      assert.ok(err instanceof TeamCityProtocolError, String(err));
      assert.match(err.message, /HTML page instead of JSON/);
      assert.doesNotMatch(err.message, /<|loginForm|DOCTYPE|password/i);
      assert.equal(err.status, 200);
    });

    it('an outer AbortSignal stops a hanging request', async () => {
      const ac = new AbortController();
      sim.faults.inject({ kind: 'hang', count: 1 });
      const p = make({ signal: ac.signal, timeoutMs: 10_000 }).getServer();
      setTimeout(() => ac.abort(new Error('shutting down')), 50);
      const err = await rejection(p);
      assert.equal((err as Error).message, 'shutting down');
      sim.faults.clear();
    });
  });

  describe('SSRF guard', () => {
    it('the base URL must pass assertOutboundUrl (allow-list taken from the dispatcher)', () => {
      const plain = createOutboundDispatcher({ allowHosts: [] });
      assert.throws(
        () => new TeamCityClient({ baseUrl: sim.url, auth: ADMIN, dispatcher: plain, log: silent }),
        (e: unknown) => e instanceof OutboundBlockedError && e.reason === 'plain-http',
      );
      assert.throws(
        () => new TeamCityClient({ baseUrl: `http://admin:admin@127.0.0.1:${sim.port}`, auth: ADMIN, dispatcher, log: silent }),
        (e: unknown) => e instanceof OutboundBlockedError && e.reason === 'userinfo',
      );
      assert.throws(() => new TeamCityClient({ baseUrl: `${sim.url}/?x=1`, auth: ADMIN, dispatcher, log: silent }), RangeError);
      void plain.close();
    });

    it('a dispatcher that refuses the address: OutboundBlockedError at once, nothing sent, no retry', async () => {
      const plain = createOutboundDispatcher({ allowHosts: [], requireHttps: false });
      sim.clearRequests();
      sleeps = [];
      const client = make({ dispatcher: plain, allowHosts: [`127.0.0.1:${sim.port}`] });
      const err = await rejection(client.getServer());
      assert.ok(err instanceof OutboundBlockedError, String(err));
      assert.equal(sim.requests().length, 0);
      assert.deepEqual(sleeps, []);
      await plain.close();
    });
  });

  describe('logs and metrics', () => {
    it('debug line per request (endpoint template, method, status, ms); no credentials, no URLs', async () => {
      const { log, lines } = captureLog();
      const token = sim.model.addToken('svc', 'tok-SECRET-value-123456');
      await make({ log, auth: { type: 'basic', username: 'svc', password: 'svc-password-1' } }).getServer();
      await make({ log, auth: { type: 'token', token } }).getBuild(9_999_999);
      sim.faults.failNext(1, 503);
      await make({ log, auth: { type: 'token', token } }).getServer();
      const all = lines.join('');
      for (const secret of ['svc-password-1', token, Buffer.from('svc:svc-password-1').toString('base64'), 'Bearer', 'Basic ', 'locator=', sim.url]) {
        assert.ok(!all.includes(secret), `log contains ${secret}`);
      }
      const reqs = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'teamcity request');
      assert.deepEqual(
        reqs.map((l) => [l.endpoint, l.method, l.status]),
        [
          ['/app/rest/server', 'GET', '200'],
          ['/app/rest/builds/{buildLocator}', 'GET', '404'],
          ['/app/rest/server', 'GET', '503'],
          ['/app/rest/server', 'GET', '200'],
        ],
      );
      assert.ok(reqs.every((l) => typeof l.ms === 'number'));
      assert.ok(lines.some((l) => l.includes('retrying')));
    });
  });

  it('only the six endpoints of product.md were ever requested, all GET', () => {
    const reqs = sim.requests();
    assert.ok(reqs.length > 0);
    for (const r of reqs) {
      assert.equal(r.method, 'GET');
      assert.ok(SIX_ENDPOINTS.some((re) => re.test(r.path)), `unexpected path ${r.path}`);
      // faults and 401s are answered before routing, so only those lack an endpoint name
      if (r.fault === null && r.status !== 401) assert.notEqual(r.endpoint, null, r.path);
    }
  });
});

describe('nextHref resolution (§5.1)', () => {
  const base = 'https://ci.example.com/teamcity';

  it('relative hrefs are re-based on the base URL, context path kept, query untouched', () => {
    const q = '?locator=defaultFilter:false,startDate:(date:20250101T000000%2B0300,condition:after),count:100,start:100&fields=count%2CnextHref%2Cbuild(id)';
    assert.equal(resolveNextHref(base, '/builds', `/app/rest/builds${q}`), `${base}/app/rest/builds${q}`);
    assert.equal(resolveNextHref('https://ci.example.com', '/builds', `/app/rest/builds${q}`), `https://ci.example.com/app/rest/builds${q}`);
  });

  it('a context path already in the href is not doubled; auth prefixes and version segments are dropped', () => {
    assert.equal(resolveNextHref(base, '/builds', '/teamcity/app/rest/builds?locator=count:1,start:1'), `${base}/app/rest/builds?locator=count:1,start:1`);
    assert.equal(resolveNextHref(base, '/builds', '/httpAuth/app/rest/builds?locator=start:1'), `${base}/app/rest/builds?locator=start:1`);
    assert.equal(resolveNextHref(base, '/changes', '/guestAuth/app/rest/changes?locator=start:1'), `${base}/app/rest/changes?locator=start:1`);
    assert.equal(resolveNextHref(base, '/builds', '/app/rest/latest/builds?locator=start:1'), `${base}/app/rest/builds?locator=start:1`);
    assert.equal(resolveNextHref(base, '/builds', '/app/rest/2018.1/builds/?locator=start:1'), `${base}/app/rest/builds?locator=start:1`);
  });

  it('absolute hrefs only on the same origin', () => {
    assert.equal(
      resolveNextHref(base, '/builds', 'https://CI.example.com/teamcity/app/rest/builds?locator=start:1'),
      `${base}/app/rest/builds?locator=start:1`,
    );
    for (const bad of ['https://evil.example/app/rest/builds?locator=x', 'http://ci.example.com/teamcity/app/rest/builds', 'https://ci.example.com:8443/app/rest/builds', '//evil.example/app/rest/builds']) {
      assert.throws(() => resolveNextHref(base, '/builds', bad), TeamCityProtocolError, bad);
    }
  });

  it('only the same collection endpoint; no traversal; "+" of old servers becomes %2B', () => {
    for (const bad of ['/app/rest/builds/../../admin/x', '/app/rest/projects?locator=x', '/app/rest/changes?locator=x', 'app/rest/builds?x', '/login.html', '/app/rest/buildTypes/id:X/builds/?locator=start:10']) {
      assert.throws(() => resolveNextHref(base, '/builds', bad), TeamCityProtocolError, bad);
    }
    assert.equal(
      resolveNextHref(base, '/builds', '/app/rest/builds?locator=sinceDate:20130101T000000+0000,start:5#frag'),
      `${base}/app/rest/builds?locator=sinceDate:20130101T000000%2B0000,start:5`,
    );
  });
});

describe('behind a reverse proxy with a context path (/teamcity)', () => {
  let sim: TeamCitySimulator;
  let proxy: { server: http.Server; url: string; port: number };
  let dispatcher: Dispatcher;
  const seenByProxy: string[] = [];

  before(async () => {
    sim = await startTeamCitySimulator();
    sim.generateHistory({ seed: 11, projects: 1, buildTypesPerProject: 2, buildsPerType: 30 });
    proxy = await listen((req, res) => {
      const url = req.url ?? '/';
      seenByProxy.push(url);
      if (!url.startsWith('/teamcity/')) {
        res.statusCode = 404;
        res.end('not under the context path');
        return;
      }
      const upstream = http.request(
        { host: '127.0.0.1', port: sim.port, method: req.method, path: url.slice('/teamcity'.length), headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    dispatcher = createOutboundDispatcher({ allowHosts: [`127.0.0.1:${proxy.port}`] });
  });
  after(async () => {
    await closeServer(proxy.server);
    await sim.close();
    await dispatcher.close();
  });

  it('every page, including nextHref pages, goes to <base>/teamcity/app/rest/…', async () => {
    const client = new TeamCityClient({ baseUrl: `${proxy.url}/teamcity/`, auth: ADMIN, dispatcher, log: silent });
    assert.equal(client.baseUrl, `${proxy.url}/teamcity`);
    const since = new Date(sim.model.now() - 365 * DAY);
    const { items, pages } = await collect(client.builds(backfillBuildsLocator({ since, count: 10 }), 'count,nextHref,build(id)', { stopOnEmptyPage: false }));
    assert.ok(pages.length >= 4);
    assert.equal(new Set(items.map((b) => b.id)).size, items.length);
    assert.equal(seenByProxy.length, pages.length);
    assert.ok(seenByProxy.every((u) => u.startsWith('/teamcity/app/rest/builds?locator=')), seenByProxy.join('\n'));
  });
});

describe('servers that misbehave (hand-written loopback servers)', () => {
  let srv: { server: http.Server; url: string; port: number };
  let dispatcher: Dispatcher;
  const hits: string[] = [];
  let mode: 'redirect' | 'foreignNext' | 'loopNext' | 'xml' | 'retryAfter' = 'redirect';

  before(async () => {
    srv = await listen((req, res) => {
      hits.push(req.url ?? '');
      switch (mode) {
        case 'redirect':
          res.writeHead(302, { location: '/login.html' });
          res.end();
          return;
        case 'foreignNext':
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ count: 1, nextHref: 'http://169.254.169.254/app/rest/builds?locator=start:1', build: [{ id: 1, state: 'finished' }] }));
          return;
        case 'loopNext':
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ count: 1, nextHref: req.url, build: [{ id: 1, state: 'finished' }] }));
          return;
        case 'xml':
          res.setHeader('content-type', 'application/xml');
          res.end('<?xml version="1.0"?><server version="2019.2"/>');
          return;
        case 'retryAfter':
          if (hits.length === 1) {
            res.writeHead(503, { 'retry-after': '3', 'content-type': 'text/plain' });
            res.end('Service is starting up');
          } else {
            res.setHeader('content-type', 'application/json');
            res.end(JSON.stringify({ version: '2019.2.4 (build 72059)', currentTime: '20201107T224939+0300' }));
          }
          return;
      }
    });
    dispatcher = createOutboundDispatcher({ allowHosts: [`127.0.0.1:${srv.port}`] });
  });
  after(async () => {
    await closeServer(srv.server);
    await dispatcher.close();
  });

  const client = (): TeamCityClient => new TeamCityClient({ baseUrl: srv.url, auth: ADMIN, dispatcher, log: silent });

  it('redirects are not followed', async () => {
    mode = 'redirect';
    hits.length = 0;
    const err = await rejection(client().getServer());
    assert.ok(err instanceof TeamCityProtocolError && err.status === 302, String(err));
    assert.deepEqual(hits, ['/app/rest/server?fields=version%2CversionMajor%2CversionMinor%2CbuildNumber%2CcurrentTime%2CstartTime%2CwebUrl%2CinternalId']);
  });

  it('a nextHref to another origin is not followed', async () => {
    mode = 'foreignNext';
    hits.length = 0;
    const err = await rejection(collect(client().builds('state:finished', buildsPageFields())));
    assert.ok(err instanceof TeamCityProtocolError, String(err));
    assert.match(err.message, /another origin/);
    assert.equal(hits.length, 1);
  });

  it('a nextHref that repeats a page is not followed forever', async () => {
    mode = 'loopNext';
    hits.length = 0;
    const pages: TcBuild[][] = [];
    const err = await rejection(
      (async () => {
        for await (const p of client().builds('state:finished', 'count,nextHref,build(id)')) pages.push(p.items);
      })(),
    );
    assert.ok(err instanceof TeamCityProtocolError, String(err));
    assert.equal(hits.length, 1);
  });

  it('503 with Retry-After: waits that long (capped by retryMaxMs)', async () => {
    mode = 'retryAfter';
    hits.length = 0;
    const sleeps: number[] = [];
    const c = new TeamCityClient({ baseUrl: srv.url, auth: ADMIN, dispatcher, log: silent, sleep: async (ms) => void sleeps.push(ms) });
    assert.equal((await c.getServer()).version, '2019.2.4 (build 72059)');
    assert.deepEqual(sleeps, [3000]);
    assert.equal(hits.length, 2);
  });

  it('connection refused: retried, then TeamCityUnavailableError naming the network error', async () => {
    const gone = await listen((_req, res) => res.end());
    await closeServer(gone.server);
    const d = createOutboundDispatcher({ allowHosts: [`127.0.0.1:${gone.port}`] });
    const sleeps: number[] = [];
    const c = new TeamCityClient({ baseUrl: gone.url, auth: ADMIN, dispatcher: d, log: silent, maxAttempts: 2, sleep: async (ms) => void sleeps.push(ms) });
    const err = await rejection(c.getServer());
    assert.ok(err instanceof TeamCityUnavailableError, String(err));
    assert.match(err.message, /network error \(ECONNREFUSED\) \(after 2 attempts\)/);
    assert.equal(sleeps.length, 1);
    await d.close();
  });

  it('XML instead of JSON → TeamCityProtocolError', async () => {
    mode = 'xml';
    const err = await rejection(client().getServer());
    assert.ok(err instanceof TeamCityProtocolError, String(err));
    assert.match(err.message, /application\/xml instead of JSON/);
  });
});

async function histogramCount(endpoint: string, status: string): Promise<number> {
  const m = await teamcityRequestSeconds.get();
  const v = m.values.find(
    (x) => x.metricName === 'tcj_teamcity_request_duration_seconds_count' && x.labels.endpoint === endpoint && x.labels.status === status && x.labels.method === 'GET',
  );
  return v?.value ?? 0;
}
