-- The sync engine's state: per-server poll state and leases, what we know of each TeamCity build,
-- the outbox of Jira updates (written in the same transaction that advances a cursor), Jira's
-- verdicts, and per-tenant delivery state. All tenant-owned, all under RLS.

-- Strictly increasing across processes and restarts: Jira ignores an update whose
-- updateSequenceNumber is not greater than the one it holds (design.md §3).
CREATE SEQUENCE update_sequence AS bigint;
-- UPDATE: nextUpdateSequence() also moves it forward to the current time (setval).
GRANT USAGE, UPDATE ON SEQUENCE update_sequence TO tcj_tenant;

ALTER TABLE teamcity_servers
  ADD COLUMN server_internal_id text,
  ADD COLUMN server_version     text,
  ADD COLUMN service_user       text,
  -- Include/exclude rules and deployment environment rules (sync/rules.ts), edited in the admin page.
  ADD COLUMN rules              jsonb NOT NULL DEFAULT '{}';

CREATE TABLE sync_state (
  tenant_id            uuid NOT NULL,
  server_id            uuid NOT NULL,
  next_poll_at         timestamptz NOT NULL DEFAULT now(),
  lease_owner          text,
  lease_until          timestamptz,
  -- TeamCity server time (as an instant) of the last successful poll: the finishDate cursor.
  cursor_time          timestamptz,
  server_offset_min    integer NOT NULL DEFAULT 0,
  -- Queued and running builds seen last time, re-checked when they vanish.
  active_build_ids     bigint[] NOT NULL DEFAULT '{}',
  last_poll_at         timestamptz,
  last_success_at      timestamptz,
  last_error           text,
  consecutive_failures integer NOT NULL DEFAULT 0,
  -- Backfill: [backfill_since, backfill_until) walked forward in start-time windows.
  backfill_since       timestamptz,
  backfill_until       timestamptz,
  backfill_cursor      timestamptz,
  backfill_done        integer NOT NULL DEFAULT 0,
  backfill_started_at  timestamptz,
  backfill_finished_at timestamptz,
  PRIMARY KEY (tenant_id, server_id),
  FOREIGN KEY (tenant_id, server_id) REFERENCES teamcity_servers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sync_state_due ON sync_state (next_poll_at);

-- What we know of each build: enough to skip unchanged builds, answer "why is ABC-123 missing?",
-- and gather a deployment's issues since the last successful deployment. No author names or emails.
CREATE TABLE builds (
  tenant_id       uuid NOT NULL,
  server_id       uuid NOT NULL,
  build_id        bigint NOT NULL,
  build_type_id   text NOT NULL,
  pipeline_id     text NOT NULL,
  kind            text NOT NULL CHECK (kind IN ('build', 'deployment')),
  environment_id  text,
  number          text,
  branch          text,
  tc_state        text NOT NULL,
  tc_status       text,
  jira_state      text NOT NULL,
  fingerprint     text NOT NULL,
  issue_keys      text[] NOT NULL DEFAULT '{}',
  key_sources     jsonb NOT NULL DEFAULT '[]',
  truncated_keys  text[] NOT NULL DEFAULT '{}',
  -- Why a build was recorded but not sent (e.g. TeamCity gave it no URL): for the diagnostic.
  send_error      text,
  started_at      timestamptz,
  finished_at     timestamptz,
  last_usn        bigint,
  first_seen_at   timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, server_id, build_id),
  FOREIGN KEY (tenant_id, server_id) REFERENCES teamcity_servers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX builds_issue_keys ON builds USING gin (issue_keys);
CREATE INDEX builds_deployments ON builds (tenant_id, server_id, pipeline_id, environment_id, build_id) WHERE kind = 'deployment';

-- Jira updates waiting to be delivered, in id order. Several rows for one entity are coalesced to
-- the newest at delivery time (Jira keeps the highest updateSequenceNumber anyway).
CREATE TABLE outbox (
  tenant_id       uuid NOT NULL,
  id              bigint GENERATED ALWAYS AS IDENTITY,
  server_id       uuid NOT NULL,
  kind            text NOT NULL CHECK (kind IN ('build', 'deployment')),
  entity_key      text NOT NULL,
  build_id        bigint NOT NULL,
  usn             bigint NOT NULL,
  payload         jsonb NOT NULL,
  attempts        integer NOT NULL DEFAULT 0,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, server_id) REFERENCES teamcity_servers (tenant_id, id) ON DELETE CASCADE
);

