-- optsync schema (SQLite). Times are epoch milliseconds; secrets are sealed (base64).

CREATE TABLE tenants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app TEXT NOT NULL UNIQUE,
    keap_base_url TEXT NOT NULL,
    credential_kind TEXT NOT NULL,          -- api_key | oauth
    credential_sealed TEXT NOT NULL,        -- the credential, encrypted
    token_hash TEXT NOT NULL,               -- SHA-256 (hex) of the hook token
    token_sealed TEXT NOT NULL,             -- the hook token, encrypted (to print the URL again)
    legacy_prefix_hash TEXT,                -- SHA-256 of a legacy key's first 6 characters, if opted in
    opt_out_method TEXT NOT NULL DEFAULT 'auto',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL,
    subject TEXT NOT NULL,                  -- contact:ID or email:ADDRESS
    state TEXT NOT NULL,                    -- pending | running | done | dead | merged
    attempts INTEGER NOT NULL DEFAULT 0,
    run_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- At most one pending job per subject: new events join it.
CREATE UNIQUE INDEX jobs_one_pending ON jobs (tenant_id, subject) WHERE state = 'pending';
CREATE INDEX jobs_ready ON jobs (state, run_at);
CREATE INDEX jobs_subject ON jobs (tenant_id, subject, state);

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL,
    source TEXT NOT NULL,                   -- keap_post | fanout | esp:PROVIDER | reconcile
    kind TEXT NOT NULL,                     -- opt_out | shared_address | unsubscribe | complaint | hard_bounce | soft_bounce | resubscribe
    contact_id INTEGER,
    email TEXT,
    provider_event_id TEXT,
    body_digest TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    job_id INTEGER,
    honoured_at INTEGER
);
CREATE UNIQUE INDEX events_provider_id ON events (tenant_id, source, provider_event_id)
    WHERE provider_event_id IS NOT NULL;
CREATE INDEX events_job ON events (job_id);
CREATE INDEX events_tenant ON events (tenant_id, received_at);

-- Every status optsync wrote, so that its own writes are never taken for the person's wish.
CREATE TABLE ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL,
    email_key TEXT NOT NULL,
    origin TEXT NOT NULL,                   -- propagation | bounce
    source_email TEXT,
    status_written TEXT,                    -- NULL while the write is under way
    job_id INTEGER,
    written_at INTEGER NOT NULL
);
CREATE INDEX ledger_email ON ledger (tenant_id, email_key);

-- Stop sources whose other holders have been looked up and queued.
CREATE TABLE fanned_out (
    tenant_id INTEGER NOT NULL,
    email_key TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, email_key)
);

-- One row per decision about an address: the proof of when each opt-out was honoured.
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL,
    job_id INTEGER,
    event_ids TEXT NOT NULL,
    contact_id INTEGER,
    email TEXT NOT NULL,
    status_before TEXT,
    status_after TEXT,
    action TEXT NOT NULL,
    path TEXT,
    keap_calls INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    honoured_at INTEGER NOT NULL,
    detail TEXT
);
CREATE INDEX audit_tenant ON audit (tenant_id, honoured_at);
CREATE INDEX audit_email ON audit (tenant_id, email);
