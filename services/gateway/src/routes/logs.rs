//! `GET /api/v1/logs`: search stored events, newest first, a page at a time (cursor paging).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Duration, Utc};
use logstream_core::api::FieldError;
use logstream_core::search::{self, AttributeFilter, Cursor, MAX_ATTRIBUTE_FILTERS};
use logstream_service::ops::field_error;

use super::errors::{database_error, ErrorBody};
use super::query::{self, Params};
use crate::logs::{self, micros, within_rfc3339, LogPage, Search};
use crate::state::AppState;

/// The range searched when `from` is not given: this long before `to`.
const DEFAULT_RANGE: Duration = Duration::hours(1);

/// Longest `q`.
const MAX_TEXT: usize = 1000;

/// The parameters a search reads besides `attr.*`.
const KNOWN: [&str; 9] = [
    "service", "level", "from", "to", "host", "trace_id", "q", "cursor", "limit",
];

/// The filters of a search or a tail (all but time and paging).
pub struct Filters {
    pub services: Vec<String>,
    pub levels: Vec<logstream_core::Level>,
    pub host: Option<String>,
    pub trace_id: Option<String>,
    pub attributes: Vec<AttributeFilter>,
    pub text: Option<String>,
}

/// Reads the filters; refuses a parameter that is neither in `known` nor `attr.*`.
pub fn filters(params: &Params, known: &[&str]) -> Result<Filters, FieldError> {
    if let Some(unknown) = params
        .keys()
        .filter(|k| !known.contains(&k.as_str()) && !k.starts_with(search::ATTRIBUTE_PREFIX))
        .min()
    {
        return Err(FieldError::new(
            unknown,
            format!(
                "unknown parameter {unknown:?}; known: {}, attr.<key>[.<key>...]",
                known.join(", ")
            ),
        ));
    }
    let services: Vec<String> = query::text(params, "service")?
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let levels = query::present(params, "level")?
        .map(|spec| search::levels(spec).map_err(|e| FieldError::new("level", e.0)))
        .transpose()?
        .unwrap_or_default();
    let text = query::text(params, "q")?.map(str::to_owned);
    if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
        return Err(FieldError::new(
            "q",
            format!("q is longer than {MAX_TEXT} characters"),
        ));
    }
    let mut attributes = Vec::new();
    let mut names: Vec<&String> = params.keys().collect();
    names.sort();
    for name in names {
        if let Some(filter) = AttributeFilter::parse(name, &params[name]) {
            attributes.push(filter.map_err(|e| FieldError::new(name, e.0))?);
        }
    }
    if attributes.len() > MAX_ATTRIBUTE_FILTERS {
        return Err(FieldError::new(
            "attr",
            format!("at most {MAX_ATTRIBUTE_FILTERS} attribute filters"),
        ));
    }
    Ok(Filters {
        services,
        levels,
        host: query::text(params, "host")?.map(str::to_owned),
        trace_id: query::text(params, "trace_id")?.map(str::to_owned),
        attributes,
        text,
    })
}

fn parse(params: &Params) -> Result<Search, FieldError> {
    let filters = filters(params, &KNOWN)?;
    let after = query::present(params, "cursor")?
        .map(|token| {
            token
                .parse::<Cursor>()
                .map_err(|e| FieldError::new("cursor", e.0))
        })
        .transpose()?;
    let to = query::timestamp(params, "to")?.unwrap_or_else(Utc::now);
    let from = match (query::timestamp(params, "from")?, &after) {
        (Some(from), _) => from,
        (None, Some(cursor)) => micros(cursor.from_us),
        (None, None) => to - DEFAULT_RANGE,
    };
    let (from, to) = (within_rfc3339(from), within_rfc3339(to));
    Ok(Search {
        services: filters.services,
        levels: filters.levels,
        from,
        to,
        host: filters.host,
        trace_id: filters.trace_id,
        attributes: filters.attributes,
        text: filters.text,
        after,
        limit: query::number(params, "limit", 1..=1000)?.unwrap_or(100),
    })
}

