// Shared rig for the reliability suites (`npm run test:reliability`, docs/reliability.md): real
// PostgreSQL, the app's Jira side installed on Jira-simulator sites, TeamCity simulators, the real
// poller / deliverer / worker, and the checks every scenario ends with — nothing lost, nothing
// duplicated in effect (no older update of a build after a newer one), other tenants unaffected.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import pg from 'pg';
import type { Build } from '../../sandbox/teamcity/model.ts';
import type { TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import type { Database } from '../../src/db/database.ts';
import { deliverTenant, type DelivererDeps } from '../../src/sync/deliverer.ts';
import { pollServer, type PollerDeps, type SyncSettings } from '../../src/sync/poller.ts';
import { createServer, POLL_NOW } from '../../src/sync/servers.ts';
import { SyncWorker, type WorkerOptions } from '../../src/sync/worker.ts';
import type { TeamCityClientOptions } from '../../src/teamcity/client.ts';
import type { JiraClientOptions } from '../../src/jira/client.ts';
import { DUE_NOW, quietLog } from '../helpers/db.ts';
import { APP_KEY, type JiraWorld } from '../helpers/jira-app.ts';

export const HOUR = 3600_000;

/** One TeamCity connection of a tenant: its own project, VCS root, configuration and service account. */
export interface Conn {
  site: string;
  tenantId: string;
  serverId: string;
  sim: TeamCitySimulator;
  projectId: string;
  buildTypeId: string;
  vcsRootId: string;
  username: string;
  password: string;
  /** Builds this test created on the connection, with the Jira state each must be in now. */
  builds: Map<number, 'pending' | 'in_progress' | 'successful' | 'failed' | 'cancelled'>;
}

let counter = 0;

/** Creates a project visible only to a fresh service account, and the connection to it. */
export async function connect(db: Database, world: JiraWorld, site: string, tenantId: string, sim: TeamCitySimulator, auth: 'basic' | 'token' = 'basic'): Promise<Conn> {
  const n = ++counter;
  const projectId = `P${n}`;
  const m = sim.model;
  m.addProject({ id: projectId, name: `Project ${n}` });
  m.addVcsRoot({ id: `${projectId}_Git`, projectId, url: `https://git.example.com/p${n}.git` });
  m.addBuildType({ id: `${projectId}_Build`, projectId, name: 'Build', type: 'regular', vcsRootIds: [`${projectId}_Git`], branched: true });
  const username = `sync${n}`;
  const password = `pw-${n}-${randomUUID().slice(0, 8)}`;
  m.addUser({ username, password, viewProjects: [projectId] });
  const serverId = randomUUID();
  const creds = auth === 'basic' ? { type: 'basic' as const, username, password } : { type: 'token' as const, token: m.addToken(username) };
  await db.withTenant(tenantId, (tx) => createServer(tx, world.secrets, tenantId, { id: serverId, name: `TC ${n}`, url: sim.url, auth: creds }));
  return { site, tenantId, serverId, sim, projectId, buildTypeId: `${projectId}_Build`, vcsRootId: `${projectId}_Git`, username, password, builds: new Map() };
}

/** A tiny deterministic PRNG (LCG) so every run injects the same "random" sequence. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
}

/**
 * A stream of builds on a connection: each step commits a change that names a Jira issue, queues a
 * build, starts queued ones and finishes running ones, so Jira sees pending → in_progress → final.
 */
export class BuildStream {
  private readonly queued: Build[] = [];
  private readonly running: Build[] = [];
  private readonly rnd: () => number;
  constructor(
    readonly conn: Conn,
    seed: number,
  ) {
    this.rnd = prng(seed);
  }

  step(newBuilds = 1): void {
    const m = this.conn.sim.model;
    for (const b of this.running.splice(0)) {
      const r = this.rnd();
      const status = r < 0.2 ? 'FAILURE' : 'SUCCESS';
      if (r > 0.95) {
        m.cancelBuild(b.id, { immediate: true });
        this.conn.builds.set(b.id, 'cancelled');
      } else {
        m.finishBuild(b.id, { status, tests: { passed: 5, failed: status === 'FAILURE' ? 1 : 0 } });
        this.conn.builds.set(b.id, status === 'FAILURE' ? 'failed' : 'successful');
      }
    }
    for (const b of this.queued.splice(0)) {
      m.startBuild(b.id);
      this.conn.builds.set(b.id, 'in_progress');
      this.running.push(b);
    }
    for (let i = 0; i < newBuilds; i++) {
      const key = `TCJ-${1 + Math.floor(this.rnd() * 5)}`;
      const branch = this.rnd() < 0.5 ? 'main' : `feature/${key}-work`;
      m.addChange({ vcsRootId: this.conn.vcsRootId, comment: `${key} change ${this.conn.builds.size}`, branch });
      const b = m.queueBuild({ buildTypeId: this.conn.buildTypeId, branch });
      this.conn.builds.set(b.id, 'pending');
      this.queued.push(b);
    }
  }

  /** Finishes everything in flight (two steps without new builds). */
  drain(): void {
    this.step(0);
    this.step(0);
  }

  get inFlight(): number {
    return this.queued.length + this.running.length;
  }
}

/** The poller and deliverer as the worker runs them, with test-sized timeouts. */
export function engine(
  db: Database,
  world: JiraWorld,
  o: { teamcity?: Partial<TeamCityClientOptions>; settings?: Partial<SyncSettings>; jiraClient?: Partial<JiraClientOptions>; deliverer?: Partial<DelivererDeps> } = {},
): { pollerDeps: PollerDeps; delivererDeps: DelivererDeps } {
  const pollerDeps: PollerDeps = {
    db,
    secrets: world.secrets,
    dispatcher: world.dispatcher,
    log: quietLog,
    teamcity: { timeoutMs: 500, maxAttempts: 2, retryBaseMs: 10, retryMaxMs: 50, ...o.teamcity },
    ...(o.settings ? { settings: o.settings } : {}),
  };
  const delivererDeps: DelivererDeps = {
    db,
    tenants: world.tenants,
    appKey: APP_KEY,
    dispatcher: world.dispatcher,
    log: quietLog,
    jiraClient: { maxRetryAfterMs: 1_000, backoffBaseMs: 10, backoffMaxMs: 50, timeoutMs: 2_000, ...o.jiraClient },
    basePauseMs: 200,
    maxPauseMs: 2_000,
    ...o.deliverer,
  };
  return { pollerDeps, delivererDeps };
}

export function makeWorker(db: Database, deps: { pollerDeps: PollerDeps; delivererDeps: DelivererDeps }, opts: WorkerOptions = {}): SyncWorker {
  return new SyncWorker(
    db,
    {
      poll: async (tid, sid, wid) => void (await pollServer(deps.pollerDeps, tid, sid, wid)),
      deliver: async (tid, wid) => void (await deliverTenant(deps.delivererDeps, tid, wid)),
    },
    quietLog,
    { workerId: `rel-${randomUUID().slice(0, 6)}`, ...opts },
  );
}

/** Runs SQL as the maintenance role (cross-tenant, as the purge does): forcing polls, expiring leases. */
export async function maintenance<R extends pg.QueryResultRow = pg.QueryResultRow>(ownerPool: pg.Pool, sql: string, params: unknown[] = []): Promise<R[]> {
  const c = await ownerPool.connect();
  let broken: Error | undefined;
  const onError = (err: Error) => (broken = err); // the database may be restarting (process.rel.ts)
  c.on('error', onError);
  try {
    await c.query('BEGIN');
    await c.query('SET LOCAL ROLE tcj_maintenance');
    const r = await c.query<R>(sql, params);
    await c.query('COMMIT');
    return r.rows;
  } catch (err) {
    await c.query('ROLLBACK').catch((e: Error) => (broken = e));
    throw err;
  } finally {
    c.removeListener('error', onError);
    c.release(broken);
  }
}

/**
 * Makes the given servers (default: all) due now, as "sync now" does: safe while polls run (none is
 * overtaken); after a quiet poll the next starts once its short lease lapsed.
 */
export async function forcePoll(ownerPool: pg.Pool, serverIds?: string[]): Promise<void> {
  await maintenance(ownerPool, `UPDATE sync_state SET ${POLL_NOW} WHERE $1::uuid[] IS NULL OR server_id = ANY($1::uuid[])`, [serverIds ?? null]);
}

/** forcePoll for a round of an idle in-process worker: also ends the lease a quiet poll left to lapse. */
export async function forcePollIdle(ownerPool: pg.Pool, serverIds?: string[]): Promise<void> {
  await maintenance(ownerPool, `UPDATE sync_state SET ${DUE_NOW} WHERE $1::uuid[] IS NULL OR server_id = ANY($1::uuid[])`, [serverIds ?? null]);
}

/** Ends pauses of delivery (tests that do not want to wait out a backoff they already checked). */
export async function unpauseDeliveries(ownerPool: pg.Pool): Promise<void> {
  await maintenance(ownerPool, `UPDATE delivery_state SET paused_until = NULL`);
}

export async function expireLeases(ownerPool: pg.Pool): Promise<void> {
  await maintenance(ownerPool, `UPDATE sync_state SET lease_until = now() - interval '1 second' WHERE lease_until IS NOT NULL`);
  await maintenance(ownerPool, `UPDATE delivery_state SET lease_until = now() - interval '1 second' WHERE lease_until IS NOT NULL`);
}

/** One full round for an in-process worker: poll what is due, then deliver what that queued. */
export async function round(worker: SyncWorker): Promise<void> {
  await worker.tick();
  await worker.idle();
  await worker.tick();
  await worker.idle();
}

export interface ServerHealth {
  state: string;
  consecutive_failures: number;
  last_error: string | null;
  backoff_s: number;
}

export async function health(db: Database, c: Conn): Promise<ServerHealth> {
  return db.withTenant(c.tenantId, async (tx) =>
    (await tx.query<ServerHealth>(
      `SELECT s.state, st.consecutive_failures, st.last_error,
              round(extract(epoch FROM st.next_poll_at - st.last_poll_at))::int AS backoff_s
         FROM teamcity_servers s JOIN sync_state st ON st.server_id = s.id WHERE s.id = $1`,
      [c.serverId],
    )).rows[0]!,
  );
}

export async function outboxSize(db: Database, tenantId: string): Promise<number> {
  return db.withTenant(tenantId, async (tx) => Number((await tx.query('SELECT count(*) AS n FROM outbox')).rows[0]!.n));
}

interface SentBuild {
  seq: number;
  buildNumber: number;
  usn: number;
  state: string;
}

/** Every build update the Jira site answered 202 for, in the order Jira received them. */
export function sentToJira(world: JiraWorld, site: string): SentBuild[] {
  const out: SentBuild[] = [];
  for (const r of world.sim.requests({ site })) {
    if (r.path !== '/rest/builds/0.1/bulk' || r.status !== 202) continue;
    for (const b of (r.body as { builds: { buildNumber: number; updateSequenceNumber: number; state: string }[] }).builds) {
      out.push({ seq: r.seq, buildNumber: b.buildNumber, usn: b.updateSequenceNumber, state: b.state });
    }
  }
  return out;
}

/**
 * The end-of-scenario check for a connection: every build this test created is in Jira in its final
 * state with the sequence number the app last assigned it; Jira never received an older update of a
 * build after a newer one (re-sending the same number is harmless); the outbox is empty.
 */
export async function assertDelivered(db: Database, world: JiraWorld, c: Conn): Promise<{ builds: number; updates: number; resent: number }> {
  const site = world.sim.site(c.site);
  const jira = new Map([...site.builds.values()].filter((b) => b.pipelineId.startsWith(`${c.serverId}/`)).map((b) => [b.buildNumber, b]));
  const recorded = await db.withTenant(c.tenantId, async (tx) =>
    new Map(
      (await tx.query<{ build_id: string; last_usn: string }>('SELECT build_id, last_usn FROM builds WHERE server_id = $1', [c.serverId])).rows.map((r) => [
        Number(r.build_id),
        r.last_usn,
      ]),
    ),
  );
  const missing: number[] = [];
  const wrong: string[] = [];
  for (const [id, state] of c.builds) {
    const j = jira.get(id);
    if (!j) {
      missing.push(id);
      continue;
    }
    if (j.data.state !== state) wrong.push(`${id}: ${String(j.data.state)} ≠ ${state}`);
    if (String(j.updateSequenceNumber) !== recorded.get(id)) wrong.push(`${id}: Jira usn ${j.updateSequenceNumber} ≠ last assigned ${recorded.get(id)}`);
  }
  assert.deepEqual(missing, [], `${c.site}/${c.projectId}: builds missing in Jira`);
  assert.deepEqual(wrong, [], `${c.site}/${c.projectId}: builds wrong in Jira`);
  const mine = new Set(c.builds.keys());
  const last = new Map<number, number>();
  let updates = 0;
  let resent = 0;
  const regressions: string[] = [];
  for (const s of sentToJira(world, c.site)) {
    if (!mine.has(s.buildNumber)) continue;
    updates++;
    const prev = last.get(s.buildNumber);
    if (prev !== undefined && s.usn < prev) regressions.push(`build ${s.buildNumber}: usn ${s.usn} after ${prev}`);
    if (prev === s.usn) resent++;
    last.set(s.buildNumber, Math.max(prev ?? 0, s.usn));
  }
  assert.deepEqual(regressions, [], 'an older update reached Jira after a newer one');
  assert.equal(await outboxSize(db, c.tenantId), 0, 'outbox drained');
  return { builds: c.builds.size, updates, resent };
}

export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/**
 * Results for docs/reliability.md: each scenario appends one JSON line to $RELIABILITY_REPORT (set by
 * the runner) and prints it as a test diagnostic.
 */
export function report(row: { scenario: string; injected: string; checked: string; result: string; figures?: Record<string, unknown> }): void {
  const file = process.env.RELIABILITY_REPORT;
  if (file) appendFileSync(file, `${JSON.stringify(row)}\n`);
}

export async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
