// Finders: builds (reference §2.2, §2.3, §4.3, §5.1–5.3), build types (§2.5), projects, users (§2.6), changes (§2.4).
import { Locator, LocatorError, parseLocator, parseBoolAny } from './locator.ts';
import { badRequest, notFound, parseLegacyTcDate, parseTcTime } from './format.ts';
import type { Build, BuildType, Change, Project, TeamCityModel, User } from './model.ts';
import { compareFinished } from './model.ts';

export const DEFAULT_PAGE_SIZE = 100;
export const BUILDS_DEFAULT_LOOKUP_LIMIT = 5000;
export const CHANGES_DEFAULT_LOOKUP_LIMIT = 15000;
const SINCE_BUILD_LOOKAHEAD = 50;

export interface PagedResult<T> {
  items: T[];
  /** effective page size (null = unlimited) */
  count: number | null;
  start: number | null;
  lookupLimit: number | null;
  lookupLimitReached: boolean;
  processed: number;
}

// ------------------------------------------------------------------------------------------------ projects

export function findProject(model: TeamCityModel, user: User, text: string): Project {
  const loc = parseLocator(text);
  let p: Project | undefined;
  if (loc.single !== null) {
    p = model.projects.get(loc.single) ?? [...model.projects.values()].find((x) => x.name === loc.single);
  } else {
    loc.checkDimensions(['id', 'internalId', 'name']);
    const id = loc.get('id');
    const internalId = loc.get('internalId');
    const name = loc.get('name');
    p = [...model.projects.values()].find(
      (x) =>
        (id === undefined || x.id.toLowerCase() === id.toLowerCase()) &&
        (internalId === undefined || x.internalId === internalId) &&
        (name === undefined || x.name === name),
    );
  }
  if (!p || !model.canViewProject(user, p.id)) {
    throw notFound(`No project found by locator '${text}'. Project cannot be found by external id '${loc.single ?? loc.get('id') ?? text}'.`);
  }
  return p;
}

// ------------------------------------------------------------------------------------------------ build types

const BT_DIMS = ['id', 'internalId', 'name', 'project', 'affectedProject', 'type', 'paused', 'templateFlag'];

export function findBuildTypes(model: TeamCityModel, user: User, text: string): BuildType[] {
  const loc = parseLocator(text);
  const visible = [...model.buildTypes.values()].filter((bt) => model.canViewBuildType(user, bt));
  if (loc.single !== null) {
    const v = loc.single;
    const byInternal = visible.find((bt) => bt.internalId === v);
    if (byInternal) return [byInternal];
    const byExternal = visible.find((bt) => bt.id.toLowerCase() === v.toLowerCase());
    if (byExternal) return [byExternal];
    return visible.filter((bt) => bt.name === v);
  }
  loc.checkDimensions(BT_DIMS, ['uuid']);
  const id = loc.get('id');
  const internalId = loc.get('internalId');
  const name = loc.get('name');
  const type = loc.get('type');
  const paused = loc.bool('paused');
  const templateFlag = loc.bool('templateFlag');
  const project = loc.get('project');
  const affected = loc.get('affectedProject');
  const projectId = project !== undefined ? findProject(model, user, project).id : undefined;
  const subtree = affected !== undefined ? model.projectSubtree(findProject(model, user, affected).id) : undefined;
  if (templateFlag === true) return [];
  return visible.filter(
    (bt) =>
      (id === undefined || bt.id.toLowerCase() === id.toLowerCase()) &&
      (internalId === undefined || bt.internalId === internalId) &&
      (name === undefined || bt.name === name) &&
      (type === undefined || bt.type === type.toLowerCase()) &&
      (paused === undefined || paused === null || bt.paused === paused) &&
      (projectId === undefined || bt.projectId === projectId) &&
      (subtree === undefined || subtree.has(bt.projectId)),
  );
}

