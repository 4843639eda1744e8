// Locator escaping and the poller's queries: exact strings, and real matching on the simulator for branch
// names with `/ ( ) , : $` and non-ASCII characters, user names in path locators, and scoping.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Dispatcher } from 'undici';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { TeamCityClient } from './client.ts';
import {
  activeBuildsLocator,
  backfillBuildsLocator,
  branchByName,
  buildIdLocator,
  buildTypeIdLocator,
  buildTypeInternalIdLocator,
  changesOfBuildLocator,
  finishedBuildsLocator,
  hasStartCutoff,
  locatorValue,
  pathLocatorValue,
  runningBuildsLocator,
  userByUsernameLocator,
} from './locator.ts';
import { adminClient } from '../../test/helpers/teamcity.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64url');

describe('locator value escaping (§2.1, Appendix A)', () => {
  it('raw, parenthesised or base64 by content', () => {
    assert.equal(locatorValue('Proj_Build'), 'Proj_Build');
    assert.equal(locatorValue('feature/ABC-1'), 'feature/ABC-1');
    assert.equal(locatorValue('a:b'), '(a:b)');
    assert.equal(locatorValue('a,b'), '(a,b)');
    assert.equal(locatorValue('fix(x)'), `($base64:${b64('fix(x)')})`);
    assert.equal(locatorValue('unbalanced)'), `($base64:${b64('unbalanced)')})`);
    assert.equal(locatorValue('$any'), `($base64:${b64('$any')})`);
    assert.equal(locatorValue('a:b(c)'), `($base64:${b64('a:b(c)')})`);
    assert.equal(locatorValue(''), '($base64:)');
    assert.doesNotMatch(locatorValue('ü:名(前)'), /[+/=]/, 'base64url without padding');
  });

  it('path locators also base64-escape characters servlet containers treat specially', () => {
    assert.equal(pathLocatorValue('alice'), 'alice');
    assert.equal(pathLocatorValue('a:b'), '(a:b)');
    for (const v of ['dom/user', 'dom\\user', '50%', 'a b', 'q?', 'h#', 'x;y']) {
      assert.equal(pathLocatorValue(v), `($base64:${b64(v)})`, v);
    }
  });

  it('branch names always go through a base64 value condition', () => {
    assert.equal(branchByName('main'), `(name:(value:($base64:${b64('main')})))`);
    assert.equal(branchByName('feature/ABC-1'), `(name:(value:($base64:${b64('feature/ABC-1')})))`);
  });

  it('single-entity locators', () => {
    assert.equal(buildIdLocator(42), 'id:42');
    assert.throws(() => buildIdLocator(-1), RangeError);
    assert.throws(() => buildIdLocator(1.5), RangeError);
    assert.equal(buildTypeIdLocator('Proj_Build'), 'id:Proj_Build');
    assert.equal(buildTypeInternalIdLocator('bt12'), 'internalId:bt12');
    assert.equal(userByUsernameLocator('alice'), 'username:alice');
    assert.equal(changesOfBuildLocator(7), 'build:(id:7),count:200');
    assert.equal(changesOfBuildLocator(7, 50), 'build:(id:7),count:50');
  });
});

