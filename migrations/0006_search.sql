-- Search of stored events (GET /api/v1/logs): a service and level's events newest first
-- without sorting them (the listing's order is event_time, then kafka_partition and
-- kafka_offset, all descending; ties on event_time are few). Created on every daily partition,
-- present and future. It costs ingest (measured with e2e-bench, see the README's Search section);
-- the full-text index over the message's words is optional (LOGSTREAM_SEARCH_TEXT_INDEX) as it
-- costs far more.
CREATE INDEX log_events_service_level_time ON log_events (service, level, event_time);
