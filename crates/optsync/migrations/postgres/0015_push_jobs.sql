-- A job has a kind: an opt-out in Keap (every job so far) or a push of one address to one
-- sending provider's own do-not-send list. A push job's subject is `push:PROVIDER:ADDRESS`.
-- `suppressions` records each address a push put on a provider's lists, verified, and when:
-- the audit and the report show it beside the Keap opt-out, and a provider's echo of it (its
-- webhook saying it did not send because the address is on its list) is recognised by it.

ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'opt_out';   -- opt_out | push
-- A push: when the earliest opt-out it serves was received (time to suppressed counts from it).
ALTER TABLE jobs ADD COLUMN requested_at BIGINT;
-- A push: the job whose opt-out first asked for it (the report shows a blocked job's pushes).
ALTER TABLE jobs ADD COLUMN origin_job_id BIGINT;

CREATE TABLE suppressions (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    email_key TEXT NOT NULL,
    provider TEXT NOT NULL,
    scope TEXT NOT NULL,                    -- the push setting's scope written (regions, streams, …)
    verified BIGINT NOT NULL,              -- 1: the provider's read showed every list; 0: it has no read
    job_id BIGINT NOT NULL,
    origin_job_id BIGINT,                 -- the job whose opt-out asked for it
    requested_at BIGINT NOT NULL,          -- when the opt-out that asked for it was received
    suppressed_at BIGINT NOT NULL          -- when the provider's read showed it
);
CREATE INDEX suppressions_email ON suppressions (tenant_id, email_key, provider);
CREATE INDEX suppressions_tenant ON suppressions (tenant_id, suppressed_at);
