//! Traffic scenarios: anomalies scheduled into a generation run, each event they inject or
//! change labelled with the anomaly and its episode. The labels travel in the Kafka `label`
//! header, never in the event, and are the ground truth that detection is measured against.
//!
//! | scenario | during its period | label |
//! | --- | --- | --- |
//! | `steady` | nothing changes | none |
//! | `spike` | the rate is multiplied by `factor` (default 10) | `spike:<episode>` on every event of the period |
//! | `error_burst` | half of `service`'s events (default `payments`) become errors | `error_burst:<episode>` on those |
//! | `attack` | a fifth of the events are attack requests: SQL injection, XSS and path traversal in paths and parameters; brute-force login failures from a few IPs against a few users; scanner bursts of 404s | `sql_injection`, `xss`, `path_traversal`, `brute_force`, `scanner`, each `:<episode>` |
//!
//! The episode is `<scenario index in the request>` (1-based); brute force and scanner
//! episodes add the attacking IP's index, e.g. `brute_force:2.1`.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::event::{HttpAccess, Level};
use crate::format::Format;
use crate::synth::{Generated, Synthesizer};

/// The scenarios this build implements.
pub const NAMES: [&str; 4] = ["steady", "spike", "error_burst", "attack"];

/// The anomalies an `attack` episode labels.
pub const ATTACK_KINDS: [&str; 5] = [
    "sql_injection",
    "xss",
    "path_traversal",
    "brute_force",
    "scanner",
];

/// What an episode does.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Steady,
    Spike { factor: f64 },
    ErrorBurst { service: String, share: f64 },
    Attack { share: f64 },
}

/// One scheduled anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub id: u32,
    pub kind: Kind,
    pub start: Duration,
    /// `None`: until the run ends.
    pub end: Option<Duration>,
}

impl Episode {
    fn active(&self, elapsed: Duration) -> bool {
        elapsed >= self.start && self.end.is_none_or(|end| elapsed < end)
    }

    /// The part of `[0, until)` this episode covers, in seconds.
    fn overlap_seconds(&self, until: Duration) -> f64 {
        let end = self.end.map_or(until, |e| e.min(until));
        end.saturating_sub(self.start).as_secs_f64()
    }
}

/// The episodes of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schedule {
    pub episodes: Vec<Episode>,
}

impl Schedule {
    /// Seconds of base-rate traffic due by `elapsed`: elapsed time, stretched by every spike
    /// (`rate × effective_seconds` events are due).
    pub fn effective_seconds(&self, elapsed: Duration) -> f64 {
        let mut seconds = elapsed.as_secs_f64();
        for episode in &self.episodes {
            if let Kind::Spike { factor } = episode.kind {
                seconds += (factor - 1.0) * episode.overlap_seconds(elapsed);
            }
        }
        seconds
    }

    /// The rate multiplier at `elapsed`.
    pub fn rate_factor(&self, elapsed: Duration) -> f64 {
        self.episodes
            .iter()
            .filter(|e| e.active(elapsed))
            .map(|e| match e.kind {
                Kind::Spike { factor } => factor,
                _ => 1.0,
            })
            .product()
    }

    pub fn is_steady(&self) -> bool {
        self.episodes.iter().all(|e| e.kind == Kind::Steady)
    }
}

