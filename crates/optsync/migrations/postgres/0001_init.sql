-- optsync schema (PostgreSQL). Times are epoch milliseconds; secrets are sealed (base64).

CREATE TABLE tenants (
    id BIGSERIAL PRIMARY KEY,
    app TEXT NOT NULL UNIQUE,
    keap_base_url TEXT NOT NULL,
    credential_kind TEXT NOT NULL,          -- api_key | oauth
    credential_sealed TEXT NOT NULL,        -- the credential, encrypted
    token_hash TEXT NOT NULL,               -- SHA-256 (hex) of the hook token
    token_sealed TEXT NOT NULL,             -- the hook token, encrypted (to print the URL again)
    legacy_prefix_hash TEXT,                -- SHA-256 of a legacy key's first 6 characters, if opted in
    opt_out_method TEXT NOT NULL DEFAULT 'auto',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    subject TEXT NOT NULL,                  -- contact:ID or email:ADDRESS
    state TEXT NOT NULL,                    -- pending | running | done | dead | merged
    attempts BIGINT NOT NULL DEFAULT 0,
    run_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- At most one pending job per subject: new events join it.
CREATE UNIQUE INDEX jobs_one_pending ON jobs (tenant_id, subject) WHERE state = 'pending';
CREATE INDEX jobs_ready ON jobs (state, run_at);
CREATE INDEX jobs_subject ON jobs (tenant_id, subject, state);

CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    source TEXT NOT NULL,                   -- keap_post | fanout | esp:PROVIDER | reconcile
    kind TEXT NOT NULL,                     -- opt_out | shared_address | unsubscribe | complaint | hard_bounce | soft_bounce | resubscribe
    contact_id BIGINT,
    email TEXT,
    provider_event_id TEXT,
    body_digest TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    job_id BIGINT,
    honoured_at BIGINT
);
CREATE UNIQUE INDEX events_provider_id ON events (tenant_id, source, provider_event_id)
    WHERE provider_event_id IS NOT NULL;
CREATE INDEX events_job ON events (job_id);
CREATE INDEX events_tenant ON events (tenant_id, received_at);

-- Every status optsync wrote, so that its own writes are never taken for the person's wish.
CREATE TABLE ledger (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    email_key TEXT NOT NULL,
    origin TEXT NOT NULL,                   -- propagation | bounce
    source_email TEXT,
    status_written TEXT,                    -- NULL while the write is under way
    job_id BIGINT,
    written_at BIGINT NOT NULL
);
CREATE INDEX ledger_email ON ledger (tenant_id, email_key);

-- Stop sources whose other holders have been looked up and queued.
CREATE TABLE fanned_out (
    tenant_id BIGINT NOT NULL,
    email_key TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, email_key)
);

-- One row per decision about an address: the proof of when each opt-out was honoured.
CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    job_id BIGINT,
    event_ids TEXT NOT NULL,
    contact_id BIGINT,
    email TEXT NOT NULL,
    status_before TEXT,
    status_after TEXT,
    action TEXT NOT NULL,
    path TEXT,
    keap_calls BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    honoured_at BIGINT NOT NULL,
    detail TEXT
);
CREATE INDEX audit_tenant ON audit (tenant_id, honoured_at);
CREATE INDEX audit_email ON audit (tenant_id, email);
