//! What every parser's fuzz target checks.

use logstream_core::format::{decode, lenient, Format};

/// Any bytes given to the `format` parser: an event or a rejection with a reason, never a
/// panic; an accepted event re-encodes as JSON without error; detection, and the lenient reading
/// of records that name no format, never panic either.
pub fn check(format: Format, data: &[u8]) {
    let now_ms = 1_800_000_000_000;
    if let Ok(event) = decode::decode(format, data, Some(b"svc"), now_ms) {
        assert!(logstream_core::json::encode(&event).is_ok());
    }
    let _ = decode::detect(data);
    if let Ok(decoded) = lenient::decode_record(None, data, Some(b"svc"), now_ms) {
        assert!(logstream_core::json::encode(&decoded.event).is_ok());
    }
}
