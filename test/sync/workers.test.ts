// Several workers on one database (design.md §1): three Jira tenants × two TeamCity servers each (two
// simulators: one at UTC−07:00, one at UTC+02:00 and slow), two and then four SyncWorker instances —
// each with its own connection pool, as separate processes would have — claiming work concurrently
// while TeamCity keeps producing builds. Proves: no server is polled by two workers at once, no tenant
// is delivered by two workers at once, the load is really shared, and Jira never receives an older
// update of a build after a newer one and ends with TeamCity's final state.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { Build } from '../../sandbox/teamcity/model.ts';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import type pg from 'pg';
import { createPool, Database, type QueryParams, type Tx } from '../../src/db/database.ts';
import type { TcBuild } from '../../src/teamcity/types.ts';
import { jiraBuildState } from '../../src/sync/build-state.ts';
import { deliverTenant } from '../../src/sync/deliverer.ts';
import { pollServer, type PollerDeps } from '../../src/sync/poller.ts';
import { createServer } from '../../src/sync/servers.ts';
import { SyncWorker } from '../../src/sync/worker.ts';
import { createTestDatabase, quietLog, type TestDatabase } from '../helpers/db.ts';
import { APP_KEY, startJiraWorld, type JiraWorld } from '../helpers/jira-app.ts';

const SITES = ['alpha', 'beta', 'gamma'];
const BRANCHES = ['main', 'feature/TCJ-1-login', 'bugfix/TCJ-2-crash', 'feature/DEMO-3-x'];

interface Connection {
  tenantId: string;
  site: string;
  serverId: string;
  sim: TeamCitySimulator;
}

interface Span {
  kind: 'poll' | 'deliver';
  key: string;
  worker: string;
  start: number;
  end: number;
}

let t: TestDatabase;
let world: JiraWorld;
let sims: TeamCitySimulator[] = [];
const connections: Connection[] = [];
const tenantBySite = new Map<string, string>();

// ------------------------------------------------------------------------------------------------
// Instrumentation: a logical clock (the event loop is single-threaded, so a counter orders events
// exactly) and the span of every task. A span starts when the worker starts the task (after its claim
// returned) and ends when the task issues the query that gives its lease back — the last thing a poll
// or a delivery does, and what another worker's claim has to wait for. (Ending at the task's promise
// instead would be wrong by one I/O event: another worker's claim result can be read from its socket
// before this worker reads the COMMIT of its release.)

let clock = 0;
const spans: Span[] = [];
const open = new Map<string, Span>();
const violations: string[] = [];

function begin(kind: Span['kind'], key: string, worker: string): Span {
  const k = `${kind}:${key}`;
  const running = open.get(k);
  if (running) violations.push(`${kind} of ${key} started by ${worker} while ${running.worker} was still running it`);
  const span: Span = { kind, key, worker, start: ++clock, end: Number.POSITIVE_INFINITY };
  open.set(k, span);
  spans.push(span);
  return span;
}

function close(span: Span): void {
  if (span.end !== Number.POSITIVE_INFINITY) return;
  span.end = ++clock;
  const k = `${span.kind}:${span.key}`;
  if (open.get(k) === span) open.delete(k);
}

/** The lease of `key` held by `worker` is being given back: its open span ends now. */
function released(kind: Span['kind'], key: string, worker: string): void {
  const span = open.get(`${kind}:${key}`);
  if (span?.worker === worker) close(span);
}

async function instrumented(kind: Span['kind'], key: string, worker: string, task: () => Promise<unknown>): Promise<void> {
  const span = begin(kind, key, worker);
  try {
    await task();
  } finally {
    close(span); // no-op when the lease release already ended it
  }
}

/** A worker's database handle that reports the moment a poll or delivery lease is given back. */
class ObservedDatabase extends Database {
  override withTenant<T>(tenantId: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
    return super.withTenant(tenantId, (tx) =>
      fn({
        query: <R extends pg.QueryResultRow>(sql: string, params?: QueryParams) => {
          const [key, worker] = (params ?? []) as [string, string];
          // The lease goes back either with the poll's final cursor update or in a separate release.
          if (/UPDATE sync_state SET[\s\S]*lease_owner = NULL/.test(sql)) released('poll', key, worker);
          if (/UPDATE delivery_state SET lease_owner = NULL/.test(sql)) released('deliver', key, worker);
          return tx.query<R>(sql, params);
        },
      }),
    );
  }
}

