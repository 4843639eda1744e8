-- The admin API (src/web/api): removing a server survives a crash or a Jira outage, and the rules
-- preview knows the names and types of the build configurations seen.

-- A server being removed: polling stopped (state 'paused'), its Jira data being deleted by property.
-- The row (and its credentials) goes once Jira accepted both deletions; until then a worker retries.
ALTER TABLE teamcity_servers
  ADD COLUMN deleting_at    timestamptz,
  ADD COLUMN deletion_error text;

-- Build configurations of a connection as TeamCity last described them (GET /app/rest/buildTypes/…),
-- fetched by the admin API for the environment-rules preview. A cache: safe to delete at any time.
CREATE TABLE build_types (
  tenant_id     uuid NOT NULL,
  server_id     uuid NOT NULL,
  build_type_id text NOT NULL,
  internal_id   text,
  name          text,
  project_id    text,
  project_name  text,
  type          text,
  -- false: TeamCity answered 404 (deleted, renamed or invisible to the service account).
  found         boolean NOT NULL DEFAULT true,
  fetched_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, server_id, build_type_id),
  FOREIGN KEY (tenant_id, server_id) REFERENCES teamcity_servers (tenant_id, id) ON DELETE CASCADE
);

ALTER TABLE build_types ENABLE ROW LEVEL SECURITY;
ALTER TABLE build_types FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON build_types TO tcj_tenant
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY maintenance ON build_types TO tcj_maintenance USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON build_types TO tcj_tenant;
GRANT SELECT, UPDATE, DELETE ON build_types TO tcj_maintenance;

-- Diagnostic lookups by build (deliveries of one build, newest first).
CREATE INDEX deliveries_build ON deliveries (tenant_id, server_id, build_id, delivered_at DESC);
CREATE INDEX builds_truncated_keys ON builds USING gin (truncated_keys);

GRANT CREATE ON SCHEMA public TO tcj_maintenance;

-- Which tenants have a server deletion pending (the worker then calls retryPendingDeletions inside
-- withTenant). Returns only ids, like the claim functions.
CREATE FUNCTION tenants_with_pending_deletions(p_max integer)
  RETURNS TABLE (tenant_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
    SELECT DISTINCT s.tenant_id FROM public.teamcity_servers s
      JOIN public.tenants t ON t.id = s.tenant_id
     WHERE s.deleting_at IS NOT NULL AND t.state = 'installed'
     LIMIT p_max
  $$;
ALTER FUNCTION tenants_with_pending_deletions(integer) OWNER TO tcj_maintenance;
REVOKE ALL ON FUNCTION tenants_with_pending_deletions(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenants_with_pending_deletions(integer) TO tcj_app;

REVOKE CREATE ON SCHEMA public FROM tcj_maintenance;
