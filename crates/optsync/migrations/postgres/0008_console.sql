-- The operator's console: accounts (Argon2 hashes), sessions (only a digest of the cookie is
-- stored) and a record of every action taken in it, with who and when.

CREATE TABLE admin_users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,        -- PHC string (Argon2id)
    updated_at BIGINT NOT NULL
);

CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY,        -- SHA-256 (hex) of the cookie's value
    user_name TEXT NOT NULL,
    csrf TEXT NOT NULL,                 -- the token every form of the session carries
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

CREATE TABLE admin_actions (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    user_name TEXT NOT NULL,
    action TEXT NOT NULL,               -- sign_in, sign_out, retry_job, reveal_post_url, live_status
    target TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX admin_actions_at ON admin_actions (at);
