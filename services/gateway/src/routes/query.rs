//! Query-string parsing shared by the read endpoints: each parser names the parameter it rejects.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use logstream_core::api::FieldError;

pub type Params = HashMap<String, String>;

/// An optional RFC 3339 timestamp parameter.
pub fn timestamp(params: &Params, name: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
    params
        .get(name)
        .filter(|v| !v.is_empty())
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
    params
        .get(name)
        .filter(|v| !v.is_empty())
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

/// An optional non-empty text parameter.
pub fn text<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Paging: `limit` (1..=1000, default 100) and `offset` (default 0).
pub fn page(params: &Params) -> Result<(i64, i64), FieldError> {
    Ok((
        number(params, "limit", 1..=1000)?.unwrap_or(100),
        number(params, "offset", 0..=i64::MAX)?.unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

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
        assert_eq!(text(&params(&[("service", "")]), "service"), None);
    }
}
