// Process faults during steady sync: real `tcj worker` processes SIGKILLed at random points while
// TeamCity keeps producing builds (test/sync/crash.test.ts does 8 kills during a backfill; these are
// 12 more in steady state), and PostgreSQL stopped and started again under load (a separate embedded
// PostgreSQL in a temp DATA_DIR behind a TCP proxy standing in for the database's DNS name: the
// restarted server comes up on another port, as a failover would).
// Two workers claiming the same work: test/sync/workers.test.ts.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { createPool, Database } from '../../src/db/database.ts';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createTestDatabase, quietLog, type TestDatabase } from '../helpers/db.ts';
import { startJiraWorld, type JiraWorld } from '../helpers/jira-app.ts';
import { freePort } from '../helpers/net.ts';
import { assertDelivered, BuildStream, connect, engine, expireLeases, forcePoll, maintenance, makeWorker, outboxSize, prng, report, waitFor, type Conn } from './harness.ts';

const KILLS = Number(process.env.REL_KILLS ?? 12);
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

async function startWorker(t: TestDatabase, world: JiraWorld, tcs: TeamCitySimulator[]): Promise<{ child: ChildProcess; exited: Promise<number | null>; output: () => string }> {
  const port = await freePort(); // the worker serves /healthz and /metrics
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'worker'], {
    env: {
      ...process.env,
      DATABASE_URL: t.ownerUrl,
      DATABASE_APP_URL: t.appUrl,
      KEYRING_FILE: world.keyringFile,
      OUTBOUND_ALLOW_HOSTS: [...tcs.map((s) => new URL(s.url).host), new URL(world.sim.url).host].join(','),
      LOG_LEVEL: 'warn',
      PORT: String(port),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  return { child, exited: new Promise((r) => child.on('exit', (code) => r(code))), output: () => out };
}

async function jiraUpdates(world: JiraWorld, site: string): Promise<number> {
  return world.sim.requests({ site }).filter((r) => r.path === '/rest/builds/0.1/bulk' && r.status === 202).length;
}

describe('process faults', () => {
  test(`SIGKILL of worker processes at ${KILLS} random points during steady sync loses nothing`, { timeout: 240_000 }, async () => {
    const t = await createTestDatabase();
    cleanups.push(() => t.drop());
    const tc = await startTeamCitySimulator({ seed: 51, utcOffsetMinutes: 120 });
    cleanups.push(() => tc.close());
    const world = await startJiraWorld(t, { sites: ['acme', 'globex'] }, [new URL(tc.url).host]);
    cleanups.push(() => world.close());
    const conns: Conn[] = [];
    for (const site of ['acme', 'globex']) {
      const tenantId = await world.install(site);
      for (let i = 0; i < 2; i++) conns.push(await connect(t.db, world, site, tenantId, tc, i ? 'token' : 'basic'));
    }
    const streams = conns.map((c, i) => new BuildStream(c, 60 + i));
    const rnd = prng(2026);
    const kills: { afterMs: number; updatesDuringRun: number }[] = [];
    for (let i = 0; i < KILLS; i++) {
      const w = await startWorker(t, world, [tc]);
      cleanups.push(async () => void w.child.kill('SIGKILL'));
      const before = (await jiraUpdates(world, 'acme')) + (await jiraUpdates(world, 'globex'));
      // A steady stream: a build step every 100 ms, every server due at once.
      let producing = true;
      const producer = (async () => {
        while (producing) {
          for (const s of streams) s.step();
          tc.advance(15_000);
          await forcePoll(t.ownerPool);
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      // Kill at a random moment once this worker has delivered something (start-up time varies).
      await waitFor('worker progress', async () => (await jiraUpdates(world, 'acme')) + (await jiraUpdates(world, 'globex')) > before, 60_000, 50).catch(async (err: unknown) => {
        const state = await maintenance(t.ownerPool, 'SELECT * FROM delivery_state');
        const sync = await maintenance(t.ownerPool, 'SELECT server_id, next_poll_at, lease_owner, lease_until, last_error, consecutive_failures FROM sync_state');
        throw new Error(`${(err as Error).message}; exit ${w.child.exitCode}; delivery ${JSON.stringify(state)}; sync ${JSON.stringify(sync)}\n${w.output()}`);
      });
      const afterMs = Math.floor(rnd() * 1500);
      await new Promise((r) => setTimeout(r, afterMs));
      producing = false;
      await producer;
      assert.equal(w.child.exitCode, null, `worker exited on its own:\n${w.output()}`);
      w.child.kill('SIGKILL');
      await w.exited;
      kills.push({ afterMs, updatesDuringRun: (await jiraUpdates(world, 'acme')) + (await jiraUpdates(world, 'globex')) - before });
      await expireLeases(t.ownerPool); // what a restarted worker finds once the dead one's leases ran out
    }
    // A last worker to the end: finish everything, let it catch up, stop it cleanly.
    for (const s of streams) s.drain();
    tc.advance(15_000);
    const w = await startWorker(t, world, [tc]);
    cleanups.push(async () => void w.child.kill('SIGKILL'));
    const done = async () => {
      for (const c of conns) {
        const site = world.sim.site(c.site);
        const jira = new Map([...site.builds.values()].filter((b) => b.pipelineId.startsWith(`${c.serverId}/`)).map((b) => [b.buildNumber, b.data.state]));
        if (![...c.builds].every(([id, state]) => jira.get(id) === state)) return false;
        if ((await outboxSize(t.db, c.tenantId)) > 0) return false;
      }
      return true;
    };
    await waitFor('final catch-up', async () => {
      await forcePoll(t.ownerPool);
      return done();
    }, 60_000, 300).catch(async (err: unknown) => {
      for (const c of conns) await assertDelivered(t.db, world, c); // says what is missing
      throw err;
    });
    w.child.kill('SIGTERM');
    assert.equal(await w.exited, 0, w.output());
    let builds = 0;
    let updates = 0;
    let resent = 0;
    for (const c of conns) {
      const r = await assertDelivered(t.db, world, c);
      builds += r.builds;
      updates += r.updates;
      resent += r.resent;
    }
    assert.deepEqual(world.sim.unexpectedCalls(), []);
    report({
      scenario: 'SIGKILL during steady sync',
      injected: '12 SIGKILLs of a `tcj worker` process at random moments (0–1.5 s after its first delivery) while 4 servers of 2 tenants produce a build step every 100 ms',
      checked: 'after restarts (leases expired) every build is in Jira in its final state with the last assigned USN; no older update after a newer one',
      result: `${builds} builds, ${updates} build updates received by Jira, ${resent} harmless re-sends of the same USN; kills at ${kills.map((k) => k.afterMs).join(',')} ms`,
    });
  });

  test('PostgreSQL stopped and restarted under load: the worker recovers, nothing lost', { timeout: 180_000 }, async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'tcj-rel-pg-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    let pg: EmbeddedDatabase = await startEmbeddedPostgres({ dataDir, log: quietLog });
    cleanups.push(() => pg.stop());
    // The proxy: a stable address in front of whichever port PostgreSQL listens on now.
    let upstream = Number(new URL(pg.ownerUrl).port);
    let up = true;
    const sockets = new Set<net.Socket>();
    const proxy = net.createServer((client) => {
      if (!up) return client.destroy();
      const server = net.connect(upstream, '127.0.0.1');
      sockets.add(client).add(server);
      const end = () => {
        client.destroy();
        server.destroy();
        sockets.delete(client);
        sockets.delete(server);
      };
      client.on('error', end).on('close', end);
      server.on('error', end).on('close', end);
      client.pipe(server).pipe(client);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => proxy.close(() => r())));
    const proxyPort = (proxy.address() as net.AddressInfo).port;
    const via = (url: string) => {
      const u = new URL(url);
      u.port = String(proxyPort);
      return u.toString();
    };
    await migrate(pg.ownerUrl, quietLog);
    const db = new Database(createPool(via(pg.appUrl), { max: 5 }));
    const ownerPool = createPool(via(pg.ownerUrl), { max: 2 });
    const t: TestDatabase = { name: 'tcj', adminUrl: pg.superuserUrl, ownerUrl: via(pg.ownerUrl), appUrl: via(pg.appUrl), db, ownerPool, drop: async () => undefined };
    cleanups.push(async () => {
      await db.close();
      await ownerPool.end();
    });

    const tc = await startTeamCitySimulator({ seed: 71 });
    cleanups.push(() => tc.close());
    const world = await startJiraWorld(t, { sites: ['acme', 'globex'] }, [new URL(tc.url).host]);
    cleanups.push(() => world.close());
    const conns: Conn[] = [];
    for (const site of ['acme', 'globex']) conns.push(await connect(db, world, site, await world.install(site), tc));
    const streams = conns.map((c, i) => new BuildStream(c, 80 + i));
    const worker = makeWorker(db, engine(db, world), { tickMs: 100 });
    worker.start();
    cleanups.push(() => worker.stop());

    let producing = true;
    let forceErrors = 0;
    const producer = (async () => {
      while (producing) {
        for (const s of streams) s.step();
        tc.advance(15_000);
        await forcePoll(ownerPool).catch(() => forceErrors++);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await new Promise((r) => setTimeout(r, 2_000));
    // Stop PostgreSQL (fast shutdown: sessions are terminated), keep it down for 3 s, start it again.
    const t0 = Date.now();
    up = false;
    await pg.stop();
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 3_000));
    pg = await startEmbeddedPostgres({ dataDir, log: quietLog });
    upstream = Number(new URL(pg.ownerUrl).port);
    up = true;
    const downMs = Date.now() - t0;
    await new Promise((r) => setTimeout(r, 3_000));
    producing = false;
    await producer;
    for (const s of streams) s.drain();
    tc.advance(15_000);
    const recoveredAt = Date.now();
    let totals = { builds: 0, updates: 0 };
    await waitFor('catch-up after the restart', async () => {
      await forcePoll(ownerPool).catch(() => undefined);
      try {
        totals = { builds: 0, updates: 0 };
        for (const c of conns) {
          const r = await assertDelivered(db, world, c);
          totals.builds += r.builds;
          totals.updates += r.updates;
        }
        return true;
      } catch {
        return false;
      }
    }, 60_000, 300);
    const catchUpMs = Date.now() - recoveredAt;
    await worker.stop();
    assert.ok(forceErrors > 0, 'the database really was unreachable');
    report({
      scenario: 'PostgreSQL restart under load',
      injected: 'embedded PostgreSQL stopped (sessions terminated) for 3 s and started again (new port, behind a TCP proxy) while 2 tenants produce builds every 100 ms',
      checked: 'worker keeps running (claims fail and are retried), pool reconnects, every build in Jira in its final state, no older update after newer',
      result: `down ${downMs} ms (${forceErrors} statements refused meanwhile); caught up ${catchUpMs} ms after the drain; ${totals.builds} builds / ${totals.updates} updates complete`,
    });
  });
});
