//! What PostgreSQL can store, checked once for every format after decoding: `text` holds no NUL
//! character, and `jsonb` holds neither the escape `\u0000`, nor unpaired UTF-16 surrogate
//! escapes, nor numbers beyond `numeric`'s range (at most 131,072 digits before the decimal
//! point and 16,383 after). What cannot be stored is changed as little as possible: NUL becomes
//! U+FFFD in text and in JSON strings, a lone surrogate escape becomes `\ufffd`, and a number
//! out of range is kept as a JSON string of its exact text; attributes that changed say so in a
//! top-level `"_sanitized"` list (their last member).

use crate::event::LogEvent;

/// Digits `numeric` keeps before the decimal point (PostgreSQL's limit is 131,072).
const MAX_INTEGER_DIGITS: i64 = 131_000;
/// Digits `numeric` keeps after the decimal point (PostgreSQL's limit is 16,383).
const MAX_FRACTION_DIGITS: i64 = 16_000;

/// `text` cut to at most `max` bytes, on a character boundary (for fields with a byte limit:
/// Kafka headers, alert samples, WebSocket close reasons).
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What sanitising changed in one event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sanitized {
    /// NUL characters replaced (text fields or JSON strings).
    pub nul: bool,
    /// Unpaired surrogate escapes replaced in the attributes.
    pub surrogate: bool,
    /// Numbers out of `numeric`'s range turned into strings in the attributes.
    pub number: bool,
}

impl Sanitized {
    pub fn any(&self) -> bool {
        self.nul || self.surrogate || self.number
    }

    /// The names of what changed, as the `what` label of the collector's counter.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        [
            (self.nul, "nul"),
            (self.surrogate, "surrogate"),
            (self.number, "number"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
    }
}

/// Replaces NUL characters in `text` with U+FFFD; true when there were any.
pub fn text(text: &mut String) -> bool {
    if !text.contains('\0') {
        return false;
    }
    *text = text.replace('\0', "\u{FFFD}");
    true
}

fn opt_text(value: &mut Option<String>) -> bool {
    value.as_mut().is_some_and(text)
}

/// Makes every field of `event` storable; says what changed.
pub fn event(event: &mut LogEvent) -> Sanitized {
    let mut nul = text(&mut event.service);
    nul |= text(&mut event.message);
    nul |= opt_text(&mut event.component);
    nul |= opt_text(&mut event.host);
    nul |= opt_text(&mut event.trace_id);
    nul |= opt_text(&mut event.span_id);
    nul |= opt_text(&mut event.parent_id);
    let mut changes = Sanitized {
        nul,
        ..Sanitized::default()
    };
    if let Some(attributes) = &event.attributes {
        if let Some((fixed, found)) = json(attributes) {
            event.attributes = Some(fixed);
            changes.nul |= found.nul;
            changes.surrogate = found.surrogate;
            changes.number = found.number;
        }
    }
    changes
}

/// The storable form of a JSON text (valid JSON expected), or None when it is storable as it
/// is. When the text is an object, a `"_sanitized"` member lists what changed.
pub fn json(text: &str) -> Option<(String, Sanitized)> {
    let mut m = Mender {
        text,
        bytes: text.as_bytes(),
        out: None,
        found: Sanitized::default(),
        copied: 0,
        i: 0,
    };
    while m.i < m.bytes.len() {
        match m.bytes[m.i] {
            b'"' => m.string(),
            b'-' | b'0'..=b'9' => m.number(),
            _ => m.i += 1,
        }
    }
    let (found, copied) = (m.found, m.copied);
    let mut fixed = m.out?;
    fixed.push_str(&text[copied..]);
    Some((flag(fixed, found), found))
}

/// One pass over a JSON text, copying it into `out` from the first change on.
struct Mender<'a> {
    text: &'a str,
    bytes: &'a [u8],
    out: Option<String>,
    found: Sanitized,
    /// Bytes before `copied` are already in `out` (or unchanged, when `out` is None).
    copied: usize,
    i: usize,
}

/// What a `\uXXXX` escape inside a string is.
enum Escape {
    /// A character (kept).
    Keep,
    /// The first half of a valid surrogate pair (kept with its second half).
    Pair,
    /// NUL or an unpaired surrogate: replaced by U+FFFD.
    Replace,
}

