//! Syslog lines, RFC 5424 and RFC 3164 (BSD), facility `local0`.
//!
//! RFC 5424 carries the event whole: the level, component, trace ids and attributes go in one
//! structured-data element `[logstream@32473 ...]` (32473 is the example enterprise number of
//! RFC 5612), the service is the APP-NAME:
//!
//! `<134>1 2026-10-10T13:55:36.789Z web-1 orders - - [logstream@32473 level="INFO" component="api"] order 1 done`
//!
//! RFC 3164 carries what that format has room for: severity, time to the second without year
//! or zone (UTC here), host, tag (the service) and message:
//!
//! `<134>Oct 10 13:55:36 web-1 orders: order 1 done`

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};

use super::scan::{dash_none, push_one_line, push_token, Scan};
use super::ParseError;
use crate::event::{Level, LogEvent};

/// Facility `local0`.
pub const FACILITY: u8 = 16;
/// The SD-ID of logstream's structured-data element.
pub const SD_ID: &str = "logstream@32473";

/// The syslog severity of a level (TRACE and DEBUG both become 7, debug).
pub fn severity(level: Level) -> u8 {
    match level {
        Level::Fatal => 2,
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// The level of a syslog severity (0–2 FATAL, 3 ERROR, 4 WARN, 5–6 INFO, 7 DEBUG).
pub fn level_of(severity: u8) -> Level {
    match severity {
        0..=2 => Level::Fatal,
        3 => Level::Error,
        4 => Level::Warn,
        5 | 6 => Level::Info,
        _ => Level::Debug,
    }
}

/// One parsed RFC 5424 line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rfc5424 {
    pub facility: u8,
    pub severity: u8,
    pub timestamp_ms: Option<i64>,
    pub hostname: Option<String>,
    pub app_name: Option<String>,
    pub procid: Option<String>,
    pub msgid: Option<String>,
    /// Structured-data elements: SD-ID and its (name, value) parameters, in order.
    pub structured_data: Vec<(String, Vec<(String, String)>)>,
    pub message: String,
}

impl Rfc5424 {
    /// A parameter of logstream's own element.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.structured_data
            .iter()
            .filter(|(id, _)| id == SD_ID)
            .flat_map(|(_, params)| params)
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One parsed RFC 3164 line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rfc3164 {
    pub facility: u8,
    pub severity: u8,
    /// Whether the line had its `<PRI>`: lines as written to `/var/log/*.log` do not, and get
    /// RFC 3164's default (user.notice, §4.3.3).
    pub has_pri: bool,
    /// The line's time in the year given to [`parse_3164`], as UTC.
    pub timestamp_ms: i64,
    pub hostname: String,
    pub tag: Option<String>,
    pub pid: Option<String>,
    pub message: String,
}

fn push_pri(out: &mut Vec<u8>, level: Level) {
    out.push(b'<');
    out.extend_from_slice((FACILITY * 8 + severity(level)).to_string().as_bytes());
    out.push(b'>');
}

fn push_param(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push(b'\\');
        }
        if c.is_control() {
            out.push(b' ');
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out.push(b'"');
}

/// Appends the RFC 5424 line of `event`.
pub fn encode_5424_into(event: &LogEvent, out: &mut Vec<u8>) {
    push_pri(out, event.level);
    out.extend_from_slice(b"1 ");
    out.extend_from_slice(crate::json::format_timestamp(event.timestamp_ms).as_bytes());
    out.push(b' ');
    push_token(out, event.host.as_deref().unwrap_or(""), 255, true);
    out.push(b' ');
    push_token(out, &event.service, 48, true);
    out.extend_from_slice(b" - - [");
    out.extend_from_slice(SD_ID.as_bytes());
    push_param(out, "level", event.level.as_str());
    let optional = [
        ("component", &event.component),
        ("trace_id", &event.trace_id),
        ("span_id", &event.span_id),
        ("parent_id", &event.parent_id),
        ("attributes", &event.attributes),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            push_param(out, name, value);
        }
    }
    out.extend_from_slice(b"] ");
    push_one_line(out, &event.message);
}

/// Appends the RFC 3164 line of `event` (its time to the second, in UTC).
pub fn encode_3164_into(event: &LogEvent, out: &mut Vec<u8>) {
    push_pri(out, event.level);
    let time = DateTime::<Utc>::from_timestamp_millis(event.timestamp_ms).unwrap_or_default();
    out.extend_from_slice(time.format("%b %e %H:%M:%S").to_string().as_bytes());
    out.push(b' ');
    push_token(out, event.host.as_deref().unwrap_or("localhost"), 255, true);
    out.push(b' ');
    let tag: String = event
        .service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    out.extend_from_slice(if tag.is_empty() { "-" } else { &tag }.as_bytes());
    out.extend_from_slice(b": ");
    push_one_line(out, &event.message);
}

fn parse_pri(scan: &mut Scan<'_>) -> Result<(u8, u8), ParseError> {
    scan.expect(b'<', "syslog_bad_priority")?;
    let digits = scan.until(b'>');
    scan.expect(b'>', "syslog_bad_priority")?;
    let pri = digits
        .parse::<u8>()
        .ok()
        .filter(|p| digits.len() <= 3 && *p <= 191)
        .ok_or_else(|| ParseError::new("syslog_bad_priority", format!("<{digits}>")))?;
    Ok((pri / 8, pri % 8))
}

/// Parses one RFC 5424 line.
pub fn parse_5424(line: &str) -> Result<Rfc5424, ParseError> {
    let mut scan = Scan::new(line.trim_end_matches(['\r', '\n']));
    let (facility, severity) = parse_pri(&mut scan)?;
    if scan.token("syslog_bad_version")? != "1" {
        return Err(ParseError::new(
            "syslog_bad_version",
            "RFC 5424 version must be 1",
        ));
    }
    let mut header = [""; 5];
    for (i, field) in header.iter_mut().enumerate() {
        const REASONS: [&str; 5] = [
            "syslog_bad_timestamp",
            "syslog_bad_hostname",
            "syslog_bad_app_name",
            "syslog_bad_procid",
            "syslog_bad_msgid",
        ];
        scan.expect(b' ', REASONS[i])?;
        *field = scan.token(REASONS[i])?;
    }
    let timestamp_ms = match header[0] {
        "-" => None,
        t => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|e| ParseError::new("syslog_bad_timestamp", format!("{t:?}: {e}")))?
                .timestamp_millis(),
        ),
    };
    scan.expect(b' ', "syslog_bad_structured_data")?;
    let structured_data = parse_structured_data(&mut scan)?;
    let message = if scan.eat(b' ') {
        scan.rest().trim_start_matches('\u{feff}').to_owned()
    } else if scan.is_done() {
        String::new()
    } else {
        return Err(ParseError::new(
            "syslog_bad_structured_data",
            "expected a space before the message",
        ));
    };
    Ok(Rfc5424 {
        facility,
        severity,
        timestamp_ms,
        hostname: dash_none(header[1]),
        app_name: dash_none(header[2]),
        procid: dash_none(header[3]),
        msgid: dash_none(header[4]),
        structured_data,
        message,
    })
}