export function findBuildType(model: TeamCityModel, user: User, text: string): BuildType {
  const found = findBuildTypes(model, user, text);
  const first = found[0];
  if (!first) {
    const loc = parseLocator(text);
    if (loc.single !== null) {
      throw notFound(`No build type or template is found by id, internal id or name '${loc.single}'.`);
    }
    throw notFound(`Nothing is found by locator '${text}'.`);
  }
  return first;
}

// ------------------------------------------------------------------------------------------------ users

export function findUser(model: TeamCityModel, current: User, text: string): User {
  const loc = parseLocator(text);
  let u: User | undefined;
  let how: string;
  if (loc.single !== null) {
    if (loc.single === 'current') return current; // since 2018.1 `current` always wins
    how = `username '${loc.single}'`;
    u = model.findUserByName(loc.single);
  } else {
    loc.checkDimensions(['id', 'username', 'email', 'name', 'current']);
    const id = loc.int('id');
    const username = loc.get('username');
    const email = loc.get('email');
    const name = loc.get('name');
    if (loc.bool('current') === true) return current;
    how = id !== undefined ? `id '${id}'` : `locator '${text}'`;
    u = [...model.users.values()].find(
      (x) =>
        (id === undefined || x.id === id) &&
        (username === undefined || x.username.toLowerCase() === username.toLowerCase()) &&
        (email === undefined || x.email === email) &&
        (name === undefined || x.name === name),
    );
    if (!u && id === current.id) u = current;
  }
  if (!u) throw notFound(`No user can be found by ${how}.`);
  // UserFinder.checkViewUserPermission: not-permitted users are reported as not found on purpose.
  if (u.id !== current.id && !current.canViewUsers) throw notFound('User not found');
  return u;
}

// ------------------------------------------------------------------------------------------------ builds

const BUILD_DIMS = [
  'id',
  'buildType',
  'affectedProject',
  'project',
  'state',
  'branch',
  'defaultFilter',
  'personal',
  'canceled',
  'failedToStart',
  'composite',
  'history',
  'pinned',
  'hanging',
  'number',
  'status',
  'startDate',
  'finishDate',
  'queuedDate',
  'count',
  'start',
  'lookupLimit',
];
const BUILD_HIDDEN_DIMS = ['sinceBuild', 'sinceDate', 'running'];
const BRANCH_DIMS = ['name', 'default', 'unspecified', 'branched', 'policy', 'changesFromDependencies'];

interface States {
  queued: boolean;
  running: boolean;
  finished: boolean;
}

function parseState(loc: Locator, defaultFilter: boolean): States | null {
  const state = loc.get('state');
  const running = loc.get('running');
  if (state !== undefined) {
    const s = state.toLowerCase();
    if (s === 'queued') return { queued: true, running: false, finished: false };
    if (s === 'running') return { queued: false, running: true, finished: false };
    if (s === 'finished') return { queued: false, running: false, finished: true };
    if (s === 'any' || state === '$any') return { queued: true, running: true, finished: true };
    const sub = parseLocator(state);
    if (sub.single !== null) {
      throw new LocatorError(`Unsupported value of 'state' dimension: '${state}'. Supported are: queued, running, finished, any`);
    }
    sub.checkDimensions(['queued', 'running', 'finished']);
    return {
      queued: sub.bool('queued') !== false && sub.has('queued'),
      running: sub.bool('running') !== false && sub.has('running'),
      finished: sub.bool('finished') !== false && sub.has('finished'),
    };
  }
  if (running !== undefined) {
    const r = parseBoolAny(running, 'running');
    if (r === true) return { queued: false, running: true, finished: false };
    if (r === false) return { queued: false, running: false, finished: true };
    return { queued: false, running: true, finished: true };
  }
  return defaultFilter ? { queued: false, running: false, finished: true } : null;
}

type Pred = (b: Build) => boolean;

function boolPred(loc: Locator, dim: string, get: (b: Build) => boolean): Pred | null {
  const v = loc.bool(dim);
  if (v === undefined || v === null) return null;
  return (b) => get(b) === v;
}

