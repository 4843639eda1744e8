// The environment-rules preview (product.md complaint 6): what the rules do to every build
// configuration this connection has seen (distinct build_type_id in `builds`). Names, project paths
// and TeamCity types come from GET /app/rest/buildTypes/{id}, cached in `build_types` for an hour; a
// configuration TeamCity cannot describe right now is previewed from its id alone and listed as
// unresolved.
import type { Dispatcher } from 'undici';
import type { Database } from '../../db/database.ts';
import type { Secrets } from '../../crypto/secrets.ts';
import type { Logger } from '../../log.ts';
import { TeamCityClient, type TeamCityClientOptions } from '../../teamcity/client.ts';
import { buildTypeIdLocator } from '../../teamcity/locator.ts';
import type { TcBuildTypeKind, TcBuildTypeRef } from '../../teamcity/types.ts';
import { previewEnvironments, type EnvironmentPreview } from '../../sync/environments.ts';
import type { ServerRules } from '../../sync/rules.ts';
import { getConnection } from '../../sync/servers.ts';

export interface PreviewDeps {
  db: Database;
  secrets: Secrets;
  dispatcher: Dispatcher;
  log: Logger;
  teamcity?: Partial<TeamCityClientOptions>;
}

const STALE_MS = 3600_000;
const MAX_CONFIGURATIONS = 300;
const MAX_FETCHES = 60;
const CONCURRENCY = 4;
const BUDGET_MS = 8_000;

interface CachedType {
  build_type_id: string;
  internal_id: string | null;
  name: string | null;
  project_id: string | null;
  project_name: string | null;
  type: string | null;
  found: boolean;
  fetched_at: Date;
}

export interface ConfigurationRefs {
  refs: TcBuildTypeRef[];
  /** Configurations TeamCity could not describe (deleted, invisible, or the server is unreachable). */
  unresolved: string[];
}

function refOf(c: CachedType): TcBuildTypeRef {
  const ref: TcBuildTypeRef = { id: c.build_type_id };
  if (c.internal_id) ref.internalId = c.internal_id;
  if (c.name) ref.name = c.name;
  if (c.project_id) ref.projectId = c.project_id;
  if (c.project_name) ref.projectName = c.project_name;
  if (c.type) ref.type = c.type as TcBuildTypeKind;
  return ref;
}

/** The configurations seen on a server, described (from the cache, refreshed from TeamCity when stale). */
export async function configurationsOf(deps: PreviewDeps, tenantId: string, serverId: string): Promise<ConfigurationRefs> {
  const { seen, cached } = await deps.db.withTenant(tenantId, async (tx) => ({
    seen: (
      await tx.query<{ build_type_id: string; deployment: boolean }>(
        `SELECT build_type_id, bool_or(kind = 'deployment') AS deployment FROM builds WHERE server_id = $1
          GROUP BY build_type_id ORDER BY max(updated_at) DESC LIMIT ${MAX_CONFIGURATIONS}`,
        [serverId],
      )
    ).rows,
    cached: new Map((await tx.query<CachedType>(`SELECT * FROM build_types WHERE server_id = $1`, [serverId])).rows.map((r) => [r.build_type_id, r])),
  }));
  const now = Date.now();
  const toFetch = seen.map((r) => r.build_type_id).filter((id) => {
    const c = cached.get(id);
    return !c || now - c.fetched_at.getTime() > STALE_MS;
  }).slice(0, MAX_FETCHES);

  if (toFetch.length > 0) {
    const fetched = await fetchBuildTypes(deps, tenantId, serverId, toFetch);
    if (fetched.length > 0) {
      await deps.db.withTenant(tenantId, async (tx) => {
        for (const c of fetched) {
          await tx.query(
            `INSERT INTO build_types (tenant_id, server_id, build_type_id, internal_id, name, project_id, project_name, type, found, fetched_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
             ON CONFLICT (tenant_id, server_id, build_type_id) DO UPDATE SET internal_id = EXCLUDED.internal_id, name = EXCLUDED.name,
               project_id = EXCLUDED.project_id, project_name = EXCLUDED.project_name, type = EXCLUDED.type, found = EXCLUDED.found, fetched_at = now()`,
            [tenantId, serverId, c.build_type_id, c.internal_id, c.name, c.project_id, c.project_name, c.type, c.found],
          );
          cached.set(c.build_type_id, c);
        }
      });
    }
  }
  const refs: TcBuildTypeRef[] = [];
  const unresolved: string[] = [];
  for (const { build_type_id: id, deployment } of seen) {
    const c = cached.get(id);
    if (c?.found) refs.push(refOf(c));
    else {
      // Not described by TeamCity: previewed from its id, as a deployment if it was recorded as one.
      refs.push(deployment ? { id, type: 'deployment' } : { id });
      unresolved.push(id);
    }
  }
  return { refs, unresolved };
}

async function fetchBuildTypes(deps: PreviewDeps, tenantId: string, serverId: string, ids: string[]): Promise<CachedType[]> {
  const conn = await deps.db.withTenant(tenantId, (tx) => getConnection(tx, deps.secrets, serverId));
  if (!conn) return [];
  let client: TeamCityClient;
  try {
    client = new TeamCityClient({
      baseUrl: conn.server.url,
      auth: conn.auth,
      dispatcher: deps.dispatcher,
      log: deps.log,
      timeoutMs: 5_000,
      maxAttempts: 1,
      ...deps.teamcity,
    });
  } catch {
    return [];
  }
  const started = Date.now();
  const out: CachedType[] = [];
  const queue = [...ids];
  let failed = false;
  const worker = async () => {
    for (let id = queue.shift(); id !== undefined && !failed && Date.now() - started < BUDGET_MS; id = queue.shift()) {
      try {
        const bt = await client.getBuildType(buildTypeIdLocator(id));
        out.push({
          build_type_id: id,
          internal_id: bt?.internalId ?? null,
          name: bt?.name ?? null,
          project_id: bt?.projectId ?? null,
          project_name: bt?.projectName ?? null,
          type: bt?.type ?? (bt ? 'regular' : null),
          found: bt !== undefined,
          fetched_at: new Date(),
        });
      } catch (err) {
        // The server is down or refuses us: the preview falls back to what is cached.
        failed = true;
        deps.log.info({ err, tenantId, serverId }, 'could not describe build configurations for the rules preview');
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return out;
}

export interface RulesPreview {
  configurations: EnvironmentPreview[];
  unresolved: string[];
}

export async function rulesPreview(deps: PreviewDeps, tenantId: string, serverId: string, rules: ServerRules): Promise<RulesPreview> {
  const { refs, unresolved } = await configurationsOf(deps, tenantId, serverId);
  const configurations = previewEnvironments(refs, rules.environments, {
    connectionId: serverId,
    ...(rules.environmentParameter ? { environmentParameter: rules.environmentParameter } : {}),
  });
  return { configurations, unresolved };
}
