// The three scenarios of design.md §6. Each builds its own world (fresh database, simulators, Jira
// sites with the app installed), runs the real worker as child process(es) against it, measures, then
// runs the baseline poller against the same simulators, and returns one JSON-able report.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import type { Build } from '../../sandbox/teamcity/model.ts';
import { Prng } from '../../sandbox/teamcity/prng.ts';
import { DEFAULT_SYNC_SETTINGS } from '../../src/sync/poller.ts';
import { createServer, requestBackfill } from '../../src/sync/servers.ts';
import { BaselinePoller, Limiter } from './baseline.ts';
import {
  createBenchDatabase,
  machine,
  postgresCpuSeconds,
  procCpuSeconds,
  procMemoryMB,
  rowsWritten,
  startJiraWorld,
  startTeamCitySims,
  startWorker,
  type BenchDatabase,
  type JiraWorld,
  type PgCluster,
  type WorkerProcess,
} from './env.ts';
import { countJira, countTeamCity, percentiles, round, summarizeProfiles } from './measure.ts';

export interface BenchParams {
  servers: number;
  builds: number;
  latencyMs: number;
  workers: number;
  tenants: number;
  sims: number;
  /** Measured window of steady and idle (s). */
  durationS: number;
  /** steady: one build finishes every this many ms somewhere. */
  buildEveryMs: number;
  baseline: boolean;
  /** Servers the backfill baseline runs on (its throughput is per wave of 8 parallel servers). */
  baselineServers: number;
  cpuProf: boolean;
  logLevel: string;
  timeoutS: number;
}

export type Report = Record<string, unknown>;

const DAY = 24 * 3600_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface ServerInfo {
  index: number;
  id: string;
  tenantId: string;
  site: string;
  sim: TeamCitySimulator;
  username: string;
  token: string;
  prefix: string;
  projects: string[];
  buildTypes: string[];
}

interface World {
  bdb: BenchDatabase;
  world: JiraWorld;
  sims: TeamCitySimulator[];
  servers: ServerInfo[];
  tenantIds: string[];
  sites: string[];
  allowHosts: string[];
  cleanup(): Promise<void>;
}

/** Servers are spread over `sims` simulator instances; on a shared simulator each connection uses an
 *  account that sees only its own projects, so it behaves as a separate server. */
async function buildWorld(
  cluster: PgCluster,
  label: string,
  p: BenchParams,
  opts: { realTime: boolean; issues: boolean; setupServer: (sim: TeamCitySimulator, prefix: string, index: number) => { projects: string[]; buildTypes: string[] } },
): Promise<World> {
  const bdb = await createBenchDatabase(cluster, label);
  const sims = await startTeamCitySims(Math.max(1, Math.min(p.sims, p.servers)), p.latencyMs, { realTime: opts.realTime });
  const tcHosts = sims.map((s) => new URL(s.url).host);
  const world = await startJiraWorld(bdb, p.latencyMs, tcHosts);
  const nTenants = Math.max(1, Math.min(p.tenants, p.servers));
  const tenantIds: string[] = [];
  const sites: string[] = [];
  for (let t = 0; t < nTenants; t++) {
    sites.push(`site-${t}`);
    tenantIds.push(await world.install(`site-${t}`, { issues: opts.issues }));
  }
  const servers: ServerInfo[] = [];
  for (let i = 0; i < p.servers; i++) {
    const sim = sims[i % sims.length]!;
    const prefix = `S${i}P`;
    const { projects, buildTypes } = opts.setupServer(sim, prefix, i);
    const username = `conn${i}`;
    sim.model.addUser({ username, password: null, viewProjects: projects });
    const token = sim.model.addToken(username);
    servers.push({ index: i, id: randomUUID(), tenantId: tenantIds[i % nTenants]!, site: sites[i % nTenants]!, sim, username, token, prefix, projects, buildTypes });
  }
  for (let t = 0; t < nTenants; t++) {
    const mine = servers.filter((s) => s.tenantId === tenantIds[t]);
    await bdb.db.withTenant(tenantIds[t]!, async (tx) => {
      for (const s of mine) await createServer(tx, world.secrets, s.tenantId, { id: s.id, name: `TeamCity ${s.index}`, url: s.sim.url, auth: { type: 'token', token: s.token } });
    });
  }
  // Not due until the scenario says so: the worker starts on an idle database.
  await bdb.maintenance(`UPDATE sync_state SET next_poll_at = now() + interval '1 day'`);
  return {
    bdb,
    world,
    sims,
    servers,
    tenantIds,
    sites,
    allowHosts: [...tcHosts, new URL(world.sim.url).host],
    cleanup: async () => {
      await world.close();
      for (const s of sims) await s.close();
      await bdb.drop();
    },
  };
}

/** Worker processes plus their resource accounting. */
class Workers {
  readonly procs: WorkerProcess[] = [];
  private cpu0 = 0;
  private pg0 = 0;
  private bench0 = 0;
  private timer: NodeJS.Timeout | undefined;
  readonly profDir: string | undefined;
  private polls0 = new Map<string, { sum: number; count: number }>();

