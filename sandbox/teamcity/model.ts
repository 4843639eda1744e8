// In-memory TeamCity server state + the script API used by tests, demo and benchmark.
// Indexes: builds by id; queued (queue order); running; finished builds kept sorted once
// (start time desc, id desc — reference §4.3) globally and per build configuration; new finished builds are
// inserted by binary search, so a long build that started early lands deep in history (the polling pitfall).
import { Prng } from './prng.ts';

export type BuildTypeKind = 'regular' | 'composite' | 'deployment';
export type BuildState = 'queued' | 'running' | 'finished';
export type BuildStatus = 'SUCCESS' | 'FAILURE' | 'UNKNOWN';

export interface Project {
  id: string;
  internalId: string;
  name: string;
  parentId: string | null; // null only for _Root
  description?: string;
}

export interface VcsRoot {
  id: string;
  name: string;
  url: string;
  projectId: string;
  /** vcs-root-instance id (TeamCity renders it as a string) */
  instanceId: string;
  /** logical name of the default branch, e.g. `main` */
  defaultBranch: string;
}

export interface BuildType {
  id: string;
  internalId: string;
  name: string;
  projectId: string;
  type: BuildTypeKind;
  vcsRootIds: string[];
  /** false → builds carry no branchName (non-branched configuration) */
  branched: boolean;
  /** logical (display) name of the default branch: `main`, `refs/heads/main`, `<default>` … */
  defaultBranchName: string;
  description?: string;
  paused: boolean;
  buildNumberCounter: number;
  estimatedDurationSec: number;
}

export interface User {
  id: number;
  username: string;
  name: string;
  email?: string;
  password: string | null;
  /** projects (ids) the user may view — sub-projects inherit; 'all' = every project */
  viewProjects: Set<string> | 'all';
  /** "View user profile" permission for other users */
  canViewUsers: boolean;
  /** "View build runtime parameters and data" */
  viewRuntimeData: boolean;
  lastLogin?: number;
}

export interface Agent {
  id: number;
  name: string;
  typeId: number;
}

export interface ChangeFile {
  file: string;
  beforeRevision: string;
  afterRevision: string;
  changeType: 'added' | 'edited' | 'removed';
}

export interface Change {
  id: number;
  version: string;
  username: string;
  date: number;
  comment: string;
  vcsRootId: string;
  /** logical branch the commit was pushed to */
  branch: string;
  files: ChangeFile[];
}

export interface Revision {
  version: string;
  vcsBranchName: string;
  vcsRootId: string;
}

export interface CanceledInfo {
  timestamp: number;
  text: string;
  user: User | null;
}

export interface Triggered {
  type: string;
  date: number;
  user?: User;
  details?: string;
}

export interface TestCounts {
  passed: number;
  failed: number;
  ignored: number;
  newFailed: number;
  muted: number;
}

export interface Build {
  id: number;
  buildType: BuildType;
  number: string | null;
  state: BuildState;
  /** null while queued */
  status: BuildStatus | null;
  statusText: string | null;
  /** logical branch; null for non-branched configurations */
  branch: string | null;
  defaultBranch: boolean;
  personal: boolean;
  owner: User | null;
  failedToStart: boolean;
  canceled: CanceledInfo | null;
  queuedDate: number;
  startDate: number | null;
  finishDate: number | null;
  triggered: Triggered;
  changeIds: number[];
  revisions: Revision[];
  agent: Agent | null;
  tests: TestCounts | null;
  problems: number;
  estimatedSec: number;
  hanging: boolean;
  stageText: string;
  /** finished ordering key: start time, or finish time for builds that never started */
  sortKey: number;
}

export const SUPERUSER: User = {
  id: -42,
  username: '',
  name: 'Super user',
  password: null,
  viewProjects: 'all',
  canViewUsers: true,
  viewRuntimeData: true,
};

/** Finished-build order: newest start first, then higher id first. */
export function compareFinished(a: Build, b: Build): number {
  return b.sortKey - a.sortKey || b.id - a.id;
}

function insertSorted(arr: Build[], b: Build): void {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareFinished(arr[mid]!, b) < 0) lo = mid + 1;
    else hi = mid;
  }
  arr.splice(lo, 0, b);
}

export class Clock {
  private virtual: number;
  private readonly realBase: number | null;