describe('poller queries (§5.4): exact strings', () => {
  const T = new Date('2025-06-02T09:00:00Z');
  const W = new Date('2025-05-31T09:00:00Z');

  it('finished builds: start cut-off + finish filter, every branch and state, server offset', () => {
    assert.equal(
      finishedBuildsLocator({ startedAfter: W, finishedAfter: T, offsetMinutes: 180 }),
      'defaultFilter:false,state:finished,personal:false,branch:default:any,' +
        'startDate:(date:20250531T120000+0300,condition:after),finishDate:(date:20250602T120000+0300,condition:after),count:100',
    );
    assert.equal(
      finishedBuildsLocator({ startedAfter: W, finishedAfter: T, count: 50, scope: { affectedProject: 'Shop' } }),
      'defaultFilter:false,state:finished,personal:false,branch:default:any,' +
        'startDate:(date:20250531T090000+0000,condition:after),finishDate:(date:20250602T090000+0000,condition:after),' +
        'affectedProject:(id:Shop),count:50',
    );
    assert.equal(
      finishedBuildsLocator({ startedAfter: W, finishedAfter: T, scope: { buildType: 'Shop_Build', branch: 'main' } }),
      `defaultFilter:false,state:finished,personal:false,branch:(name:(value:($base64:${b64('main')}))),` +
        'startDate:(date:20250531T090000+0000,condition:after),finishDate:(date:20250602T090000+0000,condition:after),' +
        'buildType:(id:Shop_Build),count:100',
    );
  });

  it('running, active (queued and running), backfill', () => {
    assert.equal(runningBuildsLocator(), 'defaultFilter:false,state:running,personal:false,branch:default:any,count:100');
    assert.equal(
      runningBuildsLocator({ scope: { affectedProject: 'Shop' }, count: 20 }),
      'defaultFilter:false,state:running,personal:false,branch:default:any,affectedProject:(id:Shop),count:20',
    );
    assert.equal(activeBuildsLocator(), 'defaultFilter:false,state:(queued:true,running:true,finished:false),personal:false,branch:default:any,count:100');
    assert.equal(
      backfillBuildsLocator({ since: W, offsetMinutes: -300 }),
      'defaultFilter:false,state:finished,personal:false,branch:default:any,startDate:(date:20250531T040000-0500,condition:after),count:100',
    );
    assert.throws(() => runningBuildsLocator({ count: 0 }), RangeError);
  });

  it('hasStartCutoff tells queries with a start-time bound from the rest', () => {
    assert.equal(hasStartCutoff(finishedBuildsLocator({ startedAfter: W, finishedAfter: T })), true);
    assert.equal(hasStartCutoff(backfillBuildsLocator({ since: W })), true);
    assert.equal(hasStartCutoff(runningBuildsLocator()), false);
    assert.equal(hasStartCutoff('defaultFilter:false,finishDate:(date:20250101T000000+0000,condition:after)'), false);
    assert.equal(hasStartCutoff('startDate:(date:20250101T000000+0000,condition:before)'), false);
    assert.equal(hasStartCutoff('sinceBuild:(id:5)'), true);
  });
});

