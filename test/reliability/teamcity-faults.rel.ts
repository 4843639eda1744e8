// TeamCity misbehaving: 5xx bursts, timeouts and slow answers, connections reset mid-body, malformed
// JSON, an HTML login page, changed credentials, a long outage, and server clocks hours ahead of or
// behind ours. Tenant "acme" polls the faulty simulator; tenant "globex" polls a healthy one through
// the same worker and must not notice. Each scenario ends with every build in Jira exactly as
// TeamCity has it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { updateCredentials } from '../../src/sync/servers.ts';
import type { SyncWorker } from '../../src/sync/worker.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startJiraWorld, type JiraWorld } from '../helpers/jira-app.ts';
import { assertDelivered, BuildStream, connect, engine, forcePollIdle, health, HOUR, makeWorker, report, round, type Conn } from './harness.ts';

let t: TestDatabase;
let world: JiraWorld;
let bad: TeamCitySimulator;
let good: TeamCitySimulator;
let worker: SyncWorker;
let acme: Conn;
let globex: Conn;
let acmeStream: BuildStream;
let globexStream: BuildStream;
/** Real-time simulators whose clocks are hours ahead of / behind ours. */
const skewed = new Map<number, TeamCitySimulator>();

/** One round for everybody; returns how long globex's builds took to reach Jira. */
async function syncRound(): Promise<number> {
  const started = Date.now();
  await forcePollIdle(t.ownerPool);
  await round(worker);
  return Date.now() - started;
}

/** Both streams produce a build, TeamCity time moves on a little. */
function produce(): void {
  acmeStream.step();
  globexStream.step();
  bad.advance(20_000);
  good.advance(20_000);
}

/** Faults off, a few clean rounds to finish everything in flight, then the full check on both tenants. */
async function settleAndCheck(): Promise<{ acme: Awaited<ReturnType<typeof assertDelivered>>; globex: Awaited<ReturnType<typeof assertDelivered>> }> {
  bad.faults.clear();
  for (let i = 0; i < 3; i++) {
    acmeStream.drain();
    globexStream.drain();
    bad.advance(20_000);
    good.advance(20_000);
    await syncRound();
  }
  assert.equal((await health(t.db, acme)).state, 'ok');
  return { acme: await assertDelivered(t.db, world, acme), globex: await assertDelivered(t.db, world, globex) };
}

before(async () => {
  t = await createTestDatabase();
  bad = await startTeamCitySimulator({ utcOffsetMinutes: 180, seed: 5 });
  good = await startTeamCitySimulator({ utcOffsetMinutes: -420, seed: 6 });
  for (const h of [9, -9]) skewed.set(h, await startTeamCitySimulator({ realTime: true, startTime: Date.now() + h * HOUR, utcOffsetMinutes: h > 0 ? 330 : -300, seed: 9 }));
  const hosts = [bad, good, ...skewed.values()].map((s) => new URL(s.url).host);
  world = await startJiraWorld(t, { sites: ['acme', 'globex'] }, hosts);
  const acmeId = await world.install('acme');
  const globexId = await world.install('globex');
  acme = await connect(t.db, world, 'acme', acmeId, bad);
  globex = await connect(t.db, world, 'globex', globexId, good);
  acmeStream = new BuildStream(acme, 11);
  globexStream = new BuildStream(globex, 12);
  // Client timeout 500 ms, 2 attempts (production: 30 s, 4): the same logic at test speed.
  worker = makeWorker(t.db, engine(t.db, world));
  await syncRound(); // first polls set the cursors
});

after(async () => {
  await worker.stop();
  await world.close();
  await bad.close();
  await good.close();
  for (const s of skewed.values()) await s.close();
  await t.drop();
});

