// Tenants = Jira site installations, keyed by Connect clientKey. The shared secret is stored only as
// ciphertext bound to the tenant. All access goes through withTenant(); the only cross-tenant step is
// the clientKey → tenant id lookup function.
import { randomUUID } from 'node:crypto';
import type { Database, Tx } from '../db/database.ts';
import type { Secrets } from '../crypto/secrets.ts';

/** Retention after uninstall (product.md: 60 days, then purged). */
export const RETENTION_DAYS = 60;

export interface InstallRecord {
  clientKey: string;
  sharedSecret: string;
  baseUrl: string;
  displayUrl?: string | undefined;
  installationId?: string | undefined;
}

export interface TenantAuth {
  tenantId: string;
  clientKey: string;
  baseUrl: string;
  state: 'installed' | 'uninstalled';
  enabled: boolean;
  sharedSecret: string;
  /** Identifies this shared secret (a hash of its ciphertext): a later install replaces it. */
  secretVersion: string;
}

const secretContext = (tenantId: string) => ({ tenant: tenantId, purpose: 'jira-shared-secret' as const, record: tenantId });

export class TenantRepository {
  constructor(
    private readonly db: Database,
    private readonly secrets: Secrets,
  ) {}

  /**
   * Records a verified `installed` event: creates the tenant, or (reinstall) overwrites its secret and
   * base URL and cancels a pending uninstall. Returns the tenant id and whether it already existed.
   */
  async recordInstall(
    rec: InstallRecord,
    /** Runs in the same transaction when an uninstalled tenant comes back within its retention period. */
    onRestore?: (tx: Tx) => Promise<void>,
  ): Promise<{ tenantId: string; reinstall: boolean; restored: boolean }> {
    for (let attempt = 0; ; attempt++) {
      const existing = await this.db.tenantIdForClientKey(rec.clientKey);
      const tenantId = existing ?? randomUUID();
      const ciphertext = await this.secrets.encrypt(rec.sharedSecret, secretContext(tenantId));
      try {
        const restored = await this.db.withTenant(tenantId, async (tx) => {
          const before = (await tx.query<{ state: string }>('SELECT state FROM tenants FOR UPDATE')).rows[0]?.state;
          await tx.query(
            `INSERT INTO tenants (id, client_key, base_url, display_url, shared_secret_ct, installation_id)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET
               base_url = EXCLUDED.base_url, display_url = EXCLUDED.display_url,
               shared_secret_ct = EXCLUDED.shared_secret_ct,
               installation_id = coalesce(EXCLUDED.installation_id, tenants.installation_id),
               state = 'installed', enabled = true, installed_at = now(),
               uninstalled_at = NULL, purge_after = NULL,
               jira_auth_failed_at = NULL, jira_auth_error = NULL, updated_at = now()`,
            [tenantId, rec.clientKey, rec.baseUrl, rec.displayUrl ?? null, ciphertext, rec.installationId ?? null],
          );
          if (before === 'uninstalled' && onRestore) await onRestore(tx);
          return before === 'uninstalled';
        });
        return { tenantId, reinstall: existing !== undefined, restored };
      } catch (err) {
        // Two first installs of one clientKey racing: the loser sees the winner's row next time round.
        if ((err as { code?: string }).code === '23505' && attempt === 0) continue;
        throw err;
      }
    }
  }

  /** Uninstall keeps the data for RETENTION_DAYS (a reinstall restores it), then the purge deletes it. */
  async recordUninstall(tenantId: string): Promise<void> {
    await this.db.withTenant(tenantId, (tx) =>
      tx.query(
        `UPDATE tenants SET state = 'uninstalled', uninstalled_at = now(),
           purge_after = now() + make_interval(days => $1), updated_at = now()`,
        [RETENTION_DAYS],
      ),
    );
  }

  async recordEnabled(tenantId: string, enabled: boolean): Promise<void> {
    await this.db.withTenant(tenantId, (tx) =>
      tx.query(`UPDATE tenants SET enabled = $1, enabled_changed_at = now(), updated_at = now()`, [enabled]),
    );
  }

  /**
   * Jira refused our credentials: delivery to this site waits until the next install. Only if the
   * refused secret is still the stored one — during a reinstall Jira refuses the old secret for a
   * moment, and flagging then would pause a tenant whose new secret is fine.
   */
  async recordJiraAuthFailure(tenantId: string, detail: string, secretVersion: string): Promise<void> {
    await this.db.withTenant(tenantId, (tx) =>
      tx.query(
        `UPDATE tenants SET jira_auth_failed_at = now(), jira_auth_error = $1, updated_at = now()
          WHERE encode(sha256(shared_secret_ct), 'hex') = $2`,
        [detail.slice(0, 500), secretVersion],
      ),
    );
  }

  /** What request authentication needs, with the shared secret decrypted; undefined if unknown. */
  async authByClientKey(clientKey: string): Promise<TenantAuth | undefined> {
    const tenantId = await this.db.tenantIdForClientKey(clientKey);
    if (!tenantId) return undefined;
    return this.db.withTenant(tenantId, (tx) => this.load(tx, tenantId));
  }

  async authById(tenantId: string): Promise<TenantAuth | undefined> {
    return this.db.withTenant(tenantId, (tx) => this.load(tx, tenantId));
  }

  private async load(tx: Tx, tenantId: string): Promise<TenantAuth | undefined> {
    const { rows } = await tx.query<{ client_key: string; base_url: string; state: 'installed' | 'uninstalled'; enabled: boolean; ct: Buffer; version: string }>(
      `SELECT client_key, base_url, state, enabled, shared_secret_ct AS ct, encode(sha256(shared_secret_ct), 'hex') AS version FROM tenants`,
    );
    const row = rows[0];
    if (!row) return undefined;
    return {
      tenantId,
      clientKey: row.client_key,
      baseUrl: row.base_url,
      state: row.state,
      enabled: row.enabled,
      sharedSecret: await this.secrets.decrypt(row.ct, secretContext(tenantId)),
      secretVersion: row.version,
    };
  }
}
