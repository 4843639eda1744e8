// The whole app as production assembles it (src/app.ts: buildServer + lifecycle + admin API + pages),
// on loopback, against the Jira simulator (sites acme and globex) and the TeamCity simulator, with a
// real PostgreSQL database, a real worker (poller + deliverer) and every log line captured.
//
// Outbound safety: the dispatcher's name resolution is replaced (createOutboundDispatcher's `lookup`,
// the same injection point production uses for DNS) so that no hostile-input test can reach a
// non-loopback address: `localhost` resolves for real, a few `.test` names resolve to private or
// metadata addresses (refused before any connection), every other name fails as unknown.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Dispatcher } from 'undici';
import pg from 'pg';
import { startJiraSimulator, type JiraSimulator } from '../../sandbox/jira/server.ts';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { Secrets } from '../../src/crypto/secrets.ts';
import { InstallKeys } from '../../src/jira/install-keys.ts';
import { registerLifecycle } from '../../src/jira/lifecycle.ts';
import { createLogger } from '../../src/log.ts';
import { createOutboundDispatcher, type OutboundLookup } from '../../src/net/outbound.ts';
import { deliverTenant } from '../../src/sync/deliverer.ts';
import { pollServer } from '../../src/sync/poller.ts';
import { SyncWorker } from '../../src/sync/worker.ts';
import { TenantRepository } from '../../src/tenants/repository.ts';
import { registerAdminApi } from '../../src/web/api/index.ts';
import { registerPages } from '../../src/web/pages/index.ts';
import { buildServer } from '../../src/web/server.ts';
import { createTestDatabase, DUE_NOW, quietLog, type TestDatabase } from '../helpers/db.ts';
import { APP_KEY } from '../helpers/jira-app.ts';
import { freePort } from '../helpers/net.ts';

export { APP_KEY };

/** Test names and what they resolve to (never contacted: every one is refused before connecting). */
export const FAKE_DNS: Record<string, string[]> = {
  'metadata.internal.test': ['169.254.169.254'],
  'intranet.test': ['10.1.2.3'],
  'router.test': ['192.168.1.1'],
  'docker.test': ['172.17.0.1'],
  'v6-loopback.test': ['::1'],
  // One public and one private answer: refused (a rebinding attacker cannot pick the private one later).
  'rebind.test': ['93.184.216.34', '10.0.0.1'],
};

export const fakeLookup: OutboundLookup = async (hostname) => {
  const h = hostname.toLowerCase().replace(/\.$/, '');
  if (h === 'localhost') return [{ address: '127.0.0.1', family: 4 }];
  const fixed = FAKE_DNS[h];
  if (fixed) return fixed.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
};

export interface Res {
  status: number;
  text: string;
  body: any;
  headers: Headers;
}

export interface SecurityWorld {
  t: TestDatabase;
  sim: JiraSimulator;
  tc: TeamCitySimulator;
  app: FastifyInstance;
  appUrl: string;
  dispatcher: Dispatcher;
  secrets: Secrets;
  tenants: TenantRepository;
  worker: SyncWorker;
  /** Every route the app registered (method, url template), from fastify's onRoute hook. */
  routes: Array<{ method: string; url: string }>;
  logLines: string[];
  responses: string[];
  tenantIds: Record<string, string>;
  sharedSecrets: Record<string, string>;
  clientKeys: Record<string, string>;
  /** Extra loopback hosts (host:port) the dispatcher allows. */
  allowHosts: string[];
  call(method: string, path: string, opts?: CallOptions): Promise<Res>;
  /** Poll every due server and deliver, twice (poll → outbox → Jira). */
  sync(tenantId: string): Promise<void>;
  /** The superuser (bypasses RLS): counts and dumps for "nothing stored" checks. */
  admin: pg.Client;
  count(table: string, where?: string, params?: unknown[]): Promise<number>;
  close(): Promise<void>;
}

export interface CallOptions {
  /** A Jira user name or accountId for a context token; null = no token. Default Alice Admin (site admin). */
  user?: string | null;
  site?: string;
  body?: unknown;
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
}

