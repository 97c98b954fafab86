//! Realistic synthetic log events: several services with their components, levels drawn by
//! weight, per-service message templates with variable parts, and W3C-sized trace/span ids.
//!
//! Deterministic for a given seed, so tests and benchmarks are repeatable.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::event::{HttpAccess, Level, LogEvent};
use crate::format::Format;
use crate::weighted::Weighted;

/// Parses level weights written as `INFO:70,WARN:20,ERROR:10`.
pub fn parse_level_weights(text: &str) -> Result<Weighted<Level>, String> {
    let mut entries = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once(':')
            .ok_or_else(|| format!("{part:?} is not LEVEL:WEIGHT"))?;
        let level = name.trim().parse::<Level>().map_err(|e| e.to_string())?;
        let weight = weight
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("weight {weight:?} of {name} is not a whole number"))?;
        entries.push((level, weight));
    }
    Weighted::new(entries).map_err(|e| e.to_string())
}

/// The default level mix: mostly INFO, some WARN, a few ERROR.
pub fn default_level_weights() -> Weighted<Level> {
    // TRACE 1, DEBUG 9, INFO 70, WARN 14, ERROR 5, FATAL 1 (cumulative).
    Weighted::from_cumulative(Level::ALL.to_vec(), vec![1, 10, 80, 94, 99, 100])
}

struct ServiceProfile {
    name: &'static str,
    components: &'static [&'static str],
    entity: &'static str,
}

const SERVICES: &[(ServiceProfile, u32)] = &[
    (
        ServiceProfile {
            name: "orders",
            components: &["api", "db", "worker"],
            entity: "order",
        },
        30,
    ),
    (
        ServiceProfile {
            name: "users",
            components: &["api", "auth", "cache"],
            entity: "user",
        },
        20,
    ),
    (
        ServiceProfile {
            name: "payments",
            components: &["api", "gateway", "fraud"],
            entity: "payment",
        },
        15,
    ),
    (
        ServiceProfile {
            name: "inventory",
            components: &["api", "sync"],
            entity: "sku",
        },
        15,
    ),
    (
        ServiceProfile {
            name: "shipping",
            components: &["api", "tracker"],
            entity: "shipment",
        },
        10,
    ),
    (
        ServiceProfile {
            name: "search",
            components: &["api", "indexer"],
            entity: "query",
        },
        10,
    ),
];

/// The names of the services the synthesizer produces.
pub fn service_names() -> impl Iterator<Item = &'static str> {
    SERVICES.iter().map(|(p, _)| p.name)
}

const PATHS: &[&str] = &[
    "/api/v1/items",
    "/api/v1/cart",
    "/api/v1/checkout",
    "/health",
    "/api/v1/profile",
];
const TABLES: &[&str] = &["orders", "customers", "line_items", "stock", "sessions"];
const DECLINES: &[&str] = &[
    "insufficient funds",
    "card expired",
    "suspected fraud",
    "issuer unavailable",
];
const REGIONS: &[&str] = &["eu-west-1", "us-east-1", "ap-south-1"];
const METHODS: &[(&str, u32)] = &[
    ("GET", 70),
    ("POST", 18),
    ("PUT", 6),
    ("DELETE", 3),
    ("PATCH", 3),
];
const STATUSES: &[(u16, u32)] = &[
    (200, 780),
    (201, 40),
    (204, 30),
    (301, 10),
    (304, 40),
    (400, 25),
    (401, 15),
    (403, 8),
    (404, 30),
    (429, 5),
    (500, 8),
    (502, 4),
    (503, 5),
];
const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "curl/8.5.0",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
];
/// Benign searches that look like injections to a keyword list.
const LOOKALIKE_SEARCHES: &[&str] = &[
    "select+comfort+mattress",
    "union+jack+flag",
    "drop+earrings+gold",
    "O%27Reilly+programming+rust",
    "script+writing+kit",
    "1%22+pipe+fitting",
    "rock+%26+roll+t-shirt",
    "%22where%22+the+crawdads+sing",
];
/// Per mille of access requests that are look-alike searches and mistyped logins.
const LOOKALIKE_SEARCH_PERMILLE: u16 = 15;
const MISTYPED_LOGIN_PERMILLE: u16 = 5;
const REFERERS: &[&str] = &[
    "https://shop.example.com/",
    "https://www.google.com/",
    "https://shop.example.com/cart",
];

