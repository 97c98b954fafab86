//! Substrings looked for in every event, with their searcher built once: `str::contains` and
//! `str::find` build a two-way searcher on each call, which on a short log line costs more than
//! the search itself.

use memchr::memmem::Finder;

/// A substring and its prebuilt searcher.
#[derive(Clone)]
pub struct Needle(Finder<'static>);

impl Needle {
    pub fn new(text: &str) -> Self {
        Self(Finder::new(text.as_bytes()).into_owned())
    }

    /// Where the substring first starts in `haystack`.
    pub fn find(&self, haystack: &str) -> Option<usize> {
        self.0.find(haystack.as_bytes())
    }

    pub fn is_in(&self, haystack: &str) -> bool {
        self.find(haystack).is_some()
    }

    /// What follows the substring's first occurrence in `haystack`.
    pub fn after<'a>(&self, haystack: &'a str) -> Option<&'a str> {
        // The needle is whole UTF-8, so its end is a character boundary of the haystack.
        self.find(haystack)
            .and_then(|at| haystack.get(at + self.0.needle().len()..))
    }
}

impl std::fmt::Debug for Needle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Needle")
            .field(&String::from_utf8_lossy(self.0.needle()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_like_str() {
        let n = Needle::new("from ");
        assert_eq!(n.find("Failed password for root from 1.2.3.4"), Some(25));
        assert_eq!(n.after("x from 1.2.3.4"), Some("1.2.3.4"));
        assert!(!n.is_in("nothing"));
        assert_eq!(Needle::new("é").after("café au lait"), Some(" au lait"));
    }

    proptest! {
        #[test]
        fn agrees_with_str_find(needle in "[a-cé ]{1,3}", haystack in "[a-cé ]{0,40}") {
            prop_assert_eq!(Needle::new(&needle).find(&haystack), haystack.find(&needle));
        }
    }
}
