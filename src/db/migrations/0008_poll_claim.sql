-- A poll that finds nothing new writes nothing: its claim is its one row write.
--
-- The claim now also schedules the next poll (next_poll_at = now + the interval the server's last
-- poll chose, kept in poll_interval_s) and takes a short lease (p_lease_seconds, shorter than the
-- interval), so a poll that ends with nothing to record can simply let its lease lapse before its
-- next poll is due. A poll that records something, fails, or runs longer than a third of its lease
-- (it renews) still writes, as before. Each claim gets its own lease token (worker id + '/' + a
-- random suffix), so a worker that claims the same server twice can tell the two claims apart when
-- it fences its writes.
--
-- claim_due_servers stays for workers of the previous release during a rolling deploy (its lease is
-- the worker id, which they fence on); drop it once no such worker runs.
ALTER TABLE sync_state ADD COLUMN poll_interval_s double precision NOT NULL DEFAULT 15 CHECK (poll_interval_s >= 0);

GRANT CREATE ON SCHEMA public TO tcj_maintenance;

CREATE FUNCTION claim_polls(p_worker text, p_lease_seconds integer, p_max integer)
  RETURNS TABLE (tenant_id uuid, server_id uuid, lease_token text, lease_seconds double precision, due_at timestamptz)
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
  AS $$
    UPDATE public.sync_state s
       SET lease_owner = p_worker || '/' || substr(md5(random()::text), 1, 12),
           lease_until = now() + make_interval(secs => p_lease_seconds),
           next_poll_at = now() + make_interval(secs => s.poll_interval_s),
           -- The previous poll ended without a failure (a failure counts itself): it succeeded, even
           -- if it had nothing to write.
           last_success_at = CASE WHEN s.consecutive_failures = 0 AND s.last_poll_at IS NOT NULL
                                  THEN greatest(s.last_success_at, s.last_poll_at) ELSE s.last_success_at END,
           last_poll_at = now()
      FROM (
        SELECT ss.tenant_id, ss.server_id, ss.next_poll_at
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
    RETURNING s.tenant_id, s.server_id, s.lease_owner, p_lease_seconds::double precision, due.next_poll_at
  $$;
ALTER FUNCTION claim_polls(text, integer, integer) OWNER TO tcj_maintenance;
REVOKE ALL ON FUNCTION claim_polls(text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_polls(text, integer, integer) TO tcj_app;

REVOKE CREATE ON SCHEMA public FROM tcj_maintenance;
