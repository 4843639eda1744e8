// Removing a TeamCity server (product.md complaint 15): polling stops at once, its builds and
// deployments are deleted from Jira by property (`connectionId`, sent on every submit by the
// deliverer), and only then do the local rows and the encrypted credentials go. The intent is
// recorded first (`teamcity_servers.deleting_at`), so a Jira outage or a crash leaves a pending
// deletion that `retryPendingDeletions` (run by the worker) completes later.
import type { Database } from '../../db/database.ts';
import type { JiraClient } from '../../jira/client.ts';
import type { Logger } from '../../log.ts';
import { tenantJiraClient, type TenantJiraDeps } from './authz.ts';

export type DeletionDeps = TenantJiraDeps & { db: Database; log: Logger };

/**
 * Step 1, in one transaction: the server is paused (the poller's claim skips it), marked for deletion,
 * and its undelivered Jira updates are dropped so the deliverer does not send them after the delete.
 * Returns false when the server does not exist (for this tenant).
 */
export async function markForDeletion(db: Database, tenantId: string, serverId: string): Promise<boolean> {
  return db.withTenant(tenantId, async (tx) => {
    const { rowCount } = await tx.query(
      `UPDATE teamcity_servers SET state = 'paused', deleting_at = coalesce(deleting_at, now()), updated_at = now() WHERE id = $1`,
      [serverId],
    );
    if (!rowCount) return false;
    await tx.query(`DELETE FROM outbox WHERE server_id = $1`, [serverId]);
    return true;
  });
}

/**
 * Steps 2 and 3: deletes the server's entities from Jira, then its rows (builds, deliveries, sync
 * state and credentials go with it by cascade). On a Jira failure the server stays marked, with the
 * reason, and 'pending' is returned.
 */
export async function completeDeletion(deps: DeletionDeps, tenantId: string, serverId: string, jira: JiraClient): Promise<'deleted' | 'pending'> {
  const log = deps.log.child({ tenantId, serverId });
  try {
    const properties = { connectionId: serverId };
    await jira.deleteBuildsByProperties(properties);
    await jira.deleteDeploymentsByProperties(properties);
  } catch (err) {
    const message = `deleting the server's data from Jira failed: ${(err as Error).message}`.slice(0, 500);
    log.warn({ err }, 'server deletion pending: Jira did not accept the deletion');
    await deps.db.withTenant(tenantId, (tx) =>
      tx.query(`UPDATE teamcity_servers SET deletion_error = $2, updated_at = now() WHERE id = $1 AND deleting_at IS NOT NULL`, [serverId, message]),
    );
    return 'pending';
  }
  await deps.db.withTenant(tenantId, (tx) => tx.query(`DELETE FROM teamcity_servers WHERE id = $1 AND deleting_at IS NOT NULL`, [serverId]));
  log.info('server removed; its builds and deployments were deleted from Jira');
  return 'deleted';
}

export interface PendingDeletionsReport {
  deleted: string[];
  pending: string[];
}

/** Completes every pending server deletion of a tenant (the worker calls this; safe to repeat or run concurrently). */
export async function retryPendingDeletions(deps: DeletionDeps, tenantId: string): Promise<PendingDeletionsReport> {
  const report: PendingDeletionsReport = { deleted: [], pending: [] };
  const ids = await deps.db.withTenant(tenantId, async (tx) =>
    (await tx.query<{ id: string }>(`SELECT id FROM teamcity_servers WHERE deleting_at IS NOT NULL ORDER BY deleting_at`)).rows.map((r) => r.id),
  );
  if (ids.length === 0) return report;
  let jira: JiraClient;
  try {
    jira = await tenantJiraClient(deps, tenantId, 'background');
  } catch (err) {
    deps.log.warn({ err, tenantId }, 'pending server deletions wait: no Jira client for this tenant');
    return { deleted: [], pending: ids };
  }
  for (const id of ids) {
    // Re-marking also drops outbox rows a poll in flight may have queued since.
    await markForDeletion(deps.db, tenantId, id);
    report[(await completeDeletion(deps, tenantId, id, jira)) === 'deleted' ? 'deleted' : 'pending'].push(id);
  }
  return report;
}

/** Tenants with a pending server deletion (cross-tenant, through the narrowly granted function of 0004). */
export async function tenantsWithPendingDeletions(db: Database, max = 100): Promise<string[]> {
  const { rows } = await db.pool.query<{ tenant_id: string }>('SELECT tenant_id FROM tenants_with_pending_deletions($1)', [max]);
  return rows.map((r) => r.tenant_id);
}
