// Migrations: applied once even when several processes start together, recorded, and refused when
// the history does not match what this version ships.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { loadMigrations, migrate, migrationsCurrent, readMigrations } from '../../src/db/migrate.ts';
import { createTestDatabase, quietLog, testPg, type TestDatabase } from '../helpers/db.ts';

let t: TestDatabase;
before(async () => {
  t = await createTestDatabase();
});
after(() => t.drop());

test('five migrators at once: every migration applied exactly once', async () => {
  // A second database, fresh, so that the race is on the first migration.
  const admin = new pg.Client({ connectionString: t.adminUrl });
  await admin.connect();
  const name = `${t.name}_race`;
  const owner = new URL(t.ownerUrl).username;
  await admin.query(`CREATE DATABASE ${name} OWNER ${owner}`);
  const dbUrl = (base: string) => Object.assign(new URL(base), { pathname: `/${name}` }).toString();
  try {
    if (testPg().kind === 'external') {
      const dba = new pg.Client({ connectionString: dbUrl(t.adminUrl) });
      await dba.connect();
      await dba.query(`ALTER SCHEMA public OWNER TO ${owner}`);
      await dba.end();
    }
    const results = await Promise.all(Array.from({ length: 5 }, () => migrate(dbUrl(t.ownerUrl), quietLog)));
    const total = (await loadMigrations()).length;
    assert.deepEqual(results.flat().sort(), Array.from({ length: total }, (_, i) => i + 1));
    assert.equal(results.filter((r) => r.length > 0).length, 1);
    const c = new pg.Client({ connectionString: dbUrl(t.ownerUrl) });
    await c.connect();
    const { rows } = await c.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    assert.deepEqual(rows.map((r) => r.version), Array.from({ length: total }, (_, i) => i + 1));
    await c.end();
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
});

test('re-running is a no-op and readyz sees the schema as current', async () => {
  assert.deepEqual(await migrate(t.ownerUrl, quietLog), []);
  assert.equal(await migrationsCurrent((sql) => t.db.pool.query(sql)), true);
});

test('an applied migration that was edited is refused', async () => {
  const c = new pg.Client({ connectionString: t.ownerUrl });
  await c.connect();
  try {
    await c.query(`UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1`);
    await assert.rejects(migrate(t.ownerUrl, quietLog), /was changed after it was applied/);
    assert.equal(await migrationsCurrent((sql) => t.db.pool.query(sql)), true);
    await c.query(`UPDATE schema_migrations SET checksum = (SELECT checksum FROM schema_migrations WHERE version = 2) WHERE version = 1`);
    // A database ahead of this version (a rolling deploy): ready, start-up tolerates it, `migrate` refuses.
    await c.query(`UPDATE schema_migrations SET checksum = $1 WHERE version = 1`, [(await loadMigrations())[0]!.checksum]);
    await c.query(`INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'future', 'x')`);
    assert.equal(await migrationsCurrent((sql) => t.db.pool.query(sql)), true);
    await assert.rejects(migrate(t.ownerUrl, quietLog), /does not know \(999\)/);
    assert.deepEqual(await migrate(t.ownerUrl, quietLog, { allowNewer: true }), []);
    await c.query(`DELETE FROM schema_migrations WHERE version = 2`);
    assert.equal(await migrationsCurrent((sql) => t.db.pool.query(sql)), false, 'a missing migration is not ready');
  } finally {
    await c.end();
  }
});

test('migration files must be numbered without gaps', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tcj-mig-'));
  try {
    await writeFile(join(dir, '0001_a.sql'), 'SELECT 1');
    await writeFile(join(dir, '0003_c.sql'), 'SELECT 1');
    await assert.rejects(readMigrations(dir), /without gaps/);
    await writeFile(join(dir, '2_bad.sql'), 'SELECT 1');
    await assert.rejects(readMigrations(dir), /must look like 0001_name.sql/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
