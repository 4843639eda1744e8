// One build whose TeamCity data breaks the mapping (a `null` inside `revisions`, which no schema
// allows but a proxy or plugin could produce) is skipped and logged; the rest of its server syncs.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { createLogger } from '../../src/log.ts';
import { deliverTenant } from '../../src/sync/deliverer.ts';
import { pollServer } from '../../src/sync/poller.ts';
import { createServer } from '../../src/sync/servers.ts';
import { SyncWorker } from '../../src/sync/worker.ts';
import { createTestDatabase, DUE_NOW, type TestDatabase } from '../helpers/db.ts';
import { APP_KEY, startJiraWorld, type JiraWorld } from '../helpers/jira-app.ts';

let t: TestDatabase;
let world: JiraWorld;
let tc: TeamCitySimulator;
let proxy: Server;
let tenantId: string;
const serverId = randomUUID();
const lines: string[] = [];
const log = createLogger({ level: 'warn', destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }) });

/** Passes TeamCity's answers through, poisoning the revisions of builds on the branch `poison`. */
function startPoisoningProxy(target: string): Promise<{ server: Server; url: string }> {
  const server = createHttpServer((req, res) => {
    void (async () => {
      const upstream = await fetch(`${target}${req.url}`, { headers: { authorization: req.headers.authorization ?? '', accept: 'application/json' } });
      let body = await upstream.text();
      if (upstream.headers.get('content-type')?.includes('json')) {
        const json = JSON.parse(body) as { build?: { branchName?: string; revisions?: unknown }[]; branchName?: string; revisions?: unknown };
        for (const b of [...(json.build ?? []), json]) if (b.branchName === 'poison') b.revisions = { revision: [null] };
        body = JSON.stringify(json);
      }
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'text/plain' });
      res.end(body);
    })();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` })));
}

before(async () => {
  t = await createTestDatabase();
  tc = await startTeamCitySimulator();
  const p = await startPoisoningProxy(tc.url);
  proxy = p.server;
  world = await startJiraWorld(t, { sites: ['acme'] }, [new URL(p.url).host]);
  tenantId = await world.install('acme');
  const m = tc.model;
  m.addProject({ id: 'Shop', name: 'Shop' });
  m.addVcsRoot({ id: 'Shop_Git', projectId: 'Shop' });
  m.addBuildType({ id: 'Shop_Build', projectId: 'Shop', name: 'Build', vcsRootIds: ['Shop_Git'], branched: true });
  const token = m.addToken('admin');
  await t.db.withTenant(tenantId, (tx) => createServer(tx, world.secrets, tenantId, { id: serverId, name: 'TC', url: p.url, auth: { type: 'token', token } }));
});

after(async () => {
  await world.close();
  proxy.close();
  await tc.close();
  await t.drop();
});

test('a build with malformed data is skipped and logged; the others reach Jira and the server stays ok', async () => {
  const worker = new SyncWorker(
    t.db,
    {
      poll: async (tid, sid, wid) => void (await pollServer({ db: t.db, secrets: world.secrets, dispatcher: world.dispatcher, log }, tid, sid, wid)),
      deliver: async (tid, wid) => void (await deliverTenant({ db: t.db, tenants: world.tenants, appKey: APP_KEY, dispatcher: world.dispatcher, log }, tid, wid)),
    },
    log,
    { workerId: 'malformed' },
  );
  const round = async () => {
    await t.db.withTenant(tenantId, (tx) => tx.query(`UPDATE sync_state SET ${DUE_NOW}`));
    for (let i = 0; i < 2; i++) {
      await worker.tick();
      await worker.idle();
    }
  };
  await round(); // cursor at the server's now
  const m = tc.model;
  m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-1 poisoned', branch: 'poison' });
  const bad = m.runBuild({ buildTypeId: 'Shop_Build', branch: 'poison', durationMs: 1000 });
  m.addChange({ vcsRootId: 'Shop_Git', comment: 'TCJ-2 fine', branch: 'main' });
  const good = m.runBuild({ buildTypeId: 'Shop_Build', branch: 'main', durationMs: 1000 });
  m.advance(5000);
  await round();
  const site = world.sim.site('acme');
  assert.ok([...site.builds.values()].some((b) => b.buildNumber === good.id), 'the good build is in Jira');
  assert.ok(![...site.builds.values()].some((b) => b.buildNumber === bad.id), 'the malformed build is not');
  const state = await t.db.withTenant(tenantId, async (tx) => (await tx.query('SELECT state FROM teamcity_servers')).rows[0]!.state);
  assert.equal(state, 'ok');
  assert.ok(lines.some((l) => l.includes('build skipped: its data could not be mapped') && l.includes(`"buildId":${bad.id}`)), lines.join('\n'));
});
