// Edge cases end to end (one Jira site, one TeamCity server whose clock is at UTC+05:30): branch names
// with locator and non-ASCII characters, a configuration renamed in TeamCity, dates in the server's
// own zone, builds without issue keys, and personal builds.
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

const OFFSET_MINUTES = 330; // India: a half-hour offset catches both sign and minute mistakes
const HOUR = 3600_000;

let t: TestDatabase;
let world: JiraWorld;
let tc: TeamCitySimulator;
let tenantId: string;
const serverId = randomUUID();
let worker: SyncWorker;

/** One full round: poll the server now, then deliver everything to Jira. */
async function sync(): Promise<void> {
  await t.db.withTenant(tenantId, (tx) => tx.query(`UPDATE sync_state SET ${DUE_NOW} WHERE server_id = $1`, [serverId]));
  await worker.tick();
  await worker.idle();
  await worker.tick();
  await worker.idle();
}

function jiraBuilds() {
  return [...world.sim.site('acme').builds.values()];
}

function jiraBuild(buildId: number) {
  return jiraBuilds().find((b) => b.buildNumber === buildId);
}

/** Every build entity Jira was ever sent, in arrival order. */
function sentBuilds(): Array<{ pipelineId: string; buildNumber: number; updateSequenceNumber: number; displayName: string }> {
  return world.sim
    .requests()
    .filter((r) => r.method === 'POST' && r.path === '/rest/builds/0.1/bulk')
    .flatMap((r) => (r.body as { builds: Array<{ pipelineId: string; buildNumber: number; updateSequenceNumber: number; displayName: string }> }).builds);
}

async function recorded(buildId: number) {
  return t.db.withTenant(tenantId, async (tx) =>
    (
      await tx.query<{ pipeline_id: string; branch: string | null; issue_keys: string[]; last_usn: string | null; jira_state: string; finished_at: Date | null }>(
        'SELECT pipeline_id, branch, issue_keys, last_usn, jira_state, finished_at FROM builds WHERE server_id = $1 AND build_id = $2',
        [serverId, buildId],
      )
    ).rows[0],
  );
}

/** TeamCity dates have second precision: the instant TeamCity reports for a model time. */
const tcInstant = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString();

before(async () => {
  t = await createTestDatabase();
  tc = await startTeamCitySimulator({ utcOffsetMinutes: OFFSET_MINUTES, version: '2025.11.2' });
  world = await startJiraWorld(t, { sites: ['acme'] }, [new URL(tc.url).host]);
  tenantId = await world.install('acme');

  const m = tc.model;
  m.addProject({ id: 'Shop', name: 'Shop' });
  m.addVcsRoot({ id: 'Shop_Git', projectId: 'Shop', url: 'https://git.example.com/shop.git' });
  m.addBuildType({ id: 'Shop_Build', projectId: 'Shop', name: 'Build', type: 'regular', vcsRootIds: ['Shop_Git'], branched: true });
  m.addBuildType({ id: 'Shop_Lint', projectId: 'Shop', name: 'Lint', type: 'regular', vcsRootIds: ['Shop_Git'], branched: true });
  m.addUser({ username: 'jira-sync', password: 'sync-pw', viewProjects: 'all' });
  m.addUser({ username: 'dana', password: 'dana-pw', viewProjects: 'all' });
  const token = m.addToken('jira-sync');

  await t.db.withTenant(tenantId, (tx) =>
    createServer(tx, world.secrets, tenantId, { id: serverId, name: 'TeamCity', url: tc.url, auth: { type: 'token', token } }),
  );
  const pollerDeps: PollerDeps = { db: t.db, secrets: world.secrets, dispatcher: world.dispatcher, log: quietLog, teamcity: { timeoutMs: 5000, maxAttempts: 2, retryBaseMs: 10 } };
  worker = new SyncWorker(
    t.db,
    {
      poll: async (tid, sid, wid) => void (await pollServer(pollerDeps, tid, sid, wid)),
      deliver: async (tid, wid) =>
        void (await deliverTenant({ db: t.db, tenants: world.tenants, appKey: APP_KEY, dispatcher: world.dispatcher, log: quietLog }, tid, wid)),
    },
    quietLog,
    { workerId: 'edge-worker' },
  );
  await sync(); // first poll: the cursor starts at the server's "now"
});

