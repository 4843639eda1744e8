 
// The simulator reproduces the shape of every shared TeamCity fixture for the equivalent request, and its JSON
// validates against the TeamCity 2026.1 swagger definitions.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { startTeamCitySimulator } from './server.ts';
import type { TeamCitySimulator } from './server.ts';
import { assertSameShape, basic, fixtureJson, fixtureText, get } from './test-helpers.ts';

/**
 * Mirrors the icelander fixtures: a non-branched configuration on a 2019.2 server, builds triggered by a user,
 * one running build being canceled; plus a branched configuration with 12 default-branch builds and commits.
 */
async function fixtureServer(version: string): Promise<TeamCitySimulator> {
  const sim = await startTeamCitySimulator({ version });
  const m = sim.model;
  m.addUser({ username: 'paul', password: 'pw', name: 'Paul Rothrock', email: 'paul@example.com' });
  m.addUser({ username: 'bob', password: 'bob-pw', name: 'Bob' });
  m.addProject({ id: 'MattermostTeamcityPlugin', name: 'Mattermost Teamcity Plugin' });
  m.addVcsRoot({ id: 'MattermostTeamcityPlugin_Git', projectId: 'MattermostTeamcityPlugin', defaultBranch: 'master' });
  m.addBuildType({ id: 'MattermostTeamcityPlugin_Build', name: 'Build', projectId: 'MattermostTeamcityPlugin', vcsRootIds: ['MattermostTeamcityPlugin_Git'], branched: false });
  m.addProject({ id: 'Abc', name: 'Abc' });
  m.addVcsRoot({ id: 'Abc_Git', projectId: 'Abc' });
  m.addBuildType({ id: 'Abc_Master', name: 'Master', projectId: 'Abc', vcsRootIds: ['Abc_Git'], type: 'deployment' });
  for (let i = 0; i < 2; i++) {
    m.runBuild({ buildTypeId: 'MattermostTeamcityPlugin_Build', user: 'paul', durationMs: 3000, queueMs: 30_000 });
  }
  for (let i = 0; i < 12; i++) {
    m.addChange({ vcsRootId: 'Abc_Git', comment: `HIRO-${1000 + i}: James,Karl - Added tests`, username: 'teamhiro', files: ['src/A.java', 'src/B.java'] });
    m.advance(60_000);
    m.runBuild({ buildTypeId: 'Abc_Master', durationMs: 120_000, tests: i % 2 === 0 ? { passed: 10, failed: 0 } : undefined });
  }
  const running = m.queueBuild({ buildTypeId: 'MattermostTeamcityPlugin_Build', user: 'paul' });
  m.startBuild(running.id);
  m.advance(119_000);
  m.cancelBuild(running.id, { user: 'paul', text: 'Cancelling via curl' });
  return sim;
}