-- Jira's verdict on each delivered entity, for the activity log and the diagnostic.
CREATE TABLE deliveries (
  tenant_id       uuid NOT NULL,
  id              bigint GENERATED ALWAYS AS IDENTITY,
  server_id       uuid NOT NULL,
  kind            text NOT NULL,
  build_id        bigint NOT NULL,
  entity_key      text NOT NULL,
  usn             bigint NOT NULL,
  issue_keys      text[] NOT NULL,
  verdict         text NOT NULL CHECK (verdict IN ('accepted', 'rejected')),
  errors          jsonb NOT NULL DEFAULT '[]',
  unknown_keys    text[] NOT NULL DEFAULT '{}',
  delivered_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, server_id) REFERENCES teamcity_servers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX deliveries_recent ON deliveries (tenant_id, delivered_at DESC);
CREATE INDEX deliveries_keys ON deliveries USING gin (issue_keys);

-- Per-tenant delivery lease (one deliverer per tenant at a time keeps updates in order) and the
-- rate-limit pause Jira asked for (429 Retry-After), which delays only this tenant.
CREATE TABLE delivery_state (
  tenant_id     uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  lease_owner   text,
  lease_until   timestamptz,
  paused_until  timestamptz,
  last_error    text,
  updated_at    timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['sync_state', 'builds', 'outbox', 'deliveries', 'delivery_state'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format($p$CREATE POLICY tenant_isolation ON %I TO tcj_tenant
      USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
      WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)$p$, t);
    EXECUTE format('CREATE POLICY maintenance ON %I TO tcj_maintenance USING (true) WITH CHECK (true)', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO tcj_tenant', t);
    EXECUTE format('GRANT SELECT, UPDATE, DELETE ON %I TO tcj_maintenance', t);
  END LOOP;
END $$;

GRANT CREATE ON SCHEMA public TO tcj_maintenance;

-- Work distribution (design.md §1): lease up to p_max due servers to one worker. SKIP LOCKED lets
-- any number of workers claim at once without waiting on each other; an expired lease (a dead
-- worker) is claimable again. Returns only ids; the work itself runs inside withTenant().
CREATE FUNCTION claim_due_servers(p_worker text, p_lease_seconds integer, p_max integer)
  RETURNS TABLE (tenant_id uuid, server_id uuid)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
    UPDATE public.sync_state s
       SET lease_owner = p_worker, lease_until = now() + make_interval(secs => p_lease_seconds)
      FROM (
        SELECT ss.tenant_id, ss.server_id
          FROM public.sync_state ss
          JOIN public.teamcity_servers srv ON srv.tenant_id = ss.tenant_id AND srv.id = ss.server_id
          JOIN public.tenants t ON t.id = ss.tenant_id
         WHERE ss.next_poll_at <= now()
           AND (ss.lease_until IS NULL OR ss.lease_until < now())
           AND srv.state NOT IN ('auth_failed', 'paused')
           AND t.state = 'installed' AND t.enabled
         ORDER BY ss.next_poll_at
         LIMIT p_max
         FOR UPDATE OF ss SKIP LOCKED
      ) due
     WHERE s.tenant_id = due.tenant_id AND s.server_id = due.server_id
    RETURNING s.tenant_id, s.server_id
  $$;
ALTER FUNCTION claim_due_servers(text, integer, integer) OWNER TO tcj_maintenance;
REVOKE ALL ON FUNCTION claim_due_servers(text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_due_servers(text, integer, integer) TO tcj_app;

-- Lease up to p_max tenants that have something to deliver and are not paused by Jira.
CREATE FUNCTION claim_due_deliveries(p_worker text, p_lease_seconds integer, p_max integer)
  RETURNS TABLE (tenant_id uuid)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
  BEGIN
    INSERT INTO public.delivery_state (tenant_id)
      SELECT DISTINCT o.tenant_id FROM public.outbox o
      ON CONFLICT DO NOTHING;
    RETURN QUERY
    UPDATE public.delivery_state d
       SET lease_owner = p_worker, lease_until = now() + make_interval(secs => p_lease_seconds)
      FROM (
        SELECT ds.tenant_id
          FROM public.delivery_state ds
          JOIN public.tenants t ON t.id = ds.tenant_id
         WHERE (ds.lease_until IS NULL OR ds.lease_until < now())
           AND (ds.paused_until IS NULL OR ds.paused_until <= now())
           AND t.state = 'installed' AND t.enabled AND t.jira_auth_failed_at IS NULL
           AND EXISTS (SELECT 1 FROM public.outbox o WHERE o.tenant_id = ds.tenant_id)
         ORDER BY ds.lease_until NULLS FIRST
         LIMIT p_max
         FOR UPDATE OF ds SKIP LOCKED
      ) due
     WHERE d.tenant_id = due.tenant_id
    RETURNING d.tenant_id;
  END
  $$;
ALTER FUNCTION claim_due_deliveries(text, integer, integer) OWNER TO tcj_maintenance;
REVOKE ALL ON FUNCTION claim_due_deliveries(text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_due_deliveries(text, integer, integer) TO tcj_app;

GRANT INSERT ON delivery_state TO tcj_maintenance;
REVOKE CREATE ON SCHEMA public FROM tcj_maintenance;