const SQL_INJECTIONS: &[&str] = &[
    "/api/v1/items?id=1%27%20OR%20%271%27%3D%271",
    "/api/v1/search?q=%27%3B%20DROP%20TABLE%20users%3B--",
    "/api/v1/users?id=1%20UNION%20SELECT%20username,password%20FROM%20users",
    "/api/v1/orders?sort=(SELECT%20SLEEP(5))",
];
const XSS: &[&str] = &[
    "/api/v1/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
    "/api/v1/profile?name=%3Cimg%20src%3Dx%20onerror%3Dalert(document.cookie)%3E",
    "/api/v1/comments?text=javascript:alert(%27xss%27)",
];
const TRAVERSALS: &[&str] = &[
    "/static/../../../../etc/passwd",
    "/api/v1/files?path=..%2F..%2F..%2Fetc%2Fshadow",
    "/download?file=....//....//windows/win.ini",
];
const SCANNED: &[&str] = &[
    "/wp-admin/",
    "/wp-login.php",
    "/.env",
    "/.git/config",
    "/phpmyadmin/",
    "/admin.php",
    "/server-status",
    "/backup.zip",
    "/config.json",
    "/cgi-bin/test.cgi",
];
const ATTACKERS: &[&str] = &["185.220.101.7", "45.155.205.33", "194.26.29.120"];
const VICTIMS: &[&str] = &["admin", "root", "alice"];
/// The service each attacker is after.
const TARGETS: &[&str] = &["users", "orders", "search"];
const TOOLS: &[&str] = &[
    "sqlmap/1.8.4#stable (https://sqlmap.org)",
    "Nikto/2.5.0",
    "python-requests/2.31.0",
    "Mozilla/5.0 zgrab/0.x",
];

/// Applies the active episodes to generated events.
pub struct Injector {
    schedule: Schedule,
    rng: SmallRng,
}

