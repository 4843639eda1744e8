-- Retention (product.md): an uninstalled tenant is kept 60 days (a reinstall restores it), then
-- everything it owns is deleted. The purge is the one cross-tenant delete the runtime may do, so it
-- is a narrowly granted function: it can only remove tenants whose purge date has passed.

GRANT CREATE ON SCHEMA public TO tcj_maintenance;

CREATE FUNCTION purge_expired_tenants(p_limit integer)
  RETURNS TABLE (tenant_id uuid, servers bigint, builds bigint, deliveries bigint)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
  DECLARE
    t uuid;
  BEGIN
    FOR t IN
      SELECT id FROM public.tenants
       WHERE state = 'uninstalled' AND purge_after IS NOT NULL AND purge_after <= now()
       ORDER BY purge_after
       LIMIT p_limit
       FOR UPDATE SKIP LOCKED
    LOOP
      tenant_id := t;
      SELECT count(*) INTO servers FROM public.teamcity_servers s WHERE s.tenant_id = t;
      SELECT count(*) INTO builds FROM public.builds b WHERE b.tenant_id = t;
      SELECT count(*) INTO deliveries FROM public.deliveries d WHERE d.tenant_id = t;
      -- Every tenant-owned table references tenants (directly or through teamcity_servers) with
      -- ON DELETE CASCADE, so this removes all of it, ciphertexts included.
      DELETE FROM public.tenants WHERE id = t;
      RETURN NEXT;
    END LOOP;
  END
  $$;
ALTER FUNCTION purge_expired_tenants(integer) OWNER TO tcj_maintenance;
REVOKE ALL ON FUNCTION purge_expired_tenants(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION purge_expired_tenants(integer) TO tcj_app;

REVOKE CREATE ON SCHEMA public FROM tcj_maintenance;
