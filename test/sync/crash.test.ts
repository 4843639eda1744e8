// Crash safety: a real `tcj worker` process is SIGKILLed at random points during the backfill of a
// 5,000+ build history, restarted each time, and Jira must end with every build exactly as TeamCity
// has it — none missing, none stale.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { createServer, requestBackfill } from '../../src/sync/servers.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startJiraWorld, type JiraWorld, addGeneratedHistoryProjects } from '../helpers/jira-app.ts';
import { freePort } from '../helpers/net.ts';

let t: TestDatabase;
let world: JiraWorld;
let tc: TeamCitySimulator;
let tenantId: string;
const serverId = randomUUID();
const DAY = 24 * 3600_000;

async function startWorker(): Promise<{ child: ChildProcess; port: number; exited: Promise<number | null>; output: () => string }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'worker'], {
    env: {
      ...process.env,
      PORT: String(port), // workers serve /healthz, /readyz and /metrics
      DATABASE_URL: t.ownerUrl,
      DATABASE_APP_URL: t.appUrl,
      KEYRING_FILE: world.keyringFile,
      OUTBOUND_ALLOW_HOSTS: `${new URL(tc.url).host},${new URL(world.sim.url).host}`,
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  return { child, port, exited: new Promise((r) => child.on('exit', (code) => r(code))), output: () => out };
}

/** What the restarted worker finds after a crash, once the dead worker's leases have run out. */
async function expireLeases(): Promise<void> {
  const c = new pg.Client({ connectionString: t.ownerUrl });
  await c.connect();
  try {
    await c.query('BEGIN');
    await c.query('SET LOCAL ROLE tcj_maintenance');
    await c.query(`UPDATE sync_state SET lease_until = now() - interval '1 second' WHERE lease_until IS NOT NULL`);
    await c.query(`UPDATE delivery_state SET lease_until = now() - interval '1 second' WHERE lease_until IS NOT NULL`);
    await c.query('COMMIT');
  } finally {
    await c.end();
  }
}

async function progress(): Promise<{ done: boolean; pending: number; recorded: number }> {
  return t.db.withTenant(tenantId, async (tx) =>
    (await tx.query<{ done: boolean; pending: number; recorded: number }>(
      `SELECT (backfill_finished_at IS NOT NULL) AS done, (SELECT count(*) FROM outbox)::int AS pending,
              (SELECT count(*) FROM builds)::int AS recorded FROM sync_state`,
    )).rows[0]!,
  );
}

before(async () => {
  t = await createTestDatabase();
  tc = await startTeamCitySimulator({ utcOffsetMinutes: 60, version: '2023.11' });
  world = await startJiraWorld(t, { sites: ['acme'] }, [new URL(tc.url).host]);
  tenantId = await world.install('acme');
  addGeneratedHistoryProjects(world, 'acme');
  tc.generateHistory({ seed: 21, projects: 3, buildTypesPerProject: 4, buildsPerType: 450, periodMs: 60 * DAY });
  // Real-world latency stretches each backfill window over many requests, so that kills land inside
  // windows and not only between them (a window is recorded in one transaction).
  tc.faults.setLatency(25);
  const token = tc.model.addToken('admin');
  await t.db.withTenant(tenantId, async (tx) => {
    await createServer(tx, world.secrets, tenantId, { id: serverId, name: 'TC', url: tc.url, auth: { type: 'token', token } });
    await requestBackfill(tx, serverId, new Date(tc.model.now() - 61 * DAY));
  });
});

after(async () => {
  await world.close();
  await tc.close();
  await t.drop();
});

test('SIGKILL at random points during a 5,000-build backfill loses nothing and leaves nothing stale', { timeout: 240_000 }, async (ctx) => {
  // Deterministic "random" kill times.
  let seed = 7;
  const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const kills: { afterMs: number; recorded: number; done: boolean }[] = [];
  let before = (await progress()).recorded;
  for (let i = 0; i < 8; i++) {
    if (kills.at(-1)?.done) break;
    const w = await startWorker();
    // Kill at a random moment once this run has made progress (start-up time varies by machine).
    const deadline = Date.now() + 20_000;
    while ((await progress()).recorded <= before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const afterMs = Math.floor(next() * 800);
    await new Promise((r) => setTimeout(r, afterMs));
    assert.equal(w.child.exitCode, null, `worker exited on its own:\n${w.output()}`);
    w.child.kill('SIGKILL');
    await w.exited;
    const at = await progress();
    kills.push({ afterMs, recorded: at.recorded, done: at.done && at.pending === 0 });
    before = at.recorded;
    await expireLeases();
  }
  // A last run to the end.
  const w = await startWorker();
  const until = Date.now() + 150_000;
  let p = await progress();
  while (!(p.done && p.pending === 0) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    p = await progress();
  }
  // A worker serves its own metrics: the TeamCity and Jira calls are counted where they happen. The
  // backfill may have ended before this worker started: wait until it is up and has polled once.
  let metrics = '';
  const polled = Date.now() + 60_000;
  while (!/tcj_polls_total\{result="ok"\} [1-9]/.test(metrics) && Date.now() < polled) {
    metrics = await fetch(`http://127.0.0.1:${w.port}/metrics`).then((r) => r.text(), () => '');
    if (!metrics) await new Promise((r) => setTimeout(r, 250));
    else if (!/tcj_polls_total\{result="ok"\} [1-9]/.test(metrics)) await new Promise((r) => setTimeout(r, 500));
  }
  assert.match(metrics, /tcj_teamcity_request_duration_seconds_count\{[^}]*endpoint="\/app\/rest\/builds"/);
  assert.match(metrics, /tcj_polls_total\{result="ok"\} [1-9]/);
  assert.match(metrics, /tcj_poll_lag_seconds_count [1-9]/);
  assert.match(metrics, /tcj_outbox_rows 0\n/, 'the outbox drained');
  assert.match(metrics, /tcj_outbox_oldest_age_seconds 0\n/);
  assert.equal((await fetch(`http://127.0.0.1:${w.port}/readyz`)).status, 200);
  assert.equal((await fetch(`http://127.0.0.1:${w.port}/atlassian-connect.json`)).status, 404, 'no Jira-facing routes on a worker');
  w.child.kill('SIGTERM');
  assert.equal(await w.exited, 0, w.output());
  assert.ok(p.done && p.pending === 0, `backfill did not finish: ${JSON.stringify(p)}; kills ${JSON.stringify(kills)}\n${w.output()}`);
  const midway = kills.filter((k) => !k.done);
  assert.ok(midway.length >= 3, `too few kills happened mid-backfill: ${JSON.stringify(kills)}`);

  const expected = [...tc.model.builds.values()].filter((b) => b.state === 'finished' && !b.personal && b.startDate !== null && b.startDate > tc.model.now() - 61 * DAY);
  assert.ok(expected.length >= 5000, `history has ${expected.length} finished builds`);
  const recorded = await t.db.withTenant(tenantId, async (tx) =>
    (await tx.query<{ build_id: string; kind: string; jira_state: string; issue_keys: string[]; last_usn: string | null; tc_state: string }>(
      'SELECT build_id, kind, jira_state, issue_keys, last_usn, tc_state FROM builds',
    )).rows,
  );
  const byId = new Map(recorded.map((r) => [Number(r.build_id), r]));
  assert.deepEqual(expected.filter((b) => !byId.has(b.id)).map((b) => b.id), [], 'finished builds missing');

  // Jira holds exactly the latest version of every build we sent: same state, same sequence number.
  const site = world.sim.site('acme');
  const jiraBuilds = new Map([...site.builds.values()].map((b) => [b.buildNumber, b]));
  const jiraDeployments = new Map([...site.deployments.values()].map((d) => [d.deploymentSequenceNumber, d]));
  let checked = 0;
  for (const r of recorded) {
    if (r.last_usn === null || r.issue_keys.length === 0) continue;
    const inJira = r.kind === 'build' ? jiraBuilds.get(Number(r.build_id)) : jiraDeployments.get(Number(r.build_id));
    assert.ok(inJira, `${r.kind} ${r.build_id} missing in Jira`);
    assert.equal(inJira.data.state, r.jira_state, `${r.kind} ${r.build_id} state`);
    assert.equal(String(inJira.updateSequenceNumber), r.last_usn, `${r.kind} ${r.build_id} is stale in Jira`);
    checked++;
  }
  assert.ok(checked > 3000, `checked ${checked} builds`);
  ctx.diagnostic(`kills: ${JSON.stringify(kills)}; ${expected.length} builds, ${checked} checked in Jira`);
  assert.deepEqual(world.sim.unexpectedCalls(), []);
});
