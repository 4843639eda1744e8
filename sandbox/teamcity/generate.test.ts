 
// generateHistory: determinism, speed, realism of the data; query speed and lookupLimit escalation at 100k builds.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startTeamCitySimulator } from './server.ts';
import type { TeamCitySimulator } from './server.ts';
import { enc, get } from './test-helpers.ts';

function digest(sim: TeamCitySimulator): string {
  const h = createHash('sha256');
  for (const b of sim.model.builds.values()) {
    h.update(JSON.stringify([b.id, b.buildType.id, b.number, b.state, b.status, b.statusText, b.branch, b.personal, b.failedToStart, !!b.canceled, b.queuedDate, b.startDate, b.finishDate, b.changeIds, b.revisions, b.tests]));
  }
  for (const c of sim.model.changesAsc) h.update(JSON.stringify([c.id, c.version, c.username, c.date, c.comment, c.branch]));
  return h.digest('hex');
}

describe('generateHistory', () => {
  it('same seed → identical data (and HTTP output); different seed → different data', async () => {
    const opts = { seed: 1234, projects: 3, buildTypesPerProject: 4, buildsPerType: 300 };
    const a = await startTeamCitySimulator();
    const b = await startTeamCitySimulator();
    const c = await startTeamCitySimulator();
    try {
      a.generateHistory(opts);
      b.generateHistory(opts);
      c.generateHistory({ ...opts, seed: 4321 });
      assert.equal(digest(a), digest(b));
      assert.notEqual(digest(a), digest(c));
      const path = `/app/rest/builds?locator=${enc('defaultFilter:false,count:50')}&fields=${enc('build(id,number,state,status,branchName,startDate,finishDate,changes($locator(count:5),change(comment)))')}`;
      const [ra, rb] = await Promise.all([get(a.url, path), get(b.url, path.replace(a.url, b.url))]);
      assert.equal(ra.text.replaceAll(a.url, ''), rb.text.replaceAll(b.url, ''));
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  it('mixes states, types, branches and commit messages with and without Jira keys', async () => {
    const sim = await startTeamCitySimulator();
    try {
      const r = sim.generateHistory({ seed: 9, projects: 4, buildTypesPerProject: 10, buildsPerType: 150 });
      assert.ok(r.builds >= 6000 && r.builds <= 6080, String(r.builds));
      const m = sim.model;
      const builds = [...m.builds.values()];
      const has = (p: (b: (typeof builds)[number]) => boolean, what: string): void => assert.ok(builds.some(p), what);
      has((b) => b.state === 'queued', 'queued');
      has((b) => b.state === 'running' && !b.canceled, 'running');
      has((b) => b.state === 'running' && b.canceled !== null && b.status === 'UNKNOWN', 'running being canceled');
      has((b) => b.state === 'finished' && b.status === 'SUCCESS', 'success');
      has((b) => b.state === 'finished' && b.status === 'FAILURE' && !b.failedToStart, 'failure');
      has((b) => b.state === 'finished' && b.canceled !== null && b.number !== 'N/A', 'canceled');
      has((b) => b.number === 'N/A' && b.startDate === null, 'canceled while queued');
      has((b) => b.failedToStart, 'failed to start');
      has((b) => b.personal, 'personal');
      has((b) => b.buildType.type === 'composite', 'composite');
      has((b) => b.buildType.type === 'deployment', 'deployment');
      has((b) => b.branch === 'feature/ABC-12-login', 'feature branch');
      has((b) => b.branch === 'refs/heads/main', 'refs/heads default branch');
      has((b) => b.branch === '<default>', '<default>');
      has((b) => b.branch === null, 'non-branched');
      const comments = m.changesAsc.map((c) => c.comment);
      const some = (re: RegExp, what: string): void => assert.ok(comments.some((c) => re.test(c)), what);
      some(/^(ABC|XYZ|OPS)-\d+ /, 'key first');
      some(/\n.*\b(ABC|XYZ|OPS)-\d+/, 'key in body line');
      some(/^(abc|xyz|ops)-\d+:/, 'lowercase key');
      some(/UTF-8|SHA-256|CVE-2024-1234/, 'false positives');
      some(/^[^A-Za-z]*[A-Z][a-z]+ [a-z ]+[a-z]$/, 'no key');
      // live builds after generation pick up only new commits
      const bt = m.buildType(r.buildTypes[0]!);
      m.addChange({ vcsRootId: bt.vcsRootIds[0]!, comment: 'ABC-777 new work' });
      const nb = m.queueBuild({ buildTypeId: bt.id });
      assert.equal(nb.changeIds.length, 1);
    } finally {
      await sim.close();
    }
  });
});

describe('100k builds', () => {
  let sim: TeamCitySimulator;
  let genMs = 0;
  before(async () => {
    sim = await startTeamCitySimulator();
    const t = performance.now();
    sim.generateHistory({ seed: 42, projects: 5, buildTypesPerProject: 10, buildsPerType: 2000 });
    genMs = performance.now() - t;
  });
  after(async () => {
    await sim.close();
  });

  // Timings are reported, not asserted: a loaded CI machine must not fail the suite (figures belong in
  // the benchmark). On this project's 2-core machines: ~1.1 s to generate, < 100 ms per query.
  it('generates 50 configurations × 2,000 builds', (t) => {
    assert.ok(sim.model.builds.size >= 100_000 && sim.model.builds.size <= 100_100);
    t.diagnostic(`generated ${sim.model.builds.size} builds in ${genMs.toFixed(0)} ms`);
  });

  it('locator queries over 100k builds answer', async (t) => {
    const queries = [
      'count:100',
      'defaultFilter:false,count:1000',
      'buildType:(id:Gen03_Build),branch:default:any,count:100',
      'affectedProject:(id:Gen01),state:any,count:200',
      `defaultFilter:false,state:finished,personal:false,branch:default:any,startDate:(date:-2d),finishDate:(date:-1d),count:100`,
      'defaultFilter:false,state:running',
      'branch:feature/ABC-12-login,count:100',
    ];
    for (const q of queries) {
      const start = performance.now();
      const r = await get(sim.url, `/app/rest/builds?locator=${enc(q)}&fields=count,nextHref,build(id,state)`);
      const ms = performance.now() - start;
      assert.equal(r.status, 200, r.text);
      assert.ok(r.json.count > 0, q);
      t.diagnostic(`${q}: ${ms.toFixed(0)} ms`);
    }
  });

  it('selective query without a start cut-off hits lookupLimit: empty page + escalating nextHref (5000 → 10000 → 15000)', async () => {
    const r1 = await get(sim.url, `/app/rest/builds?locator=${enc('status:ERROR')}`);
    assert.equal(r1.json.count, 0);
    assert.equal(r1.json.nextHref, '/app/rest/builds?locator=status:ERROR,lookupLimit:10000');
    const r2 = await get(sim.url, r1.json.nextHref);
    assert.equal(r2.json.nextHref, '/app/rest/builds?locator=status:ERROR,lookupLimit:15000');
    const r3 = await get(sim.url, `/app/rest/builds?locator=${enc('status:ERROR,count:6000')}`);
    assert.equal(r3.json.nextHref, '/app/rest/builds?locator=status:ERROR,count:6000,lookupLimit:11000', 'count > 5000 raises the limit to count');
  });
});
