-- Events the collector counted (windows, stats, detection) but whose raw row it did not store
-- because it sampled under lag (LOGSTREAM_SAMPLE_LAG_SECONDS), per instance-id: with the
-- stored rows, every event consumed is accounted for exactly. Updated in each batch's
-- transaction.
CREATE TABLE log_events_sampled_out (
    instance_id text        PRIMARY KEY,
    events      bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
