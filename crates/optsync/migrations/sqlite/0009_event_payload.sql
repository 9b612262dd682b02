-- What an event is, typed: one JSON payload (keap_post | provider | fanout | discrepancy),
-- written and read through one codec. `digest` holds only what is a digest: the SHA-256 of
-- the raw body the event came in. The sweep's snapshot moves into the payload.
ALTER TABLE events ADD COLUMN payload TEXT;
ALTER TABLE events ADD COLUMN digest TEXT;

UPDATE events SET payload = CASE
    WHEN source = 'keap_post' THEN json_object('type', 'keap_post', 'subject',
        CASE WHEN contact_id IS NOT NULL THEN 'contact:' || contact_id ELSE 'email:' || lower(email) END)
    WHEN source LIKE 'esp:%' THEN json_object('type', 'provider', 'provider', substr(source, 5),
        'kind', kind, 'address', email, 'id', provider_event_id)
    WHEN source = 'fanout' THEN json_object('type', 'fanout',
        'from_job', CAST(substr(body_digest, 5) AS INTEGER), 'contact', contact_id, 'source', email)
    ELSE json_object('type', 'discrepancy', 'contact', contact_id, 'snapshot', json(snapshot))
END;
UPDATE events SET digest = body_digest WHERE source = 'keap_post' OR source LIKE 'esp:%';

ALTER TABLE events DROP COLUMN body_digest;
ALTER TABLE events DROP COLUMN snapshot;