impl Injector {
    pub fn new(schedule: Schedule, seed: u64) -> Self {
        Self {
            schedule,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Changes or replaces `generated` as the episodes active at `elapsed` demand; answers the
    /// label of an anomalous event.
    pub fn apply(
        &mut self,
        elapsed: Duration,
        synth: &mut Synthesizer,
        generated: &mut Generated,
    ) -> Option<String> {
        let mut label = None;
        for episode in &self.schedule.episodes {
            if !episode.active(elapsed) {
                continue;
            }
            match &episode.kind {
                Kind::Steady => {}
                Kind::Spike { .. } => label = Some(format!("spike:{}", episode.id)),
                Kind::ErrorBurst { service, share } => {
                    if generated.event.service == *service && self.rng.random_bool(*share) {
                        let at = generated.event.timestamp_ms;
                        generated.event = synth.event_of(service, Level::Error, at);
                        generated.access = None;
                        if generated.format == Format::Apache {
                            generated.format = Format::Json;
                        }
                        label = Some(format!("error_burst:{}", episode.id));
                    }
                }
                Kind::Attack { share } => {
                    if self.rng.random_bool(*share) {
                        let (anomaly, access, target) = attack_request(&mut self.rng, episode.id);
                        let at = generated.event.timestamp_ms;
                        let (event, _) = synth.next_access(at);
                        generated.event = crate::LogEvent {
                            level: access.level(),
                            service: target.to_owned(),
                            message: access.message(),
                            attributes: Some(access.attributes()),
                            ..event
                        };
                        generated.access = Some(access);
                        label = Some(anomaly);
                    }
                }
            }
        }
        label
    }
}

/// One attack request of `episode`, its label and the service it is aimed at (each attacker
/// works on one site, so its requests meet in one partition, as a real attack's do).
fn attack_request(rng: &mut SmallRng, episode: u32) -> (String, HttpAccess, &'static str) {
    let pick = |rng: &mut SmallRng, items: &[&'static str]| items[rng.random_range(0..items.len())];
    let attacker = rng.random_range(0..ATTACKERS.len());
    let mut access = HttpAccess {
        client_ip: ATTACKERS[attacker].to_owned(),
        user: None,
        method: "GET".to_owned(),
        path: String::new(),
        protocol: "HTTP/1.1".to_owned(),
        status: 400,
        bytes: Some(rng.random_range(150..600)),
        referer: None,
        user_agent: Some(pick(rng, TOOLS).to_owned()),
        latency_us: Some(rng.random_range(1_000..30_000)),
    };
    let label = match rng.random_range(0..5u8) {
        0 => {
            access.path = pick(rng, SQL_INJECTIONS).to_owned();
            access.status = if rng.random_bool(0.2) { 500 } else { 403 };
            format!("sql_injection:{episode}")
        }
        1 => {
            access.path = pick(rng, XSS).to_owned();
            access.status = 403;
            format!("xss:{episode}")
        }
        2 => {
            access.path = pick(rng, TRAVERSALS).to_owned();
            access.status = if rng.random_bool(0.5) { 400 } else { 404 };
            format!("path_traversal:{episode}")
        }
        3 => {
            access.method = "POST".to_owned();
            access.path = "/api/v1/login".to_owned();
            access.user = Some(pick(rng, VICTIMS).to_owned());
            access.status = 401;
            format!("brute_force:{episode}.{}", attacker + 1)
        }
        _ => {
            access.path = pick(rng, SCANNED).to_owned();
            access.status = 404;
            format!("scanner:{episode}.{}", attacker + 1)
        }
    };
    (label, access, TARGETS[attacker])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn schedule() -> Schedule {
        Schedule {
            episodes: vec![
                Episode {
                    id: 1,
                    kind: Kind::Spike { factor: 10.0 },
                    start: at(10),
                    end: Some(at(20)),
                },
                Episode {
                    id: 2,
                    kind: Kind::ErrorBurst {
                        service: "payments".into(),
                        share: 0.5,
                    },
                    start: at(30),
                    end: Some(at(40)),
                },
                Episode {
                    id: 3,
                    kind: Kind::Attack { share: 0.2 },
                    start: at(50),
                    end: None,
                },
            ],
        }
    }

    #[test]
    fn spikes_stretch_the_due_count() {
        let s = schedule();
        assert_eq!(s.effective_seconds(at(5)), 5.0);
        assert_eq!(s.effective_seconds(at(15)), 15.0 + 9.0 * 5.0);
        assert_eq!(s.effective_seconds(at(60)), 60.0 + 9.0 * 10.0);
        assert_eq!(s.rate_factor(at(12)), 10.0);
        assert_eq!(s.rate_factor(at(25)), 1.0);
    }

    #[test]
    fn labels_only_on_anomalous_events_and_only_in_their_episode() {
        let mut injector = Injector::new(schedule(), 9);
        let mut synth = Synthesizer::new(4, "h").with_formats(
            crate::weighted::Weighted::new([(Format::Json, 1), (Format::Apache, 1)])
                .expect("weights"),
        );
        let mut counts = std::collections::BTreeMap::<String, u32>::new();
        for tenth in 0..700u64 {
            let elapsed = Duration::from_millis(tenth * 100);
            for _ in 0..20 {
                let mut g = synth.next_generated(0);
                let before = g.clone();
                let label = injector.apply(elapsed, &mut synth, &mut g);
                let secs = elapsed.as_secs();
                match &label {
                    None => {
                        assert_eq!(g.event, before.event, "unlabelled events are untouched");
                    }
                    Some(l) if l.starts_with("spike:") => assert!((10..20).contains(&secs)),
                    Some(l) if l.starts_with("error_burst:") => {
                        assert!((30..40).contains(&secs));
                        assert_eq!(
                            (g.event.service.as_str(), g.event.level),
                            ("payments", Level::Error)
                        );
                    }
                    Some(_) => {
                        assert!(secs >= 50);
                        let access = g.access.as_ref().expect("attack events are requests");
                        let attacker = ATTACKERS.iter().position(|a| *a == access.client_ip);
                        let attacker = attacker.expect("an attacker's address");
                        assert_eq!(g.event.service, TARGETS[attacker]);
                        assert_eq!(g.event.level, access.level());
                    }
                }
                if let Some(l) = label {
                    let kind = l.split(':').next().unwrap_or_default().to_owned();
                    *counts.entry(kind).or_default() += 1;
                }
            }
        }
        for kind in ["spike", "error_burst"].into_iter().chain(ATTACK_KINDS) {
            assert!(
                counts.get(kind).is_some_and(|n| *n > 5),
                "{kind}: {counts:?}"
            );
        }
        // Spike: every event of the 10 s period; attack: about a fifth of 20 s of events.
        assert_eq!(counts["spike"], 100 * 20);
        let attacks: u32 = ATTACK_KINDS.iter().map(|k| counts[*k]).sum();
        assert!((700..900).contains(&attacks), "{attacks}");
    }
}
