-- logstream's schema. The collector owns it and applies it at start (sqlx migrations).

-- Stored log events. Bounded by the collector's retention setting (LOGSTREAM_RETENTION_HOURS).
CREATE TABLE log_events (
    event_time      timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    level           text        NOT NULL,
    service         text        NOT NULL,
    component       text,
    host            text,
    message         text        NOT NULL,
    trace_id        text,
    span_id         text,
    parent_id       text,
    attributes      jsonb,
    -- Producing generator instance and its per-instance sequence number (loss/duplicate accounting).
    instance_id     text,
    seq             bigint,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL
);
CREATE INDEX log_events_event_time_brin ON log_events USING brin (event_time);

-- Counts per event-time window, written in the same transaction as the events they count.
CREATE TABLE log_window_aggregates (
    window_start   timestamptz NOT NULL,
    window_seconds integer     NOT NULL,
    service        text        NOT NULL,
    level          text        NOT NULL,
    event_count    bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, window_seconds, service, level)
);

-- Alerts raised by the collector's detectors.
CREATE TABLE alerts (
    id         bigserial   PRIMARY KEY,
    kind       text        NOT NULL,
    severity   text        NOT NULL,
    key        text        NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    count      bigint      NOT NULL DEFAULT 1,
    sample     jsonb,
    status     text        NOT NULL DEFAULT 'open'
);
CREATE INDEX alerts_last_seen_idx ON alerts (last_seen);

-- The next Kafka offset to consume per partition, written in the same transaction as the data
-- it covers: the collector resumes from here, so a crash neither loses nor double-counts.
CREATE TABLE kafka_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
