// Deterministic large-history generator: same seed + same starting model → identical data.
// Creates projects (some nested), one VCS root per top-level project, regular/composite/deployment
// configurations, users, and builds in every state on several branches, each with 0–3 commits whose messages
// mix Jira keys (subject, body lines, lowercase, merge commits) with look-alike false positives.
import { Prng } from './prng.ts';
import type { Build, BuildType, Change, TeamCityModel, User } from './model.ts';

export interface GenerateOptions {
  seed: number;
  /** default 5 */
  projects?: number;
  /** default 10 */
  buildTypesPerProject?: number;
  /** default 200 */
  buildsPerType?: number;
  /** non-default branches (default: feature/ABC-12-login, feature/XYZ-7-search, bugfix/abc-99-npe, release/2025.06, pull/42) */
  branches?: string[];
  /** history span ending at the current clock time; default 90 days */
  periodMs?: number;
  /** Jira project keys used in commit messages; default ABC, XYZ, OPS */
  jiraKeys?: string[];
  /** share of builds on the default branch (default 0.65) */
  defaultBranchShare?: number;
  /** id prefix for projects (default `Gen`) — lets you call generateHistory twice on one server */
  idPrefix?: string;
}

export interface GenerateResult {
  projects: string[];
  buildTypes: string[];
  vcsRoots: string[];
  /** generated users; each has password `<username>-pw` */
  users: string[];
  builds: number;
  changes: number;
  firstBuildId: number;
  lastBuildId: number;
}

const PROJECT_NAMES = ['Payments', 'Checkout', 'Identity', 'Search', 'Mobile App', 'Platform', 'Data Pipeline', 'Web Portal'];
const BT_NAMES = ['Build', 'Unit Tests', 'Integration Tests', 'Package', 'Lint', 'Docs', 'E2E', 'Release Notes'];
const DEFAULT_BRANCH_NAMES = ['main', 'refs/heads/main', 'master', '<default>'];
const VERBS = ['Fix', 'Add', 'Refactor', 'Remove', 'Improve', 'Update', 'Handle', 'Document'];
const OBJECTS = [
  'login redirect loop',
  'retry on 503 from payment gateway',
  'null pointer in OrderService',
  'flaky timeout in search tests',
  'CSV export encoding',
  'feature flag cleanup',
  'pagination of the audit log',
  'memory leak in websocket handler',
];
const FALSE_POSITIVES = [
  'Switch report encoding to UTF-8',
  'Use SHA-256 for artifact checksums',
  'Patch CVE-2024-1234 in xml parser',
  'Support ISO-8859-1 legacy files',
  'Rename X-1 header to X-Request-Id',
];
const AUTHORS = ['alice', 'bob', 'carol.dev', 'dave', 'erin <erin@example.com>', 'build-bot'];
const USERNAMES = ['alice', 'bob', 'carol', 'dave', 'erin'];

function pad(n: number, w: number): string {
  return String(n).padStart(w, '0');
}