type Elements = Vec<(String, Vec<(String, String)>)>;

fn parse_structured_data(scan: &mut Scan<'_>) -> Result<Elements, ParseError> {
    const REASON: &str = "syslog_bad_structured_data";
    let mut elements = Vec::new();
    if scan.eat(b'-') {
        return Ok(elements);
    }
    while scan.peek() == Some(b'[') {
        scan.expect(b'[', REASON)?;
        let id = scan.token_until(b" ]", REASON)?.to_owned();
        let mut params = Vec::new();
        while scan.eat(b' ') {
            let name = scan.until(b'=').to_owned();
            if name.is_empty() || name.contains([' ', ']', '"']) {
                return Err(ParseError::new(
                    REASON,
                    format!("bad parameter name in [{id}"),
                ));
            }
            scan.expect(b'=', REASON)?;
            params.push((name, scan.sd_value(REASON)?));
        }
        scan.expect(b']', REASON)?;
        elements.push((id, params));
    }
    if elements.is_empty() {
        return Err(ParseError::new(REASON, "expected `-` or `[`"));
    }
    Ok(elements)
}

/// The facility and severity RFC 3164 gives a message without `<PRI>` (user.notice, §4.3.3).
const NO_PRI: (u8, u8) = (1, 5);

/// Parses one RFC 3164 line, with or without its `<PRI>` (without it, as syslog daemons write
/// `/var/log/*.log`); the format has no year, so `year` supplies it.
pub fn parse_3164(line: &str, year: i32) -> Result<Rfc3164, ParseError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let has_pri = line.starts_with('<');
    let mut scan = Scan::new(line);
    let (facility, severity) = if has_pri {
        parse_pri(&mut scan)?
    } else {
        NO_PRI
    };
    let stamp = scan.take(15, "syslog_bad_timestamp")?;
    let time = NaiveDateTime::parse_from_str(&format!("{year} {stamp}"), "%Y %b %e %H:%M:%S")
        .map_err(|e| ParseError::new("syslog_bad_timestamp", format!("{stamp:?}: {e}")))?;
    scan.expect(b' ', "syslog_bad_hostname")?;
    let hostname = scan.token("syslog_bad_hostname")?.to_owned();
    scan.expect(b' ', "syslog_bad_tag")?;
    let rest = scan.rest();
    // TAG[PID]: MSG — a tag is at most 32 characters without spaces; otherwise all is message.
    let tag_end = rest
        .find([':', '[', ' '])
        .filter(|&i| i > 0 && i <= 32 && rest.as_bytes()[i] != b' ');
    let (tag, pid, message) = match tag_end {
        Some(i) => {
            let tag = &rest[..i];
            let after = &rest[i..];
            let (pid, after) = match after.strip_prefix('[').and_then(|a| a.split_once(']')) {
                Some((pid, after)) => (Some(pid.to_owned()), after),
                None => (None, after),
            };
            match after.strip_prefix(':') {
                Some(message) => (
                    Some(tag.to_owned()),
                    pid,
                    message.strip_prefix(' ').unwrap_or(message),
                ),
                None => (None, None, rest),
            }
        }
        None => (None, None, rest),
    };
    Ok(Rfc3164 {
        facility,
        severity,
        has_pri,
        timestamp_ms: time.and_utc().timestamp_millis(),
        hostname,
        tag,
        pid,
        message: message.to_owned(),
    })
}

