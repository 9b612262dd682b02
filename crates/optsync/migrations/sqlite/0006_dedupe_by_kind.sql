-- A provider event is the same event only when its type is the same too: some providers reuse
-- one id for the events of one message (a delivery, then its unsubscribe).

DROP INDEX events_provider_id;
CREATE UNIQUE INDEX events_provider_id ON events (tenant_id, source, provider_event_id, kind)
    WHERE provider_event_id IS NOT NULL;
