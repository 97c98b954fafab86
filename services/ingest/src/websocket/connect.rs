//! An upstream's address (`ws://` or `wss://` URL) and one connection to it: TCP, then TLS for
//! `wss://` (rustls, the certificates of `LOGSTREAM_WS_CA_FILE`), then the WebSocket handshake,
//! with the frame size limit set so a larger frame is refused from its header, never buffered.
//! The caller bounds the whole with the connect timeout.

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

/// Where an upstream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as configured (the handshake's request).
    pub url: String,
    /// The URL as shown: without user name or password.
    pub shown: String,
    /// The host, without brackets around an IPv6 address.
    pub host: String,
    pub port: u16,
    /// `wss://`.
    pub tls: bool,
}

/// Why a URL is not an upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} is not a URL: {1}")]
    Invalid(String, String),
    #[error("{0:?} is not a ws:// or wss:// URL")]
    Scheme(String),
    #[error("{0:?} names no host")]
    NoHost(String),
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        // The handshake knows the schemes in lower case only.
        let url = match url.split_once("://") {
            Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
            None => url.to_owned(),
        };
        let shown = without_credentials(&url);
        let uri = url
            .parse::<Uri>()
            .map_err(|e| TargetError::Invalid(shown.clone(), e.to_string()))?;
        let tls = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err(TargetError::Scheme(shown)),
        };
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .filter(|h| !h.is_empty())
            .ok_or_else(|| TargetError::NoHost(shown.clone()))?
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self {
            url,
            shown,
            host,
            port,
            tls,
        })
    }
}

/// `url` without the `user:password@` of its authority, if any.
fn without_credentials(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Any byte stream a WebSocket runs over (TCP, or TLS over TCP).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open connection to an upstream.
pub type Socket = WebSocketStream<Box<dyn Io>>;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("tcp connection to {0}: {1}")]
    Tcp(String, std::io::Error),
    #[error("tls: {0:?} is not a valid server name")]
    ServerName(String),
    #[error("tls: wss:// without a TLS client (LOGSTREAM_WS_CA_FILE)")]
    NoTls,
    #[error("tls handshake: {0}")]
    Tls(std::io::Error),
    #[error("websocket handshake: {0}")]
    Handshake(Box<tokio_tungstenite::tungstenite::Error>),
}

/// Connects to `target` and makes the WebSocket handshake with `config`'s limits.
pub async fn dial(
    target: &Target,
    tls: Option<&TlsConnector>,
    config: WebSocketConfig,
) -> Result<Socket, DialError> {
    let host = target.host.as_str();
    let tcp = TcpStream::connect((host, target.port))
        .await
        .map_err(|e| DialError::Tcp(format!("{host}:{}", target.port), e))?;
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let stream: Box<dyn Io> = if target.tls {
        let connector = tls.ok_or(DialError::NoTls)?;
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| DialError::ServerName(host.to_owned()))?;
        Box::new(connector.connect(name, tcp).await.map_err(DialError::Tls)?)
    } else {
        Box::new(tcp)
    };
    let (socket, _response) =
        tokio_tungstenite::client_async_with_config(target.url.as_str(), stream, Some(config))
            .await
            .map_err(|e| DialError::Handshake(Box::new(e)))?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_with_their_default_ports() {
        let t = Target::parse("ws://127.0.0.1:8080/ws/logs?interval_ms=10&service=a").expect("ok");
        assert_eq!((t.host.as_str(), t.port, t.tls), ("127.0.0.1", 8080, false));
        let t = Target::parse("WSS://logs.example.com/stream").expect("ok");
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("logs.example.com", 443, true)
        );
        assert_eq!(t.url, "wss://logs.example.com/stream");
        let t = Target::parse("ws://[::1]/x").expect("ok");
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
    }

    #[test]
    fn other_schemes_and_hostless_urls_are_refused() {
        assert!(matches!(
            Target::parse("http://h/x"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            Target::parse("/ws/logs"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            Target::parse("ws://exa mple/"),
            Err(TargetError::Invalid(..))
        ));
    }

    #[test]
    fn credentials_are_not_shown() {
        let t = Target::parse("wss://user:secret@h.example:9443/x?y=@z").expect("ok");
        assert_eq!(t.shown, "wss://h.example:9443/x?y=@z");
        assert_eq!(t.url, "wss://user:secret@h.example:9443/x?y=@z");
        assert_eq!(t.host, "h.example");
        assert_eq!(without_credentials("ws://h/a@b"), "ws://h/a@b");
    }
}
