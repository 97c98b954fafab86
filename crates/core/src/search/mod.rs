//! What a search of stored events asks for, read from its query parameters: the levels (one, a
//! list, or a bound such as `>=WARN`), attribute equality filters (`attr.http.status=500`), and
//! the opaque cursor that continues a newest-first listing. Pure: the gateway turns these into
//! SQL. [`words`] reads and matches the text query, [`filter`] matches a whole search against
//! one event (the live tail's side of the same filters).

pub mod filter;
pub mod words;

use std::fmt;

use crate::Level;

/// Why a search parameter cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Whether a level is on the kept side of a bound.
type Comparison = fn(Level, Level) -> bool;

/// The levels a `level` parameter names: `ERROR`, `WARN,ERROR`, or a comparison with one level
/// (`>=WARN`, `>INFO`, `<=DEBUG`, `<INFO`, `=ERROR`), in [`Level::ALL`] order without repeats.
/// Names are read as [`Level`]'s parser reads them (any case, WARNING, ERR, CRIT, CRITICAL);
/// nothing else is allowed, not even spaces ([`LEVELS_PATTERN`] says exactly what is read).
pub fn levels(spec: &str) -> Result<Vec<Level>, Invalid> {
    let comparisons: [(&str, Comparison); 5] = [
        (">=", |l, bound| l >= bound),
        ("<=", |l, bound| l <= bound),
        (">", |l, bound| l > bound),
        ("<", |l, bound| l < bound),
        ("=", |l, bound| l == bound),
    ];
    for (operator, keep) in comparisons {
        if let Some(name) = spec.strip_prefix(operator) {
            let bound = level(name)?;
            let chosen: Vec<Level> = Level::ALL.into_iter().filter(|l| keep(*l, bound)).collect();
            if chosen.is_empty() {
                return Err(Invalid(format!("no level is {operator}{}", bound.as_str())));
            }
            return Ok(chosen);
        }
    }
    let mut chosen = Vec::new();
    for name in spec.split(',') {
        chosen.push(level(name)?);
    }
    Ok(Level::ALL
        .into_iter()
        .filter(|l| chosen.contains(l))
        .collect())
}

fn level(name: &str) -> Result<Level, Invalid> {
    if name.is_empty() {
        return Err(Invalid(
            "a level is missing (write e.g. ERROR, WARN,ERROR or >=WARN)".into(),
        ));
    }
    name.parse::<Level>().map_err(|e| Invalid(e.to_string()))
}

/// The regular expression (ECMA 262, as OpenAPI documents use) of exactly the `level` values
/// [`levels`] reads; a bound that keeps no level (`>FATAL`, `<TRACE`) is not one of them.
pub const LEVELS_PATTERN: &str = r"^(?:(?:>=|<=|=)(?:[Tt][Rr][Aa][Cc][Ee]|[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?|[Ff][Aa][Tt][Aa][Ll]|[Cc][Rr][Ii][Tt](?:[Ii][Cc][Aa][Ll])?)|>(?:[Tt][Rr][Aa][Cc][Ee]|[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?)|<(?:[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?|[Ff][Aa][Tt][Aa][Ll]|[Cc][Rr][Ii][Tt](?:[Ii][Cc][Aa][Ll])?)|(?:[Tt][Rr][Aa][Cc][Ee]|[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?|[Ff][Aa][Tt][Aa][Ll]|[Cc][Rr][Ii][Tt](?:[Ii][Cc][Aa][Ll])?)(?:,(?:[Tt][Rr][Aa][Cc][Ee]|[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn](?:[Ii][Nn][Gg])?|[Ee][Rr][Rr](?:[Oo][Rr])?|[Ff][Aa][Tt][Aa][Ll]|[Cc][Rr][Ii][Tt](?:[Ii][Cc][Aa][Ll])?))*)$";

/// The regular expression of the tokens [`Cursor`] gives out and reads.
pub const CURSOR_PATTERN: &str =
    r"^c1\.[0-9a-f]{1,16}\.[0-9a-f]{1,8}\.[0-9a-f]{1,16}\.[0-9a-f]{1,16}$";

