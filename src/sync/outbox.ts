// Writing to the outbox. Called inside the same withTenant() transaction that records the build and
// advances the poll cursor, so a crash either keeps both or neither (design.md §5).
import type { Tx } from '../db/database.ts';
import type { BuildData, DeploymentData } from '../jira/models.ts';

/**
 * The next updateSequenceNumber: never below the current time in microseconds, and strictly above
 * the previous one (a database sequence). Time keeps it increasing after a database restore rewinds
 * the sequence (Jira would ignore numbers it has seen); the sequence keeps it increasing if the clock
 * steps back. Two processes may draw equal numbers only for different builds, which is harmless.
 */
export async function nextUpdateSequence(tx: Tx): Promise<number> {
  const { rows } = await tx.query<{ n: string }>(
    `SELECT setval('update_sequence', greatest(nextval('update_sequence'), (extract(epoch from clock_timestamp()) * 1000000)::bigint))::text AS n`,
  );
  return Number(rows[0]!.n);
}

export function buildEntityKey(b: Pick<BuildData, 'pipelineId' | 'buildNumber'>): string {
  return `build:${b.pipelineId}/${b.buildNumber}`;
}

export function deploymentEntityKey(d: Pick<DeploymentData, 'pipeline' | 'environment' | 'deploymentSequenceNumber'>): string {
  return `deployment:${d.pipeline.id}/${d.environment.id}/${d.deploymentSequenceNumber}`;
}

export async function enqueue(
  tx: Tx,
  tenantId: string,
  serverId: string,
  buildId: number,
  entity: { kind: 'build'; payload: BuildData } | { kind: 'deployment'; payload: DeploymentData },
): Promise<void> {
  const key = entity.kind === 'build' ? buildEntityKey(entity.payload) : deploymentEntityKey(entity.payload);
  await tx.query(`INSERT INTO outbox (tenant_id, server_id, kind, entity_key, build_id, usn, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
    tenantId,
    serverId,
    entity.kind,
    key,
    buildId,
    entity.payload.updateSequenceNumber,
    JSON.stringify(entity.payload),
  ]);
}
