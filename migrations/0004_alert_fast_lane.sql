-- Critical alerts take a fast lane: the collector that reads the event inserts the transition's
-- outbox row at once (claimed), publishes it to logs.alerts and notes when it did, before the
-- batch holding the event commits (the batch's own insert of the same row then does nothing).
-- The publisher marks such rows published without sending them again; a row claimed and not
-- published within 30 s (the claiming collector died) is published by the publisher.
ALTER TABLE alert_outbox
    ADD COLUMN fast_claimed_at   timestamptz,
    ADD COLUMN fast_published_at timestamptz;
