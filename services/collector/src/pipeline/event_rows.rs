//! The `log_events` table as the pipeline fills it: the columns of its binary `COPY` rows, one
//! event encoded as such a row, and the day partitioning. Pure: the sink sends the rows.

use logstream_core::copy;
use logstream_core::LogEvent as Event;

use crate::messages::Record;

/// The columns the `COPY` rows fill, in order.
pub const COPY_COLUMNS: &str =
    "event_time, level, service, component, host, message, trace_id, span_id, \
     parent_id, attributes, instance_id, seq, kafka_partition, kafka_offset";

/// How many columns [`COPY_COLUMNS`] names.
const COPY_FIELDS: i16 = 14;

/// Milliseconds in a day: `log_events` has one partition per UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// The UTC day (since the epoch) of an event time: the `log_events` partition it goes to.
pub fn day_of(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(DAY_MS)
}

/// Appends `event`, read from `record`, as one binary `COPY` row of [`COPY_COLUMNS`].
pub fn push_row(rows: &mut Vec<u8>, event: &Event, record: &Record) {
    copy::begin_row(rows, COPY_FIELDS);
    copy::push_timestamptz_ms(rows, event.timestamp_ms);
    copy::push_text(rows, event.level.as_str());
    copy::push_text(rows, &event.service);
    copy::push_opt_text(rows, event.component.as_deref());
    copy::push_opt_text(rows, event.host.as_deref());
    copy::push_text(rows, &event.message);
    copy::push_opt_text(rows, event.trace_id.as_deref());
    copy::push_opt_text(rows, event.span_id.as_deref());
    copy::push_opt_text(rows, event.parent_id.as_deref());
    copy::push_opt_jsonb(rows, event.attributes.as_deref());
    copy::push_opt_text(rows, record.instance_id.as_deref());
    match record.seq {
        Some(seq) => copy::push_i64(rows, seq),
        None => copy::push_null(rows),
    }
    copy::push_i32(rows, record.partition);
    copy::push_i64(rows, record.offset);
}
