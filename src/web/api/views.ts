// Read models of the admin API: the `Server` shape (design.md §4) and the status of one server. Every
// query runs inside withTenant(), so another tenant's rows are invisible (RLS), not filtered.
import type { Tx } from '../../db/database.ts';
import type { ServerState } from '../../sync/servers.ts';

export interface ServerView {
  id: string;
  name: string;
  url: string;
  auth: { type: 'basic' | 'token'; username?: string };
  state: ServerState;
  paused: boolean;
  version: string | null;
  serviceUser: string | null;
  createdAt: Date;
  lastSuccessfulPoll: Date | null;
  lastPoll: Date | null;
  lastError: string | null;
  consecutiveFailures: number;
  /** Set while the server is being removed (its Jira data could not be deleted yet). */
  deletion: { requestedAt: Date; lastError: string | null } | null;
}

interface ServerRowDb {
  id: string;
  name: string;
  url: string;
  auth_type: 'basic' | 'token';
  username: string | null;
  state: ServerState;
  server_version: string | null;
  service_user: string | null;
  created_at: Date;
  deleting_at: Date | null;
  deletion_error: string | null;
  last_success_at: Date | null;
  last_poll_at: Date | null;
  last_error: string | null;
  consecutive_failures: number | null;
}

const SERVER_SELECT = `
  SELECT s.id, s.name, s.url, s.auth_type, s.username, s.state, s.server_version, s.service_user, s.created_at,
         s.deleting_at, s.deletion_error, ss.last_success_at, ss.last_poll_at, ss.last_error, ss.consecutive_failures
    FROM teamcity_servers s LEFT JOIN sync_state ss ON ss.server_id = s.id`;

function toView(r: ServerRowDb): ServerView {
  return {
    id: r.id,
    name: r.name,
    url: r.url,
    auth: r.auth_type === 'basic' ? { type: 'basic', username: r.username ?? '' } : { type: 'token' },
    state: r.state,
    paused: r.state === 'paused',
    version: r.server_version,
    serviceUser: r.service_user,
    createdAt: r.created_at,
    lastSuccessfulPoll: r.last_success_at,
    lastPoll: r.last_poll_at,
    lastError: r.last_error,
    consecutiveFailures: r.consecutive_failures ?? 0,
    deletion: r.deleting_at ? { requestedAt: r.deleting_at, lastError: r.deletion_error } : null,
  };
}

export async function listServerViews(tx: Tx): Promise<ServerView[]> {
  const { rows } = await tx.query<ServerRowDb>(`${SERVER_SELECT} ORDER BY s.created_at, s.id`);
  return rows.map(toView);
}

export async function serverView(tx: Tx, serverId: string): Promise<ServerView | undefined> {
  const { rows } = await tx.query<ServerRowDb>(`${SERVER_SELECT} WHERE s.id = $1`, [serverId]);
  return rows[0] ? toView(rows[0]) : undefined;
}

export interface ServerStatus {
  state: ServerState;
  lastSuccessfulPoll: Date | null;
  lastPoll: Date | null;
  lastError: string | null;
  consecutiveFailures: number;
  nextPoll: Date | null;
  counts: { builds: number; sent24h: number; rejected24h: number; pendingDeliveries: number };
  backfill: {
    since: Date;
    until: Date | null;
    cursor: Date | null;
    done: number;
    progress: number;
    startedAt: Date | null;
    finishedAt: Date | null;
  } | null;
  delivery: DeliveryHealth;
  deletion: ServerView['deletion'];
}

/** Backfill progress in 0..1: where the cursor stands between since and until. */
export function backfillProgress(since: Date, until: Date | null, cursor: Date | null, finishedAt: Date | null): number {
  if (finishedAt) return 1;
  if (!until) return 0;
  const span = until.getTime() - since.getTime();
  // The window is empty (TeamCity's clock is behind the chosen start): nothing to send.
  if (span <= 0) return 1;
  if (!cursor) return 0;
  return Math.min(1, Math.max(0, (cursor.getTime() - since.getTime()) / span));
}

