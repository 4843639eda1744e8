// The only way the app touches tenant data: withTenant() opens a transaction, switches to the
// tenant role and sets app.tenant_id for that transaction alone, so Row Level Security confines every
// statement in the callback to one tenant. The runtime login (tcj_app) has no table privileges of its
// own, so a query outside withTenant() fails instead of leaking.
import pg from 'pg';
import { ROLE_MAINTENANCE, ROLE_TENANT } from './roles.ts';

export type QueryParams = readonly unknown[];

/** What a callback gets: a query function bound to one transaction. */
export interface Tx {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: QueryParams): Promise<pg.QueryResult<R>>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

export interface PoolOptions {
  max?: number;
  applicationName?: string;
}

export function createPool(connectionString: string, opts: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'teamcity-jira',
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    // No statement or transaction may hold a connection forever (design.md §5: every call has a timeout).
    statement_timeout: 30_000,
    idle_in_transaction_session_timeout: 60_000,
  });
  // An idle client losing its connection (e.g. PostgreSQL restarted) must not crash the process;
  // the pool drops it and the next checkout reconnects.
  pool.on('error', () => undefined);
  return pool;
}

async function inTransaction<T>(pool: pg.Pool, setup: (c: pg.PoolClient) => Promise<void>, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  // A checked-out client has no 'error' listener (the pool's is for idle clients only), and pg emits
  // 'error' when the server ends the connection (PostgreSQL restarted or failed over) even while a
  // query is pending: unhandled, that crashes the process. The pending query rejects anyway; the
  // client is destroyed on release.
  const onError = (err: Error) => (broken = err);
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    await setup(client);
    const tx: Tx = { query: (sql, params) => client.query(sql, params as unknown[]) };
    const result = await fn(tx);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((e: Error) => (broken = e));
    throw err;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}

export class Database {
  constructor(readonly pool: pg.Pool) {}

  /** Runs `fn` in one transaction that can see and change only `tenantId`'s rows. */
  withTenant<T>(tenantId: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
    if (!isUuid(tenantId)) return Promise.reject(new TypeError('withTenant: tenantId must be a UUID'));
    return inTransaction(
      this.pool,
      async (c) => {
        await c.query(`SET LOCAL ROLE ${ROLE_TENANT}`);
        await c.query(`SELECT set_config('app.tenant_id', $1, true)`, [tenantId]);
      },
      fn,
    );
  }

  /** The tenant a Jira clientKey belongs to, through the one narrowly granted lookup function. */
  async tenantIdForClientKey(clientKey: string): Promise<string | undefined> {
    const { rows } = await this.pool.query<{ id: string | null }>('SELECT tenant_id_for_client_key($1) AS id', [clientKey]);
    return rows[0]?.id ?? undefined;
  }

  /** Liveness of the database for /readyz. */
  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

/**
 * Cross-tenant maintenance (key rotation, purge) for operator commands that connect as the schema
 * owner: runs `fn` as tcj_maintenance, the only role with a policy that spans tenants.
 */
export function withMaintenance<T>(ownerPool: pg.Pool, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return inTransaction(ownerPool, async (c) => void (await c.query(`SET LOCAL ROLE ${ROLE_MAINTENANCE}`)), fn);
}
