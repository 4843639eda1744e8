// Delivers a tenant's outbox to its Jira site: per connection and kind, ≤100 entities per request,
// several updates of one entity coalesced to the newest (highest updateSequenceNumber), Jira's
// verdict recorded per entity. A 429 or an outage pauses this tenant only (delivery_state), never a
// worker. Rows leave the outbox only after Jira answered, so a crash at any point re-sends at most
// one batch — harmless, Jira ignores an updateSequenceNumber it already holds.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import type { Database, Tx } from '../db/database.ts';
import { ConnectJwtCredentials } from '../jira/credentials.ts';
import { JiraAuthError, JiraClient, JiraRateLimitedError, type JiraClientOptions } from '../jira/client.ts';
import type { BuildData, DeploymentData, SubmitBuildsResponse, SubmitDeploymentsResponse } from '../jira/models.ts';
import type { Logger } from '../log.ts';
import { entitiesDeliveredTotal } from '../metrics.ts';
import type { TenantRepository } from '../tenants/repository.ts';

export interface DelivererDeps {
  db: Database;
  tenants: TenantRepository;
  appKey: string;
  dispatcher: Dispatcher;
  log: Logger;
  /** Overrides for tests (short timeouts, injected sleep). */
  jiraClient?: Partial<JiraClientOptions>;
  /** Pause after a failed delivery: grows with consecutive failures up to maxPauseMs. */
  basePauseMs?: number;
  maxPauseMs?: number;
  /** Upper bound of requests per lease, so one large outbox cannot hold a worker forever. */
  maxBatchesPerRun?: number;
  /** The lease is extended to this many seconds before every request (default 300, the worker's). */
  leaseSeconds?: number;
  /**
   * A partly filled batch waits until its oldest update is this old (default 0: sent at once), and
   * meanwhile a full batch of another connection or kind goes first: fewer, fuller requests to Jira
   * for at most this much latency.
   */
  lingerMs?: number;
  /** The linger for a connection that is backfilling (more rows are on their way): default lingerMs. */
  backfillLingerMs?: number;
}

interface OutboxRow {
  id: string;
  /** Milliseconds since the row was queued (its transaction's start). */
  age_ms: number;
  /** The row's connection has a backfill in progress. */
  backfilling: boolean;
  server_id: string;
  kind: 'build' | 'deployment';
  entity_key: string;
  build_id: string;
  usn: string;
  payload: BuildData | DeploymentData;
}

interface Batch {
  serverId: string;
  kind: 'build' | 'deployment';
  /** Newest row per entity, in outbox order. */
  entities: OutboxRow[];
  /** Every outbox row the batch settles (superseded rows included). */
  rowIds: string[];
}

export const PROVIDER_METADATA = { product: 'TeamCity' };

/** The first batch of the outbox: the oldest row's connection and kind, coalesced, ≤ max entities. */
export function nextBatch(rows: OutboxRow[], max = 100): Batch | undefined {
  const first = rows[0];
  if (!first) return undefined;
  const same = rows.filter((r) => r.server_id === first.server_id && r.kind === first.kind);
  const newest = new Map<string, OutboxRow>();
  const rowIds: string[] = [];
  for (const r of same) {
    const prev = newest.get(r.entity_key);
    if (!prev && newest.size >= max) continue; // a new entity past the cap waits for the next batch
    rowIds.push(r.id);
    if (!prev || BigInt(r.usn) > BigInt(prev.usn)) newest.set(r.entity_key, r);
  }
  const entities = [...newest.values()].sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
  return { serverId: first.server_id, kind: first.kind, entities, rowIds };
}

interface Verdict {
  entityKey: string;
  accepted: boolean;
  errors: { message: string }[];
}