  constructor(
    private readonly w: World,
    private readonly p: BenchParams,
    private readonly cluster: PgCluster,
  ) {
    this.profDir = p.cpuProf ? mkdtempSync(join(tmpdir(), 'tcj-bench-prof-')) : undefined;
  }

  async start(): Promise<void> {
    for (let i = 0; i < this.p.workers; i++) {
      this.procs.push(await startWorker({ bdb: this.w.bdb, keyringFile: this.w.world.keyringFile, allowHosts: this.w.allowHosts, logLevel: this.p.logLevel, cpuProfDir: this.profDir }, i));
    }
    await Promise.all(this.procs.map((p) => p.ready));
    this.timer = setInterval(() => this.sample(), 250);
  }

  sample(): void {
    for (const p of this.procs) p.sample();
  }

  cpuSeconds(): number {
    return this.procs.reduce((s, p) => s + (procCpuSeconds(p.pid) ?? 0), 0);
  }

  /** Starts the measured window: CPU is counted from here, peak RSS is the highest sample from here. */
  async mark(): Promise<void> {
    this.polls0 = await this.pollHistograms();
    this.cpu0 = this.cpuSeconds();
    this.pg0 = postgresCpuSeconds(this.cluster.postmasterPid) ?? 0;
    this.bench0 = procCpuSeconds(process.pid) ?? 0;
    for (const p of this.procs) p.peakRssMB = procMemoryMB(p.pid)?.rss ?? 0;
  }

  resources(wallS: number): Record<string, unknown> {
    this.sample();
    const cpu = this.cpuSeconds() - this.cpu0;
    const pgCpu = this.cluster.postmasterPid ? (postgresCpuSeconds(this.cluster.postmasterPid) ?? 0) - this.pg0 : undefined;
    return {
      workerProcesses: this.procs.length,
      cpuSeconds: round(cpu, 2),
      cpuPercentOfOneCore: round((100 * cpu) / wallS, 1),
      peakRssMB: round(Math.max(...this.procs.map((p) => p.peakRssMB)), 1),
      peakRssMBTotal: round(this.procs.reduce((s, p) => s + p.peakRssMB, 0), 1),
      // The simulators (TeamCity and Jira) run in the bench process: its CPU is theirs (plus the bench's).
      simulatorsCpuSeconds: round((procCpuSeconds(process.pid) ?? 0) - this.bench0, 2),
      ...(pgCpu !== undefined ? { postgresCpuSeconds: round(pgCpu, 2), postgresCpuPercentOfOneCore: round((100 * pgCpu) / wallS, 1) } : {}),
    };
  }

  /** Sums and counts of the workers' poll histograms (tcj_poll_phase_duration_seconds, tcj_poll_lag_seconds). */
  private async pollHistograms(): Promise<Map<string, { sum: number; count: number }>> {
    const sums = new Map<string, { sum: number; count: number }>();
    for (const p of this.procs) {
      const text = await p.metrics().catch(() => '');
      // Polls by result (ok, failed, auth_failed) come as counts.
      for (const m of text.matchAll(/^tcj_polls_total\{result="(\w+)"\} (\S+)$/gm)) {
        const e = sums.get(`polls_${m[1]}`) ?? { sum: 0, count: 0 };
        e.count += Number(m[2]);
        sums.set(`polls_${m[1]}`, e);
      }
      for (const m of text.matchAll(/^(tcj_poll_phase_duration_seconds|tcj_poll_lag_seconds)_(sum|count)(?:\{phase="(\w+)"\})? (\S+)$/gm)) {
        const key = m[3] ?? 'lag';
        const e = sums.get(key) ?? { sum: 0, count: 0 };
        if (m[2] === 'sum') e.sum += Number(m[4]);
        else e.count += Number(m[4]);
        sums.set(key, e);
      }
    }
    return sums;
  }

  /** Mean duration of each poll phase, and of the poll lag, in the measured window: where a poll's time goes. */
  async pollTimings(): Promise<Record<string, unknown>> {
    const now = await this.pollHistograms();
    return Object.fromEntries(
      [...now].map(([k, v]) => {
        const at0 = this.polls0.get(k) ?? { sum: 0, count: 0 };
        const count = v.count - at0.count;
        if (k.startsWith('polls_')) return [k, count];
        return [k, { count, meanMs: count ? round((1000 * (v.sum - at0.sum)) / count, 1) : null }];
      }),
    );
  }

  async stop(): Promise<Record<string, unknown> | undefined> {
    clearInterval(this.timer);
    const codes = await Promise.all(this.procs.map((p) => p.stop()));
    if (codes.some((c) => c !== 0)) log(`worker exit codes ${codes.join(',')}\n${this.procs.map((p) => p.output().slice(-3000)).join('\n')}`);
    for (const line of this.procs.flatMap((p) => p.failures)) log(`worker: ${line}`);
    if (!this.profDir) return undefined;
    const summary = summarizeProfiles(this.profDir);
    log(`CPU profiles in ${this.profDir}`);
    return summary;
  }
}

