// `npm run demo`: the whole product on one machine, offline. Starts
//   - a TeamCity simulator with a realistic organisation (Web Shop, Payments API, Mobile App, a generated
//     background) and developers pushing, building, failing, cancelling and deploying every few seconds;
//   - a Jira Cloud simulator with the site "acme" (projects TCJ and DEMO) and an offline all.js;
//   - the app itself (`tcj start` from source, embedded PostgreSQL in .data/demo);
// installs the app on the site, connects the TeamCity server through the admin API as the site admin,
// prints the URLs, and keeps going until Ctrl-C (or `--exit-after N` seconds), then stops everything.
//
//   npm run demo [-- --port 3000] [--jira-port 4400] [--teamcity-port 8111] [--data-dir .data/demo]
//                   [--exit-after 60] [--seed 42]
// The data directory is wiped at every start (it is marked as the demo's own; another directory is refused).
import { createServer } from 'node:net';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startJiraSimulator, type JiraSimulator } from '../sandbox/jira/server.ts';
import { startTeamCitySimulator, type TeamCitySimulator } from '../sandbox/teamcity/server.ts';
import { isAlive } from '../src/db/embedded.ts';
import { startApp, type AppProcess } from './demo/app-process.ts';
import { Activity, createOrganisation, demoSiteSeed } from './demo/org.ts';

const SITE = 'acme';
const ADMIN = 'Alice Admin';
const DEVELOPER = 'Dan Developer';
const MARKER = '.tcj-demo';
const HISTORY_MS = 3 * 3600_000;

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '3000' },
    'jira-port': { type: 'string', default: '4400' },
    'teamcity-port': { type: 'string', default: '8111' },
    'data-dir': { type: 'string', default: '.data/demo' },
    'exit-after': { type: 'string' },
    seed: { type: 'string', default: '42' },
  },
});

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** The preferred port if it is free on 127.0.0.1, else any free one (0 = any). */
function portOrFree(preferred: number): Promise<number> {
  const attempt = (port: number) =>
    new Promise<number>((resolvePort, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => {
        const addr = srv.address();
        srv.close(() => (typeof addr === 'object' && addr ? resolvePort(addr.port) : reject(new Error('no port'))));
      });
    });
  return preferred > 0 ? attempt(preferred).catch(() => attempt(0)) : attempt(0);
}

/** A fresh demo data directory; refuses one that is not the demo's own or that a running app holds. */
function freshDataDir(dir: string): void {
  if (existsSync(dir)) {
    const entries = readdirSync(dir);
    if (entries.length > 0 && !entries.includes(MARKER)) {
      throw new Error(`${dir} is not empty and not a demo directory (no ${MARKER}); pass --data-dir with a new or demo directory`);
    }
    const lock = join(dir, 'app.lock');
    if (existsSync(lock)) {
      const pid = Number((JSON.parse(readFileSync(lock, 'utf8')) as { pid?: unknown }).pid);
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) throw new Error(`another demo is running on ${dir} (app pid ${pid}); stop it first or pass another --data-dir`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, MARKER), 'Data of `npm run demo`; wiped at every start.\n');
}

async function connectTeamCity(app: AppProcess, jira: JiraSimulator, tc: TeamCitySimulator, token: string): Promise<{ id: string; name: string }> {
  const r = await fetch(`${app.url}/api/v1/servers`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `JWT ${jira.contextToken(SITE, ADMIN)}` },
    body: JSON.stringify({ name: 'ACME TeamCity', url: tc.url, auth: { type: 'token', token }, backfillDays: 30 }),
  });
  const body = (await r.json()) as { id?: string; name?: string; error?: { message?: string } };
  if (r.status !== 201 || !body.id) throw new Error(`connecting TeamCity through the admin API failed: HTTP ${r.status} ${JSON.stringify(body)}`);
  return { id: body.id, name: body.name ?? 'ACME TeamCity' };
}

