// Entity serializers (JSON form; XML is derived from it). Field sets and defaults follow reference §3/§4 and
// the real fixtures: `dShort`/`dLong` say whether a field is in the default short (list item) / long (single
// entity) form. Jackson NON_NULL: absent values are simply not emitted; false booleans are elided unless the
// field was asked for explicitly (or via `*`).
import { Fields } from './fields.ts';
import { forbidden, formatTcDate } from './format.ts';
import { parseLocator } from './locator.ts';
import type { Agent, Build, BuildType, Change, Project, Revision, TeamCityModel, User, VcsRoot } from './model.ts';
import { TeamCityModel as ModelClass } from './model.ts';

export interface RenderCtx {
  model: TeamCityModel;
  rootUrl: string;
  /** '' | '/httpAuth' | '/guestAuth' — hrefs carry the prefix the request used */
  prefix: string;
  utcOffsetMinutes: number;
  newUi: boolean;
  versionMajor: number;
  user: User;
}

type Json = Record<string, unknown>;

class Out {
  readonly o: Json = {};
  constructor(private readonly f: Fields) {}

  put(name: string, dShort: boolean, dLong: boolean, value: () => unknown): this {
    if (this.f.inc(name, dShort, dLong)) {
      const v = value();
      if (v !== undefined && v !== null) this.o[name] = v;
    }
    return this;
  }

  /** false elided unless explicit */
  bool(name: string, dShort: boolean, dLong: boolean, v: boolean): this {
    if (this.f.inc(name, dShort, dLong) && (v || this.f.explicit(name))) this.o[name] = v;
    return this;
  }

  /** 0 elided unless explicit */
  num(name: string, dShort: boolean, dLong: boolean, v: number): this {
    if (this.f.inc(name, dShort, dLong) && (v !== 0 || this.f.explicit(name))) this.o[name] = v;
    return this;
  }
}

const date = (ctx: RenderCtx, ms: number | null): string | undefined =>
  ms === null ? undefined : formatTcDate(ms, ctx.utcOffsetMinutes);

const api = (ctx: RenderCtx, path: string): string => `${ctx.prefix}/app/rest/${path}`;

// ------------------------------------------------------------------------------------------------ web URLs

export function buildWebUrl(ctx: RenderCtx, b: Build): string {
  if (ctx.newUi) return `${ctx.rootUrl}/buildConfiguration/${b.buildType.id}/${b.id}`;
  if (b.state === 'queued') return `${ctx.rootUrl}/viewQueued.html?itemId=${b.id}`;
  return `${ctx.rootUrl}/viewLog.html?buildId=${b.id}&buildTypeId=${b.buildType.id}`;
}

const btWebUrl = (ctx: RenderCtx, bt: BuildType): string =>
  ctx.newUi ? `${ctx.rootUrl}/buildConfiguration/${bt.id}?mode=builds` : `${ctx.rootUrl}/viewType.html?buildTypeId=${bt.id}`;

const projectWebUrl = (ctx: RenderCtx, p: Project): string =>
  ctx.newUi ? `${ctx.rootUrl}/project/${p.id}` : `${ctx.rootUrl}/project.html?projectId=${p.id}`;

const changeWebUrl = (ctx: RenderCtx, c: Change): string =>
  ctx.newUi ? `${ctx.rootUrl}/change/${c.id}?personal=false` : `${ctx.rootUrl}/viewModification.html?modId=${c.id}&personal=false`;

// ------------------------------------------------------------------------------------------------ small entities

