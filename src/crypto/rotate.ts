// `rotate-keys`: re-encrypts every stored secret under the primary key. Rows already under it are
// skipped, so the command is resumable and safe to run twice; each batch commits on its own and an
// update only lands if the row still holds the ciphertext we read (a concurrent change wins).
import type pg from 'pg';
import { withMaintenance } from '../db/database.ts';
import type { Logger } from '../log.ts';
import { addPrimaryKey } from './keyring.ts';
import type { SecretPurpose, Secrets } from './secrets.ts';

/** Every encrypted column in the schema. A new one must be added here (a test checks the schema). */
export const ENCRYPTED_COLUMNS: readonly { table: string; column: string; tenantColumn: string; purpose: SecretPurpose }[] = [
  { table: 'tenants', column: 'shared_secret_ct', tenantColumn: 'id', purpose: 'jira-shared-secret' },
  { table: 'teamcity_servers', column: 'credential_ct', tenantColumn: 'tenant_id', purpose: 'teamcity-credential' },
];

export interface RotationReport {
  scanned: number;
  reencrypted: number;
  failed: number;
  primaryKey: string;
}

export async function reencryptAll(ownerPool: pg.Pool, secrets: Secrets, log: Logger, batchSize = 200): Promise<RotationReport> {
  const report: RotationReport = { scanned: 0, reencrypted: 0, failed: 0, primaryKey: await secrets.primaryKeyId() };
  for (const col of ENCRYPTED_COLUMNS) {
    let after = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      const batch = await withMaintenance(ownerPool, async (tx) => {
        const { rows } = await tx.query<{ id: string; tenant: string; ct: Buffer }>(
          `SELECT id::text AS id, ${col.tenantColumn}::text AS tenant, ${col.column} AS ct
             FROM ${col.table} WHERE id > $1 ORDER BY id LIMIT $2`,
          [after, batchSize],
        );
        for (const row of rows) {
          const ctx = { tenant: row.tenant, purpose: col.purpose, record: row.id };
          try {
            const { plaintext, underPrimary } = await secrets.open(row.ct, ctx);
            if (underPrimary) continue;
            const fresh = await secrets.encrypt(plaintext, ctx);
            const res = await tx.query(`UPDATE ${col.table} SET ${col.column} = $1 WHERE id = $2 AND ${col.column} = $3`, [fresh, row.id, row.ct]);
            report.reencrypted += res.rowCount ?? 0;
          } catch (err) {
            report.failed++;
            log.error({ table: col.table, record: row.id, err }, 'could not re-encrypt a secret');
          }
        }
        return rows;
      });
      report.scanned += batch.length;
      if (batch.length) log.info({ table: col.table, scanned: report.scanned, reencrypted: report.reencrypted }, 'rotate-keys progress');
      if (batch.length < batchSize) break;
      after = batch[batch.length - 1]!.id;
    }
  }
  return report;
}

/**
 * The whole rotation as `tcj rotate-keys` runs it next to live processes: add a new primary key, wait
 * until every running process has re-read the keyring (so none still encrypts under the old key),
 * then re-encrypt everything. `secrets` must read the keyring afresh (its own instance).
 */
export async function rotateLocalKeys(opts: {
  keyringFile: string;
  ownerPool: pg.Pool;
  secrets: Secrets;
  log: Logger;
  addKey: boolean;
  pickupWaitMs: number;
}): Promise<RotationReport> {
  if (opts.addKey) {
    const name = await addPrimaryKey(opts.keyringFile);
    opts.log.info({ key: name, waitMs: opts.pickupWaitMs }, 'added a new primary key; waiting for running processes to pick it up');
    await new Promise((r) => setTimeout(r, opts.pickupWaitMs));
  }
  return reencryptAll(opts.ownerPool, opts.secrets, opts.log);
}
