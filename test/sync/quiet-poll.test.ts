// The claim protocol of claim_polls (migration 0008): a poll that finds nothing new writes no row
// beyond its claim and lets its short lease lapse before the next poll is due; a poll with news
// writes and gives the lease back; a slow poll renews its lease so no other worker overtakes it;
// "sync now" waits at most for a lapsing lease and never starves a poll in progress. Rows written
// are counted by triggers, not inferred.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, beforeEach, describe, test } from 'node:test';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { deliverTenant } from '../../src/sync/deliverer.ts';
import { pollServer, type PollerDeps, type SyncSettings } from '../../src/sync/poller.ts';
import { createServer, pollNow } from '../../src/sync/servers.ts';
import { SyncWorker, type PollLease } from '../../src/sync/worker.ts';
import { createTestDatabase, quietLog, type TestDatabase } from '../helpers/db.ts';
import { APP_KEY, startJiraWorld, type JiraWorld } from '../helpers/jira-app.ts';

let t: TestDatabase;
let world: JiraWorld;
let tc: TeamCitySimulator;
let tenantId: string;
const serverId = randomUUID();
const settings: Partial<SyncSettings> = { activeIntervalMs: 2000, idleIntervalMs: 2000, activeHoldMs: 0 };
/** Every poll task run, by worker, with its lease. */
const polls: Array<{ worker: string; lease: PollLease; started: number; ended: number }> = [];

function startWorker(workerId: string): SyncWorker {
  const deps: PollerDeps = { db: t.db, secrets: world.secrets, dispatcher: world.dispatcher, log: quietLog, settings, teamcity: { timeoutMs: 10_000, maxAttempts: 1 } };
  return new SyncWorker(
    t.db,
    {
      poll: async (tid, sid, lease) => {
        const entry = { worker: workerId, lease, started: Date.now(), ended: Number.POSITIVE_INFINITY };
        polls.push(entry);
        try {
          await pollServer(deps, tid, sid, lease);
        } finally {
          entry.ended = Date.now();
        }
      },
      deliver: async (tid, wid) => void (await deliverTenant({ db: t.db, tenants: world.tenants, appKey: APP_KEY, dispatcher: world.dispatcher, log: quietLog }, tid, wid)),
    },
    quietLog,
    // A 1 s lease, shorter than the 2 s interval: a quiet poll lets it lapse.
    { workerId, pollLeaseSeconds: 1 },
  );
}

let worker: SyncWorker;

async function syncState() {
  return t.db.withTenant(tenantId, async (tx) => (await tx.query<{ next_poll_at: Date; lease_owner: string | null; lease_until: Date | null; poll_interval_s: number; last_success_at: Date | null }>('SELECT * FROM sync_state WHERE server_id = $1', [serverId])).rows[0]!);
}

/** Row writes (insert/update/delete) per table since the last reset, counted by triggers. */
async function rowWrites(): Promise<Record<string, number>> {
  const { rows } = await t.ownerPool.query<{ tbl: string; n: string }>('SELECT tbl, count(*) AS n FROM row_writes GROUP BY tbl');
  return Object.fromEntries(rows.map((r) => [r.tbl, Number(r.n)]));
}

/** Waits until the server is due (its claim scheduled it), then runs one claim round and its poll. */
async function pollWhenDue(w = worker): Promise<void> {
  const { next_poll_at } = await syncState();
  await sleep(Math.max(0, next_poll_at.getTime() - Date.now() + 50));
  await w.tick();
  await w.idle();
}

before(async () => {
  t = await createTestDatabase();
  tc = await startTeamCitySimulator({ realTime: true });
  world = await startJiraWorld(t, { sites: ['acme'] }, [new URL(tc.url).host]);
  tenantId = await world.install('acme');
  const m = tc.model;
  m.addProject({ id: 'Shop', name: 'Shop' });
  m.addVcsRoot({ id: 'Shop_Git', projectId: 'Shop', url: 'https://git.example.com/shop.git' });
  m.addBuildType({ id: 'Shop_Build', projectId: 'Shop', name: 'Build', type: 'regular', vcsRootIds: ['Shop_Git'], branched: true });
  m.addUser({ username: 'jira-sync', password: 'sync-pw', viewProjects: 'all' });
  const token = m.addToken('jira-sync');
  await t.db.withTenant(tenantId, (tx) => createServer(tx, world.secrets, tenantId, { id: serverId, name: 'TeamCity', url: tc.url, auth: { type: 'token', token } }));

  // Count every row the app writes, per table (the owner runs this; the app's roles cannot).
  await t.ownerPool.query(`
    CREATE TABLE row_writes (tbl text NOT NULL, op text NOT NULL);
    GRANT INSERT ON row_writes TO PUBLIC;
    CREATE FUNCTION count_row_write() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO row_writes VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END $$;
    DO $$ DECLARE r record; BEGIN
      FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'row_writes' LOOP
        EXECUTE format('CREATE TRIGGER count_row_write AFTER INSERT OR UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION count_row_write()', r.tablename);
      END LOOP;
    END $$;`);
  worker = startWorker('quiet-a');
  // First poll: the cursor and the interval are written.
  await pollWhenDue();
  assert.equal((await syncState()).poll_interval_s, 2);
});

after(async () => {
  await world.close();
  await tc.close();
  await t.drop();
});

beforeEach(async () => {
  tc.faults.setLatency(0);
  // Settle: a poll that sees what the last test left, then start counting.
  await pollWhenDue();
  await t.ownerPool.query('TRUNCATE row_writes');
  polls.length = 0;
});

