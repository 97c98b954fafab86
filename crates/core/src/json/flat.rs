//! The fast path of [`decode`](super::decode): one pass over the common shape of an event, a
//! flat object of known keys whose strings need no unescaping, as `encode` writes it. It reads
//! the same [`WireIn`] serde_json would, or gives up (`None`) at the first thing it does not
//! handle itself (an escape, an unknown or repeated key, a number other than a plain integer,
//! invalid UTF-8, anything malformed), and serde_json reads the record instead. So it never
//! decides an error, and what it accepts it reads exactly as serde_json does (a property test
//! checks both on generated records). Attributes are read by serde_json either way, as one
//! `RawValue`, so their syntax is checked by the same parser.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::{WireIn, WireTimestamp};

/// The keys of the wire form, in the order of [`WireIn`]'s fields (their bit in `seen`).
const KEYS: [&[u8]; 10] = [
    b"timestamp",
    b"level",
    b"service",
    b"component",
    b"host",
    b"message",
    b"trace_id",
    b"span_id",
    b"parent_id",
    b"attributes",
];
const TIMESTAMP: usize = 0;
const ATTRIBUTES: usize = 9;

/// The wire form of `bytes`, or `None` when serde_json must read them.
pub(super) fn read(bytes: &[u8]) -> Option<WireIn<'_>> {
    // One vectorized pass for control characters anywhere (JSON allows none unescaped in a
    // string, and what `encode` writes has no whitespace between tokens either), so strings
    // are then delimited by a search for two bytes.
    if bytes.iter().fold(false, |found, &b| found | (b < 0x20)) {
        return None;
    }
    let text = simdutf8::basic::from_utf8(bytes).ok()?;
    let mut cursor = Cursor { text, at: 0 };
    let mut wire = WireIn::default();
    let mut seen = 0u16;
    cursor.expect(b'{')?;
    if cursor.peek()? == b'}' {
        cursor.at += 1;
        return cursor.at_end().then_some(wire);
    }
    loop {
        let key = cursor.plain_string()?;
        let field = KEYS.iter().position(|k| *k == key.as_bytes())?;
        if seen & (1 << field) != 0 {
            return None;
        }
        seen |= 1 << field;
        cursor.expect(b':')?;
        match field {
            TIMESTAMP => wire.timestamp = cursor.timestamp()?,
            ATTRIBUTES => wire.attributes = cursor.raw_value()?,
            _ => *wire.text_field(field) = cursor.optional_string()?,
        }
        match cursor.next_token()? {
            b',' => {}
            b'}' => return cursor.at_end().then_some(wire),
            _ => return None,
        }
    }
}

impl<'a> WireIn<'a> {
    /// The string field at `index` of [`KEYS`].
    fn text_field(&mut self, index: usize) -> &mut Option<Cow<'a, str>> {
        match index {
            1 => &mut self.level,
            2 => &mut self.service,
            3 => &mut self.component,
            4 => &mut self.host,
            5 => &mut self.message,
            6 => &mut self.trace_id,
            7 => &mut self.span_id,
            _ => &mut self.parent_id,
        }
    }
}

