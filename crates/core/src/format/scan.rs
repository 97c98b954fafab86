//! A cursor over one log line, shared by the line-format parsers.

use super::ParseError;

pub(crate) struct Scan<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Scan<'a> {
    pub fn new(line: &'a str) -> Self {
        Self { line, pos: 0 }
    }

    pub fn rest(&self) -> &'a str {
        &self.line[self.pos..]
    }

    pub fn is_done(&self) -> bool {
        self.pos >= self.line.len()
    }

    pub fn peek(&self) -> Option<u8> {
        self.line.as_bytes().get(self.pos).copied()
    }

    /// Consumes `c` or fails with `reason`.
    pub fn expect(&mut self, c: u8, reason: &'static str) -> Result<(), ParseError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(ParseError::new(
                reason,
                format!("expected {:?} at byte {}", c as char, self.pos),
            ))
        }
    }

    /// Consumes `c` when it is next.
    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The text up to (not including) the next `stop` byte or the end.
    pub fn until(&mut self, stop: u8) -> &'a str {
        let rest = self.rest();
        let len = rest.bytes().position(|b| b == stop).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    /// The text up to the next space (or the end); fails with `reason` when it is empty.
    pub fn token(&mut self, reason: &'static str) -> Result<&'a str, ParseError> {
        let at = self.pos;
        let token = self.until(b' ');
        if token.is_empty() {
            Err(ParseError::new(
                reason,
                format!("missing field at byte {at}"),
            ))
        } else {
            Ok(token)
        }
    }

    /// The text up to the next of the `stops` bytes (or the end); fails with `reason` when it is
    /// empty.
    pub fn token_until(
        &mut self,
        stops: &[u8],
        reason: &'static str,
    ) -> Result<&'a str, ParseError> {
        let rest = self.rest();
        let len = rest
            .bytes()
            .position(|b| stops.contains(&b))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(ParseError::new(
                reason,
                format!("missing name at byte {}", self.pos),
            ));
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    /// An RFC 5424 PARAM-VALUE: `"`-quoted, where `\"`, `\\` and `\]` stand for the character
    /// (any other backslash is literal).
    pub fn sd_value(&mut self, reason: &'static str) -> Result<String, ParseError> {
        self.expect(b'"', reason)?;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match self.rest()[i + 1..].chars().next() {
                    Some(e @ ('"' | '\\' | ']')) => {
                        out.push(e);
                        chars.next();
                    }
                    _ => out.push('\\'),
                },
                _ => out.push(c),
            }
        }
        Err(ParseError::new(reason, "unterminated parameter value"))
    }

    /// Exactly `n` bytes (fails with `reason` when fewer remain or `n` splits a character).
    pub fn take(&mut self, n: usize, reason: &'static str) -> Result<&'a str, ParseError> {
        let rest = self.rest();
        match rest.get(..n) {
            Some(taken) => {
                self.pos += n;
                Ok(taken)
            }
            None => Err(ParseError::new(
                reason,
                format!("expected {n} bytes at byte {}", self.pos),
            )),
        }
    }

    /// A `"`-quoted string with `\"`, `\\` and `\xhh` escapes (Apache's), unescaped.
    pub fn quoted(&mut self, reason: &'static str) -> Result<String, ParseError> {
        self.expect(b'"', reason)?;
        let bytes = self.line.as_bytes();
        let mut out = Vec::new();
        loop {
            match bytes.get(self.pos) {
                None => return Err(ParseError::new(reason, "unterminated quoted field")),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    match bytes.get(self.pos + 1) {
                        Some(b'x') => {
                            let hex = bytes
                                .get(self.pos + 2..self.pos + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u8::from_str_radix(h, 16).ok())
                                .ok_or_else(|| ParseError::new(reason, "bad \\x escape"))?;
                            out.push(hex);
                            self.pos += 4;
                            continue;
                        }
                        Some(&c) => out.push(c),
                        None => return Err(ParseError::new(reason, "unterminated quoted field")),
                    }
                    self.pos += 2;
                }
                Some(&c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| ParseError::new(reason, "escapes make invalid UTF-8"))
    }
}

/// Writes `text` as an Apache-style quoted string: `"` and `\` escaped with a backslash,
/// control characters as `\xhh`.
pub(crate) fn push_quoted(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for &b in text.as_bytes() {
        match b {
            b'"' | b'\\' => {
                out.push(b'\\');
                out.push(b);
            }
            0..=0x1f | 0x7f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Writes `text` as one space-free token: spaces and control characters become `_`, an empty
/// text `-`; at most `max` bytes (cut at a character boundary).
pub(crate) fn push_token(out: &mut Vec<u8>, text: &str, max: usize, printable_ascii_only: bool) {
    let start = out.len();
    for c in text.chars() {
        let ok = if printable_ascii_only {
            c.is_ascii_graphic()
        } else {
            !c.is_whitespace() && !c.is_control()
        };
        let mut buf = [0u8; 4];
        let encoded = if ok {
            c.encode_utf8(&mut buf).as_bytes()
        } else {
            b"_"
        };
        if out.len() - start + encoded.len() > max {
            break;
        }
        out.extend_from_slice(encoded);
    }
    if out.len() == start {
        out.push(b'-');
    }
}

/// Writes `text` with every line break or other control character as a space.
pub(crate) fn push_one_line(out: &mut Vec<u8>, text: &str) {
    for c in text.chars() {
        if c.is_control() {
            out.push(b' ');
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
}

/// `-` means absent.
pub(crate) fn dash_none(text: &str) -> Option<String> {
    (text != "-" && !text.is_empty()).then(|| text.to_owned())
}
