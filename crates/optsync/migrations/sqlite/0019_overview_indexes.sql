-- Watching many apps cheaply: each app's last Keap post is one probe of an index (the
-- overview and /metrics ask for every app at once), and an address is found in events and
-- decisions without reading them all (the console's lookup, and which apps to ask Keap in).
CREATE INDEX events_tenant_source ON events (tenant_id, source, received_at);
CREATE INDEX events_email_lower ON events (LOWER(email));
CREATE INDEX audit_email_lower ON audit (LOWER(email));