/// A position in the record's text.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Spaces: the only whitespace left, as [`read`] refused every control character.
    fn skip_whitespace(&mut self) {
        while self.bytes().get(self.at) == Some(&b' ') {
            self.at += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes().get(self.at).copied()
    }

    /// The next byte that is not whitespace, consumed.
    fn next_token(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next_token()? == wanted).then_some(())
    }

    /// Nothing but whitespace is left.
    fn at_end(&mut self) -> bool {
        self.skip_whitespace();
        self.at == self.text.len()
    }

    /// A string without escapes (and without control characters, which [`read`] refused).
    fn plain_string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let rest = &self.bytes()[start..];
        let len = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // Both ends are ASCII quotes of valid UTF-8 text, so this is on character boundaries.
        self.text.get(start..start + len)
    }

    /// `null` (the field is absent, as serde reads an `Option`), or a plain string.
    fn optional_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.peek()? == b'n' {
            return self.null().then_some(None);
        }
        Some(Some(Cow::Borrowed(self.plain_string()?)))
    }

    fn null(&mut self) -> bool {
        let found = self.bytes()[self.at..].starts_with(b"null");
        self.at += 4;
        found
    }

    /// `null`, a plain string, or a non-negative integer of at most 18 digits (a sign, a
    /// fraction or an exponent is left to serde_json).
    fn timestamp(&mut self) -> Option<Option<WireTimestamp<'a>>> {
        match self.peek()? {
            b'n' => self.null().then_some(None),
            b'"' => Some(Some(WireTimestamp::Text(Cow::Borrowed(
                self.plain_string()?,
            )))),
            _ => {
                let digits = &self.bytes()[self.at..];
                let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
                let leading_zero = len > 1 && digits[0] == b'0';
                let follows = digits.get(len).copied();
                if len == 0
                    || len > 18
                    || leading_zero
                    || matches!(follows, Some(b'.' | b'e' | b'E'))
                {
                    return None;
                }
                let value = digits[..len]
                    .iter()
                    .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
                self.at += len;
                Some(Some(WireTimestamp::Millis(value)))
            }
        }
    }

    /// One JSON value as serde_json reads it into a `RawValue` (`null`: absent).
    fn raw_value(&mut self) -> Option<Option<&'a RawValue>> {
        self.skip_whitespace();
        let rest = &self.bytes()[self.at..];
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<&RawValue>();
        let value = values.next()?.ok()?;
        self.at += values.byte_offset();
        Some((value.get() != "null").then_some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{encode, event_of, read_with_serde};
    use super::*;
    use crate::synth::Synthesizer;
    use proptest::prelude::*;

    /// What serde_json decodes `bytes` into.
    fn by_serde(bytes: &[u8]) -> Result<crate::event::LogEvent, super::super::DecodeError> {
        read_with_serde(bytes).and_then(event_of)
    }

    #[test]
    fn reads_what_encode_writes() {
        let mut synth = Synthesizer::new(7, "host-1");
        let mut fast = 0;
        for i in 0..2_000 {
            let bytes = encode(&synth.next_event(1_700_000_000_000 + i)).expect("encodes");
            if let Some(wire) = read(&bytes) {
                fast += 1;
                assert_eq!(event_of(wire), by_serde(&bytes));
            }
        }
        // Messages with quotes or backslashes are escaped, and left to serde_json.
        assert!(fast > 1_500, "only {fast} of 2000 on the fast path");
    }

    #[test]
    fn leaves_to_serde_what_it_does_not_handle() {
        for input in [
            &br#"{"timestamp":1,"level":"INFO","service":"a\"b"}"#[..],
            br#"{"timestamp":1,"level":"INFO","service":"a","x":1}"#,
            br#"{"timestamp":1,"level":"INFO","service":"a","service":"b"}"#,
            br#"{"timestamp":1.5,"level":"INFO","service":"a"}"#,
            br#"{"timestamp":-1,"level":"INFO","service":"a"}"#,
            br#"{"timestamp":01,"level":"INFO","service":"a"}"#,
            br#"{"timestamp":1,"level":"INFO","service":"a",}"#,
            br#"{"timestamp":1,"level":"INFO","service":"a"} x"#,
            br#"{"timestamp":1,"level":"INFO","service":"a	b"}"#,
            b"{\"timestamp\":1,\"level\":\"INFO\",\"service\":\"\xff\"}",
            br#"{"timestamp":1,"level":"INFO","service":"a","attributes":{"a":}}"#,
            br#"[1]"#,
            b"{\"timestamp\":1,\n\"level\":\"INFO\",\"service\":\"a\"}",
        ] {
            assert!(read(input).is_none(), "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn reads_spaces_null_and_attributes_as_serde_does() {
        for input in [
            &b" { \"timestamp\" : 5 , \"level\":\"WARN\" ,  \"service\" : \"s\" , \"host\":null, \"attributes\" : { \"a\" : [1, {\"b\":null}] } } "[..],
            br#"{"timestamp":"2026-01-02T03:04:05.678Z","level":"INFO","service":"a","attributes":null}"#,
            br#"{"timestamp":null,"level":"INFO","service":"a"}"#,
            br#"{"level":"INFO","service":"a","timestamp":7,"attributes":"text"}"#,
            br#"{}"#,
        ] {
            let wire = read(input).expect("on the fast path");
            assert_eq!(event_of(wire), by_serde(input), "{}", String::from_utf8_lossy(input));
        }
    }

    /// A token of a record: mostly what events are made of, some of it malformed.
    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => proptest::sample::select(KEYS.to_vec())
                .prop_map(|k| format!("\"{}\"", String::from_utf8_lossy(k))),
            2 => ".{0,6}".prop_map(|s| serde_json::to_string(&s).expect("a string")),
            1 => r#"[a-z"\\ ]{0,5}"#.prop_map(|s| format!("\"{s}\"")),
            2 => proptest::sample::select(vec![
                "{", "}", ":", ",", " ", "\n", "null", "0", "01", "17", "-3", "1.5", "2e3",
                "9999999999999999999", "[1,2]", "{\"a\":1}", "{\"a\":", "true", "\"INFO\"",
                "\"2026-01-02T03:04:05Z\"", "\"\t\"",
            ])
            .prop_map(str::to_owned),
        ]
    }

    /// Records of the fast path's shape: `{"key":value,...}`, mostly with the keys an event
    /// needs and values of every kind, in any order and spacing.
    fn record() -> impl Strategy<Value = String> {
        let text = || {
            prop_oneof![
                ".{0,8}".prop_map(|s| serde_json::to_string(&s).expect("a string")),
                "[a-zA-Z0-9 :.-]{0,12}".prop_map(|s| format!("\"{s}\"")),
            ]
        };
        let value = prop_oneof![
            text(),
            proptest::sample::select(vec![
                "null",
                "0",
                "12",
                "1700000000000",
                "01",
                "1.0",
                "-1",
                "3e2",
                "{}",
                "[]",
                "{\"k\":[1,{\"x\":\"y\"}]}",
                "true",
                "{\"a\":1e999}",
                "{\"a\":",
            ])
            .prop_map(str::to_owned),
        ];
        let key = prop_oneof![
            8 => proptest::sample::select(KEYS.to_vec())
                .prop_map(|k| String::from_utf8_lossy(k).into_owned()),
            1 => "[a-z_]{1,9}",
        ];
        let timestamp = prop_oneof![
            (0i64..300_000_000_000_000).prop_map(|t| t.to_string()),
            Just("\"2026-01-02T03:04:05.678Z\"".to_owned()),
            Just("\"2026-01-02 03:04:05\"".to_owned()),
        ];
        let level =
            proptest::sample::select(vec!["\"INFO\"", "\"warn\"", "\"FATAL\"", "\"x\"", "\"\""]);
        let required = (timestamp, level, text()).prop_map(|(t, l, s)| {
            vec![
                ("timestamp".to_owned(), t),
                ("level".to_owned(), l.to_owned()),
                ("service".to_owned(), s),
            ]
        });
        let spaces = proptest::sample::select(vec!["", " ", "\n"]);
        (
            required,
            proptest::collection::vec((key, value), 0..6),
            spaces,
        )
            .prop_flat_map(|(mut pairs, extra, ws)| {
                pairs.extend(extra);
                Just(pairs).prop_shuffle().prop_map(move |pairs| {
                    let body: Vec<String> = pairs
                        .into_iter()
                        .map(|(k, v)| format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}"))
                        .collect();
                    format!("{{{}}}", body.join(","))
                })
            })
    }

    proptest! {
        /// Whatever the fast path reads, it reads as serde_json does.
        #[test]
        fn agrees_with_serde_on_records(text in record()) {
            if let Some(wire) = read(text.as_bytes()) {
                prop_assert_eq!(event_of(wire), by_serde(text.as_bytes()), "{}", text);
            }
        }

        /// ... also on token soup, which is mostly not JSON at all.
        #[test]
        fn agrees_with_serde_on_token_soup(tokens in proptest::collection::vec(token(), 0..24)) {
            let text = tokens.concat();
            if let Some(wire) = read(text.as_bytes()) {
                prop_assert_eq!(event_of(wire), by_serde(text.as_bytes()), "{}", text);
            }
        }
    }
}
