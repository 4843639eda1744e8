// Jira platform endpoints used by the app (reference §4): permissions/check, GET issue, GET project.
// Shapes follow the platform OpenAPI subset (validated in platform.test.ts).
import type { ValidateFunction } from 'ajv';
import type { ApiResult } from './entities.ts';
import { errorMessages } from './schema.ts';
import { GLOBAL_PERMISSIONS, PROJECT_PERMISSIONS, type Issue, type Project, type Site, type User } from './site.ts';

type Json = Record<string, unknown>;

function errorCollection(messages: string[], errors: Record<string, string> = {}): Json {
  return { errorMessages: messages, errors };
}

/**
 * The add-on user a Connect app acts as when `accountId` is omitted: no global permissions, BROWSE_PROJECTS
 * on every project (READ scope). The reference marks this case unverified.
 */
function appUser(appKey: string): User {
  return { accountId: `addon_${appKey}`, displayName: appKey, siteAdmin: false, projectPermissions: { '*': ['BROWSE_PROJECTS'] } };
}

export function permissionsCheck(site: Site, appKey: string, body: unknown, validate: ValidateFunction): ApiResult {
  const input = (body ?? {}) as Json;
  if (!validate(input)) return { status: 400, body: errorCollection(errorMessages(validate.errors)) };
  const accountId = input['accountId'];
  // An unknown account has no permissions (reference does not document the real answer).
  const user: User | undefined = typeof accountId === 'string' && accountId !== '' ? site.user(accountId) : appUser(appKey);

  const unknown: Record<string, string> = {};
  const globals = ((input['globalPermissions'] as Array<string | null> | undefined) ?? []).filter((p): p is string => typeof p === 'string');
  for (const p of globals) if (!(GLOBAL_PERMISSIONS as readonly string[]).includes(p)) unknown[p] = 'Unrecognized permission';

  const requests = ((input['projectPermissions'] as Array<Json | null> | undefined) ?? []).filter((r): r is Json => r !== null);
  const perItem: Array<{ permissions: string[]; projects: Array<number | null>; issues: Array<number | null> }> = [];
  for (const r of requests) {
    const permissions = ((r['permissions'] as Array<string | null>) ?? []).filter((p): p is string => typeof p === 'string' && p !== '');
    if (permissions.length === 0) {
      return { status: 400, body: errorCollection(['At least one project permission must be provided in projectPermissions.']) };
    }
    for (const p of permissions) if (!(PROJECT_PERMISSIONS as readonly string[]).includes(p)) unknown[p] = 'Unrecognized permission';
    perItem.push({ permissions, projects: (r['projects'] as Array<number | null>) ?? [], issues: (r['issues'] as Array<number | null>) ?? [] });
  }
  if (Object.keys(unknown).length) return { status: 400, body: errorCollection([], unknown) };
  const totalProjects = perItem.reduce((n, i) => n + i.projects.length, 0);
  const totalIssues = perItem.reduce((n, i) => n + i.issues.length, 0);
  if (totalProjects > 1000 || totalIssues > 1000) {
    return { status: 400, body: errorCollection(['A maximum of 1000 projects and 1000 issues can be checked.']) };
  }

  const globalPermissions = user ? globals.filter((p, i) => globals.indexOf(p) === i && site.globalPermissionsOf(user).includes(p)) : [];
  const grants = new Map<string, { projects: Set<number>; issues: Set<number> }>();
  for (const item of perItem) {
    for (const permission of item.permissions) {
      const g = grants.get(permission) ?? { projects: new Set<number>(), issues: new Set<number>() };
      grants.set(permission, g);
      if (!user) continue;
      const explicit = item.projects.length > 0 || item.issues.length > 0;
      // Without projects/issues, every project the user holds the permission in (unverified choice).
      const projectIds = explicit ? item.projects : site.projects.map((p) => Number(p.id));
      for (const pid of projectIds) {
        if (pid === null) continue;
        const project = site.project(String(pid));
        if (project && site.hasProjectPermission(user, project.key, permission)) g.projects.add(pid);
      }
      for (const iid of item.issues) {
        if (iid === null) continue;
        const issue = site.findIssue(String(iid));
        if (issue && issue.id === String(iid) && site.hasProjectPermission(user, issue.projectKey, permission)) g.issues.add(iid);
      }
    }
  }
  const projectPermissions = [...grants.entries()]
    .filter(([, g]) => g.projects.size > 0 || g.issues.size > 0)
    .map(([permission, g]) => ({ permission, projects: [...g.projects].sort((a, b) => a - b), issues: [...g.issues].sort((a, b) => a - b) }));
  return { status: 200, body: { globalPermissions, projectPermissions } };
}