async function waitFor(what: string, timeoutS: number, check: () => Promise<boolean>, everyMs = 500): Promise<boolean> {
  const until = Date.now() + timeoutS * 1000;
  while (Date.now() < until) {
    if (await check()) return true;
    await sleep(everyMs);
  }
  log(`timed out waiting for ${what}`);
  return false;
}

function ratio(a: number, b: number): number | null {
  return b > 0 ? round(a / b, 3) : null;
}

function target(name: string, limit: string, value: number | null, met: boolean): Record<string, unknown> {
  return { name, target: limit, value, met };
}

function clearRequests(w: World): void {
  for (const s of w.sims) s.clearRequests();
  w.world.sim.clearRequests();
}

/** Makes every server due and waits until each has had its first (cursor-setting) poll. */
async function firstPollOfEveryServer(w: World, timeoutS: number): Promise<void> {
  await w.bdb.maintenance(`UPDATE sync_state SET next_poll_at = now()`);
  await waitFor('the first poll of every server', timeoutS, async () => {
    const [r] = await w.bdb.maintenance<{ n: string }>(`SELECT count(*)::text AS n FROM sync_state WHERE cursor_time IS NULL`);
    return Number(r!.n) === 0;
  });
}

/** A measured window of `seconds`: requests counted, rows written, worker CPU and poll timings from its start. */
async function measuredWindow(w: World, workers: Workers, seconds: number) {
  clearRequests(w);
  const rows0 = await rowsWritten(w.bdb);
  await workers.mark();
  const t0 = Date.now();
  await sleep(seconds * 1000);
  const t1 = Date.now();
  return { rows0, t0, t1, resources: workers.resources((t1 - t0) / 1000), pollTimings: await workers.pollTimings() };
}

/** Installs a site for the baseline (its own tenant, so its requests are counted apart). */
async function baselineJira(w: World, name: string, issues: boolean) {
  const tenantId = await w.world.install(name, { issues });
  const tenant = (await w.world.tenants.authById(tenantId))!;
  return { baseUrl: w.world.sim.siteUrl(name), sharedSecret: tenant.sharedSecret };
}

function baselineServer(s: ServerInfo, connectionId: string): { server: { connectionId: string; url: string; token: string; buildTypes: string[] }; user: string } {
  const user = `baseline${s.index}`;
  if (!s.sim.model.findUserByName(user)) s.sim.model.addUser({ username: user, password: null, viewProjects: s.projects });
  return { server: { connectionId, url: s.sim.url, token: s.sim.model.addToken(user), buildTypes: s.buildTypes }, user };
}

// ================================================================================================ backfill