describe('fixture shapes (2019.2-style server)', () => {
  let sim: TeamCitySimulator;
  before(async () => {
    sim = await fixtureServer('2019.2.4');
  });
  after(async () => {
    await sim.close();
  });

  it('builds list with `*` fields = builds-list-long-fields-icelander', async () => {
    const r = await get(sim.url, '/app/rest/builds?locator=buildType:(id:MattermostTeamcityPlugin_Build)&fields=count,build(*)');
    assert.equal(r.status, 200);
    assert.equal(r.json.count, 2);
    assertSameShape(r.json, fixtureJson('builds/builds-list-long-fields-icelander.json'));
    assert.equal(r.json.build[0].running, false, 'false booleans are emitted under *');
  });

  it('default short builds list with nextHref = builds-list-buildType-nextHref-2019.2', async () => {
    const r = await get(sim.url, '/app/rest/builds?locator=buildType:(id:Abc_Master),start:0,count:10');
    assertSameShape(r.json, fixtureJson('builds/builds-list-buildType-nextHref-2019.2-anonymized.json'));
    assert.equal(r.json.nextHref, '/app/rest/builds?locator=buildType:(id:Abc_Master),start:10,count:10');
  });

  it('count:1 list = builds-list-count1-nextHref-yabm-sky-2017, with the same nextHref construction', async () => {
    const r = await get(sim.url, '/app/rest/builds?locator=buildType:MattermostTeamcityPlugin_Build,count:1');
    assertSameShape(r.json, fixtureJson('builds/builds-list-count1-nextHref-yabm-sky-2017.json'));
    assert.equal(r.json.href, '/app/rest/builds?locator=buildType:MattermostTeamcityPlugin_Build,count:1');
    assert.equal(r.json.nextHref, '/app/rest/builds?locator=buildType:MattermostTeamcityPlugin_Build,count:1,start:1');
  });

  it('running build being canceled = build-running-being-canceled-icelander', async () => {
    const list = await get(sim.url, '/app/rest/builds?locator=state:running&fields=build(id)');
    const id = list.json.build[0].id as number;
    const r = await get(sim.url, `/app/rest/builds/id:${id}`);
    const fx = fixtureJson('builds/build-running-being-canceled-icelander.json') as Record<string, unknown>;
    assertSameShape(r.json, fx);
    assert.equal(r.json.state, 'running');
    assert.equal(r.json.status, 'UNKNOWN');
    assert.equal(r.json.statusText, 'Canceled (Step 1/1)');
    assert.equal(r.json.canceledInfo.text, 'Cancelling via curl');
    assert.match(r.json.startDate, /^\d{8}T\d{6}[+-]\d{4}$/);
  });

  it('buildType = buildType-regular-full-icelander (no `type` unless requested)', async () => {
    const r = await get(sim.url, '/app/rest/buildTypes/id:MattermostTeamcityPlugin_Build');
    assertSameShape(r.json, fixtureJson('buildTypes/buildType-regular-full-icelander.json'));
    assert.equal(r.json.type, undefined);
    const typed = await get(sim.url, '/app/rest/buildTypes/id:Abc_Master?fields=id,name,projectName,type');
    assert.deepEqual(typed.json, { id: 'Abc_Master', name: 'Master', projectName: 'Abc', type: 'deployment' });
  });

  it('server = server-2019.2.4', async () => {
    const r = await get(sim.url, '/app/rest/server');
    assertSameShape(r.json, fixtureJson('server/server-2019.2.4-anonymized-webUrl.json'));
    assert.equal(r.json.versionMajor, 2019);
    assert.equal(r.json.versionMinor, 2);
    assert.match(r.json.version, /^2019\.2\.4 \(build \d+\)$/);
  });

  it('changes list (short) = changes-list-short-fields; newest change id first', async () => {
    const b = await get(sim.url, '/app/rest/builds?locator=buildType:(id:Abc_Master),count:1&fields=build(id)');
    const id = b.json.build[0].id as number;
    // two more commits picked up by one build
    sim.model.addChange({ vcsRootId: 'Abc_Git', comment: 'one' });
    sim.model.addChange({ vcsRootId: 'Abc_Git', comment: 'two' });
    const nb = sim.model.runBuild({ buildTypeId: 'Abc_Master' });
    const r = await get(sim.url, `/app/rest/changes?locator=build:(id:${nb.id})`);
    assertSameShape(r.json, fixtureJson('changes/changes-list-short-fields-yabm-sky-2017.json'));
    assert.equal(r.json.count, 2);
    assert.ok(r.json.change[0].id > r.json.change[1].id);
    assert.equal(r.json.change[0].comment, undefined, 'comment is not in the default list form');
    const one = await get(sim.url, `/app/rest/changes?locator=build:(id:${id})&fields=change(id,comment)`);
    assert.match(one.json.change[0].comment, /^HIRO-\d+: James,Karl/);
  });

  it('single change long form = change-single-with-jira-key-comment-files', async () => {
    const b = await get(sim.url, '/app/rest/builds?locator=buildType:(id:Abc_Master),count:1&fields=build(id)');
    const r = await get(sim.url, `/app/rest/changes?locator=build:(id:${b.json.build[0].id})&fields=change($long)`);
    assertSameShape(r.json.change[0], fixtureJson('changes/change-single-with-jira-key-comment-files-yabm-sky-2017.json'));
  });

  it('401 = errors/401-unauthenticated-response-2024.http (status, headers, body)', async () => {
    const fx = fixtureText('errors/401-unauthenticated-response-2024.http');
    const expectedBody = fx.slice(fx.indexOf('\n\n') + 2);
    for (const auth of [undefined, basic('paul', 'wrong'), 'Bearer nope']) {
      const res = await fetch(`${sim.url}/app/rest/builds`, { headers: { accept: 'application/json', ...(auth ? { authorization: auth } : {}) } });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('content-type'), 'text/plain;charset=UTF-8');
      assert.equal(res.headers.get('www-authenticate'), 'Basic realm="TeamCity", Bearer realm="TeamCity"');
      assert.equal(res.headers.get('teamcity-node-id'), 'MAIN_SERVER');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.equal(res.headers.get('transfer-encoding'), 'chunked');
      assert.equal(await res.text(), expectedBody);
    }
  });

  it('404 text/plain (2023 format) = errors/404-text-plain-user-not-found-2023.txt byte for byte', async () => {
    const r = await get(sim.url, '/app/rest/users/username:paul', { authorization: basic('bob', 'bob-pw') });
    assert.equal(r.status, 404);
    assert.equal(r.headers.get('content-type'), 'text/plain;charset=UTF-8');
    assert.equal(r.text, fixtureText('errors/404-text-plain-user-not-found-2023.txt'));
  });
});