/// The prefix of a query parameter that filters on an attribute.
pub const ATTRIBUTE_PREFIX: &str = "attr.";

/// Most attribute filters one search takes.
pub const MAX_ATTRIBUTE_FILTERS: usize = 8;

/// Most keys in an attribute path.
pub const MAX_ATTRIBUTE_DEPTH: usize = 8;

/// An attribute equality filter: the value at `path` in the event's attributes, as text (a
/// number or boolean as JSON writes it, a string without quotes), equals `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeFilter {
    pub path: Vec<String>,
    pub value: String,
}

impl AttributeFilter {
    /// Reads `attr.http.status` = `500` (None when `name` is not an attribute parameter).
    pub fn parse(name: &str, value: &str) -> Option<Result<Self, Invalid>> {
        let path = name.strip_prefix(ATTRIBUTE_PREFIX)?;
        let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
        let result = if keys.iter().any(String::is_empty) {
            Err(Invalid(format!(
                "{name:?} names an empty key (write attr.<key>[.<key>...], e.g. attr.http.status)"
            )))
        } else if keys.len() > MAX_ATTRIBUTE_DEPTH {
            Err(Invalid(format!(
                "{name:?} is more than {MAX_ATTRIBUTE_DEPTH} keys deep"
            )))
        } else if name.contains('\0') || value.contains('\0') {
            Err(Invalid(format!("{name} must not contain NUL characters")))
        } else {
            Ok(Self {
                path: keys,
                value: value.to_owned(),
            })
        };
        Some(result)
    }
}

/// Where a newest-first listing stopped: the last row returned, by the listing's order (event
/// time, then Kafka partition and offset, all descending), and the start of the listing's time
/// range. The next page starts after that row, so rows stored meanwhile never shift a page or
/// show up twice, and ends where the first page's range ended, even when that range was the
/// default one (the hour before the first request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Event time in microseconds since the epoch (PostgreSQL's precision).
    pub event_time_us: i64,
    pub partition: i32,
    pub offset: i64,
    /// The range's start (event time, microseconds since the epoch).
    pub from_us: i64,
}

/// The cursor's version tag: a token from another version is refused, not misread.
const CURSOR_TAG: &str = "c1";

impl fmt::Display for Cursor {
    /// The token: URL-safe, to be passed back as it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{CURSOR_TAG}.{:x}.{:x}.{:x}.{:x}",
            self.event_time_us as u64,
            self.partition as u32,
            self.offset as u64,
            self.from_us as u64
        )
    }
}

impl std::str::FromStr for Cursor {
    type Err = Invalid;

