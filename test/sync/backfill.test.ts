// Backfill of a generated history: everything arrives, oldest first, and the request counts stay at
// the floor the APIs allow (ceil(N/page) to TeamCity, ceil(N/100) to Jira, plus a small constant).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { deliverTenant } from '../../src/sync/deliverer.ts';
import { pollServer, type PollerDeps } from '../../src/sync/poller.ts';
import { createServer, requestBackfill } from '../../src/sync/servers.ts';
import { SyncWorker } from '../../src/sync/worker.ts';
import { createTestDatabase, quietLog, type TestDatabase } from '../helpers/db.ts';
import { APP_KEY, startJiraWorld, type JiraWorld, addGeneratedHistoryProjects } from '../helpers/jira-app.ts';

let t: TestDatabase;
let world: JiraWorld;
let tc: TeamCitySimulator;
let tenantId: string;
const serverId = randomUUID();
let worker: SyncWorker;
const DAY = 24 * 3600_000;

async function round(): Promise<void> {
  await worker.tick();
  await worker.idle();
}

before(async () => {
  t = await createTestDatabase();
  tc = await startTeamCitySimulator({ utcOffsetMinutes: -300, version: '2024.12' });
  world = await startJiraWorld(t, { sites: ['acme'] }, [new URL(tc.url).host]);
  tenantId = await world.install('acme');
  addGeneratedHistoryProjects(world, 'acme');
  tc.generateHistory({ seed: 11, projects: 2, buildTypesPerProject: 3, buildsPerType: 300, periodMs: 30 * DAY });
  const token = tc.model.addToken('admin');
  await t.db.withTenant(tenantId, (tx) => createServer(tx, world.secrets, tenantId, { id: serverId, name: 'TC', url: tc.url, auth: { type: 'token', token } }));
  const deps: PollerDeps = { db: t.db, secrets: world.secrets, dispatcher: world.dispatcher, log: quietLog, settings: { activeIntervalMs: 0, idleIntervalMs: 0, backfillBudgetMs: 60_000 } };
  worker = new SyncWorker(
    t.db,
    {
      poll: async (tid, sid, wid) => void (await pollServer(deps, tid, sid, wid)),
      deliver: async (tid, wid) => void (await deliverTenant({ db: t.db, tenants: world.tenants, appKey: APP_KEY, dispatcher: world.dispatcher, log: quietLog, maxBatchesPerRun: 1000 }, tid, wid)),
    },
    quietLog,
    { workerId: 'backfill-worker' },
  );
});

after(async () => {
  await worker.stop();
  await world.close();
  await tc.close();
  await t.drop();
});

test('a 30-day backfill sends every build oldest first within the request floor', async () => {
  const since = new Date(tc.model.now() - 31 * DAY);
  await t.db.withTenant(tenantId, (tx) => requestBackfill(tx, serverId, since));
  tc.clearRequests();
  world.sim.clearRequests();
  for (let i = 0; i < 10; i++) {
    await round();
    const done = await t.db.withTenant(tenantId, async (tx) =>
      (await tx.query(`SELECT backfill_finished_at IS NOT NULL AS done, (SELECT count(*) FROM outbox)::int AS pending FROM sync_state`)).rows[0]!,
    );
    if (done.done && done.pending === 0) break;
  }

  // Every finished, non-personal build TeamCity has since `since` is recorded.
  const expected = [...tc.model.builds.values()].filter((b) => b.state === 'finished' && !b.personal && b.startDate !== null && b.startDate > since.getTime());
  const recorded = await t.db.withTenant(tenantId, async (tx) =>
    (await tx.query<{ build_id: string; jira_state: string; issue_keys: string[]; last_usn: string | null; started_at: Date; kind: string }>(
      `SELECT build_id, jira_state, issue_keys, last_usn, started_at, kind FROM builds WHERE tc_state = 'finished'`,
    )).rows,
  );
  const recordedIds = new Set(recorded.map((r) => Number(r.build_id)));
  const missing = expected.filter((b) => !recordedIds.has(b.id));
  assert.deepEqual(missing.map((b) => b.id), [], 'builds missing from the backfill');
  assert.ok(expected.length > 1000, `history has ${expected.length} builds`);

  // Every recorded build with issue keys is in Jira, in the state we computed.
  const site = world.sim.site('acme');
  const withKeys = recorded.filter((r) => r.issue_keys.length > 0 && r.kind === 'build');
  for (const r of withKeys) {
    const inJira = [...site.builds.values()].find((b) => b.buildNumber === Number(r.build_id));
    assert.equal(inJira?.data.state, r.jira_state, `build ${r.build_id}`);
  }

  // Oldest first: sequence numbers grow with start time among the builds the backfill recorded.
  const sent = recorded.filter((r) => r.last_usn !== null).sort((a, b) => a.started_at.getTime() - b.started_at.getTime() || Number(a.build_id) - Number(b.build_id));
  let inversions = 0;
  for (let i = 1; i < sent.length; i++) if (BigInt(sent[i]!.last_usn!) < BigInt(sent[i - 1]!.last_usn!)) inversions++;
  assert.equal(inversions, 0, 'backfill sent newer builds before older ones');

  // Request floors.
  const tcBuildsRequests = tc.requests().filter((r) => r.path.endsWith('/app/rest/builds')).length;
  const windows = Math.ceil(31 / 7) + 6; // growing start-time windows
  assert.ok(tcBuildsRequests <= Math.ceil(expected.length / 100) + 2 * windows + 10, `TeamCity builds requests: ${tcBuildsRequests} for ${expected.length} builds`);
  const perBuild = tc.requests().filter((r) => /\/app\/rest\/(builds\/|changes)/.test(r.path)).length;
  assert.ok(perBuild <= 5, `per-build TeamCity requests: ${perBuild}`);
  const jiraPosts = world.sim.requests().filter((r) => r.path === '/rest/builds/0.1/bulk' || r.path === '/rest/deployments/0.1/bulk').length;
  const entities = sent.length;
  assert.ok(jiraPosts <= Math.ceil(entities / 100) + 4, `Jira requests: ${jiraPosts} for ${entities} entities`);
  assert.deepEqual(world.sim.unexpectedCalls(), []);
});
