//! Apache access lines: the combined format plus the time taken in microseconds (`%D`),
//! `LogFormat "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\" %D"`:
//!
//! `203.0.113.9 - alice [10/Oct/2026:13:55:36 +0000] "GET /a?b=1 HTTP/1.1" 200 2326 "-" "curl/8.5" 5230`
//!
//! The parser also takes the plain combined and common formats (without `%D`, or without the
//! referer and user agent too).

use chrono::{DateTime, Utc};

use super::scan::{dash_none, push_one_line, push_quoted, push_token, Scan};
use super::ParseError;
use crate::event::HttpAccess;

const TIME_FORMAT: &str = "%d/%b/%Y:%H:%M:%S %z";

/// One parsed access line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLine {
    /// Whole seconds: the format has no finer resolution.
    pub timestamp_ms: i64,
    pub access: HttpAccess,
}

/// Appends the line for `access` at `timestamp_ms` (written to the second, in UTC).
pub fn encode_into(timestamp_ms: i64, access: &HttpAccess, out: &mut Vec<u8>) {
    push_token(out, &access.client_ip, 64, true);
    out.extend_from_slice(b" - ");
    push_token(out, access.user.as_deref().unwrap_or(""), 128, false);
    out.extend_from_slice(b" [");
    let time = DateTime::<Utc>::from_timestamp_millis(timestamp_ms).unwrap_or_default();
    out.extend_from_slice(time.format(TIME_FORMAT).to_string().as_bytes());
    out.extend_from_slice(b"] ");
    let mut request = Vec::with_capacity(access.path.len() + 16);
    push_one_line(&mut request, &access.method);
    request.push(b' ');
    push_one_line(&mut request, &access.path);
    request.push(b' ');
    push_one_line(&mut request, &access.protocol);
    push_quoted(out, &String::from_utf8_lossy(&request));
    out.push(b' ');
    out.extend_from_slice(access.status.to_string().as_bytes());
    out.push(b' ');
    match access.bytes {
        Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
        None => out.push(b'-'),
    }
    out.push(b' ');
    push_quoted(out, access.referer.as_deref().unwrap_or("-"));
    out.push(b' ');
    push_quoted(out, access.user_agent.as_deref().unwrap_or("-"));
    if let Some(us) = access.latency_us {
        out.push(b' ');
        out.extend_from_slice(us.to_string().as_bytes());
    }
}

/// Parses one access line (combined + `%D`, combined, or common).
pub fn parse(line: &str) -> Result<AccessLine, ParseError> {
    let mut scan = Scan::new(line.trim_end_matches(['\r', '\n']));
    let client_ip = scan.token("apache_bad_host")?.to_owned();
    scan.expect(b' ', "apache_bad_host")?;
    scan.token("apache_bad_ident")?;
    scan.expect(b' ', "apache_bad_ident")?;
    let user = dash_none(scan.token("apache_bad_user")?);
    scan.expect(b' ', "apache_bad_user")?;
    scan.expect(b'[', "apache_bad_time")?;
    let time = scan.until(b']');
    scan.expect(b']', "apache_bad_time")?;
    let timestamp_ms = DateTime::parse_from_str(time, TIME_FORMAT)
        .map_err(|e| ParseError::new("apache_bad_time", format!("{time:?}: {e}")))?
        .timestamp_millis();
    scan.expect(b' ', "apache_bad_request")?;
    let request = scan.quoted("apache_bad_request")?;
    let (method, path, protocol) = split_request(&request);
    scan.expect(b' ', "apache_bad_status")?;
    let status = scan
        .token("apache_bad_status")?
        .parse::<u16>()
        .ok()
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| ParseError::new("apache_bad_status", "status is not a 3-digit number"))?;
    scan.expect(b' ', "apache_bad_bytes")?;
    let bytes = match scan.token("apache_bad_bytes")? {
        "-" => None,
        n => Some(
            n.parse::<u64>()
                .map_err(|_| ParseError::new("apache_bad_bytes", format!("{n:?} is not a size")))?,
        ),
    };
    let (mut referer, mut user_agent, mut latency_us) = (None, None, None);
    if scan.eat(b' ') {
        referer = dash_none(&scan.quoted("apache_bad_referer")?);
        scan.expect(b' ', "apache_bad_user_agent")?;
        user_agent = dash_none(&scan.quoted("apache_bad_user_agent")?);
        if scan.eat(b' ') {
            let us = scan.token("apache_bad_latency")?;
            latency_us = Some(us.parse::<u64>().map_err(|_| {
                ParseError::new("apache_bad_latency", format!("{us:?} is not microseconds"))
            })?);
        }
    }
    if !scan.is_done() {
        return Err(ParseError::new(
            "apache_trailing_data",
            format!("unexpected {:?}", scan.rest()),
        ));
    }
    Ok(AccessLine {
        timestamp_ms,
        access: HttpAccess {
            client_ip,
            user,
            method,
            path,
            protocol,
            status,
            bytes,
            referer,
            user_agent,
            latency_us,
        },
    })
}