  constructor(start: number, realTime = false) {
    this.virtual = start;
    this.realBase = realTime ? Date.now() : null;
  }

  now(): number {
    return this.realBase === null ? this.virtual : this.virtual + (Date.now() - this.realBase);
  }

  advance(ms: number): void {
    if (ms < 0) throw new Error('clock cannot go backwards');
    this.virtual += ms;
  }
}

export interface AddBuildTypeInput {
  id: string;
  name?: string;
  projectId: string;
  type?: BuildTypeKind;
  vcsRootIds?: string[];
  branched?: boolean;
  defaultBranchName?: string;
  description?: string;
  internalId?: string;
  paused?: boolean;
  estimatedDurationSec?: number;
}

export interface AddUserInput {
  username: string;
  password?: string | null;
  name?: string;
  email?: string;
  /** default: 'all' */
  viewProjects?: string[] | 'all';
  canViewUsers?: boolean;
  viewRuntimeData?: boolean;
}

export interface QueueBuildInput {
  buildTypeId: string;
  /** logical branch; default: the configuration's default branch */
  branch?: string;
  personal?: boolean;
  /** user who triggered (and owns a personal build); default: trigger type `vcs` */
  user?: string;
  triggerType?: string;
  estimatedDurationSec?: number;
}

export interface FinishBuildInput {
  status?: 'SUCCESS' | 'FAILURE';
  statusText?: string;
  tests?: Partial<TestCounts>;
  problems?: number;
}

export class TeamCityModel {
  readonly clock: Clock;
  readonly projects = new Map<string, Project>();
  readonly vcsRoots = new Map<string, VcsRoot>();
  readonly buildTypes = new Map<string, BuildType>(); // by internal id
  private readonly btByExternal = new Map<string, BuildType>(); // lower-cased external id
  readonly users = new Map<number, User>();
  private readonly usersByName = new Map<string, User>();
  private readonly tokens = new Map<string, User>();
  readonly agents: Agent[] = [
    { id: 1, name: 'agent-linux-1', typeId: 1 },
    { id: 2, name: 'agent-linux-2', typeId: 2 },
    { id: 3, name: 'agent-windows-1', typeId: 3 },
    { id: 4, name: 'agent-mac-1', typeId: 4 },
  ];

  readonly builds = new Map<number, Build>();
  readonly queued: Build[] = [];
  readonly running: Build[] = [];
  readonly finished: Build[] = [];
  readonly finishedByBt = new Map<string, Build[]>(); // internal bt id → sorted

  readonly changes = new Map<number, Change>();
  readonly changesAsc: Change[] = [];
  private readonly changesByRoot = new Map<string, Change[]>();
  /** last change id already attached to a build, per `${btInternalId}|${branch}` */
  private readonly changePointer = new Map<string, number>();

  private nextBuildId = 1;
  private nextChangeId = 1;
  private nextUserId = 1;
  private nextBtInternal = 1;
  private nextProjectInternal = 1;
  private nextVcsInstance = 1;
  private tokenCounter = 0;
  private readonly prng: Prng;
  superuserPassword: string | null;

  constructor(opts: { startTime: number; realTime?: boolean; seed?: number; superuserPassword?: string | null }) {
    this.clock = new Clock(opts.startTime, opts.realTime ?? false);
    this.prng = new Prng(opts.seed ?? 1);
    this.superuserPassword = opts.superuserPassword ?? null;
    this.projects.set('_Root', { id: '_Root', internalId: 'project0', name: '<Root project>', parentId: null });
  }

  now(): number {
    return this.clock.now();
  }

  advance(ms: number): void {
    this.clock.advance(ms);
  }

  // ------------------------------------------------------------------------------------------ setup

  addProject(input: { id: string; name?: string; parentId?: string; description?: string }): Project {
    const parentId = input.parentId ?? '_Root';
    if (!this.projects.has(parentId)) throw new Error(`unknown parent project ${parentId}`);
    if (this.projects.has(input.id)) throw new Error(`duplicate project ${input.id}`);
    const p: Project = {
      id: input.id,
      internalId: `project${this.nextProjectInternal++}`,
      name: input.name ?? input.id,
      parentId,
      ...(input.description ? { description: input.description } : {}),
    };
    this.projects.set(p.id, p);
    return p;
  }