describe('poll claims (claim_polls)', () => {
  test('a poll that finds nothing new writes one row, its claim, and its lease lapses before the next poll is due', async () => {
    for (let i = 0; i < 3; i++) {
      await pollWhenDue();
      const st = await syncState();
      assert.ok(st.lease_owner?.startsWith('quiet-a/'), 'the lease is left to lapse, not given back');
      assert.ok(st.lease_until && st.lease_until < st.next_poll_at, 'it lapses before the next poll is due');
      assert.ok(st.next_poll_at.getTime() - Date.now() > 1000, 'the claim scheduled the next poll one interval on');
    }
    assert.equal(polls.length, 3, 'each lapsed lease was claimed again on time');
    assert.deepEqual(await rowWrites(), { sync_state: 3 }, 'three polls, three rows: the claims');
    const tokens = new Set(polls.map((p) => p.lease.token));
    assert.equal(tokens.size, 3, 'each claim has its own lease token');
    assert.ok(((await syncState()).last_success_at?.getTime() ?? 0) > Date.now() - 5000, 'a quiet poll still counts as a success');
  });

  test('a poll that finds a build writes it, queues it, and gives its lease back', async () => {
    tc.model.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-1 Add the login form', branch: 'main' });
    const b = tc.model.queueBuild({ buildTypeId: 'Shop_Build', branch: 'main' });
    await pollWhenDue();
    const st = await syncState();
    assert.equal(st.lease_owner, null);
    const writes = await rowWrites();
    assert.equal(writes.builds, 1);
    assert.equal(writes.outbox, 1);
    assert.ok((writes.sync_state ?? 0) >= 2, 'the claim and the cursor update');
    // Finish it, so the next tests start from a quiet server.
    tc.model.startBuild(b.id);
    tc.model.finishBuild(b.id, { status: 'SUCCESS' });
    await pollWhenDue();
    await pollWhenDue(); // records the finished build
    await t.ownerPool.query('TRUNCATE row_writes');
    await pollWhenDue(); // re-reads it in the overlap: nothing changed
    assert.deepEqual(await rowWrites(), { sync_state: 1 }, 'a build re-read in the overlap writes nothing');
  });

  test('a poll slower than its lease renews it: no other worker claims the server meanwhile', async () => {
    const other = startWorker('quiet-b');
    tc.faults.setLatency(1500); // the server clock, then the lists: ~3 s, longer than the 2 s lease
    const { next_poll_at } = await syncState();
    await sleep(Math.max(0, next_poll_at.getTime() - Date.now() + 50));
    await worker.tick();
    const until = Date.now() + 3500;
    while (Date.now() < until) {
      await other.tick();
      await sleep(100);
    }
    await worker.idle();
    await other.idle();
    const mine = polls.filter((p) => p.worker === 'quiet-a');
    assert.equal(mine.length, 1);
    assert.ok(mine[0]!.ended - mine[0]!.started > 2500, `the poll took ${mine[0]!.ended - mine[0]!.started} ms, longer than its lease`);
    const overlapping = polls.filter((p) => p.worker === 'quiet-b' && p.started < mine[0]!.ended);
    assert.deepEqual(overlapping, [], 'the other worker did not claim the server while the poll ran');
    assert.equal((await syncState()).lease_owner, null, 'a renewed lease is given back at the end');
  });

  test('"sync now" waits at most for a lapsing lease, and a stream of them never starves a poll', async () => {
    settings.idleIntervalMs = 60_000;
    settings.activeIntervalMs = 60_000;
    try {
      await pollWhenDue(); // writes the new interval (60 s) and gives the lease back
      await t.db.withTenant(tenantId, (tx) => pollNow(tx, serverId));
      await worker.tick();
      await worker.idle(); // quiet: its 1 s lease lapses, the next poll is due in 60 s
      polls.length = 0;
      await t.db.withTenant(tenantId, (tx) => pollNow(tx, serverId));
      await worker.tick();
      assert.equal(polls.length, 0, 'not while the lease holds');
      await sleep(1100);
      await worker.tick();
      await worker.idle();
      assert.equal(polls.length, 1, 'polled once the lease lapsed');

      // "Sync now" every 100 ms while each poll takes ~1 s: the poll in progress is never overtaken.
      tc.faults.setLatency(500);
      tc.model.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-2 Fix the checkout', branch: 'main' });
      const b = tc.model.queueBuild({ buildTypeId: 'Shop_Build', branch: 'main' });
      const recorded = async () => t.db.withTenant(tenantId, async (tx) => (await tx.query('SELECT 1 FROM builds WHERE build_id = $1', [b.id])).rowCount === 1);
      const until = Date.now() + 8000;
      while (!(await recorded()) && Date.now() < until) {
        await t.db.withTenant(tenantId, (tx) => pollNow(tx, serverId));
        await worker.tick();
        await sleep(100);
      }
      await worker.idle();
      assert.ok(await recorded(), 'the build was recorded despite the stream of "sync now"');
      tc.model.cancelBuild(b.id, { immediate: true });
    } finally {
      tc.faults.setLatency(0);
      settings.idleIntervalMs = 2000;
      settings.activeIntervalMs = 2000;
      // Back to the short interval for the suites after this one.
      await sleep(1100);
      await t.db.withTenant(tenantId, (tx) => pollNow(tx, serverId));
      await worker.tick();
      await worker.idle();
    }
  });
});
