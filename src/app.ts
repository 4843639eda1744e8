// Assembles a running process from its parts: configuration → database (embedded or external) →
// migrations → secrets → HTTP. Shutdown runs in reverse: stop accepting, finish in-flight requests,
// close the pool, stop embedded PostgreSQL.
import type { FastifyInstance } from 'fastify';
import type { Dispatcher } from 'undici';
import type { Config } from './config.ts';
import { resolveDatabase, type DatabaseUrls } from './db/connect.ts';
import { createPool, Database } from './db/database.ts';
import { migrate } from './db/migrate.ts';
import { Secrets } from './crypto/secrets.ts';
import { InstallKeys } from './jira/install-keys.ts';
import { registerLifecycle } from './jira/lifecycle.ts';
import type { Logger } from './log.ts';
import { registerOutboxGauges } from './metrics.ts';
import { createOutboundDispatcher } from './net/outbound.ts';
import { deliverTenant } from './sync/deliverer.ts';
import { pollServer } from './sync/poller.ts';
import { SyncWorker } from './sync/worker.ts';
import { TenantRepository } from './tenants/repository.ts';
import { purgeExpiredTenants } from './tenants/retention.ts';
import { registerAdminApi, retryPendingDeletions, tenantsWithPendingDeletions } from './web/api/index.ts';
import { registerPages } from './web/pages/index.ts';
import { buildServer } from './web/server.ts';

export interface Runtime {
  config: Config;
  log: Logger;
  urls: DatabaseUrls;
  db: Database;
  secrets: Secrets;
  tenants: TenantRepository;
  /** The SSRF-guarded agent every outbound call goes through. */
  dispatcher: Dispatcher;
  close(): Promise<void>;
}

/** Opens the database (migrating it) and the secrets store: what every role of process needs. */
export async function openRuntime(config: Config, log: Logger, opts: { attachIfRunning?: boolean } = {}): Promise<Runtime> {
  const urls = await resolveDatabase(config, log, opts);
  let db: Database | undefined;
  try {
    await migrate(urls.ownerUrl, log, { allowNewer: true });
    // Transactions are short (network calls happen outside them), so a few more than the concurrency.
    db = new Database(createPool(urls.appUrl, { max: config.workerConcurrency + 4 }));
    const appDb = db;
    const secrets = config.kmsKeyArn
      ? Secrets.kms(config.kmsKeyArn.split(',').map((s) => s.trim()))
      : await Secrets.local(config.keyringFile, {
          secretsExist: async () => (await appDb.pool.query<{ any: boolean }>('SELECT any_secret_stored() AS any')).rows[0]!.any,
        });
    const dispatcher = createOutboundDispatcher({ allowHosts: config.outboundAllowHosts });
    registerOutboxGauges(async () => {
      const { rows } = await appDb.pool.query<{ rows: string; oldest_seconds: number }>('SELECT * FROM outbox_stats()');
      return { rows: Number(rows[0]?.rows ?? 0), oldestSeconds: rows[0]?.oldest_seconds ?? 0 };
    });
    return {
      config,
      log,
      urls,
      db,
      secrets,
      tenants: new TenantRepository(db, secrets),
      dispatcher,
      close: async () => {
        await dispatcher.close();
        await appDb.close();
        await urls.release();
      },
    };
  } catch (err) {
    await db?.close().catch(() => undefined);
    await urls.release().catch(() => undefined);
    throw err;
  }
}

/**
 * A partly filled Jira batch waits up to this long for more updates (full batches of other
 * connections go first): fewer, fuller requests for at most a second of latency. A backfilling
 * connection's batch waits longer, since its next window of history is on its way.
 */
const DELIVERY_LINGER_MS = 1000;
const BACKFILL_DELIVERY_LINGER_MS = 5000;

export function createWorker(runtime: Runtime): SyncWorker {
  const { db, secrets, dispatcher, log, tenants, config } = runtime;
  return new SyncWorker(
    db,
    {
      poll: async (tenantId, serverId, lease) =>
        void (await pollServer({ db, secrets, dispatcher, log, settings: { maxBuildDurationMs: config.syncMaxBuildHours * 3600_000 } }, tenantId, serverId, lease)),
      deliver: async (tenantId, workerId) =>
        void (await deliverTenant({ db, tenants, appKey: config.appKey, dispatcher, log, lingerMs: DELIVERY_LINGER_MS, backfillLingerMs: BACKFILL_DELIVERY_LINGER_MS }, tenantId, workerId)),
      maintain: async () => {
        await purgeExpiredTenants(db, log);
        for (const tenantId of await tenantsWithPendingDeletions(db)) await retryPendingDeletions({ db, tenants, appKey: config.appKey, dispatcher, log }, tenantId);
      },
    },
    log,
    { maxConcurrentPolls: config.workerConcurrency, maxConcurrentDeliveries: config.workerConcurrency },
  );
}

export interface AppProcess {
  server: FastifyInstance;
  worker: SyncWorker | undefined;
  runtime: Runtime;
  shutdown(reason: string): Promise<void>;
}

/** `start` runs both roles in one process; `web` and `worker` one each (design.md §1). */
export async function startProcess(config: Config, log: Logger, roles: { web: boolean; worker: boolean }): Promise<AppProcess> {
  const runtime = await openRuntime(config, log);
  const server = buildServer({ db: runtime.db, log });
  let worker: SyncWorker | undefined;
  try {
    // Every process serves /healthz, /readyz and /metrics (a worker's metrics are where the TeamCity
    // and Jira calls happen); only the web role adds the Jira-facing routes.
    if (roles.web) {
      registerLifecycle(server, {
        appKey: config.appKey,
        baseUrl: config.baseUrl,
        tenants: runtime.tenants,
        installKeys: new InstallKeys(config.connectInstallKeysUrl, runtime.dispatcher),
        allowHosts: config.outboundAllowHosts,
      });
      registerAdminApi(server, { db: runtime.db, secrets: runtime.secrets, tenants: runtime.tenants, dispatcher: runtime.dispatcher, log, appKey: config.appKey, baseUrl: config.baseUrl });
      registerPages(server, { tenants: runtime.tenants, baseUrl: config.baseUrl, allJsUrl: config.allJsUrl });
    }
    await server.listen({ port: config.port, host: '0.0.0.0' });
    if (roles.worker) {
      worker = createWorker(runtime);
      worker.start();
    }
  } catch (err) {
    await server.close();
    await runtime.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  const shutdown = (reason: string) => {
    closing ??= (async () => {
      log.info({ reason }, 'shutting down');
      await server.close(); // stops accepting; waits for in-flight requests
      await worker?.stop(); // stops claiming; waits for the work in hand
      await runtime.close();
      log.info('shutdown complete');
    })();
    return closing;
  };
  return { server, worker, runtime, shutdown };
}
