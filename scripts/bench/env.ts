// The benchmark's world: a PostgreSQL database (embedded unless DATABASE_URL is set), the Jira
// simulator with the app's lifecycle endpoints installed on its sites (real tenants, real shared
// secrets), TeamCity simulators, and the app's worker as separate child processes whose CPU and
// memory are read from /proc. The scratch database comes from scripts/lib, shared with the test helpers.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import type { Dispatcher } from 'undici';
import { startJiraSimulator, type JiraSimulator } from '../../sandbox/jira/server.ts';
import { createScratchDatabase } from '../lib/scratch-database.ts';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { Secrets } from '../../src/crypto/secrets.ts';
import { createPool, Database } from '../../src/db/database.ts';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded.ts';
import { InstallKeys } from '../../src/jira/install-keys.ts';
import { registerLifecycle } from '../../src/jira/lifecycle.ts';
import { createLogger } from '../../src/log.ts';
import { createOutboundDispatcher } from '../../src/net/outbound.ts';
import { TenantRepository } from '../../src/tenants/repository.ts';
import { buildServer } from '../../src/web/server.ts';

export const APP_KEY = 'teamcity-integration-for-jira';
export const quietLog = createLogger({ level: 'silent' });

export function machine(): Record<string, unknown> {
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    totalMemoryMB: Math.round(totalmem() / 2 ** 20),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    // Other work on the machine (1/5/15-minute load averages at the end of the scenario) skews every figure.
    loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

// ------------------------------------------------------------------------------------------ PostgreSQL

export interface PgCluster {
  adminUrl: string;
  kind: 'embedded' | 'external';
  ownerUrl?: string;
  appUrl?: string;
  /** PID of the embedded postmaster (its backends' CPU is reported); undefined for an external server. */
  postmasterPid?: number;
  stop(): Promise<void>;
}

export async function startCluster(): Promise<PgCluster> {
  if (process.env.DATABASE_URL) {
    return { adminUrl: process.env.DATABASE_URL, kind: 'external', stop: async () => {} };
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'tcj-bench-pg-'));
  const emb: EmbeddedDatabase = await startEmbeddedPostgres({ dataDir, log: createLogger({ level: 'warn' }) });
  let postmasterPid: number | undefined;
  try {
    postmasterPid = Number(readFileSync(join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    postmasterPid = undefined;
  }
  return {
    adminUrl: emb.superuserUrl,
    kind: 'embedded',
    ownerUrl: emb.ownerUrl,
    appUrl: emb.appUrl,
    ...(postmasterPid ? { postmasterPid } : {}),
    stop: async () => {
      await emb.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface BenchDatabase {
  name: string;
  ownerUrl: string;
  appUrl: string;
  db: Database;
  /** Owner connection; `maintenance()` runs a cross-tenant query as tcj_maintenance. */
  owner: pg.Pool;
  maintenance<T extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** A fresh, migrated database per scenario (migrations as the non-superuser owner, as in production). */
export async function createBenchDatabase(cluster: PgCluster, label: string): Promise<BenchDatabase> {
  const scratch = await createScratchDatabase(cluster, `tcj_bench_${label}`);
  const { name, ownerUrl, appUrl } = scratch;
  const db = new Database(createPool(appUrl, { max: 8 }));
  const owner = createPool(ownerUrl, { max: 3 });
  return {
    name,
    ownerUrl,
    appUrl,
    db,
    owner,
    async maintenance<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
      const c = await owner.connect();
      try {
        await c.query('BEGIN');
        await c.query('SET LOCAL ROLE tcj_maintenance');
        const r = await c.query<T>(sql, params);
        await c.query('COMMIT');
        return r.rows;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        c.release();
      }
    },
    drop: async () => {
      await db.close();
      await owner.end();
      await scratch.drop();
    },
  };
}

/** Rows inserted/updated/deleted in the database's user tables so far (pg_stat_user_tables). */
export async function rowsWritten(bdb: BenchDatabase): Promise<{ ins: number; upd: number; del: number; byTable: Record<string, number> }> {
  const { rows } = await bdb.owner.query<{ relname: string; ins: string; upd: string; del: string }>(
    `SELECT relname, n_tup_ins::text AS ins, n_tup_upd::text AS upd, n_tup_del::text AS del FROM pg_stat_user_tables`,
  );
  const out = { ins: 0, upd: 0, del: 0, byTable: {} as Record<string, number> };
  for (const r of rows) {
    out.ins += Number(r.ins);
    out.upd += Number(r.upd);
    out.del += Number(r.del);
    out.byTable[r.relname] = Number(r.ins) + Number(r.upd) + Number(r.del);
  }
  return out;
}

// ------------------------------------------------------------------------------------------ Jira side

export interface JiraWorld {
  sim: JiraSimulator;
  app: FastifyInstance;
  secrets: Secrets;
  keyringFile: string;
  tenants: TenantRepository;
  dispatcher: Dispatcher;
  /** Installs the app on a (new) site; returns the tenant id. */
  install(site: string, opts?: { issues?: boolean }): Promise<string>;
  close(): Promise<void>;
}

export const JIRA_PROJECTS = ['ABC', 'XYZ', 'OPS'];

export async function startJiraWorld(bdb: BenchDatabase, latencyMs: number, tcHosts: string[]): Promise<JiraWorld> {
  const keyDir = mkdtempSync(join(tmpdir(), 'tcj-bench-keys-'));
  const keyringFile = join(keyDir, 'keyring.json');
  const secrets = await Secrets.local(keyringFile, { secretsExist: async () => false });
  const tenants = new TenantRepository(bdb.db, secrets);
  const sim = await startJiraSimulator({ seed: 3, sites: [], latencyMs });
  const port = await freePort();
  const appUrl = `http://127.0.0.1:${port}`;
  const dispatcher = createOutboundDispatcher({ allowHosts: [new URL(sim.url).host, ...tcHosts], headersTimeoutMs: 30_000, bodyTimeoutMs: 30_000 });
  const app = buildServer({ db: bdb.db, log: quietLog });
  registerLifecycle(app, { appKey: APP_KEY, baseUrl: appUrl, tenants, installKeys: new InstallKeys(sim.keysUrl, dispatcher), allowHosts: [new URL(sim.url).host] });
  await app.listen({ port, host: '127.0.0.1' });
  return {
    sim,
    app,
    secrets,
    keyringFile,
    tenants,
    dispatcher,
    async install(siteName: string, opts: { issues?: boolean } = {}) {
      const site = await sim.addSite(siteName);
      if (opts.issues !== false) {
        for (const key of JIRA_PROJECTS) {
          site.addProject({ key, name: key });
          for (let i = 1; i <= 999; i++) site.addIssue(key, `${key} issue ${i}`);
        }
      }
      const r = await sim.installApp(siteName, `${appUrl}/atlassian-connect.json`);
      if (r.status !== 204) throw new Error(`install on ${siteName} failed: ${r.status} ${r.responseBody}`);
      return (await tenants.authByClientKey(r.clientKey))!.tenantId;
    },
    async close() {
      await app.close();
      await sim.close();
      await dispatcher.close();
      rmSync(keyDir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------------------------------ TeamCity side

export async function startTeamCitySims(n: number, latencyMs: number, opts: { realTime: boolean }): Promise<TeamCitySimulator[]> {
  const sims: TeamCitySimulator[] = [];
  for (let i = 0; i < n; i++) {
    const sim = await startTeamCitySimulator({
      version: '2025.11.2',
      seed: i + 1,
      realTime: opts.realTime,
      // Real-time simulators start at the wall clock, so a finish date is directly comparable with Jira's clock.
      ...(opts.realTime ? { startTime: Date.now() } : {}),
    });
    sim.faults.setLatency(latencyMs);
    sims.push(sim);
  }
  return sims;
}

// ------------------------------------------------------------------------------------------ worker processes

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime+stime of a process in seconds (from /proc/<pid>/stat), or undefined if it is gone. */
export function procCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** Current and peak resident set (MB) from /proc/<pid>/status. */
export function procMemoryMB(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** CPU seconds of the embedded PostgreSQL: the postmaster and all its children. */
export function postgresCpuSeconds(postmasterPid: number | undefined): number | undefined {
  if (!postmasterPid) return undefined;
  let total = procCpuSeconds(postmasterPid) ?? 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === postmasterPid) {
        // children's own time plus the time of their exited children (cutime/cstime)
        total += (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
      }
    } catch {
      // gone meanwhile
    }
  }
  // backends that already exited are accounted in the postmaster's cutime/cstime
  try {
    const stat = readFileSync(`/proc/${postmasterPid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total += (Number(fields[13]) + Number(fields[14])) / CLK_TCK;
  } catch {
    // ignore
  }
  return total;
}

export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  ready: Promise<void>;
  exited: Promise<number | null>;
  output(): string;
  /** Highest VmRSS seen by sample() (MB). */
  peakRssMB: number;
  sample(): void;
  /** The worker's own /metrics (every process serves it on its PORT). */
  metrics(): Promise<string>;
  /** The first log lines of failed polls or deliveries, to say why in the report. */
  failures: string[];
  stop(): Promise<number | null>;
}

export interface WorkerEnv {
  bdb: BenchDatabase;
  keyringFile: string;
  allowHosts: string[];
  logLevel: string;
  cpuProfDir?: string | undefined;
}

/** `node --import tsx src/cli.ts worker`: the real worker, exactly as an operator runs it. */
export async function startWorker(env: WorkerEnv, index: number): Promise<WorkerProcess> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'tcj-bench-worker-'));
  const args = ['--import', 'tsx'];
  // Default profile names (pid + thread): tsx's loader thread writes its own profile next to the main one.
  if (env.cpuProfDir) args.push('--cpu-prof', `--cpu-prof-dir=${join(env.cpuProfDir, `worker-${index}`)}`);
  args.push('src/cli.ts', 'worker');
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      DATABASE_URL: env.bdb.ownerUrl,
      DATABASE_APP_URL: env.bdb.appUrl,
      DATA_DIR: dataDir,
      KEYRING_FILE: env.keyringFile,
      OUTBOUND_ALLOW_HOSTS: env.allowHosts.join(','),
      LOG_LEVEL: env.logLevel,
      PORT: String(port),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let readyResolve: () => void = () => {};
  let readyReject: (e: Error) => void = () => {};
  const ready = new Promise<void>((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  // Below LOG_LEVEL=info the start-up line is not printed: give it a fixed time instead.
  const fallback = setTimeout(() => readyResolve(), 15_000);
  void ready.finally(() => clearTimeout(fallback)).catch(() => undefined);
  const failures: string[] = [];
  const onData = (d: Buffer) => {
    const s = d.toString();
    if (s.includes('sync worker started')) readyResolve();
    for (const line of s.split('\n')) if (failures.length < 5 && /"msg":"(poll failed|delivery paused[^"]*)"/.test(line)) failures.push(line.slice(0, 1500));
    out = (out + s).slice(-20_000);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<number | null>((r) =>
    child.on('exit', (code) => {
      readyReject(new Error(`worker exited (${code}) before it started:\n${out}`));
      rmSync(dataDir, { recursive: true, force: true });
      r(code);
    }),
  );
  const w: WorkerProcess = {
    child,
    pid: child.pid!,
    ready,
    exited,
    output: () => out,
    failures,
    peakRssMB: 0,
    sample() {
      const m = procMemoryMB(w.pid);
      if (m) w.peakRssMB = Math.max(w.peakRssMB, m.rss);
    },
    async metrics() {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      return res.text();
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
  return w;
}