/// Whether `bytes` start as a BSD syslog line without `<PRI>` does: `Mmm dd hh:mm:ss ` (the
/// day padded with a space or a zero).
pub fn starts_with_bsd_timestamp(bytes: &[u8]) -> bool {
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let Some(stamp) = bytes.get(..16) else {
        return false;
    };
    let digit = |i: usize| stamp[i].is_ascii_digit();
    MONTHS.contains(&&stamp[..3])
        && stamp[3] == b' '
        && (stamp[4] == b' ' || digit(4))
        && digit(5)
        && stamp[6] == b' '
        && digit(7)
        && digit(8)
        && stamp[9] == b':'
        && digit(10)
        && digit(11)
        && stamp[12] == b':'
        && digit(13)
        && digit(14)
        && stamp[15] == b' '
}

/// The year of `timestamp_ms` (for [`parse_3164`] when the reader's clock is the reference).
pub fn year_of(timestamp_ms: i64) -> i32 {
    DateTime::<Utc>::from_timestamp_millis(timestamp_ms)
        .unwrap_or_default()
        .year()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event() -> LogEvent {
        LogEvent {
            timestamp_ms: 1_791_640_536_789,
            level: Level::Trace,
            service: "orders".into(),
            component: Some("api".into()),
            host: Some("web-1".into()),
            message: "order 1 done\nsecond line".into(),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            span_id: None,
            parent_id: None,
            attributes: Some(r#"{"a":"x]y\"z"}"#.into()),
        }
    }

    #[test]
    fn rfc5424_carries_the_whole_event() {
        let mut line = Vec::new();
        encode_5424_into(&event(), &mut line);
        let text = String::from_utf8(line).expect("utf8");
        assert_eq!(
            text,
            r#"<135>1 2026-10-10T13:55:36.789Z web-1 orders - - [logstream@32473 level="TRACE" component="api" trace_id="4bf92f3577b34da6a3ce929d0e0e4736" attributes="{\"a\":\"x\]y\\\"z\"}"] order 1 done second line"#
        );
        let parsed = parse_5424(&text).expect("parses");
        assert_eq!((parsed.facility, parsed.severity), (16, 7));
        assert_eq!(parsed.timestamp_ms, Some(1_791_640_536_789));
        assert_eq!(parsed.hostname.as_deref(), Some("web-1"));
        assert_eq!(parsed.app_name.as_deref(), Some("orders"));
        assert_eq!(parsed.param("level"), Some("TRACE"));
        assert_eq!(parsed.param("component"), Some("api"));
        assert_eq!(parsed.param("attributes"), Some(r#"{"a":"x]y\"z"}"#));
        assert_eq!(parsed.param("span_id"), None);
        assert_eq!(parsed.message, "order 1 done second line");
    }

    #[test]
    fn rfc5424_examples_of_the_rfc_parse() {
        let a = parse_5424("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8").expect("example 1");
        assert_eq!((a.facility, a.severity), (4, 2));
        assert_eq!(a.msgid.as_deref(), Some("ID47"));
        assert!(a.structured_data.is_empty());
        assert_eq!(a.message, "'su root' failed for lonvick on /dev/pts/8");
        let b = parse_5424(r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]"#).expect("example 3");
        assert_eq!(b.structured_data.len(), 2);
        assert_eq!(
            b.structured_data[1].1,
            vec![("class".to_owned(), "high".to_owned())]
        );
        assert_eq!(b.message, "");
        let c = parse_5424("<13>1 - - - - - -").expect("all nil");
        assert_eq!(c.timestamp_ms, None);
    }

    #[test]
    fn rfc3164_carries_what_it_has_room_for() {
        let mut line = Vec::new();
        encode_3164_into(&event(), &mut line);
        let text = String::from_utf8(line).expect("utf8");
        assert_eq!(
            text,
            "<135>Oct 10 13:55:36 web-1 orders: order 1 done second line"
        );
        let parsed = parse_3164(&text, 2026).expect("parses");
        assert_eq!(level_of(parsed.severity), Level::Debug);
        assert_eq!(parsed.timestamp_ms, 1_791_640_536_000);
        assert_eq!(parsed.hostname, "web-1");
        assert_eq!(parsed.tag.as_deref(), Some("orders"));
        assert_eq!(parsed.message, "order 1 done second line");
        let rfc = parse_3164(
            "<34>Oct  1 22:14:15 mymachine su[123]: 'su root' failed",
            2003,
        )
        .expect("rfc example");
        assert_eq!(rfc.pid.as_deref(), Some("123"));
        assert_eq!(rfc.tag.as_deref(), Some("su"));
        let untagged =
            parse_3164("<13>Oct  1 22:14:15 host just a message", 2003).expect("untagged");
        assert_eq!(untagged.tag, None);
        assert_eq!(untagged.message, "just a message");
    }

    #[test]
    fn broken_lines_are_errors_with_a_reason() {
        for (line, reason) in [
            ("", "syslog_bad_priority"),
            ("<999>1 - - - - - -", "syslog_bad_priority"),
            ("<13>2 - - - - - -", "syslog_bad_version"),
            ("<13>1 yesterday - - - - -", "syslog_bad_timestamp"),
            ("<13>1 - - - - - [x a=\"1]", "syslog_bad_structured_data"),
            ("<13>1 - - - - - x", "syslog_bad_structured_data"),
        ] {
            assert_eq!(
                parse_5424(line).map_err(|e| e.reason),
                Err(reason),
                "{line}"
            );
        }
        assert_eq!(
            parse_3164("<13>Foo 99 99:99:99 h t: m", 2020).map_err(|e| e.reason),
            Err("syslog_bad_timestamp")
        );
    }

    proptest! {
        #[test]
        fn never_panic(line in "\\PC{0,200}", year in 1i32..9999) {
            let _ = parse_5424(&line);
            let _ = parse_3164(&line, year);
        }

        #[test]
        fn rfc5424_round_trips(
            level in proptest::sample::select(Level::ALL.to_vec()),
            service in "[a-z][a-z0-9-]{0,20}", host in "[a-z0-9.][a-z0-9.-]{0,29}",
            component in proptest::option::of("[ -~]{1,20}"),
            attributes in proptest::option::of("[ -~\u{e9}]{0,40}"),
            message in "[ -~\u{e9}\u{4e2d}]{0,80}", ms in 0i64..253_402_300_799_999,
        ) {
            let event = LogEvent {
                timestamp_ms: ms, level, service, component, host: Some(host), message,
                trace_id: None, span_id: None, parent_id: None, attributes,
            };
            let mut line = Vec::new();
            encode_5424_into(&event, &mut line);
            let parsed = parse_5424(std::str::from_utf8(&line).expect("utf8")).expect("parses");
            prop_assert_eq!(parsed.timestamp_ms, Some(ms));
            prop_assert_eq!(parsed.param("level"), Some(level.as_str()));
            prop_assert_eq!(parsed.app_name.as_deref(), Some(event.service.as_str()));
            prop_assert_eq!(parsed.hostname.as_deref(), event.host.as_deref());
            prop_assert_eq!(parsed.param("component"), event.component.as_deref());
            prop_assert_eq!(parsed.param("attributes"), event.attributes.as_deref());
            prop_assert_eq!(parsed.message, event.message);
        }

        #[test]
        fn rfc3164_round_trips(
            level in proptest::sample::select(Level::ALL.to_vec()),
            service in "[a-z][a-z0-9-]{0,20}", host in "[a-z0-9.][a-z0-9.-]{0,29}",
            message in "[ -~\u{e9}]{0,80}", seconds in 0i64..253_402_300_799,
        ) {
            let event = LogEvent {
                timestamp_ms: seconds * 1000, level, service, component: None, host: Some(host),
                message, trace_id: None, span_id: None, parent_id: None, attributes: None,
            };
            let mut line = Vec::new();
            encode_3164_into(&event, &mut line);
            let parsed = parse_3164(std::str::from_utf8(&line).expect("utf8"), year_of(event.timestamp_ms))
                .expect("parses");
            prop_assert_eq!(parsed.timestamp_ms, event.timestamp_ms);
            prop_assert_eq!(level_of(parsed.severity), if level == Level::Trace { Level::Debug } else { level });
            prop_assert_eq!(Some(parsed.hostname), event.host.clone());
            prop_assert_eq!(parsed.tag.as_deref(), Some(event.service.as_str()));
            prop_assert_eq!(parsed.message, event.message);
        }
    }
}