function avatarUrls(base: string, kind: 'project' | 'user', id: string): Json {
  const sizes: Record<string, string> = { '48x48': 'large', '24x24': 'small', '16x16': 'xsmall', '32x32': 'medium' };
  const out: Json = {};
  for (const [k, size] of Object.entries(sizes)) {
    out[k] = kind === 'project' ? `${base}/rest/api/3/universal_avatar/view/type/project/avatar/10400?size=${size}&pid=${id}` : `${base}/secure/useravatar?size=${size}&ownerId=${encodeURIComponent(id)}`;
  }
  return out;
}

function userJson(base: string, u: User): Json {
  return {
    self: `${base}/rest/api/3/user?accountId=${encodeURIComponent(u.accountId)}`,
    accountId: u.accountId,
    accountType: 'atlassian',
    avatarUrls: avatarUrls(base, 'user', u.accountId),
    displayName: u.displayName,
    active: true,
  };
}

function issueTypes(base: string): Json[] {
  return [
    { self: `${base}/rest/api/3/issuetype/10001`, id: '10001', description: 'A small, distinct piece of work.', iconUrl: `${base}/rest/api/2/universal_avatar/view/type/issuetype/avatar/10318?size=medium`, name: 'Task', subtask: false, avatarId: 10318, hierarchyLevel: 0 },
    { self: `${base}/rest/api/3/issuetype/10002`, id: '10002', description: 'A problem or error.', iconUrl: `${base}/rest/api/2/universal_avatar/view/type/issuetype/avatar/10303?size=medium`, name: 'Bug', subtask: false, avatarId: 10303, hierarchyLevel: 0 },
  ];
}

function projectSummary(base: string, p: Project): Json {
  return {
    self: `${base}/rest/api/3/project/${p.id}`,
    id: p.id,
    key: p.key,
    name: p.name,
    projectTypeKey: p.projectTypeKey,
    simplified: false,
    avatarUrls: avatarUrls(base, 'project', p.id),
  };
}

export function projectJson(site: Site, base: string, p: Project): Json {
  const lead = site.siteAdmin();
  return {
    expand: 'description,lead,issueTypes,url,projectKeys,permissions,insight',
    self: `${base}/rest/api/3/project/${p.id}`,
    id: p.id,
    key: p.key,
    description: '',
    ...(lead ? { lead: userJson(base, lead) } : {}),
    components: [],
    issueTypes: issueTypes(base),
    assigneeType: 'UNASSIGNED',
    versions: [],
    name: p.name,
    roles: { Administrator: `${base}/rest/api/3/project/${p.id}/role/10002` },
    avatarUrls: avatarUrls(base, 'project', p.id),
    projectTypeKey: p.projectTypeKey,
    simplified: false,
    style: 'classic',
    isPrivate: false,
    properties: {},
  };
}

const ALL_FIELDS = ['summary', 'project', 'issuetype', 'status', 'created', 'updated'];

export function issueJson(site: Site, base: string, issue: Issue, fieldsParam: string[] | undefined): Json {
  const project = site.project(issue.projectKey);
  const all: Json = {
    summary: issue.summary,
    project: project ? projectSummary(base, project) : null,
    issuetype: issueTypes(base)[0],
    status: {
      self: `${base}/rest/api/3/status/10000`, description: '', iconUrl: `${base}/`, name: 'To Do', id: '10000',
      statusCategory: { self: `${base}/rest/api/3/statuscategory/2`, id: 2, key: 'new', colorName: 'blue-gray', name: 'To Do' },
    },
    created: '2026-01-05T09:00:00.000+0000',
    updated: '2026-01-05T09:00:00.000+0000',
  };
  let selected = ALL_FIELDS;
  const requested = (fieldsParam ?? []).flatMap((f) => f.split(',')).map((f) => f.trim()).filter(Boolean);
  if (requested.length) {
    const include = requested.filter((f) => !f.startsWith('-'));
    const exclude = requested.filter((f) => f.startsWith('-')).map((f) => f.slice(1));
    const base0 = include.some((f) => f === '*all' || f === '*navigable') ? ALL_FIELDS : include.filter((f) => ALL_FIELDS.includes(f));
    selected = base0.filter((f) => !exclude.includes(f));
  }
  const fields: Json = {};
  for (const f of selected) fields[f] = all[f];
  return {
    expand: 'renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations',
    id: issue.id,
    self: `${base}/rest/api/3/issue/${issue.id}`,
    key: issue.key,
    fields,
  };
}

export function getIssue(site: Site, base: string, idOrKey: string, query: Map<string, string[]>): ApiResult {
  const issue = site.findIssue(idOrKey);
  if (!issue) return { status: 404, body: errorCollection(['Issue does not exist or you do not have permission to see it.']) };
  return { status: 200, body: issueJson(site, base, issue, query.get('fields')) };
}

export function getProject(site: Site, base: string, idOrKey: string): ApiResult {
  // Keys are case-sensitive in the path (reference §4.3).
  const project = site.projects.find((p) => p.id === idOrKey || p.key === idOrKey);
  if (!project) return { status: 404, body: errorCollection([`No project could be found with key '${idOrKey}'.`]) };
  return { status: 200, body: projectJson(site, base, project) };
}
