//! What the detectors read of an event beyond its level and service: the HTTP request of an
//! access-log event (its `http` attributes, as every format's decoder writes them), and the
//! login failures that daemons log (sshd, PAM).

use std::sync::LazyLock;

use serde::Deserialize;

use crate::event::LogEvent;
use crate::needle::Needle;

/// The request of an access-log event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Request {
    pub client_ip: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub user_agent: Option<String>,
}

#[derive(Deserialize)]
struct Attributes {
    http: Request,
}

/// The event's HTTP request, when its attributes carry one with a client address.
pub fn request(event: &LogEvent) -> Option<Request> {
    let attributes = event.attributes.as_deref()?;
    static HTTP: LazyLock<Needle> = LazyLock::new(|| Needle::new("\"http\""));
    if !HTTP.is_in(attributes) {
        return None;
    }
    let parsed: Attributes = serde_json::from_str(attributes).ok()?;
    (!parsed.http.client_ip.is_empty()).then_some(parsed.http)
}

/// A failed login: from where, and as whom (when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailure {
    pub ip: String,
    pub user: Option<String>,
}

/// Paths of login endpoints (lower case, anywhere in the path).
const LOGIN_PATHS: &[&str] = &[
    "login", "signin", "sign-in", "logon", "auth", "session", "token",
];

/// A failed login told by an access-log request: 401 or 403 on a login route.
pub fn failed_login(request: &Request) -> Option<LoginFailure> {
    if !matches!(request.status, 401 | 403) {
        return None;
    }
    let path = request
        .path
        .split('?')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    LOGIN_PATHS
        .iter()
        .any(|p| path.contains(p))
        .then(|| LoginFailure {
            ip: request.client_ip.clone(),
            user: request.user.clone().filter(|u| !u.is_empty() && u != "-"),
        })
}

/// A failed login told by a daemon's log line:
/// - sshd `Failed password for [invalid user ]NAME from IP port N ssh2`,
/// - sshd `Invalid user NAME from IP port N`,
/// - PAM `authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=IP  user=NAME`.
pub fn failed_daemon_login(message: &str) -> Option<LoginFailure> {
    static FAILED: LazyLock<Needle> = LazyLock::new(|| Needle::new("Failed password for "));
    static INVALID: LazyLock<Needle> = LazyLock::new(|| Needle::new("Invalid user "));
    static PAM: LazyLock<Needle> = LazyLock::new(|| Needle::new("authentication failure"));
    if let Some(rest) = FAILED.after(message) {
        let rest = rest.strip_prefix("invalid user ").unwrap_or(rest);
        let (user, rest) = rest.split_once(" from ")?;
        return Some(LoginFailure {
            ip: first_word(rest)?.to_owned(),
            user: Some(user.to_owned()),
        });
    }
    if let Some(rest) = INVALID.after(message) {
        let (user, rest) = rest.split_once(" from ")?;
        return Some(LoginFailure {
            ip: first_word(rest)?.to_owned(),
            user: Some(user.to_owned()),
        });
    }
    if PAM.is_in(message) {
        let ip = after(message, "rhost=").and_then(first_word)?;
        let user = after(message, " user=")
            .and_then(first_word)
            .map(str::to_owned);
        return Some(LoginFailure {
            ip: ip.to_owned(),
            user,
        });
    }
    None
}

fn after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.find(marker).map(|at| &text[at + marker.len()..])
}

fn first_word(text: &str) -> Option<&str> {
    text.split_whitespace().next().filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_failures_name_the_address_and_user() {
        let cases = [
            (
                "Failed password for invalid user admin from 203.0.113.7 port 52314 ssh2",
                Some(("203.0.113.7", Some("admin"))),
            ),
            (
                "Failed password for root from 2001:db8::1 port 22 ssh2",
                Some(("2001:db8::1", Some("root"))),
            ),
            ("Invalid user oracle from 198.51.100.4 port 40022", Some(("198.51.100.4", Some("oracle")))),
            (
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.9  user=alice",
                Some(("192.0.2.9", Some("alice"))),
            ),
            (
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.9",
                Some(("192.0.2.9", None)),
            ),
            ("Accepted password for alice from 192.0.2.9 port 22 ssh2", None),
            ("Failed password for", None),
        ];
        for (line, expected) in cases {
            let found = failed_daemon_login(line);
            let found = found.as_ref().map(|f| (f.ip.as_str(), f.user.as_deref()));
            assert_eq!(found, expected, "{line}");
        }
    }

    #[test]
    fn access_failures_are_401_or_403_on_login_routes() {
        let request = |path: &str, status| Request {
            client_ip: "192.0.2.1".into(),
            user: Some("bob".into()),
            method: "POST".into(),
            path: path.into(),
            status,
            user_agent: None,
        };
        assert!(failed_login(&request("/api/v1/login", 401)).is_some());
        assert!(failed_login(&request("/wp-login.php?x=1", 403)).is_some());
        assert!(failed_login(&request("/api/v1/login", 200)).is_none());
        assert!(failed_login(&request("/api/v1/orders", 401)).is_none());
    }

    #[test]
    fn requests_come_from_http_attributes() {
        let mut event = crate::detect::tests::event(0, crate::Level::Warn, "web", "GET /a");
        event.attributes = Some(
            r#"{"http":{"client_ip":"192.0.2.1","method":"GET","path":"/a?b=c","status":404,"user_agent":"curl/8"}}"#
                .into(),
        );
        let r = request(&event).expect("a request");
        assert_eq!(
            (r.client_ip.as_str(), r.status, r.path.as_str()),
            ("192.0.2.1", 404, "/a?b=c")
        );
        event.attributes = None;
        assert!(request(&event).is_none());
    }
}
