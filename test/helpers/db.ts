// A fresh database per test suite on the server the test runner chose (scripts/run-tests.ts):
// embedded PostgreSQL by default, or DATABASE_URL's server. Migrations run as a non-superuser owner,
// exactly as in production, and `db` connects as the runtime role.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createPool, Database } from '../../src/db/database.ts';
import { deriveAppUrl } from '../../src/db/connect.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createLogger } from '../../src/log.ts';

interface TestPg {
  adminUrl: string;
  ownerUrl?: string;
  appUrl?: string;
  kind: 'embedded' | 'external';
}

export interface TestDatabase {
  name: string;
  adminUrl: string;
  ownerUrl: string;
  appUrl: string;
  db: Database;
  ownerPool: pg.Pool;
  drop(): Promise<void>;
}

export const quietLog = createLogger({ level: 'silent' });

export function testPg(): TestPg {
  const raw = process.env.TEST_PG;
  if (!raw) throw new Error('TEST_PG is not set: run database suites through `npm test` (scripts/run-tests.ts)');
  return JSON.parse(raw) as TestPg;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

const EXTERNAL_OWNER = 'tcj_test_owner';

export async function createTestDatabase(): Promise<TestDatabase> {
  const info = testPg();
  const name = `tcj_t_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: info.adminUrl });
  await admin.connect();
  let ownerUrl: string;
  try {
    let owner: string;
    if (info.kind === 'embedded') {
      ownerUrl = withDatabase(info.ownerUrl!, name);
      owner = new URL(ownerUrl).username;
    } else {
      // A dedicated non-superuser owner with CREATEROLE, as an operator would set up.
      owner = EXTERNAL_OWNER;
      await admin
        .query(`CREATE ROLE ${owner} LOGIN NOINHERIT CREATEROLE NOSUPERUSER NOBYPASSRLS PASSWORD 'test-owner'`)
        .catch((err: { code?: string }) => {
          if (err.code !== '42710' && err.code !== '23505') throw err;
        });
      const u = new URL(withDatabase(info.adminUrl, name));
      u.username = owner;
      u.password = 'test-owner';
      ownerUrl = u.toString();
    }
    await admin.query(`CREATE DATABASE ${name} OWNER ${owner}`);
  } finally {
    await admin.end();
  }
  if (info.kind === 'external') {
    // As docs/database.md tells an operator on PostgreSQL 15: a NOINHERIT owner does not inherit
    // pg_database_owner's rights on `public`, so it is given the schema.
    const dba = new pg.Client({ connectionString: withDatabase(info.adminUrl, name) });
    await dba.connect();
    try {
      await dba.query(`ALTER SCHEMA public OWNER TO ${EXTERNAL_OWNER}`);
    } finally {
      await dba.end();
    }
  }
  await migrate(ownerUrl, quietLog);
  const appUrl = info.kind === 'embedded' ? withDatabase(info.appUrl!, name) : deriveAppUrl(ownerUrl);
  const db = new Database(createPool(appUrl, { max: 5 }));
  const ownerPool = createPool(ownerUrl, { max: 3 });
  return {
    name,
    adminUrl: info.adminUrl,
    ownerUrl,
    appUrl,
    db,
    ownerPool,
    drop: async () => {
      await db.close();
      await ownerPool.end();
      const c = new pg.Client({ connectionString: info.adminUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