impl Mender<'_> {
    /// Puts `with` in place of the text between `from` and `to`.
    fn replace(&mut self, from: usize, to: usize, with: &str) {
        let out = self.out.get_or_insert_with(String::new);
        out.push_str(&self.text[self.copied..from]);
        out.push_str(with);
        self.copied = to;
    }

    /// A string from its opening quote (at `i`) to after its closing one.
    fn string(&mut self) {
        let bytes = self.bytes;
        self.i += 1;
        while self.i < bytes.len() && bytes[self.i] != b'"' {
            let i = self.i;
            if bytes[i] == 0 {
                // A raw NUL inside a string (not valid JSON, but never let it through).
                self.replace(i, i + 1, "\\ufffd");
                self.found.nul = true;
                self.i += 1;
                continue;
            }
            if bytes[i] != b'\\' || bytes.get(i + 1) != Some(&b'u') {
                self.i += if bytes[i] == b'\\' { 2 } else { 1 };
                continue;
            }
            let Some(unit) = hex4(bytes, i + 2) else {
                self.i += 2;
                continue;
            };
            match self.escape(unit) {
                Escape::Pair => self.i += 12,
                Escape::Replace => {
                    self.replace(i, i + 6, "\\ufffd");
                    self.i += 6;
                }
                Escape::Keep => self.i += 6,
            }
        }
        self.i += 1;
    }

    /// What the escape of `unit` at `i` is, noting what must be replaced.
    fn escape(&mut self, unit: u32) -> Escape {
        let (bytes, i) = (self.bytes, self.i);
        match unit {
            0 => {
                self.found.nul = true;
                Escape::Replace
            }
            0xD800..=0xDBFF => {
                let low = (bytes.get(i + 6) == Some(&b'\\') && bytes.get(i + 7) == Some(&b'u'))
                    .then(|| hex4(bytes, i + 8))
                    .flatten();
                if low.is_some_and(|l| (0xDC00..=0xDFFF).contains(&l)) {
                    return Escape::Pair;
                }
                self.found.surrogate = true;
                Escape::Replace
            }
            0xDC00..=0xDFFF => {
                self.found.surrogate = true;
                Escape::Replace
            }
            _ => Escape::Keep,
        }
    }

    /// A number from its first character (at `i`): quoted when PostgreSQL's numeric cannot
    /// hold it.
    fn number(&mut self) {
        let start = self.i;
        while self.i < self.bytes.len()
            && matches!(
                self.bytes[self.i],
                b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
            )
        {
            self.i += 1;
        }
        let number = &self.text[start..self.i];
        if !numeric_fits(number) {
            self.found.number = true;
            let quoted = format!("\"{number}\"");
            self.replace(start, self.i, &quoted);
        }
    }
}

/// Adds `"_sanitized": [...]` as the last member of a JSON object text (so it wins over one the
/// input may hold: `jsonb` keeps the last of duplicate keys); other JSON is returned as it is.
fn flag(object: String, found: Sanitized) -> String {
    let names: Vec<String> = found.names().map(|n| format!("\"{n}\"")).collect();
    with_member(object, &format!("\"_sanitized\":[{}]", names.join(",")))
}