export function renderUser(ctx: RenderCtx, u: User, f: Fields): Json {
  const canSeeEmail = u.id === ctx.user.id || ctx.user.canViewUsers;
  const o = new Out(f)
    .put('username', true, true, () => u.username)
    .put('name', true, true, () => u.name)
    .put('id', true, true, () => u.id)
    .put('email', false, true, () => (canSeeEmail ? u.email : undefined))
    .put('lastLogin', false, true, () => (u.lastLogin !== undefined ? date(ctx, u.lastLogin) : undefined))
    .put('href', true, true, () => api(ctx, `users/id:${u.id}`))
    .put('properties', false, true, () => ({ count: 0, href: api(ctx, `users/id:${u.id}/properties`), property: [] }))
    .put('roles', false, true, () => ({
      role:
        u.viewProjects === 'all'
          ? [{ roleId: 'PROJECT_VIEWER', scope: 'g', href: api(ctx, `users/id:${u.id}/roles/PROJECT_VIEWER/g`) }]
          : [...u.viewProjects].map((p) => {
              const internal = ctx.model.projects.get(p)?.internalId ?? p;
              return { roleId: 'PROJECT_VIEWER', scope: `p:${internal}`, href: api(ctx, `users/id:${u.id}/roles/PROJECT_VIEWER/p:${internal}`) };
            }),
    }))
    .put('groups', false, true, () => ({ count: 0, group: [] }));
  return o.o;
}

function renderProject(ctx: RenderCtx, p: Project, f: Fields): Json {
  return new Out(f)
    .put('id', true, true, () => p.id)
    .put('internalId', false, false, () => p.internalId)
    .put('name', true, true, () => p.name)
    .put('parentProjectId', true, true, () => p.parentId ?? undefined)
    .put('description', true, true, () => p.description)
    .put('href', true, true, () => api(ctx, `projects/id:${p.id}`))
    .put('webUrl', true, true, () => projectWebUrl(ctx, p)).o;
}

function renderAgent(ctx: RenderCtx, a: Agent, f: Fields): Json {
  return new Out(f)
    .put('id', true, true, () => a.id)
    .put('name', true, true, () => a.name)
    .put('typeId', true, true, () => a.typeId)
    .put('href', true, true, () => api(ctx, `agents/id:${a.id}`))
    .put('webUrl', true, true, () => `${ctx.rootUrl}/agentDetails.html?id=${a.id}&agentTypeId=${a.typeId}&realAgentName=${a.name}`).o;
}

function renderVcsRootInstance(ctx: RenderCtx, r: VcsRoot, f: Fields): Json {
  return new Out(f)
    .put('id', true, true, () => r.instanceId)
    .put('vcs-root-id', true, true, () => r.id)
    .put('name', true, true, () => r.name)
    .put('href', true, true, () => api(ctx, `vcs-root-instances/id:${r.instanceId}`)).o;
}

// ------------------------------------------------------------------------------------------------ changes

export function renderChange(ctx: RenderCtx, c: Change, f: Fields): Json {
  const root = ctx.model.vcsRoots.get(c.vcsRootId);
  return new Out(f)
    .put('id', true, true, () => c.id)
    .put('version', true, true, () => c.version)
    .put('internalVersion', false, false, () => c.version)
    .put('username', true, true, () => c.username)
    .put('date', true, true, () => date(ctx, c.date))
    .put('registrationDate', false, false, () => date(ctx, c.date))
    .bool('personal', true, true, false)
    .put('href', true, true, () => api(ctx, `changes/id:${c.id}`))
    .put('webUrl', true, true, () => changeWebUrl(ctx, c))
    .put('comment', false, true, () => c.comment)
    .put('files', false, true, () => ({
      file: c.files.map((x) => ({
        'before-revision': x.beforeRevision,
        'after-revision': x.afterRevision,
        file: x.file,
        'relative-file': x.file,
      })),
    }))
    .put('vcsRootInstance', false, true, () => (root ? renderVcsRootInstance(ctx, root, f.nested('vcsRootInstance')) : undefined)).o;
}

export interface PageLinks {
  href?: string;
  nextHref?: string;
  prevHref?: string;
}

/** `changes` collection. `itemsByDefault`: top-level lists show items, nested ones (`build.changes`) don't. */
export function renderChanges(
  ctx: RenderCtx,
  changes: Change[],
  f: Fields,
  links: PageLinks,
  itemsByDefault: boolean,
  countOverride?: number,
): Json {
  return new Out(f)
    .put('count', true, true, () => countOverride ?? changes.length)
    .put('href', true, true, () => links.href)
    .put('nextHref', true, true, () => links.nextHref)
    .put('prevHref', true, true, () => links.prevHref)
    .put('change', itemsByDefault, itemsByDefault, () => changes.map((c) => renderChange(ctx, c, f.nested('change'))))
    .o;
}