/// Produces synthetic events.
pub struct Synthesizer {
    rng: SmallRng,
    host: String,
    services: Weighted<&'static ServiceProfile>,
    levels: Weighted<Level>,
    methods: Weighted<&'static str>,
    statuses: Weighted<u16>,
    formats: Option<Weighted<Format>>,
}

impl Synthesizer {
    pub fn new(seed: u64, host: impl Into<String>) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            host: host.into(),
            services: Weighted::new(SERVICES.iter().map(|(p, w)| (p, *w)))
                .unwrap_or_else(|_| unreachable!("static weights are valid")),
            levels: default_level_weights(),
            methods: Weighted::new(METHODS.iter().copied())
                .unwrap_or_else(|_| unreachable!("static weights are valid")),
            statuses: Weighted::new(STATUSES.iter().copied())
                .unwrap_or_else(|_| unreachable!("static weights are valid")),
            formats: None,
        }
    }

    pub fn with_levels(mut self, levels: Weighted<Level>) -> Self {
        self.levels = levels;
        self
    }

    fn hex(&mut self, bytes: usize) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(bytes * 2);
        for _ in 0..bytes {
            let byte = self.rng.random::<u8>();
            s.push(char::from(DIGITS[usize::from(byte >> 4)]));
            s.push(char::from(DIGITS[usize::from(byte & 0xf)]));
        }
        s
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    fn message(&mut self, profile: &ServiceProfile, level: Level) -> String {
        let id = self.rng.random_range(100_000..999_999u32);
        let ms = self.rng.random_range(1..2_500u32);
        let entity = profile.entity;
        match level {
            Level::Trace => format!("entering handler for {entity} {id}"),
            Level::Debug => {
                let table = self.pick(TABLES);
                format!("cache miss for {entity}:{id}, loading from {table}")
            }
            Level::Info => match self.rng.random_range(0..3u8) {
                0 => {
                    let path = self.pick(PATHS);
                    format!("GET {path}/{id} completed with 200 in {ms} ms")
                }
                1 => format!("{entity} {id} processed in {ms} ms"),
                _ => {
                    let cents = self.rng.random_range(100..50_000u32);
                    format!(
                        "{entity} {id} updated, amount={}.{:02} EUR",
                        cents / 100,
                        cents % 100
                    )
                }
            },
            Level::Warn => match self.rng.random_range(0..2u8) {
                0 => {
                    let table = self.pick(TABLES);
                    format!("slow query on {table} took {ms} ms")
                }
                _ => format!(
                    "retrying {entity} {id} after timeout (attempt {})",
                    ms % 5 + 1
                ),
            },
            Level::Error => match profile.name {
                "payments" => {
                    let reason = self.pick(DECLINES);
                    format!("payment {id} declined: {reason}")
                }
                _ => {
                    format!("failed to process {entity} {id}: upstream returned 503 after {ms} ms")
                }
            },
            Level::Fatal => format!(
                "{} worker crashed: out of memory while handling {entity} {id}",
                profile.name
            ),
        }
    }

    /// The next event, stamped `timestamp_ms`.
    pub fn next_event(&mut self, timestamp_ms: i64) -> LogEvent {
        let profile: &'static ServiceProfile = self.services.pick(&mut self.rng);
        let level = *self.levels.pick(&mut self.rng);
        self.event_with(profile, level, timestamp_ms)
    }

    /// A level drawn from the level mix.
    pub fn next_level(&mut self) -> Level {
        *self.levels.pick(&mut self.rng)
    }

    /// A service name drawn from the service mix.
    pub fn next_service(&mut self) -> &'static str {
        self.services.pick(&mut self.rng).name
    }

    /// An event of `service` (one of [`service_names`], or any other name with generic
    /// messages) at `level`.
    pub fn event_of(&mut self, service: &str, level: Level, timestamp_ms: i64) -> LogEvent {
        const GENERIC: ServiceProfile = ServiceProfile {
            name: "service",
            components: &["api"],
            entity: "request",
        };
        let profile = SERVICES
            .iter()
            .map(|(p, _)| p)
            .find(|p| p.name == service)
            .unwrap_or(&GENERIC);
        let mut event = self.event_with(profile, level, timestamp_ms);
        if event.service != service {
            event.service = service.to_owned();
        }
        event
    }

    fn event_with(
        &mut self,
        profile: &ServiceProfile,
        level: Level,
        timestamp_ms: i64,
    ) -> LogEvent {
        let component = self.pick(profile.components);
        let message = self.message(profile, level);
        let region = self.pick(REGIONS);
        let request_id = self.hex(8);
        LogEvent {
            timestamp_ms,
            level,
            service: profile.name.to_owned(),
            component: Some(component.to_owned()),
            host: Some(self.host.clone()),
            message,
            trace_id: Some(self.hex(16)),
            span_id: Some(self.hex(8)),
            parent_id: None,
            attributes: Some(format!(
                r#"{{"request_id":"{request_id}","region":"{region}"}}"#
            )),
        }
    }
}