describe('structured errors (2025+ server)', () => {
  let sim: TeamCitySimulator;
  before(async () => {
    sim = await fixtureServer('2025.11.1');
  });
  after(async () => {
    await sim.close();
  });

  it('XML error body has the structure of errors/404-xml-field-not-supported-2025.11.xml', async () => {
    const r = await get(sim.url, '/app/rest/builds/id:999999', { accept: 'application/xml' });
    assert.equal(r.status, 404);
    const tags = (s: string): string[] => [...s.matchAll(/<\/?([a-zA-Z]+)>/g)].map((x) => x[0]);
    assert.deepEqual(tags(r.text), tags(fixtureText('errors/404-xml-field-not-supported-2025.11.xml')));
    assert.match(r.text, /<message>Nothing is found by locator 'id:999999'\.<\/message>/);
    assert.match(r.text, /<statusText>Responding with error, status code: 404 \(Not Found\)\.<\/statusText>/);
  });

  it('JSON error body has the shape of errors/406-json-not-acceptable-2025.11.json; 406 for unacceptable Accept', async () => {
    const r = await get(sim.url, '/app/rest/builds/id:999999');
    assert.equal(r.status, 404);
    assertSameShape(r.json, fixtureJson('errors/406-json-not-acceptable-2025.11.json'));
    assert.equal(r.json.errors[0].statusText, 'Responding with error, status code: 404 (Not Found).');
    const na = await get(sim.url, '/app/rest/server', { accept: 'text/html' });
    assert.equal(na.status, 406);
    assert.match(na.text, /<message>Make sure you have supplied correct 'Accept' header\.<\/message>/);
  });

  it('error format is switchable at runtime', async () => {
    sim.setErrorFormat('text2023');
    const r = await get(sim.url, '/app/rest/builds/id:999999');
    assert.equal(r.headers.get('content-type'), 'text/plain;charset=UTF-8');
    assert.match(r.text, /^Responding with error, status code: 404 \(Not Found\)\.\nDetails: jetbrains\.buildServer\.server\.rest\.errors\.NotFoundException: Nothing is found by locator 'id:999999'\.\n/);
    sim.setErrorFormat('structured2025');
  });

  it('2025 servers use new-style webUrls (as the 2025 webhook payload fixtures)', async () => {
    const r = await get(sim.url, '/app/rest/builds?locator=buildType:(id:Abc_Master),count:1&fields=build(id,webUrl,buildType(webUrl),lastChanges(change(webUrl)))');
    const b = r.json.build[0];
    assert.equal(b.webUrl, `${sim.url}/buildConfiguration/Abc_Master/${b.id}`);
    assert.equal(b.buildType.webUrl, `${sim.url}/buildConfiguration/Abc_Master?mode=builds`);
    assert.match(b.lastChanges.change[0].webUrl, /\/change\/\d+\?personal=false$/);
  });
});