export async function backfill(cluster: PgCluster, p: BenchParams): Promise<Report> {
  const typesPerServer = 20;
  const perType = Math.max(1, Math.ceil(p.builds / typesPerServer));
  log(`backfill: ${p.servers} servers × ${perType * typesPerServer} builds, ${p.tenants} tenants, latency ${p.latencyMs} ms`);
  const w = await buildWorld(cluster, 'backfill', p, {
    realTime: false,
    issues: true,
    setupServer: (sim, prefix, i) => {
      const g = sim.generateHistory({ seed: 100 + i, projects: 2, buildTypesPerProject: typesPerServer / 2, buildsPerType: perType, periodMs: 90 * DAY, idPrefix: prefix });
      return { projects: g.projects, buildTypes: g.buildTypes.map((bt) => sim.model.buildType(bt).id) };
    },
  });
  const workers = new Workers(w, p, cluster);
  try {
    // What TeamCity has for each server: the floor of the builds requests needed to read it.
    let tcFloor = 0;
    let history = 0;
    for (const s of w.servers) {
      const mine = [...s.sim.model.builds.values()].filter((b) => b.buildType.projectId.startsWith(s.prefix) && !b.personal);
      const since = s.sim.model.now() - 91 * DAY;
      const finished = mine.filter((b) => b.state === 'finished' && (b.startDate ?? b.finishDate ?? 0) > since).length;
      const running = mine.filter((b) => b.state === 'running').length;
      const queued = mine.filter((b) => b.state === 'queued').length;
      history += finished + running + queued;
      tcFloor += Math.ceil(finished / 100) + Math.ceil(running / 100) + Math.ceil(queued / 100);
    }
    await workers.start();
    clearRequests(w);
    const rows0 = await rowsWritten(w.bdb);
    await workers.mark();
    const t0 = Date.now();
    for (const tenantId of w.tenantIds) {
      await w.bdb.db.withTenant(tenantId, async (tx) => {
        for (const s of w.servers.filter((x) => x.tenantId === tenantId)) await requestBackfill(tx, s.id, new Date(s.sim.model.now() - 91 * DAY));
      });
    }
    let last = { pending: 0, outbox: 0, builds: 0 };
    let lastLog = 0;
    const done = await waitFor('the backfill', p.timeoutS, async () => {
      const [r] = await w.bdb.maintenance<{ pending: string; outbox: string; builds: string }>(
        `SELECT count(*) FILTER (WHERE backfill_finished_at IS NULL)::text AS pending,
                (SELECT count(*) FROM outbox)::text AS outbox, (SELECT count(*) FROM builds)::text AS builds FROM sync_state`,
      );
      last = { pending: Number(r!.pending), outbox: Number(r!.outbox), builds: Number(r!.builds) };
      if (Date.now() - lastLog > 10_000) {
        lastLog = Date.now();
        log(`backfill: ${last.builds} builds recorded, ${last.outbox} in outbox, ${last.pending} servers still backfilling`);
      }
      return last.pending === 0 && last.outbox === 0;
    });
    const tEnd = Date.now();
    const jira = countJira(w.world.sim.requests(), new Set(w.sites));
    const wallS = ((jira.lastAcceptedAt ?? tEnd) - t0) / 1000;
    const resources = workers.resources((tEnd - t0) / 1000);
    const pollTimings = await workers.pollTimings();
    const rows1 = await rowsWritten(w.bdb);
    const tc = countTeamCity(w.sims, new Set(w.servers.map((s) => s.username)));
    const profile = await workers.stop();
    const ingested = last.builds;

    const app = {
      completed: done,
      historyBuilds: history,
      buildsIngested: ingested,
      jiraEntitiesAccepted: jira.entitiesAccepted,
      wallSeconds: round(wallS, 2),
      buildsPerSecond: round(ingested / wallS, 1),
      teamcity: {
        requests: tc.requests,
        byEndpoint: { server: tc.serverRequests, builds: tc.builds, buildById: tc.build, changes: tc.changes },
        polls: tc.serverRequests,
        perBuild: round(tc.requests / ingested, 4),
        floor: tcFloor,
        floorPerBuild: round(tcFloor / ingested, 4),
        ratioToFloor: ratio(tc.requests, tcFloor),
        perPoll: round(tc.requests / Math.max(1, tc.serverRequests), 2),
        // The history itself against the floor, apart from the regular polls (clock, finished and
        // active lists) that keep every connected server live while the backfill runs.
        backfillPages: tc.backfillPages,
        pollRequests: tc.requests - tc.backfillPages,
        firstPollsAndPagesRatioToFloor: ratio(tc.backfillPages + (w.servers.length * (tc.requests - tc.backfillPages)) / Math.max(1, tc.serverRequests), tcFloor),
      },
      jira: {
        requests: jira.requests,
        bulkRequests: jira.bulkRequests,
        entityUpdates: jira.entityUpdates,
        perBuild: round(jira.requests / ingested, 4),
        floor: jira.floor,
        floorPerBuild: round(jira.floor / ingested, 4),
        ratioToFloor: ratio(jira.requests, jira.floor),
      },
      latencyMs: { note: 'history builds finished before the backfill was requested: see steady for end-to-end latency', ...percentiles([]) },
      resources,
      pollTimings,
      dbRowsWritten: rows1.ins + rows1.upd + rows1.del - (rows0.ins + rows0.upd + rows0.del),
    };

    let baseline: Record<string, unknown> | undefined;
    if (p.baseline) {
      const n = Math.min(p.baselineServers, w.servers.length);
      log(`backfill baseline on ${n} server(s)`);
      const jiraBl = await baselineJira(w, 'baseline', true);
      clearRequests(w);
      const users = new Set<string>();
      const limiter = new Limiter(8);
      const pollers = w.servers.slice(0, n).map((s) => {
        const { server, user } = baselineServer(s, `bl${s.index}`);
        users.add(user);
        return { s, poller: new BaselinePoller(server, jiraBl, w.world.dispatcher) };
      });
      const b0 = Date.now();
      await Promise.all(pollers.map(({ s, poller }) => limiter.run(() => poller.poll(new Date(s.sim.model.now() - 91 * DAY)))));
      const bWall = (Date.now() - b0) / 1000;
      const bTc = countTeamCity(w.sims, users);
      const bJira = countJira(w.world.sim.requests(), new Set(['baseline']));
      const bBuilds = pollers.reduce((s, x) => s + x.poller.builds, 0);
      baseline = {
        servers: n,
        buildsIngested: bBuilds,
        wallSeconds: round(bWall, 2),
        buildsPerSecond: round(bBuilds / bWall, 1),
        teamcity: { requests: bTc.requests, perBuild: round(bTc.requests / bBuilds, 4), perPoll: round(bTc.requests / n, 1) },
        jira: { requests: bJira.requests, perBuild: round(bJira.requests / bBuilds, 4) },
      };
    }
    const tcRatio = app.teamcity.ratioToFloor ?? Infinity;
    const jiraRatio = app.jira.ratioToFloor ?? Infinity;
    return {
      scenario: 'backfill',
      machine: machine(),
      params: { ...p, buildsPerServer: perType * typesPerServer, configurationsPerServer: typesPerServer, historyDays: 90, pageSize: 100 },
      app,
      ...(baseline ? { baseline, vsBaseline: compare(app, baseline) } : {}),
      targets: [
        target('builds/s end to end', '>= 1000', app.buildsPerSecond, app.buildsPerSecond >= 1000),
        target('Jira requests vs floor', '<= 1.05', app.jira.ratioToFloor, jiraRatio <= 1.05),
        target('TeamCity requests vs floor', '<= 1.2', app.teamcity.ratioToFloor, tcRatio <= 1.2),
      ],
      ...(profile ? { cpuProfile: profile } : {}),
    };
  } finally {
    await workers.stop().catch(() => undefined);
    await w.cleanup();
  }
}

