// The descriptor and the Connect install lifecycle (reference §1, §2.1–2.2):
// installed/uninstalled are RS256-signed by Atlassian (key by kid from CONNECT_INSTALL_KEYS_URL);
// enabled/disabled are HS256-signed with the tenant's shared secret. Nothing is stored unless every
// check passes; every refusal is a 401 that says why (never echoing the token).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { TenantRepository } from '../tenants/repository.ts';
import { resendHistory } from '../tenants/retention.ts';
import { buildDescriptor, LIFECYCLE_ROUTES } from './descriptor.ts';
import { InstallKeyError, type InstallKeys } from './install-keys.ts';
import { JwtError, peek, verifyRs256 } from './jwt.ts';
import { qsh } from './qsh.ts';
import { AuthError, contextPathOf, extractToken, unauthorized, verifyJiraRequest } from './request-auth.ts';

export interface LifecycleDeps {
  appKey: string;
  baseUrl: string;
  tenants: TenantRepository;
  installKeys: InstallKeys;
  /** OUTBOUND_ALLOW_HOSTS: Jira sites accepted besides Atlassian's own domains (and over http). */
  allowHosts: string[];
}

const JIRA_CLOUD_HOST = /(^|\.)(atlassian\.net|jira\.com|jira-dev\.com)$/i;

/** design.md §4 "Outbound rules": the sites we will send data to. */
export function isAcceptedSiteUrl(raw: string, allowHosts: string[]): boolean {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return false;
  }
  if (u.username || u.password || u.search || u.hash) return false;
  const host = u.host.toLowerCase();
  if (allowHosts.includes(host) || allowHosts.includes(u.hostname.toLowerCase())) return u.protocol === 'https:' || u.protocol === 'http:';
  return u.protocol === 'https:' && JIRA_CLOUD_HOST.test(u.hostname) && (u.port === '' || u.port === '443');
}

const lifecyclePayload = z.object({
  key: z.string().min(1),
  clientKey: z.string().min(1).max(255),
  sharedSecret: z.string().min(1).max(1000).optional(),
  baseUrl: z.string().min(1).max(2000),
  displayUrl: z.string().max(2000).optional(),
  eventType: z.enum(['installed', 'uninstalled', 'enabled', 'disabled']),
  installationId: z.string().max(500).optional(),
});
type LifecyclePayload = z.infer<typeof lifecyclePayload>;

class BadPayload extends Error {}

function parsePayload(body: unknown, appKey: string, event: LifecyclePayload['eventType']): LifecyclePayload {
  const parsed = lifecyclePayload.safeParse(body);
  if (!parsed.success) throw new BadPayload(`invalid ${event} payload: ${parsed.error.issues[0]?.path.join('.') || 'body'} ${parsed.error.issues[0]?.message ?? ''}`.trim());
  if (parsed.data.eventType !== event) throw new BadPayload(`eventType ${parsed.data.eventType} sent to the ${event} callback`);
  if (parsed.data.key !== appKey) throw new BadPayload(`payload is for app ${parsed.data.key}, not ${appKey}`);
  return parsed.data;
}