// ------------------------------------------------------------------------------------------------ build types

export function renderBuildType(ctx: RenderCtx, bt: BuildType, f: Fields): Json {
  const project = ctx.model.projects.get(bt.projectId)!;
  const btHref = api(ctx, `buildTypes/id:${bt.id}`);
  const settings: { name: string; value: string }[] = [{ name: 'buildNumberCounter', value: String(bt.buildNumberCounter) }];
  if (bt.type !== 'regular') settings.unshift({ name: 'buildConfigurationType', value: bt.type.toUpperCase() });
  return new Out(f)
    .put('id', true, true, () => bt.id)
    .put('internalId', false, false, () => bt.internalId)
    .put('name', true, true, () => bt.name)
    .bool('templateFlag', false, false, false)
    .put('type', false, false, () => bt.type) // not in defaults (§4.6): request it
    .bool('paused', true, true, bt.paused)
    .put('description', true, true, () => bt.description)
    .put('projectName', true, true, () =>
      ctx.model
        .projectPath(bt.projectId)
        .map((p) => p.name)
        .join(' :: '),
    )
    .put('projectId', true, true, () => bt.projectId)
    .put('projectInternalId', false, false, () => project.internalId)
    .put('href', true, true, () => btHref)
    .put('webUrl', true, true, () => btWebUrl(ctx, bt))
    .put('project', false, true, () => renderProject(ctx, project, f.nested('project')))
    .put('templates', false, true, () => ({ count: 0, buildType: [] }))
    .put('vcs-root-entries', false, true, () => ({
      count: bt.vcsRootIds.length,
      'vcs-root-entry': bt.vcsRootIds.map((id) => {
        const r = ctx.model.vcsRoots.get(id)!;
        return { id: r.id, 'vcs-root': { id: r.id, name: r.name, href: api(ctx, `vcs-roots/id:${r.id}`) }, 'checkout-rules': '' };
      }),
    }))
    .put('settings', false, true, () => ({ count: settings.length, property: settings }))
    .put('parameters', false, true, () => ({ count: 0, href: `${btHref}/parameters`, property: [] }))
    .put('steps', false, true, () =>
      bt.type === 'composite'
        ? { count: 0 }
        : {
            count: 1,
            step: [
              {
                id: 'RUNNER_1',
                name: bt.type === 'deployment' ? 'Deploy' : 'Build',
                type: 'simpleRunner',
                properties: {
                  count: 2,
                  property: [
                    { name: 'script.content', value: bt.type === 'deployment' ? './deploy.sh' : './gradlew build' },
                    { name: 'teamcity.step.mode', value: 'default' },
                  ],
                },
              },
            ],
          },
    )
    .put('features', false, true, () => ({ count: 0 }))
    .put('triggers', false, true, () => ({
      count: 1,
      trigger: [
        {
          id: 'vcsTrigger',
          type: 'vcsTrigger',
          properties: { count: 1, property: [{ name: 'branchFilter', value: '+:*' }] },
        },
      ],
    }))
    .put('snapshot-dependencies', false, true, () => ({ count: 0 }))
    .put('artifact-dependencies', false, true, () => ({ count: 0 }))
    .put('agent-requirements', false, true, () => ({ count: 0 }))
    .put('builds', false, true, () => ({ href: `${btHref}/builds/` }))
    .put('investigations', false, true, () => ({ href: api(ctx, `investigations?locator=buildType:(id:${bt.id})`) }))
    .put('compatibleAgents', false, true, () => ({ href: api(ctx, `agents?locator=compatible:(buildType:(id:${bt.id}))`) })).o;
}

// ------------------------------------------------------------------------------------------------ builds

function renderRevision(ctx: RenderCtx, r: Revision, f: Fields): Json {
  const root = ctx.model.vcsRoots.get(r.vcsRootId)!;
  return new Out(f)
    .put('version', true, true, () => r.version)
    .put('vcsBranchName', true, true, () => r.vcsBranchName)
    // nested default: nothing in short form (`{}` as in the 2019.2 `*` capture), short form within $long
    .put('vcs-root-instance', true, true, () => renderVcsRootInstance(ctx, root, f.nested('vcs-root-instance', Fields.NONE, Fields.SHORT)))
    .o;
}