function compare(app: Record<string, any>, bl: Record<string, any>): Record<string, unknown> {
  return {
    teamcityRequestsPerBuild: { app: app.teamcity.perBuild, baseline: bl.teamcity.perBuild, appOverBaseline: ratio(app.teamcity.perBuild, bl.teamcity.perBuild) },
    jiraRequestsPerBuild: { app: app.jira.perBuild, baseline: bl.jira.perBuild, appOverBaseline: ratio(app.jira.perBuild, bl.jira.perBuild) },
    ...(app.buildsPerSecond !== undefined && bl.buildsPerSecond !== undefined
      ? { buildsPerSecond: { app: app.buildsPerSecond, baseline: bl.buildsPerSecond, appOverBaseline: ratio(app.buildsPerSecond, bl.buildsPerSecond) } }
      : {}),
    ...(app.teamcity.perPoll !== undefined && bl.teamcity.perPoll !== undefined
      ? { teamcityRequestsPerPoll: { app: app.teamcity.perPoll, baseline: bl.teamcity.perPoll, appOverBaseline: ratio(app.teamcity.perPoll, bl.teamcity.perPoll) } }
      : {}),
    ...(app.latencyMs?.p95 != null && bl.latencyMs?.p95 != null ? { latencyP95Ms: { app: app.latencyMs.p95, baseline: bl.latencyMs.p95, appOverBaseline: ratio(app.latencyMs.p95, bl.latencyMs.p95) } } : {}),
  };
}

// ================================================================================================ steady

/** Small live servers: 3 regular configurations and 1 deployment configuration on one VCS root each. */
function liveServer(sim: TeamCitySimulator, prefix: string): { projects: string[]; buildTypes: string[] } {
  const m = sim.model;
  m.addProject({ id: prefix, name: `Project ${prefix}` });
  m.addVcsRoot({ id: `${prefix}_Git`, projectId: prefix, url: `https://git.example.com/${prefix.toLowerCase()}.git`, defaultBranch: 'main' });
  const bts = ['Build', 'Tests', 'Package', 'Deploy to Staging'].map((name, k) =>
    m.addBuildType({ id: `${prefix}_${name.replace(/ /g, '')}`, name, projectId: prefix, type: k === 3 ? 'deployment' : 'regular', vcsRootIds: [`${prefix}_Git`], branched: true, defaultBranchName: 'main' }),
  );
  return { projects: [prefix], buildTypes: bts.map((b) => b.id) };
}

/** A build finishing every `everyMs` somewhere: each tick commits, queues and starts a build on a random
 *  server; it runs 2–8 s and finishes. Records each build's finish time (simulator clock → wall clock). */
class Driver {
  private timer: NodeJS.Timeout | undefined;
  private readonly pending = new Set<NodeJS.Timeout>();
  readonly finishedAt = new Map<string, number>();
  private readonly rnd = new Prng(42);
  started = 0;

  constructor(
    private readonly servers: ServerInfo[],
    private readonly everyMs: number,
    /** connection id used in Jira pipeline ids, per server index */
    private readonly key: (s: ServerInfo) => string,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), this.everyMs);
  }

  private tick(): void {
    const s = this.servers[this.rnd.int(0, this.servers.length - 1)]!;
    const m = s.sim.model;
    const bt = s.buildTypes[this.rnd.int(0, s.buildTypes.length - 1)]!;
    m.addChange({ vcsRootId: `${s.prefix}_Git`, comment: `ABC-${this.rnd.int(1, 999)} ${this.rnd.pick(['Fix', 'Add', 'Improve'])} things\n\nRefs XYZ-${this.rnd.int(1, 999)}`, username: 'alice' });
    const b: Build = m.queueBuild({ buildTypeId: bt });
    m.startBuild(b.id);
    this.started++;
    const t = setTimeout(() => {
      this.pending.delete(t);
      const fin = m.finishBuild(b.id, { status: this.rnd.chance(0.85) ? 'SUCCESS' : 'FAILURE' });
      // The simulator's clock started at Date.now() and follows it: its finish date is wall time.
      this.finishedAt.set(`${this.key(s)}/${fin.id}`, fin.finishDate!);
    }, this.rnd.int(2000, 8000));
    this.pending.add(t);
  }

  stop(): void {
    clearInterval(this.timer);
    for (const t of this.pending) clearTimeout(t);
    this.pending.clear();
  }
}