export function registerLifecycle(app: FastifyInstance, deps: LifecycleDeps): void {
  const descriptor = JSON.stringify(buildDescriptor({ appKey: deps.appKey, baseUrl: deps.baseUrl }));
  const contextPath = contextPathOf(deps.baseUrl);

  app.get('/atlassian-connect.json', async (_req, reply) => reply.type('application/json').header('cache-control', 'no-cache').send(descriptor));

  /** Signed install (§2.2): RS256, kid, key server, aud, exp, iss = clientKey, qsh. */
  async function verifySignedInstall(req: FastifyRequest, payload: LifecyclePayload): Promise<void> {
    const token = extractToken(req);
    let header: ReturnType<typeof peek>;
    try {
      header = peek(token);
    } catch {
      throw new AuthError('malformed token');
    }
    if (header.alg !== 'RS256') throw new AuthError(`install callbacks must be RS256-signed, got ${header.alg ?? 'none'}`);
    if (!header.kid) throw new AuthError('install token has no kid');
    let key;
    try {
      key = await deps.installKeys.get(header.kid);
    } catch (err) {
      throw new AuthError(err instanceof InstallKeyError ? err.message : 'install key unavailable');
    }
    let claims;
    try {
      claims = await verifyRs256(token, key, deps.baseUrl);
    } catch (err) {
      throw new AuthError(err instanceof JwtError ? err.message : 'invalid token');
    }
    if (claims.iss !== payload.clientKey) throw new AuthError('iss does not match the payload clientKey');
    if (claims.qsh !== qsh(req.method, req.url, contextPath)) throw new AuthError('qsh does not match the request');
  }

  const handle =
    (event: LifecyclePayload['eventType'], run: (req: FastifyRequest, p: LifecyclePayload) => Promise<void>) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      let payload: LifecyclePayload;
      try {
        payload = parsePayload(req.body, deps.appKey, event);
      } catch (err) {
        if (!(err instanceof BadPayload)) throw err;
        // Not authenticated yet: say as little as possible, but say it was the payload.
        req.log.warn({ event, reason: err.message }, 'lifecycle callback refused');
        return reply.status(400).send({ error: { code: 'bad_payload', message: err.message } });
      }
      try {
        await run(req, payload);
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        req.log.warn({ event, reason: err.message }, 'lifecycle callback refused');
        return unauthorized(reply, err.message);
      }
      return reply.status(204).send();
    };

  app.post(
    LIFECYCLE_ROUTES.installed,
    handle('installed', async (req, p) => {
      await verifySignedInstall(req, p);
      if (!p.sharedSecret) throw new AuthError('installed payload has no sharedSecret');
      if (!isAcceptedSiteUrl(p.baseUrl, deps.allowHosts)) throw new AuthError(`site ${p.baseUrl} is not a Jira Cloud site this app serves`);
      const displayUrl = p.displayUrl && isAcceptedUrlShape(p.displayUrl) ? p.displayUrl : undefined;
      const { tenantId, reinstall, restored } = await deps.tenants.recordInstall(
        {
          clientKey: p.clientKey,
          sharedSecret: p.sharedSecret,
          baseUrl: p.baseUrl.replace(/\/+$/, ''),
          displayUrl,
          installationId: p.installationId,
        },
        resendHistory,
      );
      req.log.info({ tenantId, reinstall, restored }, restored ? 'app reinstalled within the retention period: configuration restored, history re-sent' : reinstall ? 'app reinstalled' : 'app installed');
    }),
  );

  app.post(
    LIFECYCLE_ROUTES.uninstalled,
    handle('uninstalled', async (req, p) => {
      await verifySignedInstall(req, p);
      const tenant = await deps.tenants.authByClientKey(p.clientKey);
      if (!tenant) return; // never installed here: nothing to keep
      await deps.tenants.recordUninstall(tenant.tenantId);
      req.log.info({ tenantId: tenant.tenantId }, 'app uninstalled; data kept for the retention period');
    }),
  );

  for (const event of ['enabled', 'disabled'] as const) {
    app.post(
      LIFECYCLE_ROUTES[event],
      handle(event, async (req, p) => {
        const { context } = await verifyJiraRequest({ tenants: deps.tenants, baseUrl: deps.baseUrl }, req, 'request');
        if (context.clientKey !== p.clientKey) throw new AuthError('iss does not match the payload clientKey');
        await deps.tenants.recordEnabled(context.tenantId, event === 'enabled');
        req.log.info({ tenantId: context.tenantId }, `app ${event}`);
      }),
    );
  }
}

function isAcceptedUrlShape(raw: string): boolean {
  try {
    const u = new URL(raw);
    return u.protocol === 'https:' || u.protocol === 'http:';
  } catch {
    return false;
  }
}
