// PostgreSQL roles the app relies on (cluster-wide names; see docs/database.md).
//  - ROLE_APP: the runtime login. Not a superuser, not an owner, no BYPASSRLS, NOINHERIT: it has no
//    privileges on tenant tables of its own, so it can reach them only through withTenant().
//  - ROLE_TENANT: holds the table privileges; withTenant() does SET LOCAL ROLE to it. RLS applies.
//  - ROLE_MAINTENANCE: the only role with a cross-tenant policy; it owns the few narrowly granted
//    SECURITY DEFINER functions and is used by operator commands (rotate-keys, purge).
export const ROLE_APP = 'tcj_app';
export const ROLE_TENANT = 'tcj_tenant';
export const ROLE_MAINTENANCE = 'tcj_maintenance';
