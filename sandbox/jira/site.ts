// The model of one simulated Jira Cloud site: projects, issues, users with permissions, the apps
// installed on it, and the builds/deployments those apps submitted. Seeded and deterministic.
import { createHmac } from 'node:crypto';

export const GLOBAL_PERMISSIONS = [
  'ADMINISTER', 'SYSTEM_ADMIN', 'USER_PICKER', 'CREATE_SHARED_OBJECTS', 'MANAGE_GROUP_FILTER_SUBSCRIPTIONS',
  'BULK_CHANGE', 'CREATE_PROJECT',
] as const;

export const PROJECT_PERMISSIONS = [
  'ADMINISTER_PROJECTS', 'BROWSE_PROJECTS', 'VIEW_DEV_TOOLS', 'VIEW_READONLY_WORKFLOW', 'CREATE_ISSUES',
  'EDIT_ISSUES', 'TRANSITION_ISSUES', 'SCHEDULE_ISSUES', 'MOVE_ISSUES', 'ASSIGN_ISSUES', 'ASSIGNABLE_USER',
  'RESOLVE_ISSUES', 'CLOSE_ISSUES', 'MODIFY_REPORTER', 'DELETE_ISSUES', 'LINK_ISSUES', 'SET_ISSUE_SECURITY',
  'VIEW_VOTERS_AND_WATCHERS', 'MANAGE_WATCHERS', 'ADD_COMMENTS', 'EDIT_ALL_COMMENTS', 'EDIT_OWN_COMMENTS',
  'DELETE_ALL_COMMENTS', 'DELETE_OWN_COMMENTS', 'CREATE_ATTACHMENTS', 'DELETE_ALL_ATTACHMENTS',
  'DELETE_OWN_ATTACHMENTS', 'WORK_ON_ISSUES', 'EDIT_OWN_WORKLOGS', 'EDIT_ALL_WORKLOGS', 'DELETE_OWN_WORKLOGS',
  'DELETE_ALL_WORKLOGS', 'MANAGE_SPRINTS_PERMISSION',
] as const;

export interface Project {
  id: string;
  key: string;
  name: string;
  projectTypeKey: 'software' | 'service_desk' | 'business';
}

export interface Issue {
  id: string;
  key: string;
  summary: string;
  projectKey: string;
}

export interface User {
  accountId: string;
  displayName: string;
  /** Site admins hold the global ADMINISTER permission. */
  siteAdmin: boolean;
  /** Project key → project permission keys. `*` as key means every project. */
  projectPermissions: Record<string, string[]>;
}

export interface Installation {
  appKey: string;
  clientKey: string;
  sharedSecret: string;
  descriptor: Descriptor;
  descriptorUrl: string;
  enabled: boolean;
  installedAt: number;
}