function buildVerdicts(batch: Batch, res: SubmitBuildsResponse): Verdict[] {
  const key = (pipelineId: string, n: number) => `${pipelineId}/${n}`;
  const rejected = new Map(res.rejectedBuilds.map((r) => [key(r.key.pipelineId, r.key.buildNumber), r.errors]));
  const accepted = new Set(res.acceptedBuilds.map((a) => key(a.pipelineId, a.buildNumber)));
  return batch.entities.map((e) => {
    const b = e.payload as BuildData;
    const k = key(b.pipelineId, b.buildNumber);
    return { entityKey: e.entity_key, accepted: accepted.has(k), errors: rejected.get(k) ?? (accepted.has(k) ? [] : [{ message: 'Jira did not report this build as accepted' }]) };
  });
}

function deploymentVerdicts(batch: Batch, res: SubmitDeploymentsResponse): Verdict[] {
  const key = (p: string, env: string, n: number) => `${p}/${env}/${n}`;
  const rejected = new Map(res.rejectedDeployments.map((r) => [key(r.key.pipelineId, r.key.environmentId, r.key.deploymentSequenceNumber), r.errors]));
  const accepted = new Set(res.acceptedDeployments.map((a) => key(a.pipelineId, a.environmentId, a.deploymentSequenceNumber)));
  return batch.entities.map((e) => {
    const d = e.payload as DeploymentData;
    const k = key(d.pipeline.id, d.environment.id, d.deploymentSequenceNumber);
    return { entityKey: e.entity_key, accepted: accepted.has(k), errors: rejected.get(k) ?? (accepted.has(k) ? [] : [{ message: 'Jira did not report this deployment as accepted' }]) };
  });
}

function issueKeysOf(payload: BuildData | DeploymentData): string[] {
  if ('issueKeys' in payload && payload.issueKeys) return payload.issueKeys;
  const assoc = (payload as DeploymentData).associations ?? [];
  return assoc.flatMap((a) => (a.associationType === 'issueKeys' || a.associationType === 'issueIdOrKeys' ? (a.values) : []));
}