  addVcsRoot(input: { id: string; name?: string; url?: string; projectId: string; defaultBranch?: string }): VcsRoot {
    if (!this.projects.has(input.projectId)) throw new Error(`unknown project ${input.projectId}`);
    const url = input.url ?? `https://git.example.com/${input.id.toLowerCase()}.git`;
    const defaultBranch = input.defaultBranch ?? 'main';
    const r: VcsRoot = {
      id: input.id,
      name: input.name ?? `${url}#refs/heads/${defaultBranch}`,
      url,
      projectId: input.projectId,
      instanceId: String(this.nextVcsInstance++),
      defaultBranch,
    };
    this.vcsRoots.set(r.id, r);
    this.changesByRoot.set(r.id, []);
    return r;
  }

  addBuildType(input: AddBuildTypeInput): BuildType {
    if (!this.projects.has(input.projectId)) throw new Error(`unknown project ${input.projectId}`);
    if (this.btByExternal.has(input.id.toLowerCase())) throw new Error(`duplicate buildType ${input.id}`);
    const vcsRootIds = input.vcsRootIds ?? [];
    for (const r of vcsRootIds) if (!this.vcsRoots.has(r)) throw new Error(`unknown vcs root ${r}`);
    const firstRoot = vcsRootIds[0] ? this.vcsRoots.get(vcsRootIds[0]) : undefined;
    const bt: BuildType = {
      id: input.id,
      internalId: input.internalId ?? `bt${this.nextBtInternal++}`,
      name: input.name ?? input.id,
      projectId: input.projectId,
      type: input.type ?? 'regular',
      vcsRootIds,
      branched: input.branched ?? true,
      defaultBranchName: input.defaultBranchName ?? firstRoot?.defaultBranch ?? 'main',
      paused: input.paused ?? false,
      buildNumberCounter: 1,
      estimatedDurationSec: input.estimatedDurationSec ?? 300,
      ...(input.description ? { description: input.description } : {}),
    };
    this.buildTypes.set(bt.internalId, bt);
    this.btByExternal.set(bt.id.toLowerCase(), bt);
    this.finishedByBt.set(bt.internalId, []);
    return bt;
  }

  buildType(externalOrInternalId: string): BuildType {
    const bt = this.btByExternal.get(externalOrInternalId.toLowerCase()) ?? this.buildTypes.get(externalOrInternalId);
    if (!bt) throw new Error(`unknown buildType ${externalOrInternalId}`);
    return bt;
  }

  findBuildTypeByExternalId(id: string): BuildType | undefined {
    return this.btByExternal.get(id.toLowerCase());
  }

  addUser(input: AddUserInput): User {
    if (this.usersByName.has(input.username.toLowerCase())) throw new Error(`duplicate user ${input.username}`);
    const u: User = {
      id: this.nextUserId++,
      username: input.username,
      name: input.name ?? input.username,
      password: input.password === undefined ? null : input.password,
      viewProjects: input.viewProjects === undefined || input.viewProjects === 'all' ? 'all' : new Set(input.viewProjects),
      canViewUsers: input.canViewUsers ?? false,
      viewRuntimeData: input.viewRuntimeData ?? true,
      ...(input.email ? { email: input.email } : {}),
    };
    this.users.set(u.id, u);
    this.usersByName.set(u.username.toLowerCase(), u);
    return u;
  }

  user(username: string): User {
    const u = this.usersByName.get(username.toLowerCase());
    if (!u) throw new Error(`unknown user ${username}`);
    return u;
  }

  findUserByName(username: string): User | undefined {
    return this.usersByName.get(username.toLowerCase());
  }

  /** Creates an access token for the user; returns its value (shown once, like TeamCity). */
  addToken(username: string, value?: string): string {
    const u = this.user(username);
    const token =
      value ??
      `eyJ0eXAiOiAiVENWMiJ9.${Buffer.from(`${u.username}:${++this.tokenCounter}`).toString('base64url')}.${this.prng.hex(40)}`;
    this.tokens.set(token, u);
    return token;
  }

  revokeToken(token: string): void {
    this.tokens.delete(token);
  }

  userByToken(token: string): User | undefined {
    return this.tokens.get(token);
  }

  /** Later basic-auth requests with the old password get 401. Tokens stay valid. */
  changePassword(username: string, newPassword: string): void {
    this.user(username).password = newPassword;
  }

