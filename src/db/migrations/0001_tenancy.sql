-- Tenants (one per Jira site installation) and the TeamCity servers they connect, with Row Level
-- Security forced on both. Every tenant-owned table is keyed by tenant_id first so that it can be
-- sharded by tenant later (design.md §1).

CREATE TABLE tenants (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  client_key       text NOT NULL UNIQUE CHECK (length(client_key) BETWEEN 1 AND 255),
  base_url         text NOT NULL,
  display_url      text,
  -- AWS Encryption SDK ciphertext (encryption context: tenant, purpose 'jira-shared-secret', record).
  shared_secret_ct bytea NOT NULL,
  state            text NOT NULL DEFAULT 'installed' CHECK (state IN ('installed', 'uninstalled')),
  enabled          boolean NOT NULL DEFAULT true,
  installed_at     timestamptz NOT NULL DEFAULT now(),
  uninstalled_at   timestamptz,
  purge_after      timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE teamcity_servers (
  tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id            uuid NOT NULL DEFAULT gen_random_uuid(),
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  url           text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
  auth_type     text NOT NULL CHECK (auth_type IN ('basic', 'token')),
  username      text,
  -- Ciphertext of the password or access token (purpose 'teamcity-credential', record = server id).
  credential_ct bytea NOT NULL,
  state         text NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'degraded', 'failing', 'auth_failed', 'paused')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (id),
  CHECK ((auth_type = 'basic') = (username IS NOT NULL))
);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
ALTER TABLE teamcity_servers ENABLE ROW LEVEL SECURITY;
ALTER TABLE teamcity_servers FORCE ROW LEVEL SECURITY;

-- The tenant in force is the transaction-local setting made by withTenant(); unset or empty → no rows.
CREATE POLICY tenant_isolation ON tenants TO tcj_tenant
  USING (id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON teamcity_servers TO tcj_tenant
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

-- Cross-tenant maintenance (key rotation, retention purge) is done only as tcj_maintenance.
CREATE POLICY maintenance ON tenants TO tcj_maintenance USING (true) WITH CHECK (true);
CREATE POLICY maintenance ON teamcity_servers TO tcj_maintenance USING (true) WITH CHECK (true);

GRANT SELECT, INSERT, UPDATE, DELETE ON tenants, teamcity_servers TO tcj_tenant;
GRANT SELECT, UPDATE, DELETE ON tenants, teamcity_servers TO tcj_maintenance;

-- Functions owned by tcj_maintenance: it needs CREATE on the schema only while it takes ownership.
GRANT CREATE ON SCHEMA public TO tcj_maintenance;

-- The one cross-tenant read the runtime needs: which tenant (if any) a Jira clientKey belongs to,
-- before any tenant is known (install callbacks, incoming JWTs). Returns only the id.
CREATE FUNCTION tenant_id_for_client_key(p_client_key text) RETURNS uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ SELECT id FROM public.tenants WHERE client_key = p_client_key $$;
ALTER FUNCTION tenant_id_for_client_key(text) OWNER TO tcj_maintenance;
REVOKE ALL ON FUNCTION tenant_id_for_client_key(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant_id_for_client_key(text) TO tcj_app;

-- Whether any encrypted secret exists, so that start-up can refuse to create a new keyring that
-- would orphan them. Reveals one boolean, nothing about any tenant.
CREATE FUNCTION any_secret_stored() RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ SELECT EXISTS (SELECT 1 FROM public.tenants) OR EXISTS (SELECT 1 FROM public.teamcity_servers) $$;
ALTER FUNCTION any_secret_stored() OWNER TO tcj_maintenance;
REVOKE ALL ON FUNCTION any_secret_stored() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION any_secret_stored() TO tcj_app;

REVOKE CREATE ON SCHEMA public FROM tcj_maintenance;
