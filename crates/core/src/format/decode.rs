//! Any record, whatever its format, into the one normalised event (the collector's decoder).
//!
//! The format comes from the record's `content-type` header, or is detected from the bytes when
//! there is none: `{` starts JSON, `<PRI>1 ` RFC 5424, another `<PRI>` RFC 3164, as does a BSD
//! timestamp (`Nov 30 06:55:46 `, syslog lines as written to `/var/log/*.log`), anything else is
//! taken for an Apache access line. Formats without a service name take it from the record key
//! (the generator keys records by service), else from the format (`apache`, `syslog`).
//!
//! This module reads a record in the format it is given, strictly; [`super::lenient`] reads a
//! record that names no format as the collector does (lines in no known format kept as plain
//! messages).

use super::{apache, level_marker, syslog, Format};
use crate::event::{Level, LogEvent};
use crate::json::{self, DecodeError, MAX_SERVICE_LEN, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};

/// Why a record cannot be stored: `reason` is a short stable label (the DLQ metric's label and
/// header), `detail` says what exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejected {
    pub reason: &'static str,
    pub detail: String,
}

/// The `content-type` header names no format this build reads.
pub const UNSUPPORTED_CONTENT_TYPE: &str = "unsupported_content_type";

/// Every reason [`decode`] can give: the JSON codec's, then the line formats'.
pub const REASONS: [&str; 10] = [
    DecodeError::REASONS[0],
    DecodeError::REASONS[1],
    DecodeError::REASONS[2],
    DecodeError::REASONS[3],
    DecodeError::REASONS[4],
    DecodeError::REASONS[5],
    "invalid_apache",
    "invalid_syslog5424",
    "invalid_syslog3164",
    UNSUPPORTED_CONTENT_TYPE,
];

impl From<DecodeError> for Rejected {
    fn from(e: DecodeError) -> Self {
        Self {
            reason: e.reason(),
            detail: e.to_string(),
        }
    }
}

fn rejected(reason: &'static str, detail: impl ToString) -> Rejected {
    Rejected {
        reason,
        detail: detail.to_string(),
    }
}

/// The format of a record: named by its `content-type` header, else detected from its bytes.
pub fn format_of(content_type: Option<&str>, bytes: &[u8]) -> Result<Format, Rejected> {
    match content_type {
        Some(ct) => Format::from_content_type(ct).ok_or_else(|| {
            rejected(
                UNSUPPORTED_CONTENT_TYPE,
                format!("content-type {ct:?} is none of the supported formats"),
            )
        }),
        None => Ok(detect(bytes)),
    }
}

/// The format the bytes look like.
pub fn detect(bytes: &[u8]) -> Format {
    let start = bytes.trim_ascii_start();
    match start.first() {
        Some(b'{') => Format::Json,
        Some(b'<') => {
            let after_pri = start
                .iter()
                .position(|&b| b == b'>')
                .map(|i| &start[i + 1..]);
            if after_pri.is_some_and(|rest| rest.starts_with(b"1 ")) {
                Format::Syslog5424
            } else {
                Format::Syslog3164
            }
        }
        _ if syslog::starts_with_bsd_timestamp(start) => Format::Syslog3164,
        _ => Format::Apache,
    }
}

/// Decodes one record of `format`. `key` is the record key; `now_ms` dates RFC 5424 lines
/// without a time and gives RFC 3164 lines their year.
pub fn decode(
    format: Format,
    bytes: &[u8],
    key: Option<&[u8]>,
    now_ms: i64,
) -> Result<LogEvent, Rejected> {
    if format == Format::Json {
        return Ok(json::decode(bytes)?);
    }
    let line = std::str::from_utf8(bytes)
        .map_err(|e| Rejected::from(DecodeError::InvalidUtf8(e.to_string())))?;
    decode_text(format, line, key, now_ms)
}

/// [`decode`] of a record already known to be text.
pub(super) fn decode_text(
    format: Format,
    line: &str,
    key: Option<&[u8]>,
    now_ms: i64,
) -> Result<LogEvent, Rejected> {
    let key = key
        .and_then(|k| std::str::from_utf8(k).ok())
        .filter(|k| !k.is_empty());
    let event = match format {
        Format::Json => return Ok(json::decode(line.as_bytes())?),
        Format::Apache => from_apache(line, key)?,
        Format::Syslog5424 => from_5424(line, key, now_ms)?,
        Format::Syslog3164 => from_3164(line, key, now_ms)?,
    };
    checked(event)
}

/// `event`, when its time and service are within the bounds every format has.
pub(super) fn checked(event: LogEvent) -> Result<LogEvent, Rejected> {
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&event.timestamp_ms) {
        return Err(rejected("invalid_timestamp", event.timestamp_ms));
    }
    if event.service.len() > MAX_SERVICE_LEN {
        return Err(rejected(
            "invalid_field",
            format!("service must be at most {MAX_SERVICE_LEN} bytes"),
        ));
    }
    Ok(event)
}

