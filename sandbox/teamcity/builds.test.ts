 
// /app/rest/builds semantics over HTTP: ordering (§4.3), default filter (§2.3), paging (§5.1), locators (§2.2),
// and the long-build polling pitfall (§5.2).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTeamCitySimulator } from './server.ts';
import type { TeamCitySimulator } from './server.ts';
import { enc, followAll, get } from './test-helpers.ts';
import { formatTcDate } from './format.ts';

const MIN = 60_000;
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64url');
const ids = (r: { json: { build?: { id: number }[] } }): number[] => (r.json.build ?? []).map((b) => b.id);

async function baseServer(): Promise<TeamCitySimulator> {
  const sim = await startTeamCitySimulator({ version: '2024.12.1', errorFormat: 'structured2025' });
  const m = sim.model;
  m.addUser({ username: 'dev', password: 'pw' });
  m.addProject({ id: 'Shop', name: 'Shop' });
  m.addProject({ id: 'Shop_Backend', name: 'Backend', parentId: 'Shop' });
  m.addProject({ id: 'Other', name: 'Other' });
  m.addVcsRoot({ id: 'Shop_Git', projectId: 'Shop' });
  m.addVcsRoot({ id: 'Other_Git', projectId: 'Other' });
  m.addBuildType({ id: 'Shop_Build', name: 'Build', projectId: 'Shop', vcsRootIds: ['Shop_Git'] });
  m.addBuildType({ id: 'Shop_Backend_Api', name: 'API', projectId: 'Shop_Backend', vcsRootIds: ['Shop_Git'] });
  m.addBuildType({ id: 'Other_Build', name: 'Build', projectId: 'Other', vcsRootIds: ['Other_Git'] });
  return sim;
}

describe('ordering: queued, running, then finished newest-STARTED first (§4.3)', () => {
  let sim: TeamCitySimulator;
  before(async () => {
    sim = await baseServer();
  });
  after(async () => {
    await sim.close();
  });

  it('reproduces TCR testStopProcessing: started 20,10,30 / finished 10,30,20 → 30,10,20', async () => {
    const m = sim.model;
    const b10 = m.queueBuild({ buildTypeId: 'Shop_Build' });
    const b20 = m.queueBuild({ buildTypeId: 'Shop_Build' });
    const b30 = m.queueBuild({ buildTypeId: 'Shop_Build' });
    m.startBuild(b20.id);
    m.advance(MIN);
    m.startBuild(b10.id);
    m.advance(MIN);
    m.startBuild(b30.id);
    m.advance(MIN);
    m.finishBuild(b10.id);
    m.advance(MIN);
    m.finishBuild(b30.id);
    m.advance(MIN);
    m.finishBuild(b20.id);
    const running = m.queueBuild({ buildTypeId: 'Shop_Build' });
    m.startBuild(running.id);
    const queued1 = m.queueBuild({ buildTypeId: 'Shop_Build' });
    const queued2 = m.queueBuild({ buildTypeId: 'Shop_Build' });
    const r = await get(sim.url, `/app/rest/builds?locator=${enc('buildType:(id:Shop_Build),defaultFilter:false')}`);
    assert.deepEqual(ids(r), [queued1.id, queued2.id, running.id, b30.id, b10.id, b20.id]);
    const fin = await get(sim.url, '/app/rest/builds?locator=buildType:(id:Shop_Build)');
    assert.deepEqual(ids(fin), [b30.id, b10.id, b20.id], 'default = finished only');
  });
});

