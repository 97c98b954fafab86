//! The text query (`q`) matched against one message, as the live tail matches it: the web search
//! syntax PostgreSQL's `websearch_to_tsquery` reads for stored events, over words split as its
//! `simple` configuration roughly splits them (runs of letters and digits, lower-cased).
//!
//! - `upstream timeout`: both words, anywhere;
//! - `"upstream timeout"`: the words one after the other;
//! - `timeout or refused`: either (`or` binds tighter than the implied AND);
//! - `-timeout`: without the word.

/// One term: a word or a phrase, maybe negated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    words: Vec<String>,
    negated: bool,
}

/// A parsed text query: every clause must match; a clause matches when any of its terms does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    clauses: Vec<Vec<Term>>,
}

/// The words of a text, lower-cased: runs of letters and digits.
pub fn split(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

impl Words {
    /// Reads a query; None when it has no word to look for (it then matches nothing, as in
    /// PostgreSQL).
    pub fn parse(query: &str) -> Option<Self> {
        let mut clauses: Vec<Vec<Term>> = Vec::new();
        let mut or_pending = false;
        let mut rest = query.trim_start();
        while !rest.is_empty() {
            let negated = rest.starts_with('-');
            if negated {
                rest = &rest[1..];
            }
            let (raw, quoted, after) = match rest.strip_prefix('"') {
                Some(inner) => match inner.find('"') {
                    Some(end) => (&inner[..end], true, &inner[end + 1..]),
                    None => (inner, true, ""),
                },
                None => {
                    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                    (&rest[..end], false, &rest[end..])
                }
            };
            rest = after.trim_start();
            if !quoted && !negated && raw.eq_ignore_ascii_case("or") {
                or_pending = !clauses.is_empty();
                continue;
            }
            let words: Vec<String> = split(raw).collect();
            if words.is_empty() {
                continue;
            }
            let term = Term { words, negated };
            match clauses.last_mut() {
                Some(last) if or_pending => last.push(term),
                _ => clauses.push(vec![term]),
            }
            or_pending = false;
        }
        (!clauses.is_empty()).then_some(Self { clauses })
    }

    /// Whether `message` matches.
    pub fn matches(&self, message: &str) -> bool {
        let words: Vec<String> = split(message).collect();
        self.clauses.iter().all(|clause| {
            clause.iter().any(|term| {
                let found = words
                    .windows(term.words.len())
                    .any(|window| window == term.words.as_slice());
                found != term.negated
            })
        })
    }
}

/// The longest word [`required_words`] hands out: PostgreSQL's parser drops much longer words, and
/// a word it drops is not required.
const LONGEST_REQUIRED: usize = 100;

/// Words every message matching `query` contains, case aside, as PostgreSQL reads the query
/// (`websearch_to_tsquery('simple', query)`): a cheap test (`message ILIKE '%word%'`) that can
/// rule a message out before its words are split. Only for queries whose reading is plain: without
/// `-` (negation, or a hyphen PostgreSQL splits its own way) and without the word `or`; otherwise,
/// and for words that are not ASCII (case folding differs) or are very long, nothing is required.
/// Every word returned is ASCII letters and digits, so it needs no escaping in a LIKE pattern.
pub fn required_words(query: &str) -> Vec<String> {
    if query.contains('-') || split(query).any(|w| w == "or") {
        return Vec::new();
    }
    let mut words: Vec<String> = split(query)
        .filter(|w| w.is_ascii() && w.len() <= LONGEST_REQUIRED)
        .collect();
    words.sort();
    words.dedup();
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(query: &str, message: &str) -> bool {
        Words::parse(query).is_some_and(|w| w.matches(message))
    }

    #[test]
    fn reads_the_web_search_syntax() {
        let msg = "request 15 failed: Upstream timeout after 30s";
        assert!(m("timeout", msg));
        assert!(m("TIMEOUT upstream", msg));
        assert!(m("\"upstream timeout\"", msg));
        assert!(!m("\"timeout upstream\"", msg));
        assert!(m("refused or timeout", msg));
        assert!(!m("refused or declined", msg));
        assert!(!m("-timeout", msg));
        assert!(m("failed -served", msg));
        assert!(m("request 15", msg));
        assert!(!m("time", msg), "whole words only");
        assert!(!m("request 16", msg));
        assert!(m("\"request 15\" or nothing", msg));
        assert!(m("\"unterminated phrase", "an unterminated phrase"));
    }

    #[test]
    fn a_query_without_words_is_none() {
        assert_eq!(Words::parse(""), None);
        assert_eq!(Words::parse("  !!! "), None);
        assert_eq!(Words::parse("or"), None);
        assert_eq!(Words::parse("\"\""), None);
    }

    #[test]
    fn required_words_are_only_those_of_plain_queries() {
        assert_eq!(required_words("Crashed  memory"), ["crashed", "memory"]);
        assert_eq!(
            required_words("\"issuer unavailable\", timeout"),
            ["issuer", "timeout", "unavailable"]
        );
        assert_eq!(required_words("timeout timeout"), ["timeout"]);
        assert!(required_words("timeout or refused").is_empty());
        assert!(required_words("timeout OR refused").is_empty());
        assert!(required_words("failed -served").is_empty());
        assert!(required_words("re-try").is_empty());
        assert_eq!(required_words("café timeout"), ["timeout"]);
        assert_eq!(required_words(&"x".repeat(101)), Vec::<String>::new());
    }

    proptest! {
        #[test]
        fn any_query_parses_without_panic(query in "\\PC{0,60}", message in "\\PC{0,60}") {
            if let Some(words) = Words::parse(&query) {
                let _ = words.matches(&message);
            }
        }

        #[test]
        fn a_message_matching_a_query_holds_its_required_words(query in "[a-zA-Z0-9 \"]{1,30}", message in "[a-zA-Z0-9 :=.,\"-]{0,60}") {
            if Words::parse(&query).is_some_and(|w| w.matches(&message)) {
                let lower = message.to_lowercase();
                for word in required_words(&query) {
                    prop_assert!(lower.contains(&word), "{word:?} of {query:?} in {message:?}");
                }
            }
        }

        #[test]
        fn every_word_of_a_message_finds_it(message in "[a-zA-Z0-9 :=.,-]{1,60}") {
            for word in split(&message).filter(|w| w != "or") {
                prop_assert!(m(&word, &message), "{word:?} in {message:?}");
            }
        }
    }
}