interface ValueCondition {
  test(s: string): boolean;
}

/** Value condition (`name:(value:…,matchType:…,ignoreCase:…)`) or plain value (case-insensitive equality). */
function valueCondition(text: string): ValueCondition {
  const loc = parseLocator(text);
  if (loc.single !== null) {
    const v = loc.single.toLowerCase();
    return { test: (s) => s.toLowerCase() === v };
  }
  loc.checkDimensions(['value', 'matchType', 'ignoreCase']);
  const value = loc.get('value') ?? '';
  const matchType = (loc.get('matchType') ?? 'equals').toLowerCase();
  const ignoreCase = loc.bool('ignoreCase') ?? true;
  const norm = (s: string): string => (ignoreCase ? s.toLowerCase() : s);
  const v = norm(value);
  switch (matchType) {
    case 'equals':
      return { test: (s) => norm(s) === v };
    case 'does-not-equal':
      return { test: (s) => norm(s) !== v };
    case 'starts-with':
      return { test: (s) => norm(s).startsWith(v) };
    case 'ends-with':
      return { test: (s) => norm(s).endsWith(v) };
    case 'contains':
      return { test: (s) => norm(s).includes(v) };
    case 'does-not-contain':
      return { test: (s) => !norm(s).includes(v) };
    case 'matches': {
      const re = new RegExp(`^(?:${value})$`, ignoreCase ? 'i' : '');
      return { test: (s) => re.test(s) };
    }
    case 'exists':
      return { test: () => true };
    default:
      throw new LocatorError(
        `Unsupported matchType '${matchType}'. Supported are: equals, does-not-equal, starts-with, ends-with, contains, does-not-contain, matches, exists`,
      );
  }
}

/** Branch locator (TCR BranchFinder). The value is re-parsed as a locator even after `$base64:` decoding. */
function branchPred(text: string, hasBuildType: boolean): Pred | null {
  const loc = parseLocator(text);
  if (loc.single !== null) {
    if (loc.single === '<any>') return null;
    return nameMatcher(loc.single);
  }
  loc.checkDimensions(BRANCH_DIMS);
  const preds: Pred[] = [];
  const policy = loc.get('policy');
  if (policy !== undefined && !hasBuildType) {
    throw badRequest("Branch policy can only be used with a build type: specify 'buildType' dimension in the build locator.");
  }
  loc.get('changesFromDependencies');
  const dflt = loc.bool('default');
  if (dflt === true) preds.push((b) => b.branch === null || b.defaultBranch);
  if (dflt === false) preds.push((b) => b.branch !== null && !b.defaultBranch);
  const branched = loc.bool('branched');
  if (branched === true) preds.push((b) => b.branch !== null);
  if (branched === false) preds.push((b) => b.branch === null);
  if (loc.bool('unspecified') === true) preds.push(() => false); // the simulator has no unspecified-branch builds
  const name = loc.get('name');
  if (name !== undefined) preds.push(nameMatcher(name));
  if (preds.length === 0) return null;
  return (b) => preds.every((p) => p(b));
}

function nameMatcher(nameText: string): Pred {
  if (nameText.toLowerCase() === '<default>') return (b) => b.branch === null || b.defaultBranch;
  const cond = valueCondition(nameText);
  return (b) => {
    if (b.branch === null) return false;
    if (cond.test(b.branch)) return true;
    return b.revisions.some((r) => cond.test(r.vcsBranchName));
  };
}

type DateField = 'startDate' | 'finishDate' | 'queuedDate';

interface TimeFilter {
  pred: Pred;
  /** scanning finished builds (start desc) may stop once sortKey <= cutoff */
  startCutoff: number | null;
}