export async function startSecurityWorld(opts: { extraAllowHosts?: string[]; logLevel?: string } = {}): Promise<SecurityWorld> {
  const t = await createTestDatabase();
  const tc = await startTeamCitySimulator({ version: '2025.11.2', realTime: true, startTime: Date.now() });
  const sim = await startJiraSimulator({ seed: 11, sites: ['acme', 'globex'] });
  const keyDir = await mkdtemp(join(tmpdir(), 'tcj-security-'));
  const secrets = await Secrets.local(join(keyDir, 'keyring.json'), { secretsExist: async () => false });
  const tenants = new TenantRepository(t.db, secrets);
  const logLines: string[] = [];
  const responses: string[] = [];
  const log = createLogger({ level: (opts.logLevel ?? 'debug') as 'debug', destination: { write: (s: string) => void logLines.push(s) } });
  const port = await freePort();
  const appUrl = `http://127.0.0.1:${port}`;
  const allowHosts = [new URL(sim.url).host, new URL(tc.url).host, ...(opts.extraAllowHosts ?? [])];
  const dispatcher = createOutboundDispatcher({ allowHosts, headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000, connectTimeoutMs: 3_000, lookup: fakeLookup });

  const app = buildServer({ db: t.db, log });
  const routes: Array<{ method: string; url: string }> = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) routes.push({ method: m, url: r.url });
  });
  registerLifecycle(app, { appKey: APP_KEY, baseUrl: appUrl, tenants, installKeys: new InstallKeys(sim.keysUrl, dispatcher), allowHosts: [new URL(sim.url).host] });
  registerAdminApi(app, {
    db: t.db,
    secrets,
    tenants,
    dispatcher,
    log,
    appKey: APP_KEY,
    baseUrl: appUrl,
    jiraClient: { backoffBaseMs: 1, backoffMaxMs: 5 },
    teamcity: { retryBaseMs: 5, retryMaxMs: 10, timeoutMs: 5_000, maxAttempts: 1 },
  });
  registerPages(app, { tenants, baseUrl: appUrl, allJsUrl: `${sim.url}/all.js` });
  await app.listen({ port, host: '127.0.0.1' });

  const tenantIds: Record<string, string> = {};
  const sharedSecrets: Record<string, string> = {};
  const clientKeys: Record<string, string> = {};
  for (const site of ['acme', 'globex']) {
    const r = await sim.installApp(site, `${appUrl}/atlassian-connect.json`);
    assert.equal(r.status, 204, r.responseBody);
    tenantIds[site] = (await tenants.authByClientKey(r.clientKey))!.tenantId;
    sharedSecrets[site] = r.sharedSecret;
    clientKeys[site] = r.clientKey;
  }

  const worker = new SyncWorker(
    t.db,
    {
      poll: async (tid, sid, wid) =>
        void (await pollServer({ db: t.db, secrets, dispatcher, log, teamcity: { timeoutMs: 20_000, maxAttempts: 2, retryBaseMs: 10 } }, tid, sid, wid)),
      deliver: async (tid, wid) => void (await deliverTenant({ db: t.db, tenants, appKey: APP_KEY, dispatcher, log }, tid, wid)),
    },
    quietLog,
    { workerId: `security-${port}` },
  );

  const admin = new pg.Client({ connectionString: (() => {
    const u = new URL(t.adminUrl);
    u.pathname = `/${t.name}`;
    return u.toString();
  })() });
  await admin.connect();

  const call = async (method: string, path: string, o: CallOptions = {}): Promise<Res> => {
    const headers: Record<string, string> = { ...o.headers };
    const user = o.user === undefined ? 'Alice Admin' : o.user;
    if (user !== null && headers.authorization === undefined) headers.authorization = `JWT ${sim.contextToken(o.site ?? 'acme', user)}`;
    let body: string | Buffer | undefined;
    if (o.rawBody !== undefined) body = o.rawBody;
    else if (o.body !== undefined) body = JSON.stringify(o.body);
    if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
    const res = await fetch(`${appUrl}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    responses.push(text);
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, text, body: parsed, headers: res.headers };
  };

  return {
    t,
    sim,
    tc,
    app,
    appUrl,
    dispatcher,
    secrets,
    tenants,
    worker,
    routes,
    logLines,
    responses,
    tenantIds,
    sharedSecrets,
    clientKeys,
    allowHosts,
    admin,
    call,
    async sync(tenantId: string) {
      for (let i = 0; i < 2; i++) {
        await t.db.withTenant(tenantId, (tx) => tx.query(`UPDATE sync_state SET ${DUE_NOW}`));
        await worker.tick();
        await worker.idle();
      }
      await worker.tick();
      await worker.idle();
    },
    async count(table: string, where = 'true', params: unknown[] = []) {
      return Number((await admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`, params)).rows[0].n);
    },
    async close() {
      await worker.stop();
      await app.close();
      await admin.end();
      await sim.close();
      await tc.close();
      await dispatcher.close();
      await rm(keyDir, { recursive: true, force: true });
      await t.drop();
    },
  };
}

/** Every row of every table of the public schema, as the superuser (RLS does not apply), as JSON text. */
export async function dumpAllTables(admin: pg.Client): Promise<Record<string, string[]>> {
  const tables = (await admin.query<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)).rows.map((r) => r.t);
  const out: Record<string, string[]> = {};
  for (const table of tables) {
    out[table] = (await admin.query<{ j: string }>(`SELECT row_to_json(x)::text AS j FROM ${table} x`)).rows.map((r) => r.j);
  }
  return out;
}
