-- Reconciliation: sweep progress, the local index of addresses, and the opted-out set seen.

-- What a reconcile event saw of its contact, so the worker need not read it again.
ALTER TABLE events ADD COLUMN snapshot TEXT;

-- One row per tenant: the sweep under way (or the last one) and where it stands.
CREATE TABLE sweeps (
    tenant_id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                     -- full | incremental
    state TEXT NOT NULL,                    -- running | paused | finished
    cursor TEXT,                            -- Keap's page token to resume from
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER,
    last_full_at INTEGER,                   -- when the last full sweep finished
    pages INTEGER NOT NULL DEFAULT 0,
    contacts_scanned INTEGER NOT NULL DEFAULT 0,
    calls INTEGER NOT NULL DEFAULT 0,
    enqueued INTEGER NOT NULL DEFAULT 0,
    discrepancies TEXT NOT NULL DEFAULT '{}'
);

-- Each contact's addresses as the last full sweep saw them: address -> contacts.
CREATE TABLE contact_addresses (
    tenant_id INTEGER NOT NULL,
    contact_id INTEGER NOT NULL,
    field TEXT NOT NULL,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    PRIMARY KEY (tenant_id, contact_id, field)
);
CREATE INDEX contact_addresses_key ON contact_addresses (tenant_id, email_key);

-- The not-marketable addresses seen by the last sweep, to diff the next one against.
CREATE TABLE opted_out_seen (
    tenant_id INTEGER NOT NULL,
    email_key TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (tenant_id, email_key)
);
