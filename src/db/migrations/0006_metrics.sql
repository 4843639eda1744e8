-- Outbox depth and age for /metrics: two numbers across all tenants, nothing about any of them.
GRANT CREATE ON SCHEMA public TO tcj_maintenance;

CREATE FUNCTION outbox_stats(OUT rows bigint, OUT oldest_seconds double precision)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$ SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::double precision FROM public.outbox $$;
ALTER FUNCTION outbox_stats() OWNER TO tcj_maintenance;
REVOKE ALL ON FUNCTION outbox_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION outbox_stats() TO tcj_app;

REVOKE CREATE ON SCHEMA public FROM tcj_maintenance;
