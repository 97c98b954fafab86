-- Event-time windows with watermarks, sliding windows and latency sketches; log_events
-- partitioned by day.

-- Window aggregates: sliding windows share the table (slide_seconds = window_seconds for tumbling
-- windows), access-log latencies are kept as a mergeable sketch (bucket counts, see
-- crates/core/src/sketch.rs), and closed_at says when the watermark passed the window's end.
ALTER TABLE log_window_aggregates
    ADD COLUMN slide_seconds integer,
    ADD COLUMN latency_buckets bigint[],
    ADD COLUMN closed_at timestamptz;
UPDATE log_window_aggregates SET slide_seconds = window_seconds;
ALTER TABLE log_window_aggregates
    ALTER COLUMN slide_seconds SET NOT NULL,
    DROP CONSTRAINT log_window_aggregates_pkey,
    ADD PRIMARY KEY (window_start, window_seconds, slide_seconds, service, level);
CREATE INDEX log_window_aggregates_open_idx ON log_window_aggregates (window_start)
    WHERE closed_at IS NULL;

-- Adds two sketches bucket by bucket (arrays of different lengths: the missing buckets are zero).
CREATE FUNCTION logstream_sketch_merge(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN a IS NULL THEN b
        WHEN b IS NULL THEN a
        ELSE (SELECT array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i)
              FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i))
    END
$$;

-- The highest event time seen per partition, stored with its offset: the watermark survives a
-- restart.
ALTER TABLE kafka_offsets ADD COLUMN max_event_time timestamptz;

-- log_events becomes a table partitioned by day of event time. The collector creates partitions
-- ahead and drops those older than the retention setting; rows already stored move over.
ALTER TABLE log_events RENAME TO log_events_unpartitioned;
ALTER INDEX log_events_event_time_brin RENAME TO log_events_unpartitioned_brin;
CREATE TABLE log_events (LIKE log_events_unpartitioned INCLUDING DEFAULTS)
    PARTITION BY RANGE (event_time);
CREATE INDEX log_events_event_time_brin ON log_events USING brin (event_time);

-- Creates the daily partition holding `day` (if missing); returns its name.
CREATE FUNCTION logstream_ensure_partition(day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'log_events_' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF log_events FOR VALUES FROM (%L) TO (%L)',
            name, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
    END IF;
    RETURN name;
END
$$;

DO $$
DECLARE
    d date;
BEGIN
    FOR d IN
        SELECT DISTINCT (event_time AT TIME ZONE 'UTC')::date FROM log_events_unpartitioned
        UNION SELECT (now() AT TIME ZONE 'UTC')::date
    LOOP
        PERFORM logstream_ensure_partition(d);
    END LOOP;
END
$$;
INSERT INTO log_events SELECT * FROM log_events_unpartitioned;
DROP TABLE log_events_unpartitioned;