/// A JSON object's text with `member` (`"name":value`) added as its last member; any other JSON
/// text is returned as it is.
pub fn with_member(object: String, member: &str) -> String {
    let body = object.trim_end();
    let Some(body) = body.strip_suffix('}') else {
        return object;
    };
    if !object.trim_start().starts_with('{') {
        return object;
    }
    let empty = body
        .trim_start()
        .strip_prefix('{')
        .is_some_and(|rest| rest.trim().is_empty());
    if empty {
        format!("{body}{member}}}")
    } else {
        format!("{body},{member}}}")
    }
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

/// Whether a JSON number's text fits PostgreSQL's `numeric` (conservatively).
fn numeric_fits(number: &str) -> bool {
    let unsigned = number.trim_start_matches('-');
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => {
            let exp = &unsigned[at + 1..];
            let (negative, digits) = match exp.as_bytes().first() {
                Some(b'-') => (true, &exp[1..]),
                Some(b'+') => (false, &exp[1..]),
                _ => (false, exp),
            };
            // Saturate: an exponent too long to parse is out of range anyway.
            let significant = digits.trim_start_matches('0');
            let magnitude = if significant.is_empty() {
                0
            } else {
                significant
                    .parse::<i64>()
                    .unwrap_or(i64::MAX / 4)
                    .min(i64::MAX / 4)
            };
            (
                &unsigned[..at],
                if negative { -magnitude } else { magnitude },
            )
        }
        None => (unsigned, 0),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let integer_digits = integer.trim_start_matches('0').len() as i64;
    let fraction_digits = fraction.len() as i64;
    integer_digits + exponent <= MAX_INTEGER_DIGITS
        && fraction_digits - exponent <= MAX_FRACTION_DIGITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_char_boundaries() {
        assert_eq!(cut("abc", 10), "abc");
        assert_eq!(cut("abcdef", 3), "abc");
        assert_eq!(cut("aé", 2), "a");
    }
    use proptest::prelude::*;

    #[test]
    fn storable_json_is_left_alone() {
        for text in [
            r#"{"a": 1, "b": "x\u0041", "c": [1.5e10, -0.25, 1e-300], "d": "\ud83d\ude00"}"#,
            r#"{}"#,
            r#"[1, "two", null]"#,
            r#"{"path": "C:\\u0000"}"#,
            r#"{"a": 1e0, "b": 1.5E+00, "c": 2e-0, "d": 1e00, "e": -0.0e-5}"#,
        ] {
            assert_eq!(json(text), None, "{text}");
        }
    }

    #[test]
    fn nul_escapes_become_replacement_characters_and_are_flagged() {
        let (fixed, found) = json(r#"{"http": {"path": "/a\u0000b"}}"#).expect("changed");
        assert_eq!(
            fixed,
            r#"{"http": {"path": "/a\ufffdb"},"_sanitized":["nul"]}"#
        );
        assert!(found.nul && !found.number);
        let parsed: serde_json::Value = serde_json::from_str(&fixed).expect("valid JSON");
        assert_eq!(parsed["http"]["path"], "/a\u{FFFD}b");
    }

    #[test]
    fn lone_surrogates_are_replaced_pairs_kept() {
        let (fixed, found) =
            json(r#"{"a": "\ud800x", "b": "\udc00", "c": "\ud83d\ude00"}"#).expect("changed");
        assert_eq!(
            fixed,
            r#"{"a": "\ufffdx", "b": "\ufffd", "c": "\ud83d\ude00","_sanitized":["surrogate"]}"#
        );
        assert!(found.surrogate);
    }

    #[test]
    fn numbers_out_of_numeric_range_become_strings() {
        let (fixed, found) =
            json(r#"{"x": 1e-20000, "y": 2, "z": [1E200000, 0.5]}"#).expect("changed");
        assert_eq!(
            fixed,
            r#"{"x": "1e-20000", "y": 2, "z": ["1E200000", 0.5],"_sanitized":["number"]}"#
        );
        assert!(found.number);
        assert_eq!(json(r#"{"x": 1e-16000, "y": 1e130000}"#), None);
        let (empty, _) = json("{\"x\":1e99999999999999999999}").expect("changed");
        assert_eq!(
            empty,
            r#"{"x":"1e99999999999999999999","_sanitized":["number"]}"#
        );
        let (flagged, _) = json(r#"{"_sanitized": "theirs", "s": "\u0000"}"#).expect("changed");
        let parsed: serde_json::Value = serde_json::from_str(&flagged).expect("valid JSON");
        assert_eq!(
            parsed["_sanitized"],
            serde_json::json!(["nul"]),
            "ours is the last"
        );
    }

    #[test]
    fn events_lose_nul_characters_everywhere() {
        let mut e = LogEvent {
            timestamp_ms: 0,
            level: crate::Level::Info,
            service: "\0\0\0\u{7}".into(),
            component: Some("c\0".into()),
            host: None,
            message: "GET /a\0 HTTP/1.1".into(),
            trace_id: None,
            span_id: None,
            parent_id: None,
            attributes: Some(r#"{"n": 1}"#.into()),
        };
        let found = event(&mut e);
        assert_eq!(e.service, "\u{FFFD}\u{FFFD}\u{FFFD}\u{7}");
        assert_eq!(e.message, "GET /a\u{FFFD} HTTP/1.1");
        assert_eq!(e.component.as_deref(), Some("c\u{FFFD}"));
        assert!(found.nul && !found.number);
        assert_eq!(found.names().collect::<Vec<_>>(), ["nul"]);
    }

    proptest! {
        /// Whatever serde_json writes stays valid JSON after sanitising, and holds nothing
        /// PostgreSQL refuses.
        #[test]
        fn sanitised_json_is_valid_and_storable(
            s in "\\PC*", nul in any::<bool>(), n in -400i32..400, e in -30000i64..30000,
        ) {
            let text = if nul { format!("{s}\0{s}") } else { s };
            let value = serde_json::json!({"s": text, "v": [n]});
            let encoded = value.to_string().replace("[", &format!("[{n}e{e},"));
            if serde_json::from_str::<serde_json::Value>(&encoded).is_ok() {
                let result = json(&encoded).map(|(t, _)| t).unwrap_or(encoded.clone());
                let reparsed: serde_json::Value = serde_json::from_str(&result).expect("valid JSON");
                prop_assert!(!reparsed["s"].as_str().unwrap_or_default().contains('\0'));
                if let Some(list) = reparsed["v"].as_array() {
                    if let Some(first) = list.first() {
                        if let Some(text) = first.as_str() {
                            prop_assert!(!numeric_fits(text));
                        }
                    }
                }
            }
        }
    }
}
