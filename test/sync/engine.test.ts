// The sync engine end to end: a simulated TeamCity (server clock at UTC+3) and a simulated Jira site,
// the real poller, outbox, deliverer and worker over HTTP, real PostgreSQL.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { deliverTenant } from '../../src/sync/deliverer.ts';
import { pollServer, type PollerDeps } from '../../src/sync/poller.ts';
import { createServer } from '../../src/sync/servers.ts';
import { SyncWorker } from '../../src/sync/worker.ts';
import { createTestDatabase, DUE_NOW, quietLog, type TestDatabase } from '../helpers/db.ts';
import { APP_KEY, startJiraWorld, type JiraWorld } from '../helpers/jira-app.ts';

let t: TestDatabase;
let world: JiraWorld;
let tc: TeamCitySimulator;
let tenantId: string;
const serverId = randomUUID();
let worker: SyncWorker;
let pollerDeps: PollerDeps;

const HOUR = 3600_000;

/** One full round: poll the server now, then deliver everything to Jira. */
async function sync(): Promise<void> {
  await t.db.withTenant(tenantId, (tx) => tx.query(`UPDATE sync_state SET ${DUE_NOW} WHERE server_id = $1`, [serverId]));
  await worker.tick();
  await worker.idle();
  await worker.tick(); // deliveries claimed after the poll queued them
  await worker.idle();
}

function jiraBuild(buildId: number) {
  const site = world.sim.site('acme');
  return [...site.builds.values()].find((b) => b.buildNumber === buildId);
}

function jiraDeployment(buildId: number) {
  return [...world.sim.site('acme').deployments.values()].find((d) => d.deploymentSequenceNumber === buildId);
}

before(async () => {
  t = await createTestDatabase();
  tc = await startTeamCitySimulator({ utcOffsetMinutes: 180, version: '2025.11.2' });
  world = await startJiraWorld(t, { sites: ['acme'] }, [new URL(tc.url).host]);
  tenantId = await world.install('acme');

  const m = tc.model;
  m.addProject({ id: 'Shop', name: 'Shop' });
  m.addVcsRoot({ id: 'Shop_Git', projectId: 'Shop', url: 'https://git.example.com/shop.git' });
  m.addBuildType({ id: 'Shop_Build', projectId: 'Shop', name: 'Build', type: 'regular', vcsRootIds: ['Shop_Git'], branched: true });
  m.addBuildType({ id: 'Shop_DeployProd', projectId: 'Shop', name: 'Deploy to Production', type: 'deployment', vcsRootIds: ['Shop_Git'] });
  m.addUser({ username: 'jira-sync', password: 'sync-pw', viewProjects: 'all' });
  const token = m.addToken('jira-sync');

  await t.db.withTenant(tenantId, (tx) =>
    createServer(tx, world.secrets, tenantId, { id: serverId, name: 'TeamCity', url: tc.url, auth: { type: 'token', token } }),
  );
  pollerDeps = { db: t.db, secrets: world.secrets, dispatcher: world.dispatcher, log: quietLog, teamcity: { timeoutMs: 5000, maxAttempts: 2, retryBaseMs: 10 } };
  worker = new SyncWorker(
    t.db,
    {
      poll: async (tid, sid, wid) => void (await pollServer(pollerDeps, tid, sid, wid)),
      deliver: async (tid, wid) =>
        void (await deliverTenant({ db: t.db, tenants: world.tenants, appKey: APP_KEY, dispatcher: world.dispatcher, log: quietLog }, tid, wid)),
    },
    quietLog,
    { workerId: 'test-worker' },
  );
  await sync(); // first poll: sets the cursor at the server's "now"
});

after(async () => {
  await worker.stop();
  await world.close();
  await tc.close();
  await t.drop();
});