function percentage(b: Build, now: number): number {
  const elapsed = Math.max(0, (now - (b.startDate ?? now)) / 1000);
  return Math.min(99, Math.floor((elapsed * 100) / Math.max(1, b.estimatedSec)));
}

/**
 * One build. 2024+ servers add `vcsLabels`, `finishOnAgentDate`, `customization` (2025 captures); older ones
 * don't (2019.2 captures).
 */
export function renderBuild(ctx: RenderCtx, b: Build, f: Fields): Json {
  const now = ctx.model.now();
  const modern = ctx.versionMajor >= 2024;
  const bt = b.buildType;
  const href = api(ctx, `builds/id:${b.id}`);
  const webUrl = buildWebUrl(ctx, b);
  const running = b.state === 'running';
  const started = b.startDate !== null && !(b.state === 'finished' && b.number === 'N/A');
  const changes = b.changeIds.map((id) => ctx.model.changes.get(id)!);
  if ((f.inc('resultingProperties', false, false) || f.inc('properties', false, false) || f.inc('startProperties', false, false)) && !ctx.user.viewRuntimeData) {
    throw forbidden(`You do not have "View build runtime parameters and data" permission in project with internal id: '${ctx.model.projects.get(bt.projectId)?.internalId ?? bt.projectId}'.`);
  }
  const o = new Out(f)
    .put('id', true, true, () => b.id)
    .put('taskId', false, false, () => b.id)
    .put('buildTypeId', true, true, () => bt.id)
    .put('buildTypeInternalId', false, false, () => bt.internalId)
    .put('number', true, true, () => b.number)
    .put('status', true, true, () => b.status)
    .put('state', true, true, () => b.state)
    .bool('running', false, false, running)
    .bool('composite', true, true, bt.type === 'composite')
    .bool('failedToStart', true, true, b.failedToStart)
    .bool('personal', true, true, b.personal)
    .put('percentageComplete', true, true, () => (running ? percentage(b, now) : undefined))
    .put('branchName', true, true, () => b.branch)
    .put('defaultBranch', true, true, () => (b.branch !== null && (b.defaultBranch || f.explicit('defaultBranch')) ? b.defaultBranch : undefined))
    .put('unspecifiedBranch', true, true, () => (b.branch !== null && f.explicit('unspecifiedBranch') ? false : undefined))
    .bool('history', true, true, false)
    .bool('pinned', true, true, false)
    .put('href', true, true, () => href)
    .put('webUrl', true, true, () => webUrl)
    .put('queuePosition', false, true, () => (b.state === 'queued' ? ctx.model.queued.indexOf(b) + 1 : undefined))
    .put('limitedChangesCount', false, false, () => changes.length)
    .put('artifactsDirectory', false, false, () => `/opt/TeamCity/.BuildServer/system/artifacts/${bt.projectId}/${bt.name}/${b.id}`)
    .put('links', false, false, () => ({
      count: 1,
      link: [{ type: 'webView', url: webUrl, relativeUrl: webUrl.slice(ctx.rootUrl.length) }],
    }))
    .put('statusText', false, true, () => b.statusText)
    .put('buildType', false, true, () => renderBuildType(ctx, bt, f.nested('buildType')))
    .put('tags', false, false, () => ({ tag: [] }))
    .put('user', false, true, () => (b.owner ? renderUser(ctx, b.owner, f.nested('user')) : undefined))
    .put('running-info', false, true, () => {
      if (!running) return undefined;
      const rf = f.nested('running-info', Fields.LONG, Fields.LONG);
      const elapsed = Math.floor((now - b.startDate!) / 1000);
      return new Out(rf)
        .put('percentageComplete', true, true, () => percentage(b, now))
        .put('elapsedSeconds', true, true, () => elapsed)
        .put('estimatedTotalSeconds', true, true, () => b.estimatedSec)
        .put('leftSeconds', false, false, () => Math.max(0, b.estimatedSec - elapsed))
        .put('currentStageText', true, true, () => b.stageText)
        .put('outdated', true, true, () => elapsed > b.estimatedSec * 3)
        .put('probablyHanging', true, true, () => b.hanging)
        .put('lastActivityTime', false, false, () => date(ctx, now)).o;
    })
    .put('canceledInfo', false, true, () => {
      // not rendered for a build that is still queued (it is never queued with canceledInfo here)
      if (!b.canceled) return undefined;
      const c = b.canceled;
      const cf = f.nested('canceledInfo', Fields.LONG, Fields.LONG);
      return new Out(cf)
        .put('timestamp', true, true, () => date(ctx, c.timestamp))
        .put('text', true, true, () => c.text)
        .put('user', true, true, () => (c.user ? renderUser(ctx, c.user, cf.nested('user')) : undefined)).o;
    })
    .put('queuedDate', false, true, () => date(ctx, b.queuedDate))
    .put('startDate', false, true, () => (started ? date(ctx, b.startDate) : undefined))
    .put('finishDate', false, true, () => date(ctx, b.finishDate))
    .put('triggered', false, true, () => {
      const tf = f.nested('triggered', Fields.SHORT, Fields.SHORT, Fields.ALL);
      const t = b.triggered;
      return new Out(tf)
        .put('type', true, true, () => t.type)
        .put('details', true, true, () => t.details)
        .put('date', true, true, () => date(ctx, t.date))
        .put('displayText', false, false, () =>
          t.user ? (t.user.id === ctx.user.id ? 'you' : t.user.name) : t.type === 'vcs' ? 'Git' : t.type,
        )
        .put('rawValue', false, false, () =>
          t.user ? `##userId='${t.user.id}' type='${t.type}'` : `##type='${t.type}'`,
        )
        .put('user', true, true, () => (t.user ? renderUser(ctx, t.user, tf.nested('user')) : undefined))
        .put('properties', false, false, () => ({ count: 2 })).o;
    })
    .put('lastChanges', false, true, () => {
      const last = changes[changes.length - 1];
      if (!last) return undefined;
      const lf = f.nested('lastChanges', Fields.LONG, Fields.LONG);
      return new Out(lf)
        .put('count', true, true, () => 1)
        .put('change', true, true, () => [renderChange(ctx, last, lf.nested('change'))]).o;
    })
    .put('changes', false, true, () => {
      const cf = f.nested('changes', Fields.SHORT, Fields.SHORT, Fields.ALL);
      const locText = cf.locator();
      let list = changes.slice().reverse(); // newest id first
      if (locText !== undefined) {
        const loc = parseLocator(locText);
        const count = loc.single === null ? loc.int('count') : undefined;
        const start = loc.single === null ? (loc.int('start') ?? 0) : 0;
        list = list.slice(start, count !== undefined && count >= 0 ? start + count : undefined);
      }
      return renderChanges(ctx, list, cf, { href: api(ctx, `changes?locator=build:(id:${b.id})`) }, false, locText ? undefined : changes.length);
    })
    .put('revisions', false, true, () => {
      const rf = f.nested('revisions', Fields.SHORT, Fields.LONG, Fields.ALL);
      return new Out(rf)
        .put('count', true, true, () => b.revisions.length)
        .put('revision', true, true, () =>
          b.revisions.length === 0 ? undefined : b.revisions.map((r) => renderRevision(ctx, r, rf.nested('revision', Fields.SHORT, Fields.LONG))),
        ).o;
    })
    .put('artifactDependencyChanges', false, false, () => ({ count: 0 }))
    .put('agent', false, true, () => (b.agent && started ? renderAgent(ctx, b.agent, f.nested('agent')) : undefined))
    .put('testOccurrences', false, true, () => {
      const t = b.tests;
      if (!t) return undefined;
      const tf = f.nested('testOccurrences', Fields.LONG, Fields.LONG);
      return new Out(tf)
        .put('count', true, true, () => t.passed + t.failed + t.ignored)
        .put('href', true, true, () => api(ctx, `testOccurrences?locator=build:(id:${b.id})`))
        .num('passed', true, true, t.passed)
        .num('failed', true, true, t.failed)
        .num('newFailed', true, true, t.newFailed)
        .num('ignored', true, true, t.ignored)
        .num('muted', true, true, t.muted).o;
    })
    .put('problemOccurrences', false, true, () => {
      if (b.problems === 0) return undefined;
      const pf = f.nested('problemOccurrences', Fields.LONG, Fields.LONG);
      return new Out(pf)
        .put('count', true, true, () => b.problems)
        .put('href', true, true, () => api(ctx, `problemOccurrences?locator=build:(id:${b.id})`))
        .num('newFailed', true, true, b.problems).o;
    })
    .put('artifacts', false, true, () => (b.state === 'queued' ? undefined : { count: 0, href: api(ctx, `builds/id:${b.id}/artifacts/children/`) }))
    .put('relatedIssues', false, true, () => (b.state === 'queued' ? undefined : { href: api(ctx, `builds/id:${b.id}/relatedIssues`) }))
    .put('properties', false, false, () => ({ property: [] }))
    .put('resultingProperties', false, false, () => ({ count: 136 }))
    .put('attributes', false, false, () => ({ count: 0 }))
    .put('statistics', false, true, () => (b.state === 'queued' ? undefined : { href: api(ctx, `builds/id:${b.id}/statistics`) }))
    .put('metadata', false, false, () => ({ count: 0, data: [] }))
    .put('snapshot-dependencies', false, false, () => ({ count: 0 }))
    .put('artifact-dependencies', false, false, () => ({ count: 0 }))
    .put('settingsHash', false, false, () => ModelClass.pseudoHash(`settings:${bt.internalId}`))
    .put('currentSettingsHash', false, false, () => ModelClass.pseudoHash(`settings:${bt.internalId}`))
    .put('modificationId', false, false, () => String(b.changeIds[b.changeIds.length - 1] ?? -1))
    .put('chainModificationId', false, false, () => String(b.changeIds[b.changeIds.length - 1] ?? -1))
    .put('replacementIds', false, false, () => ({ item: [] }))
    .put('related', false, false, () => ({}))
    .bool('usedByOtherBuilds', false, false, false);
  if (modern) {
    o.put('vcsLabels', false, true, () => [])
      .put('finishOnAgentDate', false, true, () => date(ctx, b.finishDate))
      .put('customization', false, true, () => ({}));
  }
  return o.o;
}