/// `METHOD PATH PROTOCOL`; a request line of another shape (e.g. `-` for a timed-out
/// connection) is kept whole as the path.
fn split_request(request: &str) -> (String, String, String) {
    match (request.find(' '), request.rfind(' ')) {
        (Some(first), Some(last)) if first < last => (
            request[..first].to_owned(),
            request[first + 1..last].to_owned(),
            request[last + 1..].to_owned(),
        ),
        _ => (String::new(), request.to_owned(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> HttpAccess {
        HttpAccess {
            client_ip: "203.0.113.9".into(),
            user: Some("alice".into()),
            method: "GET".into(),
            path: "/search?q=\"a b\"\\x".into(),
            protocol: "HTTP/1.1".into(),
            status: 404,
            bytes: Some(2326),
            referer: None,
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
            latency_us: Some(5230),
        }
    }

    #[test]
    fn encodes_the_combined_format_and_parses_it_back() {
        let mut line = Vec::new();
        encode_into(1_791_640_536_789, &sample(), &mut line);
        let text = String::from_utf8(line).expect("utf8");
        assert_eq!(
            text,
            r#"203.0.113.9 - alice [10/Oct/2026:13:55:36 +0000] "GET /search?q=\"a b\"\\x HTTP/1.1" 404 2326 "-" "Mozilla/5.0 (X11; Linux x86_64)" 5230"#
        );
        let parsed = parse(&text).expect("parses");
        assert_eq!(parsed.timestamp_ms, 1_791_640_536_000);
        assert_eq!(parsed.access, sample());
    }

    #[test]
    fn takes_common_and_plain_combined_lines() {
        let common = parse(r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#)
            .expect("common");
        assert_eq!(common.timestamp_ms, 971_211_336_000);
        assert_eq!(common.access.user.as_deref(), Some("frank"));
        assert_eq!(common.access.referer, None);
        let combined =
            parse(r#"127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "-" 408 - "http://x/" "curl""#)
                .expect("combined");
        assert_eq!(combined.access.path, "-");
        assert_eq!(combined.access.bytes, None);
        assert_eq!(combined.access.referer.as_deref(), Some("http://x/"));
        assert_eq!(combined.access.latency_us, None);
    }

    #[test]
    fn rejects_broken_lines_with_a_reason() {
        for (line, reason) in [
            ("", "apache_bad_host"),
            (
                "1.2.3.4 - - [nope] \"GET / HTTP/1.1\" 200 1",
                "apache_bad_time",
            ),
            (
                "1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] \"GET / HTTP/1.1 200 1",
                "apache_bad_request",
            ),
            (
                "1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] \"GET / HTTP/1.1\" 20x 1",
                "apache_bad_status",
            ),
            (
                "1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\" 5 x",
                "apache_trailing_data",
            ),
        ] {
            assert_eq!(parse(line).map_err(|e| e.reason), Err(reason), "{line}");
        }
    }

    fn token() -> impl Strategy<Value = String> {
        "[!-~&&[^\"]]{1,20}".prop_filter("not a dash", |s| s != "-")
    }

    proptest! {
        #[test]
        fn never_panics(line in "\\PC{0,200}") {
            let _ = parse(&line);
        }

        #[test]
        fn round_trips(
            ip in token(), user in proptest::option::of(token()), method in "[A-Z]{3,7}",
            path in "/[ -~]{0,60}", status in 100u16..600, bytes in proptest::option::of(0u64..1 << 40),
            referer in proptest::option::of("[ -~]{1,40}".prop_filter("not a dash", |s| s != "-")),
            agent in proptest::option::of("[ -~\u{e9}\u{4e2d}]{1,40}".prop_filter("not a dash", |s| s != "-")),
            latency in proptest::option::of(0u64..10_000_000_000), seconds in 0i64..253_402_300_799,
        ) {
            let access = HttpAccess {
                client_ip: ip, user, method, path, protocol: "HTTP/2.0".into(), status, bytes,
                referer, user_agent: agent,
                latency_us: latency,
            };
            let mut line = Vec::new();
            encode_into(seconds * 1000, &access, &mut line);
            let parsed = parse(std::str::from_utf8(&line).expect("utf8")).expect("parses");
            prop_assert_eq!(parsed.timestamp_ms, seconds * 1000);
            prop_assert_eq!(parsed.access, access);
        }
    }
}
