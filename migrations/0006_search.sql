-- Search of stored events (GET /api/v1/logs): newest first within a service and level without
-- sorting (the listing's order is event_time, kafka_partition, kafka_offset, all descending),
-- and words of the message (to_tsvector 'simple': lower-cased words, no stemming, no stop
-- words), which the `q` parameter matches with websearch_to_tsquery. Created on every daily
-- partition, present and future.
CREATE INDEX log_events_service_level_time
    ON log_events (service, level, event_time DESC, kafka_partition DESC, kafka_offset DESC);
CREATE INDEX log_events_message_words
    ON log_events USING gin (to_tsvector('simple'::regconfig, message));
