// A fresh database per test suite on the server the test runner chose (scripts/run-tests.ts):
// embedded PostgreSQL by default, or DATABASE_URL's server. Migrations run as a non-superuser owner,
// exactly as in production, and `db` connects as the runtime role.
import type pg from 'pg';
import { createScratchDatabase, type PgServer } from '../../scripts/lib/scratch-database.ts';
import { createPool, Database } from '../../src/db/database.ts';
import { createLogger } from '../../src/log.ts';

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

/**
 * sync_state SET clause for tests that drive an idle worker step by step: the server is due now, and
 * the short lease a quiet poll leaves to lapse (claim_polls) is over. Not for a worker with polls in
 * flight: those would be overtaken (the product's "sync now", POLL_NOW, never does that).
 */
export const DUE_NOW = 'next_poll_at = now(), lease_until = least(lease_until, now())';

export function testPg(): PgServer {
  const raw = process.env.TEST_PG;
  if (!raw) throw new Error('TEST_PG is not set: run database suites through `npm test` (scripts/run-tests.ts)');
  return JSON.parse(raw) as PgServer;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const server = testPg();
  const scratch = await createScratchDatabase(server, 'tcj_t');
  const db = new Database(createPool(scratch.appUrl, { max: 5 }));
  const ownerPool = createPool(scratch.ownerUrl, { max: 3 });
  return {
    name: scratch.name,
    adminUrl: server.adminUrl,
    ownerUrl: scratch.ownerUrl,
    appUrl: scratch.appUrl,
    db,
    ownerPool,
    drop: async () => {
      await db.close();
      await ownerPool.end();
      await scratch.drop();
    },
  };
}