function timeFilter(model: TeamCityModel, user: User, field: DateField, text: string): TimeFilter {
  const now = model.now();
  const loc = parseLocator(text);
  let t: number;
  let condition = 'after';
  let includeInitial = false;
  if (loc.single !== null) {
    t = parseTcTime(loc.single, now);
  } else {
    loc.checkDimensions(['date', 'build', 'condition', 'includeInitial'], ['shift']);
    const date = loc.get('date');
    const buildLoc = loc.get('build');
    if (date !== undefined) {
      t = parseTcTime(date, now);
    } else if (buildLoc !== undefined) {
      const ref = findBuild(model, user, buildLoc);
      const v = ref[field];
      if (v === null) throw badRequest(`Build with id ${ref.id} does not have ${field}.`);
      t = v;
    } else {
      throw new LocatorError(`Either 'date' or 'build' dimension should be specified in '${text}'.`);
    }
    const shift = loc.get('shift');
    if (shift !== undefined) t = parseTcTime(shift.startsWith('-') || shift.startsWith('+') ? shift : `+${shift}`, t);
    condition = (loc.get('condition') ?? 'after').toLowerCase();
    includeInitial = loc.bool('includeInitial') === true;
  }
  const get = (b: Build): number | null => b[field];
  let pred: Pred;
  switch (condition) {
    case 'after':
      pred = (b) => {
        const v = get(b);
        return v !== null && (includeInitial ? v >= t : v > t);
      };
      break;
    case 'before':
      pred = (b) => {
        const v = get(b);
        return v !== null && (includeInitial ? v <= t : v < t);
      };
      break;
    case 'equals':
      pred = (b) => get(b) === t;
      break;
    default:
      throw new LocatorError(`Unsupported condition '${condition}'. Supported are: after, before, equals`);
  }
  const startCutoff = field === 'startDate' && condition === 'after' ? (includeInitial ? t - 1 : t) : null;
  return { pred, startCutoff };
}

/** Lazily merges per-configuration finished arrays (each sorted by compareFinished). */
function* mergeFinished(arrays: Build[][]): Generator<Build> {
  const heads = arrays.filter((a) => a.length > 0).map((a) => ({ a, i: 0 }));
  // binary heap on heads
  const less = (x: { a: Build[]; i: number }, y: { a: Build[]; i: number }): boolean =>
    compareFinished(x.a[x.i]!, y.a[y.i]!) < 0;
  const heap = heads;
  const down = (k: number): void => {
    for (;;) {
      const l = 2 * k + 1;
      const r = l + 1;
      let m = k;
      if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
      if (m === k) return;
      [heap[k], heap[m]] = [heap[m]!, heap[k]!];
      k = m;
    }
  };
  for (let k = (heap.length >> 1) - 1; k >= 0; k--) down(k);
  while (heap.length > 0) {
    const top = heap[0]!;
    yield top.a[top.i]!;
    top.i++;
    if (top.i >= top.a.length) {
      const last = heap.pop()!;
      if (heap.length > 0) {
        heap[0] = last;
        down(0);
      }
    } else {
      down(0);
    }
  }
}

interface PagingSpec {
  count: number | null;
  start: number;
  lookupLimit: number;
}

function paging(loc: Locator, defaultLookup: number, forcedCount?: number): PagingSpec {
  const c = forcedCount ?? loc.int('count') ?? DEFAULT_PAGE_SIZE;
  const count = c < 0 ? null : c;
  const start = loc.int('start') ?? 0;
  const explicitLookup = loc.int('lookupLimit');
  const lookupLimit = explicitLookup ?? (count !== null && count > defaultLookup ? count : defaultLookup);
  return { count, start, lookupLimit };
}

/**
 * Lists builds. `forSingle` = resolving `/builds/{locator}` (count 1 unless given).
 */
