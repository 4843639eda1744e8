// Load: many tenants × servers on ONE `tcj worker` process, two TeamCity simulators with 20 ms
// latency, a trickle of builds; poll lag measured from sync_state (when a server was due vs when its
// poll committed), worker CPU and RSS read from /proc. Meanwhile the admin API and the lifecycle
// endpoint take a sustained load from 20 concurrent clients. Sizes: LOAD_TENANTS (default 200) ×
// 2 servers, LOAD_SECONDS (default 100).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { registerAdminApi } from '../../src/web/api/index.ts';
import { buildServer } from '../../src/web/server.ts';
import { createTestDatabase, quietLog, type TestDatabase } from '../helpers/db.ts';
import { APP_KEY, startJiraWorld, type JiraWorld } from '../helpers/jira-app.ts';
import { freePort } from '../helpers/net.ts';
import { BuildStream, connect, maintenance, percentile, prng, report, type Conn } from './harness.ts';

const TENANTS = Number(process.env.LOAD_TENANTS ?? 200);
const SECONDS = Number(process.env.LOAD_SECONDS ?? 100);
const CLK_TCK = 100;

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

function procStats(pid: number): { cpuS: number; rssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuS = (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime + stime
  const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuS, rssMb: Number(rss?.[1] ?? 0) / 1024 };
}