async function settle(tx: Tx, tenantId: string, batch: Batch, verdicts: Verdict[], unknownKeys: string[]): Promise<void> {
  const unknown = new Set(unknownKeys);
  for (const [i, e] of batch.entities.entries()) {
    const v = verdicts[i]!;
    const keys = issueKeysOf(e.payload);
    await tx.query(
      `INSERT INTO deliveries (tenant_id, server_id, kind, build_id, entity_key, usn, issue_keys, verdict, errors, unknown_keys)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [tenantId, e.server_id, e.kind, e.build_id, e.entity_key, e.usn, keys, v.accepted ? 'accepted' : 'rejected', JSON.stringify(v.errors), keys.filter((k) => unknown.has(k))],
    );
  }
  await tx.query('DELETE FROM outbox WHERE id = ANY($1::bigint[])', [batch.rowIds]);
  await tx.query(`UPDATE delivery_state SET last_error = NULL, updated_at = now() WHERE tenant_id = $1`, [tenantId]);
}

async function pause(deps: DelivererDeps, tenantId: string, ms: number, error: string): Promise<void> {
  await deps.db.withTenant(tenantId, (tx) =>
    tx.query(
      `INSERT INTO delivery_state (tenant_id, paused_until, last_error) VALUES ($1, now() + make_interval(secs => $2), $3)
       ON CONFLICT (tenant_id) DO UPDATE SET paused_until = EXCLUDED.paused_until, last_error = EXCLUDED.last_error, updated_at = now()`,
      [tenantId, ms / 1000, error.slice(0, 500)],
    ),
  );
}

/**
 * Before each request: extend this worker's lease, or learn it was lost (a run longer than the
 * lease, another worker took over) and stop — two deliverers of one tenant must never interleave.
 */
async function renewLease(deps: DelivererDeps, tenantId: string, workerId: string): Promise<boolean> {
  const { rowCount } = await deps.db.withTenant(tenantId, (tx) =>
    tx.query(
      `UPDATE delivery_state SET lease_until = now() + make_interval(secs => $3)
        WHERE tenant_id = $1 AND lease_owner = $2 AND lease_until > now()`,
      [tenantId, workerId, deps.leaseSeconds ?? 300],
    ),
  );
  return (rowCount ?? 0) > 0;
}

async function release(deps: DelivererDeps, tenantId: string, workerId: string): Promise<void> {
  await deps.db.withTenant(tenantId, (tx) =>
    tx.query(`UPDATE delivery_state SET lease_owner = NULL, lease_until = NULL WHERE tenant_id = $1 AND lease_owner = $2`, [tenantId, workerId]),
  );
}

export interface DeliveryReport {
  batches: number;
  entities: number;
  accepted: number;
  rejected: number;
  paused?: string;
}

// The rows of one connection and kind, oldest first. Nothing more goes to Jira for a server being
// removed (its data there is being deleted). Reading one group, not the whole outbox, keeps a group
// from being cut short by other connections' rows interleaved with it (partly filled batches).
const groupRows = (group: string) => `
  WITH g AS (SELECT x.server_id, x.kind,
                    EXISTS (SELECT 1 FROM sync_state ss WHERE ss.server_id = x.server_id
                               AND ss.backfill_since IS NOT NULL AND ss.backfill_finished_at IS NULL) AS backfilling
               FROM (${group}) x)
  SELECT o.id::text, o.server_id, o.kind, o.entity_key, o.build_id::text, o.usn::text, o.payload,
         (extract(epoch FROM now() - o.created_at) * 1000)::float8 AS age_ms, g.backfilling
    FROM outbox o JOIN g ON o.server_id = g.server_id AND o.kind = g.kind
   ORDER BY o.id LIMIT 1000`;
const OLDEST_GROUP = `SELECT o1.server_id, o1.kind FROM outbox o1 JOIN teamcity_servers s1 ON s1.id = o1.server_id
                       WHERE s1.deleting_at IS NULL ORDER BY o1.id LIMIT 1`;
const OLDEST_FULL_GROUP = `SELECT o1.server_id, o1.kind FROM outbox o1 JOIN teamcity_servers s1 ON s1.id = o1.server_id
                            WHERE s1.deleting_at IS NULL GROUP BY o1.server_id, o1.kind
                           HAVING count(*) >= 100 ORDER BY min(o1.id) LIMIT 1`;

/**
 * The next batch to send: the oldest group's, unless it is partly filled and younger than the
 * linger — then the oldest full group's, or, with none, how long to wait for the partial one. A
 * backfilling connection lingers longer: its next window is on its way.
 */
async function readBatch(tx: Tx, linger: { lingerMs: number; backfillLingerMs: number }): Promise<Batch | { waitMs: number } | undefined> {
  const rows = (await tx.query<OutboxRow>(groupRows(OLDEST_GROUP))).rows;
  const batch = nextBatch(rows);
  if (!batch || batch.entities.length >= 100) return batch;
  const lingerMs = rows[0]!.backfilling ? linger.backfillLingerMs : linger.lingerMs;
  if (lingerMs <= 0) return batch;
  const oldestAge = rows[0]!.age_ms;
  if (oldestAge >= lingerMs) return batch;
  const full = nextBatch((await tx.query<OutboxRow>(groupRows(OLDEST_FULL_GROUP))).rows);
  return full && full.entities.length >= 100 ? full : { waitMs: Math.max(10, lingerMs - oldestAge) };
}

/** Delivers what the tenant's outbox holds (bounded per call). The caller holds the tenant's lease. */
export async function deliverTenant(deps: DelivererDeps, tenantId: string, workerId: string): Promise<DeliveryReport> {
  const report: DeliveryReport = { batches: 0, entities: 0, accepted: 0, rejected: 0 };
  const log = deps.log.child({ tenantId });
  try {
    const tenant = await deps.tenants.authById(tenantId);
    if (!tenant || tenant.state !== 'installed') return report;
    const client = new JiraClient({
      baseUrl: tenant.baseUrl,
      credentials: new ConnectJwtCredentials(deps.appKey, tenant.sharedSecret),
      dispatcher: deps.dispatcher,
      log,
      onAuthFailure: (status, detail) => deps.tenants.recordJiraAuthFailure(tenantId, `Jira answered ${status} to ${detail.method} ${detail.endpoint}: ${detail.message}`, tenant.secretVersion),
      ...deps.jiraClient,
    });
    const maxBatches = deps.maxBatchesPerRun ?? 50;
    const linger = { lingerMs: deps.lingerMs ?? 0, backfillLingerMs: deps.backfillLingerMs ?? deps.lingerMs ?? 0 };
    while (report.batches < maxBatches) {
      if (!(await renewLease(deps, tenantId, workerId))) {
        log.warn('delivery lease lost; another worker continues');
        break;
      }
      const batch = await deps.db.withTenant(tenantId, (tx) => readBatch(tx, linger));
      if (!batch) break;
      if ('waitMs' in batch) {
        await sleep(batch.waitMs);
        continue;
      }
      let verdicts: Verdict[];
      let unknownKeys: string[];
      try {
        const properties = { connectionId: batch.serverId };
        if (batch.kind === 'build') {
          const res = await client.submitBuilds({ properties, providerMetadata: PROVIDER_METADATA, builds: batch.entities.map((e) => e.payload as BuildData) });
          verdicts = buildVerdicts(batch, res);
          unknownKeys = res.unknownIssueKeys ?? [];
        } else {
          const res = await client.submitDeployments({ properties, providerMetadata: PROVIDER_METADATA, deployments: batch.entities.map((e) => e.payload as DeploymentData) });
          verdicts = deploymentVerdicts(batch, res);
          unknownKeys = res.unknownIssueKeys ?? [];
        }
      } catch (err) {
        if (err instanceof JiraRateLimitedError) {
          report.paused = `rate limited by Jira for ${Math.ceil(err.retryAfterMs / 1000)} s`;
          await pause(deps, tenantId, err.retryAfterMs, report.paused);
        } else if (err instanceof JiraAuthError) {
          report.paused = `Jira refused the app's credentials (${err.status})`; // recorded on the tenant by onAuthFailure
        } else {
          const failures = await deps.db.withTenant(tenantId, async (tx) =>
            (await tx.query<{ n: number }>(`UPDATE outbox SET attempts = attempts + 1 WHERE id = ANY($1::bigint[]) RETURNING attempts AS n`, [batch.rowIds])).rows,
          );
          const attempts = Math.max(1, ...failures.map((f) => f.n));
          const ms = Math.min(deps.maxPauseMs ?? 15 * 60_000, (deps.basePauseMs ?? 5_000) * 2 ** Math.min(attempts - 1, 10));
          report.paused = `delivery failed: ${(err as Error).message}`;
          await pause(deps, tenantId, ms, report.paused);
        }
        log.warn({ reason: report.paused }, 'delivery paused for this tenant');
        break;
      }
      await deps.db.withTenant(tenantId, (tx) => settle(tx, tenantId, batch, verdicts, unknownKeys));
      report.batches++;
      report.entities += batch.entities.length;
      const accepted = verdicts.filter((v) => v.accepted).length;
      report.accepted += accepted;
      report.rejected += verdicts.length - accepted;
      entitiesDeliveredTotal.inc({ kind: batch.kind, verdict: 'accepted' }, accepted);
      entitiesDeliveredTotal.inc({ kind: batch.kind, verdict: 'rejected' }, verdicts.length - accepted);
    }
    if (report.entities) log.info(report, 'delivered to Jira');
    return report;
  } finally {
    await release(deps, tenantId, workerId).catch((err: unknown) => log.warn({ err }, 'could not release the delivery lease'));
  }
}
