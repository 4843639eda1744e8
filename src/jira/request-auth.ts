// Authentication of requests Jira (or our own pages inside Jira) send to the app, reference §2.5:
// HS256 only, `iss` = the clientKey of an installed tenant, signature with that tenant's shared
// secret, `exp`, and `qsh` of this very request relative to BASE_URL's path. Context tokens
// (`qsh: "context-qsh"`) are accepted only on routes made for them (the admin API), never on page
// loads. The verified tenant and user become `request.jira`.
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import type { TenantRepository } from '../tenants/repository.ts';
import { JwtError, peek, verifyHs256, type JiraClaims } from './jwt.ts';
import { CONTEXT_QSH, qsh } from './qsh.ts';

export interface JiraRequestContext {
  tenantId: string;
  clientKey: string;
  /** The Jira site's base URL, for calls back to it. */
  baseUrl: string;
  /** The Atlassian accountId of the user (`sub`); absent for events not made by a user. */
  accountId: string | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    jira?: JiraRequestContext;
  }
}

export class AuthError extends Error {
  override name = 'AuthError';
}

/** The token from `Authorization: JWT …` or `?jwt=`; both at once is refused (reference §2.5). */
export function extractToken(req: FastifyRequest): string {
  const header = req.headers.authorization;
  const fromHeader = header?.startsWith('JWT ') ? header.slice(4).trim() : undefined;
  const query = req.query as Record<string, unknown> | undefined;
  const fromQuery = typeof query?.jwt === 'string' ? query.jwt : undefined;
  if (fromHeader && fromQuery) throw new AuthError('token given in both header and query');
  const token = fromHeader ?? fromQuery;
  if (!token) throw new AuthError('no JWT (Authorization: JWT … or ?jwt=)');
  return token;
}

export function contextPathOf(baseUrl: string): string {
  return new URL(baseUrl).pathname.replace(/\/+$/, '');
}

export type QshPolicy = 'request' | 'request-or-context';

export interface RequestVerifierDeps {
  tenants: TenantRepository;
  /** The app's BASE_URL: its path is stripped before computing qsh. */
  baseUrl: string;
}

/** Verifies a Jira-signed HS256 request token; returns the tenant context. Throws AuthError. */
export async function verifyJiraRequest(
  deps: RequestVerifierDeps,
  req: FastifyRequest,
  policy: QshPolicy,
): Promise<{ context: JiraRequestContext; claims: JiraClaims }> {
  const token = extractToken(req);
  let unverified: ReturnType<typeof peek>;
  try {
    unverified = peek(token);
  } catch {
    throw new AuthError('malformed token');
  }
  if (unverified.alg !== 'HS256') throw new AuthError(`algorithm ${unverified.alg ?? 'none'} not allowed`);
  const iss = unverified.claims.iss;
  if (typeof iss !== 'string' || !iss) throw new AuthError('token has no iss');
  // Checked before it reaches the database: PostgreSQL refuses NUL in text (an unauthenticated 500).
  // eslint-disable-next-line no-control-regex
  if (iss.length > 255 || /[\u0000-\u001f\u007f\ud800-\udfff]/.test(iss)) throw new AuthError('unknown issuer');
  const tenant = await deps.tenants.authByClientKey(iss);
  if (!tenant) throw new AuthError('unknown issuer');
  if (tenant.state !== 'installed') throw new AuthError('the app is not installed on this site');
  let claims: JiraClaims;
  try {
    claims = await verifyHs256(token, tenant.sharedSecret);
  } catch (err) {
    throw new AuthError(err instanceof JwtError ? err.message : 'invalid token');
  }
  const expected = qsh(req.method, req.url, contextPathOf(deps.baseUrl));
  const contextAllowed = policy === 'request-or-context' && claims.qsh === CONTEXT_QSH;
  if (claims.qsh !== expected && !contextAllowed) {
    throw new AuthError(claims.qsh === CONTEXT_QSH ? 'context token not accepted on this route' : 'qsh does not match the request');
  }
  return {
    context: { tenantId: tenant.tenantId, clientKey: tenant.clientKey, baseUrl: tenant.baseUrl, accountId: typeof claims.sub === 'string' ? claims.sub : undefined },
    claims,
  };
}

export function unauthorized(reply: FastifyReply, reason: string): FastifyReply {
  return reply.status(401).header('www-authenticate', 'JWT').send({ error: { code: 'unauthorized', message: reason } });
}

/**
 * preHandlers for the two kinds of authenticated routes: `page` (iframe loads, real qsh required)
 * and `api` (calls from our pages with a context token or a real qsh).
 */
export function jiraAuthHooks(deps: RequestVerifierDeps): { page: preHandlerAsyncHookHandler; api: preHandlerAsyncHookHandler } {
  const hook =
    (policy: QshPolicy): preHandlerAsyncHookHandler =>
    async (req, reply) => {
      try {
        req.jira = (await verifyJiraRequest(deps, req, policy)).context;
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        req.log.info({ reason: err.message, route: req.routeOptions.url }, 'request authentication failed');
        return unauthorized(reply, err.message);
      }
    };
  return { page: hook('request'), api: hook('request-or-context') };
}