#[utoipa::path(get, path = "/api/v1/logs", tag = "logs",
    params(
        ("service" = Option<String>, Query, description = "Only these services: one name or a comma-separated list", pattern = "^[^\\u0000]*$"),
        ("level" = Option<String>, Query, description = "Only these levels: one (ERROR), a comma-separated list (WARN,ERROR) or a bound (>=WARN, >INFO, <=DEBUG, <INFO); any case, WARNING, ERR, CRIT and CRITICAL read too", pattern = r"^(?:(?:>=|<=|=)(?:[Tt][Rr][Aa][Cc][Ee]|[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?|[Ff][Aa][Tt][Aa][Ll]|[Cc][Rr][Ii][Tt](?:[Ii][Cc][Aa][Ll])?)|>(?:[Tt][Rr][Aa][Cc][Ee]|[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?)|<(?:[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?|[Ff][Aa][Tt][Aa][Ll]|[Cc][Rr][Ii][Tt](?:[Ii][Cc][Aa][Ll])?)|(?:[Tt][Rr][Aa][Cc][Ee]|[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?|[Ff][Aa][Tt][Aa][Ll]|[Cc][Rr][Ii][Tt](?:[Ii][Cc][Aa][Ll])?)(?:,(?:[Tt][Rr][Aa][Cc][Ee]|[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?|[Ff][Aa][Tt][Aa][Ll]|[Cc][Rr][Ii][Tt](?:[Ii][Cc][Aa][Ll])?))*)$"),
        ("from" = Option<String>, Query, format = DateTime, description = "Events at or after this RFC 3339 event time (default: one hour before `to`; with a cursor, the first page's). A range that is empty (from at or after to) finds nothing"),
        ("to" = Option<String>, Query, format = DateTime, description = "Events before this RFC 3339 event time (default: now)"),
        ("host" = Option<String>, Query, description = "Only events from this host", pattern = "^[^\\u0000]*$"),
        ("trace_id" = Option<String>, Query, description = "Only events of this trace", pattern = "^[^\\u0000]*$"),
        ("q" = Option<String>, Query, description = "Words of the message, in web search syntax: words (all of them, any case), \"a phrase\", `or` between alternatives, -word to exclude. Words are split as PostgreSQL's `simple` text search splits them (no stemming)", max_length = 1000, pattern = "^[^\\u0000]*$"),
        ("cursor" = Option<String>, Query, description = "The `next` token of the previous page (same filters)", pattern = r"^c1\.[0-9a-f]{1,16}\.[0-9a-f]{1,8}\.[0-9a-f]{1,16}\.[0-9a-f]{1,16}$"),
        ("limit" = Option<i64>, Query, description = "Page size, 1..=1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    security((), ("bearer" = [])),
    responses((status = 200, description = "Matching events, newest first. Any `attr.<key>[.<key>...]=<value>` parameter (up to 8) keeps only events whose attribute at that path equals the value as text, e.g. attr.http.status=500", body = LogPage),
        (status = 400, description = "Invalid or unknown query parameter", body = ErrorBody), (status = 503, description = "Database unavailable", body = ErrorBody),
        (status = 401, description = "Missing or invalid bearer token (when LOGSTREAM_API_READ_TOKEN is set)", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn search(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    let search = match parse(&params) {
        Ok(s) => s,
        Err(e) => return field_error(e),
    };
    match logs::search(&state.pool, &search).await {
        Ok(page) => Json::<LogPage>(page).into_response(),
        Err(e) => database_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::query::params;
    use super::*;

    #[test]
    fn reads_a_full_search() {
        let s = parse(&params(&[
            ("service", "payments, orders"),
            ("level", ">=warn"),
            ("from", "2026-01-01T10:02:00Z"),
            ("to", "2026-01-01T10:05:00Z"),
            ("q", "timeout"),
            ("attr.http.status", "500"),
            ("limit", "5"),
        ]))
        .expect("valid");
        assert_eq!(s.services, ["payments", "orders"]);
        assert_eq!(s.levels.len(), 3);
        assert_eq!(s.attributes[0].path, ["http", "status"]);
        assert_eq!((s.to - s.from).num_minutes(), 3);
        assert_eq!(s.limit, 5);
    }

    #[test]
    fn defaults_to_the_last_hour_and_a_cursor_keeps_its_range() {
        let s = parse(&params(&[])).expect("valid");
        assert_eq!(s.to - s.from, DEFAULT_RANGE);
        assert_eq!(s.limit, 100);
        let cursor = Cursor {
            event_time_us: 1_000_000,
            partition: 1,
            offset: 2,
            from_us: 500_000,
        };
        let s = parse(&params(&[("cursor", &cursor.to_string())])).expect("valid");
        assert_eq!(s.from.timestamp_micros(), 500_000);
        assert_eq!(s.after, Some(cursor));
    }

    #[test]
    fn the_documented_patterns_are_what_the_parsers_read() {
        use utoipa::OpenApi;
        let doc = serde_json::to_value(crate::openapi::ApiDoc::openapi()).expect("JSON");
        let pattern = |path: &str, name: &str| {
            doc["paths"][path]["get"]["parameters"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == name))
                .map(|p| p["schema"]["pattern"].clone())
        };
        for path in ["/api/v1/logs", "/api/v1/tail"] {
            assert_eq!(
                pattern(path, "level"),
                Some(search::LEVELS_PATTERN.into()),
                "{path}"
            );
        }
        assert_eq!(
            pattern("/api/v1/logs", "cursor"),
            Some(search::CURSOR_PATTERN.into())
        );
    }

    #[test]
    fn times_stay_within_what_rfc_3339_writes() {
        let far = Cursor {
            event_time_us: i64::MAX,
            partition: 0,
            offset: 0,
            from_us: 0x43eb_9c72_a66f_504d,
        };
        let s = parse(&params(&[("cursor", &far.to_string())])).expect("valid");
        assert!(s.from.to_rfc3339().starts_with("9999-12-31T23:59:59"));
        let s = parse(&params(&[("to", "0000-01-01T00:30:00Z")])).expect("valid");
        assert!(s.from.to_rfc3339().starts_with("0000-01-01T00:00:00"));
    }

    #[test]
    fn names_what_it_refuses() {
        for (pairs, field) in [
            (vec![("servce", "x")], "servce"),
            (vec![("level", "LOUD")], "level"),
            (vec![("cursor", "abc")], "cursor"),
            (vec![("limit", "1001")], "limit"),
            (vec![("attr.", "1")], "attr."),
            (vec![("q", "a\0")], "q"),
        ] {
            assert_eq!(
                parse(&params(&pairs)).map(|_| ()).map_err(|e| e.field),
                Err(field.to_owned()),
                "{pairs:?}"
            );
        }
    }
}