export function generateHistory(model: TeamCityModel, opts: GenerateOptions): GenerateResult {
  const rnd = new Prng(opts.seed);
  const nProjects = opts.projects ?? 5;
  const nTypes = opts.buildTypesPerProject ?? 10;
  const nBuilds = opts.buildsPerType ?? 200;
  const branches = opts.branches ?? ['feature/ABC-12-login', 'feature/XYZ-7-search', 'bugfix/abc-99-npe', 'release/2025.06', 'pull/42'];
  const periodMs = opts.periodMs ?? 90 * 86_400_000;
  const keys = opts.jiraKeys ?? ['ABC', 'XYZ', 'OPS'];
  const dShare = opts.defaultBranchShare ?? 0.65;
  const prefix = opts.idPrefix ?? 'Gen';
  const now = model.now();

  const users: User[] = USERNAMES.map(
    (u) => model.findUserByName(u) ?? model.addUser({ username: u, password: `${u}-pw`, name: u[0]!.toUpperCase() + u.slice(1), email: `${u}@example.com` }),
  );

  const projectIds: string[] = [];
  const rootIds: string[] = [];
  const bts: BuildType[] = [];
  for (let p = 0; p < nProjects; p++) {
    const id = `${prefix}${pad(p + 1, 2)}`;
    const nested = p % 4 === 3 && p > 0;
    const parentId = nested ? projectIds[p - 1]! : '_Root';
    const baseName = PROJECT_NAMES[p % PROJECT_NAMES.length]!;
    model.addProject({ id, name: p >= PROJECT_NAMES.length ? `${baseName} ${p + 1}` : baseName, parentId });
    projectIds.push(id);
    const dflt = DEFAULT_BRANCH_NAMES[p % DEFAULT_BRANCH_NAMES.length]!;
    const rootDefault = dflt === 'master' ? 'master' : 'main';
    const root = model.addVcsRoot({
      id: `${id}_Git`,
      projectId: id,
      url: `https://git.example.com/${baseName.toLowerCase().replace(/ /g, '-')}-${p + 1}.git`,
      defaultBranch: rootDefault,
    });
    rootIds.push(root.id);
    for (let t = 0; t < nTypes; t++) {
      const kind = t % 10 === 8 ? 'composite' : t % 10 === 9 ? 'deployment' : 'regular';
      const name =
        kind === 'composite'
          ? `Chain ${t + 1}`
          : kind === 'deployment'
            ? `Deploy to ${t % 20 === 9 ? 'Staging' : 'Production'}${t >= 20 ? ` ${t + 1}` : ''}`
            : `${BT_NAMES[t % BT_NAMES.length]!}${t >= BT_NAMES.length ? ` ${t + 1}` : ''}`;
      bts.push(
        model.addBuildType({
          id: `${id}_${name.replace(/[^A-Za-z0-9]/g, '')}`,
          name,
          projectId: id,
          type: kind,
          vcsRootIds: [root.id],
          branched: !(kind === 'deployment' && p % 2 === 1),
          defaultBranchName: dflt,
          estimatedDurationSec: 60 + rnd.int(0, 1700),
        }),
      );
    }
  }

  // ---- builds (timeline per configuration), ids assigned globally in queue order afterwards
  interface Draft {
    b: Build;
    changes: number;
  }
  const drafts: Draft[] = [];
  const spacing = periodMs / Math.max(1, nBuilds);
  for (const bt of bts) {
    const defaultOnly = bt.type !== 'regular';
    for (let k = 0; k < nBuilds; k++) {
      const queued = Math.floor(now - periodMs + k * spacing + rnd.next() * spacing * 0.5);
      const wait = rnd.int(0, 120) * 1000;
      const longBuild = rnd.chance(0.02);
      const duration = Math.floor(bt.estimatedDurationSec * (0.5 + rnd.next()) * (longBuild ? 10 : 1) * 1000);
      const start = queued + wait;
      const finish = start + duration;
      const onDefault = !bt.branched || defaultOnly ? true : rnd.chance(dShare);
      const branch = bt.branched ? (onDefault ? bt.defaultBranchName : rnd.pick(branches)) : null;
      const trig = rnd.next();
      const tuser = rnd.pick(users);
      const b: Build = {
        id: 0,
        buildType: bt,
        number: null,
        state: 'finished',
        status: 'SUCCESS',
        statusText: 'Success',
        branch,
        defaultBranch: branch !== null && onDefault,
        personal: false,
        owner: null,
        failedToStart: false,
        canceled: null,
        queuedDate: queued,
        startDate: start,
        finishDate: finish,
        triggered:
          trig < 0.7
            ? { type: 'vcs', date: queued, details: 'jetbrains.git' }
            : trig < 0.9
              ? { type: 'user', date: queued, user: tuser }
              : { type: 'schedule', date: queued },
        changeIds: [],
        revisions: [],
        agent: model.agents[rnd.int(0, model.agents.length - 1)]!,
        tests: null,
        problems: 0,
        estimatedSec: bt.estimatedDurationSec,
        hanging: false,
        stageText: '',
        sortKey: start,
      };
      const outcome = rnd.next();
      if (start > now) {
        b.state = 'queued';
        b.status = null;
        b.statusText = null;
        b.startDate = null;
        b.finishDate = null;
        b.agent = null;
      } else if (finish > now) {
        b.state = 'running';
        b.finishDate = null;
        b.statusText = 'Running';
        b.stageText = 'Step 1/2: Gradle';
        if (outcome < 0.1) {
          b.canceled = { timestamp: now - 1000 * rnd.int(1, 60), text: 'Stopped: superseded by a newer build', user: tuser };
          b.status = 'UNKNOWN';
          b.statusText = 'Canceled (Step 1/2)';
        } else if (outcome < 0.2) {
          b.status = 'FAILURE';
          b.statusText = 'Tests failed: 1 (1 new), passed: 120';
        }
      } else if (outcome < 0.02 && bt.type !== 'deployment') {
        b.personal = true;
        b.owner = tuser;
        b.triggered = { type: 'user', date: queued, user: tuser };
        b.status = rnd.chance(0.7) ? 'SUCCESS' : 'FAILURE';
        b.statusText = b.status === 'SUCCESS' ? 'Success' : 'Compilation error: Main.kt';
      } else if (outcome < 0.03) {
        // canceled while queued
        b.number = 'N/A';
        b.status = 'UNKNOWN';
        b.statusText = 'Canceled';
        b.startDate = null;
        b.finishDate = start;
        b.sortKey = start;
        b.agent = null;
        b.canceled = { timestamp: start, text: 'Removed from the queue', user: tuser };
      } else if (outcome < 0.04) {
        b.failedToStart = true;
        b.status = 'FAILURE';
        b.statusText = 'Failed to start build: unmet agent requirements';
        b.finishDate = start;
        b.problems = 1;
      } else if (outcome < 0.07) {
        b.finishDate = start + Math.floor(duration / 3);
        b.status = 'UNKNOWN';
        b.statusText = 'Canceled (Step 2/2)';
        b.canceled = { timestamp: b.finishDate, text: 'Canceled by user', user: tuser };
      } else if (outcome < 0.19) {
        b.status = 'FAILURE';
      }
      if (b.state === 'finished' && !b.canceled && !b.failedToStart && bt.type === 'regular' && rnd.chance(0.6)) {
        const failed = b.status === 'FAILURE' ? rnd.int(1, 5) : 0;
        b.tests = { passed: rnd.int(50, 500), failed, ignored: rnd.int(0, 10), newFailed: failed > 0 ? rnd.int(0, failed) : 0, muted: 0 };
        b.statusText = failed > 0 ? `Tests failed: ${failed}, passed: ${b.tests.passed}` : `Tests passed: ${b.tests.passed}`;
      } else if (b.state === 'finished' && b.status === 'FAILURE' && !b.failedToStart && !b.personal) {
        b.problems = 1;
        b.statusText = 'Exit code 1 (Step: Gradle)';
      }
      drafts.push({ b, changes: b.personal ? 0 : rnd.int(0, 3) });
    }
    if (rnd.chance(0.3)) {
      // a build waiting in the queue right now
      const queued = now - rnd.int(5, 600) * 1000;
      drafts.push({
        b: {
          id: 0, buildType: bt, number: null, state: 'queued', status: null, statusText: null,
          branch: bt.branched ? bt.defaultBranchName : null, defaultBranch: bt.branched,
          personal: false, owner: null, failedToStart: false, canceled: null,
          queuedDate: queued, startDate: null, finishDate: null,
          triggered: { type: 'vcs', date: queued, details: 'jetbrains.git' },
          changeIds: [], revisions: [], agent: null, tests: null, problems: 0,
          estimatedSec: bt.estimatedDurationSec, hanging: false, stageText: '', sortKey: queued,
        },
        changes: rnd.int(1, 2),
      });
    }
    if (rnd.chance(0.5)) {
      // a build running right now (some failing so far, some being canceled)
      const started = now - rnd.int(10, Math.max(11, bt.estimatedDurationSec)) * 1000;
      const kind = rnd.next();
      const tuser = rnd.pick(users);
      drafts.push({
        b: {
          id: 0, buildType: bt, number: null, state: 'running',
          status: kind < 0.2 ? 'UNKNOWN' : kind < 0.4 ? 'FAILURE' : 'SUCCESS',
          statusText: kind < 0.2 ? 'Canceled (Step 1/2)' : kind < 0.4 ? 'Tests failed: 2 (2 new), passed: 80' : 'Running',
          branch: bt.branched ? bt.defaultBranchName : null, defaultBranch: bt.branched,
          personal: false, owner: null, failedToStart: false,
          canceled: kind < 0.2 ? { timestamp: now - 5000, text: 'Stopped by user', user: tuser } : null,
          queuedDate: started - 2000, startDate: started, finishDate: null,
          triggered: { type: 'user', date: started - 2000, user: tuser },
          changeIds: [], revisions: [], agent: rnd.pick(model.agents), tests: null, problems: 0,
          estimatedSec: bt.estimatedDurationSec, hanging: kind > 0.95, stageText: 'Step 2/2: Gradle', sortKey: started,
        },
        changes: rnd.int(0, 2),
      });
    }
  }
  drafts.sort((x, y) => x.b.queuedDate - y.b.queuedDate || x.b.buildType.internalId.localeCompare(y.b.buildType.internalId));

  // ---- ids, numbers, changes (registration order = queue order)
  const firstBuildId = drafts.length > 0 ? model.allocateBuildId() : 0;
  let nextId = firstBuildId;
  const lastVersion = new Map<string, string>();
  let changeCount = 0;
  for (const d of drafts) {
    const b = d.b;
    b.id = nextId++;
    const bt = b.buildType;
    if (b.number === null && b.state !== 'queued') b.number = String(bt.buildNumberCounter++);
    const root = model.vcsRoots.get(bt.vcsRootIds[0]!)!;
    const logical = b.branch ?? bt.defaultBranchName;
    const rootBranch = logical === bt.defaultBranchName ? root.defaultBranch : logical;
    const vkey = `${root.id}|${rootBranch}`;
    for (let c = 0; c < d.changes; c++) {
      const version = rnd.hex(40);
      const change: Change = {
        id: model.allocateChangeId(),
        version,
        username: rnd.pick(AUTHORS),
        date: b.queuedDate - rnd.int(60, 86_400) * 1000,
        comment: commitMessage(rnd, keys, logical),
        vcsRootId: root.id,
        branch: rootBranch,
        files: [
          {
            file: `src/main/${rnd.pick(['kotlin', 'java', 'ts'])}/module${rnd.int(1, 40)}/File${rnd.int(1, 400)}.kt`,
            beforeRevision: lastVersion.get(vkey) ?? rnd.hex(40),
            afterRevision: version,
            changeType: 'edited',
          },
        ],
      };
      lastVersion.set(vkey, version);
      model.registerChange(change);
      b.changeIds.push(change.id);
      changeCount++;
    }
    b.revisions = [
      {
        version: lastVersion.get(vkey) ?? rnd.hex(40),
        vcsBranchName: model.vcsBranchName(bt, root, logical),
        vcsRootId: root.id,
      },
    ];
    model.registerBuildUnsorted(b);
  }
  model.reindex();
  const maxChange = model.changesAsc[model.changesAsc.length - 1]?.id ?? 0;
  for (const bt of bts) {
    for (const br of [bt.defaultBranchName, ...branches]) model.setChangePointer(bt, br, maxChange);
  }
  return {
    projects: projectIds,
    buildTypes: bts.map((bt) => bt.id),
    vcsRoots: rootIds,
    users: users.map((u) => u.username),
    builds: drafts.length,
    changes: changeCount,
    firstBuildId,
    lastBuildId: nextId - 1,
  };
}

