-- Sending providers' webhooks: per-tenant configuration and Mailgun's replay store.

CREATE TABLE providers (
    tenant_id INTEGER NOT NULL,
    provider TEXT NOT NULL,                 -- ses | sendgrid | mailgun | postmark | sparkpost | mandrill | mailjet | brevo
    config_sealed TEXT NOT NULL,            -- the provider's settings and secrets, encrypted
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, provider)
);

-- Signature tokens already accepted (Mailgun signs only timestamp and token, so a token seen
-- twice is a replay); kept for the freshness window.
CREATE TABLE seen_tokens (
    tenant_id INTEGER NOT NULL,
    provider TEXT NOT NULL,
    token TEXT NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, provider, token)
);
