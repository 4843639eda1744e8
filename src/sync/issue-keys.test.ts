import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { TcBuild, TcChange } from '../teamcity/types.ts';
import {
  BUILD_ISSUE_KEY_CAP,
  collectIssueKeys,
  extractIssueKeys,
  issueKeyInputFromBuild,
} from './issue-keys.ts';

const fixture = (path: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../../shared/fixtures/teamcity/${path}`, import.meta.url), 'utf8'));

// [text, expected keys]
const TABLE: Array<[string, string[]]> = [
  // plain and positions
  ['ABC-123', ['ABC-123']],
  ['Fix ABC-1 and DEF-22', ['ABC-1', 'DEF-22']],
  ['ABC-1 ABC-1 abc-1', ['ABC-1']],
  ['DEF-2 then ABC-1 then DEF-2', ['DEF-2', 'ABC-1']],
  // lowercase and mixed case
  ['abc-123: lowercase key', ['ABC-123']],
  ['Python-3 and Windows-1252 and Step-2 are words', []],
  // digits and underscore in project keys
  ['A1B-5 fixed', ['A1B-5']],
  ['bugfix/ABC_2-7', ['ABC_2-7']],
  ['MY_PROJ-42', ['MY_PROJ-42', 'PROJ-42']],
  ['2FA-1 starts with a digit', []],
  ['X-1 is a single letter', []],
  ['ABCDEFGHIJK-1 has an 11-character project', []],
  ['ABCDEFGHIJ-1 has a 10-character project', ['ABCDEFGHIJ-1']],
  // branch names
  ['feature/abc-123-login', ['ABC-123']],
  ['ABC-12_fix', ['ABC-12']],
  ['feature_ABC-123', ['ABC-123']],
  ['DEV_ABC-5', ['DEV_ABC-5', 'ABC-5']],
  ['refs/heads/feature/PAY-9-refund', ['PAY-9']],
  ['bugfix-ABC-123', ['ABC-123']],
  ['ABC-123-upgrade-to-node-20', ['ABC-123']],
  ['ABC-1-DEF-2 two keys in one branch', ['ABC-1', 'DEF-2']],
  ['ABC-1_DEF-2', ['ABC-1', 'DEF-2']],
  // glued
  ['XABC-1', ['XABC-1']],
  ['fooABC-1', []],
  ['éABC-1', []],
  ['ABC-12x', []],
  ['ABC-1é', []],
  // version-like tails and leading zeros
  ['ABC-1-2', []],
  ['ABC-1.2', []],
  ['ABC-0 and ABC-007', []],
  ['ABC-10.', ['ABC-10']],
  ['ABC-1234567890123456789', []],
  // look-alikes
  ['CVE-2024-1234', []],
  ['CVE-2024-1', []],
  ['UTF-8 and utf-16', []],
  ['SHA-1, SHA-256, sha-512', []],
  ['ISO-8859-1', []],
  ['RFC-2616', []],
  ['MD-5', []],
  ['x86-64 build of TLS-13 with AES-256 and base-64', []],
  ['GH-123 is a GitHub ref but a valid key', ['GH-123']],
  // punctuation around keys
  ['[ABC-1] (DEF-2) GHI-3: {JKL-4} <MNO-5> "PQR-6" \'STU-7\'', ['ABC-1', 'DEF-2', 'GHI-3', 'JKL-4', 'MNO-5', 'PQR-6', 'STU-7']],
  ['ABC-1, ABC-2; ABC-3! ABC-4? #ABC-5 @ABC-6', ['ABC-1', 'ABC-2', 'ABC-3', 'ABC-4', 'ABC-5', 'ABC-6']],
  ['Merge pull request #42 from org/ABC-77-thing', ['ABC-77']],
  // URLs
  ['https://x.atlassian.net/browse/ABC-1', ['ABC-1']],
  ['see https://x.atlassian.net/jira/software/projects/ABC/boards/1?selectedIssue=ABC-9 now', ['ABC-9']],
  // multi-line bodies
  ['Subject line\n\nBody mentions ABC-10\r\nand\tDEF-20 at the end\nRefs: GHI-30', ['ABC-10', 'DEF-20', 'GHI-30']],
  ['', []],
  ['no keys here, just a release 1.2-3', []],
];

test('extractIssueKeys table', () => {
  assert.ok(TABLE.length >= 40, `${TABLE.length} cases`);
  const wrong = TABLE.filter(([text, expected]) => JSON.stringify(extractIssueKeys(text)) !== JSON.stringify(expected)).map(
    ([text, expected]) => `${JSON.stringify(text)}: got ${JSON.stringify(extractIssueKeys(text))}, want ${JSON.stringify(expected)}`,
  );
  assert.deepEqual(wrong, []);
});

test('extractIssueKeys: extra denylist always applies, knownProjects filters and overrides the default denylist', () => {
  assert.deepEqual(extractIssueKeys('GH-1 ABC-2', { denylist: ['gh'] }), ['ABC-2']);
  assert.deepEqual(extractIssueKeys('ABC-1 DEF-2 abc-3', { knownProjects: ['abc'] }), ['ABC-1', 'ABC-3']);
  assert.deepEqual(extractIssueKeys('SHA-256 digest', { knownProjects: ['SHA'] }), ['SHA-256']);
  assert.deepEqual(extractIssueKeys('SHA-256 digest', { knownProjects: ['SHA'], denylist: ['SHA'] }), []);
  // Known projects lift the mixed-case rule too, and settle the underscore ambiguity.
  assert.deepEqual(extractIssueKeys('Abc-5', { knownProjects: ['ABC'] }), ['ABC-5']);
  assert.deepEqual(extractIssueKeys('DEV_ABC-5', { knownProjects: ['ABC'] }), ['ABC-5']);
  // Version-like tails are structural: even a known project does not make CVE-2024-1234 a key.
  assert.deepEqual(extractIssueKeys('CVE-2024-1234', { knownProjects: ['CVE'] }), []);
});

test('extractIssueKeys stays linear on huge single words (untrusted commit messages)', () => {
  assert.deepEqual(extractIssueKeys(`${'ab_'.repeat(300_000)}CD-1`), ['CD-1']);
  assert.deepEqual(extractIssueKeys(`${'ab-'.repeat(300_000)}CD-1 ${'x'.repeat(1_000_000)}-1`), ['CD-1']);
});

test('extractIssueKeys on the real TeamCity change fixture', () => {
  const change = fixture('changes/change-single-with-jira-key-comment-files-yabm-sky-2017.json') as TcChange;
  assert.deepEqual(extractIssueKeys(change.comment ?? ''), ['HIRO-1231231']);
});

const change = (id: number, comment?: string): TcChange => (comment === undefined ? { id } : { id, comment });

test('collectIssueKeys: priority parameter > branch > vcs branch > pull request > commits newest first, with sources', () => {
  const result = collectIssueKeys({
    explicit: 'par-1, PAR-2;PAR-1  bad',
    branchName: 'feature/BR-1-x',
    vcsBranchNames: ['refs/heads/feature/BR-1-x', 'refs/heads/VCS-3'],
    pullRequest: { title: 'PR-4: title', sourceBranch: 'feature/BR-1-x' },
    changes: [change(30, 'NEW-5 newest\n\nbody BR-1'), change(20), change(10, 'OLD-6 oldest')],
  });
  assert.deepEqual(result.keys, ['PAR-1', 'PAR-2', 'BR-1', 'VCS-3', 'PR-4', 'NEW-5', 'OLD-6']);
  assert.deepEqual(result.truncated, []);
  assert.deepEqual(result.filtered, []);
  assert.deepEqual(result.sources, [
    { key: 'PAR-1', source: 'parameter' },
    { key: 'PAR-2', source: 'parameter' },
    { key: 'BR-1', source: 'branch', ref: 'feature/BR-1-x' },
    { key: 'BR-1', source: 'vcs-branch', ref: 'refs/heads/feature/BR-1-x' },
    { key: 'VCS-3', source: 'vcs-branch', ref: 'refs/heads/VCS-3' },
    { key: 'PR-4', source: 'pull-request' },
    { key: 'BR-1', source: 'pull-request', ref: 'feature/BR-1-x' },
    { key: 'NEW-5', source: 'commit', ref: '30' },
    { key: 'BR-1', source: 'commit', ref: '30' },
    { key: 'OLD-6', source: 'commit', ref: '10' },
  ]);
});

test('collectIssueKeys: the explicit parameter is trusted (no denylist of look-alikes) but must be well-formed', () => {
  assert.deepEqual(collectIssueKeys({ explicit: 'utf-8 ABC-0 [DEF-3] x', changes: [] }).keys, ['UTF-8', 'DEF-3']);
  assert.deepEqual(collectIssueKeys({ explicit: 'GH-1 ABC-2', denylist: ['GH'], changes: [] }).keys, ['ABC-2']);
});

test('collectIssueKeys: cap keeps the newest keys and records the truncated ones', () => {
  // 120 commits newest first, each with its own key: KEY-120 (newest) … KEY-1 (oldest); plus a branch key.
  const changes = Array.from({ length: 120 }, (_, i) => change(1000 - i, `KEY-${120 - i}: change ${120 - i}`));
  const result = collectIssueKeys({ branchName: 'feature/BR-1', changes });
  assert.equal(result.keys.length, BUILD_ISSUE_KEY_CAP);
  assert.equal(result.keys[0], 'BR-1');
  assert.equal(result.keys[1], 'KEY-120');
  assert.equal(result.keys[99], 'KEY-22');
  assert.deepEqual(result.truncated, Array.from({ length: 21 }, (_, i) => `KEY-${21 - i}`));
  // Sources are recorded for truncated keys too (for the diagnostic).
  assert.ok(result.sources.some((s) => s.key === 'KEY-1' && s.ref === '881'));
  assert.equal(new Set(result.keys).size, result.keys.length);
  // Deployments use a larger cap.
  assert.equal(collectIssueKeys({ changes }, 500).keys.length, 120);
  assert.throws(() => collectIssueKeys({ changes }, -1), RangeError);
});

test('collectIssueKeys: knownProjects drops other projects and lists them in filtered', () => {
  const result = collectIssueKeys({ changes: [change(2, 'ABC-1 NOPE-2'), change(1, 'abc-3 NOPE-2')], knownProjects: new Set(['ABC']) });
  assert.deepEqual(result.keys, ['ABC-1', 'ABC-3']);
  assert.deepEqual(result.filtered, ['NOPE-2']);
});

test('issueKeyInputFromBuild reads branch, revisions, PR parameters and jira.issues', () => {
  const build: TcBuild = {
    id: 7,
    state: 'finished',
    branchName: 'pull/42',
    revisions: { revision: [{ version: 'abc', vcsBranchName: 'refs/pull/42/head' }, { version: 'def' }] },
    properties: {
      property: [
        { name: 'teamcity.pullRequest.title', value: 'ABC-5 Add login' },
        { name: 'teamcity.pullRequest.source.branch', value: 'feature/abc-6-login' },
        { name: 'jira.issues', value: 'ABC-4' },
      ],
    },
  };
  const input = issueKeyInputFromBuild(build, [change(1, 'ABC-7')]);
  assert.deepEqual(input.vcsBranchNames, ['refs/pull/42/head']);
  assert.deepEqual(collectIssueKeys(input).keys, ['ABC-4', 'ABC-5', 'ABC-6', 'ABC-7']);
  const custom = issueKeyInputFromBuild(build, [], { explicitParameter: 'my.keys', knownProjects: new Set(['ABC']), denylist: ['X'] });
  assert.equal(custom.explicit, undefined);
  assert.ok(custom.knownProjects?.has('ABC'));
});
