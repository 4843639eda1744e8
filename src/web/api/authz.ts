// Who may do what (design.md §4, product.md "authorization checked against Jira permissions, not
// trusted from the page"): the user is the verified `sub` of the request token; what they may do is
// asked of Jira with POST /rest/api/3/permissions/check using the app's own credentials. Answers are
// cached per tenant + account (+ issue / project) for at most `cacheMs` (default 60 s), and concurrent
// identical questions share one request. A Jira failure never grants anything (fail closed: 503).
import type { Dispatcher } from 'undici';
import { ConnectJwtCredentials } from '../../jira/credentials.ts';
import {
  JiraAuthError,
  JiraClient,
  JiraHttpError,
  JiraNetworkError,
  JiraRateLimitedError,
  type JiraClientOptions,
} from '../../jira/client.ts';
import type { BulkPermissionGrants, JiraIssue, JiraProject } from '../../jira/models.ts';
import type { JiraRequestContext } from '../../jira/request-auth.ts';
import type { Logger } from '../../log.ts';
import { OutboundBlockedError } from '../../net/outbound.ts';
import type { TenantRepository } from '../../tenants/repository.ts';
import { ApiError } from './errors.ts';

export interface AuthorizerDeps {
  tenants: TenantRepository;
  appKey: string;
  dispatcher: Dispatcher;
  log: Logger;
  /** Overrides for the Jira client (tests: short timeouts, no waiting). */
  jiraClient?: Partial<JiraClientOptions>;
  /** How long a permission answer is reused; default and maximum 60 s. */
  cacheMs?: number;
  now?: () => number;
}

interface Entry<T> {
  value: Promise<T>;
  expires: number;
}

const MAX_ENTRIES = 10_000;

/** A small TTL cache of promises: concurrent callers share one lookup; failures are not kept. */
class TtlCache {
  private readonly entries = new Map<string, Entry<unknown>>();
  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  get<T>(key: string, load: () => Promise<T>): Promise<T> {
    const t = this.now();
    const hit = this.entries.get(key) as Entry<T> | undefined;
    if (hit && hit.expires > t) return hit.value;
    if (hit) this.entries.delete(key);
    if (this.entries.size >= MAX_ENTRIES) {
      for (const [k, e] of this.entries) if (e.expires <= t) this.entries.delete(k);
      if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    }
    const value = load();
    const entry: Entry<T> = { value, expires: t + this.ttlMs };
    this.entries.set(key, entry);
    value.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    });
    return value;
  }

  set<T>(key: string, value: T): void {
    this.entries.set(key, { value: Promise.resolve(value), expires: this.now() + this.ttlMs });
  }
}

/** A Jira failure as the API reports it: never a grant, never internals. */
export function jiraFailure(err: unknown, what: string): ApiError {
  if (err instanceof JiraAuthError) {
    return new ApiError(502, 'jira_auth_failed', `Jira refused the app's credentials while ${what} (${err.status}); reinstalling the app renews them`);
  }
  if (err instanceof JiraRateLimitedError) {
    return new ApiError(503, 'jira_unavailable', `Jira asked the app to slow down while ${what}; try again in ${Math.ceil(err.retryAfterMs / 1000)} s`, {
      retryAfterSeconds: Math.ceil(err.retryAfterMs / 1000),
    });
  }
  if (err instanceof JiraNetworkError || (err instanceof JiraHttpError && err.status >= 500) || err instanceof OutboundBlockedError) {
    return new ApiError(503, 'jira_unavailable', `Jira could not be reached while ${what}; try again shortly`);
  }
  if (err instanceof JiraHttpError) return new ApiError(502, 'jira_error', `Jira answered ${err.status} while ${what}`);
  return new ApiError(503, 'jira_unavailable', `Jira gave an unexpected answer while ${what}; try again shortly`);
}

export type TenantJiraDeps = Pick<AuthorizerDeps, 'tenants' | 'appKey' | 'dispatcher' | 'log' | 'jiraClient'>;

/**
 * A Jira client for one tenant with the app's credentials (Connect JWT today). `interactive`: an admin is
 * waiting, so two quick attempts and no long Retry-After waits; `background`: the client's defaults.
 */
export async function tenantJiraClient(deps: TenantJiraDeps, tenantId: string, mode: 'interactive' | 'background'): Promise<JiraClient> {
  const tenant = await deps.tenants.authById(tenantId);
  if (!tenant || tenant.state !== 'installed') throw new ApiError(401, 'unauthorized', 'the app is not installed on this site');
  return new JiraClient({
    baseUrl: tenant.baseUrl,
    credentials: new ConnectJwtCredentials(deps.appKey, tenant.sharedSecret),
    dispatcher: deps.dispatcher,
    log: deps.log.child({ tenantId }),
    ...(mode === 'interactive' ? { timeoutMs: 10_000, maxAttempts: 2, maxRetryAfterMs: 3_000, backoffMaxMs: 1_000 } : {}),
    onAuthFailure: (status, detail) => deps.tenants.recordJiraAuthFailure(tenantId, `Jira answered ${status} to ${detail.method} ${detail.endpoint}: ${detail.message}`, tenant.secretVersion),
    ...deps.jiraClient,
  });
}

export interface IssueAccess {
  /** The issue as Jira resolved it with the app's credentials; undefined when Jira has no such issue. */
  issue: JiraIssue | undefined;
  siteAdmin: boolean;
}

export class Authorizer {
  private readonly cache: TtlCache;
  private readonly now: () => number;