  /** Restricts what a user may see (sub-projects inherit); 'all' = everything. */
  setViewProjects(username: string, projects: string[] | 'all'): void {
    this.user(username).viewProjects = projects === 'all' ? 'all' : new Set(projects);
  }

  canViewProject(user: User, projectId: string): boolean {
    if (user.viewProjects === 'all') return true;
    let p: Project | undefined = this.projects.get(projectId);
    while (p) {
      if (user.viewProjects.has(p.id)) return true;
      p = p.parentId ? this.projects.get(p.parentId) : undefined;
    }
    return false;
  }

  canViewBuildType(user: User, bt: BuildType): boolean {
    return this.canViewProject(user, bt.projectId);
  }

  /** Project and all descendants. */
  projectSubtree(projectId: string): Set<string> {
    const out = new Set<string>([projectId]);
    let grew = true;
    while (grew) {
      grew = false;
      for (const p of this.projects.values()) {
        if (p.parentId && out.has(p.parentId) && !out.has(p.id)) {
          out.add(p.id);
          grew = true;
        }
      }
    }
    return out;
  }

  projectPath(projectId: string): Project[] {
    const path: Project[] = [];
    let p = this.projects.get(projectId);
    while (p && p.id !== '_Root') {
      path.unshift(p);
      p = p.parentId ? this.projects.get(p.parentId) : undefined;
    }
    return path;
  }

  // ------------------------------------------------------------------------------------------ changes

  /**
   * Registers a commit on a VCS root + branch; the next build of every configuration using the root on that
   * branch picks it up ("changes since last build").
   */
  addChange(input: {
    vcsRootId: string;
    comment: string;
    username?: string;
    branch?: string;
    version?: string;
    date?: number;
    files?: string[];
  }): Change {
    const root = this.vcsRoots.get(input.vcsRootId);
    if (!root) throw new Error(`unknown vcs root ${input.vcsRootId}`);
    const list = this.changesByRoot.get(root.id)!;
    const prev = list[list.length - 1];
    const version = input.version ?? this.prng.hex(40);
    const before = prev?.version ?? this.prng.hex(40);
    const c: Change = {
      id: this.nextChangeId++,
      version,
      username: input.username ?? 'dev',
      date: input.date ?? this.now(),
      comment: input.comment,
      vcsRootId: root.id,
      branch: input.branch ?? root.defaultBranch,
      files: (input.files ?? ['README.md']).map((f) => ({
        file: f,
        beforeRevision: before,
        afterRevision: version,
        changeType: 'edited' as const,
      })),
    };
    this.registerChange(c);
    return c;
  }

  /** low-level (generator) */
  registerChange(c: Change): void {
    this.changes.set(c.id, c);
    this.changesAsc.push(c);
    this.changesByRoot.get(c.vcsRootId)?.push(c);
    if (c.id >= this.nextChangeId) this.nextChangeId = c.id + 1;
  }

  allocateChangeId(): number {
    return this.nextChangeId++;
  }

  allocateBuildId(): number {
    return this.nextBuildId++;
  }

  setChangePointer(bt: BuildType, branch: string, changeId: number): void {
    this.changePointer.set(`${bt.internalId}|${branch}`, changeId);
  }

  private branchMatchesRoot(bt: BuildType, root: VcsRoot, changeBranch: string, buildBranch: string): boolean {
    if (changeBranch === buildBranch) return true;
    // the configuration's default branch display name may differ from the root's (`refs/heads/main`, `<default>`)
    return buildBranch === bt.defaultBranchName && changeBranch === root.defaultBranch;
  }

  vcsBranchName(bt: BuildType, root: VcsRoot, logical: string): string {
    if (logical === bt.defaultBranchName) {
      return logical.startsWith('refs/') ? logical : `refs/heads/${root.defaultBranch}`;
    }
    return logical.startsWith('refs/') ? logical : `refs/heads/${logical}`;
  }

  // ------------------------------------------------------------------------------------------ builds

  build(id: number): Build {
    const b = this.builds.get(id);
    if (!b) throw new Error(`unknown build ${id}`);
    return b;
  }