export function findBuilds(
  model: TeamCityModel,
  user: User,
  text: string | undefined,
  opts: { forSingle?: boolean } = {},
): PagedResult<Build> {
  const loc = text === undefined || text === '' ? new Locator('', null, new Map()) : parseLocator(text);
  if (loc.single !== null) {
    if (!/^\d+$/.test(loc.single)) {
      throw new LocatorError(`Invalid single value: '${loc.single}'. Should be a number.`);
    }
    const b = model.builds.get(Number(loc.single));
    const items = b && model.canViewBuildType(user, b.buildType) ? [b] : [];
    return { items, count: null, start: null, lookupLimit: null, lookupLimitReached: false, processed: items.length };
  }
  loc.checkDimensions(BUILD_DIMS, BUILD_HIDDEN_DIMS);

  const preds: Pred[] = [];
  const idDim = loc.int('id');
  const explicitDefaultFilter = loc.bool('defaultFilter');
  const defaultFilter = idDim === undefined && explicitDefaultFilter !== false;

  // --- configuration scope
  let btScope: BuildType[] | null = null;
  const btText = loc.get('buildType');
  if (btText !== undefined) {
    btScope = findBuildTypes(model, user, btText);
    if (btScope.length === 0) throw notFound(`No build types found by locator '${btText}'.`);
  }
  const affected = loc.get('affectedProject');
  if (affected !== undefined) {
    const p = findProject(model, user, affected);
    if (p.id !== '_Root') {
      const sub = model.projectSubtree(p.id);
      btScope = (btScope ?? [...model.buildTypes.values()]).filter((bt) => sub.has(bt.projectId));
    }
  }
  const projectDim = loc.get('project');
  if (projectDim !== undefined) {
    const p = findProject(model, user, projectDim);
    btScope = (btScope ?? [...model.buildTypes.values()]).filter((bt) => bt.projectId === p.id);
  }
  if (user.viewProjects !== 'all') {
    btScope = (btScope ?? [...model.buildTypes.values()]).filter((bt) => model.canViewBuildType(user, bt));
  }
  const btSet = btScope ? new Set(btScope.map((bt) => bt.internalId)) : null;
  if (btSet) preds.push((b) => btSet.has(b.buildType.internalId));

  // --- state
  const states = idDim !== undefined && !loc.has('state') && !loc.has('running')
    ? { queued: true, running: true, finished: true }
    : (parseState(loc, defaultFilter) ?? { queued: true, running: true, finished: true });
  const onlyQueuedOrRunning = !states.finished;
  const implicit = defaultFilter && !onlyQueuedOrRunning;

  // --- flags (+ implicit defaults of §2.3)
  const flag = (dim: string, get: (b: Build) => boolean, implicitValue: boolean | null): void => {
    const p = boolPred(loc, dim, get);
    if (p) preds.push(p);
    else if (!loc.has(dim) && implicit && implicitValue !== null) preds.push((b) => get(b) === implicitValue);
  };
  flag('personal', (b) => b.personal, false);
  flag('canceled', (b) => b.canceled !== null, false);
  flag('failedToStart', (b) => b.failedToStart, false);
  flag('composite', (b) => b.buildType.type === 'composite', null);
  flag('history', () => false, null);
  flag('pinned', () => false, null);
  flag('hanging', (b) => b.state === 'running' && b.hanging, null);

  const branchText = loc.get('branch');
  if (branchText !== undefined) {
    const p = branchPred(branchText, btText !== undefined);
    if (p) preds.push(p);
  } else if (implicit) {
    preds.push((b) => b.branch === null || b.defaultBranch);
  }

  const number = loc.get('number');
  if (number !== undefined) preds.push((b) => b.number === number);
  const status = loc.get('status');
  if (status !== undefined) {
    const s = status.toUpperCase();
    if (!['SUCCESS', 'FAILURE', 'ERROR', 'UNKNOWN'].includes(s)) {
      throw new LocatorError(`Unsupported status '${status}'. Supported are: SUCCESS, FAILURE, ERROR, UNKNOWN`);
    }
    preds.push((b) => b.status === s); // ERROR: legacy status text, no simulated build has it
  }
  if (idDim !== undefined) preds.push((b) => b.id === idDim);

  // --- time conditions
  let startCutoff: number | null = null;
  const tighten = (c: number | null): void => {
    if (c !== null) startCutoff = startCutoff === null ? c : Math.max(startCutoff, c);
  };
  for (const field of ['startDate', 'finishDate', 'queuedDate'] as const) {
    const v = loc.get(field);
    if (v !== undefined) {
      const tf = timeFilter(model, user, field, v);
      preds.push(tf.pred);
      tighten(tf.startCutoff);
    }
  }
  const sinceDate = loc.get('sinceDate');
  if (sinceDate !== undefined) {
    const t = parseLegacyTcDate(sinceDate);
    preds.push((b) => b.startDate !== null && b.startDate > t);
    tighten(t);
  }

  // sinceBuild (§5.3)
  let sinceRef: { id: number; build: Build | null } | null = null;
  const sinceBuildText = loc.get('sinceBuild');
  if (sinceBuildText !== undefined) {
    let ref: Build | null = null;
    try {
      ref = findBuild(model, user, sinceBuildText);
    } catch (e) {
      const sub = parseLocator(sinceBuildText);
      const rawId = sub.single ?? (sub.dims.size === 1 ? sub.get('id') : undefined);
      if (rawId === undefined || !/^\d+$/.test(rawId)) throw e;
      sinceRef = { id: Number(rawId), build: null };
    }
    if (ref) sinceRef = { id: ref.id, build: ref };
    const sr = sinceRef!;
    const refStart = sr.build?.startDate ?? null;
    if (sr.build && refStart !== null) {
      preds.push(
        (b) =>
          b.state !== 'finished' ||
          (b.startDate !== null && (b.startDate > refStart || (b.startDate === refStart && b.id !== sr.id))),
      );
    } else {
      preds.push((b) => b.id > sr.id);
    }
  }

  const pg = paging(loc, BUILDS_DEFAULT_LOOKUP_LIMIT, opts.forSingle && !loc.has('count') ? 1 : undefined);

  // --- scan: queued (queue order), running (newest start first), finished (newest start first)
  const match = (b: Build): boolean => preds.every((p) => p(b));
  const items: Build[] = [];
  let processed = 0;
  let skipped = 0;
  let reached = false;
  let done = false;
  const visit = (b: Build): boolean => {
    // returns false to stop
    if (processed >= pg.lookupLimit) {
      reached = true;
      return false;
    }
    processed++;
    if (match(b)) {
      if (skipped < pg.start) skipped++;
      else {
        items.push(b);
        if (pg.count !== null && items.length >= pg.count) {
          done = true;
          return false;
        }
      }
    }
    return true;
  };

  if (idDim !== undefined) {
    const b = model.builds.get(idDim);
    if (b && match(b)) items.push(b);
    return { items, count: null, start: null, lookupLimit: null, lookupLimitReached: false, processed: 1 };
  }

  const inScope = (b: Build): boolean => btSet === null || btSet.has(b.buildType.internalId);
  if (states.queued) {
    for (const b of model.queued) {
      if (!inScope(b)) continue;
      if (!visit(b)) break;
    }
  }
  if (states.running && !done && !reached) {
    const running = model.running.filter(inScope).sort(compareFinished);
    for (const b of running) if (!visit(b)) break;
  }
  if (states.finished && !done && !reached) {
    const source: Iterable<Build> =
      btScope === null ? model.finished : mergeFinished(btScope.map((bt) => model.finishedByBt.get(bt.internalId) ?? []));
    let lowerIdRun = 0;
    for (const b of source) {
      if (startCutoff !== null && b.sortKey <= startCutoff) break;
      if (sinceRef) {
        if (b.id === sinceRef.id) break;
        if (b.id < sinceRef.id) {
          if (++lowerIdRun > SINCE_BUILD_LOOKAHEAD) break;
        } else lowerIdRun = 0;
      }
      if (!visit(b)) break;
    }
  }
  return {
    items,
    count: pg.count,
    start: loc.has('start') ? pg.start : null,
    lookupLimit: pg.lookupLimit,
    lookupLimitReached: reached,
    processed,
  };
}