  constructor(private readonly deps: AuthorizerDeps) {
    this.now = deps.now ?? Date.now;
    this.cache = new TtlCache(Math.min(60_000, Math.max(0, deps.cacheMs ?? 60_000)), this.now);
  }

  /** A Jira client for the tenant with the app's credentials, tuned for a waiting admin. */
  jiraClient(tenantId: string): Promise<JiraClient> {
    return tenantJiraClient(this.deps, tenantId, 'interactive');
  }

  private accountOf(ctx: JiraRequestContext): string {
    if (!ctx.accountId) throw new ApiError(403, 'forbidden', 'this request was not made by a Jira user');
    return ctx.accountId;
  }

  private async check(ctx: JiraRequestContext, body: Parameters<JiraClient['checkPermissions']>[0]): Promise<BulkPermissionGrants> {
    const client = await this.jiraClient(ctx.tenantId);
    try {
      return await client.checkPermissions(body);
    } catch (err) {
      this.deps.log.warn({ err, tenantId: ctx.tenantId }, 'Jira permission check failed');
      throw jiraFailure(err, 'checking your permissions');
    }
  }

  private adminKey(ctx: JiraRequestContext, accountId: string): string {
    return `${ctx.tenantId}|${accountId}|ADMINISTER`;
  }

  /** Whether the user holds Jira's global ADMINISTER permission (cached). */
  async isSiteAdmin(ctx: JiraRequestContext): Promise<boolean> {
    const accountId = this.accountOf(ctx);
    return this.cache.get(this.adminKey(ctx, accountId), async () => {
      const grants = await this.check(ctx, { accountId, globalPermissions: ['ADMINISTER'] });
      return grants.globalPermissions.includes('ADMINISTER');
    });
  }

  /** 403 unless the user is a Jira site admin. */
  async requireSiteAdmin(ctx: JiraRequestContext): Promise<void> {
    if (!(await this.isSiteAdmin(ctx))) throw new ApiError(403, 'forbidden', 'only Jira site administrators (Administer Jira) may do this');
  }

  /**
   * 403 unless the user may browse the issue (BROWSE_PROJECTS on it) or is a site admin. An issue Jira
   * does not know (e.g. a key of a project this site does not have) is open to site admins only.
   */
  async requireIssueAccess(ctx: JiraRequestContext, issueKey: string): Promise<IssueAccess> {
    const accountId = this.accountOf(ctx);
    const issue = await this.cache.get(`${ctx.tenantId}|issue|${issueKey}`, async () => {
      const client = await this.jiraClient(ctx.tenantId);
      try {
        return await client.getIssue(issueKey);
      } catch (err) {
        if (err instanceof JiraHttpError && err.status === 404) return undefined;
        throw jiraFailure(err, 'looking up the issue');
      }
    });
    if (!issue) {
      if (await this.isSiteAdmin(ctx)) return { issue: undefined, siteAdmin: true };
      throw new ApiError(403, 'forbidden', 'you may not see this issue (or it does not exist)');
    }
    const issueId = Number(issue.id);
    const allowed = await this.cache.get(`${ctx.tenantId}|${accountId}|BROWSE_PROJECTS|issue:${issue.id}`, async () => {
      const grants = await this.check(ctx, {
        accountId,
        globalPermissions: ['ADMINISTER'],
        projectPermissions: [{ permissions: ['BROWSE_PROJECTS'], issues: [issueId] }],
      });
      const admin = grants.globalPermissions.includes('ADMINISTER');
      this.cache.set(this.adminKey(ctx, accountId), admin);
      const browse = grants.projectPermissions.some((p) => p.permission === 'BROWSE_PROJECTS' && p.issues.includes(issueId));
      return { admin, browse };
    });
    if (!allowed.admin && !allowed.browse) throw new ApiError(403, 'forbidden', 'you may not see this issue (or it does not exist)');
    return { issue, siteAdmin: allowed.admin };
  }

  /** 403 unless the user administers the project (ADMINISTER_PROJECTS) or is a site admin; 404 if Jira has no such project. */
  async requireProjectAdmin(ctx: JiraRequestContext, projectId: string): Promise<JiraProject> {
    const accountId = this.accountOf(ctx);
    const id = Number(projectId);
    const allowed = await this.cache.get(`${ctx.tenantId}|${accountId}|ADMINISTER_PROJECTS|project:${projectId}`, async () => {
      const grants = await this.check(ctx, {
        accountId,
        globalPermissions: ['ADMINISTER'],
        projectPermissions: [{ permissions: ['ADMINISTER_PROJECTS'], projects: [id] }],
      });
      const admin = grants.globalPermissions.includes('ADMINISTER');
      this.cache.set(this.adminKey(ctx, accountId), admin);
      return admin || grants.projectPermissions.some((p) => p.permission === 'ADMINISTER_PROJECTS' && p.projects.includes(id));
    });
    if (!allowed) throw new ApiError(403, 'forbidden', 'only administrators of this project (Administer projects) may see this');
    return this.cache.get(`${ctx.tenantId}|project|${projectId}`, async () => {
      const client = await this.jiraClient(ctx.tenantId);
      try {
        return await client.getProject(projectId);
      } catch (err) {
        if (err instanceof JiraHttpError && err.status === 404) throw new ApiError(404, 'project_not_found', 'Jira has no project with this id');
        throw jiraFailure(err, 'looking up the project');
      }
    });
  }
}
