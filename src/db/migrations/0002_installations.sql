-- What the install lifecycle records beyond the basics: the Forge installation id (Connect on
-- Forge), when the site last sent each event, and whether Jira refused our credentials (401/403),
-- which pauses delivery to that site until the next install fixes them.
ALTER TABLE tenants
  ADD COLUMN installation_id     text,
  ADD COLUMN enabled_changed_at  timestamptz,
  ADD COLUMN jira_auth_failed_at timestamptz,
  ADD COLUMN jira_auth_error     text;