fn from_apache(line: &str, key: Option<&str>) -> Result<LogEvent, Rejected> {
    let parsed = apache::parse(line).map_err(|e| rejected("invalid_apache", e))?;
    let access = parsed.access;
    Ok(LogEvent {
        timestamp_ms: parsed.timestamp_ms,
        level: access.level(),
        service: key.unwrap_or("apache").to_owned(),
        component: Some("access".to_owned()),
        host: None,
        message: access.message(),
        trace_id: None,
        span_id: None,
        parent_id: None,
        attributes: Some(access.attributes()),
    })
}

fn from_5424(line: &str, key: Option<&str>, now_ms: i64) -> Result<LogEvent, Rejected> {
    const REASON: &str = "invalid_syslog5424";
    let parsed = syslog::parse_5424(line).map_err(|e| rejected(REASON, e))?;
    let level = match parsed.param("level") {
        Some(name) => name.parse::<Level>().map_err(|e| rejected(REASON, e))?,
        None => syslog::level_of(parsed.severity),
    };
    let attributes = match parsed.param("attributes") {
        None => None,
        Some(raw) => Some(json::storable_json(raw).map_err(|e| rejected(REASON, e))?),
    };
    let param = |name: &str| {
        parsed
            .param(name)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Ok(LogEvent {
        timestamp_ms: parsed.timestamp_ms.unwrap_or(now_ms),
        level,
        service: parsed
            .app_name
            .clone()
            .or_else(|| key.map(str::to_owned))
            .unwrap_or_else(|| "syslog".to_owned()),
        component: param("component").or_else(|| parsed.msgid.clone()),
        host: parsed.hostname.clone(),
        trace_id: param("trace_id"),
        span_id: param("span_id"),
        parent_id: param("parent_id"),
        attributes,
        message: parsed.message,
    })
}

fn from_3164(line: &str, key: Option<&str>, now_ms: i64) -> Result<LogEvent, Rejected> {
    const REASON: &str = "invalid_syslog3164";
    const DAY_MS: i64 = 86_400_000;
    let year = syslog::year_of(now_ms);
    let mut parsed = syslog::parse_3164(line, year).map_err(|e| rejected(REASON, e))?;
    // No year on the line: one more than a day ahead of now is last year's (December lines
    // read in January).
    if parsed.timestamp_ms > now_ms + DAY_MS {
        parsed = syslog::parse_3164(line, year - 1).map_err(|e| rejected(REASON, e))?;
    }
    // Without `<PRI>` the severity is RFC 3164's default: the level is what the message says.
    let level = if parsed.has_pri {
        syslog::level_of(parsed.severity)
    } else {
        level_marker::level_in(&parsed.message).unwrap_or(Level::Info)
    };
    Ok(LogEvent {
        timestamp_ms: parsed.timestamp_ms,
        level,
        service: parsed
            .tag
            .or_else(|| key.map(str::to_owned))
            .unwrap_or_else(|| "syslog".to_owned()),
        component: None,
        host: Some(parsed.hostname).filter(|h| h != "-"),
        message: parsed.message,
        trace_id: None,
        span_id: None,
        parent_id: None,
        attributes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Synthesizer;

    const NOW: i64 = 1_791_640_536_789; // 2026-10-10T13:55:36.789Z

    fn round_trip(
        format: Format,
        event: &LogEvent,
        access: Option<&crate::HttpAccess>,
    ) -> LogEvent {
        let mut bytes = Vec::new();
        let written =
            super::super::encode_into(format, event, access, &mut bytes).expect("encodes");
        assert_eq!(written, format);
        assert_eq!(
            detect(&bytes),
            format,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        let format = format_of(Some(format.content_type()), &bytes).expect("known");
        decode(format, &bytes, Some(event.service.as_bytes()), NOW).expect("decodes")
    }

    #[test]
    fn every_format_decodes_into_the_fields_it_carries() {
        let mut synth = Synthesizer::new(5, "web-1");
        for i in 0..500 {
            let at = NOW - i * 1_337;
            let event = synth.next_event(at);
            assert_eq!(round_trip(Format::Json, &event, None), event);
            assert_eq!(round_trip(Format::Syslog5424, &event, None), event);
            let bsd = round_trip(Format::Syslog3164, &event, None);
            assert_eq!(bsd.timestamp_ms, at - at.rem_euclid(1000));
            assert_eq!(
                bsd.level,
                if event.level == Level::Trace {
                    Level::Debug
                } else {
                    event.level
                }
            );
            assert_eq!(
                (&bsd.service, &bsd.host, &bsd.message),
                (&event.service, &event.host, &event.message)
            );

            let (event, access) = synth.next_access(at);
            let apache = round_trip(Format::Apache, &event, Some(&access));
            assert_eq!(apache.timestamp_ms, at - at.rem_euclid(1000));
            assert_eq!(
                (
                    apache.level,
                    &apache.service,
                    &apache.message,
                    &apache.attributes
                ),
                (
                    event.level,
                    &event.service,
                    &event.message,
                    &event.attributes
                )
            );
        }
    }

    #[test]
    fn rfc3164_lines_from_last_december_read_in_january() {
        let january = 1_767_312_000_000; // 2026-01-02T00:00:00Z
        let event = decode(
            Format::Syslog3164,
            b"<134>Dec 31 23:59:59 h app: bye",
            None,
            january,
        )
        .expect("decodes");
        assert_eq!(event.timestamp_ms, 1_767_225_599_000); // 2025-12-31T23:59:59Z
    }

    #[test]
    fn syslog_lines_as_written_to_var_log_decode_without_a_content_type() {
        // (line, service, host, level, message)
        type Case<'a> = (&'a [u8], &'a str, Option<&'a str>, Level, &'a str);
        let cases: [Case; 4] = [
            (
                b"Nov 30 06:55:46 host sshd[24200]: Invalid user webmaster from 173.234.31.186",
                "sshd",
                Some("host"),
                Level::Info,
                "Invalid user webmaster from 173.234.31.186",
            ),
            (
                b"Dec  1 09:00:01 web-1 CRON[812]: (root) CMD (run-parts /etc/cron.hourly)\n",
                "CRON",
                Some("web-1"),
                Level::Info,
                "(root) CMD (run-parts /etc/cron.hourly)",
            ),
            (
                b"Dec 01 09:00:02 db kernel: EXT4-fs ERROR (device sda1): bad block",
                "kernel",
                Some("db"),
                Level::Error,
                "EXT4-fs ERROR (device sda1): bad block",
            ),
            (
                b"Oct 10 13:55:36 db postgres[77]: [3-1] FATAL:  password authentication failed",
                "postgres",
                Some("db"),
                Level::Fatal,
                "[3-1] FATAL:  password authentication failed",
            ),
        ];
        for (line, service, host, level, message) in cases {
            let format = format_of(None, line).expect("detected");
            assert_eq!(
                format,
                Format::Syslog3164,
                "{}",
                String::from_utf8_lossy(line)
            );
            let event = decode(format, line, None, NOW).expect("decodes");
            assert_eq!(
                (
                    event.service.as_str(),
                    event.host.as_deref(),
                    event.level,
                    event.message.as_str()
                ),
                (service, host, level, message)
            );
        }
        let with_pri = decode(
            Format::Syslog3164,
            b"<11>Nov 30 06:55:46 h app: INFO fine",
            None,
            NOW,
        );
        assert_eq!(
            with_pri.map(|e| e.level),
            Ok(Level::Error),
            "<PRI> decides when present"
        );
        assert_eq!(detect(b"Nov 30 garbage"), Format::Apache);
    }

    #[test]
    fn bad_records_are_rejected_with_their_format_s_reason() {
        let cases: [(Option<&str>, &[u8], &str); 6] = [
            (Some("text/xml"), b"<a/>", UNSUPPORTED_CONTENT_TYPE),
            (None, b"{nope", "invalid_json"),
            (None, b"garbage", "invalid_apache"),
            (None, b"<13>1 yesterday - - - - -", "invalid_syslog5424"),
            (None, b"<13>Foo", "invalid_syslog3164"),
            (Some("text/apache-combined"), b"\xff\xfe", "invalid_utf8"),
        ];
        for (content_type, bytes, reason) in cases {
            let got = format_of(content_type, bytes).and_then(|f| decode(f, bytes, None, NOW));
            let got = got.map_err(|e| e.reason);
            assert_eq!(got, Err(reason), "{}", String::from_utf8_lossy(bytes));
            assert!(REASONS.contains(&reason));
        }
        let level = decode(
            Format::Syslog5424,
            br#"<13>1 - - app - - [logstream@32473 level="LOUD"] x"#,
            None,
            NOW,
        );
        assert_eq!(level.map_err(|e| e.reason), Err("invalid_syslog5424"));
    }

    #[test]
    fn every_json_reason_is_a_decode_reason() {
        for reason in DecodeError::REASONS {
            assert!(REASONS.contains(&reason), "{reason}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
                        now in -10_000_000_000_000i64..300_000_000_000_000) {
            for format in Format::ALL {
                let _ = decode(format, &bytes, Some(b"svc"), now);
            }
            let _ = detect(&bytes);
        }
    }
}