function commitMessage(rnd: Prng, keys: string[], branch: string): string {
  const key = rnd.pick(keys);
  const n = rnd.int(1, 999);
  const subject = `${rnd.pick(VERBS)} ${rnd.pick(OBJECTS)}`;
  switch (rnd.int(0, 9)) {
    case 0:
      return `${key}-${n} ${subject}`;
    case 1:
      return `${subject} (${key}-${n})`;
    case 2:
      return `[${key}-${n}] ${subject}\n\nAlso touches ${rnd.pick(keys)}-${rnd.int(1, 999)}.\nReviewed-by: ${rnd.pick(AUTHORS)}`;
    case 3:
      return `${subject}\n\nRefs: ${key}-${n}, ${rnd.pick(keys)}-${rnd.int(1, 999)}\nSigned-off-by: ${rnd.pick(AUTHORS)}`;
    case 4:
      return `${key.toLowerCase()}-${n}: ${subject.toLowerCase()}`;
    case 5:
      return rnd.pick(FALSE_POSITIVES);
    case 6:
      return `Merge pull request #${rnd.int(1, 900)} from acme/${branch}\n\n${key}-${n} ${subject}`;
    case 7:
      return `${subject}\n\n${rnd.pick(FALSE_POSITIVES)}; no ticket`;
    case 8:
      return `${key}-${n}: ${subject}\r\n\r\nWindows line endings in this one`;
    default:
      return subject;
  }
}
