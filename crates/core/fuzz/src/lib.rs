//! What every parser's fuzz target checks.

use logstream_core::format::{decode, Format};

/// Any bytes given to the `format` parser: an event or a rejection with a reason, never a
/// panic; an accepted event re-encodes as JSON without error; detection never panics either.
pub fn check(format: Format, data: &[u8]) {
    let now_ms = 1_800_000_000_000;
    if let Ok(event) = decode::decode(format, data, Some(b"svc"), now_ms) {
        assert!(logstream_core::json::encode(&event).is_ok());
    }
    let _ = decode::detect(data);
}