  queueBuild(input: QueueBuildInput): Build {
    const bt = this.buildType(input.buildTypeId);
    const now = this.now();
    const user = input.user !== undefined ? this.user(input.user) : undefined;
    const logical = bt.branched ? (input.branch ?? bt.defaultBranchName) : null;
    const personal = input.personal ?? false;
    const changeIds: number[] = [];
    const revisions: Revision[] = [];
    const pointerKey = `${bt.internalId}|${logical ?? ''}`;
    const pointer = this.changePointer.get(pointerKey) ?? 0;
    let maxSeen = pointer;
    for (const rootId of bt.vcsRootIds) {
      const root = this.vcsRoots.get(rootId)!;
      const branchForRoot = logical ?? bt.defaultBranchName;
      let last: Change | undefined;
      for (const c of this.changesByRoot.get(rootId) ?? []) {
        if (!this.branchMatchesRoot(bt, root, c.branch, branchForRoot)) continue;
        last = c;
        if (c.id > pointer && !personal) changeIds.push(c.id);
        if (c.id > maxSeen) maxSeen = c.id;
      }
      revisions.push({
        version: last?.version ?? this.prng.hex(40),
        vcsBranchName: this.vcsBranchName(bt, root, branchForRoot),
        vcsRootId: root.id,
      });
    }
    if (!personal) this.changePointer.set(pointerKey, maxSeen);
    changeIds.sort((a, b) => a - b);
    const b: Build = {
      id: this.nextBuildId++,
      buildType: bt,
      number: null,
      state: 'queued',
      status: null,
      statusText: null,
      branch: logical,
      defaultBranch: logical !== null && logical === bt.defaultBranchName,
      personal,
      owner: personal ? (user ?? null) : null,
      failedToStart: false,
      canceled: null,
      queuedDate: now,
      startDate: null,
      finishDate: null,
      triggered: user
        ? { type: input.triggerType ?? 'user', date: now, user }
        : { type: input.triggerType ?? 'vcs', date: now, details: 'jetbrains.git' },
      changeIds,
      revisions,
      agent: null,
      tests: null,
      problems: 0,
      estimatedSec: input.estimatedDurationSec ?? bt.estimatedDurationSec,
      hanging: false,
      stageText: '',
      sortKey: 0,
    };
    this.builds.set(b.id, b);
    this.queued.push(b);
    return b;
  }

  startBuild(id: number, opts: { agentId?: number } = {}): Build {
    const b = this.build(id);
    if (b.state !== 'queued') throw new Error(`build ${id} is ${b.state}, not queued`);
    this.removeFrom(this.queued, b);
    b.state = 'running';
    b.status = 'SUCCESS';
    b.statusText = 'Running';
    b.startDate = this.now();
    b.sortKey = b.startDate;
    b.number = String(b.buildType.buildNumberCounter++);
    b.agent = this.agents.find((a) => a.id === opts.agentId) ?? this.agents[(b.id - 1) % this.agents.length]!;
    b.stageText = `Step 1/1: Build number ${b.number}`;
    this.running.push(b);
    return b;
  }

  /** Marks a running build as failing so far (status FAILURE while still running). */
  markFailing(id: number, statusText = 'Tests failed: 1 (1 new)'): void {
    const b = this.build(id);
    if (b.state !== 'running') throw new Error(`build ${id} is not running`);
    b.status = 'FAILURE';
    b.statusText = statusText;
  }

  markHanging(id: number, hanging = true): void {
    this.build(id).hanging = hanging;
  }

  finishBuild(id: number, input: FinishBuildInput = {}): Build {
    const b = this.build(id);
    if (b.state !== 'running') throw new Error(`build ${id} is ${b.state}, not running`);
    this.removeFrom(this.running, b);
    b.state = 'finished';
    b.finishDate = this.now();
    if (b.canceled) {
      b.status = 'UNKNOWN';
      b.statusText = b.statusText ?? 'Canceled';
    } else {
      b.status = input.status ?? (b.status === 'FAILURE' ? 'FAILURE' : 'SUCCESS');
      if (input.tests) {
        b.tests = { passed: 0, failed: 0, ignored: 0, newFailed: 0, muted: 0, ...input.tests };
      }
      b.problems = input.problems ?? (b.status === 'FAILURE' && !b.tests ? 1 : 0);
      b.statusText =
        input.statusText ??
        (b.tests
          ? b.tests.failed > 0
            ? `Tests failed: ${b.tests.failed}, passed: ${b.tests.passed}`
            : `Tests passed: ${b.tests.passed}`
          : b.status === 'SUCCESS'
            ? 'Success'
            : 'Failure');
    }
    this.addFinished(b);
    return b;
  }

