//! The level a free-text log line states, by the markers common loggers write: Apache's error
//! log (`[error]`, `[core:warn]`), glog (`E0512 ...`), logfmt (`level=warn`), and upper-case
//! level words (`ERROR`, `WARNING`, `FATAL`) as log4j, Python's logging and most others write
//! them. Lines that state none are left to the caller's default. Pure.

use crate::event::Level;

/// Level words looked for among a line's first words (where loggers put them).
const LEADING_WORDS: usize = 12;

/// The level `line` states, if it states one.
pub fn level_in(line: &str) -> Option<Level> {
    glog(line)
        .or_else(|| bracketed(line))
        .or_else(|| logfmt(line))
        .or_else(|| upper_case_word(line))
}

/// The level a word names (`warning`, `err`, `crit`, ...), whatever its case.
pub(crate) fn named(word: &str) -> Option<Level> {
    Some(match word.to_ascii_lowercase().as_str() {
        "emerg" | "emergency" | "alert" | "crit" | "critical" | "fatal" | "panic" => Level::Fatal,
        "err" | "error" | "severe" => Level::Error,
        "warn" | "warning" => Level::Warn,
        "notice" | "info" | "information" => Level::Info,
        "debug" | "fine" => Level::Debug,
        "trace" | "finer" | "finest" => Level::Trace,
        _ => return None,
    })
}

/// glog's prefix: a severity letter, then the month and day (`E0512 12:00:00.000 ...`).
fn glog(line: &str) -> Option<Level> {
    let b = line.as_bytes();
    let dated = b.len() > 5 && b[1..5].iter().all(u8::is_ascii_digit) && b[5] == b' ';
    if !dated {
        return None;
    }
    match b[0] {
        b'I' => Some(Level::Info),
        b'W' => Some(Level::Warn),
        b'E' => Some(Level::Error),
        b'F' => Some(Level::Fatal),
        _ => None,
    }
}

/// A level in brackets, as Apache's error log writes it (`[error]`, `[core:error]`,
/// `[proxy_fcgi:warn]`), among the first few bracketed fields.
fn bracketed(line: &str) -> Option<Level> {
    let mut rest = line;
    for _ in 0..4 {
        let open = rest.find('[')?;
        let after = &rest[open + 1..];
        let close = after.find(']')?;
        let inside = &after[..close];
        let word = inside.rsplit(':').next().unwrap_or(inside);
        if let Some(level) = named(word.trim()) {
            return Some(level);
        }
        rest = &after[close + 1..];
    }
    None
}

/// logfmt's `level=`, `lvl=` or `severity=` (quoted or not).
fn logfmt(line: &str) -> Option<Level> {
    ["level=", "lvl=", "severity="].iter().find_map(|key| {
        let at = line.find(key)?;
        let starts_word = at == 0 || !line.as_bytes()[at - 1].is_ascii_alphanumeric();
        if !starts_word {
            return None;
        }
        let value = line[at + key.len()..].trim_start_matches('"');
        let end = value
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(value.len());
        named(&value[..end])
    })
}

/// An upper-case level word among the line's first words (`2026-12-01 12:00:00 ERROR ...`,
/// `ERROR:root:...`, `WARNING [main] ...`); lower-case words are prose, not markers.
fn upper_case_word(line: &str) -> Option<Level> {
    line.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(LEADING_WORDS)
        .filter(|w| w.len() >= 3 && w.bytes().all(|b| b.is_ascii_uppercase()))
        .find_map(named)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn markers_of_common_loggers_give_the_level() {
        let cases = [
            (
                "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
                Some(Level::Error),
            ),
            (
                "[Wed Oct 11 14:32:52.123 2023] [core:warn] [pid 1] AH00098: pid file overwritten",
                Some(Level::Warn),
            ),
            (
                "[Sun Dec 04 04:51:08 2005] [notice] jk2_init() Found child 6725",
                Some(Level::Info),
            ),
            (
                "E0512 12:00:00.000123    42 server.cc:10] connection refused",
                Some(Level::Error),
            ),
            ("W1201 08:00:00.1 1 x.go:3] slow", Some(Level::Warn)),
            (
                "2026-12-01 12:00:00,123 ERROR [main] c.e.App - boom",
                Some(Level::Error),
            ),
            ("ERROR:root:database unreachable", Some(Level::Error)),
            (
                "2026-12-01T12:00:00Z WARNING disk almost full",
                Some(Level::Warn),
            ),
            (
                "FATAL: password authentication failed for user \"x\"",
                Some(Level::Fatal),
            ),
            (
                "ts=2026-12-01T12:00:00Z level=warn msg=\"retrying\"",
                Some(Level::Warn),
            ),
            ("time=\"x\" level=\"error\" msg=y", Some(Level::Error)),
            ("DEBUG http: request done", Some(Level::Debug)),
            ("user saw an error while saving", None),
            ("Connection closed by 203.0.113.9 port 22", None),
            ("E05 not glog", None),
            ("the loglevel=error flag", None),
        ];
        for (line, want) in cases {
            assert_eq!(level_in(line), want, "{line}");
        }
    }

    proptest! {
        #[test]
        fn any_line_is_read_without_panicking(line in ".{0,200}") {
            let _ = level_in(&line);
        }
    }
}
