//! Alerts as episodes: one per (kind, key) while its condition lasts. A detector reports hits;
//! the first opens the episode (`Fired`), later ones extend it, and it resolves when the
//! detector says so or when no hit came for its quiet time (`Resolved`). What changed since the
//! last drain comes out once per episode, with the transitions in order.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::storable::cut;

/// Most sample messages an episode keeps.
pub const MAX_SAMPLES: usize = 3;
/// Longest sample message kept, in bytes.
const MAX_SAMPLE_BYTES: usize = 512;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ErrorRate,
    RateSpike,
    RateDrop,
    SqlInjection,
    Xss,
    PathTraversal,
    BruteForce,
    Scanner,
    /// A FATAL event, or one matching a configured critical pattern.
    Critical,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::ErrorRate,
        Kind::RateSpike,
        Kind::RateDrop,
        Kind::SqlInjection,
        Kind::Xss,
        Kind::PathTraversal,
        Kind::BruteForce,
        Kind::Scanner,
        Kind::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ErrorRate => "error_rate",
            Kind::RateSpike => "rate_spike",
            Kind::RateDrop => "rate_drop",
            Kind::SqlInjection => "sql_injection",
            Kind::Xss => "xss",
            Kind::PathTraversal => "path_traversal",
            Kind::BruteForce => "brute_force",
            Kind::Scanner => "scanner",
            Kind::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub kind: Kind,
    /// What it is about: a service, `ip:<address>`, `user:<name>`.
    pub key: String,
    pub severity: Severity,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Events that counted towards it.
    pub count: u64,
    /// The first few events' messages.
    pub samples: Vec<String>,
    pub resolved: bool,
    /// Resolves when no hit came for this long (event time); `None`: only when told.
    quiet_ms: Option<i64>,
}

/// A state change of an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    Fired,
    Resolved,
}

/// What changed of one episode since the last drain: its state now, and the transition, if
/// this change is one (None: only extended).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub episode: Episode,
    pub transition: Option<Transition>,
    /// Wall-clock time (epoch ms) the event that made the change was read, when the reader
    /// says ([`Episodes::stamp`]); for measuring how long an alert takes to go out.
    pub read_ms: Option<i64>,
}

/// One hit reported by a detector.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    pub kind: Kind,
    pub key: &'a str,
    pub severity: Severity,
    pub at_ms: i64,
    /// Events this hit stands for (a burst detector reports the whole burst at once).
    pub events: u64,
    pub sample: &'a str,
    pub quiet_ms: Option<i64>,
}

/// The open episodes and what changed since the last drain.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Episodes {
    #[serde(with = "as_list")]
    open: HashMap<(Kind, String), Episode>,
    #[serde(skip)]
    changes: Vec<Change>,
    /// (kind, key) → index in `changes` of its last change that a later extension may update.
    #[serde(skip)]
    pending: HashMap<(Kind, String), usize>,
    /// Indexes in `changes` of the critical episodes fired and not taken by [`Episodes::take_urgent`].
    #[serde(skip)]
    urgent: Vec<usize>,
    /// Changes before this index are stamped with their read time.
    #[serde(skip)]
    stamped: usize,
    /// Critical keys → read time of their last resolve: a new episode of the same key fired
    /// soon after must not overtake that resolve on its way out (see [`Episodes::take_urgent`]).
    #[serde(skip)]
    critical_resolved: HashMap<String, i64>,
}

/// How long after a critical episode of a key resolved a new one of the same key waits for its
/// batch rather than taking the fast path: the resolve goes out with its batch, and the new
/// fire must not reach consumers before it.
pub const RESOLVE_ORDER_MS: i64 = 10_000;

impl Episodes {
    pub fn is_open(&self, kind: Kind, key: &str) -> bool {
        self.open.contains_key(&(kind, key.to_owned()))
    }

    /// Whether a `critical` episode fired and was not taken yet (its alert should not wait).
    pub fn urgent(&self) -> bool {
        !self.urgent.is_empty()
    }

