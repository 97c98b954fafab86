//! Encoding of values for PostgreSQL's `COPY ... FROM STDIN` text format.
//!
//! Columns are separated by tabs, rows end with a newline, `\N` is NULL, and backslash,
//! tab, newline and carriage return inside a value are escaped with a backslash.

/// Appends `value` escaped for the COPY text format.
pub fn push_text(out: &mut Vec<u8>, value: &str) {
    for &b in value.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => {} // PostgreSQL text cannot hold NUL; dropping it is the only storable form.
            _ => out.push(b),
        }
    }
}

/// Appends an optional value: `\N` for `None`.
pub fn push_opt_text(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(v) => push_text(out, v),
        None => out.extend_from_slice(b"\\N"),
    }
}

/// Appends an integer.
pub fn push_int(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(value.to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_and_backslash() {
        let mut out = Vec::new();
        push_text(&mut out, "a\tb\nc\\d\re\0f");
        assert_eq!(out, b"a\\tb\\nc\\\\d\\ref");
        out.clear();
        push_opt_text(&mut out, None);
        assert_eq!(out, b"\\N");
    }
}
