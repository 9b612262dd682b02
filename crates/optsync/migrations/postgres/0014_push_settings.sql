-- Suppression at the sending provider: per tenant and provider, where an opted-out address is
-- to be put on the provider's own do-not-send list. Opt-in: a row exists only when configured.

CREATE TABLE push_settings (
    tenant_id BIGINT NOT NULL,
    provider TEXT NOT NULL,                 -- ses | sendgrid | mailgun | postmark | sparkpost | mandrill | mailjet | brevo
    scope TEXT NOT NULL,                    -- what is written (regions, domains, streams, …), no secret
    config_sealed TEXT NOT NULL,            -- the API URL, scope and credential, encrypted
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, provider)
);
