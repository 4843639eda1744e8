// Versioned plain-SQL migrations (src/db/migrations/NNNN_name.sql), applied in order, each in its own
// transaction, recorded in schema_migrations with a checksum, and serialised by an advisory lock so
// that processes starting together never migrate twice. Runs as the schema owner.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Logger } from '../log.ts';
import { ROLE_APP, ROLE_MAINTENANCE, ROLE_TENANT } from './roles.ts';

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));
// Any constant works; it only has to be the same for every process of this app.
const MIGRATION_LOCK_KEY = 7_301_994_112;

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

let shipped: Promise<Migration[]> | undefined;

/** The migrations this version ships (read once per process). */
export function loadMigrations(): Promise<Migration[]> {
  shipped ??= readMigrations(MIGRATIONS_DIR);
  return shipped;
}

export async function readMigrations(dir: string): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!m) throw new MigrationError(`migration file name ${file} must look like 0001_name.sql`);
    const sql = await readFile(`${dir}/${file}`, 'utf8');
    migrations.push({ version: Number(m[1]), name: m[2]!, sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new MigrationError(`migrations must be numbered 1..n without gaps; found ${m.version} at position ${i + 1}`);
  });
  return migrations;
}

/** The SQL an operator runs once as a privileged user when `migrate` cannot create the roles itself. */
export function roleSetupSql(owner: string): string {
  return [
    `CREATE ROLE ${ROLE_APP} LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS PASSWORD '<choose one>';`,
    `CREATE ROLE ${ROLE_TENANT} NOLOGIN NOSUPERUSER NOBYPASSRLS;`,
    `CREATE ROLE ${ROLE_MAINTENANCE} NOLOGIN NOSUPERUSER NOBYPASSRLS;`,
    `GRANT ${ROLE_TENANT} TO ${ROLE_APP};`,
    `GRANT ${ROLE_MAINTENANCE} TO ${owner}; -- PostgreSQL 16+: add WITH INHERIT FALSE; on 15 make ${owner} NOINHERIT`,
  ].join('\n');
}

async function ensureRoles(client: pg.Client, log: Logger): Promise<void> {
  const owner = (await client.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u;
  const { rows } = await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname = ANY($1)', [
    [ROLE_APP, ROLE_TENANT, ROLE_MAINTENANCE],
  ]);
  const have = new Set(rows.map((r) => r.rolname));
  const wanted: [string, string][] = [
    [ROLE_APP, 'LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE'],
    [ROLE_TENANT, 'NOLOGIN NOSUPERUSER NOBYPASSRLS'],
    [ROLE_MAINTENANCE, 'NOLOGIN NOSUPERUSER NOBYPASSRLS'],
  ];
  try {
    for (const [role, attrs] of wanted) {
      if (have.has(role)) continue;
      try {
        await client.query(`CREATE ROLE ${role} ${attrs}`);
        log.info({ role }, 'created database role');
      } catch (err) {
        // Roles are cluster-wide: another database's migrator may have created it a moment ago.
        if ((err as { code?: string }).code !== '42710' && (err as { code?: string }).code !== '23505') throw err;
      }
    }
    // Grant only what is missing: re-granting needs ADMIN OPTION, which an owner with CREATEROLE lacks
    // on roles a superuser created (PostgreSQL 16+).
    const member = async (role: string, of: string) =>
      (await client.query<{ m: boolean }>(`SELECT pg_has_role($1, $2, 'MEMBER') AS m`, [role, of])).rows[0]!.m;
    if (!(await member(ROLE_APP, ROLE_TENANT))) await client.query(`GRANT ${ROLE_TENANT} TO ${ROLE_APP}`);
    if (!(await member(owner, ROLE_MAINTENANCE))) {
      // The owner must reach the cross-tenant policy only by an explicit SET ROLE, never implicitly:
      // PostgreSQL 16+ says so per grant; on 15 the owner role itself must be NOINHERIT (see docs).
      const v = Number((await client.query<{ v: string }>('SHOW server_version_num')).rows[0]!.v);
      await client.query(`GRANT ${ROLE_MAINTENANCE} TO ${client.escapeIdentifier(owner)}${v >= 160000 ? ' WITH INHERIT FALSE' : ''}`);
    }
  } catch (err) {
    throw new MigrationError(
      `the database roles the app needs are missing and ${owner} cannot create them (${(err as Error).message}). ` +
        `Ask a database administrator to run:\n${roleSetupSql(client.escapeIdentifier(owner))}`,
    );
  }
}

/**
 * Applies pending migrations; returns the versions applied by this call. A database that already has
 * migrations newer than this version is refused unless `allowNewer` (processes starting during a
 * rolling deploy, after the new version migrated: migrations are expand-only, so older code still runs).
 */
export async function migrate(ownerUrl: string, log: Logger, opts: { allowNewer?: boolean } = {}): Promise<number[]> {
  const migrations = await loadMigrations();
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    await ensureRoles(client, log);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      checksum   text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const applied = new Map(
      (await client.query<{ version: number; checksum: string }>('SELECT version, checksum FROM schema_migrations')).rows.map((r) => [
        r.version,
        r.checksum,
      ]),
    );
    const done: number[] = [];
    for (const m of migrations) {
      const sum = applied.get(m.version);
      if (sum !== undefined) {
        if (sum !== m.checksum) throw new MigrationError(`migration ${m.version}_${m.name} was changed after it was applied`);
        continue;
      }
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [m.version, m.name, m.checksum]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new MigrationError(`migration ${m.version}_${m.name} failed: ${(err as Error).message}`);
      }
      log.info({ version: m.version, name: m.name }, 'applied migration');
      done.push(m.version);
    }
    const unknown = [...applied.keys()].filter((v) => v > migrations.length);
    if (unknown.length && !opts.allowNewer) throw new MigrationError(`the database has migrations this version does not know (${unknown.join(', ')}); deploy a newer version`);
    if (unknown.length) log.warn({ newer: unknown }, 'the database is ahead of this version (a rolling deploy in progress?)');
    // Runtime access outside tenant tables: connect, and read which migrations are applied (readyz).
    const dbName = client.escapeIdentifier((await client.query<{ d: string }>('SELECT current_database() AS d')).rows[0]!.d);
    await client.query(`GRANT CONNECT ON DATABASE ${dbName} TO ${ROLE_APP}`);
    await client.query(`GRANT SELECT ON schema_migrations TO ${ROLE_APP}`);
    return done;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await client.end();
  }
}

/**
 * True when every migration this version ships is applied (used by /readyz). A database ahead of
 * this version is fine: during a rolling deploy old processes keep serving on the expanded schema.
 */
export async function migrationsCurrent(query: (sql: string) => Promise<{ rows: { v: number | null }[] }>): Promise<boolean> {
  const migrations = await loadMigrations();
  const { rows } = await query('SELECT count(*)::int AS v FROM schema_migrations WHERE version <= ' + migrations.length);
  return rows[0]?.v === migrations.length;
}