describe('default filter (§2.3) and flag dimensions', () => {
  let sim: TeamCitySimulator;
  const b: Record<string, number> = {};
  before(async () => {
    sim = await baseServer();
    const m = sim.model;
    b.ok = m.runBuild({ buildTypeId: 'Shop_Build' }).id;
    b.feature = m.runBuild({ buildTypeId: 'Shop_Build', branch: 'feature/ABC-12-login' }).id;
    b.personal = m.runBuild({ buildTypeId: 'Shop_Build', personal: true, user: 'dev' }).id;
    const c = m.queueBuild({ buildTypeId: 'Shop_Build' });
    m.startBuild(c.id);
    m.cancelBuild(c.id, { immediate: true });
    b.canceled = c.id;
    b.fts = m.failToStart(m.queueBuild({ buildTypeId: 'Shop_Build' }).id).id;
    b.queueCanceled = m.cancelBuild(m.queueBuild({ buildTypeId: 'Shop_Build' }).id).id;
    const r = m.queueBuild({ buildTypeId: 'Shop_Build', branch: 'feature/ABC-13' });
    m.startBuild(r.id);
    b.running = r.id;
    b.queued = m.queueBuild({ buildTypeId: 'Shop_Build' }).id;
  });
  after(async () => {
    await sim.close();
  });

  it('GET /builds = finished, non-personal, non-canceled, not failed-to-start, default branch', async () => {
    assert.deepEqual(ids(await get(sim.url, '/app/rest/builds')), [b.ok]);
  });

  it('defaultFilter:false returns everything (state:any)', async () => {
    const r = await get(sim.url, '/app/rest/builds?locator=defaultFilter:false');
    assert.deepEqual(new Set(ids(r)), new Set(Object.values(b)));
  });

  it('each implicit filter can be lifted separately', async () => {
    const q = async (l: string): Promise<number[]> => ids(await get(sim.url, `/app/rest/builds?locator=${enc(l)}`)).sort((x, y) => x - y);
    assert.deepEqual(await q('branch:default:any'), [b.ok!, b.feature!].sort((x, y) => x - y));
    assert.deepEqual(await q('personal:true'), [b.personal]);
    assert.deepEqual(await q('canceled:true'), [b.canceled!, b.queueCanceled!].sort((x, y) => x - y));
    assert.deepEqual(await q('failedToStart:true'), [b.fts]);
    assert.deepEqual(await q('state:queued'), [b.queued]);
    // requesting only running builds adds no implicit filters: the feature-branch build is listed
    assert.deepEqual(await q('state:running'), [b.running]);
    assert.deepEqual(await q('running:true'), [b.running]);
    // state:any keeps the implicit filters: the default-branch queued build is listed, nothing else new
    assert.deepEqual(await q('state:any'), [b.ok!, b.queued!].sort((x, y) => x - y));
    assert.deepEqual(await q('state:(running:true,finished:true),branch:default:any'), [b.ok!, b.feature!, b.running!].sort((x, y) => x - y));
  });

  it('id: locators bypass default filtering; queue-canceled and failed-to-start builds look as TeamCity renders them', async () => {
    const p = await get(sim.url, `/app/rest/builds/id:${b.personal}`);
    assert.equal(p.json.personal, true);
    assert.equal(p.json.user.username, 'dev');
    const qc = await get(sim.url, `/app/rest/builds/${b.queueCanceled}`);
    assert.equal(qc.json.number, 'N/A');
    assert.equal(qc.json.state, 'finished');
    assert.equal(qc.json.status, 'UNKNOWN');
    assert.equal(qc.json.statusText, 'Canceled');
    assert.ok(qc.json.canceledInfo);
    assert.equal(qc.json.startDate, undefined);
    const c = await get(sim.url, `/app/rest/builds/id:${b.canceled}`);
    assert.equal(c.json.status, 'UNKNOWN');
    assert.ok(c.json.canceledInfo);
    const f = await get(sim.url, `/app/rest/builds/id:${b.fts}`);
    assert.equal(f.json.failedToStart, true);
    assert.equal(f.json.status, 'FAILURE');
    const q = await get(sim.url, `/app/rest/builds/id:${b.queued}`);
    assert.equal(q.json.state, 'queued');
    assert.equal(q.json.number, undefined);
    assert.equal(q.json.status, undefined);
    const ok = await get(sim.url, `/app/rest/builds/id:${b.ok}`);
    assert.equal(ok.json.personal, undefined, 'false booleans are omitted by default');
    assert.equal(ok.json.defaultBranch, true);
    const explicit = await get(sim.url, `/app/rest/builds/id:${b.ok}?fields=id,personal,composite`);
    assert.deepEqual(explicit.json, { id: b.ok, personal: false, composite: false });
  });

  it('single-build locator applies the default filter and returns the newest match', async () => {
    const r = await get(sim.url, `/app/rest/builds/${enc('buildType:(id:Shop_Build)')}`);
    assert.equal(r.json.id, b.ok);
    const nf = await get(sim.url, `/app/rest/builds/${enc('buildType:(id:Shop_Build),status:FAILURE')}`);
    assert.equal(nf.status, 404);
    assert.match(nf.json.errors[0].message, /^Nothing is found by locator 'buildType:\(id:Shop_Build\),status:FAILURE'\./);
  });
});

