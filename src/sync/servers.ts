// TeamCity server connections of a tenant: configuration, encrypted credentials, health state.
// Every function takes a Tx from withTenant(): the tenant is implied, never passed around.
import type { Tx } from '../db/database.ts';
import type { Secrets } from '../crypto/secrets.ts';

export type ServerAuth = { type: 'basic'; username: string; password: string } | { type: 'token'; token: string };
export type ServerState = 'ok' | 'degraded' | 'failing' | 'auth_failed' | 'paused';

export interface ServerRow {
  id: string;
  tenantId: string;
  name: string;
  url: string;
  authType: 'basic' | 'token';
  username: string | null;
  state: ServerState;
  serverVersion: string | null;
  serviceUser: string | null;
  createdAt: Date;
}

const credentialContext = (tenantId: string, serverId: string) => ({ tenant: tenantId, purpose: 'teamcity-credential' as const, record: serverId });

function toRow(r: Record<string, unknown>): ServerRow {
  return {
    id: r.id as string,
    tenantId: r.tenant_id as string,
    name: r.name as string,
    url: r.url as string,
    authType: r.auth_type as 'basic' | 'token',
    username: (r.username as string | null) ?? null,
    state: r.state as ServerState,
    serverVersion: (r.server_version as string | null) ?? null,
    serviceUser: (r.service_user as string | null) ?? null,
    createdAt: r.created_at as Date,
  };
}

const COLUMNS = 'id, tenant_id, name, url, auth_type, username, state, server_version, service_user, created_at';

export async function createServer(
  tx: Tx,
  secrets: Secrets,
  tenantId: string,
  input: { id: string; name: string; url: string; auth: ServerAuth; serverVersion?: string; serviceUser?: string; serverInternalId?: string },
): Promise<ServerRow> {
  const secret = input.auth.type === 'basic' ? input.auth.password : input.auth.token;
  const ct = await secrets.encrypt(secret, credentialContext(tenantId, input.id));
  const { rows } = await tx.query(
    `INSERT INTO teamcity_servers (tenant_id, id, name, url, auth_type, username, credential_ct, server_version, service_user, server_internal_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ${COLUMNS}`,
    [
      tenantId,
      input.id,
      input.name,
      input.url,
      input.auth.type,
      input.auth.type === 'basic' ? input.auth.username : null,
      ct,
      input.serverVersion ?? null,
      input.serviceUser ?? null,
      input.serverInternalId ?? null,
    ],
  );
  await tx.query(`INSERT INTO sync_state (tenant_id, server_id) VALUES ($1, $2)`, [tenantId, input.id]);
  return toRow(rows[0]!);
}

export async function getServer(tx: Tx, serverId: string): Promise<ServerRow | undefined> {
  const { rows } = await tx.query(`SELECT ${COLUMNS} FROM teamcity_servers WHERE id = $1`, [serverId]);
  return rows[0] ? toRow(rows[0]) : undefined;
}

export async function listServers(tx: Tx): Promise<ServerRow[]> {
  const { rows } = await tx.query(`SELECT ${COLUMNS} FROM teamcity_servers ORDER BY created_at, id`);
  return rows.map(toRow);
}

/** The server with its decrypted credentials, for the TeamCity client. */
export async function getConnection(tx: Tx, secrets: Secrets, serverId: string): Promise<{ server: ServerRow; auth: ServerAuth } | undefined> {
  const { rows } = await tx.query(`SELECT ${COLUMNS}, credential_ct FROM teamcity_servers WHERE id = $1`, [serverId]);
  const r = rows[0];
  if (!r) return undefined;
  const server = toRow(r);
  const secret = await secrets.decrypt(r.credential_ct as Buffer, credentialContext(server.tenantId, server.id));
  const auth: ServerAuth = server.authType === 'basic' ? { type: 'basic', username: server.username!, password: secret } : { type: 'token', token: secret };
  return { server, auth };
}

/**
 * The sync_state SET clause that makes a server due now. A poll in progress keeps its lease and is
 * not overtaken; the lease of one that found nothing to write lapses within seconds (claim_polls).
 */
export const POLL_NOW = 'next_poll_at = now()';

/** Makes a server due now (see POLL_NOW). */
export async function pollNow(tx: Tx, serverId: string): Promise<void> {
  await tx.query(`UPDATE sync_state SET ${POLL_NOW} WHERE server_id = $1`, [serverId]);
}

/** New credentials lift an auth_failed state: polling resumes at once. */
export async function updateCredentials(tx: Tx, secrets: Secrets, tenantId: string, serverId: string, auth: ServerAuth): Promise<void> {
  const secret = auth.type === 'basic' ? auth.password : auth.token;
  const ct = await secrets.encrypt(secret, credentialContext(tenantId, serverId));
  await tx.query(
    `UPDATE teamcity_servers SET auth_type = $2, username = $3, credential_ct = $4,
       state = CASE WHEN state = 'auth_failed' THEN 'ok' ELSE state END, updated_at = now() WHERE id = $1`,
    [serverId, auth.type, auth.type === 'basic' ? auth.username : null, ct],
  );
  await pollNow(tx, serverId);
}

/**
 * The poller's health verdict. A paused server (paused by an admin, or being deleted) stays paused:
 * a poll that was already running when it was paused must not resume it; only `setPaused` does.
 */
export async function setServerState(tx: Tx, serverId: string, state: ServerState): Promise<void> {
  await tx.query(`UPDATE teamcity_servers SET state = $2, updated_at = now() WHERE id = $1 AND state <> $2 AND state <> 'paused'`, [serverId, state]);
}

/** Pauses polling, or resumes it (state ok, polled at once). Returns false if the server does not exist. */
export async function setPaused(tx: Tx, serverId: string, paused: boolean): Promise<boolean> {
  const { rowCount } = await tx.query(
    paused
      ? `UPDATE teamcity_servers SET state = 'paused', updated_at = now() WHERE id = $1`
      : `UPDATE teamcity_servers SET state = CASE WHEN state = 'paused' THEN 'ok' ELSE state END, updated_at = now() WHERE id = $1`,
    [serverId],
  );
  if (!paused) await pollNow(tx, serverId);
  return (rowCount ?? 0) > 0;
}

/**
 * Sends the history since `since` (default 90 days) to Jira, oldest first. The window's upper end is
 * fixed at the next poll (the server's current time then); progress lives in sync_state.
 */
export async function requestBackfill(tx: Tx, serverId: string, since: Date): Promise<void> {
  await tx.query(
    `UPDATE sync_state SET backfill_since = $2, backfill_until = NULL, backfill_cursor = NULL, backfill_done = 0,
       backfill_started_at = NULL, backfill_finished_at = NULL, ${POLL_NOW} WHERE server_id = $1`,
    [serverId, since],
  );
}
