// What happens to a tenant's data over time (product.md, "Data retention"): on uninstall Jira deletes
// everything the app sent, and we keep the configuration for 60 days; a reinstall within them brings
// the configuration back and re-sends the history; after them the purge deletes the tenant for good.
import type { Database, Tx } from '../db/database.ts';
import type { Logger } from '../log.ts';
import { POLL_NOW } from '../sync/servers.ts';

/** Default history depth when a tenant had no backfill of its own. */
const DEFAULT_BACKFILL_DAYS = 90;

/**
 * On reinstall after an uninstall: Jira no longer has our data, so every build is to be sent again.
 * Forgetting what was sent (fingerprints) and restarting each server's backfill from its original
 * date makes the poller re-send the history oldest first, with fresh sequence numbers.
 */
export async function resendHistory(tx: Tx): Promise<void> {
  await tx.query('DELETE FROM outbox');
  await tx.query(`UPDATE builds SET fingerprint = '', last_usn = NULL`);
  await tx.query(`UPDATE delivery_state SET paused_until = NULL, last_error = NULL`);
  await tx.query(
    `UPDATE sync_state SET
       backfill_since = coalesce(backfill_since, now() - make_interval(days => $1)),
       backfill_until = NULL, backfill_cursor = NULL, backfill_done = 0,
       backfill_started_at = NULL, backfill_finished_at = NULL, ${POLL_NOW}`,
    [DEFAULT_BACKFILL_DAYS],
  );
}

export interface PurgeReport {
  tenants: number;
  servers: number;
  builds: number;
  deliveries: number;
}

/**
 * Permanently deletes tenants whose retention has run out, in batches, through the one narrowly
 * granted function that may (purge_expired_tenants). Idempotent; safe on several workers at once.
 */
export async function purgeExpiredTenants(db: Database, log: Logger, batch = 100): Promise<PurgeReport> {
  const total: PurgeReport = { tenants: 0, servers: 0, builds: 0, deliveries: 0 };
  for (;;) {
    const { rows } = await db.pool.query<{ tenant_id: string; servers: string; builds: string; deliveries: string }>(
      'SELECT * FROM purge_expired_tenants($1)',
      [batch],
    );
    for (const r of rows) {
      const counts = { servers: Number(r.servers), builds: Number(r.builds), deliveries: Number(r.deliveries) };
      // Ids and counts only: nothing that identifies a person or a site.
      log.info({ tenantId: r.tenant_id, ...counts }, 'purged an uninstalled tenant after its retention period');
      total.tenants++;
      total.servers += counts.servers;
      total.builds += counts.builds;
      total.deliveries += counts.deliveries;
    }
    if (rows.length < batch) return total;
  }
}