describe('paging: count/start/nextHref/lookupLimit (§5.1)', () => {
  let sim: TeamCitySimulator;
  before(async () => {
    sim = await baseServer();
    const m = sim.model;
    for (let i = 0; i < 57; i++) {
      m.runBuild({ buildTypeId: i % 3 === 0 ? 'Shop_Backend_Api' : 'Shop_Build', branch: i % 4 === 0 ? 'feature/x' : undefined, status: i % 5 === 0 ? 'FAILURE' : 'SUCCESS', durationMs: MIN });
      m.advance(MIN);
    }
  });
  after(async () => {
    await sim.close();
  });

  it('following nextHref to the end returns every matching build exactly once, in order', async () => {
    const all = await get(sim.url, `/app/rest/builds?locator=${enc('branch:default:any,count:-1')}`);
    assert.equal(all.json.count, 57);
    assert.equal(all.json.nextHref, undefined);
    const paged = await followAll(sim.url, `/app/rest/builds?locator=${enc('branch:default:any,count:10')}&fields=count,nextHref,build(id)`);
    assert.equal(paged.pages, 6);
    assert.deepEqual(paged.items.map((x) => x.id), ids(all));
    // a full last page is followed by an empty one
    const exact = await followAll(sim.url, `/app/rest/builds?locator=${enc('branch:default:any,affectedProject:(id:Shop),count:19')}&fields=count,nextHref,build(id)`);
    assert.equal(exact.pages, 4);
    assert.equal(exact.items.length, 57);
  });

  it('nextHref/prevHref are built like PagerDataImpl (relative, same prefix, human-readable locator)', async () => {
    const r = await get(sim.url, `/httpAuth/app/rest/builds?locator=${enc('branch:(default:any),count:5,start:10')}&fields=count,href,nextHref,prevHref,build(id)`);
    assert.equal(r.json.href, `/httpAuth/app/rest/builds?locator=${enc('branch:(default:any),count:5,start:10')}&fields=count,href,nextHref,prevHref,build(id)`);
    assert.equal(r.json.nextHref, '/httpAuth/app/rest/builds?locator=branch:(default:any),count:5,start:15&fields=count,href,nextHref,prevHref,build(id)');
    assert.equal(r.json.prevHref, '/httpAuth/app/rest/builds?locator=branch:(default:any),count:5,start:5&fields=count,href,nextHref,prevHref,build(id)');
    const withoutFields = await get(sim.url, `/app/rest/builds?locator=count:3&fields=build(id)`);
    assert.equal(withoutFields.json.nextHref, undefined, 'explicit fields without nextHref drop the link');
    const noLocator = await get(sim.url, '/app/rest/builds?fields=count,nextHref');
    assert.deepEqual(noLocator.json, { count: 42 }, '42 default-branch builds < default page size 100: no nextHref');
  });

  it('lookupLimit: a page cut short by the limit carries nextHref with a larger lookupLimit and advanced start', async () => {
    // 57 finished; failures are i%5==0 → 12; scan only 10 items
    const r = await get(sim.url, `/app/rest/builds?locator=${enc('branch:default:any,status:FAILURE,count:5,lookupLimit:10')}`);
    assert.ok(r.json.count < 5);
    assert.equal(r.json.nextHref, `/app/rest/builds?locator=branch:default:any,status:FAILURE,count:5,lookupLimit:20,start:${r.json.count}`);
    const empty = await get(sim.url, `/app/rest/builds?locator=${enc('status:ERROR,lookupLimit:7')}`);
    assert.equal(empty.json.count, 0);
    assert.equal(empty.json.nextHref, '/app/rest/builds?locator=status:ERROR,lookupLimit:14', 'empty page still has nextHref');
    const nf = await get(sim.url, `/app/rest/builds/${enc('status:ERROR,lookupLimit:7')}`);
    assert.equal(nf.status, 404);
    assert.match(nf.json.errors[0].message, /while processing first 7 items/);
  });

  it('start/count windows and count:-1', async () => {
    const all = ids(await get(sim.url, `/app/rest/builds?locator=${enc('branch:default:any,count:-1')}`));
    const w = ids(await get(sim.url, `/app/rest/builds?locator=${enc('branch:default:any,start:7,count:4')}`));
    assert.deepEqual(w, all.slice(7, 11));
    const dflt = await get(sim.url, '/app/rest/builds?locator=branch:default:any');
    assert.equal(dflt.json.count, 57, 'default page size is 100');
  });
});

