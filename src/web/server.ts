// The HTTP shell: fastify with health endpoints and strict headers on every response. Routes for
// Jira (descriptor, lifecycle, pages) and the admin API register here as plugins.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Database } from '../db/database.ts';
import { migrationsCurrent } from '../db/migrate.ts';
import type { Logger } from '../log.ts';
import { registry } from '../metrics.ts';

export interface WebDeps {
  db: Database;
  log: Logger;
}

const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'cross-origin-opener-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
  'cache-control': 'no-store',
};

const LOGO_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">' +
  '<rect width="64" height="64" rx="12" fill="#000"/><rect x="12" y="44" width="24" height="5" fill="#fff"/>' +
  '<text x="12" y="36" font-family="Arial, sans-serif" font-weight="700" font-size="24" fill="#fff">TC</text></svg>';

export function buildServer({ db, log }: WebDeps): FastifyInstance {
  const logger: FastifyBaseLogger = log;
  const app = Fastify({
    loggerInstance: logger,
    // Behind a load balancer in production; request ids go into every log line.
    trustProxy: true,
    bodyLimit: 1024 * 1024,
    requestTimeout: 30_000,
    // Let in-flight requests finish on shutdown, but close idle keep-alive sockets at once.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });

  // While shutting down, responses still in flight close their connection, so that keep-alive
  // sockets do not hold the process open until their idle timeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });

  app.addHook('onSend', async (_req, reply) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) if (!reply.hasHeader(k)) reply.header(k, v);
    if (closing) reply.header('connection', 'close');
  });

  app.setErrorHandler((err: { statusCode?: number; code?: string; message: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, 'request failed');
    void reply.status(status).send({
      error: { code: status >= 500 ? 'internal_error' : (err.code ?? 'bad_request'), message: status >= 500 ? 'internal error' : err.message },
    });
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ error: { code: 'not_found', message: `no route for ${req.method} ${req.url.split('?')[0]}` } });
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  // The provider logo Jira shows next to builds and deployments (descriptor logoUrl).
  app.get('/static/teamcity.svg', async (_req, reply) =>
    reply.type('image/svg+xml').header('cache-control', 'public, max-age=86400').send(LOGO_SVG),
  );

  // Prometheus / Datadog OpenMetrics scrape. Bounded labels, no tenant data (src/metrics.ts).
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));

  app.get('/readyz', async (_req, reply) => {
    try {
      await db.ping();
      if (!(await migrationsCurrent((sql) => db.pool.query(sql)))) {
        return reply.status(503).send({ status: 'not_ready', reason: 'database migrations are not current' });
      }
      return { status: 'ready' };
    } catch {
      return reply.status(503).send({ status: 'not_ready', reason: 'database unreachable' });
    }
  });

  return app;
}