after(async () => {
  await worker?.stop();
  await world?.close();
  await tc?.close();
  await t?.drop();
});

describe('sync edge cases (TeamCity at UTC+05:30)', () => {
  test('the server offset is learned from TeamCity and a build finished between two polls is found', async () => {
    const m = tc.model;
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-1 between polls', branch: 'main' });
    tc.advance(2 * HOUR + 17_000);
    const b = m.runBuild({ buildTypeId: 'Shop_Build', branch: 'main', queueMs: 3_000, durationMs: 95_000 });
    tc.advance(12_000);
    await sync();
    // Only the finished-builds query can find this build: it was never queued or running at a poll.
    const inJira = jiraBuild(b.id);
    assert.equal(inJira?.data.state, 'successful');
    assert.equal(inJira.data.lastUpdated, tcInstant(b.finishDate!));
    const offset = await t.db.withTenant(tenantId, async (tx) => (await tx.query('SELECT server_offset_min FROM sync_state WHERE server_id = $1', [serverId])).rows[0]!.server_offset_min);
    assert.equal(offset, OFFSET_MINUTES);
    // The locator dates went out in the server's offset (`+` escaped as %2B).
    const finishedQuery = tc.requests().find((r) => r.path.endsWith('/app/rest/builds') && /state:finished/.test(String(r.query.locator)));
    assert.match(String(finishedQuery?.query.locator), /finishDate:\(date:\d{8}T\d{6}\+0530,condition:after\)/);
  });

  test('lastUpdated is the UTC instant of each state change, whatever the server zone', async () => {
    const m = tc.model;
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-2 time zones', branch: 'feature/TCJ-2-tz' });
    tc.advance(20 * 60_000 + 7_000);
    const b = m.queueBuild({ buildTypeId: 'Shop_Build', branch: 'feature/TCJ-2-tz' });
    await sync();
    assert.equal(jiraBuild(b.id)?.data.state, 'pending');
    assert.equal(jiraBuild(b.id)?.data.lastUpdated, tcInstant(b.queuedDate));

    tc.advance(41_000);
    m.startBuild(b.id);
    tc.advance(5_000);
    await sync();
    assert.equal(jiraBuild(b.id)?.data.state, 'in_progress');
    assert.equal(jiraBuild(b.id)?.data.lastUpdated, tcInstant(b.startDate!));

    tc.advance(13 * 60_000 + 29_000);
    m.finishBuild(b.id, { status: 'FAILURE', statusText: 'Tests failed: 1' });
    tc.advance(3_000);
    await sync();
    const done = jiraBuild(b.id)!;
    assert.equal(done.data.state, 'failed');
    assert.equal(done.data.lastUpdated, tcInstant(b.finishDate!));
    assert.equal((await recorded(b.id))?.finished_at?.toISOString(), tcInstant(b.finishDate!));
  });

  test('branch names with /, (, ), comma, colon and non-ASCII characters keep their keys and names', async () => {
    const m = tc.model;
    const cases = [
      { branch: 'feature/TCJ-1(x),y', comment: 'no key in this commit', keys: ['TCJ-1'] },
      { branch: 'bugfix/TCJ-2-ünïcødé', comment: 'Umlaute überall', keys: ['TCJ-2'] },
      { branch: 'release/2026.1:rc', comment: 'DEMO-1 release candidate', keys: ['DEMO-1'] },
      { branch: 'user/zoë/TCJ-3,DEMO-2:wip (2)', comment: 'wip', keys: ['DEMO-2', 'TCJ-3'] },
      { branch: '功能/TCJ-4-日本語', comment: '修正', keys: ['TCJ-4'] },
    ];
    // The first branch goes through queued → running → finished, so that the running and queued
    // queries and the vanished-build lookup all meet the name; the others finish between two polls.
    const [first, ...rest] = cases;
    m.addChange({ vcsRootId: 'Shop_Git', comment: first!.comment, branch: first!.branch });
    const slow = m.queueBuild({ buildTypeId: 'Shop_Build', branch: first!.branch });
    await sync();
    assert.equal(jiraBuild(slow.id)?.data.state, 'pending');
    m.startBuild(slow.id);
    tc.advance(30_000);
    await sync();
    assert.equal(jiraBuild(slow.id)?.data.state, 'in_progress');
    tc.advance(30_000);
    m.finishBuild(slow.id, { status: 'SUCCESS' });
    const built = [{ ...first!, build: slow }];
    for (const c of rest) {
      m.addChange({ vcsRootId: 'Shop_Git', comment: c.comment, branch: c.branch });
      built.push({ ...c, build: m.runBuild({ buildTypeId: 'Shop_Lint', branch: c.branch, durationMs: 20_000 }) });
    }
    tc.advance(5_000);
    await sync();

    for (const c of built) {
      const inJira = jiraBuild(c.build.id);
      assert.ok(inJira, `build on ${c.branch} reached Jira`);
      assert.equal(inJira.data.state, 'successful', c.branch);
      assert.deepEqual([...inJira.issueKeys].sort(), c.keys, c.branch);
      assert.deepEqual([...(inJira.data.issueKeys as string[])].sort(), c.keys, c.branch);
      assert.ok(String(inJira.data.displayName).endsWith(` (${c.branch})`), `${String(inJira.data.displayName)} shows ${c.branch}`);
      const refs = (inJira.data.references as Array<{ ref?: { name: string } }> | undefined) ?? [];
      assert.ok(refs.some((r) => r.ref?.name === c.branch), `${c.branch}: branch reference`);
      assert.equal((await recorded(c.build.id))?.branch, c.branch);
    }
    assert.deepEqual(world.sim.unexpectedCalls(), []);
  });

  test('a renamed configuration keeps its pipelineId: new name, no duplicate pipeline', async () => {
    const m = tc.model;
    const bt = m.buildType('Shop_Build');
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-5 before the rename', branch: 'main' });
    tc.advance(HOUR);
    const before = m.runBuild({ buildTypeId: bt.internalId, branch: 'main', durationMs: 30_000 });
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-5 across the rename', branch: 'feature/TCJ-5-rename' });
    const across = m.queueBuild({ buildTypeId: bt.internalId, branch: 'feature/TCJ-5-rename' });
    m.startBuild(across.id);
    tc.advance(10_000);
    await sync();
    const pipelineId = jiraBuild(before.id)!.pipelineId;
    assert.equal(pipelineId, `${serverId}/${bt.internalId}`);
    assert.match(String(jiraBuild(before.id)!.data.displayName), /^Shop \/ Build #/);
    assert.equal(jiraBuild(across.id)?.pipelineId, pipelineId);

    // Renamed in TeamCity: the name, and the external id too (internalId stays, as in TeamCity).
    bt.name = 'Compile & Package';
    bt.id = 'Shop_CompileAndPackage';
    const usnBefore = jiraBuild(before.id)!.updateSequenceNumber;
    tc.advance(20_000);
    m.finishBuild(across.id, { status: 'SUCCESS' });
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-5 after the rename', branch: 'main' });
    const afterRename = m.runBuild({ buildTypeId: bt.internalId, branch: 'main', durationMs: 30_000 });
    tc.advance(5_000);
    await sync();

    // The existing build (still inside the poll overlap, so re-read) is sent again under its new name.
    const reread = jiraBuild(before.id)!;
    assert.ok(reread.updateSequenceNumber > usnBefore, 'the renamed configuration was sent again for an existing build');
    for (const id of [before.id, across.id, afterRename.id]) {
      const b = jiraBuild(id)!;
      assert.equal(b.pipelineId, pipelineId, `build ${id}`);
      assert.match(String(b.data.displayName), /^Shop \/ Compile & Package #/, `build ${id}`);
      assert.equal((await recorded(id))?.pipeline_id, pipelineId);
    }
    // One pipeline per configuration ever sent for this connection.
    const pipelines = new Set(sentBuilds().map((b) => b.pipelineId));
    assert.deepEqual([...pipelines].sort(), [pipelineId, `${serverId}/${m.buildType('Shop_Lint').internalId}`].sort());
    const stored = await t.db.withTenant(tenantId, async (tx) => (await tx.query('SELECT DISTINCT pipeline_id FROM builds WHERE build_type_id = $1', [bt.id])).rows);
    assert.deepEqual(stored, [{ pipeline_id: pipelineId }]);
  });

  test('a build without issue keys is recorded but not sent; a later one with a key is sent', async () => {
    const m = tc.model;
    tc.advance(HOUR);
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'refactor: tidy up, UTF-8 and SHA-256 are not keys', branch: 'chore/tidy-up' });
    const keyless = m.runBuild({ buildTypeId: 'Shop_Lint', branch: 'chore/tidy-up', durationMs: 15_000 });
    tc.advance(5_000);
    await sync();
    const row = await recorded(keyless.id);
    assert.ok(row, 'the keyless build is recorded');
    assert.deepEqual(row.issue_keys, []);
    assert.equal(row.last_usn, null);
    assert.equal(row.jira_state, 'successful');
    assert.equal(jiraBuild(keyless.id), undefined);
    assert.ok(!sentBuilds().some((b) => b.buildNumber === keyless.id), 'never sent to Jira');

    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-3 now with a key', branch: 'chore/tidy-up' });
    const keyed = m.runBuild({ buildTypeId: 'Shop_Lint', branch: 'chore/tidy-up', durationMs: 15_000 });
    tc.advance(5_000);
    await sync();
    assert.deepEqual(jiraBuild(keyed.id)?.issueKeys, ['TCJ-3']);
    assert.equal(jiraBuild(keyless.id), undefined);
    assert.notEqual((await recorded(keyed.id))?.last_usn, null);
  });

  test('personal builds are never sent, in any state', async () => {
    const m = tc.model;
    tc.advance(HOUR);
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-4 a public commit', branch: 'feature/TCJ-4-personal' });
    const personal = m.queueBuild({ buildTypeId: 'Shop_Build', branch: 'feature/TCJ-4-personal', personal: true, user: 'dana' });
    const quick = m.runBuild({ buildTypeId: 'Shop_Lint', branch: 'feature/TCJ-4-personal', personal: true, user: 'dana', durationMs: 10_000 });
    const publicBuild = m.runBuild({ buildTypeId: 'Shop_Lint', branch: 'feature/TCJ-4-personal', durationMs: 10_000 });
    await sync();
    m.startBuild(personal.id);
    tc.advance(30_000);
    await sync();
    m.finishBuild(personal.id, { status: 'SUCCESS' });
    tc.advance(5_000);
    await sync();

    assert.equal(jiraBuild(publicBuild.id)?.data.state, 'successful', 'the public build on the same branch is sent');
    for (const b of [personal, quick]) {
      assert.equal(b.personal, true);
      assert.equal(jiraBuild(b.id), undefined, `personal build ${b.id} in Jira`);
      assert.ok(!sentBuilds().some((s) => s.buildNumber === b.id), `personal build ${b.id} sent`);
      assert.equal(await recorded(b.id), undefined, `personal build ${b.id} recorded`);
    }
    assert.deepEqual(world.sim.unexpectedCalls(), []);
  });
});