describe('locator dimensions', () => {
  let sim: TeamCitySimulator;
  const b: Record<string, number> = {};
  let t0 = 0;
  before(async () => {
    sim = await baseServer();
    const m = sim.model;
    t0 = m.now();
    b.main = m.runBuild({ buildTypeId: 'Shop_Build', durationMs: 5 * MIN }).id;
    m.advance(MIN);
    b.feat = m.runBuild({ buildTypeId: 'Shop_Build', branch: 'feature/ABC-12-login', durationMs: 5 * MIN }).id;
    m.advance(MIN);
    b.weird = m.runBuild({ buildTypeId: 'Shop_Build', branch: 'fix/a:b,(c)', durationMs: 5 * MIN }).id;
    m.advance(MIN);
    b.api = m.runBuild({ buildTypeId: 'Shop_Backend_Api', durationMs: 5 * MIN }).id;
    m.advance(MIN);
    b.other = m.runBuild({ buildTypeId: 'Other_Build', durationMs: 5 * MIN }).id;
  });
  after(async () => {
    await sim.close();
  });
  const q = async (l: string): Promise<number[]> => {
    const r = await get(sim.url, `/app/rest/builds?locator=${enc(l)}`);
    assert.equal(r.status, 200, r.text);
    return ids(r).sort((x, y) => x - y);
  };

  it('buildType, affectedProject (with subprojects), project (direct only)', async () => {
    assert.deepEqual(await q('buildType:(id:Shop_Backend_Api)'), [b.api]);
    assert.deepEqual(await q('buildType:Shop_Backend_Api'), [b.api]);
    assert.deepEqual(await q('buildType:(internalId:bt2)'), [b.api]);
    assert.deepEqual(await q('affectedProject:(id:Shop)'), [b.main!, b.api!].sort((x, y) => x - y));
    assert.deepEqual(await q('affectedProject:(id:_Root)'), [b.main!, b.api!, b.other!].sort((x, y) => x - y));
    assert.deepEqual(await q('project:(id:Shop)'), [b.main]);
    assert.deepEqual(await q('buildType:(affectedProject:(id:Shop_Backend))'), [b.api]);
  });

  it('branch: names (display or VCS), value conditions, $base64, <default>, policy', async () => {
    assert.deepEqual(await q('branch:feature/ABC-12-login'), [b.feat]);
    assert.deepEqual(await q('branch:(name:FEATURE/abc-12-LOGIN)'), [b.feat], 'case-insensitive');
    assert.deepEqual(await q('branch:refs/heads/feature/ABC-12-login'), [b.feat], 'matches vcsBranchName');
    assert.deepEqual(await q('branch:(name:(value:feature/,matchType:starts-with))'), [b.feat]);
    assert.deepEqual(await q('branch:(default:false)'), [b.feat!, b.weird!].sort((x, y) => x - y));
    assert.deepEqual(await q('buildType:(id:Shop_Build),branch:(default:true)'), [b.main]);
    assert.deepEqual(await q('buildType:(id:Shop_Build),branch:<default>'), [b.main]);
    assert.deepEqual(await q(`branch:($base64:${b64('feature/ABC-12-login')})`), [b.feat]);
    // branch value is re-parsed after base64 decoding: arbitrary names need name:(value:($base64:…))
    assert.deepEqual(await q(`branch:(name:(value:($base64:${b64('fix/a:b,(c)')})))`), [b.weird]);
    const quirk = await get(sim.url, `/app/rest/builds?locator=${enc(`branch:($base64:${b64('fix/a:b,(c)')})`)}`);
    assert.equal(quirk.status, 400);
    const policy = await get(sim.url, `/app/rest/builds?locator=${enc('branch:(policy:ALL_BRANCHES)')}`);
    assert.equal(policy.status, 400);
    assert.deepEqual(await q('buildType:(id:Shop_Build),branch:(policy:ALL_BRANCHES)'), [b.main!, b.feat!, b.weird!].sort((x, y) => x - y));
  });

  it('startDate/finishDate conditions (date formats, build references, before/after), sinceDate', async () => {
    const m = sim.model;
    const fmt = (t: number): string => formatTcDate(t, 0);
    // builds start at t0, t0+6m, t0+12m, t0+18m, t0+24m
    assert.deepEqual(await q(`branch:default:any,affectedProject:(id:_Root),startDate:(date:${fmt(t0 + 11 * MIN)},condition:after)`), [b.weird!, b.api!, b.other!]);
    assert.deepEqual(await q(`branch:default:any,startDate:(date:${new Date(t0 + 11 * MIN).toISOString()},condition:before)`), [b.main!, b.feat!]);
    assert.deepEqual(await q(`branch:default:any,finishDate:(build:(id:${b.weird}),condition:after)`), [b.api!, b.other!]);
    assert.deepEqual(await q(`branch:default:any,finishDate:(build:(id:${b.weird}),condition:after,includeInitial:true)`), [b.weird!, b.api!, b.other!]);
    assert.deepEqual(await q(`branch:default:any,startDate:${fmt(t0 + 17 * MIN)}`), [b.api!, b.other!]);
    assert.deepEqual(await q(`branch:default:any,sinceDate:${fmt(t0 + 18 * MIN)}`), [b.other], 'sinceDate is strictly after start');
    assert.deepEqual(await q(`branch:default:any,startDate:(date:-10m)`), [b.other], 'relative time');
    assert.ok(m.now() > t0);
    // an unescaped '+' arrives as a space → 400 with the hint
    const bad = await get(sim.url, `/app/rest/builds?locator=startDate:(date:20250602T090000+0000)`);
    assert.equal(bad.status, 400);
    assert.match(bad.json.errors[0].message, /Note that '\+' should be escaped in URL as '%2B'/);
    const legacy = await get(sim.url, `/app/rest/builds?locator=${enc('sinceDate:2025-06-02T09:00:00Z')}`);
    assert.equal(legacy.status, 400);
  });

  it('errors: unknown dimension 400, unknown buildType 404, bad single value 400', async () => {
    const u = await get(sim.url, `/app/rest/builds?locator=${enc('buildType:(id:Shop_Build),colour:blue')}`);
    assert.equal(u.status, 400);
    assert.match(u.json.errors[0].message, /Locator dimension \[colour\] is unknown/);
    const nb = await get(sim.url, `/app/rest/builds?locator=${enc('buildType:(id:Nope)')}`);
    assert.equal(nb.status, 404);
    assert.match(nb.json.errors[0].message, /No build types found by locator 'id:Nope'/);
    const sv = await get(sim.url, '/app/rest/builds/abc');
    assert.equal(sv.status, 400);
    const syntax = await get(sim.url, `/app/rest/builds?locator=${enc('buildType:(id:X')}`);
    assert.equal(syntax.status, 400);
  });

  it('fields: nested $locator on changes, testOccurrences, buildType(type)', async () => {
    const m = sim.model;
    for (let i = 0; i < 3; i++) m.addChange({ vcsRootId: 'Shop_Git', comment: `ABC-${i} change ${i}\n\nbody line OPS-9` });
    const built = m.runBuild({ buildTypeId: 'Shop_Build', tests: { passed: 5, failed: 1, ignored: 2 }, status: 'FAILURE' });
    const f = 'build(id,buildType(id,name,projectName,type),changes($locator(count:2),change(id,version,comment,username)),testOccurrences(count,passed,failed,ignored))';
    const r = await get(sim.url, `/app/rest/builds?locator=${enc(`id:${built.id}`)}&fields=${enc(f)}`);
    const x = r.json.build[0];
    assert.deepEqual(x.buildType, { id: 'Shop_Build', name: 'Build', projectName: 'Shop', type: 'regular' });
    assert.equal(x.changes.change.length, 2);
    assert.match(x.changes.change[0].comment, /^ABC-2 change 2\n\nbody line OPS-9$/);
    assert.deepEqual(Object.keys(x.changes.change[0]).sort(), ['comment', 'id', 'username', 'version']);
    assert.deepEqual(x.testOccurrences, { count: 8, passed: 5, failed: 1, ignored: 2 });
    const d = await get(sim.url, `/app/rest/builds/id:${built.id}`);
    assert.deepEqual(Object.keys(d.json.testOccurrences).sort(), ['count', 'failed', 'href', 'ignored', 'passed'], 'zero counters omitted by default');
  });
});

