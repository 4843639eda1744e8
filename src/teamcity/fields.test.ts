// The `fields` strings: exact text, and honoured by the simulator (inline changes with comments,
// buildType.type, canceled/running/test details, paging links present, nothing unrequested).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Dispatcher } from 'undici';
import { startTeamCitySimulator, type TeamCitySimulator } from '../../sandbox/teamcity/server.ts';
import { TeamCityClient } from './client.ts';
import {
  BUILD_FIELDS,
  BUILD_TYPE_FIELDS,
  CHANGES_PAGE_FIELDS,
  SERVER_FIELDS,
  USER_FIELDS,
  buildFields,
  buildsPageFields,
} from './fields.ts';
import { backfillBuildsLocator, buildTypeIdLocator, runningBuildsLocator } from './locator.ts';
import type { TcBuild } from './types.ts';
import { adminClient } from '../../test/helpers/teamcity.ts';

/** Top-level names of a fields spec (`a,b(c,d),e` → a, b, e). */
function topLevel(spec: string): Set<string> {
  const out = new Set<string>();
  let depth = 0;
  let cur = '';
  for (const ch of spec) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.add(cur.replace(/\(.*$/s, ''));
      cur = '';
    } else cur += ch;
  }
  if (cur) out.add(cur.replace(/\(.*$/s, ''));
  return out;
}

describe('fields strings', () => {
  it('exact text', () => {
    assert.equal(
      BUILD_FIELDS,
      'id,buildTypeId,number,status,state,statusText,branchName,defaultBranch,personal,composite,failedToStart,history,' +
        'webUrl,queuedDate,startDate,finishDate,buildType(id,internalId,name,projectName,projectId,webUrl,type),' +
        'canceledInfo(timestamp,text,user(id,username,name)),' +
        'running-info(percentageComplete,elapsedSeconds,estimatedTotalSeconds,currentStageText,outdated,probablyHanging),' +
        'triggered(type,details,date,user(id,username,name)),' +
        'revisions(revision(version,vcsBranchName,vcs-root-instance(id,vcs-root-id,name))),' +
        'testOccurrences(count,passed,failed,newFailed,ignored,muted),problemOccurrences(count,newFailed)',
    );
    assert.equal(buildsPageFields(), `count,nextHref,build(${BUILD_FIELDS})`);
    assert.equal(
      buildsPageFields({ inlineChanges: 50 }),
      `count,nextHref,build(${BUILD_FIELDS},changes($locator(count:50),change(id,version,username,date,comment,webUrl)))`,
    );
    assert.equal(CHANGES_PAGE_FIELDS, 'count,nextHref,change(id,version,username,date,comment,webUrl,vcsRootInstance(id,vcs-root-id,name))');
    assert.equal(BUILD_TYPE_FIELDS, 'id,internalId,name,projectName,projectId,webUrl,type,description,paused');
    assert.equal(SERVER_FIELDS, 'version,versionMajor,versionMinor,buildNumber,currentTime,startTime,webUrl,internalId');
    assert.equal(USER_FIELDS, 'id,username,name');
    assert.throws(() => buildFields({ inlineChanges: 0 }), RangeError);
  });

  it('no build parameters are requested (403 without runtime-data permission; see fields.ts)', () => {
    for (const f of [buildsPageFields({ inlineChanges: 5 }), CHANGES_PAGE_FIELDS, BUILD_TYPE_FIELDS]) {
      assert.doesNotMatch(f, /properties|parameters/i);
    }
  });
});

