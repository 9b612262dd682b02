-- Each OAuth-connected app's token pair (sealed), shared by every instance: its generation
-- (bumped with each stored pair, so an instance can tell its pair is older), the refresh
-- lease that lets one instance at a time spend the single-use refresh token, and whether
-- Keap refused the grant for good (the app must be connected again).

CREATE TABLE oauth_tokens (
    tenant_id INTEGER PRIMARY KEY,
    pair_sealed TEXT NOT NULL,
    generation INTEGER NOT NULL,
    lease_holder TEXT,
    lease_until INTEGER,
    reconnect_reason TEXT,
    reconnect_since INTEGER,
    updated_at INTEGER NOT NULL
);
