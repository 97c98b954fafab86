//! Enrichment, before an event is stored and routed: its user agent parsed into `ua` (browser,
//! OS, device, bot) and its client address located into `geo` (country, AS number and
//! organisation) when MaxMind-format databases are configured. Both are added to the event's
//! attributes; an event without either is left untouched (and costs a substring search).
//!
//! The user agent is read from `http.user_agent` (access lines), `user_agent.original` (ECS) or
//! `user_agent`; the address from `http.client_ip`, `client.ip`, `source.ip` or `client_ip`.

pub mod geo;
pub mod user_agent;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::LogEvent;
use geo::GeoDatabase;
use user_agent::{AgentParser, Rules};

/// What an enricher is built from, shared by every enricher of the process.
#[derive(Clone, Default)]
pub struct Sources {
    /// The user-agent rules (None: user agents not parsed).
    pub agents: Option<Rules>,
    /// MaxMind-format databases (empty: addresses not located).
    pub geo: Arc<Vec<GeoDatabase>>,
}

impl Sources {
    pub fn is_empty(&self) -> bool {
        self.agents.is_none() && self.geo.is_empty()
    }
}

/// Which enrichments an event got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enriched {
    pub agent: bool,
    pub place: bool,
}

/// Enriches events (one per thread of work: it keeps a cache of user agents).
pub struct Enricher {
    agents: Option<AgentParser>,
    geo: Arc<Vec<GeoDatabase>>,
}

impl Enricher {
    pub fn new(sources: &Sources) -> Self {
        Self {
            agents: sources.agents.clone().map(AgentParser::new),
            geo: sources.geo.clone(),
        }
    }

    /// Adds `ua` and `geo` to `event`'s attributes, as far as it has a user agent or a client
    /// address and the sources know them. Only the top level of the attributes is rebuilt: the
    /// other members are copied as they are.
    pub fn enrich(&mut self, event: &mut LogEvent) -> Enriched {
        let Some(text) = event.attributes.as_deref() else {
            return Enriched::default();
        };
        let may_agent = self.agents.is_some() && text.contains("user_agent");
        let may_place = !self.geo.is_empty() && text.contains("ip\"");
        if !may_agent && !may_place {
            return Enriched::default();
        }
        let Ok(mut attributes) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(text)
        else {
            return Enriched::default();
        };
        let probe = Probe::of(&attributes);
        let mut done = Enriched::default();
        if let (true, Some(parser)) = (may_agent, self.agents.as_mut()) {
            let agent = probe.user_agent.as_deref().and_then(|ua| parser.parse(ua));
            if let Some(raw) = agent.and_then(|a| raw(&a)) {
                attributes.insert("ua".to_owned(), raw);
                done.agent = true;
            }
        }
        if may_place {
            let place = probe
                .client_ip
                .as_deref()
                .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
                .and_then(|ip| geo::locate(&self.geo, ip));
            if let Some(raw) = place.and_then(|p| raw(&p)) {
                attributes.insert("geo".to_owned(), raw);
                done.place = true;
            }
        }
        if done != Enriched::default() {
            if let Ok(text) = serde_json::to_string(&attributes) {
                event.attributes = Some(text);
            }
        }
        done
    }
}

/// `value` as a raw JSON value.
fn raw(value: &impl serde::Serialize) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(value).ok()
}

/// The user agent and client address an event's attributes hold, where shippers put them.
#[derive(Default)]
struct Probe {
    user_agent: Option<String>,
    client_ip: Option<String>,
}

/// The members of one attribute object read for enrichment (others skipped unread).
#[derive(Deserialize, Default)]
struct Nested {
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    client_ip: Option<String>,
    #[serde(default)]
    original: Option<String>,
    #[serde(default)]
    ip: Option<String>,
}

impl Probe {
    fn of(attributes: &BTreeMap<String, Box<RawValue>>) -> Self {
        let nested = |key: &str| -> Nested {
            attributes
                .get(key)
                .filter(|raw| raw.get().starts_with('{'))
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                .unwrap_or_default()
        };
        let text = |key: &str| -> Option<String> {
            attributes
                .get(key)
                .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
        };
        let http = nested("http");
        let user_agent = http
            .user_agent
            .or_else(|| nested("user_agent").original)
            .or_else(|| text("user_agent"));
        let client_ip = http
            .client_ip
            .or_else(|| nested("client").ip)
            .or_else(|| nested("source").ip)
            .or_else(|| text("client_ip"));
        Self {
            user_agent,
            client_ip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Level;
    use serde_json::Value;

    fn event(attributes: Option<&str>) -> LogEvent {
        LogEvent {
            timestamp_ms: 0,
            level: Level::Info,
            service: "web".into(),
            component: None,
            host: None,
            message: "GET / 200".into(),
            trace_id: None,
            span_id: None,
            parent_id: None,
            attributes: attributes.map(str::to_owned),
        }
    }

    #[test]
    fn user_agents_become_ua_attributes() {
        let sources = Sources {
            agents: Some(user_agent::builtin_rules().expect("rules")),
            geo: Arc::default(),
        };
        let mut enricher = Enricher::new(&sources);
        let mut access = event(Some(
            r#"{"http":{"status":200,"client_ip":"81.2.69.142","user_agent":"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"}}"#,
        ));
        let done = enricher.enrich(&mut access);
        assert_eq!(
            done,
            Enriched {
                agent: true,
                place: false
            }
        );
        let attributes: Value =
            serde_json::from_str(access.attributes.as_deref().expect("attributes")).expect("json");
        assert_eq!(attributes["ua"]["bot"], true);
        assert_eq!(attributes["http"]["status"], 200, "the rest is kept");
        let mut ecs = event(Some(r#"{"user_agent":{"original":"curl/8.5.0"}}"#));
        enricher.enrich(&mut ecs);
        assert!(ecs
            .attributes
            .as_deref()
            .is_some_and(|a| a.contains(r#""browser":"curl""#)));
        for untouched in [
            None,
            Some(r#"{"a":1}"#),
            Some("not json user_agent"),
            Some(r#"{"user_agent":7}"#),
        ] {
            let mut e = event(untouched);
            assert_eq!(enricher.enrich(&mut e), Enriched::default());
            assert_eq!(e.attributes.as_deref(), untouched);
        }
    }

    #[test]
    fn without_sources_nothing_changes() {
        let mut enricher = Enricher::new(&Sources::default());
        let text = r#"{"http":{"client_ip":"8.8.8.8","user_agent":"curl/8"}}"#;
        let mut e = event(Some(text));
        assert_eq!(enricher.enrich(&mut e), Enriched::default());
        assert_eq!(e.attributes.as_deref(), Some(text));
    }
}
