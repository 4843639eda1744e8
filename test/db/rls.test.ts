// Tenant isolation is enforced by PostgreSQL, not by our WHERE clauses: these tests issue queries
// that "forget" the tenant filter and check that RLS still confines them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { Tx } from '../../src/db/database.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

let t: TestDatabase;
const A = '00000000-0000-4000-8000-00000000000a';
const B = '00000000-0000-4000-8000-00000000000b';

async function seedTenant(tx: Tx, id: string, clientKey: string) {
  await tx.query(`INSERT INTO tenants (id, client_key, base_url, shared_secret_ct) VALUES ($1, $2, 'https://x.atlassian.net', '\\x00')`, [id, clientKey]);
  await tx.query(
    `INSERT INTO teamcity_servers (tenant_id, name, url, auth_type, credential_ct) VALUES ($1, 'tc-' || $2, 'https://tc.example.com', 'token', '\\x00')`,
    [id, clientKey],
  );
}

before(async () => {
  t = await createTestDatabase();
  await t.db.withTenant(A, (tx) => seedTenant(tx, A, 'client-a'));
  await t.db.withTenant(B, (tx) => seedTenant(tx, B, 'client-b'));
});
after(() => t.drop());

describe('row level security', () => {
  test('a query without a tenant filter sees only the tenant in force', async () => {
    const rows = await t.db.withTenant(A, async (tx) => (await tx.query('SELECT tenant_id, name FROM teamcity_servers')).rows);
    assert.deepEqual(rows, [{ tenant_id: A, name: 'tc-client-a' }]);
    const tenants = await t.db.withTenant(B, async (tx) => (await tx.query('SELECT id FROM tenants')).rows);
    assert.deepEqual(tenants, [{ id: B }]);
  });

  test("writing another tenant's rows fails or touches nothing", async () => {
    await assert.rejects(
      t.db.withTenant(A, (tx) =>
        tx.query(`INSERT INTO teamcity_servers (tenant_id, name, url, auth_type, credential_ct) VALUES ($1, 'evil', 'https://e', 'token', '\\x00')`, [B]),
      ),
      /row-level security/,
    );
    const updated = await t.db.withTenant(A, (tx) => tx.query(`UPDATE teamcity_servers SET name = 'hijacked' WHERE tenant_id = $1`, [B]));
    assert.equal(updated.rowCount, 0);
    const deleted = await t.db.withTenant(A, (tx) => tx.query(`DELETE FROM tenants WHERE id = $1`, [B]));
    assert.equal(deleted.rowCount, 0);
    // Moving one's own row to another tenant is refused by WITH CHECK.
    await assert.rejects(
      t.db.withTenant(A, (tx) => tx.query(`UPDATE teamcity_servers SET tenant_id = $1`, [B])),
      /row-level security/,
    );
    const names = await t.db.withTenant(B, async (tx) => (await tx.query('SELECT name FROM teamcity_servers')).rows);
    assert.deepEqual(names, [{ name: 'tc-client-b' }]);
  });

  test('with no tenant set, the tenant role sees zero rows', async () => {
    const client = await t.db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL ROLE tcj_tenant');
      assert.equal((await client.query('SELECT * FROM teamcity_servers')).rowCount, 0);
      assert.equal((await client.query('SELECT * FROM tenants')).rowCount, 0);
      await client.query(`SELECT set_config('app.tenant_id', '', true)`);
      assert.equal((await client.query('SELECT * FROM tenants')).rowCount, 0);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
  });

  test('the tenant setting does not leak to the next transaction on the same connection', async () => {
    await t.db.withTenant(A, (tx) => tx.query('SELECT 1'));
    const client = await t.db.pool.connect();
    try {
      const { rows } = await client.query(`SELECT current_user AS u, coalesce(current_setting('app.tenant_id', true), '') AS tenant`);
      assert.deepEqual(rows, [{ u: 'tcj_app', tenant: '' }]);
    } finally {
      client.release();
    }
  });

  test('the runtime role cannot read tenant tables outside withTenant', async () => {
    await assert.rejects(t.db.pool.query('SELECT * FROM teamcity_servers'), /permission denied/);
    await assert.rejects(t.db.pool.query('SELECT * FROM tenants'), /permission denied/);
    await assert.rejects(t.db.pool.query(`INSERT INTO tenants (client_key, base_url, shared_secret_ct) VALUES ('x', 'y', '\\x00')`), /permission denied/);
  });

  test('the runtime role cannot become the owner or disable RLS', async () => {
    const owner = new URL(t.ownerUrl).username;
    await assert.rejects(t.db.pool.query(`SET ROLE ${owner}`), /permission denied/);
    await assert.rejects(t.db.pool.query('SET ROLE tcj_maintenance'), /permission denied/);
    await assert.rejects(
      t.db.withTenant(A, (tx) => tx.query('ALTER TABLE teamcity_servers DISABLE ROW LEVEL SECURITY')),
      /must be owner/,
    );
    await assert.rejects(t.db.withTenant(A, (tx) => tx.query('ALTER TABLE tenants NO FORCE ROW LEVEL SECURITY')), /must be owner/);
    await assert.rejects(t.db.withTenant(A, (tx) => tx.query('DROP POLICY tenant_isolation ON tenants')), /must be owner/);
    // Even by naming itself as a tenant with a forged setting, a session sees only that one tenant.
    const { rows } = await t.db.pool.query<{ rolsuper: boolean; rolbypassrls: boolean; rolinherit: boolean }>(
      `SELECT rolsuper, rolbypassrls, rolinherit FROM pg_roles WHERE rolname = current_user`,
    );
    assert.deepEqual(rows, [{ rolsuper: false, rolbypassrls: false, rolinherit: false }]);
  });

  test('tenant tables have RLS enabled and forced', async () => {
    const { rows } = await t.ownerPool.query<{ relname: string; relrowsecurity: boolean; relforcerowsecurity: boolean }>(
      `SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class
        WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> 'schema_migrations' ORDER BY relname`,
    );
    assert.ok(rows.length >= 2);
    for (const r of rows) assert.deepEqual([r.relname, r.relrowsecurity, r.relforcerowsecurity], [r.relname, true, true]);
  });

  test('the owner, too, sees nothing without the maintenance role (FORCE)', async () => {
    const owner = new pg.Client({ connectionString: t.ownerUrl });
    await owner.connect();
    try {
      const { rows } = await owner.query<{ super: boolean }>(`SELECT rolsuper AS super FROM pg_roles WHERE rolname = current_user`);
      assert.equal(rows[0]!.super, false);
      assert.equal((await owner.query('SELECT * FROM tenants')).rowCount, 0);
      await owner.query('BEGIN');
      await owner.query('SET LOCAL ROLE tcj_maintenance');
      assert.equal((await owner.query('SELECT * FROM tenants')).rowCount, 2);
      await owner.query('ROLLBACK');
    } finally {
      await owner.end();
    }
  });

  test('the client-key lookup function returns only an id, for exactly that key', async () => {
    assert.equal(await t.db.tenantIdForClientKey('client-b'), B);
    assert.equal(await t.db.tenantIdForClientKey('client-x'), undefined);
    const { rows } = await t.db.pool.query<{ any: boolean }>('SELECT any_secret_stored() AS any');
    assert.equal(rows[0]!.any, true);
  });

  test('withTenant refuses a tenant id that is not a UUID', async () => {
    await assert.rejects(t.db.withTenant("' OR true --", (tx) => tx.query('SELECT 1')), /must be a UUID/);
  });

  test('a failing callback rolls back its writes', async () => {
    await assert.rejects(
      t.db.withTenant(A, async (tx) => {
        await tx.query(`UPDATE teamcity_servers SET name = 'renamed'`);
        throw new Error('boom');
      }),
      /boom/,
    );
    const names = await t.db.withTenant(A, async (tx) => (await tx.query('SELECT name FROM teamcity_servers')).rows);
    assert.deepEqual(names, [{ name: 'tc-client-a' }]);
  });
});
