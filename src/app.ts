// Assembles a running process from its parts: configuration → database (embedded or external) →
// migrations → secrets → HTTP. Shutdown runs in reverse: stop accepting, finish in-flight requests,
// close the pool, stop embedded PostgreSQL.
import type { FastifyInstance } from 'fastify';
import type { Config } from './config.ts';
import { resolveDatabase, type DatabaseUrls } from './db/connect.ts';
import { createPool, Database } from './db/database.ts';
import { migrate } from './db/migrate.ts';
import { Secrets } from './crypto/secrets.ts';
import type { Logger } from './log.ts';
import { buildServer } from './web/server.ts';

export interface Runtime {
  config: Config;
  log: Logger;
  urls: DatabaseUrls;
  db: Database;
  secrets: Secrets;
  close(): Promise<void>;
}

/** Opens the database (migrating it) and the secrets store: what every role of process needs. */
export async function openRuntime(config: Config, log: Logger, opts: { attachIfRunning?: boolean } = {}): Promise<Runtime> {
  const urls = await resolveDatabase(config, log, opts);
  let db: Database | undefined;
  try {
    await migrate(urls.ownerUrl, log);
    db = new Database(createPool(urls.appUrl));
    const appDb = db;
    const secrets = config.kmsKeyArn
      ? Secrets.kms(config.kmsKeyArn.split(',').map((s) => s.trim()))
      : await Secrets.local(config.keyringFile, {
          secretsExist: async () => (await appDb.pool.query<{ any: boolean }>('SELECT any_secret_stored() AS any')).rows[0]!.any,
        });
    return {
      config,
      log,
      urls,
      db,
      secrets,
      close: async () => {
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

export interface WebProcess {
  server: FastifyInstance;
  runtime: Runtime;
  url: string;
  shutdown(reason: string): Promise<void>;
}

export async function startWeb(config: Config, log: Logger): Promise<WebProcess> {
  const runtime = await openRuntime(config, log);
  const server = buildServer({ db: runtime.db, log });
  try {
    await server.listen({ port: config.port, host: '0.0.0.0' });
  } catch (err) {
    await runtime.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  const shutdown = (reason: string) => {
    closing ??= (async () => {
      log.info({ reason }, 'shutting down');
      await server.close(); // stops accepting; waits for in-flight requests
      await runtime.close();
      log.info('shutdown complete');
    })();
    return closing;
  };
  return { server, runtime, url: `http://127.0.0.1:${config.port}`, shutdown };
}