/** Each phase is judged on its own spans. */
function newPhase(): void {
  spans.length = 0;
  violations.length = 0;
  open.clear();
}

/** Pairs of spans of the same kind and key that overlap in time. */
function overlaps(kind: Span['kind']): string[] {
  const byKey = new Map<string, Span[]>();
  for (const s of spans) if (s.kind === kind) byKey.set(s.key, [...(byKey.get(s.key) ?? []), s]);
  const out: string[] = [];
  for (const [key, list] of byKey) {
    const sorted = [...list].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1]!;
      const cur = sorted[i]!;
      if (cur.start < prev.end) out.push(`${kind} ${key}: ${prev.worker} [${prev.start},${prev.end}] overlaps ${cur.worker} [${cur.start},${cur.end}]`);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Workers: each with its own pool (a separate process in production), driven by start() with a short tick.

interface RunningWorker {
  worker: SyncWorker;
  db: Database;
}

function startWorker(workerId: string): RunningWorker {
  const db = new ObservedDatabase(createPool(t.appUrl, { max: 4, applicationName: workerId }));
  const deps: PollerDeps = {
    db,
    secrets: world.secrets,
    dispatcher: world.dispatcher,
    log: quietLog,
    settings: { activeIntervalMs: 0, idleIntervalMs: 0 },
    teamcity: { timeoutMs: 10_000, maxAttempts: 2, retryBaseMs: 10 },
  };
  const worker = new SyncWorker(
    db,
    {
      poll: (tid, sid, wid) => instrumented('poll', sid, wid.token, () => pollServer(deps, tid, sid, wid)),
      deliver: (tid, wid) =>
        instrumented('deliver', tid, wid, () => deliverTenant({ db, tenants: world.tenants, appKey: APP_KEY, dispatcher: world.dispatcher, log: quietLog }, tid, wid)),
    },
    quietLog,
    // Few slots per worker, so that no single worker can take every due server in one tick.
    { workerId, tickMs: 3, maxConcurrentPolls: 2, maxConcurrentDeliveries: 1 },
  );
  worker.start();
  return { worker, db };
}

async function stopWorkers(ws: RunningWorker[]): Promise<void> {
  await Promise.all(ws.map((w) => w.worker.stop()));
  await Promise.all(ws.map((w) => w.db.close()));
}

// ------------------------------------------------------------------------------------------------
// TeamCity activity: a deterministic script per round on every simulator.

let roundNo = 0;

/** The span clock when the last round changed TeamCity: polls that start after it see the change. */
let changedAt = 0;

function produceRound(): void {
  roundNo++;
  changedAt = ++clock;
  for (const [si, sim] of sims.entries()) {
    const m = sim.model;
    for (const [bi, btId] of ['Build', 'Test'].entries()) {
      const bt = `P${si}_${btId}`;
      const branch = BRANCHES[(roundNo + bi) % BRANCHES.length]!;
      // Finish the oldest running build of this configuration (success, failure or canceled).
      const running = [...m.builds.values()].filter((b) => b.state === 'running' && b.buildType.id === bt);
      const oldest = running[0];
      if (oldest) {
        const pick = (roundNo + bi + oldest.id) % 4;
        if (pick === 3) m.cancelBuild(oldest.id, { immediate: true });
        else m.finishBuild(oldest.id, pick === 2 ? { status: 'FAILURE', statusText: 'Tests failed: 1' } : { status: 'SUCCESS', tests: { passed: 3 } });
      }
      // Start the oldest queued one.
      const queued = [...m.builds.values()].find((b) => b.state === 'queued' && b.buildType.id === bt);
      if (queued) {
        if ((roundNo + queued.id) % 7 === 0) m.failToStart(queued.id);
        else m.startBuild(queued.id);
      }
      // A commit with a key, and a new build; every third round also a whole build between two polls.
      m.addChange({ vcsRootId: `P${si}_Git`, comment: `TCJ-${(roundNo % 5) + 1} change ${roundNo}`, branch });
      m.queueBuild({ buildTypeId: bt, branch });
      if (roundNo % 3 === bi) {
        m.addChange({ vcsRootId: `P${si}_Git`, comment: `DEMO-${(roundNo % 3) + 1} quick ${roundNo}`, branch });
        m.runBuild({ buildTypeId: bt, branch, durationMs: 4_000 });
      }
    }
    sim.advance(7_000);
  }
}

/** Lets every build reach a final state, and moves the clocks on one second. */
function finishEverything(): void {
  for (const sim of sims) {
    const m = sim.model;
    for (const b of [...m.builds.values()]) if (b.state === 'queued') m.startBuild(b.id);
    sim.advance(2_000);
    for (const b of [...m.builds.values()]) if (b.state === 'running') m.finishBuild(b.id, { status: 'SUCCESS' });
    sim.advance(1_000);
  }
}

/** The build as TeamCity's REST API describes its state (what jiraBuildState reads). */
function asRest(b: Build): Pick<TcBuild, 'state' | 'status' | 'statusText' | 'canceledInfo' | 'failedToStart'> {
  return {
    state: b.state,
    ...(b.status ? { status: b.status } : {}),
    ...(b.statusText ? { statusText: b.statusText } : {}),
    ...(b.canceled ? { canceledInfo: { text: b.canceled.text } } : {}),
    ...(b.failedToStart ? { failedToStart: true } : {}),
  };
}

async function outboxSize(): Promise<number> {
  let n = 0;
  for (const tenantId of tenantBySite.values()) {
    n += await t.db.withTenant(tenantId, async (tx) => (await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox')).rows[0]!.n);
  }
  return n;
}

/**
 * Every connection has completed a poll that started after the last change (a poll task reads
 * TeamCity only after it starts). Not judged by the cursor: a poll that finds nothing new leaves it.
 */
async function polledSince(): Promise<boolean> {
  return connections.every((c) => spans.some((s) => s.kind === 'poll' && s.key === c.serverId && s.start > changedAt && s.end !== Number.POSITIVE_INFINITY));
}

async function untilPolled(deadline = Date.now() + 20_000): Promise<void> {
  while (!(await polledSince())) {
    if (Date.now() > deadline) assert.fail('servers were not polled after the last TeamCity change');
    await sleep(5);
  }
}

/** Runs until everything TeamCity shows is polled and delivered (bounded). */
async function settle(): Promise<void> {
  const deadline = Date.now() + 20_000;
  await untilPolled(deadline);
  while ((await outboxSize()) > 0) {
    if (Date.now() > deadline) assert.fail('the outbox did not drain');
    await sleep(10);
  }
}

function workersWith(kind: Span['kind'], ids: string[]): Map<string, number> {
  const out = new Map(ids.map((id) => [id, 0]));
  // A poll span carries its claim's lease token: the worker id, '/', a suffix.
  for (const s of spans) {
    const id = s.worker.split('/')[0]!;
    if (s.kind === kind && out.has(id)) out.set(id, out.get(id)! + 1);
  }
  return out;
}

/**
 * Starts the workers and produces rounds of TeamCity activity: at least `rounds`, more (up to three
 * times as many) while some worker has not polled and delivered yet; then lets everything settle.
 */
async function runPhase(ids: string[], rounds: number): Promise<void> {
  newPhase();
  const ws = ids.map(startWorker);
  try {
    for (let i = 0; i < rounds * 3; i++) {
      produceRound();
      // Each round waits until every server has been polled after it, so that Jira sees most builds
      // queued, running and finished; the next round then changes TeamCity while polls are in flight.
      await untilPolled();
      if (i >= rounds - 1) {
        const polls = workersWith('poll', ids);
        const deliveries = workersWith('deliver', ids);
        if ([...polls.values(), ...deliveries.values()].every((n) => n > 0)) break;
      }
    }
    await settle();
  } finally {
    await stopWorkers(ws);
  }
  const polls = workersWith('poll', ids);
  const deliveries = workersWith('deliver', ids);
  for (const id of ids) {
    assert.ok(polls.get(id)! > 0, `worker ${id} polled nothing: ${JSON.stringify([...polls])}`);
    assert.ok(deliveries.get(id)! > 0, `worker ${id} delivered nothing: ${JSON.stringify([...deliveries])}`);
  }
}

// ------------------------------------------------------------------------------------------------

before(async () => {
  t = await createTestDatabase();
  sims = [
    await startTeamCitySimulator({ utcOffsetMinutes: -420, version: '2025.11.2' }),
    await startTeamCitySimulator({ utcOffsetMinutes: 120, version: '2024.12', startTime: Date.UTC(2025, 5, 2, 10, 0, 0) }),
  ];
  // The second server is slow: its polls last long enough to overlap with everything else.
  sims[1]!.faults.setLatency(15);
  sims[0]!.faults.setLatency(2);
  world = await startJiraWorld(t, { sites: SITES }, sims.map((s) => new URL(s.url).host));
  world.sim.faults.setLatency(5, 'beta');
  for (const [si, sim] of sims.entries()) {
    const m = sim.model;
    m.addProject({ id: `P${si}`, name: `Project ${si}` });
    m.addVcsRoot({ id: `P${si}_Git`, projectId: `P${si}` });
    m.addBuildType({ id: `P${si}_Build`, projectId: `P${si}`, name: 'Build', type: 'regular', vcsRootIds: [`P${si}_Git`] });
    m.addBuildType({ id: `P${si}_Test`, projectId: `P${si}`, name: 'Test', type: 'regular', vcsRootIds: [`P${si}_Git`] });
  }
  for (const site of SITES) {
    const tenantId = await world.install(site);
    tenantBySite.set(site, tenantId);
    for (const [si, sim] of sims.entries()) {
      const serverId = randomUUID();
      const token = sim.model.addToken('admin');
      await t.db.withTenant(tenantId, (tx) => createServer(tx, world.secrets, tenantId, { id: serverId, name: `TC ${si}`, url: sim.url, auth: { type: 'token', token } }));
      connections.push({ tenantId, site, serverId, sim });
    }
  }
});

after(async () => {
  await world?.close();
  for (const s of sims) await s.close();
  await t?.drop();
});

describe('several workers on one database', () => {
  test('two workers share the work without polling a server or delivering a tenant twice at once', async () => {
    await runPhase(['two-1', 'two-2'], 8);
    assert.deepEqual(violations, []);
    assert.deepEqual(overlaps('poll'), []);
    assert.deepEqual(overlaps('deliver'), []);
  });

  test('four workers share the work the same way', async () => {
    await runPhase(['four-1', 'four-2', 'four-3', 'four-4'], 8);
    assert.deepEqual(violations, []);
    assert.deepEqual(overlaps('poll'), []);
    assert.deepEqual(overlaps('deliver'), []);
    // The polls really ran side by side (different servers at once), or the test proves little.
    const polls = spans.filter((s) => s.kind === 'poll');
    const concurrent = polls.some((a) => polls.some((b) => a !== b && a.key !== b.key && a.worker !== b.worker && a.start < b.end && b.start < a.end));
    assert.ok(concurrent, 'no two polls of different servers by different workers ever overlapped');
  });

  test('Jira received every build in order and ends with TeamCity’s final state', async () => {
    finishEverything();
    newPhase();
    const quiet = ['final-1', 'final-2'].map(startWorker);
    try {
      await settle();
    } finally {
      await stopWorkers(quiet);
    }
    assert.deepEqual(violations, []);
    assert.deepEqual(overlaps('poll'), []);
    assert.deepEqual(overlaps('deliver'), []);

    // Arrival order at Jira: per (site, pipelineId, buildNumber), updateSequenceNumbers strictly increase.
    const posts = world.sim.requests().filter((r) => r.method === 'POST' && r.path === '/rest/builds/0.1/bulk').sort((a, b) => a.seq - b.seq);
    assert.ok(posts.length > 0);
    const seen = new Map<string, number[]>();
    for (const r of posts) {
      assert.equal(r.status, 202, `Jira answered ${r.status}`);
      for (const b of (r.body as { builds: Array<{ pipelineId: string; buildNumber: number; updateSequenceNumber: number }> }).builds) {
        const key = `${r.site}|${b.pipelineId}|${b.buildNumber}`;
        seen.set(key, [...(seen.get(key) ?? []), b.updateSequenceNumber]);
      }
    }
    const outOfOrder = [...seen].filter(([, usns]) => usns.some((u, i) => i > 0 && u <= usns[i - 1]!));
    assert.deepEqual(outOfOrder, [], 'updates that reached Jira out of order (or twice)');
    // Most builds went through several states, each its own update: the order check has teeth.
    const multi = [...seen.values()].filter((u) => u.length >= 3).length;
    assert.ok(multi >= seen.size / 3, `${multi} of ${seen.size} builds reached Jira in three or more updates`);

    // Final state: every TeamCity build, for every tenant connected to its server, as jiraBuildState maps it.
    let checked = 0;
    const wrong: string[] = [];
    for (const c of connections) {
      const site = world.sim.site(c.site);
      const recorded = await t.db.withTenant(c.tenantId, async (tx) =>
        new Map(
          (await tx.query<{ build_id: string; jira_state: string }>('SELECT build_id::text, jira_state FROM builds WHERE server_id = $1', [c.serverId])).rows.map((r) => [
            Number(r.build_id),
            r.jira_state,
          ]),
        ),
      );
      for (const b of c.sim.model.builds.values()) {
        assert.equal(b.state, 'finished');
        const expected = jiraBuildState(asRest(b));
        const inJira = site.getBuild(`${c.serverId}/${b.buildType.internalId}`, b.id);
        if (inJira?.data.state !== expected) wrong.push(`${c.site} build ${b.id}: Jira ${String(inJira?.data.state)}, TeamCity ${expected}`);
        if (recorded.get(b.id) !== expected) wrong.push(`${c.site} build ${b.id}: recorded ${String(recorded.get(b.id))}, TeamCity ${expected}`);
        checked++;
      }
      // Nothing else: no duplicate pipelines, no builds of another tenant's connection.
      const ours = [...site.builds.values()].filter((b) => b.pipelineId.startsWith(`${c.serverId}/`));
      assert.equal(ours.length, c.sim.model.builds.size, `${c.site}: builds of connection ${c.serverId} in Jira`);
    }
    assert.deepEqual(wrong, []);
    assert.ok(checked >= 6 * 20, `checked ${checked} builds`);
    const states = new Set(connections.flatMap((c) => [...c.sim.model.builds.values()].map((b) => jiraBuildState(asRest(b)))));
    assert.deepEqual([...states].sort(), ['cancelled', 'failed', 'successful']);
    for (const site of SITES) assert.equal(world.sim.site(site).builds.size, [...connections].filter((c) => c.site === site).reduce((n, c) => n + c.sim.model.builds.size, 0));
    assert.deepEqual(world.sim.unexpectedCalls(), []);
  });
});

// The race behind the spans' definition above, inside one worker: a claim may hand a server back while
// the task that just released it has not settled yet (its COMMIT is read from one socket, the claim
// from another). The worker must keep track of the new task, or idle() and stop() return while it runs.
test('a worker keeps waiting for a poll claimed before its previous poll of the same server settled', async () => {
  const claims: Array<Array<{ tenant_id: string; server_id: string }>> = [[{ tenant_id: 'tenant', server_id: 'server' }], [{ tenant_id: 'tenant', server_id: 'server' }]];
  const fakeDb = {
    pool: { query: async (sql: string) => ({ rows: sql.includes('claim_polls') ? (claims.shift() ?? []) : [] }) },
  } as unknown as Database;
  const finishers: Array<() => void> = [];
  const worker = new SyncWorker(fakeDb, { poll: () => new Promise<void>((resolve) => finishers.push(resolve)), deliver: async () => undefined }, quietLog, { workerId: 'solo' });
  await worker.tick(); // first poll of the server
  await worker.tick(); // the server again: the first poll has given its lease back but not settled
  assert.equal(finishers.length, 2);
  finishers[0]!();
  await sleep(0); // the first poll settles
  let idle = false;
  const waiting = worker.idle().then(() => (idle = true));
  await sleep(20);
  assert.equal(idle, false, 'idle() returned while the second poll was still running');
  finishers[1]!();
  await waiting;
  assert.equal(idle, true);
});