describe('fields honoured by the simulator', () => {
  let sim: TeamCitySimulator;
  let dispatcher: Dispatcher;
  let client: TeamCityClient;
  let since: Date;
  const id = { tested: 0, deploy: 0, chain: 0, beingCanceled: 0 };

  before(async () => {
    sim = await startTeamCitySimulator({ version: '2024.12.1' });
    ({ client, dispatcher } = adminClient(sim));
    const m = sim.model;
    m.addProject({ id: 'Shop', name: 'Shop' });
    m.addProject({ id: 'Shop_Deploy', name: 'Deploy', parentId: 'Shop' });
    m.addVcsRoot({ id: 'Shop_Git', projectId: 'Shop' });
    m.addBuildType({ id: 'Shop_Build', name: 'Build', projectId: 'Shop', vcsRootIds: ['Shop_Git'] });
    m.addBuildType({ id: 'Shop_Chain', name: 'Chain', projectId: 'Shop', vcsRootIds: ['Shop_Git'], type: 'composite' });
    m.addBuildType({ id: 'Shop_Deploy_Prod', name: 'Deploy to Prod', projectId: 'Shop_Deploy', vcsRootIds: ['Shop_Git'], type: 'deployment' });
    since = new Date(m.now() - 1000);
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'ABC-1 first\n\nbody mentions XYZ-2' });
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'ABC-3 second' });
    m.addChange({ vcsRootId: 'Shop_Git', comment: 'third, no key' });
    id.tested = m.runBuild({ buildTypeId: 'Shop_Build', tests: { passed: 10, failed: 2, ignored: 1, muted: 1 }, status: 'FAILURE' }).id;
    id.deploy = m.runBuild({ buildTypeId: 'Shop_Deploy_Prod' }).id;
    id.chain = m.runBuild({ buildTypeId: 'Shop_Chain' }).id;
    const c = m.queueBuild({ buildTypeId: 'Shop_Build', branch: 'feature/ABC-7' });
    m.startBuild(c.id);
    m.cancelBuild(c.id, { user: 'admin', text: 'Stopped by admin' });
    id.beingCanceled = c.id;
  });
  after(async () => {
    await sim.close();
    await dispatcher.close();
  });

  it('builds page: count/nextHref present, inline changes with full comments, buildType.type, test counts', async () => {
    const pages = [];
    for await (const p of client.builds(backfillBuildsLocator({ since, count: 2 }), buildsPageFields({ inlineChanges: 2 }), { stopOnEmptyPage: false })) pages.push(p);
    assert.equal(pages.length, 2);
    assert.equal(pages[0]!.count, 2, 'count requested explicitly');
    const builds = new Map(pages.flatMap((p) => p.items).map((b) => [b.id, b]));
    const tested = builds.get(id.tested)!;
    assert.deepEqual(
      tested.changes?.change?.map((c) => c.comment),
      ['third, no key', 'ABC-3 second'],
      'newest first, capped by $locator(count:2), comments included',
    );
    assert.ok(tested.changes.change.every((c) => c.id > 0 && c.version && c.username && c.date && c.webUrl));
    assert.deepEqual(tested.testOccurrences, { count: 13, passed: 10, failed: 2, newFailed: 0, ignored: 1, muted: 1 });
    assert.equal(tested.buildType?.type, 'regular');
    assert.equal(tested.buildType?.projectName, 'Shop');
    assert.equal(builds.get(id.deploy)!.buildType?.type, 'deployment');
    assert.equal(builds.get(id.deploy)!.buildType?.projectName, 'Shop :: Deploy');
    assert.equal(builds.get(id.chain)!.buildType?.type, 'composite');
    assert.equal(builds.get(id.chain)!.composite, true);
    const allowed = topLevel(buildFields({ inlineChanges: 2 }));
    for (const b of builds.values()) {
      for (const k of Object.keys(b)) assert.ok(allowed.has(k), `unrequested field ${k}`);
      assert.equal(typeof b.personal, 'boolean', 'explicit booleans are emitted');
      assert.ok(b.revisions?.revision?.[0]?.vcsBranchName?.startsWith('refs/heads/'));
      assert.ok(b.revisions?.revision?.[0]?.['vcs-root-instance']?.['vcs-root-id']);
    }
  });

  it('a running build being canceled: canceledInfo and running-info', async () => {
    const items: TcBuild[] = [];
    for await (const p of client.builds(runningBuildsLocator())) items.push(...p.items);
    const b = items.find((x) => x.id === id.beingCanceled)!;
    assert.equal(b.state, 'running');
    assert.equal(b.status, 'UNKNOWN');
    assert.equal(b.canceledInfo?.text, 'Stopped by admin');
    assert.equal(b.canceledInfo?.user?.username, 'admin');
    assert.match(b.canceledInfo.timestamp!, /^\d{8}T\d{6}[+-]\d{4}$/);
    assert.equal(typeof b['running-info']?.percentageComplete, 'number');
    assert.equal(b.branchName, 'feature/ABC-7');
  });

  it('single build, changes page, build type, server and user', async () => {
    const b = await client.getBuild(id.tested, buildFields({ inlineChanges: 10 }));
    assert.equal(b?.changes?.change?.length, 3);
    assert.equal(b?.changes?.change?.[2]?.comment, 'ABC-1 first\n\nbody mentions XYZ-2');
    const changes = await client.allChanges(id.tested);
    assert.deepEqual(
      changes.map((c) => c.comment),
      ['third, no key', 'ABC-3 second', 'ABC-1 first\n\nbody mentions XYZ-2'],
    );
    assert.ok(changes.every((c) => c.vcsRootInstance?.['vcs-root-id'] === 'Shop_Git'));
    const bt = await client.getBuildType(buildTypeIdLocator('Shop_Deploy_Prod'));
    assert.deepEqual(Object.keys(bt!).sort(), ['id', 'internalId', 'name', 'paused', 'projectId', 'projectName', 'type', 'webUrl']);
    assert.equal(bt!.type, 'deployment');
    const server = await client.getServer();
    assert.deepEqual(Object.keys(server).sort(), [...topLevel(SERVER_FIELDS)].sort());
    const me = await client.getCurrentUser();
    assert.deepEqual(Object.keys(me).sort(), ['id', 'name', 'username']);
    const fieldsSent = sim.requests().map((r) => r.query.fields);
    assert.ok(fieldsSent.every((f) => f !== undefined && f !== ''), 'every request names its fields');
  });
});
