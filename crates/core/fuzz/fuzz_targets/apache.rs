//! The apache parser under libFuzzer: see `logstream_core_fuzz::check`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logstream_core::format::Format;

fuzz_target!(|data: &[u8]| logstream_core_fuzz::check(Format::Apache, data));
