-- Detection: alert episodes written in the transaction of the batch that changed them, their
-- state changes queued for publication (logs.alerts, Alertmanager), and each partition's
-- detector state, snapshotted with the offset it reflects so a new owner can rebuild it.

-- One row per episode: `sample` holds the first few events' messages (a JSON array);
-- `source_partition` is the Kafka partition whose detectors keep it (an address attacking
-- services of two partitions makes an episode in each).
ALTER TABLE alerts
    ADD COLUMN source_partition integer NOT NULL DEFAULT -1,
    ADD COLUMN resolved_at timestamptz;
UPDATE alerts SET status = 'firing' WHERE status = 'open';
ALTER TABLE alerts ALTER COLUMN status SET DEFAULT 'firing';
CREATE UNIQUE INDEX alerts_episode_idx ON alerts (kind, key, first_seen, source_partition);
CREATE INDEX alerts_status_idx ON alerts (status, last_seen);

-- Alert state changes (fired, resolved) to publish, in commit order; each transition of an
-- episode once, however often a replay finds it again.
CREATE TABLE alert_outbox (
    id               bigserial   PRIMARY KEY,
    created_at       timestamptz NOT NULL DEFAULT now(),
    kind             text        NOT NULL,
    key              text        NOT NULL,
    first_seen       timestamptz NOT NULL,
    source_partition integer     NOT NULL,
    transition       text        NOT NULL,
    payload          jsonb       NOT NULL,
    -- When it was committed to logs.alerts (NULL: not yet).
    published_at     timestamptz,
    UNIQUE (kind, key, first_seen, source_partition, transition)
);
CREATE INDEX alert_outbox_unpublished_idx ON alert_outbox (id) WHERE published_at IS NULL;

-- The detectors' state of a partition as of `next_offset` (every record before it seen).
CREATE TABLE detector_snapshots (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    state       jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
