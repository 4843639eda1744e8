// The embedded default, as an operator meets it: `tcj start` processes against one DATA_DIR —
// first start, reuse, a second process refused, clean stop on SIGTERM, recovery after SIGKILL, and
// refusal to start with a missing or corrupt keyring once secrets exist.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { Secrets } from '../src/crypto/secrets.ts';
import { freePort } from './helpers/net.ts';

let dataDir: string;
before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'tcj-embedded-'));
});
after(() => rm(dataDir, { recursive: true, force: true }));

interface Proc {
  child: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function cli(args: string[], env: Record<string, string> = {}): Proc & { port: number } {
  const port = Number(env.PORT ?? 0);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    env: { ...process.env, DATA_DIR: dataDir, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, port, output: () => out, exited };
}

async function startApp(): Promise<Proc> {
  const port = await freePort();
  const p = cli(['start'], { PORT: String(port) });
  const until = Date.now() + 60_000;
  while (!p.output().includes('"msg":"listening"')) {
    if (Date.now() > until) throw new Error(`app did not start:\n${p.output()}`);
    const early = await Promise.race([p.exited, new Promise((r) => setTimeout(r, 100, undefined))]);
    if (early) throw new Error(`app exited during start-up:\n${p.output()}`);
  }
  return p;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function postmasterPid(): Promise<number | undefined> {
  const text = await readFile(join(dataDir, 'pg', 'postmaster.pid'), 'utf8').catch(() => undefined);
  return text ? Number(text.split('\n')[0]) : undefined;
}

describe('embedded PostgreSQL through the CLI', { timeout: 180_000 }, () => {
  test('first start creates DATA_DIR, serves readyz, and refuses a second process', async () => {
    const app = await startApp();
    try {
      assert.match(app.output(), /initialising embedded PostgreSQL \(first start\)/);
      const ready = await fetch(`http://127.0.0.1:${app.port}/readyz`);
      assert.equal(ready.status, 200);
      assert.equal((await stat(join(dataDir, 'keyring.json'))).mode & 0o777, 0o600);
      assert.equal((await stat(join(dataDir, 'pg-credentials.json'))).mode & 0o777, 0o600);

      const second = cli(['start'], { PORT: String(await freePort()) });
      const { code } = await second.exited;
      assert.equal(code, 1);
      assert.equal(second.output(), `error: DATA_DIR ${dataDir} is in use by another process (pid ${app.child.pid}); stop it, or use another DATA_DIR\n`);

      // Maintenance commands attach to the running server instead.
      const migrate = cli(['migrate']);
      assert.equal((await migrate.exited).code, 0, migrate.output());
      assert.match(migrate.output(), /attaching to the embedded PostgreSQL of the running process/);
      assert.match(migrate.output(), /database is up to date/);

      // Store a secret-bearing row as the runtime role would, for the keyring tests below.
      const creds = JSON.parse(await readFile(join(dataDir, 'pg-credentials.json'), 'utf8')) as { appPassword: string };
      const lock = JSON.parse(await readFile(join(dataDir, 'app.lock'), 'utf8')) as { port: number };
      const c = new pg.Client({ connectionString: `postgres://tcj_app:${encodeURIComponent(creds.appPassword)}@127.0.0.1:${lock.port}/tcj` });
      await c.connect();
      await c.query('BEGIN');
      await c.query('SET LOCAL ROLE tcj_tenant');
      await c.query(`SELECT set_config('app.tenant_id', '55555555-5555-4555-8555-555555555555', true)`);
      await c.query(`INSERT INTO tenants (id, client_key, base_url, shared_secret_ct) VALUES ('55555555-5555-4555-8555-555555555555', 'persisted', 'https://p.atlassian.net', '\\x01')`);
      await c.query('COMMIT');
      await c.end();
    } finally {
      app.child.kill('SIGTERM');
    }
    const { code } = await app.exited;
    assert.equal(code, 0, app.output());
    assert.match(app.output(), /"msg":"embedded PostgreSQL stopped"/);
    assert.match(app.output(), /"msg":"shutdown complete"/);
    const pid = await postmasterPid();
    assert.ok(pid === undefined || !isAlive(pid), 'postmaster still running after SIGTERM');
    await assert.rejects(stat(join(dataDir, 'app.lock')), /ENOENT/);
  });

  test('a restart reuses the data directory and keeps the data; rotate-keys runs beside it', async () => {
    const app = await startApp();
    try {
      assert.doesNotMatch(app.output(), /initialising/);
      const creds = JSON.parse(await readFile(join(dataDir, 'pg-credentials.json'), 'utf8')) as { appPassword: string };
      const lock = JSON.parse(await readFile(join(dataDir, 'app.lock'), 'utf8')) as { port: number };
      const c = new pg.Client({ connectionString: `postgres://tcj_app:${encodeURIComponent(creds.appPassword)}@127.0.0.1:${lock.port}/tcj` });
      await c.connect();
      const tenant = '55555555-5555-4555-8555-555555555555';
      assert.equal((await c.query(`SELECT tenant_id_for_client_key('persisted') AS id`)).rows[0].id, tenant);

      // rotate-keys while the app runs: it attaches, adds a primary key and re-encrypts.
      const secrets = await Secrets.local(join(dataDir, 'keyring.json'), { secretsExist: async () => true, recheckMs: 0 });
      const ctx = { tenant, purpose: 'jira-shared-secret' as const, record: tenant };
      await c.query('BEGIN');
      await c.query('SET LOCAL ROLE tcj_tenant');
      await c.query(`SELECT set_config('app.tenant_id', $1, true)`, [tenant]);
      await c.query('UPDATE tenants SET shared_secret_ct = $1', [await secrets.encrypt('persisted-shared-secret', ctx)]);
      await c.query('COMMIT');
      const rotate = cli(['rotate-keys']);
      assert.equal((await rotate.exited).code, 0, rotate.output());
      const keyring = JSON.parse(await readFile(join(dataDir, 'keyring.json'), 'utf8')) as { primary: string; keys: unknown[] };
      assert.equal(keyring.keys.length, 2);
      const report = JSON.parse(rotate.output().split('\n').find((l) => l.startsWith('{"scanned"'))!) as Record<string, unknown>;
      assert.deepEqual(report, { scanned: 1, reencrypted: 1, failed: 0, primaryKey: keyring.primary });
      await c.query('BEGIN');
      await c.query('SET LOCAL ROLE tcj_tenant');
      await c.query(`SELECT set_config('app.tenant_id', $1, true)`, [tenant]);
      const ct = (await c.query('SELECT shared_secret_ct AS ct FROM tenants')).rows[0].ct as Buffer;
      await c.query('COMMIT');
      assert.deepEqual(await secrets.open(ct, ctx), { plaintext: 'persisted-shared-secret', underPrimary: true });
      await c.end();
    } finally {
      app.child.kill('SIGINT');
    }
    assert.equal((await app.exited).code, 0);
  });

  test('after SIGKILL, the orphaned PostgreSQL is stopped and the next start works', async () => {
    const app = await startApp();
    app.child.kill('SIGKILL');
    await app.exited;
    const orphan = await postmasterPid();
    assert.ok(orphan && isAlive(orphan), 'expected the postmaster to outlive a SIGKILLed app');
    const next = await startApp();
    try {
      assert.match(next.output(), /stopping an embedded PostgreSQL left running by a previous process/);
      assert.ok(!isAlive(orphan));
      assert.equal((await fetch(`http://127.0.0.1:${next.port}/readyz`)).status, 200);
    } finally {
      next.child.kill('SIGTERM');
    }
    assert.equal((await next.exited).code, 0);
  });

  test('a missing keyring with stored secrets, or a corrupt one, stops start-up with a clear message', async () => {
    const keyring = join(dataDir, 'keyring.json');
    const saved = await readFile(keyring, 'utf8');
    await rm(keyring);
    const missing = cli(['start'], { PORT: String(await freePort()) });
    assert.equal((await missing.exited).code, 1);
    assert.match(missing.output(), new RegExp(`error: keyring ${keyring} is missing but the database holds encrypted secrets`));
    await assert.rejects(stat(keyring), /ENOENT/, 'a new keyring must not have been generated');

    await writeFile(keyring, saved.slice(0, 40), { mode: 0o600 });
    const corrupt = cli(['start'], { PORT: String(await freePort()) });
    assert.equal((await corrupt.exited).code, 1);
    assert.match(corrupt.output(), new RegExp(`error: keyring ${keyring} is not valid JSON; restore it from backup`));

    await writeFile(keyring, saved, { mode: 0o600 });
    const restored = await startApp();
    restored.child.kill('SIGTERM');
    assert.equal((await restored.exited).code, 0);
  });
});