/** How delivery to the tenant's Jira stands: a pause in force, the last error, Jira refusing the app. */
export interface DeliveryHealth {
  pausedUntil: Date | null;
  lastError: string | null;
  jiraAuthError: string | null;
}

export async function deliveryHealth(tx: Tx): Promise<DeliveryHealth> {
  const d = (
    await tx.query<{ paused_until: Date | null; last_error: string | null; jira_auth_error: string | null }>(
      `SELECT CASE WHEN d.paused_until > now() THEN d.paused_until END AS paused_until, d.last_error,
              CASE WHEN t.jira_auth_failed_at IS NOT NULL THEN t.jira_auth_error END AS jira_auth_error
         FROM tenants t LEFT JOIN delivery_state d ON d.tenant_id = t.id`,
    )
  ).rows[0];
  return { pausedUntil: d?.paused_until ?? null, lastError: d?.last_error ?? null, jiraAuthError: d?.jira_auth_error ?? null };
}

export async function serverStatus(tx: Tx, serverId: string): Promise<ServerStatus | undefined> {
  const { rows } = await tx.query<{
    state: ServerState;
    deleting_at: Date | null;
    deletion_error: string | null;
    last_success_at: Date | null;
    last_poll_at: Date | null;
    last_error: string | null;
    consecutive_failures: number | null;
    next_poll_at: Date | null;
    backfill_since: Date | null;
    backfill_until: Date | null;
    backfill_cursor: Date | null;
    backfill_done: number | null;
    backfill_started_at: Date | null;
    backfill_finished_at: Date | null;
    builds: string;
    sent24h: string;
    rejected24h: string;
    pending: string;
  }>(
    `SELECT s.state, s.deleting_at, s.deletion_error, ss.last_success_at, ss.last_poll_at, ss.last_error, ss.consecutive_failures,
            ss.next_poll_at, ss.backfill_since, ss.backfill_until, ss.backfill_cursor, ss.backfill_done,
            ss.backfill_started_at, ss.backfill_finished_at,
            (SELECT count(*) FROM builds b WHERE b.server_id = s.id) AS builds,
            (SELECT count(*) FROM deliveries d WHERE d.server_id = s.id AND d.verdict = 'accepted' AND d.delivered_at > now() - interval '24 hours') AS sent24h,
            (SELECT count(*) FROM deliveries d WHERE d.server_id = s.id AND d.verdict = 'rejected' AND d.delivered_at > now() - interval '24 hours') AS rejected24h,
            (SELECT count(*) FROM outbox o WHERE o.server_id = s.id) AS pending
       FROM teamcity_servers s LEFT JOIN sync_state ss ON ss.server_id = s.id
      WHERE s.id = $1`,
    [serverId],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    state: r.state,
    lastSuccessfulPoll: r.last_success_at,
    lastPoll: r.last_poll_at,
    lastError: r.last_error,
    consecutiveFailures: r.consecutive_failures ?? 0,
    nextPoll: r.state === 'paused' || r.state === 'auth_failed' ? null : r.next_poll_at,
    counts: { builds: Number(r.builds), sent24h: Number(r.sent24h), rejected24h: Number(r.rejected24h), pendingDeliveries: Number(r.pending) },
    backfill: r.backfill_since
      ? {
          since: r.backfill_since,
          until: r.backfill_until,
          cursor: r.backfill_cursor,
          done: r.backfill_done ?? 0,
          progress: backfillProgress(r.backfill_since, r.backfill_until, r.backfill_cursor, r.backfill_finished_at),
          startedAt: r.backfill_started_at,
          finishedAt: r.backfill_finished_at,
        }
      : null,
    delivery: await deliveryHealth(tx),
    deletion: r.deleting_at ? { requestedAt: r.deleting_at, lastError: r.deletion_error } : null,
  };
}