/// One generated event in the format it is to be sent in (with its request when it is an
/// access-log line).
#[derive(Debug, Clone)]
pub struct Generated {
    pub format: Format,
    pub event: LogEvent,
    pub access: Option<HttpAccess>,
}

impl Synthesizer {
    /// Draws each event's format from `formats` (default: JSON only).
    pub fn with_formats(mut self, formats: Weighted<Format>) -> Self {
        self.formats = Some(formats);
        self
    }

    /// The next event: its format drawn from the mix; Apache lines are access requests, the
    /// other formats carry any event.
    pub fn next_generated(&mut self, timestamp_ms: i64) -> Generated {
        let format = match &self.formats {
            Some(formats) => *formats.pick(&mut self.rng),
            None => Format::Json,
        };
        if format == Format::Apache {
            let (event, access) = self.next_access(timestamp_ms);
            Generated {
                format,
                event,
                access: Some(access),
            }
        } else {
            Generated {
                format,
                event: self.next_event(timestamp_ms),
                access: None,
            }
        }
    }

    /// Method, path, status and user of a request to `profile`: mostly the service's own
    /// routes, with the benign look-alikes of attacks that real traffic has: searches for
    /// products whose names hold SQL words or quotes, and customers mistyping their password.
    fn request(&mut self, profile: &ServiceProfile) -> (&'static str, String, u16, Option<String>) {
        let roll = self.rng.random_range(0..1_000u16);
        if roll < LOOKALIKE_SEARCH_PERMILLE {
            let path = format!("/api/v1/products?q={}", self.pick(LOOKALIKE_SEARCHES));
            return ("GET", path, 200, None);
        }
        if roll < LOOKALIKE_SEARCH_PERMILLE + MISTYPED_LOGIN_PERMILLE {
            let user = format!("customer{}", self.rng.random_range(1..500_000u32));
            return ("POST", "/api/v1/login".to_owned(), 401, Some(user));
        }
        let method = *self.methods.pick(&mut self.rng);
        let status = *self.statuses.pick(&mut self.rng);
        let id = self.rng.random_range(1_000..99_999u32);
        let path = match self.rng.random_range(0..4u8) {
            0 => format!("{}/{id}", self.pick(PATHS)),
            1 => format!("{}?page={}&sort=price", self.pick(PATHS), id % 20),
            _ => format!("/api/v1/{}s/{id}", profile.entity),
        };
        let user = (self.rng.random_range(0..3u8) > 0).then(|| self.pick(USERS).to_owned());
        (method, path, status, user)
    }

    /// A client address: many private and carrier-grade NAT addresses, so each sends a few
    /// requests a minute (as at a busy site), and a few busy documentation-range clients.
    fn client_ip(&mut self) -> String {
        let (a, b, c) = (
            self.rng.random::<u8>(),
            self.rng.random::<u8>(),
            self.rng.random_range(1..255u8),
        );
        match self.rng.random_range(0..20u8) {
            0..=8 => format!("10.{a}.{b}.{c}"),
            9..=17 => format!("100.{}.{b}.{c}", 64 + a % 64),
            18 => format!("203.0.113.{c}"),
            _ => format!("198.51.100.{c}"),
        }
    }