function jiraCounts(jira: JiraSimulator): { builds: number; deployments: number } {
  const site = jira.site(SITE);
  return { builds: site.builds.size, deployments: site.deployments.size };
}

async function main(): Promise<number> {
  const dataDir = resolve(values['data-dir']);
  const exitAfter = values['exit-after'] !== undefined ? Number(values['exit-after']) : undefined;
  if (exitAfter !== undefined && !(exitAfter > 0)) throw new Error('--exit-after expects a number of seconds > 0');
  const seed = Number(values.seed);

  let tc: TeamCitySimulator | undefined;
  let jira: JiraSimulator | undefined;
  let app: AppProcess | undefined;
  let ticker: NodeJS.Timeout | undefined;
  let status: NodeJS.Timeout | undefined;
  let stopping: Promise<number> | undefined;
  // Set by signal handlers and timers; read through this so TypeScript does not narrow it away.
  const stoppingNow = (): Promise<number> | undefined => stopping;
  let firstSignalAt = 0;

  const shutdown = (reason: string): Promise<number> => {
    stopping ??= (async () => {
      say(`\n${reason}: stopping…`);
      clearTimeout(ticker);
      clearInterval(status);
      let code = 0;
      if (app) {
        const appCode = await app.stop();
        say(`  app stopped (exit code ${appCode ?? 'killed'}; embedded PostgreSQL stopped with it)`);
        if (appCode !== 0) code = 1;
      }
      if (jira) {
        const c = jiraCounts(jira);
        say(`  Jira site ${SITE}: ${c.builds} builds, ${c.deployments} deployments received`);
        await jira.close();
      }
      await tc?.close();
      say('  simulators stopped. Bye.');
      return code;
    })();
    return stopping;
  };
  const onSignal = (sig: NodeJS.Signals) => {
    // Ctrl-C under `npm run` arrives twice (from the terminal and forwarded by npm): only a second
    // press, a moment later, means "now".
    if (firstSignalAt === 0) firstSignalAt = Date.now();
    else if (Date.now() - firstSignalAt < 1500) return;
    else {
      say(`\n${sig} again: exiting now`);
      if (app) {
        try {
          process.kill(-app.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      process.exit(1);
    }
    void shutdown(sig).then((code) => process.exit(code));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    say('TeamCity Integration for Jira — demo');
    freshDataDir(dataDir);
    const [appPort, jiraPort, tcPort] = [await portOrFree(Number(values.port)), await portOrFree(Number(values['jira-port'])), await portOrFree(Number(values['teamcity-port']))];

    // TeamCity on the wall clock; the last hours replayed in fast-forward so Jira gets a backlog at once.
    const started = Date.now();
    tc = await startTeamCitySimulator({ port: tcPort, version: '2025.11.2', realTime: true, startTime: started - HISTORY_MS, seed });
    const org = createOrganisation(tc);
    const activity = new Activity(tc, seed);
    activity.seedRecentHistory(Date.now(), 4 * 60_000);
    say(`  TeamCity simulator: ${org.configurations} configurations, ${activity.stats.queued} builds in the last ${HISTORY_MS / 3600_000} h (+ generated background)`);

    jira = await startJiraSimulator({ port: jiraPort, seed: `demo-${seed}`, sites: [{ name: SITE, seed: demoSiteSeed() }] });
    const allow = [...new Set([new URL(tc.url).host, new URL(jira.url).host])].join(',');

    const logFile = join(dataDir, 'app.log');
    say(`  starting the app (embedded PostgreSQL in ${relative(process.cwd(), dataDir) || dataDir}; log ${relative(process.cwd(), logFile)})…`);
    app = startApp({
      port: appPort,
      logFile,
      env: {
        DATA_DIR: dataDir,
        CONNECT_INSTALL_KEYS_URL: jira.keysUrl,
        OUTBOUND_ALLOW_HOSTS: allow,
        ATLASSIAN_ALL_JS_URL: `${jira.url}/all.js`,
        LOG_LEVEL: process.env['LOG_LEVEL'] ?? 'info',
      },
    });
    await Promise.race([app.ready, app.exited.then(() => undefined)]);
    const early = stoppingNow(); // Ctrl-C while the app was starting
    if (early) return await early;
    await app.ready; // rejects (with the log's last lines) if the app died on its own

    const installed = await jira.installApp(SITE, `${app.url}/atlassian-connect.json`);
    if (!installed.ok) throw new Error(`installing the app on ${SITE} failed: HTTP ${installed.status} ${installed.responseBody.slice(0, 300)}`);
    const server = await connectTeamCity(app, jira, tc, org.token);

    // Live: a developer action every 2–5 s.
    const live = () => {
      if (stoppingNow()) return;
      ticker = setTimeout(() => {
        try {
          activity.tick(3000);
        } catch (err) {
          say(`  (TeamCity activity error: ${err instanceof Error ? err.message : String(err)})`);
        }
        live();
      }, 2000 + Math.floor(Math.random() * 3000));
    };
    live();

    const site = jira.siteUrl(SITE);
    const issue = jira.site(SITE).findIssue('TCJ-3')!;
    const open = (user: string, path: string, extra: Record<string, string> = {}) =>
      `${site}/_sim/open?${new URLSearchParams({ user, path, ...extra }).toString().replace(/%2F/g, '/')}`;
    say();
    say(`Installed on Jira site "${SITE}" (${installed.appKey}); TeamCity connected as "${server.name}" (30-day backfill).`);
    say();
    say(`  Admin page (in Jira, as ${ADMIN}, site admin):`);
    say(`    ${open(ADMIN, '/pages/admin')}`);
    say('  Issue view (Jira simulator, builds and deployments arriving; reloads every 5 s):');
    say(`    ${site}/browse/${issue.key}?refresh=5`);
    say(`    ${site}/browse?refresh=5   (all issues)`);
    say(`  The app's issue panel for ${issue.key} (as ${DEVELOPER}):`);
    say(`    ${open(DEVELOPER, '/pages/issue', { issueId: issue.id, issueKey: issue.key })}`);
    say(`  Project page for TCJ (as ${ADMIN}):`);
    say(`    ${open(ADMIN, '/pages/project', { projectId: jira.site(SITE).projects.find((p) => p.key === 'TCJ')!.id, projectKey: 'TCJ' })}`);
    say(`  Metrics:            ${app.url}/metrics`);
    say(`  App:                ${app.url}  (descriptor ${app.url}/atlassian-connect.json, health ${app.url}/readyz)`);
    say(`  TeamCity simulator: ${tc.url}  (token for ${org.username}: ${org.token}; or basic admin:admin)`);
    say(`  Jira simulator:     ${jira.url}  (site ${SITE}: ${site})`);
    say();
    say(exitAfter ? `Stopping by itself after ${exitAfter} s (or Ctrl-C).` : 'Ctrl-C stops everything.');

    const j = jira;
    status = setInterval(() => {
      const c = jiraCounts(j);
      const s = activity.stats;
      say(`  [${new Date().toISOString().slice(11, 19)}] TeamCity: ${s.queued} builds queued so far (${s.failed} failed, ${s.canceled} canceled) · Jira ${SITE}: ${c.builds} builds, ${c.deployments} deployments`);
    }, 15_000);
    status.unref();
    if (exitAfter) setTimeout(() => void shutdown(`--exit-after ${exitAfter}`).then((code) => process.exit(code)), exitAfter * 1000).unref();

    // Stay up until a signal, --exit-after, or the app dying.
    const appCode = await app.exited;
    const requested = stoppingNow();
    if (requested) return await requested;
    say(`\nThe app exited unexpectedly (code ${appCode}); see ${logFile}`);
    await shutdown('app exited');
    return 1;
  } catch (err) {
    say(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}`);
    await shutdown('error');
    return 1;
  }
}

process.exit(await main());
