//! A request body read whole, within limits: its size as sent and once decompressed
//! (`Content-Encoding: gzip`, `zstd`, or none), and the time the client takes to send it.
//! Reading is async; decompressing is blocking (the caller runs it off the async threads).

use std::io::Read;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, HeaderMap};

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the body took longer than {0:?} to arrive")]
    TooSlow(Duration),
    #[error("the body could not be read: {0}")]
    Broken(String),
    #[error("Content-Encoding {0:?} is not supported (gzip, zstd or none)")]
    UnsupportedEncoding(String),
    #[error("the body is not valid {0}: {1}")]
    BadCompression(&'static str, String),
}

/// Reads `body`: at most `max` bytes, within `timeout`. A body whose `Content-Length` is over
/// `max` is refused before any of it is read (a client that sent `Expect: 100-continue`, as
/// curl does for large bodies, then never uploads it).
pub async fn read(body: Body, max: u64, timeout: Duration) -> Result<Bytes, BodyError> {
    if body.size_hint().lower() > max {
        return Err(BodyError::TooLarge(max));
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(BodyError::TooSlow(timeout)),
        Ok(Err(e)) => {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            Err(if over {
                BodyError::TooLarge(max)
            } else {
                BodyError::Broken(e.to_string())
            })
        }
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// The request's `Content-Encoding`, lower-cased (`None` when absent).
pub fn encoding(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
}

/// The body decompressed (at most `max` bytes); blocking: run it off the async threads.
pub fn decode(raw: Bytes, encoding: Option<&str>, max: u64) -> Result<Vec<u8>, BodyError> {
    match encoding {
        None | Some("") | Some("identity") => Ok(raw.to_vec()),
        Some("gzip") | Some("x-gzip") => {
            inflate(flate2::read::MultiGzDecoder::new(&raw[..]), max, "gzip")
        }
        Some("zstd") => {
            let decoder = zstd::stream::read::Decoder::new(&raw[..])
                .map_err(|e| BodyError::BadCompression("zstd", e.to_string()))?;
            inflate(decoder, max, "zstd")
        }
        Some(other) => Err(BodyError::UnsupportedEncoding(other.to_owned())),
    }
}

fn inflate(decoder: impl Read, max: u64, name: &'static str) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    decoder
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::BadCompression(name, e.to_string()))?;
    if out.len() as u64 > max {
        return Err(BodyError::TooLarge(max));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn headers(encoding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, encoding.parse().expect("header"));
        h
    }

    async fn read_as(encoding: &str, bytes: Vec<u8>, max: u64) -> Result<Vec<u8>, BodyError> {
        let raw = read(Body::from(bytes), max, Duration::from_secs(5)).await?;
        decode(raw, super::encoding(&headers(encoding)).as_deref(), max)
    }

    #[tokio::test]
    async fn compressed_bodies_are_inflated_within_the_limit() {
        let text = b"line one\nline two\n".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).expect("gzip");
        let gz = gz.finish().expect("gzip");
        assert_eq!(
            read_as("gzip", gz.clone(), 10_000).await.expect("read"),
            text
        );
        assert!(matches!(
            read_as("gzip", gz, 100).await,
            Err(BodyError::TooLarge(100))
        ));
        let zst = zstd::encode_all(&text[..], 1).expect("zstd");
        assert_eq!(read_as("zstd", zst, 10_000).await.expect("read"), text);
        assert!(matches!(
            read_as("gzip", b"not gzip".to_vec(), 100).await,
            Err(BodyError::BadCompression("gzip", _))
        ));
        assert!(matches!(
            read_as("br", text.clone(), 10_000).await,
            Err(BodyError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            read_as("identity", text, 100).await,
            Err(BodyError::TooLarge(100))
        ));
    }
}
