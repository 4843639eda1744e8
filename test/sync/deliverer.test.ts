// Delivery from the outbox to the Jira simulator over HTTP: batching, coalescing, Jira's verdicts,
// and a rate-limited tenant that pauses without holding up another.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { BuildData } from '../../src/jira/models.ts';
import { registry } from '../../src/metrics.ts';
import { deliverTenant, type DelivererDeps } from '../../src/sync/deliverer.ts';
import { enqueue, reserveUpdateSequences } from '../../src/sync/outbox.ts';
import { createServer } from '../../src/sync/servers.ts';
import { createTestDatabase, quietLog, type TestDatabase } from '../helpers/db.ts';
import { APP_KEY, startJiraWorld, type JiraWorld } from '../helpers/jira-app.ts';

let t: TestDatabase;
let world: JiraWorld;
let deps: DelivererDeps;
const tenants: Record<string, { tenantId: string; serverId: string }> = {};

function build(serverId: string, id: number, usn: number, state: BuildData['state'], keys = ['TCJ-1']): BuildData {
  return {
    schemaVersion: '1.0',
    pipelineId: `${serverId}/Proj_Build`,
    buildNumber: id,
    updateSequenceNumber: usn,
    displayName: `Proj / Build #${id}`,
    url: `https://tc.example.com/build/${id}`,
    state,
    lastUpdated: '2026-12-01T10:00:00.000Z',
    issueKeys: keys,
  };
}

async function queue(site: string, id: number, state: BuildData['state'], keys?: string[]) {
  const { tenantId, serverId } = tenants[site]!;
  await t.db.withTenant(tenantId, async (tx) => {
    const [usn] = await reserveUpdateSequences(tx, 1);
    await enqueue(tx, tenantId, serverId, [{ kind: 'build', buildId: id, payload: build(serverId, id, usn!, state, keys) }]);
  });
}

/** Takes the delivery leases the way the worker does (claim_due_deliveries). */
async function claim(workerId: string): Promise<string[]> {
  return (await t.db.pool.query<{ tenant_id: string }>('SELECT * FROM claim_due_deliveries($1, 60, 10)', [workerId])).rows.map((r) => r.tenant_id);
}

async function outboxSize(site: string) {
  return t.db.withTenant(tenants[site]!.tenantId, async (tx) => Number((await tx.query('SELECT count(*) AS n FROM outbox')).rows[0]!.n));
}

before(async () => {
  t = await createTestDatabase();
  world = await startJiraWorld(t, { sites: ['acme', 'globex'] });
  for (const site of ['acme', 'globex']) {
    const tenantId = await world.install(site);
    const serverId = randomUUID();
    await t.db.withTenant(tenantId, (tx) => createServer(tx, world.secrets, tenantId, { id: serverId, name: 'TC', url: 'https://tc.example.com', auth: { type: 'token', token: 'tok-123456' } }));
    tenants[site] = { tenantId, serverId };
  }
  deps = { db: t.db, tenants: world.tenants, appKey: APP_KEY, dispatcher: world.dispatcher, log: quietLog, jiraClient: { maxRetryAfterMs: 3_000, backoffBaseMs: 10, backoffMaxMs: 50 } };
});
after(async () => {
  await world.close();
  await t.drop();
});