test(`load: ${TENANTS} tenants × 2 servers on one worker, admin API under load`, { timeout: 600_000 }, async () => {
  const t: TestDatabase = await createTestDatabase();
  cleanups.push(() => t.drop());
  const sims: TeamCitySimulator[] = [];
  for (const seed of [1, 2]) {
    const s = await startTeamCitySimulator({ seed, realTime: true });
    s.faults.setLatency(20);
    sims.push(s);
    cleanups.push(() => s.close());
  }
  const world: JiraWorld = await startJiraWorld(t, {}, sims.map((s) => new URL(s.url).host));
  cleanups.push(() => world.close());
  const setupStart = Date.now();
  const conns: Conn[] = [];
  for (let i = 0; i < TENANTS; i++) {
    const site = `site${i}`;
    const tenantId = await world.install(site);
    for (const sim of sims) conns.push(await connect(t.db, world, site, tenantId, sim, 'token'));
  }
  const setupMs = Date.now() - setupStart;

  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'worker'], {
    env: {
      ...process.env,
      DATABASE_URL: t.ownerUrl,
      DATABASE_APP_URL: t.appUrl,
      KEYRING_FILE: world.keyringFile,
      OUTBOUND_ALLOW_HOSTS: [...sims.map((s) => new URL(s.url).host), new URL(world.sim.url).host].join(','),
      LOG_LEVEL: 'warn',
      PORT: String(await freePort()),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  cleanups.push(async () => void child.kill('SIGKILL'));

  // Poll lag: every 250 ms, each server whose last_poll_at moved was polled; its lag is how long after
  // the previous next_poll_at that poll committed (both read from the database clock).
  const prev = new Map<string, { last: number | null; next: number }>();
  const firstLags: number[] = [];
  const lags: number[] = [];
  let polls = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const rows = await maintenance<{ server_id: string; last: string | null; next: string }>(
        t.ownerPool,
        `SELECT server_id, (extract(epoch FROM last_poll_at) * 1000)::float8::text AS last, (extract(epoch FROM next_poll_at) * 1000)::float8::text AS next FROM sync_state`,
      );
      for (const r of rows) {
        const last = r.last === null ? null : Number(r.last);
        const p = prev.get(r.server_id);
        if (p && last !== null && last !== p.last) {
          polls++;
          (p.last === null ? firstLags : lags).push(Math.max(0, last - p.next));
        }
        prev.set(r.server_id, { last, next: Number(r.next) });
      }
      await new Promise((res) => setTimeout(res, 250));
    }
  })();

  // A trickle of builds: every second, a build step on 10 random servers.
  const rnd = prng(7);
  const streams = conns.map((c, i) => new BuildStream(c, 1000 + i));
  let producing = true;
  const producer = (async () => {
    while (producing) {
      for (let k = 0; k < 10; k++) streams[Math.floor(rnd() * streams.length)]!.step();
      await new Promise((res) => setTimeout(res, 1000));
    }
  })();

  const cpu0 = { at: Date.now(), ...procStats(child.pid!) };
  let peakRss = 0;
  const rssTimer = setInterval(() => {
    try {
      peakRss = Math.max(peakRss, procStats(child.pid!).rssMb);
    } catch {
      /* exited */
    }
  }, 1000);

  // Admin API + lifecycle under load, once the worker has been busy for a while.
  await new Promise((r) => setTimeout(r, Math.max(0, (SECONDS - 20) * 1000)));
  const api = buildServer({ db: t.db, log: quietLog });
  registerAdminApi(api, { db: t.db, secrets: world.secrets, tenants: world.tenants, dispatcher: world.dispatcher, log: quietLog, appKey: APP_KEY, baseUrl: world.appUrl });
  const apiPort = await freePort();
  await api.listen({ port: apiPort, host: '127.0.0.1' });
  cleanups.push(() => api.close());
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const latencies: Record<string, number[]> = { servers: [], status: [], enabled: [] };
  const errors: string[] = [];
  const until = Date.now() + 15_000;
  const client = async (n: number) => {
    let i = 0;
    while (Date.now() < until) {
      const c = conns[(n * 7 + i * 13) % conns.length]!;
      const kind = (['servers', 'status', 'enabled'] as const)[i++ % 3]!;
      const t0 = performance.now();
      let status: number;
      if (kind === 'enabled') {
        status = (await world.sim.enableApp(c.site)).status;
      } else {
        const path = kind === 'servers' ? '/api/v1/servers' : `/api/v1/servers/${c.serverId}/status`;
        const res = await fetch(`${apiUrl}${path}`, { headers: { authorization: `JWT ${world.sim.contextToken(c.site, 'Alice Admin')}` } });
        await res.arrayBuffer();
        status = res.status;
      }
      latencies[kind]!.push(performance.now() - t0);
      if (status >= 300) errors.push(`${kind} ${status}`);
    }
  };
  const apiStart = Date.now();
  await Promise.all(Array.from({ length: 20 }, (_, n) => client(n)));
  const apiSecs = (Date.now() - apiStart) / 1000;
  await new Promise((r) => setTimeout(r, Math.max(0, SECONDS * 1000 - (Date.now() - cpu0.at))));

  const cpu1 = { at: Date.now(), ...procStats(child.pid!) };
  producing = false;
  await producer;
  sampling = false;
  await sampler;
  clearInterval(rssTimer);
  child.kill('SIGTERM');
  assert.equal(await exited, 0, out);

  const overdue = await maintenance<{ n: string; worst: string | null }>(
    t.ownerPool,
    `SELECT count(*) FILTER (WHERE last_poll_at IS NULL)::text AS n, max(extract(epoch FROM now() - next_poll_at))::text AS worst FROM sync_state`,
  );
  const all = [...latencies.servers!, ...latencies.status!, ...latencies.enabled!];
  const figures = {
    tenants: TENANTS,
    servers: conns.length,
    setupMs,
    seconds: Math.round((cpu1.at - cpu0.at) / 1000),
    polls,
    neverPolled: Number(overdue[0]!.n),
    firstPollLagMs: { p50: Math.round(percentile(firstLags, 50)), p95: Math.round(percentile(firstLags, 95)), max: Math.round(Math.max(...firstLags)) },
    pollLagMs: { n: lags.length, p50: Math.round(percentile(lags, 50)), p95: Math.round(percentile(lags, 95)), max: Math.round(Math.max(...lags)) },
    workerCpuPct: Math.round(((cpu1.cpuS - cpu0.cpuS) / ((cpu1.at - cpu0.at) / 1000)) * 100),
    workerPeakRssMb: Math.round(peakRss),
    api: {
      requests: all.length,
      rps: Math.round(all.length / apiSecs),
      p50: Math.round(percentile(all, 50)),
      p99: Math.round(percentile(all, 99)),
      p99ByKind: Object.fromEntries(Object.entries(latencies).map(([k, v]) => [k, Math.round(percentile(v, 99))])),
      errors: errors.length,
    },
  };
  report({
    scenario: `Load: ${TENANTS} tenants × 2 servers, one worker`,
    injected: `${conns.length} connections on 2 TeamCity simulators (20 ms latency), 10 build steps/s; 20 concurrent API clients for 15 s (GET /api/v1/servers, GET …/status, POST /lifecycle/enabled)`,
    checked: 'every server polled; poll lag after the first round; worker CPU/RSS; API throughput, p99, zero errors',
    result: `${figures.polls} polls in ${figures.seconds} s, ${figures.neverPolled} never polled; first poll lag p50/p95 ${figures.firstPollLagMs.p50}/${figures.firstPollLagMs.p95} ms; steady poll lag p50/p95/max ${figures.pollLagMs.p50}/${figures.pollLagMs.p95}/${figures.pollLagMs.max} ms; worker ${figures.workerCpuPct}% CPU, peak RSS ${figures.workerPeakRssMb} MB; API ${figures.api.rps} req/s, p50 ${figures.api.p50} ms, p99 ${figures.api.p99} ms, ${figures.api.errors} errors`,
    figures,
  });
  assert.deepEqual(errors.slice(0, 5), [], 'API errors under load');
  assert.equal(figures.neverPolled, 0, 'every server polled');
});