  /**
   * Cancel. Queued → finished record `number:"N/A"`, `status:UNKNOWN`, `statusText:"Canceled"` + canceledInfo.
   * Running → stays `running` with `status:UNKNOWN`, `statusText:"Canceled (Step 1/1)"` and canceledInfo until
   * `finishBuild` (the agent acknowledges) — or at once with `immediate:true`.
   */
  cancelBuild(id: number, opts: { user?: string; text?: string; immediate?: boolean } = {}): Build {
    const b = this.build(id);
    const now = this.now();
    const info: CanceledInfo = {
      timestamp: now,
      text: opts.text ?? 'Canceled via REST',
      user: opts.user !== undefined ? this.user(opts.user) : null,
    };
    if (b.state === 'queued') {
      this.removeFrom(this.queued, b);
      b.state = 'finished';
      b.number = 'N/A';
      b.status = 'UNKNOWN';
      b.statusText = 'Canceled';
      b.canceled = info;
      b.finishDate = now;
      b.sortKey = now;
      this.addFinished(b);
      return b;
    }
    if (b.state === 'running') {
      b.canceled = info;
      b.status = 'UNKNOWN';
      b.statusText = 'Canceled (Step 1/1)';
      if (opts.immediate) this.finishBuild(id);
      return b;
    }
    throw new Error(`build ${id} is already finished`);
  }

  /** Queued build that failed to start: finished, `status:FAILURE`, `failedToStart:true`. */
  failToStart(id: number, text = 'Failed to start build: artifact dependency resolution failed'): Build {
    const b = this.build(id);
    if (b.state !== 'queued') throw new Error(`build ${id} is ${b.state}, not queued`);
    this.removeFrom(this.queued, b);
    const now = this.now();
    b.state = 'finished';
    b.number = String(b.buildType.buildNumberCounter++);
    b.status = 'FAILURE';
    b.statusText = text;
    b.failedToStart = true;
    b.startDate = now;
    b.finishDate = now;
    b.sortKey = now;
    b.problems = 1;
    this.addFinished(b);
    return b;
  }

  /** Convenience: queue + start + advance(durationMs) + finish. */
  runBuild(input: QueueBuildInput & FinishBuildInput & { durationMs?: number; queueMs?: number }): Build {
    const b = this.queueBuild(input);
    if (input.queueMs) this.advance(input.queueMs);
    this.startBuild(b.id);
    this.advance(input.durationMs ?? 60_000);
    return this.finishBuild(b.id, input);
  }

  private removeFrom(arr: Build[], b: Build): void {
    const i = arr.indexOf(b);
    if (i >= 0) arr.splice(i, 1);
  }

  private addFinished(b: Build): void {
    insertSorted(this.finished, b);
    insertSorted(this.finishedByBt.get(b.buildType.internalId)!, b);
  }

  // ------------------------------------------------------------------------------------------ bulk (generator)

  /** Adds a build without index maintenance; call `reindex()` afterwards. */
  registerBuildUnsorted(b: Build): void {
    this.builds.set(b.id, b);
    if (b.id >= this.nextBuildId) this.nextBuildId = b.id + 1;
    if (b.state === 'queued') this.queued.push(b);
    else if (b.state === 'running') this.running.push(b);
    else {
      this.finished.push(b);
      this.finishedByBt.get(b.buildType.internalId)!.push(b);
    }
  }

  reindex(): void {
    this.finished.sort(compareFinished);
    for (const arr of this.finishedByBt.values()) arr.sort(compareFinished);
    this.queued.sort((a, b) => a.queuedDate - b.queuedDate || a.id - b.id);
    this.changesAsc.sort((a, b) => a.id - b.id);
    for (const arr of this.changesByRoot.values()) arr.sort((a, b) => a.id - b.id);
  }

  /** Deterministic 40-hex hash-like value derived from a string (settings hashes etc.). */
  static pseudoHash(s: string): string {
    let h1 = 0x811c9dc5;
    let out = '';
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < s.length; i++) h1 = Math.imul(h1 ^ s.charCodeAt(i), 0x01000193) >>> 0;
      h1 = Math.imul(h1 ^ round, 0x01000193) >>> 0;
      out += h1.toString(16).padStart(8, '0');
    }
    return out;
  }
}
