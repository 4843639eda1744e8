// A fresh, migrated database on a PostgreSQL server, for the test suites and the benchmark: created
// by the server's admin, owned and migrated by a non-superuser owner exactly as in production, with
// the runtime role's URL to connect as. Embedded clusters reuse the product's own owner role.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { deriveAppUrl } from '../../src/db/connect.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createLogger } from '../../src/log.ts';

export interface PgServer {
  adminUrl: string;
  kind: 'embedded' | 'external';
  /** Embedded only: the product's owner and runtime logins (any database). */
  ownerUrl?: string;
  appUrl?: string;
}

export interface ScratchDatabase {
  name: string;
  ownerUrl: string;
  appUrl: string;
  /** Drops the database (as the admin), whoever is still connected. */
  drop(): Promise<void>;
}

/** The owner an operator would create on an external server (docs/database.md). */
const EXTERNAL_OWNER = 'tcj_scratch_owner';
const EXTERNAL_OWNER_PASSWORD = 'scratch-owner';

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function asAdmin(url: string, fn: (c: pg.Client) => Promise<void>): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await fn(c);
  } finally {
    await c.end();
  }
}

export async function createScratchDatabase(server: PgServer, prefix: string): Promise<ScratchDatabase> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  let ownerUrl: string;
  if (server.kind === 'embedded') {
    ownerUrl = withDatabase(server.ownerUrl!, name);
    await asAdmin(server.adminUrl, async (c) => void (await c.query(`CREATE DATABASE ${name} OWNER ${new URL(ownerUrl).username}`)));
  } else {
    const u = new URL(withDatabase(server.adminUrl, name));
    u.username = EXTERNAL_OWNER;
    u.password = EXTERNAL_OWNER_PASSWORD;
    ownerUrl = u.toString();
    await asAdmin(server.adminUrl, async (c) => {
      // NOINHERIT, as docs/database.md asks on PostgreSQL 15 (the maintenance role only by SET ROLE).
      await c
        .query(`CREATE ROLE ${EXTERNAL_OWNER} LOGIN NOINHERIT CREATEROLE NOSUPERUSER NOBYPASSRLS PASSWORD '${EXTERNAL_OWNER_PASSWORD}'`)
        .catch((err: { code?: string }) => {
          if (err.code !== '42710' && err.code !== '23505') throw err; // created a moment ago by another suite
        });
      await c.query(`CREATE DATABASE ${name} OWNER ${EXTERNAL_OWNER}`);
    });
    // A NOINHERIT owner does not inherit pg_database_owner's rights on `public` (docs/database.md).
    await asAdmin(withDatabase(server.adminUrl, name), async (c) => void (await c.query(`ALTER SCHEMA public OWNER TO ${EXTERNAL_OWNER}`)));
  }
  await migrate(ownerUrl, createLogger({ level: 'silent' }));
  const appUrl = server.kind === 'embedded' ? withDatabase(server.appUrl!, name) : deriveAppUrl(ownerUrl);
  return {
    name,
    ownerUrl,
    appUrl,
    drop: () => asAdmin(server.adminUrl, async (c) => void (await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))),
  };
}
