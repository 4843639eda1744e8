// Jira misbehaving for one tenant: 429 storms with Retry-After, 503s, a site down for a long time,
// 413 (request too large), and an uninstall while deliveries are pending. Tenant "acme" gets the
// faults, tenant "globex" shares the worker and must not notice: its delivery latency is measured
// before and during acme's outage.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import type { SyncWorker } from '../../src/sync/worker.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startJiraWorld, type JiraWorld } from '../helpers/jira-app.ts';
import {
  assertDelivered,
  BuildStream,
  connect,
  engine,
  forcePoll,
  forcePollIdle,
  makeWorker,
  outboxSize,
  percentile,
  report,
  round,
  sentToJira,
  unpauseDeliveries,
  waitFor,
  type Conn,
} from './harness.ts';

let t: TestDatabase;
let world: JiraWorld;
let tc: TeamCitySimulator;
let worker: SyncWorker;
let acme: Conn;
let globex: Conn;
let acmeStream: BuildStream;
let globexStream: BuildStream;

function produce(): void {
  acmeStream.step();
  globexStream.step();
  tc.advance(20_000);
}

async function syncRound(): Promise<void> {
  await forcePollIdle(t.ownerPool);
  await round(worker);
}

async function pausedFor(tenantId: string): Promise<{ secs: number; error: string | null }> {
  return t.db.withTenant(tenantId, async (tx) => {
    const r = (await tx.query<{ secs: number; last_error: string | null }>(
      `SELECT coalesce(extract(epoch FROM paused_until - now()), 0)::float AS secs, last_error FROM delivery_state`,
    )).rows[0];
    return { secs: r?.secs ?? 0, error: r?.last_error ?? null };
  });
}

/** Is everything globex has in TeamCity in Jira in its current state? */
function globexInJira(): boolean {
  const site = world.sim.site('globex');
  const jira = new Map([...site.builds.values()].map((b) => [b.buildNumber, b.data.state]));
  return [...globex.builds].every(([id, state]) => jira.get(id) === state);
}

before(async () => {
  t = await createTestDatabase();
  tc = await startTeamCitySimulator({ seed: 21 });
  world = await startJiraWorld(t, { sites: ['acme', 'globex'] }, [new URL(tc.url).host]);
  acme = await connect(t.db, world, 'acme', await world.install('acme'), tc);
  globex = await connect(t.db, world, 'globex', await world.install('globex'), tc, 'token');
  acmeStream = new BuildStream(acme, 31);
  globexStream = new BuildStream(globex, 32);
  worker = makeWorker(t.db, engine(t.db, world));
  await syncRound();
});

after(async () => {
  await worker.stop();
  await world.close();
  await tc.close();
  await t.drop();
});

