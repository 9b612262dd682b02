-- A signature token is single-use per signing key, not per tenant: two apps that share one
-- Mailgun account share its key, and a delivery replayed to the other app's URL verifies too.
-- key_id is the SHA-256 (hex) of the provider and key, never the key.

DROP TABLE seen_tokens;
CREATE TABLE seen_tokens (
    key_id TEXT NOT NULL,
    token TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (key_id, token)
);
CREATE INDEX seen_tokens_age ON seen_tokens (seen_at);
