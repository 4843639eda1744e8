// The admin API (design.md §4 "Admin API"): JSON under /api/v1 for the app's own pages inside Jira.
// Every route is authenticated with the tenant's Connect JWT (context tokens allowed) and authorised
// against Jira's permissions for the token's user — site admin (ADMINISTER) for server management,
// BROWSE_PROJECTS on the issue for the diagnostic, ADMINISTER_PROJECTS for a project's overview.
// Tenant data is reached only through withTenant(), so another tenant's server id is simply not found.
// Secrets are accepted on write, encrypted at once, and never returned or logged.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';
import type { Secrets } from '../../crypto/secrets.ts';
import type { Database } from '../../db/database.ts';
import type { JiraClientOptions } from '../../jira/client.ts';
import { jiraAuthHooks, type JiraRequestContext } from '../../jira/request-auth.ts';
import type { Logger } from '../../log.ts';
import { validateEnvironmentRules } from '../../sync/environments.ts';
import { parseRules, serverRulesSchema, type ServerRules } from '../../sync/rules.ts';
import { createServer, getConnection, pollNow, requestBackfill, setPaused, updateCredentials, type ServerAuth } from '../../sync/servers.ts';
import type { TeamCityClientOptions } from '../../teamcity/client.ts';
import type { TenantRepository } from '../../tenants/repository.ts';
import { Authorizer } from './authz.ts';
import { testTeamCityConnection, type ConnectionFailure } from './connection-test.ts';
import { completeDeletion, markForDeletion } from './deletion.ts';
import { diagnose } from './diagnose.ts';
import { ApiError, parseInput, serverDeleting, serverNotFound, validationError } from './errors.ts';
import { activity, projectOverview } from './queries.ts';
import { rulesPreview } from './rules-preview.ts';
import {
  activityQuerySchema,
  backfillSchema,
  createServerSchema,
  DEFAULT_BACKFILL_DAYS,
  EARLIEST_BACKFILL,
  issueKeyParamSchema,
  patchServerSchema,
  projectIdParamSchema,
  serverIdSchema,
  testServerSchema,
} from './schemas.ts';
import { listServerViews, serverStatus, serverView } from './views.ts';

export { retryPendingDeletions, tenantsWithPendingDeletions, type DeletionDeps, type PendingDeletionsReport } from './deletion.ts';
export { ApiError } from './errors.ts';

export interface AdminApiDeps {
  db: Database;
  secrets: Secrets;
  tenants: TenantRepository;
  /** The SSRF-guarded agent (createOutboundDispatcher) for Jira and TeamCity calls. */
  dispatcher: Dispatcher;
  log: Logger;
  /** Connect app key (iss of the app's own Jira tokens). */
  appKey: string;
  /** The app's BASE_URL: its path is stripped before request qsh checks. */
  baseUrl: string;
  /** Jira client overrides (tests: timeouts, attempts). */
  jiraClient?: Partial<JiraClientOptions>;
  /** TeamCity client overrides for connection tests and the rules preview. */
  teamcity?: Partial<TeamCityClientOptions>;
  /** How long Jira's permission answers are reused (≤ 60 s, the default). */
  permissionCacheMs?: number;
}

function ctxOf(req: FastifyRequest): JiraRequestContext {
  if (!req.jira) throw new ApiError(401, 'unauthorized', 'not authenticated');
  return req.jira;
}

function connectionFailed(f: ConnectionFailure): ApiError {
  const details: Record<string, unknown> = { reason: f.error.code };
  if (f.error.teamcityStatus !== undefined) details.teamcityStatus = f.error.teamcityStatus;
  const status = f.error.code === 'invalid_url' || f.error.code === 'invalid_credentials_format' ? 400 : 422;
  return new ApiError(status, f.error.code, f.error.message, details);
}

function toAuth(a: { type: 'basic'; username: string; password: string } | { type: 'token'; token: string }): ServerAuth {
  return a.type === 'basic' ? { type: 'basic', username: a.username, password: a.password } : { type: 'token', token: a.token };
}

