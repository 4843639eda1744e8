// Data over time, with the clock moved in the database instead of sleeping for 60 days:
// uninstall stops everything; a reinstall on day 59 restores the configuration and re-sends the
// history; on day 61 the purge removes every row of the tenant and nothing of anyone else; a
// reinstall after the purge starts fresh. And key rotation while the worker runs.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { reencryptAll, rotateLocalKeys } from '../../src/crypto/rotate.ts';
import { KEYRING_RECHECK_MS, Secrets } from '../../src/crypto/secrets.ts';
import { createLogger } from '../../src/log.ts';
import { deliverTenant } from '../../src/sync/deliverer.ts';
import { pollServer, type PollerDeps } from '../../src/sync/poller.ts';
import { createServer, getConnection, requestBackfill, updateCredentials } from '../../src/sync/servers.ts';
import { SyncWorker } from '../../src/sync/worker.ts';
import { purgeExpiredTenants } from '../../src/tenants/retention.ts';
import { createTestDatabase, DUE_NOW, quietLog, type TestDatabase } from '../helpers/db.ts';
import { APP_KEY, startJiraWorld, type JiraWorld } from '../helpers/jira-app.ts';

let t: TestDatabase;
let world: JiraWorld;
let tc: TeamCitySimulator;
const ids: Record<string, { tenantId: string; serverId: string }> = {};
const logLines: string[] = [];
const log = createLogger({
  level: 'info',
  destination: new Writable({
    write(chunk: Buffer, _e, cb) {
      logLines.push(chunk.toString());
      cb();
    },
  }),
});
let worker: SyncWorker;
const DAY = 24 * 3600_000;

async function asMaintenance<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: t.ownerUrl });
  await c.connect();
  try {
    await c.query('BEGIN');
    await c.query('SET LOCAL ROLE tcj_maintenance');
    const r = await fn(c);
    await c.query('COMMIT');
    return r;
  } finally {
    await c.end();
  }
}

/** Moves a tenant's uninstall into the past, as if `days` had gone by. */
function ageUninstall(tenantId: string, days: number) {
  return asMaintenance((c) =>
    c.query(`UPDATE tenants SET uninstalled_at = uninstalled_at - make_interval(days => $2), purge_after = purge_after - make_interval(days => $2) WHERE id = $1`, [tenantId, days]),
  );
}

async function rowsOf(tenantId: string): Promise<Record<string, number>> {
  return asMaintenance(async (c) => {
    const tables = (await c.query<{ table_name: string }>(`SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY 1`)).rows.map((r) => r.table_name);
    const counts: Record<string, number> = { tenants: Number((await c.query('SELECT count(*) AS n FROM tenants WHERE id = $1', [tenantId])).rows[0].n) };
    for (const table of tables) counts[table] = Number((await c.query(`SELECT count(*) AS n FROM ${table} WHERE tenant_id = $1`, [tenantId])).rows[0].n);
    return counts;
  });
}

async function settle(rounds = 6): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await t.db.pool.query(`SELECT 1`);
    for (const { tenantId, serverId } of Object.values(ids)) {
      await t.db.withTenant(tenantId, (tx) => tx.query(`UPDATE sync_state SET ${DUE_NOW} WHERE server_id = $1`, [serverId])).catch(() => undefined);
    }
    await worker.tick();
    await worker.idle();
  }
}

function jiraBuildIds(site: string): number[] {
  return [...world.sim.site(site).builds.values()].map((b) => b.buildNumber).sort((a, b) => a - b);
}