export interface Descriptor {
  key: string;
  baseUrl: string;
  name?: string;
  lifecycle?: { installed?: string; uninstalled?: string; enabled?: string; disabled?: string };
  scopes?: string[];
  apiMigrations?: Record<string, boolean>;
  modules?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface StoredBuild {
  appKey: string;
  data: Record<string, unknown>;
  pipelineId: string;
  buildNumber: number;
  updateSequenceNumber: number;
  /** Known issue keys the build is associated with. */
  issueKeys: string[];
  properties: Record<string, string>;
  providerProduct?: string;
}

export interface StoredDeployment {
  appKey: string;
  data: Record<string, unknown>;
  pipelineId: string;
  environmentId: string;
  deploymentSequenceNumber: number;
  updateSequenceNumber: number;
  issueKeys: string[];
  properties: Record<string, string>;
  providerProduct?: string;
}

export interface SiteSeed {
  projects?: Array<{ key: string; name: string; id?: string; projectTypeKey?: Project['projectTypeKey']; issues?: number | Array<{ summary: string; id?: string }> }>;
  users?: Array<{ accountId?: string; displayName: string; siteAdmin?: boolean; projectPermissions?: Record<string, string[]> }>;
}

/** Deterministic hex derived from the simulator seed. */
export function derive(seed: string, label: string, length = 32): string {
  let out = '';
  let i = 0;
  while (out.length < length) out += createHmac('sha256', seed).update(`${label}#${i++}`).digest('hex');
  return out.slice(0, length);
}

export function deriveUuid(seed: string, label: string): string {
  const h = derive(seed, label, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The default seed: two projects with issues, and four users covering the permission cases. */
export function defaultSiteSeed(): SiteSeed {
  return {
    projects: [
      { key: 'TCJ', name: 'TeamCity Integration', issues: 5 },
      { key: 'DEMO', name: 'Demo Project', issues: 3 },
    ],
    users: [
      { displayName: 'Alice Admin', siteAdmin: true, projectPermissions: { '*': ['ADMINISTER_PROJECTS', 'BROWSE_PROJECTS', 'VIEW_DEV_TOOLS', 'EDIT_ISSUES'] } },
      { displayName: 'Dan Developer', projectPermissions: { TCJ: ['BROWSE_PROJECTS', 'VIEW_DEV_TOOLS', 'EDIT_ISSUES'], DEMO: ['BROWSE_PROJECTS', 'VIEW_DEV_TOOLS'] } },
      { displayName: 'Paula ProjectAdmin', projectPermissions: { DEMO: ['ADMINISTER_PROJECTS', 'BROWSE_PROJECTS', 'VIEW_DEV_TOOLS'] } },
      { displayName: 'Otto Outsider', projectPermissions: {} },
    ],
  };
}

export class Site {
  readonly name: string;
  /** Tenant id; stable unless `regenerateClientKey()` (site import, AC-1528). */
  clientKey: string;
  readonly projects: Project[] = [];
  readonly issues: Issue[] = [];
  readonly users: User[] = [];
  readonly installations = new Map<string, Installation>();
  readonly builds = new Map<string, StoredBuild>();
  readonly deployments = new Map<string, StoredDeployment>();
  private readonly seed: string;
  private nextProjectId = 10000;
  private nextIssueId = 10001;
  private tenantGeneration = 0;

  constructor(name: string, seed: string, siteSeed: SiteSeed = defaultSiteSeed()) {
    this.name = name;
    this.seed = seed;
    this.clientKey = deriveUuid(seed, `clientKey:${name}:0`);
    for (const p of siteSeed.projects ?? []) {
      this.addProject({ key: p.key, name: p.name, ...(p.id ? { id: p.id } : {}), ...(p.projectTypeKey ? { projectTypeKey: p.projectTypeKey } : {}) });
      const issues = typeof p.issues === 'number' ? Array.from({ length: p.issues }, (_, i) => ({ summary: `${p.name} issue ${i + 1}`, id: undefined })) : (p.issues ?? []);
      for (const i of issues) this.addIssue(p.key, i.summary, i.id);
    }
    for (const u of siteSeed.users ?? []) this.addUser(u);
  }

  regenerateClientKey(): string {
    this.tenantGeneration += 1;
    this.clientKey = deriveUuid(this.seed, `clientKey:${this.name}:${this.tenantGeneration}`);
    return this.clientKey;
  }

  addProject(p: { key: string; name: string; id?: string; projectTypeKey?: Project['projectTypeKey'] }): Project {
    if (!/^[A-Z][A-Z0-9_]{1,9}$/.test(p.key)) throw new Error(`invalid project key ${p.key}`);
    if (this.projects.some((x) => x.key === p.key)) throw new Error(`project ${p.key} exists`);
    const id = p.id ?? String(this.nextProjectId++);
    const project: Project = { id, key: p.key, name: p.name, projectTypeKey: p.projectTypeKey ?? 'software' };
    this.projects.push(project);
    return project;
  }

  addIssue(projectKey: string, summary: string, id?: string): Issue {
    const project = this.project(projectKey);
    if (!project) throw new Error(`unknown project ${projectKey}`);
    const n = this.issues.filter((i) => i.projectKey === projectKey).length + 1;
    const issue: Issue = { id: id ?? String(this.nextIssueId++), key: `${projectKey}-${n}`, summary, projectKey };
    this.issues.push(issue);
    return issue;
  }

  addUser(u: { accountId?: string; displayName: string; siteAdmin?: boolean; projectPermissions?: Record<string, string[]> }): User {
    const user: User = {
      accountId: u.accountId ?? `557058:${deriveUuid(this.seed, `user:${this.name}:${u.displayName}`)}`,
      displayName: u.displayName,
      siteAdmin: u.siteAdmin ?? false,
      projectPermissions: u.projectPermissions ?? {},
    };
    this.users.push(user);
    return user;
  }

  /** Grants project permissions to a user (`projectKey` `*` = all projects). */
  grant(accountId: string, projectKey: string, permissions: string[]): void {
    const user = this.user(accountId);
    if (!user) throw new Error(`unknown user ${accountId}`);
    const list = user.projectPermissions[projectKey] ?? [];
    for (const p of permissions) if (!list.includes(p)) list.push(p);
    user.projectPermissions[projectKey] = list;
  }

  project(idOrKey: string): Project | undefined {
    return this.projects.find((p) => p.id === idOrKey || p.key === idOrKey);
  }

  /** Exact id or key, else case-insensitive key (like GET /issue). */
  findIssue(idOrKey: string): Issue | undefined {
    return (
      this.issues.find((i) => i.id === idOrKey || i.key === idOrKey) ??
      this.issues.find((i) => i.key.toUpperCase() === idOrKey.toUpperCase())
    );
  }

  user(accountIdOrName: string): User | undefined {
    return this.users.find((u) => u.accountId === accountIdOrName || u.displayName === accountIdOrName);
  }

  siteAdmin(): User | undefined {
    return this.users.find((u) => u.siteAdmin);
  }

  hasProjectPermission(user: User, projectKey: string, permission: string): boolean {
    return (user.projectPermissions[projectKey] ?? []).includes(permission) || (user.projectPermissions['*'] ?? []).includes(permission);
  }

  globalPermissionsOf(user: User): string[] {
    return user.siteAdmin ? ['ADMINISTER'] : [];
  }

  nextSharedSecret(appKey: string, installNumber: number): string {
    return derive(this.seed, `sharedSecret:${this.name}:${appKey}:${installNumber}`, 64);
  }

  buildsForIssue(issueKey: string): StoredBuild[] {
    return [...this.builds.values()].filter((b) => b.issueKeys.includes(issueKey));
  }

  deploymentsForIssue(issueKey: string): StoredDeployment[] {
    return [...this.deployments.values()].filter((d) => d.issueKeys.includes(issueKey));
  }

  /** The stored build (of any app, or of `appKey`). */
  getBuild(pipelineId: string, buildNumber: number, appKey?: string): StoredBuild | undefined {
    return [...this.builds.values()].find((b) => b.pipelineId === pipelineId && b.buildNumber === buildNumber && (appKey === undefined || b.appKey === appKey));
  }

  /** The stored deployment (of any app, or of `appKey`). */
  getDeployment(pipelineId: string, environmentId: string, deploymentSequenceNumber: number, appKey?: string): StoredDeployment | undefined {
    return [...this.deployments.values()].find(
      (d) => d.pipelineId === pipelineId && d.environmentId === environmentId && d.deploymentSequenceNumber === deploymentSequenceNumber && (appKey === undefined || d.appKey === appKey),
    );
  }

  /** Jira deletes everything an app sent when it is uninstalled (reference §1.2). */
  purgeAppData(appKey: string): void {
    for (const [k, b] of this.builds) if (b.appKey === appKey) this.builds.delete(k);
    for (const [k, d] of this.deployments) if (d.appKey === appKey) this.deployments.delete(k);
  }
}

/** Entities are scoped by the providing app, as in Jira. */
export function buildKey(appKey: string, pipelineId: string, buildNumber: number): string {
  return JSON.stringify([appKey, pipelineId, buildNumber]);
}

export function deploymentKey(appKey: string, pipelineId: string, environmentId: string, seq: number): string {
  return JSON.stringify([appKey, pipelineId, environmentId, seq]);
}