describe('TeamCity faults', () => {
  test('5xx bursts: degraded, then ok; builds finished meanwhile all arrive', async () => {
    const states: string[] = [];
    let globexMs = 0;
    for (let i = 0; i < 3; i++) {
      produce();
      // 2 attempts per request: two 503s fail a poll.
      if (i < 2) bad.faults.failNext(2, 503);
      globexMs = Math.max(globexMs, await syncRound());
      states.push((await health(t.db, acme)).state);
    }
    assert.deepEqual(states, ['degraded', 'degraded', 'ok']);
    bad.faults.failNext(1, 502); // a single 5xx is absorbed by the client's retry
    produce();
    await syncRound();
    assert.equal((await health(t.db, acme)).state, 'ok');
    const r = await settleAndCheck();
    report({
      scenario: 'TeamCity 5xx burst',
      injected: '2×503 on two consecutive polls, then 1×502 (client: 2 attempts/request)',
      checked: 'health degraded → ok; a single 5xx absorbed by retry; all builds in Jira, final state, no older update after newer',
      result: `states ${states.join(' → ')}; acme ${r.acme.builds} builds / ${r.acme.updates} updates, globex ${r.globex.builds} builds unaffected (round ≤ ${globexMs} ms)`,
    });
  });

  test('timeouts (2 s latency vs 500 ms client timeout) and slow answers under the timeout', async () => {
    bad.faults.setLatency(2_000);
    produce();
    const t0 = Date.now();
    await syncRound();
    const failedPollMs = Date.now() - t0;
    const h = await health(t.db, acme);
    assert.equal(h.state, 'degraded');
    assert.match(h.last_error ?? '', /time|abort/i);
    // globex's builds of that round are already in Jira although acme's poll was stuck in timeouts.
    const g = await assertDelivered(t.db, world, globex);
    bad.faults.setLatency(300); // slow but under the timeout: polls succeed
    produce();
    const t1 = Date.now();
    await syncRound();
    const slowPollMs = Date.now() - t1;
    assert.equal((await health(t.db, acme)).state, 'ok');
    const r = await settleAndCheck();
    report({
      scenario: 'TeamCity timeouts and slow answers',
      injected: '2 s latency on every request (client timeout 500 ms, 2 attempts); then 300 ms latency',
      checked: 'poll fails fast with a timeout (degraded), other tenant delivered in the same round; 300 ms latency polls succeed; nothing lost',
      result: `timed-out round ${failedPollMs} ms, slow round ${slowPollMs} ms; globex ${g.builds} builds delivered during the timeouts; acme ${r.acme.builds} builds complete`,
    });
  });

  test('connection reset mid-body, malformed JSON, HTML login page', async () => {
    const seen: Record<string, string> = {};
    for (const kind of ['reset', 'malformedJson', 'htmlLogin'] as const) {
      // Once: absorbed or failing one poll; the next poll recovers. Twice in a row on /builds: a failed poll.
      bad.faults.inject({ kind, count: 2, path: '/app/rest/builds' });
      produce();
      await syncRound();
      const h = await health(t.db, acme);
      assert.notEqual(h.state, 'auth_failed', `${kind} must not be taken for a credentials problem`);
      let polls = 1;
      while ((await health(t.db, acme)).state !== 'ok' && polls < 3) {
        produce();
        await syncRound();
        polls++;
      }
      assert.equal((await health(t.db, acme)).state, 'ok', `${kind}: recovers once the fault stops`);
      seen[kind] = `${h.state} (${(h.last_error ?? '').slice(0, 70)}), ok after ${polls} polls`;
    }
    const r = await settleAndCheck();
    report({
      scenario: 'TeamCity broken responses',
      injected: 'reset after half the body / truncated JSON / 200 text/html login page, twice in a row on /app/rest/builds',
      checked: 'the poll fails without advancing the cursor (no auth_failed), recovers next poll; nothing lost or duplicated',
      result: `${Object.entries(seen).map(([k, v]) => `${k}: ${v}`).join('; ')}; acme ${r.acme.builds} builds / ${r.acme.updates} updates complete`,
    });
  });

  test('credentials changed: auth_failed, no polls, fixed by new credentials, nothing missed', async () => {
    bad.model.changePassword(acme.username, 'rotated-by-admin-1');
    produce();
    await syncRound();
    assert.equal((await health(t.db, acme)).state, 'auth_failed');
    bad.clearRequests();
    for (let i = 0; i < 3; i++) {
      produce();
      await syncRound(); // forced due, still not claimed
    }
    assert.equal(bad.requests().length, 0, 'no request to TeamCity while auth_failed');
    await t.db.withTenant(acme.tenantId, (tx) =>
      updateCredentials(tx, world.secrets, acme.tenantId, acme.serverId, { type: 'basic', username: acme.username, password: 'rotated-by-admin-1' }),
    );
    await syncRound();
    assert.equal((await health(t.db, acme)).state, 'ok');
    const r = await settleAndCheck();
    report({
      scenario: 'TeamCity credentials changed',
      injected: "service account's password changed in TeamCity (every request 401)",
      checked: 'auth_failed after one poll, zero TeamCity requests in 3 forced rounds, new credentials → ok; builds finished meanwhile all arrive',
      result: `auth_failed → ok; 0 requests while auth_failed; acme ${r.acme.builds} builds complete`,
    });
  });

  test('TeamCity gone for 8 polls (hangs, then 503s) over 6 server hours: degraded → failing, backoff grows, nothing missed on return', async () => {
    bad.model.addChange({ vcsRootId: acme.vcsRootId, comment: 'TCJ-4 a long migration', branch: 'main' });
    const longBuild = bad.model.queueBuild({ buildTypeId: acme.buildTypeId, branch: 'main' });
    bad.model.startBuild(longBuild.id);
    acme.builds.set(longBuild.id, 'failed');
    await syncRound();
    const states: string[] = [];
    const backoffs: number[] = [];
    for (let i = 0; i < 8; i++) {
      if (i < 4) bad.faults.inject({ kind: 'hang', count: 2 });
      else bad.faults.inject({ kind: 'status', status: 503, count: 2 });
      for (let k = 0; k < 3; k++) produce();
      bad.advance(45 * 60_000);
      await syncRound();
      const h = await health(t.db, acme);
      states.push(h.state);
      backoffs.push(h.backoff_s);
    }
    assert.deepEqual(states, ['degraded', 'degraded', 'failing', 'failing', 'failing', 'failing', 'failing', 'failing']);
    // last_poll_at is when the failed poll was claimed; the backoff counts from its failure, up to
    // two seconds later (the hung requests' timeouts).
    const expected = [15, 30, 60, 120, 240, 480, 960, 1800];
    assert.ok(
      backoffs.every((b, i) => b - expected[i]! >= 0 && b - expected[i]! <= 2),
      `backoff doubles from 15 s up to the 30 min cap: ${JSON.stringify(backoffs)}`,
    );
    bad.model.finishBuild(longBuild.id, { status: 'FAILURE' }); // the long build ends during the outage
    const r = await settleAndCheck();
    report({
      scenario: 'TeamCity down for a long time',
      injected: '8 consecutive failed polls (4 hanging, 4 × 503), 6 h of TeamCity time, 24 builds + 1 long build finishing meanwhile',
      checked: 'health degraded → failing, next poll delay doubles to the 30 min cap, first poll after return brings every build',
      result: `states ${states.join(',')}; backoff ${backoffs.join(',')} s; then ok; acme ${r.acme.builds} builds complete, globex unaffected (${r.globex.builds})`,
    });
  });

  for (const skewH of [+9, -9]) {
    test(`TeamCity clock ${skewH > 0 ? 'ahead of' : 'behind'} ours by ${Math.abs(skewH)} h (real-time clock)`, async () => {
      const sim = skewed.get(skewH)!;
      {
        const tenantId = await world.install(`skew${skewH > 0 ? 'a' : 'b'}`);
        const c = await connect(t.db, world, `skew${skewH > 0 ? 'a' : 'b'}`, tenantId, sim);
        const w = makeWorker(t.db, engine(t.db, world, {}), {});
        const stream = new BuildStream(c, 40 + skewH);
        try {
          for (let i = 0; i < 6; i++) {
            stream.step(2);
            await new Promise((r) => setTimeout(r, 150)); // real time passes on the server clock
            await forcePollIdle(t.ownerPool, [c.serverId]);
            await round(w);
          }
          for (let i = 0; i < 3; i++) {
            stream.drain();
            await forcePollIdle(t.ownerPool, [c.serverId]);
            await round(w);
          }
          const r = await assertDelivered(t.db, world, c);
          report({
            scenario: `Clock skew ${skewH > 0 ? '+' : ''}${skewH} h`,
            injected: `TeamCity clock ${skewH} h from ours (real time), time zone UTC${skewH > 0 ? '+05:30' : '−05:00'}`,
            checked: 'cursor from the server clock: every build finished between polls reaches Jira',
            result: `${r.builds} builds / ${r.updates} updates, none missed`,
          });
        } finally {
          await w.stop();
        }
      }
    });
  }
});