/** Registers /api/v1 on `app` (before it listens). */
export function registerAdminApi(app: FastifyInstance, deps: AdminApiDeps): void {
  const log = deps.log.child({ component: 'admin-api' });
  const authz = new Authorizer({
    tenants: deps.tenants,
    appKey: deps.appKey,
    dispatcher: deps.dispatcher,
    log,
    ...(deps.jiraClient ? { jiraClient: deps.jiraClient } : {}),
    ...(deps.permissionCacheMs !== undefined ? { cacheMs: deps.permissionCacheMs } : {}),
  });
  const hooks = jiraAuthHooks({ tenants: deps.tenants, baseUrl: deps.baseUrl });
  const tcDeps = { dispatcher: deps.dispatcher, log, ...(deps.teamcity ? { teamcity: deps.teamcity } : {}) };
  const previewDeps = { db: deps.db, secrets: deps.secrets, ...tcDeps };

  void app.register(
    async (api) => {
      // An empty body with a JSON content type is "no body" (e.g. POST …/sync), not a parse error.
      const json = api.getDefaultJsonParser('error', 'error');
      api.removeContentTypeParser('application/json');
      api.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
        const text = typeof body === 'string' ? body : body.toString('utf8');
        if (text.trim() === '') {
          done(null, undefined);
          return;
        }
        void json(req, text, done);
      });

      api.addHook('onRequest', hooks.api);

      api.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
        if (err instanceof ApiError) {
          return reply.status(err.status).send({ error: { code: err.code, message: err.message, ...err.details } });
        }
        const status = err.statusCode;
        if (status !== undefined && status >= 400 && status < 500) {
          const code = status === 413 ? 'payload_too_large' : status === 415 ? 'unsupported_media_type' : 'bad_request';
          const message = err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError ? 'the body is not valid JSON' : err.message;
          return reply.status(status).send({ error: { code, message } });
        }
        req.log.error({ err }, 'admin API request failed');
        return reply.status(500).send({ error: { code: 'internal_error', message: 'internal error' } });
      });

      const siteAdmin = async (req: FastifyRequest): Promise<JiraRequestContext> => {
        const ctx = ctxOf(req);
        await authz.requireSiteAdmin(ctx);
        return ctx;
      };
      const serverIdOf = (req: FastifyRequest): string => {
        const id = (req.params as { id?: string }).id ?? '';
        if (!serverIdSchema.safeParse(id).success) throw serverNotFound();
        return id;
      };
      const audit = (req: FastifyRequest, ctx: JiraRequestContext, action: string, extra: Record<string, unknown> = {}) =>
        req.log.info({ audit: { action, tenantId: ctx.tenantId, accountId: ctx.accountId, ...extra } }, `admin: ${action}`);

      /** The server row for writes: 404 if absent, 409 while it is being deleted. */
      const loadServer = async (ctx: JiraRequestContext, id: string, opts: { allowDeleting?: boolean } = {}) => {
        const view = await deps.db.withTenant(ctx.tenantId, (tx) => serverView(tx, id));
        if (!view) throw serverNotFound();
        if (view.deletion && !opts.allowDeleting) throw serverDeleting();
        return view;
      };

      // ---------------------------------------------------------------------------------------- servers

      api.get('/servers', async (req) => {
        const ctx = await siteAdmin(req);
        return { servers: await deps.db.withTenant(ctx.tenantId, (tx) => listServerViews(tx)) };
      });

      api.post('/servers/test', async (req) => {
        await siteAdmin(req);
        const body = parseInput(testServerSchema, req.body, 'body');
        const result = await testTeamCityConnection(tcDeps, body.url, toAuth(body.auth));
        if (!result.ok) return result;
        return { ok: true, version: result.version, user: result.user, url: result.url, warnings: result.warnings };
      });

      api.post('/servers', async (req, reply) => {
        const ctx = await siteAdmin(req);
        const body = parseInput(createServerSchema, req.body, 'body');
        const auth = toAuth(body.auth);
        const tested = await testTeamCityConnection(tcDeps, body.url, auth);
        if (!tested.ok) throw connectionFailed(tested);
        const id = randomUUID();
        const days = body.backfillDays ?? DEFAULT_BACKFILL_DAYS;
        const since = new Date(Math.max(EARLIEST_BACKFILL.getTime(), Date.now() - days * 86_400_000));
        const view = await deps.db.withTenant(ctx.tenantId, async (tx) => {
          // Serialises creations per tenant: without it two admins adding the same server at the
          // same moment both pass the duplicate check (found by the web-kill reliability scenario).
          await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 7301))', [ctx.tenantId]);
          const dup = (
            await tx.query<{ name: string }>(
              `SELECT name FROM teamcity_servers WHERE deleting_at IS NULL AND (rtrim(url, '/') = $1 OR (server_internal_id IS NOT NULL AND server_internal_id = $2)) LIMIT 1`,
              [tested.url, tested.serverInternalId ?? null],
            )
          ).rows[0];
          if (dup) {
            throw new ApiError(409, 'server_exists', `this TeamCity server is already connected as "${dup.name}"; edit that connection instead (two connections would show every build twice)`);
          }
          await createServer(tx, deps.secrets, ctx.tenantId, {
            id,
            name: body.name,
            url: tested.url,
            auth,
            serverVersion: tested.version,
            ...(tested.user.username ? { serviceUser: tested.user.username } : {}),
            ...(tested.serverInternalId ? { serverInternalId: tested.serverInternalId } : {}),
          });
          if (days > 0) await requestBackfill(tx, id, since);
          return serverView(tx, id);
        });
        audit(req, ctx, 'server created', { serverId: id, backfillDays: days });
        return reply.status(201).send({ ...view!, warnings: tested.warnings });
      });

      api.get('/servers/:id', async (req) => {
        const ctx = await siteAdmin(req);
        const id = serverIdOf(req);
        const view = await deps.db.withTenant(ctx.tenantId, (tx) => serverView(tx, id));
        if (!view) throw serverNotFound();
        return view;
      });

      api.patch('/servers/:id', async (req) => {
        const ctx = await siteAdmin(req);
        const id = serverIdOf(req);
        const body = parseInput(patchServerSchema, req.body, 'body');
        const current = await loadServer(ctx, id);
        const urlChanged = body.url !== undefined && body.url.replace(/\/+$/, '') !== current.url;
        let tested: Awaited<ReturnType<typeof testTeamCityConnection>> | undefined;
        if (urlChanged || body.auth) {
          const auth = body.auth
            ? toAuth(body.auth)
            : (await deps.db.withTenant(ctx.tenantId, (tx) => getConnection(tx, deps.secrets, id)))?.auth;
          if (!auth) throw serverNotFound();
          tested = await testTeamCityConnection(tcDeps, body.url ?? current.url, auth);
          if (!tested.ok) throw connectionFailed(tested);
        }
        const view = await deps.db.withTenant(ctx.tenantId, async (tx) => {
          const row = (await tx.query<{ server_internal_id: string | null }>(`SELECT server_internal_id FROM teamcity_servers WHERE id = $1 FOR UPDATE`, [id])).rows[0];
          if (!row) throw serverNotFound();
          if (tested?.ok && urlChanged && row.server_internal_id && tested.serverInternalId && row.server_internal_id !== tested.serverInternalId) {
            throw new ApiError(409, 'different_server', 'the new URL points to a different TeamCity server; connect it as a new server instead');
          }
          if (body.name !== undefined) await tx.query(`UPDATE teamcity_servers SET name = $2, updated_at = now() WHERE id = $1`, [id, body.name]);
          if (body.auth) await updateCredentials(tx, deps.secrets, ctx.tenantId, id, toAuth(body.auth));
          if (tested?.ok) {
            await tx.query(
              `UPDATE teamcity_servers SET url = $2, server_version = $3, service_user = coalesce($4, service_user),
                 server_internal_id = coalesce(server_internal_id, $5),
                 state = CASE WHEN state = 'auth_failed' THEN 'ok' ELSE state END, updated_at = now() WHERE id = $1`,
              [id, tested.url, tested.version, tested.user.username ?? null, tested.serverInternalId ?? null],
            );
            await pollNow(tx, id);
          }
          if (body.paused !== undefined) await setPaused(tx, id, body.paused);
          return serverView(tx, id);
        });
        audit(req, ctx, 'server updated', {
          serverId: id,
          fields: Object.keys(body).filter((k) => (body as Record<string, unknown>)[k] !== undefined),
        });
        return tested?.ok ? { ...view!, warnings: tested.warnings } : view!;
      });

      api.delete('/servers/:id', async (req, reply) => {
        const ctx = await siteAdmin(req);
        const id = serverIdOf(req);
        if (!(await markForDeletion(deps.db, ctx.tenantId, id))) throw serverNotFound();
        audit(req, ctx, 'server deletion requested', { serverId: id });
        const jira = await authz.jiraClient(ctx.tenantId);
        const outcome = await completeDeletion({ ...deps, log }, ctx.tenantId, id, jira);
        if (outcome === 'deleted') return reply.status(204).send();
        return reply.status(202).send({
          status: 'deletion_pending',
          message: "Polling has stopped. Jira did not accept the deletion of this server's builds and deployments yet; it is retried automatically.",
        });
      });

      api.post('/servers/:id/sync', async (req, reply) => {
        const ctx = await siteAdmin(req);
        const id = serverIdOf(req);
        const server = await loadServer(ctx, id);
        if (server.state === 'paused') throw new ApiError(409, 'server_paused', 'the server is paused; resume it (PATCH {"paused": false}) to poll it');
        if (server.state === 'auth_failed') {
          // The account may have been fixed in TeamCity: test the stored credentials now.
          const conn = await deps.db.withTenant(ctx.tenantId, (tx) => getConnection(tx, deps.secrets, id));
          if (!conn) throw serverNotFound();
          const tested = await testTeamCityConnection(tcDeps, conn.server.url, conn.auth);
          if (!tested.ok) throw connectionFailed(tested);
          await deps.db.withTenant(ctx.tenantId, (tx) =>
            tx.query(`UPDATE teamcity_servers SET state = 'ok', updated_at = now() WHERE id = $1 AND state = 'auth_failed'`, [id]),
          );
        }
        await deps.db.withTenant(ctx.tenantId, (tx) => pollNow(tx, id));
        audit(req, ctx, 'sync requested', { serverId: id });
        return reply.status(202).send({ status: 'scheduled' });
      });

      api.post('/servers/:id/backfill', async (req, reply) => {
        const ctx = await siteAdmin(req);
        const id = serverIdOf(req);
        const { since } = parseInput(backfillSchema, req.body, 'body');
        await loadServer(ctx, id);
        await deps.db.withTenant(ctx.tenantId, (tx) => requestBackfill(tx, id, since));
        audit(req, ctx, 'backfill requested', { serverId: id, since: since.toISOString() });
        return reply.status(202).send({ status: 'scheduled', since });
      });

      api.get('/servers/:id/status', async (req) => {
        const ctx = await siteAdmin(req);
        const id = serverIdOf(req);
        const status = await deps.db.withTenant(ctx.tenantId, (tx) => serverStatus(tx, id));
        if (!status) throw serverNotFound();
        return status;
      });

      // ---------------------------------------------------------------------------------------- rules

      const readRules = async (ctx: JiraRequestContext, id: string): Promise<ServerRules> => {
        const row = await deps.db.withTenant(ctx.tenantId, async (tx) => (await tx.query<{ rules: unknown }>(`SELECT rules FROM teamcity_servers WHERE id = $1`, [id])).rows[0]);
        if (!row) throw serverNotFound();
        try {
          return parseRules(row.rules);
        } catch {
          return parseRules({});
        }
      };
      const validRules = (body: unknown): ServerRules => {
        // No body means "the defaults"; a JSON null is a bad body (it must not silently clear the rules).
        const parsed = serverRulesSchema.safeParse(body === undefined ? {} : body);
        if (!parsed.success) throw validationError('body', parsed.error);
        const problems = validateEnvironmentRules(parsed.data.environments);
        if (problems.length) {
          throw new ApiError(400, 'validation_failed', `invalid body: ${problems.join('; ')}`, {
            issues: problems.map((p) => ({ path: 'environments', message: p })),
          });
        }
        return parsed.data;
      };

      api.get('/servers/:id/rules', async (req) => {
        const ctx = await siteAdmin(req);
        const id = serverIdOf(req);
        const rules = await readRules(ctx, id);
        return { rules, preview: await rulesPreview(previewDeps, ctx.tenantId, id, rules) };
      });

      api.put('/servers/:id/rules', async (req) => {
        const ctx = await siteAdmin(req);
        const id = serverIdOf(req);
        const rules = validRules(req.body);
        await loadServer(ctx, id);
        await deps.db.withTenant(ctx.tenantId, (tx) => tx.query(`UPDATE teamcity_servers SET rules = $2, updated_at = now() WHERE id = $1`, [id, JSON.stringify(rules)]));
        audit(req, ctx, 'rules updated', { serverId: id });
        return { rules, preview: await rulesPreview(previewDeps, ctx.tenantId, id, rules) };
      });

      /** The preview of rules not saved yet (the editor's live preview). */
      api.post('/servers/:id/rules/preview', async (req) => {
        const ctx = await siteAdmin(req);
        const id = serverIdOf(req);
        const rules = validRules(req.body);
        await loadServer(ctx, id, { allowDeleting: true });
        return { rules, preview: await rulesPreview(previewDeps, ctx.tenantId, id, rules) };
      });

      // ---------------------------------------------------------------------------------------- activity

      api.get('/activity', async (req) => {
        const ctx = await siteAdmin(req);
        const q = parseInput(activityQuerySchema, req.query, 'query');
        const items = await deps.db.withTenant(ctx.tenantId, (tx) => activity(tx, q));
        return { items, ...(items.length === q.limit ? { nextBefore: items[items.length - 1]!.id } : {}) };
      });

      // ---------------------------------------------------------------------------------------- issue / project

      api.get('/diagnose/:issueKey', async (req) => {
        const ctx = ctxOf(req);
        const { issueKey } = parseInput(issueKeyParamSchema, req.params, 'params');
        const { issue } = await authz.requireIssueAccess(ctx, issueKey);
        return deps.db.withTenant(ctx.tenantId, (tx) => diagnose(tx, issueKey, issue));
      });

      api.get('/projects/:projectId/overview', async (req) => {
        const ctx = ctxOf(req);
        const { projectId } = parseInput(projectIdParamSchema, req.params, 'params');
        const project = await authz.requireProjectAdmin(ctx, projectId);
        return deps.db.withTenant(ctx.tenantId, (tx) => projectOverview(tx, { id: project.id, key: project.key, name: project.name }));
      });
    },
    { prefix: '/api/v1' },
  );
}