    fn from_str(token: &str) -> Result<Self, Invalid> {
        let invalid = || {
            Invalid(format!(
                "{token:?} is not a cursor this gateway gave out (pass `next` back unchanged)"
            ))
        };
        let mut parts = token.split('.');
        if parts.next() != Some(CURSOR_TAG) {
            return Err(invalid());
        }
        let mut hex = |digits: usize| {
            parts
                .next()
                .filter(|p| {
                    (1..=digits).contains(&p.len())
                        && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                })
                .and_then(|p| u64::from_str_radix(p, 16).ok())
                .ok_or_else(invalid)
        };
        let (time, partition, offset, from) = (hex(16)?, hex(8)?, hex(16)?, hex(16)?);
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(Self {
            event_time_us: time as i64,
            partition: partition as u32 as i32,
            offset: offset as i64,
            from_us: from as i64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn levels_read_names_lists_and_bounds() {
        use Level::*;
        assert_eq!(levels("error"), Ok(vec![Error]));
        assert_eq!(levels("ERROR,warn"), Ok(vec![Warn, Error]));
        assert_eq!(levels(">=WARN"), Ok(vec![Warn, Error, Fatal]));
        assert_eq!(levels(">warning"), Ok(vec![Error, Fatal]));
        assert_eq!(levels("<=debug"), Ok(vec![Trace, Debug]));
        assert_eq!(levels("<INFO"), Ok(vec![Trace, Debug]));
        assert_eq!(levels("=crit"), Ok(vec![Fatal]));
        assert!(levels(">FATAL").is_err());
        assert!(levels(" ERROR").is_err());
        assert!(levels("ERROR, WARN").is_err());
        assert!(levels("LOUD").is_err());
        assert!(levels("ERROR,").is_err());
        assert!(levels(">=").is_err());
    }

    #[test]
    fn attribute_filters_name_their_path() {
        assert_eq!(AttributeFilter::parse("service", "x"), None);
        assert_eq!(
            AttributeFilter::parse("attr.http.status", "500"),
            Some(Ok(AttributeFilter {
                path: vec!["http".into(), "status".into()],
                value: "500".into()
            }))
        );
        assert!(matches!(AttributeFilter::parse("attr.", "1"), Some(Err(_))));
        assert!(matches!(
            AttributeFilter::parse("attr.a..b", "1"),
            Some(Err(_))
        ));
        assert!(matches!(
            AttributeFilter::parse("attr.a.b.c.d.e.f.g.h.i", "1"),
            Some(Err(_))
        ));
        assert!(matches!(
            AttributeFilter::parse("attr.a", "x\0"),
            Some(Err(_))
        ));
    }

    #[test]
    fn foreign_tokens_are_refused() {
        for token in [
            "",
            "c1",
            "c1.1.2.3",
            "c1.1.2.3.4.5",
            "c2.1.2.3.4",
            "c1.x.2.3.4",
            "c1..2.3.4",
            "c1.1.100000000.3.4",
            "c1.11111111111111111.2.3.4",
            "c1.+1.2.3.4",
            "c1.A.2.3.4",
        ] {
            assert!(token.parse::<Cursor>().is_err(), "{token:?}");
        }
    }

    /// The documented patterns, read by the `regex` crate (ECMA's syntax used is the same).
    fn documented(pattern: &str) -> regex::Regex {
        regex::Regex::new(pattern).expect("pattern")
    }

    proptest! {
        #[test]
        fn the_level_pattern_says_exactly_what_is_read(spec in "[<>=,]{0,2}(trace|DEBUG|Info|warn|WARNING|err|Error|fatal|CRIT|critical|x|)(,(info|Err|x|))?") {
            prop_assert_eq!(documented(LEVELS_PATTERN).is_match(&spec), levels(&spec).is_ok(), "{:?}", spec);
        }

        #[test]
        fn the_cursor_pattern_says_exactly_what_is_read(token in "c[12]\\.[0-9a-fA-F+]{0,17}\\.[0-9a-f]{0,9}\\.[0-9a-f]{1,3}\\.[0-9a-f]{1,3}") {
            prop_assert_eq!(documented(CURSOR_PATTERN).is_match(&token), token.parse::<Cursor>().is_ok(), "{:?}", token);
        }

        #[test]
        fn a_cursor_survives_its_token(event_time_us: i64, partition: i32, offset: i64, from_us: i64) {
            let cursor = Cursor { event_time_us, partition, offset, from_us };
            let token = cursor.to_string();
            prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
            prop_assert_eq!(token.parse::<Cursor>(), Ok(cursor));
        }

        #[test]
        fn any_token_is_read_or_refused_without_panic(token in "\\PC{0,40}") {
            let _ = token.parse::<Cursor>();
        }

        #[test]
        fn a_bound_keeps_exactly_the_levels_on_its_side(bound in 0usize..6, op in 0usize..4) {
            let bound = Level::ALL[bound];
            let operator = [">=", "<=", ">", "<"][op];
            if let Ok(chosen) = levels(&format!("{operator}{}", bound.as_str())) {
                for l in Level::ALL {
                    let expected = match operator {
                        ">=" => l >= bound,
                        "<=" => l <= bound,
                        ">" => l > bound,
                        _ => l < bound,
                    };
                    prop_assert_eq!(chosen.contains(&l), expected);
                }
            }
        }
    }
}