before(async () => {
  t = await createTestDatabase();
  tc = await startTeamCitySimulator({ version: '2025.11.2' });
  world = await startJiraWorld(t, { sites: ['acme', 'globex'] }, [new URL(tc.url).host]);
  const m = tc.model;
  m.addProject({ id: 'Shop', name: 'Shop' });
  m.addVcsRoot({ id: 'Shop_Git', projectId: 'Shop' });
  m.addBuildType({ id: 'Shop_Build', projectId: 'Shop', name: 'Build', vcsRootIds: ['Shop_Git'], branched: true });
  for (let i = 1; i <= 5; i++) {
    m.addChange({ vcsRootId: 'Shop_Git', comment: `TCJ-${i} change ${i}`, branch: `feature/TCJ-${i}` });
    m.runBuild({ buildTypeId: 'Shop_Build', branch: `feature/TCJ-${i}`, durationMs: 60_000 });
    m.advance(3600_000);
  }
  const token = m.addToken('admin');
  for (const site of ['acme', 'globex']) {
    const tenantId = await world.install(site);
    const serverId = randomUUID();
    await t.db.withTenant(tenantId, async (tx) => {
      await createServer(tx, world.secrets, tenantId, { id: serverId, name: `TC of ${site}`, url: tc.url, auth: { type: 'token', token } });
      await tx.query(`UPDATE teamcity_servers SET rules = $2 WHERE id = $1`, [serverId, JSON.stringify({ exclude: [{ branch: 'feature/TCJ-5' }] })]);
      await requestBackfill(tx, serverId, new Date(m.now() - 30 * DAY));
    });
    ids[site] = { tenantId, serverId };
  }
  const deps: PollerDeps = { db: t.db, secrets: world.secrets, dispatcher: world.dispatcher, log, settings: { activeIntervalMs: 0, idleIntervalMs: 0 } };
  worker = new SyncWorker(
    t.db,
    {
      poll: async (tid, sid, wid) => void (await pollServer(deps, tid, sid, wid)),
      deliver: async (tid, wid) => void (await deliverTenant({ db: t.db, tenants: world.tenants, appKey: APP_KEY, dispatcher: world.dispatcher, log }, tid, wid)),
    },
    log,
    { workerId: 'retention-worker', tickMs: 20 },
  );
  await settle();
});

after(async () => {
  await worker.stop();
  await world.close();
  await tc.close();
  await t.drop();
});

describe('retention', () => {
  test('after install and backfill, both sites show the history (minus the excluded branch)', () => {
    assert.equal(jiraBuildIds('acme').length, 4);
    assert.deepEqual(jiraBuildIds('acme'), jiraBuildIds('globex'));
  });

  test('uninstall: nothing is polled or sent; day-59 reinstall restores the configuration and re-sends the history', async () => {
    const acme = ids.acme!;
    assert.equal((await world.sim.uninstallApp('acme')).status, 204);
    assert.deepEqual(jiraBuildIds('acme'), [], 'Jira deleted the app data on uninstall');
    tc.clearRequests();
    world.sim.clearRequests();
    tc.model.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-1 while uninstalled', branch: 'main' });
    const during = tc.model.runBuild({ buildTypeId: 'Shop_Build', branch: 'main', durationMs: 60_000 });
    await settle(3);
    const acmeCalls = world.sim.requests().filter((r) => r.site === 'acme' && r.kind === 'api');
    assert.deepEqual(acmeCalls, [], 'nothing sent to the uninstalled site');
    assert.ok(jiraBuildIds('globex').includes(during.id), 'the other tenant keeps syncing');

    await ageUninstall(acme.tenantId, 59);
    const again = await world.sim.installApp('acme', `${world.appUrl}/atlassian-connect.json`);
    assert.equal(again.status, 204);
    const back = await world.tenants.authByClientKey(again.clientKey);
    assert.equal(back?.tenantId, acme.tenantId, 'same tenant, configuration kept');
    const rules = await t.db.withTenant(acme.tenantId, async (tx) => (await tx.query('SELECT rules FROM teamcity_servers')).rows[0]?.rules);
    assert.deepEqual(rules, { exclude: [{ branch: 'feature/TCJ-5' }] });
    await settle();
    assert.deepEqual(jiraBuildIds('acme'), jiraBuildIds('globex'), 'history re-sent, including the build made while uninstalled');
    assert.ok(jiraBuildIds('acme').includes(during.id));
  });

  test('day 61 without reinstall: the purge removes every row of the tenant and nothing of the other', async () => {
    const acme = ids.acme!;
    const globexBefore = await rowsOf(ids.globex!.tenantId);
    assert.equal((await world.sim.uninstallApp('acme')).status, 204);
    assert.deepEqual(await purgeExpiredTenants(t.db, log), { tenants: 0, servers: 0, builds: 0, deliveries: 0 }, 'day 0: nothing to purge');
    await ageUninstall(acme.tenantId, 59);
    assert.equal((await purgeExpiredTenants(t.db, log)).tenants, 0, 'day 59: still kept');
    await ageUninstall(acme.tenantId, 2);
    const report = await purgeExpiredTenants(t.db, log);
    assert.equal(report.tenants, 1);
    assert.equal(report.servers, 1);
    assert.ok(report.builds >= 5 && report.deliveries >= 5, JSON.stringify(report));
    const left = await rowsOf(acme.tenantId);
    assert.deepEqual(Object.values(left).filter((n) => n > 0), [], `rows left: ${JSON.stringify(left)}`);
    assert.ok(Object.keys(left).length >= 8, 'every tenant table checked');
    assert.deepEqual(await rowsOf(ids.globex!.tenantId), globexBefore);
    // Purging again is a no-op; the log has counts and ids, not the site's address.
    assert.equal((await purgeExpiredTenants(t.db, log)).tenants, 0);
    const purgeLine = logLines.find((l) => l.includes('purged an uninstalled tenant'))!;
    assert.doesNotMatch(purgeLine, /127\.0\.0\.1|sites\/acme/);
  });

  test('a reinstall after the purge starts fresh', async () => {
    const again = await world.sim.installApp('acme', `${world.appUrl}/atlassian-connect.json`);
    assert.equal(again.status, 204);
    const fresh = await world.tenants.authByClientKey(again.clientKey);
    assert.notEqual(fresh?.tenantId, ids.acme!.tenantId);
    const servers = await t.db.withTenant(fresh!.tenantId, async (tx) => (await tx.query('SELECT count(*)::int AS n FROM teamcity_servers')).rows[0]!.n);
    assert.equal(servers, 0);
  });
});