describe('JSON validates against the TeamCity 2026.1 swagger definitions', () => {
  let sim: TeamCitySimulator;
  let validate: (def: string, data: unknown) => void;
  before(async () => {
    sim = await fixtureServer('2026.1');
    const m = sim.model;
    // one build in every state
    m.addUser({ username: 'dev', password: 'x', name: 'Dev' });
    const q = m.queueBuild({ buildTypeId: 'Abc_Master', branch: 'feature/ABC-1-x' });
    void q;
    const qc = m.queueBuild({ buildTypeId: 'Abc_Master' });
    m.cancelBuild(qc.id, { user: 'dev' });
    const fts = m.queueBuild({ buildTypeId: 'Abc_Master' });
    m.failToStart(fts.id);
    m.runBuild({ buildTypeId: 'Abc_Master', personal: true, user: 'dev', status: 'FAILURE', tests: { passed: 3, failed: 2, newFailed: 1 } });
    const c = m.queueBuild({ buildTypeId: 'Abc_Master' });
    m.startBuild(c.id);
    m.cancelBuild(c.id, { immediate: true });
    const r = m.queueBuild({ buildTypeId: 'Abc_Master' });
    m.startBuild(r.id);
    m.markFailing(r.id);
    const ok = m.queueBuild({ buildTypeId: 'Abc_Master', branch: 'feature/ABC-2-y' });
    m.startBuild(ok.id);

    const swagger = fixtureJson('swagger/teamcity-rest-swagger-2.0-2026.1-pvel-AQA.json') as { definitions: Record<string, unknown> };
    // Swagger 2.0 definitions are JSON-schema draft-4-like; register them under an id so `#/definitions/x` resolves.
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
    const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv) => void;
    addFormats(ajv);
    ajv.addSchema({ $id: 'tc', definitions: swagger.definitions });
    validate = (def, data) => {
      const v = ajv.getSchema(`tc#/definitions/${def}`);
      assert.ok(v, `definition ${def}`);
      const ok = v(data);
      assert.ok(ok, `${def}: ${ajv.errorsText(v.errors)}\n${JSON.stringify(data).slice(0, 400)}`);
    };
  });
  after(async () => {
    await sim.close();
  });

  // Note on JSON vs swagger naming: real JSON uses JAXB element names as keys — `build: [...]` inside `builds`,
  // `change: [...]`, `property: [...]`, `vcs-root-instance` — which is what the swagger property names say too;
  // its `xml.name` hints only matter for XML. Where captures and swagger would differ we follow the captures.
  const RECOMMENDED =
    'count,href,nextHref,build(id,buildTypeId,number,status,state,statusText,branchName,defaultBranch,personal,composite,failedToStart,history,webUrl,queuedDate,startDate,finishDate,' +
    'buildType(id,name,projectName,projectId,webUrl,type),canceledInfo(timestamp,text,user(id,username,name)),' +
    'running-info(percentageComplete,elapsedSeconds,estimatedTotalSeconds,currentStageText,outdated,probablyHanging),' +
    'triggered(type,details,date,user(id,username,name)),revisions(revision(version,vcsBranchName,vcs-root-instance(id,vcs-root-id,name))),' +
    'lastChanges(change(id,version,username,date)),changes($locator(count:200),change(id,version,username,date,comment,webUrl)),' +
    'testOccurrences(count,passed,failed,newFailed,ignored,muted),problemOccurrences(count,newFailed))';

  it('builds lists (default, *, recommended fields) → `builds`', async () => {
    for (const q of ['locator=defaultFilter:false', 'locator=defaultFilter:false&fields=count,build(*)', `locator=defaultFilter:false,branch:default:any&fields=${encodeURIComponent(RECOMMENDED)}`]) {
      const r = await get(sim.url, `/app/rest/builds?${q}`);
      assert.equal(r.status, 200, r.text);
      assert.ok(r.json.build.length >= 20);
      validate('builds', r.json);
    }
  });

  it('every build state in long form → `build`', async () => {
    const all = await get(sim.url, '/app/rest/builds?locator=defaultFilter:false,branch:default:any,count:-1&fields=build(id,state,status,personal,failedToStart,canceledInfo(text))');
    const kinds = new Set<string>();
    for (const b of all.json.build) {
      kinds.add(`${b.state}/${b.status}/${b.personal ?? false}/${b.failedToStart ?? false}/${b.canceledInfo ? 'c' : ''}`);
      const r = await get(sim.url, `/app/rest/builds/id:${b.id}`);
      validate('build', r.json);
      const star = await get(sim.url, `/app/rest/builds/id:${b.id}?fields=*`);
      validate('build', star.json);
    }
    for (const k of ['queued/undefined/false/false/', 'running/SUCCESS/false/false/', 'running/FAILURE/false/false/', 'running/UNKNOWN/false/false/c', 'finished/SUCCESS/false/false/', 'finished/FAILURE/true/false/', 'finished/FAILURE/false/true/', 'finished/UNKNOWN/false/false/c']) {
      assert.ok(kinds.has(k), `missing ${k} in ${[...kinds].join(' ')}`);
    }
  });

  it('buildType, server, changes, change, user', async () => {
    validate('buildType', (await get(sim.url, '/app/rest/buildTypes/Abc_Master')).json);
    validate('buildType', (await get(sim.url, '/app/rest/buildTypes/id:Abc_Master?fields=id,internalId,name,type,paused,projectName,projectId,webUrl')).json);
    validate('server', (await get(sim.url, '/app/rest/server')).json);
    const b = await get(sim.url, '/app/rest/builds?locator=buildType:(id:Abc_Master),count:1&fields=build(id)');
    const changes = await get(sim.url, `/app/rest/changes?locator=build:(id:${b.json.build[0].id})`);
    validate('changes', changes.json);
    const long = await get(sim.url, `/app/rest/changes?locator=build:(id:${b.json.build[0].id})&fields=count,href,change($long)`);
    validate('changes', long.json);
    validate('change', long.json.change[0]);
    validate('user', (await get(sim.url, '/app/rest/users/current')).json);
    validate('user', (await get(sim.url, '/app/rest/users/username:dev')).json);
  });
});
