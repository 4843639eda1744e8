// Read-only queries behind the activity log and the project overview. All run inside withTenant().
import type { Tx } from '../../db/database.ts';
import { previewEnvironments } from '../../sync/environments.ts';
import { parseRules } from '../../sync/rules.ts';
import type { TcBuildTypeKind, TcBuildTypeRef } from '../../teamcity/types.ts';

export interface ActivityItem {
  id: number;
  at: Date;
  serverId: string;
  serverName: string;
  kind: 'build' | 'deployment';
  buildId: number;
  entityKey: string;
  issueKeys: string[];
  verdict: 'accepted' | 'rejected';
  /** Jira's messages, verbatim. */
  errors: unknown[];
  unknownKeys: string[];
}

export interface ActivityFilter {
  serverId?: string | undefined;
  issueKey?: string | undefined;
  outcome?: 'accepted' | 'rejected' | undefined;
  limit: number;
  before?: number | undefined;
}

export async function activity(tx: Tx, f: ActivityFilter): Promise<ActivityItem[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (f.serverId) where.push(`d.server_id = $${params.push(f.serverId)}`);
  if (f.issueKey) where.push(`d.issue_keys @> ARRAY[$${params.push(f.issueKey)}::text]`);
  if (f.outcome) where.push(`d.verdict = $${params.push(f.outcome)}`);
  if (f.before) where.push(`d.id < $${params.push(f.before)}`);
  const { rows } = await tx.query<{
    id: string;
    delivered_at: Date;
    server_id: string;
    server_name: string;
    kind: 'build' | 'deployment';
    build_id: string;
    entity_key: string;
    issue_keys: string[];
    verdict: 'accepted' | 'rejected';
    errors: unknown[];
    unknown_keys: string[];
  }>(
    `SELECT d.id::text, d.delivered_at, d.server_id, s.name AS server_name, d.kind, d.build_id::text, d.entity_key, d.issue_keys,
            d.verdict, d.errors, d.unknown_keys
       FROM deliveries d JOIN teamcity_servers s ON s.id = d.server_id
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY d.delivered_at DESC, d.id DESC
      LIMIT $${params.push(f.limit)}`,
    params,
  );
  return rows.map((r) => ({
    id: Number(r.id),
    at: r.delivered_at,
    serverId: r.server_id,
    serverName: r.server_name,
    kind: r.kind,
    buildId: Number(r.build_id),
    entityKey: r.entity_key,
    issueKeys: r.issue_keys,
    verdict: r.verdict,
    errors: r.errors,
    unknownKeys: r.unknown_keys,
  }));
}

export interface OverviewBuild {
  serverId: string;
  serverName: string;
  buildId: number;
  kind: 'build' | 'deployment';
  buildTypeId: string;
  configurationName: string | null;
  number: string | null;
  branch: string | null;
  state: string;
  environmentId: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** This project's keys only (other projects' keys are not shown to a project admin). */
  issueKeys: string[];
  verdict: 'accepted' | 'rejected' | 'pending' | 'not_sent';
}

export interface EnvironmentMapping {
  serverId: string;
  serverName: string;
  buildTypeId: string;
  configurationName: string | null;
  projectName: string | null;
  environmentId: string | null;
  /** How the current rules name and type this configuration's environment. */
  environment: { displayName: string; type: string; note: string } | null;
  lastDeployment: { buildId: number; state: string; at: Date | null };
}

export interface ProjectOverview {
  project: { id: string; key: string; name: string };
  builds: OverviewBuild[];
  deployments: OverviewBuild[];
  environments: EnvironmentMapping[];
}

interface OverviewRow {
  server_id: string;
  server_name: string;
  build_id: string;
  kind: 'build' | 'deployment';
  build_type_id: string;
  bt_name: string | null;
  number: string | null;
  branch: string | null;
  jira_state: string;
  environment_id: string | null;
  started_at: Date | null;
  finished_at: Date | null;
  keys: string[];
  pending: boolean;
  verdict: 'accepted' | 'rejected' | null;
}

