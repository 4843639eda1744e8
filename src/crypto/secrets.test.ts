// Envelope encryption with the real AWS Encryption SDK and a real keyring file; rotation against a
// real PostgreSQL database.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { createTestDatabase, quietLog, type TestDatabase } from '../../test/helpers/db.ts';
import { addPrimaryKey, KeyringError, readKeyring, retireOldKeys } from './keyring.ts';
import { ENCRYPTED_COLUMNS, reencryptAll } from './rotate.ts';
import { SecretDecryptError, Secrets } from './secrets.ts';

const TENANT = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
let dir: string;
const noSecrets = { secretsExist: async () => false, recheckMs: 0 };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tcj-secrets-'));
});
after(() => rm(dir, { recursive: true, force: true }));

describe('secrets', () => {
  test('round trip, and the keyring file is created 0600', async () => {
    const file = join(dir, 'k1.json');
    const secrets = await Secrets.local(file, noSecrets);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const ctx = { tenant: TENANT, purpose: 'teamcity-credential' as const, record: 'srv-1' };
    const ct = await secrets.encrypt('hunter2-password', ctx);
    assert.ok(!ct.includes(Buffer.from('hunter2-password')));
    assert.equal(await secrets.decrypt(ct, ctx), 'hunter2-password');
    // A second open of the same file reads the same key.
    const again = await Secrets.local(file, noSecrets);
    assert.equal(await again.decrypt(ct, ctx), 'hunter2-password');
  });

  test('a ciphertext moved to another tenant, purpose or record does not decrypt', async () => {
    const secrets = await Secrets.local(join(dir, 'k2.json'), noSecrets);
    const ctx = { tenant: TENANT, purpose: 'teamcity-credential' as const, record: 'srv-1' };
    const ct = await secrets.encrypt('token-abcdef', ctx);
    await assert.rejects(secrets.decrypt(ct, { ...ctx, tenant: OTHER }), SecretDecryptError);
    await assert.rejects(secrets.decrypt(ct, { ...ctx, purpose: 'jira-shared-secret' }), SecretDecryptError);
    await assert.rejects(secrets.decrypt(ct, { ...ctx, record: 'srv-2' }), SecretDecryptError);
    const tampered = Buffer.from(ct);
    tampered[tampered.length - 40]! ^= 1;
    await assert.rejects(secrets.decrypt(tampered, ctx), SecretDecryptError);
  });

  test('another keyring cannot decrypt', async () => {
    const a = await Secrets.local(join(dir, 'ka.json'), noSecrets);
    const b = await Secrets.local(join(dir, 'kb.json'), noSecrets);
    const ctx = { tenant: TENANT, purpose: 'jira-shared-secret' as const, record: TENANT };
    await assert.rejects(b.decrypt(await a.encrypt('shared-secret-value', ctx), ctx), SecretDecryptError);
  });

  test('a missing keyring is refused when secrets exist; a corrupt one is always refused', async () => {
    await assert.rejects(Secrets.local(join(dir, 'missing.json'), { secretsExist: async () => true }), (err: Error) => {
      assert.ok(err instanceof KeyringError);
      assert.match(err.message, /missing but the database holds encrypted secrets/);
      return true;
    });
    await assert.rejects(stat(join(dir, 'missing.json')), /ENOENT/);
    const corrupt = join(dir, 'corrupt.json');
    await writeFile(corrupt, '{"version":1,"primary":"nope"');
    await assert.rejects(Secrets.local(corrupt, noSecrets), /not valid JSON/);
    await writeFile(corrupt, JSON.stringify({ version: 1, primary: 'key-20260101T000000Z-00000000', keys: [] }));
    await assert.rejects(Secrets.local(corrupt, noSecrets), /malformed/);
  });

  test('a running process picks up a new primary key without restart', async () => {
    const file = join(dir, 'live.json');
    const secrets = await Secrets.local(file, noSecrets);
    const first = await secrets.primaryKeyId();
    const ctx = { tenant: TENANT, purpose: 'teamcity-credential' as const, record: 'r' };
    const old = await secrets.encrypt('old-secret-1', ctx);
    const added = await addPrimaryKey(file);
    assert.notEqual(added, first);
    assert.equal(await secrets.primaryKeyId(), added);
    const fresh = await secrets.open(await secrets.encrypt('new-secret-1', ctx), ctx);
    assert.deepEqual(fresh, { plaintext: 'new-secret-1', underPrimary: true });
    assert.deepEqual(await secrets.open(old, ctx), { plaintext: 'old-secret-1', underPrimary: false });
  });
});

