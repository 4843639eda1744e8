// `npm run bench -- --scenario backfill|steady|idle|all [--servers N --builds N --latency-ms N --workers N ...]`
//
// Runs the real app (the `tcj worker` process, real PostgreSQL, real HTTP) against the TeamCity and
// Jira simulators on loopback with injected latency, and prints one JSON report per scenario on
// stdout (progress goes to stderr). See docs/performance.md for what each figure means.
import { parseArgs } from 'node:util';
import { startCluster } from './bench/env.ts';
import { backfill, idle, steady, type BenchParams, type Report } from './bench/scenarios.ts';

const USAGE = `usage: npm run bench -- [options]

  --scenario S        backfill | steady | idle | all (default all)
  --servers N         TeamCity servers (default: backfill 50, steady 500, idle 2000)
  --builds N          backfill: builds per server (default 2000)
  --latency-ms N      latency added to every TeamCity and Jira request (default 20)
  --workers N         worker processes (default 1)
  --tenants N         Jira sites the servers are spread over (default: servers / 10, at least 1)
  --sims N            TeamCity simulator instances the servers are spread over (default: min(servers, 50))
  --duration S        steady/idle: measured window in seconds (default 180 / 130; 15 with <= 20 servers)
  --build-every-ms N  steady: a build finishes every N ms somewhere (default 50)
  --baseline-servers N  backfill baseline: servers it runs on (default 8 = one wave of 8 parallel polls)
  --no-baseline       skip the baseline poller
  --cpu-prof          run the worker with --cpu-prof and add a profile summary to the report
  --log-level L       worker LOG_LEVEL (default info)
  --timeout S         give up waiting after S seconds (default 900)

Environment: DATABASE_URL (a PostgreSQL superuser URL; default: embedded PostgreSQL in a temp dir).`;

const DEFAULT_SERVERS = { backfill: 50, steady: 500, idle: 2000 } as const;
type Scenario = keyof typeof DEFAULT_SERVERS;

function int(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`error: --${name} expects a non-negative integer, got "${v}"\n`);
    process.exit(2);
  }
  return n;
}

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'all' },
    servers: { type: 'string' },
    builds: { type: 'string' },
    'latency-ms': { type: 'string' },
    workers: { type: 'string' },
    tenants: { type: 'string' },
    sims: { type: 'string' },
    duration: { type: 'string' },
    'build-every-ms': { type: 'string' },
    'baseline-servers': { type: 'string' },
    'no-baseline': { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
    'log-level': { type: 'string', default: 'info' },
    timeout: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const scenarios: Scenario[] = values.scenario === 'all' ? ['backfill', 'steady', 'idle'] : [values.scenario as Scenario];
if (!scenarios.every((s) => s in DEFAULT_SERVERS)) {
  process.stderr.write(`error: unknown scenario "${values.scenario}"\n${USAGE}\n`);
  process.exit(2);
}

function paramsFor(s: Scenario): BenchParams {
  const servers = int(values.servers, 'servers') ?? DEFAULT_SERVERS[s];
  const quick = servers <= 20;
  return {
    servers: Math.max(1, servers),
    builds: Math.max(20, int(values.builds, 'builds') ?? 2000),
    latencyMs: int(values['latency-ms'], 'latency-ms') ?? 20,
    workers: Math.max(1, int(values.workers, 'workers') ?? 1),
    tenants: int(values.tenants, 'tenants') ?? Math.max(1, Math.ceil(servers / 10)),
    sims: int(values.sims, 'sims') ?? Math.min(servers, 50),
    durationS: int(values.duration, 'duration') ?? (quick ? 15 : s === 'steady' ? 180 : 130),
    buildEveryMs: Math.max(1, int(values['build-every-ms'], 'build-every-ms') ?? 50),
    baseline: !values['no-baseline'],
    baselineServers: Math.max(1, int(values['baseline-servers'], 'baseline-servers') ?? 8),
    cpuProf: values['cpu-prof'],
    logLevel: values['log-level'],
    timeoutS: int(values.timeout, 'timeout') ?? 900,
  };
}

const cluster = await startCluster();
let failed = false;
try {
  for (const s of scenarios) {
    const started = Date.now();
    const p = paramsFor(s);
    let report: Report;
    try {
      report = s === 'backfill' ? await backfill(cluster, p) : s === 'steady' ? await steady(cluster, p) : await idle(cluster, p);
    } catch (err) {
      failed = true;
      report = { scenario: s, error: (err as Error).stack ?? String(err) };
    }
    report.scenarioSeconds = Math.round((Date.now() - started) / 1000);
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  }
} finally {
  await cluster.stop();
}
process.exit(failed ? 1 : 0);
