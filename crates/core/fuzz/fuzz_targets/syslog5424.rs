//! Any bytes given to the syslog5424 parser: an event or a rejection with a reason, never a panic;
//! an accepted event re-encodes as JSON without error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logstream_core::format::{decode, Format};

fuzz_target!(|data: &[u8]| {
    check(Format::Syslog5424, data);
});

fn check(format: Format, data: &[u8]) {
    let now_ms = 1_800_000_000_000;
    if let Ok(event) = decode::decode(format, data, Some(b"svc"), now_ms) {
        assert!(logstream_core::json::encode(&event).is_ok());
    }
    let _ = decode::detect(data);
}
