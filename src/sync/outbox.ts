// Writing to the outbox. Called inside the same withTenant() transaction that records the build and
// advances the poll cursor, so a crash either keeps both or neither (design.md §5).
import type { Tx } from '../db/database.ts';
import type { BuildData, DeploymentData } from '../jira/models.ts';

/**
 * `n` consecutive updateSequenceNumbers, in one statement: never below the current time in
 * microseconds, and strictly above the previous one (a database sequence). Time keeps them
 * increasing after a database restore rewinds the sequence (Jira would ignore numbers it has seen);
 * the sequence keeps them increasing if the clock steps back. Two processes may draw equal numbers
 * only for different builds, which is harmless.
 */
export async function reserveUpdateSequences(tx: Tx, n: number): Promise<number[]> {
  if (n <= 0) return [];
  const { rows } = await tx.query<{ last: string }>(
    `SELECT setval('update_sequence', greatest(nextval('update_sequence'), (extract(epoch from clock_timestamp()) * 1000000)::bigint) + $1 - 1)::text AS last`,
    [n],
  );
  const last = Number(rows[0]!.last);
  return Array.from({ length: n }, (_, i) => last - n + 1 + i);
}

export function buildEntityKey(b: Pick<BuildData, 'pipelineId' | 'buildNumber'>): string {
  return `build:${b.pipelineId}/${b.buildNumber}`;
}

export function deploymentEntityKey(d: Pick<DeploymentData, 'pipeline' | 'environment' | 'deploymentSequenceNumber'>): string {
  return `deployment:${d.pipeline.id}/${d.environment.id}/${d.deploymentSequenceNumber}`;
}

export type OutboxEntry = { buildId: number } & ({ kind: 'build'; payload: BuildData } | { kind: 'deployment'; payload: DeploymentData });

/** Queues Jira entities in the given order (the outbox is delivered in id order), in one statement. */
export async function enqueue(tx: Tx, tenantId: string, serverId: string, entries: readonly OutboxEntry[]): Promise<void> {
  if (!entries.length) return;
  const rows = entries.map((e) => ({
    kind: e.kind,
    entity_key: e.kind === 'build' ? buildEntityKey(e.payload) : deploymentEntityKey(e.payload),
    build_id: e.buildId,
    usn: e.payload.updateSequenceNumber,
    payload: e.payload,
  }));
  await tx.query(
    `INSERT INTO outbox (tenant_id, server_id, kind, entity_key, build_id, usn, payload)
     SELECT $1, $2, e->>'kind', e->>'entity_key', (e->>'build_id')::bigint, (e->>'usn')::bigint, e->'payload'
       FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS r(e, n)
      ORDER BY n`,
    [tenantId, serverId, JSON.stringify(rows)],
  );
}