describe('Jira faults', () => {
  test('429 storm with Retry-After: that tenant pauses as asked with its outbox intact, then drains', async () => {
    world.sim.faults.failNext({ status: 429, retryAfterSeconds: 30, site: 'acme', count: 20 });
    produce();
    produce();
    await syncRound();
    const p = await pausedFor(acme.tenantId);
    assert.ok(p.secs > 25 && p.secs <= 31, `paused for ${p.secs} s`);
    const waiting = await outboxSize(t.db, acme.tenantId);
    assert.ok(waiting > 0);
    assert.ok(globexInJira(), 'globex delivered in the same round');
    const attempts = world.sim.requests({ site: 'acme' }).filter((r) => r.status === 429).length;
    // Still paused: more rounds send nothing to acme.
    const before429 = world.sim.requests({ site: 'acme' }).length;
    produce();
    await syncRound();
    assert.equal(world.sim.requests({ site: 'acme' }).length, before429, 'nothing sent during the pause');
    world.sim.faults.clear();
    await unpauseDeliveries(t.ownerPool); // the 30 s have "passed"
    await syncRound();
    assert.equal(await outboxSize(t.db, acme.tenantId), 0);
    for (let i = 0; i < 2; i++) {
      acmeStream.drain();
      globexStream.drain();
      await syncRound();
    }
    const a = await assertDelivered(t.db, world, acme);
    await assertDelivered(t.db, world, globex);
    report({
      scenario: 'Jira 429 storm',
      injected: '429 with Retry-After: 30 on every acme request (client waits in place ≤ 1 s)',
      checked: 'acme paused ≈30 s, nothing sent during the pause, outbox kept; globex delivered in the same round; acme drains after the pause',
      result: `paused ${p.secs.toFixed(1)} s after ${attempts} × 429; ${waiting} rows waited; then ${a.builds} builds complete, no older update after newer`,
    });
  });

  test('503s: growing pause, then delivery resumes', async () => {
    world.sim.faults.failNext({ status: 503, site: 'acme', count: 15 }); // 5 attempts per request → 3 failed deliveries
    const pauses: number[] = [];
    for (let i = 0; i < 3; i++) {
      produce();
      await syncRound();
      pauses.push(Math.round((await pausedFor(acme.tenantId)).secs * 1000));
      await unpauseDeliveries(t.ownerPool);
    }
    assert.ok(pauses[0]! > 0 && pauses[1]! > pauses[0]! && pauses[2]! > pauses[1]!, `pauses grow: ${pauses.join(",")}`);
    await syncRound();
    assert.equal(await outboxSize(t.db, acme.tenantId), 0);
    assert.ok(globexInJira());
    report({
      scenario: 'Jira 503',
      injected: '15 × 503 on acme (client: 5 attempts/request, so 3 failed deliveries)',
      checked: 'pause grows with consecutive failures (base 200 ms here, 5 s in production), then the outbox drains; globex unaffected',
      result: `pauses ${pauses.join(' → ')} ms, then drained`,
    });
  });

  test("one tenant's Jira down for a long time: its outbox waits and drains in order; the other's latency unchanged", async () => {
    const w = makeWorker(t.db, engine(t.db, world), { tickMs: 50, pollLeaseSeconds: 1 }); // a quiet poll's lease lapses in 1 s
    w.start();
    try {
      const measure = async (n: number): Promise<number[]> => {
        const out: number[] = [];
        for (let i = 0; i < n; i++) {
          produce();
          const t0 = Date.now();
          await forcePoll(t.ownerPool);
          await waitFor('globex in Jira', async () => globexInJira(), 20_000, 10);
          out.push(Date.now() - t0);
        }
        return out;
      };
      const baseline = await measure(12);
      world.sim.faults.failNext({ status: 503, site: 'acme', count: 1_000_000 });
      const during = await measure(12);
      const waiting = await outboxSize(t.db, acme.tenantId);
      assert.ok(waiting >= 12, `acme's outbox waits (${waiting})`);
      world.sim.faults.clear();
      await unpauseDeliveries(t.ownerPool);
      await waitFor('acme drained', async () => (await outboxSize(t.db, acme.tenantId)) === 0, 30_000);
      const bp95 = percentile(baseline, 95);
      const dp95 = percentile(during, 95);
      assert.ok(dp95 <= bp95 * 2 + 300, `globex p95 ${dp95} ms during acme's outage vs ${bp95} ms before`);
      await w.stop();
      for (let i = 0; i < 2; i++) {
        acmeStream.drain();
        globexStream.drain();
        await syncRound();
      }
      const a = await assertDelivered(t.db, world, acme);
      await assertDelivered(t.db, world, globex);
      const failed = world.sim.requests({ site: 'acme' }).filter((r) => r.status === 503).length;
      report({
        scenario: "One tenant's Jira down",
        injected: 'every acme Jira request 503 for 12 build rounds (≈ the whole phase), worker running freely (tick 50 ms)',
        checked: "acme's outbox keeps every update and drains afterwards, USN per build never goes back; globex's latency from poll to Jira",
        result: `globex p50/p95 ${percentile(baseline, 50)}/${bp95} ms before vs ${percentile(during, 50)}/${dp95} ms during; acme ${waiting} rows waited (${failed} × 503 answered), drained in order; ${a.builds} builds / ${a.updates} updates`,
        figures: { baseline, during },
      });
    } finally {
      await w.stop();
    }
  });

  test('413: a small request-size limit makes the client split batches; everything arrives', async () => {
    const small = await startJiraWorld(t, { sites: ['tiny'], seed: 8, maxRequestBytes: 6_000 }, [new URL(tc.url).host]);
    try {
      const conn = await connect(t.db, small, 'tiny', await small.install('tiny'), tc);
      const stream = new BuildStream(conn, 41);
      const w = makeWorker(t.db, engine(t.db, small));
      stream.step(60);
      stream.drain();
      tc.advance(20_000);
      for (let i = 0; i < 2; i++) {
        await forcePollIdle(t.ownerPool, [conn.serverId]);
        await round(w);
      }
      await w.stop();
      const r = await assertDelivered(t.db, small, conn);
      const reqs = small.sim.requests({ site: 'tiny' }).filter((q) => q.path === '/rest/builds/0.1/bulk');
      const n413 = reqs.filter((q) => q.status === 413).length;
      assert.ok(n413 > 0, 'some requests were too large');
      report({
        scenario: 'Jira 413',
        injected: 'Jira site with maxRequestBytes 6,000; 60 builds queued at once',
        checked: 'batches split in halves on 413 until they fit; every build accepted once in its final state',
        result: `${reqs.length} bulk requests (${n413} × 413, ${reqs.length - n413} × 202); ${r.builds} builds complete; rejected 0`,
      });
    } finally {
      await small.close();
    }
  });

  test('uninstall while deliveries are pending: nothing more is sent, no crash, the outbox is kept', async () => {
    world.sim.faults.setLatency(400, 'acme');
    for (let i = 0; i < 3; i++) produce();
    await forcePollIdle(t.ownerPool);
    await worker.tick(); // polls
    await worker.idle();
    const pending = await outboxSize(t.db, acme.tenantId);
    assert.ok(pending > 0);
    const delivering = (async () => {
      await worker.tick();
      await worker.idle();
    })();
    await new Promise((r) => setTimeout(r, 150)); // the bulk request is in flight
    const un = await world.sim.uninstallApp('acme');
    assert.ok(un.ok, `uninstall answered ${un.status}`);
    const at = world.sim.requests({ site: 'acme' }).length;
    await delivering;
    for (let i = 0; i < 3; i++) {
      produce();
      await syncRound();
    }
    const afterUninstall = world.sim.requests({ site: 'acme' }).slice(at);
    assert.ok(afterUninstall.every((r) => r.kind !== 'api'), `API calls after uninstall: ${afterUninstall.map((r) => `${r.method} ${r.path} ${r.status}`).join(", ")}`);
    assert.ok(globexInJira(), 'globex still delivered');
    const kept = await outboxSize(t.db, acme.tenantId);
    report({
      scenario: 'Uninstall race',
      injected: 'acme uninstalled while a bulk request (400 ms latency) is in flight and updates are queued',
      checked: 'in-flight request ends (401 or ok), then zero API calls to acme in 3 more rounds, worker alive, globex delivered',
      result: `${pending} updates pending at uninstall; 0 API calls afterwards; ${kept} rows kept for a reinstall; ${sentToJira(world, 'globex').length} globex updates delivered overall`,
    });
  });
});