    /// The next access-log request of a service: its event (level from the status, the `http`
    /// fields in `attributes`) and the request itself, for the Apache line.
    pub fn next_access(&mut self, timestamp_ms: i64) -> (LogEvent, HttpAccess) {
        let profile: &'static ServiceProfile = self.services.pick(&mut self.rng);
        let (method, path, status, user) = self.request(profile);
        let client_ip = self.client_ip();
        // Latency: mostly tens of milliseconds, a long tail, slower on server errors.
        let base = self.rng.random_range(2_000..60_000u64);
        let tail = if self.rng.random_range(0..20u8) == 0 {
            self.rng.random_range(100_000..2_000_000u64)
        } else {
            0
        };
        let latency_us = base + tail + if status >= 500 { 500_000 } else { 0 };
        let access = HttpAccess {
            client_ip,
            user,
            method: method.to_owned(),
            path,
            protocol: "HTTP/1.1".to_owned(),
            status,
            bytes: (status != 204 && status != 304).then(|| self.rng.random_range(120..48_000u64)),
            referer: (self.rng.random_range(0..2u8) == 0).then(|| self.pick(REFERERS).to_owned()),
            user_agent: Some(self.pick(USER_AGENTS).to_owned()),
            latency_us: Some(latency_us),
        };
        let event = LogEvent {
            timestamp_ms,
            level: access.level(),
            service: profile.name.to_owned(),
            component: Some("access".to_owned()),
            host: Some(self.host.clone()),
            message: format!(
                "{} {} {} {} ms",
                access.method,
                access.path,
                status,
                latency_us / 1000
            ),
            trace_id: Some(self.hex(16)),
            span_id: Some(self.hex(8)),
            parent_id: None,
            attributes: Some(access.attributes()),
        };
        (event, access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[test]
    fn access_events_are_consistent_and_their_lines_parse_back() {
        let mut synth = Synthesizer::new(11, "web-1");
        let mut statuses = std::collections::HashSet::new();
        for i in 0..2_000 {
            let (event, access) = synth.next_access(1_700_000_000_000 + i * 1000);
            assert_eq!(event.level, access.level());
            let bytes = json::encode(&event).expect("encodes");
            assert_eq!(json::decode(&bytes).expect("decodes"), event);
            let mut line = Vec::new();
            crate::format::apache::encode_into(event.timestamp_ms, &access, &mut line);
            let parsed = crate::format::apache::parse(std::str::from_utf8(&line).expect("utf8"))
                .expect("parses");
            assert_eq!(parsed.access, access);
            assert_eq!(parsed.timestamp_ms, event.timestamp_ms);
            statuses.insert(access.status);
        }
        assert!(statuses.len() >= 10, "statuses seen: {statuses:?}");
    }

    #[test]
    fn look_alike_searches_are_not_attacks() {
        for search in LOOKALIKE_SEARCHES {
            let found = crate::detect::injection::inspect(&format!("/api/v1/products?q={search}"));
            assert!(!found.any(), "{search}: {found:?}");
        }
    }

    #[test]
    fn events_are_valid_and_varied() {
        let mut synth = Synthesizer::new(7, "h1");
        let mut services = std::collections::HashSet::new();
        let mut levels = std::collections::HashSet::new();
        for i in 0..2_000 {
            let event = synth.next_event(1_700_000_000_000 + i);
            let bytes = json::encode(&event).expect("encodes");
            assert_eq!(json::decode(&bytes).expect("decodes"), event);
            services.insert(event.service.clone());
            levels.insert(event.level);
        }
        assert_eq!(services.len(), SERVICES.len());
        assert!(levels.len() >= 5, "levels seen: {levels:?}");
    }

    #[test]
    fn level_weights_parse_and_bias() {
        let weights = parse_level_weights("INFO:0, error:1").expect("valid");
        let mut synth = Synthesizer::new(1, "h").with_levels(weights);
        assert!((0..100).all(|i| synth.next_event(i).level == Level::Error));
        assert!(parse_level_weights("INFO:x").is_err());
        assert!(parse_level_weights("INFO:0").is_err());
        assert!(parse_level_weights("LOUD:1").is_err());
    }

    #[test]
    fn weighted_pick_follows_weights() {
        let w = Weighted::new([("a", 1), ("b", 3)]).expect("valid");
        let mut rng = SmallRng::seed_from_u64(3);
        let b = (0..10_000).filter(|_| *w.pick(&mut rng) == "b").count();
        assert!((7_000..8_000).contains(&b), "b picked {b} times");
    }
}
