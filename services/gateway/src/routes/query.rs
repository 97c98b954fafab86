//! Query-string parsing shared by the read endpoints: each parser names the parameter it rejects.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use logstream_core::api::FieldError;

pub type Params = HashMap<String, String>;

/// A typed parameter's value: absent, or present and not empty (an empty value is no value of
/// a number, time or name, and is refused as such).
pub fn present<'a>(params: &'a Params, name: &str) -> Result<Option<&'a str>, FieldError> {
    match params.get(name).map(String::as_str) {
        Some("") => Err(FieldError::new(name, format!("{name} must not be empty"))),
        value => Ok(value),
    }
}

/// An optional parameter that must be one of `allowed`.
pub fn one_of<'a>(
    params: &'a Params,
    name: &str,
    allowed: &[&str],
) -> Result<Option<&'a str>, FieldError> {
    match present(params, name)? {
        Some(v) if !allowed.contains(&v) => Err(FieldError::new(
            name,
            format!("{v:?} is none of {}", allowed.join(", ")),
        )),
        value => Ok(value),
    }
}

/// An optional RFC 3339 timestamp parameter.
pub fn timestamp(params: &Params, name: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
    present(params, name)?
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    FieldError::new(name, format!("{v:?} is not an RFC 3339 timestamp: {e}"))
                })
        })
        .transpose()
}

/// An optional whole-number parameter within `range`.
pub fn number(
    params: &Params,
    name: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, FieldError> {
    present(params, name)?
        .map(|v| match v.parse::<i64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(FieldError::new(
                name,
                format!(
                    "{v:?} must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        })
        .transpose()
}

/// An optional non-empty text parameter; NUL (which no PostgreSQL text holds) is refused.
pub fn text<'a>(params: &'a Params, name: &str) -> Result<Option<&'a str>, FieldError> {
    match params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
    {
        Some(v) if v.contains('\0') => Err(FieldError::new(
            name,
            format!("{name} must not contain NUL characters"),
        )),
        value => Ok(value),
    }
}

/// Paging: `limit` (1..=1000, default 100) and `offset` (default 0).
pub fn page(params: &Params) -> Result<(i64, i64), FieldError> {
    Ok((
        number(params, "limit", 1..=1000)?.unwrap_or(100),
        number(params, "offset", 0..=i64::MAX)?.unwrap_or(0),
    ))
}

/// Parameters from pairs (for the routes' tests).
#[cfg(test)]
pub fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_bad_parameters() {
        let p = params(&[
            ("from", "2026-01-01T00:00:00Z"),
            ("limit", "5"),
            ("to", "yesterday"),
            ("offset", "-1"),
        ]);
        assert!(timestamp(&p, "from").expect("valid").is_some());
        assert_eq!(timestamp(&p, "to").expect_err("invalid").field, "to");
        assert_eq!(page(&p).expect_err("invalid").field, "offset");
        assert_eq!(page(&params(&[])).expect("defaults"), (100, 0));
        assert_eq!(text(&params(&[("service", "")]), "service"), Ok(None));
        let nul = params(&[("service", "a\0b")]);
        assert_eq!(
            text(&nul, "service").map_err(|e| e.field),
            Err("service".into())
        );
        let empty_time = params(&[("since", "")]);
        assert_eq!(
            timestamp(&empty_time, "since").map_err(|e| e.field),
            Err("since".into())
        );
        let kinds = params(&[("kind", "nope")]);
        assert!(one_of(&kinds, "kind", &["xss"]).is_err());
    }
}