export function renderBuilds(ctx: RenderCtx, builds: Build[], f: Fields, links: PageLinks): Json {
  return new Out(f)
    .put('count', true, true, () => builds.length)
    .put('href', true, true, () => links.href)
    .put('nextHref', true, true, () => links.nextHref)
    .put('prevHref', true, true, () => links.prevHref)
    .put('build', true, true, () => builds.map((b) => renderBuild(ctx, b, f.nested('build')))).o;
}

// ------------------------------------------------------------------------------------------------ server

export interface ServerInfo {
  version: string;
  versionMajor: number;
  versionMinor: number;
  buildNumber: string;
  buildDate: number;
  startTime: number;
  internalId: string;
}

export function renderServer(ctx: RenderCtx, s: ServerInfo, f: Fields): Json {
  const o = new Out(f)
    .put('version', true, true, () => s.version)
    .put('versionMajor', true, true, () => s.versionMajor)
    .put('versionMinor', true, true, () => s.versionMinor)
    .put('startTime', true, true, () => date(ctx, s.startTime))
    .put('currentTime', true, true, () => date(ctx, ctx.model.now()))
    .put('buildNumber', true, true, () => s.buildNumber)
    .put('buildDate', true, true, () => date(ctx, s.buildDate))
    .put('internalId', true, true, () => s.internalId)
    .put('webUrl', true, true, () => ctx.rootUrl);
  for (const [k, p] of [
    ['projects', 'projects'],
    ['vcsRoots', 'vcs-roots'],
    ['builds', 'builds'],
    ['users', 'users'],
    ['userGroups', 'userGroups'],
    ['agents', 'agents'],
    ['buildQueue', 'buildQueue'],
    ['agentPools', 'agentPools'],
    ['investigations', 'investigations'],
    ['mutes', 'mutes'],
  ] as const) {
    o.put(k, true, true, () => ({ href: api(ctx, p) }));
  }
  return o.o;
}
