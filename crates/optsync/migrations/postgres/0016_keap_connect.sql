-- The console's "Connect a Keap app" in flight: each `state` sent to Keap's consent page (only
-- its digest), the browser cookie it is bound to (digest), the console session that started
-- it, the app a reconnect must name, and when it expires. A row is deleted when its callback
-- arrives: a state works once.

CREATE TABLE keap_connect_states (
    state_hash TEXT PRIMARY KEY,
    binder_hash TEXT NOT NULL,
    session_hash TEXT NOT NULL,
    app TEXT,
    expires_at BIGINT NOT NULL
);
CREATE INDEX keap_connect_states_expiry ON keap_connect_states (expires_at);