describe('the long-build polling pitfall (§5.2)', () => {
  let sim: TeamCitySimulator;
  before(async () => {
    sim = await baseServer();
  });
  after(async () => {
    await sim.close();
  });

  it('a naive "newer than the last seen build" poller misses a long build that finishes later; a finishDate window does not', async () => {
    const m = sim.model;
    const long = m.queueBuild({ buildTypeId: 'Shop_Build', estimatedDurationSec: 3600 });
    m.startBuild(long.id);
    m.advance(MIN);
    const s1 = m.runBuild({ buildTypeId: 'Shop_Build', durationMs: 2 * MIN });
    // poll 1
    const poll1Time = m.now();
    const p1 = await get(sim.url, '/app/rest/builds?locator=buildType:(id:Shop_Build)&fields=build(id,startDate,finishDate)');
    assert.deepEqual(ids(p1), [s1.id]);
    const lastSeen = Math.max(...ids(p1));
    // more short builds, then the long one finishes
    m.advance(MIN);
    const s2 = m.runBuild({ buildTypeId: 'Shop_Build', durationMs: 2 * MIN });
    m.advance(40 * MIN);
    m.finishBuild(long.id);
    const s3 = m.runBuild({ buildTypeId: 'Shop_Build', durationMs: 2 * MIN });

    // naive 1: walk newest-first until a known id → stops at s1, never reaches the long build
    const p2 = await get(sim.url, '/app/rest/builds?locator=buildType:(id:Shop_Build)');
    const order = ids(p2);
    assert.deepEqual(order, [s3.id, s2.id, s1.id, long.id], 'long build sorts by its early start');
    const naive = order.slice(0, order.indexOf(lastSeen));
    assert.ok(!naive.includes(long.id));
    // naive 2: sinceBuild (start-based) also misses it
    const since = await get(sim.url, `/app/rest/builds?locator=${enc(`buildType:(id:Shop_Build),sinceBuild:(id:${lastSeen})`)}`);
    assert.deepEqual(ids(since), [s3.id, s2.id]);
    assert.ok(!ids(since).includes(long.id));
    // naive 3: ids greater than the last seen one
    assert.ok(long.id < lastSeen);

    // the reference's recommended window (§5.4) finds it
    const W = 48 * 60 * MIN;
    const fmt = (t: number): string => formatTcDate(t, 0);
    const loc = `defaultFilter:false,state:finished,personal:false,branch:default:any,buildType:(id:Shop_Build),startDate:(date:${fmt(poll1Time - W)},condition:after),finishDate:(date:${fmt(poll1Time)},condition:after),count:100`;
    const good = await get(sim.url, `/app/rest/builds?locator=${enc(loc)}`);
    assert.deepEqual(ids(good).sort((a, b) => a - b), [long.id, s2.id, s3.id].sort((a, b) => a - b));
  });

  it('sinceBuild includes running/queued builds and compares by id when the reference is gone', async () => {
    const m = sim.model;
    const r = m.queueBuild({ buildTypeId: 'Shop_Build' });
    m.startBuild(r.id);
    const last = m.runBuild({ buildTypeId: 'Shop_Build' });
    const res = await get(sim.url, `/app/rest/builds?locator=${enc(`buildType:(id:Shop_Build),state:any,sinceBuild:(id:${last.id})`)}`);
    assert.deepEqual(ids(res), [r.id]);
    const gone = await get(sim.url, `/app/rest/builds?locator=${enc(`buildType:(id:Shop_Build),sinceBuild:(id:${last.id + 1000})`)}`);
    assert.deepEqual(ids(gone), []);
    const gone2 = await get(sim.url, `/app/rest/builds?locator=${enc(`buildType:(id:Shop_Build),sinceBuild:${last.id - 1}`)}`);
    assert.deepEqual(ids(gone2), [last.id]);
  });
});
