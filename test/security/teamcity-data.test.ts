// Hostile TeamCity data (issue #8): a malicious or broken TeamCity server is a data source we do not
// control. Part 1 drives the TeamCity simulator's model through the REAL poller and deliverer: a 1 MB
// commit message, 10,000 changes in one build (inline cap → the changes endpoint, paged), thousands of
// issue keys in one build (cap 100, truncation recorded), control characters (NUL included) in
// commit messages, branch names and status texts, HTML in project/configuration/branch names (the
// admin API returns it verbatim as JSON data; the browser test covers escaping when rendered).
// Part 2: what the simulator cannot produce — invalid dates, missing fields, extra unknown fields,
// numbers as strings, unknown states — goes through the pure functions (src/teamcity/dates.ts,
// src/sync/transform.ts, src/sync/issue-keys.ts) and through recordBuild() (the poller's storage
// step) in a real transaction.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseTeamCityJson } from '../../src/teamcity/client.ts';
import { parseTcDate, tryParseTcDate } from '../../src/teamcity/dates.ts';
import type { TcBuild } from '../../src/teamcity/types.ts';
import { collectIssueKeys, issueKeyInputFromBuild } from '../../src/sync/issue-keys.ts';
import { recordBuild } from '../../src/sync/record.ts';
import { parseRules } from '../../src/sync/rules.ts';
import { getConnection } from '../../src/sync/servers.ts';
import { toJiraBuild, toJiraDeployment, TransformError } from '../../src/sync/transform.ts';
import { startSecurityWorld, type SecurityWorld } from './world.ts';

const PASSWORD = 'tcdata-pw-Wd71nB';
const HTML_PROJECT = '<img src=x onerror=alert("project")>';
const HTML_TYPE = '<script>alert("config")</script> & "quotes"';
let w: SecurityWorld;
let serverId = '';
let tenantId = '';

async function builds() {
  return (
    await w.admin.query<{ build_id: string; branch: string | null; issue_keys: string[]; truncated_keys: string[]; send_error: string | null; last_usn: string | null }>(
      'SELECT build_id, branch, issue_keys, truncated_keys, send_error, last_usn FROM builds WHERE server_id = $1 ORDER BY build_id',
      [serverId],
    )
  ).rows;
}

/** Syncs until the build is recorded (a loaded machine may need more than one round), at most 6 rounds. */
async function syncUntilRecorded(buildId: number): Promise<void> {
  for (let i = 0; i < 6; i++) {
    await w.sync(tenantId);
    if ((await builds()).some((x) => Number(x.build_id) === buildId)) return;
    w.tc.advance(1_000);
  }
  assert.fail(`build ${buildId} never recorded; server: ${JSON.stringify(await serverState())}`);
}

async function serverState() {
  return (await w.call('GET', `/api/v1/servers/${serverId}/status`)).body as { state: string; lastError?: string | null };
}

before(async () => {
  w = await startSecurityWorld({ logLevel: 'warn' });
  tenantId = w.tenantIds.acme!;
  const m = w.tc.model;
  m.addProject({ id: 'Evil', name: HTML_PROJECT });
  m.addVcsRoot({ id: 'Evil_Git', projectId: 'Evil', url: 'https://git.example.com/evil.git' });
  m.addBuildType({ id: 'Evil_Build', projectId: 'Evil', name: HTML_TYPE, type: 'regular', vcsRootIds: ['Evil_Git'], branched: true });
  m.addUser({ username: 'jira-sync', password: PASSWORD, viewProjects: 'all' });
  const r = await w.call('POST', '/api/v1/servers', { body: { name: 'Evil TC', url: w.tc.url, auth: { type: 'basic', username: 'jira-sync', password: PASSWORD }, backfillDays: 0 } });
  assert.equal(r.status, 201, r.text);
  serverId = r.body.id;
  await w.sync(tenantId); // cursor set
});

after(async () => {
  await w?.close();
});

