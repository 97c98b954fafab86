//! User-agent parsing: browser, OS, device, and whether it is a bot, with the ua-parser
//! project's rules (uap-core, compiled in from `data/uap-regexes.json`) through its Rust port.
//! Agents repeat heavily in access logs, so answers are cached.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::storable;

/// The rules, compiled once per process and shared.
pub type Rules = Arc<ua_parser::Extractor<'static>>;

/// uap-core's rules (version in `scripts/enrichment/uap-regexes.sh`).
const RULES_JSON: &str = include_str!("../../data/uap-regexes.json");

/// Compiles the built-in rules (a few hundred regexes: about a second; done once at start).
pub fn builtin_rules() -> Result<Rules, String> {
    let regexes: ua_parser::Regexes<'static> = serde_json::from_str(RULES_JSON)
        .map_err(|e| format!("the built-in user-agent rules do not parse: {e}"))?;
    let extractor = ua_parser::Extractor::try_from(regexes)
        .map_err(|e| format!("the built-in user-agent rules do not compile: {e}"))?;
    Ok(Arc::new(extractor))
}

/// What a user agent says of its client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub browser: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browser_version: Option<String>,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    pub device: String,
    /// A crawler, spider or monitoring robot (uap-core's device `Spider`).
    pub bot: bool,
}

/// Most user agents remembered; past it the cache starts again (a flood of distinct agents
/// costs parsing time, never memory).
const CACHE_ENTRIES: usize = 10_000;

/// Longest user agent parsed (longer ones are cut: the rules look at their start).
const MAX_LEN: usize = 512;

/// A parser with its own cache (one per thread of work).
pub struct AgentParser {
    rules: Rules,
    cache: HashMap<String, Agent>,
}

impl AgentParser {
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            cache: HashMap::new(),
        }
    }

    /// What `ua` says (None when empty).
    pub fn parse(&mut self, ua: &str) -> Option<Agent> {
        let ua = storable::cut(ua.trim(), MAX_LEN);
        if ua.is_empty() || ua == "-" {
            return None;
        }
        if let Some(agent) = self.cache.get(ua) {
            return Some(agent.clone());
        }
        let agent = extract(&self.rules, ua);
        if self.cache.len() >= CACHE_ENTRIES {
            self.cache.clear();
        }
        self.cache.insert(ua.to_owned(), agent.clone());
        Some(agent)
    }
}

fn extract(rules: &ua_parser::Extractor<'static>, ua: &str) -> Agent {
    let (browser, os, device) = rules.extract(ua);
    let browser = browser.map(|b| b.into_owned());
    let os = os.map(|o| o.into_owned());
    let device = device.map_or_else(|| "Other".to_owned(), |d| d.into_owned().device);
    Agent {
        browser_version: browser
            .as_ref()
            .and_then(|b| version([&b.major, &b.minor, &b.patch])),
        browser: browser.map_or_else(|| "Other".to_owned(), |b| b.family),
        os_version: os
            .as_ref()
            .and_then(|o| version([&o.major, &o.minor, &o.patch])),
        os: os.map_or_else(|| "Other".to_owned(), |o| o.os),
        bot: device == "Spider",
        device,
    }
}

/// `major.minor.patch`, as far as known.
fn version(parts: [&Option<String>; 3]) -> Option<String> {
    let known: Vec<&str> = parts
        .iter()
        .map_while(|p| p.as_deref())
        .filter(|p| !p.is_empty())
        .collect();
    (!known.is_empty()).then(|| known.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_systems_devices_and_bots() {
        let rules = builtin_rules().expect("rules");
        let mut parser = AgentParser::new(rules);
        let firefox = parser
            .parse("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0")
            .expect("agent");
        assert_eq!(firefox.browser, "Firefox");
        assert_eq!(firefox.browser_version.as_deref(), Some("120.0"));
        assert_eq!(firefox.os, "Linux");
        assert!(!firefox.bot);
        let iphone = parser
            .parse("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")
            .expect("agent");
        assert_eq!(iphone.os, "iOS");
        assert_eq!(iphone.device, "iPhone");
        let bot = parser
            .parse("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
            .expect("agent");
        assert!(bot.bot, "{bot:?}");
        let curl = parser.parse("curl/8.5.0").expect("agent");
        assert_eq!(curl.browser, "curl");
        assert_eq!(parser.parse("-"), None);
        assert_eq!(parser.parse(""), None);
        // Cached answers are the same answers.
        assert_eq!(parser.parse("curl/8.5.0"), Some(curl));
        let long = "x".repeat(10_000) + "é";
        assert_eq!(parser.parse(&long).map(|a| a.browser), Some("Other".into()));
    }
}