describe('sync engine', () => {
  test('queued → running → finished reaches Jira as pending → in_progress → successful with increasing sequence numbers', async () => {
    const m = tc.model;
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-1 Add the login form\n\nAlso touches DEMO-2.', branch: 'feature/TCJ-3-login' });
    const b = m.queueBuild({ buildTypeId: 'Shop_Build', branch: 'feature/TCJ-3-login' });
    await sync();
    const pending = jiraBuild(b.id);
    assert.equal(pending?.data.state, 'pending');
    const usn1 = pending.updateSequenceNumber;

    m.startBuild(b.id);
    tc.advance(60_000);
    await sync();
    assert.equal(jiraBuild(b.id)?.data.state, 'in_progress');
    const usn2 = jiraBuild(b.id)!.updateSequenceNumber;
    assert.ok(usn2 > usn1);

    tc.advance(5 * 60_000);
    m.finishBuild(b.id, { status: 'SUCCESS', tests: { passed: 10, failed: 0 } });
    tc.advance(10_000);
    await sync();
    const done = jiraBuild(b.id)!;
    assert.equal(done.data.state, 'successful');
    assert.ok(done.updateSequenceNumber > usn2);
    assert.deepEqual([...done.issueKeys].sort(), ['DEMO-2', 'TCJ-1', 'TCJ-3']);
    assert.match(String(done.data.displayName), /Shop \/ Build #\S+ \(feature\/TCJ-3-login\)/);
    assert.deepEqual(done.properties, { connectionId: serverId });
    // The server's clock is UTC+3: Jira gets UTC instants.
    assert.match(String(done.data.lastUpdated), /Z$|\+00:00$/);
    assert.deepEqual(world.sim.unexpectedCalls(), []);
  });

  test('a long build started before newer ones but finishing after them is not missed', async () => {
    const m = tc.model;
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-2 long migration', branch: 'main' });
    const long = m.queueBuild({ buildTypeId: 'Shop_Build', branch: 'main' });
    m.startBuild(long.id);
    tc.advance(60_000);
    await sync();
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-4 quick fix', branch: 'hotfix' });
    const short = m.runBuild({ buildTypeId: 'Shop_Build', branch: 'hotfix', durationMs: 60_000 });
    tc.advance(60_000);
    await sync();
    assert.equal(jiraBuild(short.id)?.data.state, 'successful');
    // Three hours later the long build fails: it started before `short`, and finishes after it.
    tc.advance(3 * HOUR);
    m.finishBuild(long.id, { status: 'FAILURE', statusText: 'Tests failed: 2' });
    tc.advance(10_000);
    await sync();
    assert.equal(jiraBuild(long.id)?.data.state, 'failed');
  });

  test('canceled while running, canceled while queued, and failed to start', async () => {
    const m = tc.model;
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-5 cancel me', branch: 'main' });
    const running = m.queueBuild({ buildTypeId: 'Shop_Build', branch: 'main' });
    m.startBuild(running.id);
    const queued = m.queueBuild({ buildTypeId: 'Shop_Build', branch: 'feature/TCJ-5-q' });
    const broken = m.queueBuild({ buildTypeId: 'Shop_Build', branch: 'feature/TCJ-5-broken' });
    tc.advance(30_000);
    await sync();
    assert.equal(jiraBuild(queued.id)?.data.state, 'pending');
    m.cancelBuild(running.id, { immediate: true });
    m.cancelBuild(queued.id);
    m.failToStart(broken.id);
    tc.advance(30_000);
    await sync();
    assert.equal(jiraBuild(running.id)?.data.state, 'cancelled');
    assert.equal(jiraBuild(queued.id)?.data.state, 'cancelled');
    assert.equal(jiraBuild(broken.id)?.data.state, 'failed');
  });

  test('deployments: production environment, and issues since the last successful deployment', async () => {
    const m = tc.model;
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-1 ship the login form' });
    const first = m.runBuild({ buildTypeId: 'Shop_DeployProd', durationMs: 60_000 });
    tc.advance(60_000);
    await sync();
    const d1 = jiraDeployment(first.id);
    assert.ok(d1, 'first deployment in Jira');
    assert.equal(d1.data.state, 'successful');
    assert.deepEqual((d1.data.environment as { type: string }).type, 'production');
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-2 risky change' });
    const failed = m.runBuild({ buildTypeId: 'Shop_DeployProd', durationMs: 60_000, status: 'FAILURE' });
    tc.advance(60_000);
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-4 fix the risky change' });
    const second = m.runBuild({ buildTypeId: 'Shop_DeployProd', durationMs: 60_000 });
    tc.advance(60_000);
    await sync();
    assert.equal(jiraDeployment(failed.id)?.data.state, 'failed');
    const d2 = jiraDeployment(second.id)!;
    assert.equal(d2.data.state, 'successful');
    // TCJ-2 came with the failed deployment; it reaches production with this one.
    assert.deepEqual([...d2.issueKeys].sort(), ['TCJ-2', 'TCJ-4']);
  });

  test("keys Jira does not know are recorded with Jira's verdict", async () => {
    const m = tc.model;
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'NOPE-9 not a project on this site', branch: 'experiment' });
    const b = m.runBuild({ buildTypeId: 'Shop_Build', branch: 'experiment', durationMs: 30_000 });
    tc.advance(30_000);
    await sync();
    const row = await t.db.withTenant(tenantId, async (tx) => (await tx.query(`SELECT verdict, unknown_keys FROM deliveries WHERE build_id = $1`, [b.id])).rows[0]);
    assert.deepEqual(row, { verdict: 'rejected', unknown_keys: ['NOPE-9'] });
    const seen = await t.db.withTenant(tenantId, async (tx) => (await tx.query(`SELECT issue_keys, key_sources FROM builds WHERE build_id = $1`, [b.id])).rows[0]);
    assert.deepEqual(seen?.issue_keys, ['NOPE-9']);
  });

  test('a build with more changes than fit inline gets the rest from the changes endpoint', async () => {
    const m = tc.model;
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'DEMO-3 the oldest commit of a big merge', branch: 'big-merge' });
    for (let i = 0; i < 120; i++) m.addChange({ vcsRootId: 'Shop_Git', comment: `TCJ-${(i % 5) + 1} step ${i}`, branch: 'big-merge' });
    tc.clearRequests();
    const b = m.runBuild({ buildTypeId: 'Shop_Build', branch: 'big-merge', durationMs: 30_000 });
    tc.advance(30_000);
    await sync();
    assert.ok(tc.requests().some((r) => r.path.endsWith('/app/rest/changes')), 'changes endpoint used');
    assert.ok(jiraBuild(b.id)?.issueKeys.includes('DEMO-3'), 'key from the 121st-newest commit');
  });

  test('the short poll interval holds for a while after activity, then the idle one applies', async () => {
    const nextIn = async () =>
      Number((await t.db.withTenant(tenantId, async (tx) => (await tx.query(`SELECT extract(epoch FROM next_poll_at - now()) AS s FROM sync_state`)).rows[0]!.s)));
    tc.advance(60_000);
    await sync(); // nothing running or finishing now, but the server was busy a moment ago
    const held = await nextIn();
    assert.ok(held > 5 && held <= 15.5, `next poll in ${held} s`);
    await t.db.withTenant(tenantId, (tx) => tx.query(`UPDATE sync_state SET last_activity_at = now() - interval '11 minutes'`));
    await sync();
    const idle = await nextIn();
    assert.ok(idle > 45 && idle <= 60.5, `next poll in ${idle} s`);
  });

  test('a revoked token stops polling with auth_failed until the credentials change', async () => {
    const m = tc.model;
    const token = m.addToken('jira-sync');
    const { updateCredentials } = await import('../../src/sync/servers.ts');
    await t.db.withTenant(tenantId, (tx) => updateCredentials(tx, world.secrets, tenantId, serverId, { type: 'token', token }));
    m.revokeToken(token);
    await sync();
    const state = await t.db.withTenant(tenantId, async (tx) => (await tx.query(`SELECT state FROM teamcity_servers WHERE id = $1`, [serverId])).rows[0]!.state);
    assert.equal(state, 'auth_failed');
    const claimed = await t.db.pool.query('SELECT * FROM claim_polls($1, 60, 10)', ['other']);
    assert.equal(claimed.rowCount, 0, 'an auth_failed server is not polled');
    const fresh = m.addToken('jira-sync');
    await t.db.withTenant(tenantId, (tx) => updateCredentials(tx, world.secrets, tenantId, serverId, { type: 'token', token: fresh }));
    await sync();
    const after = await t.db.withTenant(tenantId, async (tx) => (await tx.query(`SELECT state FROM teamcity_servers WHERE id = $1`, [serverId])).rows[0]!.state);
    assert.equal(after, 'ok');
  });
});
