-- Console accounts get a role: an operator sees and does everything (every account that
-- exists now is one); a customer sees only the apps granted to it. Customers are invited:
-- a one-time link (only its digest is stored) lets them set their password.

ALTER TABLE admin_users ADD COLUMN role TEXT NOT NULL DEFAULT 'operator';   -- operator | customer

CREATE TABLE console_grants (
    user_name TEXT NOT NULL,
    tenant_id INTEGER NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_name, tenant_id)
);
CREATE INDEX console_grants_tenant ON console_grants (tenant_id);

CREATE TABLE console_invites (
    token_hash TEXT PRIMARY KEY,        -- SHA-256 (hex) of the link's token
    email TEXT NOT NULL,                -- the customer account it creates (or renews)
    tenant_id INTEGER,                       -- the app granted on acceptance; none: an onboarding link
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX console_invites_expiry ON console_invites (expires_at);