/** Recent builds and deployments with keys of one project (`KEY-…`), and the deployment environments seen. */
export async function projectOverview(tx: Tx, project: { id: string; key: string; name: string }, limit = 50): Promise<ProjectOverview> {
  const prefix = `${project.key.toUpperCase()}-`;
  const select = (kind: 'build' | 'deployment') =>
    tx.query<OverviewRow>(
      `SELECT b.server_id, s.name AS server_name, b.build_id::text, b.kind, b.build_type_id, bt.name AS bt_name, b.number, b.branch,
              b.jira_state, b.environment_id, b.started_at, b.finished_at,
              ARRAY(SELECT k FROM unnest(b.issue_keys) k WHERE left(k, length($1)) = $1) AS keys,
              EXISTS (SELECT 1 FROM outbox o WHERE o.server_id = b.server_id AND o.build_id = b.build_id) AS pending,
              (SELECT verdict FROM deliveries d WHERE d.server_id = b.server_id AND d.build_id = b.build_id ORDER BY d.delivered_at DESC, d.id DESC LIMIT 1) AS verdict
         FROM builds b JOIN teamcity_servers s ON s.id = b.server_id
         LEFT JOIN build_types bt ON bt.server_id = b.server_id AND bt.build_type_id = b.build_type_id
        WHERE b.kind = $2 AND EXISTS (SELECT 1 FROM unnest(b.issue_keys) k WHERE left(k, length($1)) = $1)
        ORDER BY coalesce(b.finished_at, b.started_at, b.updated_at) DESC, b.build_id DESC
        LIMIT $3`,
      [prefix, kind, limit],
    );
  const toBuild = (r: OverviewRow): OverviewBuild => ({
    serverId: r.server_id,
    serverName: r.server_name,
    buildId: Number(r.build_id),
    kind: r.kind,
    buildTypeId: r.build_type_id,
    configurationName: r.bt_name,
    number: r.number,
    branch: r.branch,
    state: r.jira_state,
    environmentId: r.environment_id,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    issueKeys: r.keys,
    verdict: r.pending ? 'pending' : (r.verdict ?? 'not_sent'),
  });
  const builds = (await select('build')).rows.map(toBuild);
  const deployments = (await select('deployment')).rows.map(toBuild);

  // Deployment configurations that deployed this project's issues: one row per configuration and environment.
  const envRows = (
    await tx.query<{
      server_id: string;
      server_name: string;
      rules: unknown;
      build_type_id: string;
      environment_id: string | null;
      build_id: string;
      jira_state: string;
      at: Date | null;
      internal_id: string | null;
      name: string | null;
      project_id: string | null;
      project_name: string | null;
      type: string | null;
    }>(
      `SELECT DISTINCT ON (b.server_id, b.build_type_id, b.environment_id)
              b.server_id, s.name AS server_name, s.rules, b.build_type_id, b.environment_id, b.build_id::text, b.jira_state,
              coalesce(b.finished_at, b.started_at) AS at, bt.internal_id, bt.name, bt.project_id, bt.project_name, bt.type
         FROM builds b JOIN teamcity_servers s ON s.id = b.server_id
         LEFT JOIN build_types bt ON bt.server_id = b.server_id AND bt.build_type_id = b.build_type_id AND bt.found
        WHERE b.kind = 'deployment' AND EXISTS (SELECT 1 FROM unnest(b.issue_keys) k WHERE left(k, length($1)) = $1)
        ORDER BY b.server_id, b.build_type_id, b.environment_id, b.build_id DESC
        LIMIT 200`,
      [prefix],
    )
  ).rows;
  const environments: EnvironmentMapping[] = envRows.map((r) => {
    // Recorded as a deployment: either TeamCity's type or a rule said so; the preview sees the same.
    const ref: TcBuildTypeRef = { id: r.build_type_id, type: (r.type as TcBuildTypeKind | null) ?? 'deployment' };
    if (r.internal_id) ref.internalId = r.internal_id;
    if (r.name) ref.name = r.name;
    if (r.project_id) ref.projectId = r.project_id;
    if (r.project_name) ref.projectName = r.project_name;
    let environment: EnvironmentMapping['environment'] = null;
    try {
      const rules = parseRules(r.rules);
      const [p] = previewEnvironments([ref], rules.environments, {
        connectionId: r.server_id,
        ...(rules.environmentParameter ? { environmentParameter: rules.environmentParameter } : {}),
      });
      if (p?.environment) environment = { displayName: p.environment.displayName, type: p.environment.type, note: p.environment.note };
    } catch {
      environment = null;
    }
    return {
      serverId: r.server_id,
      serverName: r.server_name,
      buildTypeId: r.build_type_id,
      configurationName: r.name,
      projectName: r.project_name,
      environmentId: r.environment_id,
      environment,
      lastDeployment: { buildId: Number(r.build_id), state: r.jira_state, at: r.at },
    };
  });
  return { project, builds, deployments, environments };
}