describe('rotate-keys against PostgreSQL', () => {
  let t: TestDatabase;
  before(async () => {
    t = await createTestDatabase();
  });
  after(() => t.drop());

  test('re-encrypts everything under the new key, leaves no plaintext in the database, and is safe to repeat', async () => {
    const file = join(dir, 'rotate.json');
    const secrets = await Secrets.local(file, { secretsExist: async () => false, recheckMs: 0 });
    const plaintexts: string[] = [];
    const tenants = Array.from({ length: 5 }, (_, i) => `33333333-3333-4333-8333-00000000000${i}`);
    for (const [i, tenant] of tenants.entries()) {
      const shared = `jira-shared-secret-${i}-${'x'.repeat(20)}`;
      const cred = `teamcity-password-${i}-${'y'.repeat(12)}`;
      plaintexts.push(shared, cred);
      await t.db.withTenant(tenant, async (tx) => {
        await tx.query(`INSERT INTO tenants (id, client_key, base_url, shared_secret_ct) VALUES ($1, $2, 'https://s.atlassian.net', $3)`, [
          tenant,
          `ck-${i}`,
          await secrets.encrypt(shared, { tenant, purpose: 'jira-shared-secret', record: tenant }),
        ]);
        const server = '44444444-4444-4444-8444-00000000000' + i;
        await tx.query(
          `INSERT INTO teamcity_servers (tenant_id, id, name, url, auth_type, username, credential_ct) VALUES ($1, $2, 'tc', 'https://tc', 'basic', 'svc', $3)`,
          [tenant, server, await secrets.encrypt(cred, { tenant, purpose: 'teamcity-credential', record: server })],
        );
      });
    }
    const oldKey = await secrets.primaryKeyId();
    const newKey = await addPrimaryKey(file);

    const report = await reencryptAll(t.ownerPool, secrets, quietLog, 3);
    assert.deepEqual(report, { scanned: 10, reencrypted: 10, failed: 0, primaryKey: newKey });
    // Every ciphertext now opens under the primary key, with its own plaintext.
    for (const [i, tenant] of tenants.entries()) {
      const row = await t.db.withTenant(tenant, async (tx) =>
        (await tx.query<{ s: Buffer; c: Buffer; id: string }>(`SELECT t.shared_secret_ct AS s, s.credential_ct AS c, s.id FROM tenants t JOIN teamcity_servers s ON s.tenant_id = t.id`)).rows[0]!,
      );
      assert.deepEqual(await secrets.open(row.s, { tenant, purpose: 'jira-shared-secret', record: tenant }), { plaintext: plaintexts[2 * i], underPrimary: true });
      assert.deepEqual(await secrets.open(row.c, { tenant, purpose: 'teamcity-credential', record: row.id }), { plaintext: plaintexts[2 * i + 1], underPrimary: true });
    }
    // Running it again finds nothing to do.
    assert.deepEqual(await reencryptAll(t.ownerPool, secrets, quietLog), { scanned: 10, reencrypted: 0, failed: 0, primaryKey: newKey });
    // The old key can now be retired, and everything still decrypts.
    assert.deepEqual(await retireOldKeys(file, () => false), [oldKey]);
    assert.deepEqual((await readKeyring(file))!.keys.map((k) => k.name), [newKey]);
    assert.equal(await secrets.decrypt(
      (await t.db.withTenant(tenants[0]!, async (tx) => (await tx.query<{ s: Buffer }>('SELECT shared_secret_ct AS s FROM tenants')).rows[0]!.s)),
      { tenant: tenants[0]!, purpose: 'jira-shared-secret', record: tenants[0]! },
    ), plaintexts[0]);

    // A full dump of the database holds no plaintext secret (pg_dump when installed, else a scan of every table).
    const dump = await dumpDatabase(t);
    for (const p of plaintexts) assert.ok(!dump.includes(p), `plaintext found in dump: ${p}`);
    assert.ok(dump.length > 1000);
  });

  test('every bytea column ending in _ct is covered by rotate-keys', async () => {
    const { rows } = await t.ownerPool.query<{ t: string; c: string }>(
      `SELECT table_name AS t, column_name AS c FROM information_schema.columns WHERE table_schema = 'public' AND data_type = 'bytea' ORDER BY 1, 2`,
    );
    assert.deepEqual(rows.map((r) => `${r.t}.${r.c}`), ENCRYPTED_COLUMNS.map((c) => `${c.table}.${c.column}`).sort());
  });
});

async function dumpDatabase(t: TestDatabase): Promise<string> {
  const admin = new URL(t.adminUrl);
  admin.pathname = `/${t.name}`;
  try {
    const { stdout } = await promisify(execFile)('pg_dump', ['--data-only', admin.toString()], { maxBuffer: 64 * 1024 * 1024 });
    if (stdout.includes('COPY public.tenants')) return stdout;
  } catch {
    // pg_dump missing or older than the server (embedded PostgreSQL 17 vs a client 15): scan instead.
  }
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: admin.toString() });
  await c.connect();
  try {
    const tables = (await c.query<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public'`)).rows.map((r) => r.t);
    let out = '';
    for (const table of tables) {
      const { rows } = await c.query(`SELECT * FROM ${table}`);
      out += JSON.stringify(rows, (_k, v: unknown) => (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' ? Buffer.from((v as { data: number[] }).data).toString('latin1') : v));
    }
    return out;
  } finally {
    await c.end();
  }
}