describe('deliverer', () => {
  test('coalesces updates of one build to the newest and records the verdict', async () => {
    world.sim.clearRequests();
    await queue('acme', 101, 'pending');
    await queue('acme', 101, 'in_progress');
    await queue('acme', 101, 'successful');
    assert.deepEqual(await claim('w1'), [tenants.acme!.tenantId]);
    const report = await deliverTenant(deps, tenants.acme!.tenantId, 'w1');
    assert.deepEqual(report, { batches: 1, entities: 1, accepted: 1, rejected: 0 });
    const posts = world.sim.requests().filter((r) => r.path === '/rest/builds/0.1/bulk');
    assert.equal(posts.length, 1);
    const stored = world.sim.site('acme').getBuild(`${tenants.acme!.serverId}/Proj_Build`, 101);
    assert.equal(stored?.data.state, 'successful');
    assert.deepEqual(stored?.properties, { connectionId: tenants.acme!.serverId });
    assert.equal(await outboxSize('acme'), 0);
    const rows = await t.db.withTenant(tenants.acme!.tenantId, async (tx) => (await tx.query('SELECT verdict, issue_keys, build_id FROM deliveries')).rows);
    assert.deepEqual(rows, [{ verdict: 'accepted', issue_keys: ['TCJ-1'], build_id: '101' }]);
    assert.deepEqual(world.sim.unexpectedCalls(), []);
  });

  test('250 builds go in 3 requests; unknown issue keys are recorded as rejected', async () => {
    world.sim.clearRequests();
    for (let i = 0; i < 249; i++) await queue('acme', 1000 + i, 'successful', ['TCJ-2']);
    await queue('acme', 2000, 'failed', ['NOPE-1']);
    await claim('w1');
    const counted = async (verdict: string) => Number(/ (\d+)$/.exec((await registry.getSingleMetricAsString('tcj_entities_delivered_total')).split('\n').find((l) => l.includes(`kind="build",verdict="${verdict}"`)) ?? ' 0')![1]);
    const before = { accepted: await counted('accepted'), rejected: await counted('rejected') };
    const report = await deliverTenant(deps, tenants.acme!.tenantId, 'w1');
    assert.deepEqual(report, { batches: 3, entities: 250, accepted: 249, rejected: 1 });
    assert.deepEqual({ accepted: (await counted('accepted')) - before.accepted, rejected: (await counted('rejected')) - before.rejected }, { accepted: 249, rejected: 1 });
    assert.equal(world.sim.requests().filter((r) => r.path === '/rest/builds/0.1/bulk').length, 3);
    const rejected = await t.db.withTenant(tenants.acme!.tenantId, async (tx) =>
      (await tx.query(`SELECT verdict, unknown_keys, errors FROM deliveries WHERE build_id = 2000`)).rows[0],
    );
    assert.equal(rejected?.verdict, 'rejected');
    assert.deepEqual(rejected?.unknown_keys, ['NOPE-1']);
    assert.ok((rejected?.errors as { message: string }[]).length > 0);
  });

  test('with a linger, a full batch of another connection goes first and a partial one waits to fill up', async () => {
    const { tenantId, serverId } = tenants.acme!;
    const second = randomUUID();
    await t.db.withTenant(tenantId, (tx) => createServer(tx, world.secrets, tenantId, { id: second, name: 'TC 2', url: 'https://tc2.example.com', auth: { type: 'token', token: 'tok-654321' } }));
    const queueOn = (server: string, ids: number[]) =>
      t.db.withTenant(tenantId, async (tx) => {
        const usns = await reserveUpdateSequences(tx, ids.length);
        await enqueue(tx, tenantId, server, ids.map((id, i) => ({ kind: 'build' as const, buildId: id, payload: build(server, id, usns[i]!, 'successful') })));
      });
    world.sim.clearRequests();
    await queueOn(serverId, Array.from({ length: 30 }, (_, i) => 5000 + i)); // the oldest rows: a partial batch
    await queueOn(second, Array.from({ length: 100 }, (_, i) => 6000 + i)); // a full batch
    await claim('w1');
    const started = Date.now();
    const delivering = deliverTenant({ ...deps, lingerMs: 1500 }, tenantId, 'w1');
    await new Promise((r) => setTimeout(r, 400));
    await queueOn(serverId, Array.from({ length: 30 }, (_, i) => 7000 + i)); // arrives while the partial batch waits
    const report = await delivering;
    const posts = world.sim.requests().filter((r) => r.path === '/rest/builds/0.1/bulk');
    const sizes = posts.map((r) => ({ connection: (r.body as { properties: { connectionId: string } }).properties.connectionId, builds: (r.body as { builds: unknown[] }).builds.length }));
    assert.deepEqual(sizes, [
      { connection: second, builds: 100 },
      { connection: serverId, builds: 60 },
    ]);
    assert.ok(Date.now() - started >= 1400, 'the partial batch waited for its linger');
    assert.deepEqual(report, { batches: 2, entities: 160, accepted: 160, rejected: 0 });
    assert.equal(await outboxSize('acme'), 0);
  });

  test('a backfilling connection lingers longer: its next window of history is on its way', async () => {
    const { tenantId, serverId } = tenants.acme!;
    const setBackfilling = (on: boolean) =>
      t.db.withTenant(tenantId, (tx) => tx.query(`UPDATE sync_state SET backfill_since = CASE WHEN $2 THEN now() END, backfill_finished_at = NULL WHERE server_id = $1`, [serverId, on]));
    await setBackfilling(true);
    try {
      world.sim.clearRequests();
      for (let i = 0; i < 20; i++) await queue('acme', 8000 + i, 'successful');
      await claim('w1');
      const started = Date.now();
      const report = await deliverTenant({ ...deps, lingerMs: 0, backfillLingerMs: 1200 }, tenantId, 'w1');
      assert.ok(Date.now() - started >= 1100, `sent after ${Date.now() - started} ms`);
      assert.deepEqual(report, { batches: 1, entities: 20, accepted: 20, rejected: 0 });
    } finally {
      await setBackfilling(false);
    }
    // Not backfilling: the same partial batch goes at once (lingerMs 0).
    for (let i = 0; i < 20; i++) await queue('acme', 8100 + i, 'successful');
    await claim('w1');
    const started = Date.now();
    await deliverTenant({ ...deps, lingerMs: 0, backfillLingerMs: 1200 }, tenantId, 'w1');
    assert.ok(Date.now() - started < 1000, `sent after ${Date.now() - started} ms`);
  });

  test("a rate-limited tenant pauses with its outbox intact; the other tenant's delivery is unaffected", async () => {
    world.sim.faults.failNext({ status: 429, retryAfterSeconds: 120, site: 'acme', count: 10 });
    await queue('acme', 3000, 'successful');
    await queue('globex', 3000, 'successful');
    assert.deepEqual((await claim('w1')).sort(), [tenants.acme!.tenantId, tenants.globex!.tenantId].sort());
    const paused = await deliverTenant(deps, tenants.acme!.tenantId, 'w1');
    assert.equal(paused.entities, 0);
    assert.match(paused.paused ?? '', /rate limited by Jira for 120 s/);
    assert.equal(await outboxSize('acme'), 1);
    const state = await t.db.withTenant(tenants.acme!.tenantId, async (tx) => (await tx.query('SELECT paused_until, lease_owner FROM delivery_state')).rows[0]);
    const secs = ((state?.paused_until as Date).getTime() - Date.now()) / 1000;
    assert.ok(secs > 100 && secs <= 121, `paused for ${secs}s`);
    assert.equal(state?.lease_owner, null, 'the lease is released');
    const other = await deliverTenant(deps, tenants.globex!.tenantId, 'w1');
    assert.equal(other.accepted, 1);
    // The paused tenant is not handed out again until its pause ends, though its outbox is not empty.
    assert.deepEqual(await claim('w2'), []);
    // A deliverer that does not hold the lease sends nothing.
    await queue('globex', 3001, 'successful');
    const intruder = await deliverTenant(deps, tenants.globex!.tenantId, 'w3');
    assert.equal(intruder.entities, 0);
    assert.equal(await outboxSize('globex'), 1);
    world.sim.faults.clear();
  });
});

describe('auth failures and reinstalls', () => {
  test("Jira refusing a secret that a reinstall has just replaced does not pause the tenant", async () => {
    const acme = tenants.acme!.tenantId;
    const flagged = async () => t.db.withTenant(acme, async (tx) => (await tx.query('SELECT jira_auth_failed_at FROM tenants')).rows[0]!.jira_auth_failed_at !== null);
    const old = (await world.tenants.authById(acme))!;
    await world.install('acme'); // a new shared secret
    await world.tenants.recordJiraAuthFailure(acme, 'refused the old secret', old.secretVersion);
    assert.equal(await flagged(), false);
    const current = (await world.tenants.authById(acme))!;
    assert.notEqual(current.secretVersion, old.secretVersion);
    await world.tenants.recordJiraAuthFailure(acme, 'refused the current secret', current.secretVersion);
    assert.equal(await flagged(), true);
    await world.install('acme'); // the next install clears it
    assert.equal(await flagged(), false);
  });
});