describe('escaping on the simulator (real HTTP)', () => {
  let sim: TeamCitySimulator;
  let dispatcher: Dispatcher;
  let client: TeamCityClient;
  const branches = [
    'feature/ABC-1-login',
    'feature/ABC-1',
    'fix/(weird) name',
    'hotfix/a,b:c',
    'release/1.0$final',
    'feature/ünïcødé-名前-ABC-9',
    'pull/42',
  ];
  const buildOf = new Map<string, number>();
  let since: Date;

  before(async () => {
    sim = await startTeamCitySimulator({ utcOffsetMinutes: 120 });
    ({ client, dispatcher } = adminClient(sim));
    const m = sim.model;
    m.addProject({ id: 'Shop' });
    m.addProject({ id: 'Shop_Sub', parentId: 'Shop' });
    m.addProject({ id: 'Other' });
    m.addVcsRoot({ id: 'Shop_Git', projectId: 'Shop' });
    m.addVcsRoot({ id: 'Other_Git', projectId: 'Other' });
    m.addBuildType({ id: 'Shop_Build', projectId: 'Shop', vcsRootIds: ['Shop_Git'] });
    m.addBuildType({ id: 'Shop_Sub_Deploy', projectId: 'Shop_Sub', vcsRootIds: ['Shop_Git'], type: 'deployment' });
    m.addBuildType({ id: 'Other_Build', projectId: 'Other', vcsRootIds: ['Other_Git'] });
    m.addUser({ username: 'ext:o(b),x', password: 'pw-1234567' });
    m.addUser({ username: 'corp/jürgen', password: 'pw-1234567' });
    since = new Date(m.now() - 1000);
    m.runBuild({ buildTypeId: 'Shop_Build' });
    for (const br of branches) buildOf.set(br, m.runBuild({ buildTypeId: 'Shop_Build', branch: br }).id);
    m.runBuild({ buildTypeId: 'Shop_Sub_Deploy' });
    m.runBuild({ buildTypeId: 'Other_Build' });
    const running = m.queueBuild({ buildTypeId: 'Shop_Build', branch: 'fix/(weird) name' });
    m.startBuild(running.id);
    buildOf.set('running', running.id);
  });
  after(async () => {
    await sim.close();
    await dispatcher.close();
  });

  async function ids(locator: string, stopOnEmptyPage = false): Promise<number[]> {
    const out: number[] = [];
    for await (const p of client.builds(locator, 'count,nextHref,build(id,branchName)', { stopOnEmptyPage })) out.push(...p.items.map((b) => b.id));
    return out;
  }

  it('each branch name matches exactly its own build (/, parentheses, comma, colon, $, non-ASCII)', async () => {
    for (const br of branches) {
      const loc = backfillBuildsLocator({ since, offsetMinutes: 120, scope: { branch: br } });
      assert.deepEqual(await ids(loc), [buildOf.get(br)], br);
    }
  });

  it('VCS branch names (refs/heads/…) match too, case-insensitively like TeamCity', async () => {
    assert.deepEqual(await ids(backfillBuildsLocator({ since, scope: { branch: 'refs/heads/hotfix/a,b:c' } })), [buildOf.get('hotfix/a,b:c')]);
    assert.deepEqual(await ids(backfillBuildsLocator({ since, scope: { branch: 'PULL/42' } })), [buildOf.get('pull/42')]);
  });

  it('running builds by branch', async () => {
    assert.deepEqual(await ids(runningBuildsLocator({ scope: { branch: 'fix/(weird) name' } }), true), [buildOf.get('running')]);
    assert.deepEqual(await ids(runningBuildsLocator({ scope: { branch: 'pull/42' } }), true), []);
  });

  it('queued and running builds in one list, queued first', async () => {
    const m = sim.model;
    const queued = m.queueBuild({ buildTypeId: 'Shop_Build', branch: 'fix/(weird) name' });
    try {
      assert.deepEqual(await ids(activeBuildsLocator({ scope: { branch: 'fix/(weird) name' } }), true), [queued.id, buildOf.get('running')]);
      const all = await ids(activeBuildsLocator(), true);
      assert.equal(all[0], queued.id);
      assert.ok(all.includes(buildOf.get('running')!));
    } finally {
      m.cancelBuild(queued.id, { immediate: true });
    }
  });

  it('every branch and every configuration without a scope; affectedProject includes subprojects; buildType narrows', async () => {
    const all = await ids(backfillBuildsLocator({ since }));
    assert.equal(all.length, branches.length + 3);
    const shop = await ids(backfillBuildsLocator({ since, scope: { affectedProject: 'Shop' } }));
    assert.equal(shop.length, branches.length + 2);
    const deploy = await ids(backfillBuildsLocator({ since, scope: { buildType: 'Shop_Sub_Deploy' } }));
    assert.equal(deploy.length, 1);
  });

  it('user and build type locators in URL paths', async () => {
    assert.equal((await client.getUser(userByUsernameLocator('ext:o(b),x')))?.username, 'ext:o(b),x');
    assert.equal((await client.getUser(userByUsernameLocator('corp/jürgen')))?.username, 'corp/jürgen');
    assert.equal(await client.getUser(userByUsernameLocator('nobody')), undefined);
    const bt = await client.getBuildType(buildTypeIdLocator('Shop_Sub_Deploy'));
    assert.equal(bt?.type, 'deployment');
    assert.equal((await client.getBuildType(buildTypeInternalIdLocator(bt.internalId!)))?.id, 'Shop_Sub_Deploy');
    for (const r of sim.requests().filter((x) => x.endpoint === 'user' || x.endpoint === 'buildType')) {
      assert.ok(r.status === 200 || r.status === 404, `${r.path} → ${r.status}`);
    }
  });
});
