-- Where each archive (an S3 route) stands in each partition of the topic it reads. A segment
-- of offsets is claimed (pending_last) before its objects are uploaded and completed (next_offset
-- moves past it) after: after a crash the next owner closes the segment at pending_last again,
-- so the same objects are written under the same keys, never a second, overlapping span.
CREATE TABLE archive_progress (
    destination  text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    next_offset  bigint      NOT NULL,
    pending_last bigint,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (destination, topic, partition),
    CHECK (pending_last IS NULL OR pending_last >= next_offset)
);
