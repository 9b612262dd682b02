-- Reconciliation: sweep progress, the local index of addresses, and the opted-out set seen.

-- What a reconcile event saw of its contact, so the worker need not read it again.
ALTER TABLE events ADD COLUMN snapshot TEXT;

-- One row per tenant: the sweep under way (or the last one) and where it stands.
CREATE TABLE sweeps (
    tenant_id BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,                     -- full | incremental
    state TEXT NOT NULL,                    -- running | paused | finished
    cursor TEXT,                            -- Keap's page token to resume from
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT,
    last_full_at BIGINT,                   -- when the last full sweep finished
    pages BIGINT NOT NULL DEFAULT 0,
    contacts_scanned BIGINT NOT NULL DEFAULT 0,
    calls BIGINT NOT NULL DEFAULT 0,
    enqueued BIGINT NOT NULL DEFAULT 0,
    discrepancies TEXT NOT NULL DEFAULT '{}'
);

-- Each contact's addresses as the last full sweep saw them: address -> contacts.
CREATE TABLE contact_addresses (
    tenant_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    field TEXT NOT NULL,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    PRIMARY KEY (tenant_id, contact_id, field)
);
CREATE INDEX contact_addresses_key ON contact_addresses (tenant_id, email_key);

-- The not-marketable addresses seen by the last sweep, to diff the next one against.
CREATE TABLE opted_out_seen (
    tenant_id BIGINT NOT NULL,
    email_key TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (tenant_id, email_key)
);