    /// The critical episodes fired since the last call, as they are now (stamped if they were):
    /// for a fast path that publishes them before the batch is stored. They stay among the
    /// changes [`Episodes::drain`] returns. A fire whose key resolved an episode less than
    /// [`RESOLVE_ORDER_MS`] before (read time), or whose key's resolve is still among the
    /// changes, is left to the batch, so that it follows that resolve.
    pub fn take_urgent(&mut self) -> Vec<Change> {
        let urgent = std::mem::take(&mut self.urgent);
        let mut taken = Vec::with_capacity(urgent.len());
        for i in urgent {
            let Some(change) = self.changes.get(i) else {
                continue;
            };
            let key = &change.episode.key;
            let resolved_earlier = self.changes[..i].iter().any(|c| {
                c.transition == Some(Transition::Resolved)
                    && c.episode.kind == Kind::Critical
                    && &c.episode.key == key
            });
            let resolved_lately = match (change.read_ms, self.critical_resolved.get(key)) {
                (Some(now), Some(&then)) => now.saturating_sub(then) < RESOLVE_ORDER_MS,
                _ => false,
            };
            if !resolved_earlier && !resolved_lately {
                taken.push(change.clone());
            }
        }
        taken
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Open episodes per kind.
    pub fn open_by_kind(&self) -> std::collections::BTreeMap<Kind, usize> {
        let mut by_kind = std::collections::BTreeMap::new();
        for (kind, _) in self.open.keys() {
            *by_kind.entry(*kind).or_default() += 1;
        }
        by_kind
    }

    /// Fires a new episode or extends the open one.
    pub fn hit(&mut self, hit: Hit<'_>) {
        let id = (hit.kind, hit.key.to_owned());
        let fired = !self.open.contains_key(&id);
        if fired && hit.kind == Kind::Critical {
            self.urgent.push(self.changes.len());
        }
        let episode = self.open.entry(id.clone()).or_insert_with(|| Episode {
            kind: hit.kind,
            key: hit.key.to_owned(),
            severity: hit.severity,
            first_seen_ms: hit.at_ms,
            last_seen_ms: hit.at_ms,
            count: 0,
            samples: Vec::new(),
            resolved: false,
            quiet_ms: hit.quiet_ms,
        });
        episode.count += hit.events;
        episode.last_seen_ms = episode.last_seen_ms.max(hit.at_ms);
        if hit.severity == Severity::Critical {
            episode.severity = Severity::Critical;
        }
        if episode.samples.len() < MAX_SAMPLES && !hit.sample.is_empty() {
            episode
                .samples
                .push(cut(hit.sample, MAX_SAMPLE_BYTES).to_owned());
        }
        let snapshot = episode.clone();
        match (fired, self.pending.get(&id)) {
            (false, Some(&i)) => self.changes[i].episode = snapshot,
            _ => {
                self.pending.insert(id, self.changes.len());
                self.changes.push(Change {
                    episode: snapshot,
                    transition: fired.then_some(Transition::Fired),
                    read_ms: None,
                });
            }
        }
    }

    /// Resolves the open episode of (kind, key), if any, as of `at_ms`.
    pub fn resolve(&mut self, kind: Kind, key: &str, at_ms: i64) {
        let id = (kind, key.to_owned());
        if let Some(mut episode) = self.open.remove(&id) {
            episode.resolved = true;
            episode.last_seen_ms = episode.last_seen_ms.max(at_ms);
            self.pending.remove(&id);
            self.changes.push(Change {
                episode,
                transition: Some(Transition::Resolved),
                read_ms: None,
            });
        }
    }

    /// Resolves the episodes whose quiet time has passed at `now_ms` (event time).
    pub fn expire(&mut self, now_ms: i64) {
        let due: Vec<(Kind, String)> = self
            .open
            .iter()
            .filter(|(_, e)| {
                e.quiet_ms
                    .is_some_and(|q| e.last_seen_ms.saturating_add(q) <= now_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for (kind, key) in due {
            let at = self
                .open
                .get(&(kind, key.clone()))
                .map_or(now_ms, |e| e.last_seen_ms);
            self.resolve(kind, &key, at);
        }
    }

    /// What changed since the last drain, in order.
    /// Stamps the changes since the last stamp with the time the event that made them was read.
    pub fn stamp(&mut self, read_ms: i64) {
        for change in self.changes.iter_mut().skip(self.stamped) {
            change.read_ms.get_or_insert(read_ms);
            let resolved_critical = change.transition == Some(Transition::Resolved)
                && change.episode.kind == Kind::Critical;
            if resolved_critical {
                self.critical_resolved
                    .insert(change.episode.key.clone(), read_ms);
            }
        }
        self.stamped = self.changes.len();
    }

    pub fn drain(&mut self) -> Vec<Change> {
        self.pending.clear();
        self.urgent.clear();
        self.stamped = 0;
        std::mem::take(&mut self.changes)
    }
}

/// The open episodes serialize as a list (JSON maps take string keys only).
mod as_list {
    use std::collections::HashMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::{Episode, Kind};

    pub fn serialize<S: Serializer>(
        open: &HashMap<(Kind, String), Episode>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut list: Vec<&Episode> = open.values().collect();
        list.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
        serializer.collect_seq(list)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<HashMap<(Kind, String), Episode>, D::Error> {
        let list = Vec::<Episode>::deserialize(deserializer)?;
        Ok(list
            .into_iter()
            .map(|e| ((e.kind, e.key.clone()), e))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(key: &str, at_ms: i64) -> Hit<'_> {
        Hit {
            kind: Kind::Scanner,
            key,
            severity: Severity::Warning,
            at_ms,
            events: 1,
            sample: "GET /.env",
            quiet_ms: Some(60_000),
        }
    }

    #[test]
    fn an_episode_fires_once_extends_and_resolves_after_quiet() {
        let mut e = Episodes::default();
        e.hit(hit("ip:1.2.3.4", 1_000));
        e.hit(hit("ip:1.2.3.4", 2_000));
        e.hit(hit("ip:5.6.7.8", 2_500));
        let changes = e.drain();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0].transition, Some(Transition::Fired));
        assert_eq!(changes[0].episode.count, 2);
        assert_eq!(changes[0].episode.last_seen_ms, 2_000);
        e.hit(hit("ip:1.2.3.4", 30_000));
        let changes = e.drain();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].transition, None, "an extension, not a new alert");
        e.expire(70_000);
        let resolved: Vec<String> = e
            .drain()
            .into_iter()
            .filter(|c| c.transition == Some(Transition::Resolved))
            .map(|c| c.episode.key)
            .collect();
        assert_eq!(resolved, ["ip:5.6.7.8"], "only the one quiet for 60 s");
        assert!(e.is_open(Kind::Scanner, "ip:1.2.3.4"));
        e.expire(90_000);
        assert_eq!(e.drain().len(), 1);
        assert_eq!(e.open_count(), 0);
        e.hit(hit("ip:1.2.3.4", 100_000));
        assert_eq!(
            e.drain()[0].transition,
            Some(Transition::Fired),
            "a new episode"
        );
    }

    #[test]
    fn samples_are_few_and_short() {
        let mut e = Episodes::default();
        let long = "é".repeat(1000);
        for i in 0..10 {
            e.hit(Hit {
                sample: &long,
                ..hit("k", i)
            });
        }
        let changes = e.drain();
        assert_eq!(changes[0].episode.samples.len(), MAX_SAMPLES);
        assert!(changes[0].episode.samples[0].len() <= MAX_SAMPLE_BYTES);
    }

    #[test]
    fn state_survives_a_round_trip() {
        let mut e = Episodes::default();
        e.hit(hit("ip:1.2.3.4", 1_000));
        e.drain();
        let json = serde_json::to_string(&e).expect("serializes");
        let mut back: Episodes = serde_json::from_str(&json).expect("deserializes");
        back.hit(hit("ip:1.2.3.4", 2_000));
        assert_eq!(back.drain()[0].transition, None, "still the same episode");
    }
}