function latencies(finishedAt: Map<string, number>, from: number, to: number, accepted: Map<string, number>): { values: number[]; undelivered: number; counted: number } {
  const values: number[] = [];
  let undelivered = 0;
  for (const [k, fin] of finishedAt) {
    if (fin < from || fin > to) continue;
    const at = accepted.get(k);
    if (at === undefined) undelivered++;
    else values.push(Math.max(0, at - fin));
  }
  return { values, undelivered, counted: values.length + undelivered };
}

export async function steady(cluster: PgCluster, p: BenchParams): Promise<Report> {
  log(`steady: ${p.servers} servers, a build finishing every ${p.buildEveryMs} ms, ${p.durationS} s measured, latency ${p.latencyMs} ms`);
  const w = await buildWorld(cluster, 'steady', p, { realTime: true, issues: true, setupServer: (sim, prefix) => liveServer(sim, prefix) });
  const workers = new Workers(w, p, cluster);
  const pollIntervalMs = DEFAULT_SYNC_SETTINGS.activeIntervalMs;
  try {
    await workers.start();
    // Warm-up: every server polled once (cursor set), then builds start flowing.
    await firstPollOfEveryServer(w, p.timeoutS);
    const driver = new Driver(w.servers, p.buildEveryMs, (s) => s.id);
    driver.start();
    // Let the stream reach steady state: servers first polled while nothing ran are on the idle cadence
    // (60 s) until a poll sees activity; the window starts once 99% of them are on the active cadence.
    const warmUpStarted = Date.now();
    const onActiveCadence = async () =>
      Number((await w.bdb.maintenance<{ n: string }>(`SELECT count(*) FILTER (WHERE poll_interval_s * 1000 = $1)::text AS n FROM sync_state`, [pollIntervalMs]))[0]!.n);
    await waitFor('the servers to reach the active poll cadence', Math.max(p.durationS, 3 * (DEFAULT_SYNC_SETTINGS.idleIntervalMs / 1000)), async () => (await onActiveCadence()) >= 0.99 * p.servers, 1000);
    await sleep(Math.max(0, Math.min(pollIntervalMs, p.durationS * 500) - (Date.now() - warmUpStarted)));
    const warmUp = { seconds: round((Date.now() - warmUpStarted) / 1000, 1), serversOnActiveCadence: await onActiveCadence() };
    log(`steady: warm-up ${warmUp.seconds} s, ${warmUp.serversOnActiveCadence}/${p.servers} servers on the active cadence`);
    const { rows0, t0, t1, resources, pollTimings } = await measuredWindow(w, workers, p.durationS);
    const rows1 = await rowsWritten(w.bdb);
    const tc = countTeamCity(w.sims, new Set(w.servers.map((s) => s.username)));
    const jiraWindow = countJira(w.world.sim.requests(), new Set(w.sites));
    // Drain: builds that finished inside the window get up to two poll intervals + 10 s to arrive.
    await waitFor('the last builds of the window to reach Jira', (2 * pollIntervalMs) / 1000 + 10, async () => {
      const j = countJira(w.world.sim.requests(), new Set(w.sites));
      return latencies(driver.finishedAt, t0, t1, j.acceptedFinalAt).undelivered === 0;
    }, 1000);
    driver.stop();
    const jira = countJira(w.world.sim.requests(), new Set(w.sites));
    const lat = latencies(driver.finishedAt, t0, t1, jira.acceptedFinalAt);
    const profile = await workers.stop();
    const finishedInWindow = lat.counted;
    const wallS = (t1 - t0) / 1000;
    const app = {
      buildsFinishedInWindow: finishedInWindow,
      buildsIngested: finishedInWindow,
      wallSeconds: round(wallS, 2),
      buildsPerSecond: round(finishedInWindow / wallS, 2),
      teamcity: {
        requests: tc.requests,
        byEndpoint: { server: tc.serverRequests, builds: tc.builds, buildById: tc.build, changes: tc.changes },
        polls: tc.serverRequests,
        pollsPerSecond: round(tc.serverRequests / wallS, 2),
        pollsNeededPerSecond: round(p.servers / (pollIntervalMs / 1000), 2),
        perPoll: round(tc.requests / Math.max(1, tc.serverRequests), 2),
        floorPerPoll: 1,
        perBuild: round(tc.requests / Math.max(1, finishedInWindow), 3),
        floorPerBuild: round(tc.serverRequests / Math.max(1, finishedInWindow), 3),
        floorNote: 'one builds request per poll finds what is new; per build the floor is polls/builds',
      },
      jira: {
        requests: jiraWindow.requests,
        entityUpdates: jiraWindow.entityUpdates,
        perBuild: round(jiraWindow.requests / Math.max(1, finishedInWindow), 3),
        floor: jiraWindow.floor,
        floorPerBuild: round(jiraWindow.floor / Math.max(1, finishedInWindow), 3),
        ratioToFloor: ratio(jiraWindow.requests, jiraWindow.floor),
        floorNote: 'ceil(distinct entities/100) per site, connection and kind over the whole window (no latency bound); running builds are sent as in_progress too',
      },
      latencyMs: { ...percentiles(lat.values), undelivered: lat.undelivered },
      resources,
      pollTimings,
      dbRowsWritten: rows1.ins + rows1.upd + rows1.del - (rows0.ins + rows0.upd + rows0.del),
    };

    let baseline: Record<string, unknown> | undefined;
    if (p.baseline) {
      log(`steady baseline on all ${w.servers.length} servers for ${p.durationS} s`);
      const jiraBl = await baselineJira(w, 'baseline', true);
      const users = new Set<string>();
      const byConn = new Map<string, ServerInfo>();
      const pollers = w.servers.map((s) => {
        const { server, user } = baselineServer(s, `bl${s.index}`);
        users.add(user);
        byConn.set(`bl${s.index}`, s);
        return new BaselinePoller(server, jiraBl, w.world.dispatcher);
      });
      const limiter = new Limiter(8);
      await Promise.all(pollers.map((b, i) => limiter.run(() => b.prime(new Date(w.servers[i]!.sim.model.now())))));
      const blDriver = new Driver(w.servers, p.buildEveryMs, (s) => `bl${s.index}`);
      blDriver.start();
      let stopping = false;
      const loops = pollers.map(async (b, i) => {
        await sleep((i / pollers.length) * pollIntervalMs); // spread, like the app's schedule
        while (!stopping) {
          const started = Date.now();
          await limiter.run(() => b.poll()).catch((err: unknown) => log(`baseline poll failed: ${String(err)}`));
          await sleep(Math.max(0, pollIntervalMs - (Date.now() - started)));
        }
      });
      await sleep(Math.min(pollIntervalMs, p.durationS * 500));
      clearRequests(w);
      const b0 = Date.now();
      const polls0 = pollers.reduce((s, b) => s + b.polls, 0);
      await sleep(p.durationS * 1000);
      const b1 = Date.now();
      const bPolls = pollers.reduce((s, b) => s + b.polls, 0) - polls0;
      const bTc = countTeamCity(w.sims, users);
      const bJiraWindow = countJira(w.world.sim.requests(), new Set(['baseline']));
      await waitFor('the baseline to deliver the window', (2 * pollIntervalMs) / 1000 + 10, async () => {
        const j = countJira(w.world.sim.requests(), new Set(['baseline']));
        return latencies(blDriver.finishedAt, b0, b1, j.acceptedFinalAt).undelivered === 0;
      }, 1000);
      stopping = true;
      blDriver.stop();
      const bJira = countJira(w.world.sim.requests(), new Set(['baseline']));
      const bLat = latencies(blDriver.finishedAt, b0, b1, bJira.acceptedFinalAt);
      await Promise.all(loops);
      baseline = {
        buildsFinishedInWindow: bLat.counted,
        teamcity: { requests: bTc.requests, polls: bPolls, perPoll: round(bTc.requests / Math.max(1, bPolls), 2), perBuild: round(bTc.requests / Math.max(1, bLat.counted), 3) },
        jira: { requests: bJiraWindow.requests, perBuild: round(bJiraWindow.requests / Math.max(1, bLat.counted), 3) },
        latencyMs: { ...percentiles(bLat.values), undelivered: bLat.undelivered },
      };
    }
    const p95 = app.latencyMs.p95;
    const cpuPct = resources.cpuPercentOfOneCore as number;
    return {
      scenario: 'steady',
      machine: machine(),
      params: { ...p, configurationsPerServer: 4, buildDurationMs: '2000-8000', pollIntervalMs, warmUp },
      app,
      ...(baseline ? { baseline, vsBaseline: compare(app, baseline) } : {}),
      targets: [
        target('p95 latency (ms)', `<= ${pollIntervalMs + 2000} (one poll interval + 2 s)`, p95, p95 !== null && p95 <= pollIntervalMs + 2000 && app.latencyMs.undelivered === 0),
        target('worker CPU (% of one core)', '<= 50', cpuPct, cpuPct <= 50),
      ],
      ...(profile ? { cpuProfile: profile } : {}),
    };
  } finally {
    await workers.stop().catch(() => undefined);
    await w.cleanup();
  }
}