describe('key rotation in operation', () => {
  test('rotating while the worker runs: no failed decrypt, everything under the new key afterwards', async () => {
    const globex = ids.globex!;
    const token = tc.model.addToken('admin');
    const failuresBefore = logLines.filter((l) => l.includes('"level":"error"')).length;
    worker.start();
    const traffic = (async () => {
      for (let i = 0; i < 40; i++) {
        tc.model.addChange({ vcsRootId: 'Shop_Git', comment: `TCJ-2 rotation ${i}`, branch: 'main' });
        tc.model.runBuild({ buildTypeId: 'Shop_Build', branch: 'main', durationMs: 1000 });
        await t.db.withTenant(globex.tenantId, (tx) => tx.query(`UPDATE sync_state SET ${DUE_NOW}`));
        // Secrets are written during the rotation too (an admin changing credentials).
        if (i % 5 === 0) await t.db.withTenant(globex.tenantId, (tx) => updateCredentials(tx, world.secrets, globex.tenantId, globex.serverId, { type: 'token', token }));
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    // As `tcj rotate-keys` does from its own process: its own view of the keyring, and a wait until
    // the running worker (re-reading every KEYRING_RECHECK_MS) encrypts under the new key too.
    const cli = await Secrets.local(world.keyringFile, { secretsExist: async () => true });
    const report = await rotateLocalKeys({ keyringFile: world.keyringFile, ownerPool: t.ownerPool, secrets: cli, log: quietLog, addKey: true, pickupWaitMs: KEYRING_RECHECK_MS + 500 });
    const newKey = await world.secrets.primaryKeyId();
    await traffic;
    await worker.stop();
    assert.equal(report.failed, 0);
    assert.equal(report.primaryKey, newKey);
    assert.equal((await reencryptAll(t.ownerPool, world.secrets, quietLog)).reencrypted, 0, 'nothing left under the old key');
    assert.equal(logLines.filter((l) => l.includes('"level":"error"')).length, failuresBefore, 'no task failed during rotation');
    const conn = await t.db.withTenant(globex.tenantId, (tx) => getConnection(tx, world.secrets, globex.serverId));
    assert.deepEqual(conn?.auth, { type: 'token', token });
    assert.ok(jiraBuildIds('globex').length >= 6);
  });
});
