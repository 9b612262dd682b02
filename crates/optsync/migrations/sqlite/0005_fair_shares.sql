-- Fair shares of the workers: claims rotate across tenants (claim_turn: the tenant served
-- longest ago goes first), a tenant whose Keap budget has no room is skipped until it has
-- (paced_until), and a tenant's due jobs are found without scanning the others'.

ALTER TABLE tenants ADD COLUMN claim_turn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN paced_until INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_tenant_state ON jobs (tenant_id, state, run_at);