// ================================================================================================ idle

/** How long row counts may take to reach pg_stat_user_tables (PostgreSQL's PGSTAT_IDLE_INTERVAL + 1 s). */
const STATS_FLUSH_MS = 11_000;

export async function idle(cluster: PgCluster, p: BenchParams): Promise<Report> {
  log(`idle: ${p.servers} servers, nothing happening, ${p.durationS} s measured`);
  const w = await buildWorld(cluster, 'idle', p, {
    realTime: false,
    issues: false,
    setupServer: (sim, prefix) => {
      const r = liveServer(sim, prefix);
      // a little finished history, older than the poll window
      for (const bt of r.buildTypes.slice(0, 2)) sim.model.runBuild({ buildTypeId: bt, durationMs: 1000 });
      sim.model.advance(72 * 3600_000);
      return r;
    },
  });
  const workers = new Workers(w, p, cluster);
  try {
    await workers.start();
    await firstPollOfEveryServer(w, p.timeoutS);
    // Let the first (cursor-setting) polls' writes and statistics settle, then measure. A busy
    // backend reports its row counts to pg_stat_user_tables at most once a second and an idle one
    // within PGSTAT_IDLE_INTERVAL (10 s): without this wait the warm-up's writes land in the window.
    await sleep(STATS_FLUSH_MS);
    const { rows0, t0, t1, resources, pollTimings } = await measuredWindow(w, workers, p.durationS);
    const tc = countTeamCity(w.sims, new Set(w.servers.map((s) => s.username)));
    // The same delay at the end: wait for the window's statistics, and count the polls made meanwhile too.
    await sleep(STATS_FLUSH_MS);
    const rows1 = await rowsWritten(w.bdb);
    const tcLate = countTeamCity(w.sims, new Set(w.servers.map((s) => s.username)));
    const [due] = await w.bdb.maintenance<{ overdue: string; maxlag: number | null }>(
      `SELECT count(*) FILTER (WHERE next_poll_at < now() - interval '5 seconds')::text AS overdue,
              extract(epoch FROM max(now() - next_poll_at))::float AS maxlag FROM sync_state`,
    );
    const profile = await workers.stop();
    const wallS = (t1 - t0) / 1000;
    const polls = tcLate.serverRequests;
    const written = rows1.ins + rows1.upd + rows1.del - (rows0.ins + rows0.upd + rows0.del);
    const byTable = Object.fromEntries(Object.entries(rows1.byTable).map(([k, v]) => [k, v - (rows0.byTable[k] ?? 0)]).filter(([, v]) => (v as number) > 0));
    const app = {
      wallSeconds: round(wallS, 2),
      teamcity: {
        requests: tc.requests,
        polls: tc.serverRequests,
        pollsPerSecond: round(tc.serverRequests / wallS, 2),
        pollsNeededPerSecond: round(p.servers / (DEFAULT_SYNC_SETTINGS.idleIntervalMs / 1000), 2),
        perPoll: round(tc.requests / Math.max(1, tc.serverRequests), 2),
        floorPerPoll: 1,
        ratioToFloor: round(tc.requests / Math.max(1, tc.serverRequests), 2),
        serversOverdueAtEnd: Number(due!.overdue),
        maxScheduleLagSeconds: due!.maxlag === null ? null : round(Math.max(0, due!.maxlag), 1),
      },
      jira: { requests: countJira(w.world.sim.requests(), new Set(w.sites)).requests },
      // No poll in the window (a window shorter than the 60 s idle interval): nothing to divide by.
      db: { rowsWritten: written, polls, rowsPerPoll: polls > 0 ? round(written / polls, 2) : null, byTable },
      resources,
      pollTimings,
    };
    let baseline: Record<string, unknown> | undefined;
    if (p.baseline) {
      // The baseline's cost of one idle poll: one request per configuration.
      const users = new Set<string>();
      const jiraBl = { baseUrl: w.world.sim.siteUrl(w.sites[0]!), sharedSecret: 'unused-no-builds' };
      const pollers = w.servers.slice(0, Math.min(50, w.servers.length)).map((s) => {
        const { server, user } = baselineServer(s, `bl${s.index}`);
        users.add(user);
        return new BaselinePoller(server, jiraBl, w.world.dispatcher);
      });
      const limiter = new Limiter(8);
      await Promise.all(pollers.map((b, i) => limiter.run(() => b.prime(new Date(w.servers[i]!.sim.model.now())))));
      clearRequests(w);
      await Promise.all(pollers.map((b) => limiter.run(() => b.poll())));
      const bTc = countTeamCity(w.sims, users);
      baseline = { servers: pollers.length, polls: pollers.length, teamcity: { requests: bTc.requests, perPoll: round(bTc.requests / pollers.length, 2) } };
    }
    const cpuPct = resources.cpuPercentOfOneCore as number;
    const rss = resources.peakRssMB as number;
    return {
      scenario: 'idle',
      machine: machine(),
      params: { ...p, configurationsPerServer: 4, idlePollIntervalMs: DEFAULT_SYNC_SETTINGS.idleIntervalMs },
      app,
      ...(baseline ? { baseline, vsBaseline: { teamcityRequestsPerPoll: { app: app.teamcity.perPoll, baseline: (baseline.teamcity as { perPoll: number }).perPoll } } } : {}),
      targets: [
        target('worker CPU (% of one core)', '<= 25', cpuPct, cpuPct <= 25),
        target('worker peak RSS (MB)', '<= 300', rss, rss <= 300),
        target('DB rows written per idle poll', '0 or 1', app.db.rowsPerPoll, app.db.rowsPerPoll !== null && app.db.rowsPerPoll <= 1),
        target('every server polled on schedule', 'no server overdue > 5 s', app.teamcity.serversOverdueAtEnd, app.teamcity.serversOverdueAtEnd === 0),
      ],
      ...(profile ? { cpuProfile: profile } : {}),
    };
  } finally {
    await workers.stop().catch(() => undefined);
    await w.cleanup();
  }
}

export function cleanupDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}
