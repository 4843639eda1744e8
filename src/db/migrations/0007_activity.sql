-- When a poll last saw anything happening on the server (builds running, queued or just finished):
-- the poll interval stays short for a while after activity instead of following the last poll alone.
ALTER TABLE sync_state ADD COLUMN last_activity_at timestamptz;
