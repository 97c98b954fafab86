//! A text line into the event: in the format the sender names (read strictly: a line that is
//! not in it is rejected, saying why), or in whatever format it is (`auto`: a JSON object as
//! shippers write it ([`shipper_json`]), else read as the collector reads a record without a
//! `content-type`, so a line in no known format is a plain message).

use super::shipper_json::{self, Defaults};
use super::LineError;
use crate::event::LogEvent;
use crate::format::{decode, lenient, Format};

/// Most lines accept this: `auto`, or a format by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    Auto,
    Named(Format),
}

impl LineFormat {
    /// `auto` or a format name (`json`, `apache`, `syslog5424`, `syslog3164`).
    pub fn parse(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("auto") {
            return Some(LineFormat::Auto);
        }
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
            .map(LineFormat::Named)
    }
}

/// The event `line` stands for. `service` is the sender's default (a line's own service, such
/// as a syslog app-name, wins); `now_ms` the receiver's clock.
pub fn event_from_line(
    format: LineFormat,
    line: &[u8],
    service: &str,
    now_ms: i64,
) -> Result<LogEvent, LineError> {
    let key = Some(service.as_bytes()).filter(|s| !s.is_empty());
    match format {
        LineFormat::Auto if line.trim_ascii_start().starts_with(b"{") => {
            let defaults = Defaults { service, now_ms };
            match shipper_json::event_from_json(line, defaults) {
                // Not JSON after all: a plain line (or whatever else it is).
                Err(e) if e.reason == "invalid_json" => {
                    Ok(lenient::decode_record(None, line, key, now_ms)?.event)
                }
                read => read,
            }
        }
        LineFormat::Auto => Ok(lenient::decode_record(None, line, key, now_ms)?.event),
        LineFormat::Named(format) => Ok(decode::decode(format, line, key, now_ms)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Level;

    const NOW: i64 = 1_791_640_536_789;

    #[test]
    fn auto_reads_any_line_and_a_named_format_only_its_own() {
        let bsd = b"Nov 30 06:55:46 host sshd[24200]: Invalid user webmaster from 173.234.31.186";
        let e = event_from_line(LineFormat::Auto, bsd, "files", NOW).expect("event");
        assert_eq!(
            (e.service.as_str(), e.host.as_deref()),
            ("sshd", Some("host"))
        );
        let e = event_from_line(LineFormat::Auto, b"WARN low disk", "files", NOW).expect("event");
        assert_eq!((e.service.as_str(), e.level), ("files", Level::Warn));
        let strict = event_from_line(
            LineFormat::Named(Format::Apache),
            b"WARN low disk",
            "files",
            NOW,
        );
        assert_eq!(strict.map_err(|e| e.reason), Err("invalid_apache"));
        let shipped = br#"{"msg":"m","severity":"notice","@timestamp":"2026-10-10T13:55:36Z"}"#;
        let e = event_from_line(LineFormat::Auto, shipped, "files", NOW).expect("event");
        assert_eq!((e.service.as_str(), e.message.as_str()), ("files", "m"));
        let e = event_from_line(LineFormat::Auto, b"{not json", "files", NOW).expect("event");
        assert_eq!(e.message, "{not json");
    }

    #[test]
    fn format_names_parse() {
        assert_eq!(LineFormat::parse("AUTO"), Some(LineFormat::Auto));
        assert_eq!(
            LineFormat::parse("syslog3164"),
            Some(LineFormat::Named(Format::Syslog3164))
        );
        assert_eq!(LineFormat::parse("xml"), None);
    }
}