export function findBuild(model: TeamCityModel, user: User, text: string): Build {
  const r = findBuilds(model, user, text, { forSingle: true });
  const b = r.items[0];
  if (!b) {
    const suffix = r.lookupLimitReached
      ? ` while processing first ${r.processed} items. Set locator 'lookupLimit' dimension to larger value to process more items.`
      : '.';
    throw notFound(`Nothing is found by locator '${text}'${suffix}`);
  }
  return b;
}

// ------------------------------------------------------------------------------------------------ changes

const CHANGE_DIMS = ['id', 'build', 'buildType', 'version', 'username', 'count', 'start', 'lookupLimit'];

export function findChanges(model: TeamCityModel, user: User, text: string | undefined): PagedResult<Change> {
  const loc = text === undefined || text === '' ? new Locator('', null, new Map()) : parseLocator(text);
  let candidates: Change[];
  if (loc.single !== null) {
    if (!/^\d+$/.test(loc.single)) throw new LocatorError(`Invalid single value: '${loc.single}'. Should be a number.`);
    const c = model.changes.get(Number(loc.single));
    candidates = c ? [c] : [];
  } else {
    loc.checkDimensions(CHANGE_DIMS);
    const buildText = loc.get('build');
    if (buildText !== undefined) {
      const b = findBuild(model, user, buildText);
      candidates = b.changeIds.map((id) => model.changes.get(id)!).reverse();
    } else {
      candidates = model.changesAsc;
    }
  }
  const btText = loc.single === null ? loc.get('buildType') : undefined;
  let rootFilter: Set<string> | null = null;
  if (btText !== undefined) {
    const bts = findBuildTypes(model, user, btText);
    if (bts.length === 0) throw notFound(`No build types found by locator '${btText}'.`);
    rootFilter = new Set(bts.flatMap((bt) => bt.vcsRootIds));
  }
  const id = loc.single === null ? loc.int('id') : undefined;
  const version = loc.single === null ? loc.get('version') : undefined;
  const username = loc.single === null ? loc.get('username') : undefined;
  const visible = (c: Change): boolean => {
    const root = model.vcsRoots.get(c.vcsRootId);
    return root !== undefined && model.canViewProject(user, root.projectId);
  };
  const match = (c: Change): boolean =>
    visible(c) &&
    (rootFilter === null || rootFilter.has(c.vcsRootId)) &&
    (id === undefined || c.id === id) &&
    (version === undefined || c.version === version) &&
    (username === undefined || c.username.toLowerCase() === username.toLowerCase());
  const pg = loc.single !== null ? { count: null, start: 0, lookupLimit: Infinity } : paging(loc, CHANGES_DEFAULT_LOOKUP_LIMIT);
  const items: Change[] = [];
  let processed = 0;
  let skipped = 0;
  let reached = false;
  // newest change id first: the build's list is already reversed; the global list is ascending
  const ascending = candidates === model.changesAsc;
  const n = candidates.length;
  for (let k = 0; k < n; k++) {
    const c = candidates[ascending ? n - 1 - k : k]!;
    if (processed >= pg.lookupLimit) {
      reached = true;
      break;
    }
    processed++;
    if (!match(c)) continue;
    if (skipped < pg.start) {
      skipped++;
      continue;
    }
    items.push(c);
    if (pg.count !== null && items.length >= pg.count) break;
  }
  return {
    items,
    count: pg.count,
    start: loc.single === null && loc.has('start') ? pg.start : null,
    lookupLimit: Number.isFinite(pg.lookupLimit) ? pg.lookupLimit : null,
    lookupLimitReached: reached,
    processed,
  };
}