describe('hostile TeamCity data through the real poller', () => {
  test('a 1 MB commit message with control characters: keys found, sync healthy', async () => {
    const m = w.tc.model;
    const comment = `TCJ-1 start\u0000\u0007\u001b[31m\r\n${'lorem ipsum '.repeat(87_000)}\n\u202eend TCJ-2\u0000`;
    assert.ok(comment.length > 1_000_000);
    m.addChange({ vcsRootId: 'Evil_Git', comment, branch: 'main' });
    const b = m.runBuild({ buildTypeId: 'Evil_Build', branch: 'main', durationMs: 5_000, statusText: 'Tests \u0000passed\u001b[0m <b>bold</b>' });
    w.tc.advance(10_000);
    const started = Date.now();
    await syncUntilRecorded(b.id);
    assert.ok(Date.now() - started < 30_000, `took ${Date.now() - started} ms`);
    const row = (await builds()).find((x) => Number(x.build_id) === b.id);
    assert.ok(row, 'recorded');
    assert.deepEqual(row.issue_keys.sort(), ['TCJ-1', 'TCJ-2']);
    assert.equal((await serverState()).state, 'ok');
    const jira = w.sim.site('acme').buildsForIssue('TCJ-2').find((x) => x.buildNumber === b.id);
    assert.ok(jira, 'delivered to Jira');
    assert.ok(!JSON.stringify(jira.data).includes('\\u0000'), 'no NUL sent to Jira');
  });

  test('10,000 changes in one build: the inline cap is completed from the changes endpoint', async () => {
    const m = w.tc.model;
    m.addChange({ vcsRootId: 'Evil_Git', comment: 'TCJ-3 the oldest commit of a huge merge', branch: 'main' });
    for (let i = 0; i < 9_999; i++) m.addChange({ vcsRootId: 'Evil_Git', comment: `chore: step ${i}`, branch: 'main' });
    const b = m.runBuild({ buildTypeId: 'Evil_Build', branch: 'main', durationMs: 5_000 });
    w.tc.advance(10_000);
    w.tc.clearRequests();
    const started = Date.now();
    await syncUntilRecorded(b.id);
    const row = (await builds()).find((x) => Number(x.build_id) === b.id);
    assert.ok(row, `recorded (${Date.now() - started} ms)`);
    assert.ok(row.issue_keys.includes('TCJ-3'), `the oldest commit's key: ${row.issue_keys.join(',')}`);
    const changePages = w.tc.requests().filter((q) => q.path.endsWith('/app/rest/changes'));
    assert.ok(changePages.length >= 2, `paged through the changes endpoint (${changePages.length} requests)`);
    assert.equal((await serverState()).state, 'ok');
  });

  test('thousands of issue keys in one build: capped at 100, the rest recorded as truncated', async () => {
    const m = w.tc.model;
    const keys = Array.from({ length: 3000 }, (_, i) => `ABC-${i + 1}`);
    m.addChange({ vcsRootId: 'Evil_Git', comment: `TCJ-4 ${keys.join(' ')}`, branch: 'main' });
    const b = m.runBuild({ buildTypeId: 'Evil_Build', branch: 'main', durationMs: 5_000 });
    w.tc.advance(10_000);
    await syncUntilRecorded(b.id);
    const row = (await builds()).find((x) => Number(x.build_id) === b.id)!;
    assert.equal(row.issue_keys.length, 100);
    assert.equal(row.issue_keys[0], 'TCJ-4');
    assert.equal(row.truncated_keys.length, 2901);
    const sent = w.sim.requests().filter((q) => q.path === '/rest/builds/0.1/bulk').flatMap((q) => (q.body as { builds: Array<{ buildNumber: number; issueKeys: string[] }> }).builds).filter((x) => x.buildNumber === b.id);
    assert.ok(sent.length > 0 && sent.every((x) => x.issueKeys.length <= 100), 'Jira never got more than 100 keys');
    const diag = await w.call('GET', '/api/v1/diagnose/TCJ-4');
    assert.equal(diag.status, 200);
    assert.match(diag.text, /truncat/i, 'the diagnostic shows the truncation');
  });

  test('control characters (NUL) in a branch name do not poison the server', async () => {
    const m = w.tc.model;
    m.addChange({ vcsRootId: 'Evil_Git', comment: 'TCJ-5 on a strange branch', branch: 'feature/TCJ-5\u0000\u0001\u001b' });
    const b = m.runBuild({ buildTypeId: 'Evil_Build', branch: 'feature/TCJ-5\u0000\u0001\u001b', durationMs: 5_000 });
    m.addChange({ vcsRootId: 'Evil_Git', comment: 'TCJ-1 a normal build after it', branch: 'main' });
    const after = m.runBuild({ buildTypeId: 'Evil_Build', branch: 'main', durationMs: 5_000 });
    w.tc.advance(10_000);
    await syncUntilRecorded(after.id);
    const status = await serverState();
    assert.equal(status.state, 'ok', `server state ${status.state}: ${status.lastError ?? ''}`);
    const rows = await builds();
    const strange = rows.find((x) => Number(x.build_id) === b.id);
    assert.ok(strange, 'the build with the strange branch is recorded');
    assert.ok(!strange.branch?.includes('\u0000'));
    assert.ok(strange.issue_keys.includes('TCJ-5'));
    assert.ok(rows.some((x) => Number(x.build_id) === after.id), 'later builds still flow');
  });

  test('HTML in TeamCity names comes back verbatim as JSON data (never interpreted by the API)', async () => {
    const preview = await w.call('GET', `/api/v1/servers/${serverId}/rules`);
    assert.equal(preview.status, 200);
    assert.match(preview.headers.get('content-type') ?? '', /application\/json/);
    const conf = preview.body.preview.configurations.find((c: { buildTypeId: string }) => c.buildTypeId === 'Evil_Build');
    assert.equal(conf.name, HTML_TYPE);
    assert.ok(preview.text.includes(JSON.stringify(HTML_PROJECT).slice(1, -1)), 'project name verbatim');
    const activity = await w.call('GET', '/api/v1/activity?issueKey=TCJ-1');
    assert.match(activity.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(activity.headers.get('x-content-type-options'), 'nosniff');
    const names = [...w.sim.site('acme').builds.values()].map((b) => String(b.data.displayName));
    assert.ok(names.length > 0 && names.every((n) => n.includes('<script>alert("config")</script>')), `sent verbatim to Jira: ${names.join(' | ')}`);
  });
});

describe('anomalies the simulator cannot produce (pure functions and recordBuild)', () => {
  const base = (over: Partial<TcBuild> & Record<string, unknown> = {}): TcBuild =>
    ({
      id: 9_000_001,
      state: 'finished',
      status: 'SUCCESS',
      number: '42',
      branchName: 'main',
      buildType: { id: 'Evil_Build', name: 'Build', projectName: 'Evil', webUrl: 'https://tc.example.com/buildConfiguration/Evil_Build' },
      webUrl: 'https://tc.example.com/build/9000001',
      queuedDate: '20250601T100000+0000',
      startDate: '20250601T100100+0000',
      finishDate: '20250601T101000+0000',
      ...over,
    }) as unknown as TcBuild;
  const ctx = { connectionId: 'conn-1', issueKeys: ['TCJ-1'], updateSequenceNumber: 1 };

  test('invalid dates are rejected by the date parser, never guessed', () => {
    for (const s of ['', 'garbage', '20250231T000000+0000', '20251301T000000+0000', '20250601T250000+0000', '20250601T100000', '2025-06-01T10:00:00Z', '20250601T100000+2500', '99999999T999999+9999', '20250601T100000+0000\u0000', ' ', '0'.repeat(10_000)]) {
      assert.equal(tryParseTcDate(s), undefined, JSON.stringify(s.slice(0, 40)));
      assert.throws(() => parseTcDate(s));
    }
    assert.equal(tryParseTcDate(undefined), undefined);
    assert.equal(tryParseTcDate(null), undefined);
    assert.equal(tryParseTcDate(12345 as unknown as string), undefined);
  });

  test('transform: missing fields, bad dates, strings for numbers → TransformError or a valid entity, nothing else', () => {
    const cases: Array<[string, TcBuild]> = [
      ['no dates at all', base({ queuedDate: undefined, startDate: undefined, finishDate: undefined })],
      ['only invalid dates', base({ queuedDate: 'x', startDate: 'yesterday', finishDate: '20250231T000000+0000' })],
      ['no buildType', base({ buildType: undefined, buildTypeId: undefined })],
      ['no webUrl anywhere', base({ webUrl: undefined, buildType: { id: 'Evil_Build' } })],
      ['javascript: webUrl', base({ webUrl: 'javascript:alert(1)', buildType: { id: 'Evil_Build' } })],
      ['id as a string', base({ id: '9000001' as unknown as number })],
      ['id as a float', base({ id: 1.5 })],
      ['id beyond 2^53', base({ id: 2 ** 60 })],
      ['number as a number', base({ number: 42 as unknown as string })],
      ['test counts as strings', base({ testOccurrences: { count: '10', passed: '9', failed: 'one' } as unknown as TcBuild['testOccurrences'] })],
      ['unknown state and status', base({ state: 'exploded' as TcBuild['state'], status: 'MAYBE' as TcBuild['status'] })],
      ['extra unknown fields', base({ evil: '<script>', __proto__: { polluted: 1 }, constructor: 'x', pipelineId: 'spoofed', issueKeys: ['OTHER-1'] })],
      ['statusText of 1 MB with control characters', base({ statusText: `\u0000\u001b[31m${'x'.repeat(1_000_000)}` })],
      ['branch of 10 KB', base({ branchName: `feature/${'b'.repeat(10_000)}` })],
      ['revisions with garbage', base({ revisions: { revision: [{ version: '\u0001'.repeat(300) }, { version: 'abc', 'vcs-root-instance': { name: 'javascript:alert(1)' } }, { version: 42 }] } as unknown as TcBuild['revisions'] })],
    ];
    for (const [what, build] of cases) {
      for (const fn of [
        () => toJiraBuild(build, ctx),
        () => toJiraDeployment(build, { ...ctx, environment: { id: 'env', displayName: 'Env', type: 'staging' } }),
      ]) {
        let out: unknown;
        try {
          out = fn();
        } catch (err) {
          assert.ok(err instanceof TransformError, `${what}: ${(err as Error).stack}`);
          continue;
        }
        if (out === undefined) continue;
        const e = out as Record<string, unknown>;
        const text = JSON.stringify(e);
        assert.ok(Number.isSafeInteger(e.buildNumber ?? e.deploymentSequenceNumber), `${what}: integer number`);
        assert.ok(!text.includes('spoofed') && !text.includes('OTHER-1') && !text.includes('"evil"'), `${what}: extra fields passed through: ${text.slice(0, 300)}`);
        assert.ok(!/\\u0000/.test(text), `${what}: NUL sent to Jira`);
        assert.ok(String(e.displayName).length <= 255 && ((e.description as string | undefined) ?? '').length <= 255, `${what}: length limits`);
        assert.ok(!text.includes('javascript:'), `${what}: javascript: URL sent`);
        assert.ok(!Number.isNaN(Date.parse(String(e.lastUpdated))), `${what}: lastUpdated is a date`);
      }
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test('issue keys: 1 MB of text and thousands of keys stay fast and capped', () => {
    const started = Date.now();
    const text = `${'TCJ_'.repeat(250_000)}-1 ${'A-1 '.repeat(50_000)}${Array.from({ length: 5000 }, (_, i) => `XY-${i + 1}`).join(' ')}`;
    const got = collectIssueKeys(issueKeyInputFromBuild(base({ branchName: '\u0000'.repeat(1000) }), [{ id: 1, comment: text }]));
    assert.equal(got.keys.length, 100);
    assert.ok(got.truncated.length >= 4900, `truncated ${got.truncated.length}`);
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
  });

  test('recordBuild (the poller’s storage step) stores anomalies or skips them, in a real transaction', async () => {
    const conn = await w.t.db.withTenant(tenantId, (tx) => getConnection(tx, w.secrets, serverId));
    assert.ok(conn);
    const rules = parseRules({});
    const anomalies: Array<[string, TcBuild]> = [
      ['unknown state', base({ id: 9_100_001, state: 'exploded' as TcBuild['state'] })],
      ['invalid dates', base({ id: 9_100_002, startDate: '20250231T000000+0000', finishDate: 'never' })],
      ['number with NUL', base({ id: 9_100_003, number: '1\u00002' })],
      ['branch with NUL and a lone surrogate', base({ id: 9_100_004, branchName: 'x\u0000y\ud800' })],
      ['status with NUL', base({ id: 9_100_005, status: 'SUCCESS\u0000' as TcBuild['status'] })],
      ['buildType id with NUL', base({ id: 9_100_006, buildType: { id: 'Evil\u0000Build', webUrl: 'https://tc.example.com/x' } })],
      ['no buildType', base({ id: 9_100_007, buildType: undefined })],
      ['id as a string', base({ id: '9100008' as unknown as number })],
      ['commit comment with NUL', base({ id: 9_100_009, changes: { change: [{ id: 1, comment: 'TCJ-1\u0000' }] } as unknown as TcBuild['changes'] })],
    ];
    for (const [what, build] of anomalies) {
      // As the poller gets them: through the TeamCity client's JSON boundary.
      const received = parseTeamCityJson(JSON.stringify(build)) as TcBuild;
      await assert.doesNotReject(
        w.t.db.withTenant(tenantId, (tx) => recordBuild(tx, tenantId, conn.server, rules, received)),
        what,
      );
    }
    const stored = await w.admin.query<{ build_id: string; number: string | null; branch: string | null; send_error: string | null }>(
      'SELECT build_id, number, branch, send_error FROM builds WHERE build_id > 9100000 ORDER BY build_id',
    );
    assert.ok(stored.rows.length >= 7, JSON.stringify(stored.rows));
    assert.ok(stored.rows.every((r) => !`${r.number}${r.branch}`.includes('\u0000')));
    assert.equal(stored.rows.find((r) => r.build_id === '9100004')?.branch, 'xy\ufffd');
  });
});
