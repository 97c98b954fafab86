//! The generator control API's JSON types, shared by the generator (which serves them) and the
//! gateway (which forwards and aggregates them). A [`StartRequest`] is validated once into
//! [`GeneratorSettings`]; errors name the offending field.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::Level;
use crate::format::{self, Format};
use crate::scenario::{self, Episode, Kind, Schedule};
use crate::synth::parse_level_weights;
use crate::weighted::Weighted;

/// Prefix of the Redis keys generator instances register under (`<prefix><instance-id>` = URL);
/// the generator writes them, the gateway scans them.
pub const GENERATOR_REGISTRY_PREFIX: &str = "logstream:generators:";

/// Highest rate one start request may ask for.
pub const MAX_RATE_PER_SECOND: u64 = 5_000_000;
/// Longest run one start request may ask for (one week).
pub const MAX_DURATION_SECONDS: u64 = 7 * 24 * 3600;

/// Body of `POST /api/v1/generator/start`. Every field is optional.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
    /// One scenario for the whole run (shorthand for a one-entry `scenarios`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// Scenarios scheduled within the run, each with its own start and duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenarios: Option<Vec<ScenarioRequest>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formats: Option<BTreeMap<String, u32>>,
    /// Level mix as `INFO:70,WARN:20,ERROR:10`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_weights: Option<String>,
    /// Cap on the events per second of all instances together, enforced through Redis
    /// (default: the instance's LOGSTREAM_GLOBAL_RATE_PER_SECOND; none when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_rate_per_second: Option<u64>,
    /// Generation threads per instance (1..=64; default: the instance's LOGSTREAM_THREADS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// Events a thread generates between clock checks (1..=100000; default: the instance's
    /// LOGSTREAM_BATCH_SIZE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
}

/// One scheduled scenario of a start request.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioRequest {
    /// `steady`, `spike`, `error_burst` or `attack`.
    pub name: String,
    /// Seconds after the start of the run (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_seconds: Option<u64>,
    /// How long it lasts (default: until the run ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
    /// `error_burst`: the service whose errors jump (default `payments`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `spike`: the rate multiplier, 1 to 100 (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// `error_burst`: share of the service's events that become errors (default 0.5);
    /// `attack`: share of all events that are attack requests (default 0.2). Above 0, at most 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
}

impl ScenarioRequest {
    fn episode(&self, id: u32, field: &str) -> Result<Episode, FieldError> {
        let bad = |name: &str, message: String| FieldError::new(format!("{field}.{name}"), message);
        let share = |default: f64| match self.share {
            None => Ok(default),
            Some(s) if s > 0.0 && s <= 1.0 => Ok(s),
            Some(s) => Err(bad(
                "share",
                format!("must be above 0 and at most 1, got {s}"),
            )),
        };
        let kind = match self.name.as_str() {
            "steady" => Kind::Steady,
            "spike" => match self.factor {
                None => Kind::Spike { factor: 10.0 },
                Some(f) if (1.0..=100.0).contains(&f) => Kind::Spike { factor: f },
                Some(f) => return Err(bad("factor", format!("must be from 1 to 100, got {f}"))),
            },
            "error_burst" => Kind::ErrorBurst {
                service: match &self.service {
                    None => "payments".to_owned(),
                    Some(s) if !s.is_empty() && s.len() <= crate::json::MAX_SERVICE_LEN => {
                        s.clone()
                    }
                    Some(_) => return Err(bad("service", "must be 1 to 256 bytes".into())),
                },
                share: share(0.5)?,
            },
            "attack" => Kind::Attack { share: share(0.2)? },
            other => {
                return Err(bad(
                    "name",
                    format!(
                        "unknown scenario {other:?}; available: {}",
                        scenario::NAMES.join(", ")
                    ),
                ))
            }
        };
        let start = Duration::from_secs(self.start_seconds.unwrap_or(0).min(MAX_DURATION_SECONDS));
        let end = match self.duration_seconds {
            None => None,
            Some(d) if (1..=MAX_DURATION_SECONDS).contains(&d) => {
                Some(start + Duration::from_secs(d))
            }
            Some(d) => {
                return Err(bad(
                    "duration_seconds",
                    format!("must be between 1 and {MAX_DURATION_SECONDS} or null, got {d}"),
                ))
            }
        };
        Ok(Episode {
            id,
            kind,
            start,
            end,
        })
    }
}

/// A request field that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Validated generation settings.
#[derive(Debug, Clone)]
pub struct GeneratorSettings {
    pub rate_per_second: u64,
    pub duration: Option<Duration>,
    pub levels: Option<Weighted<Level>>,
    /// Format mix; `None` is JSON only.
    pub formats: Option<Weighted<Format>>,
    pub schedule: Schedule,
    /// `None`: the instance's default.
    pub global_rate: Option<u64>,
    /// `None`: the instance's default.
    pub threads: Option<u32>,
    /// `None`: the instance's default.
    pub batch_size: Option<u32>,
}

/// Most generation threads per instance.
pub const MAX_THREADS: u32 = 64;
/// Largest batch between clock checks.
pub const MAX_BATCH_SIZE: u32 = 100_000;

/// An optional field that, when given, must be from 1 to `max`.
fn within(field: &str, value: Option<u64>, max: u64) -> Result<(), FieldError> {
    match value {
        Some(v) if !(1..=max).contains(&v) => Err(FieldError::new(
            field,
            format!("must be between 1 and {max}, got {v}"),
        )),
        _ => Ok(()),
    }
}

impl StartRequest {
    /// Parses a request body; an empty body is the default request.
    pub fn from_json(body: &[u8]) -> Result<Self, FieldError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        serde_json::from_slice(body).map_err(|e| {
            let text = e.to_string();
            let field = text
                .split('`')
                .nth(1)
                .filter(|_| text.starts_with("unknown field"))
                .unwrap_or("body");
            FieldError::new(field, text.clone())
        })
    }

    /// Checks every field; `default_rate` applies when no rate is given.
    pub fn validate(&self, default_rate: u64) -> Result<GeneratorSettings, FieldError> {
        let rate_per_second = self.rate_per_second.unwrap_or(default_rate);
        if !(1..=MAX_RATE_PER_SECOND).contains(&rate_per_second) {
            return Err(FieldError::new(
                "rate_per_second",
                format!("must be between 1 and {MAX_RATE_PER_SECOND}, got {rate_per_second}"),
            ));
        }
        let duration = match self.duration_seconds {
            None => None,
            Some(s) if (1..=MAX_DURATION_SECONDS).contains(&s) => Some(Duration::from_secs(s)),
            Some(s) => {
                return Err(FieldError::new(
                    "duration_seconds",
                    format!("must be between 1 and {MAX_DURATION_SECONDS} or null, got {s}"),
                ))
            }
        };
        let mut episodes = Vec::new();
        if let Some(name) = &self.scenario {
            let whole_run = ScenarioRequest {
                name: name.clone(),
                ..Default::default()
            };
            let episode = whole_run.episode(1, "scenario").map_err(|mut e| {
                e.field = "scenario".into();
                e
            })?;
            episodes.push(episode);
        }
        for (i, request) in self.scenarios.iter().flatten().enumerate() {
            let id = episodes.len() as u32 + 1;
            episodes.push(request.episode(id, &format!("scenarios[{i}]"))?);
        }
        let formats = match &self.formats {
            None => None,
            Some(mix) => Some(format::weights(mix).map_err(|e| FieldError::new("formats", e))?),
        };
        let levels = match &self.level_weights {
            None => None,
            Some(text) => {
                Some(parse_level_weights(text).map_err(|e| FieldError::new("level_weights", e))?)
            }
        };
        within("threads", self.threads.map(u64::from), MAX_THREADS.into())?;
        within(
            "batch_size",
            self.batch_size.map(u64::from),
            MAX_BATCH_SIZE.into(),
        )?;
        within(
            "global_rate_per_second",
            self.global_rate_per_second,
            MAX_RATE_PER_SECOND,
        )?;
        Ok(GeneratorSettings {
            global_rate: self.global_rate_per_second,
            threads: self.threads,
            batch_size: self.batch_size,
            formats,
            schedule: Schedule { episodes },
            rate_per_second,
            duration,
            levels,
        })
    }
}

/// Circuit breaker state as reported in status.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    #[default]
    Closed,
    HalfOpen,
    Open,
}

/// Generation counters, of one instance or summed over all. Totals count since each instance
/// started; the `seq` values an instance has used are exactly `1..=generated_total`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub running: bool,
    pub target_rate: u64,
    pub current_rate: f64,
    pub generated_total: u64,
    pub sent_total: u64,
    pub failed_total: u64,
    pub rate_limited_total: u64,
    /// Handed to Kafka, neither acknowledged nor failed yet.
    pub in_flight: u64,
    pub circuit_breaker_state: BreakerState,
}

impl Counters {
    /// Adds another instance's counters; the breaker reads as the worse of the two.
    pub fn add(&mut self, other: &Counters) {
        self.running |= other.running;
        self.target_rate += other.target_rate;
        self.current_rate += other.current_rate;
        self.generated_total += other.generated_total;
        self.sent_total += other.sent_total;
        self.failed_total += other.failed_total;
        self.rate_limited_total += other.rate_limited_total;
        self.in_flight += other.in_flight;
        self.circuit_breaker_state = worst(self.circuit_breaker_state, other.circuit_breaker_state);
    }
}

/// Status of one generator instance.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub instance_id: String,
    /// Where the global rate cap is enforced: `redis`, or `local` while Redis is unreachable;
    /// absent when no cap is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limiter: Option<String>,
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub counters: Counters,
}

/// Status over all instances, as the gateway answers it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub counters: Counters,
    pub instances: Vec<InstanceStatus>,
    /// Instances that did not answer, with the error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable: Vec<Unreachable>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreachable {
    pub url: String,
    pub error: String,
}

impl ClusterStatus {
    /// Sums instances; the breaker reads as the worst state of any instance.
    pub fn aggregate(instances: Vec<InstanceStatus>, unreachable: Vec<Unreachable>) -> Self {
        let mut counters = Counters::default();
        for instance in &instances {
            counters.add(&instance.counters);
        }
        ClusterStatus {
            counters,
            instances,
            unreachable,
        }
    }
}

fn worst(a: BreakerState, b: BreakerState) -> BreakerState {
    use BreakerState::*;
    match (a, b) {
        (Open, _) | (_, Open) => Open,
        (HalfOpen, _) | (_, HalfOpen) => HalfOpen,
        _ => Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_body_is_default() {
        let settings = StartRequest::from_json(b" ")
            .expect("ok")
            .validate(1000)
            .expect("ok");
        assert_eq!(settings.rate_per_second, 1000);
        assert!(settings.duration.is_none());
    }

    #[test]
    fn scenarios_become_a_schedule() {
        let settings = StartRequest::from_json(
            br#"{"scenario": "attack", "scenarios": [{"name": "spike", "start_seconds": 10, "duration_seconds": 5, "factor": 4}, {"name": "error_burst", "service": "orders"}]}"#,
        )
        .and_then(|r| r.validate(100))
        .expect("valid");
        let e = &settings.schedule.episodes;
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].kind, Kind::Attack { share: 0.2 });
        assert_eq!(
            (e[1].id, e[1].start, e[1].end),
            (2, Duration::from_secs(10), Some(Duration::from_secs(15)))
        );
        assert_eq!(e[1].kind, Kind::Spike { factor: 4.0 });
        assert_eq!(
            e[2].kind,
            Kind::ErrorBurst {
                service: "orders".into(),
                share: 0.5
            }
        );
    }

    #[test]
    fn errors_name_the_field() {
        let err = |body: &str| {
            StartRequest::from_json(body.as_bytes())
                .and_then(|r| r.validate(1000).map(|_| ()))
                .expect_err("rejected")
                .field
        };
        assert_eq!(err(r#"{"rate_per_second": 0}"#), "rate_per_second");
        assert_eq!(err(r#"{"duration_seconds": 0}"#), "duration_seconds");
        assert_eq!(err(r#"{"scenario": "chaos"}"#), "scenario");
        assert_eq!(
            err(r#"{"scenarios": [{"name": "spike"}, {"name": "spike", "factor": 1000}]}"#),
            "scenarios[1].factor"
        );
        assert_eq!(
            err(r#"{"scenarios": [{"name": "attack", "share": 0}]}"#),
            "scenarios[0].share"
        );
        assert_eq!(
            err(r#"{"scenarios": [{"name": "x"}]}"#),
            "scenarios[0].name"
        );
        assert_eq!(err(r#"{"formats": {"xml": 1}}"#), "formats");
        assert_eq!(err(r#"{"level_weights": "INFO:x"}"#), "level_weights");
        assert_eq!(err(r#"{"rate": 5}"#), "rate");
        assert_eq!(err(r#"{"threads": 0}"#), "threads");
        assert_eq!(
            err(r#"{"global_rate_per_second": 0}"#),
            "global_rate_per_second"
        );
        assert_eq!(err(r#"{"batch_size": 1000000}"#), "batch_size");
        assert_eq!(err(r#"{"rate_per_second": "fast"}"#), "body");
    }

    #[test]
    fn aggregate_sums_and_takes_worst_breaker() {
        let a = InstanceStatus {
            counters: Counters {
                sent_total: 3,
                running: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let b = InstanceStatus {
            counters: Counters {
                sent_total: 4,
                circuit_breaker_state: BreakerState::Open,
                ..Default::default()
            },
            ..Default::default()
        };
        let s = ClusterStatus::aggregate(vec![a, b], vec![]);
        assert_eq!(s.counters.sent_total, 7);
        assert!(s.counters.running);
        assert_eq!(s.counters.circuit_breaker_state, BreakerState::Open);
        // Flattened: the JSON keeps the design's shape.
        let json = serde_json::to_value(&s).expect("serialises");
        assert_eq!(json["sent_total"], 7);
        assert_eq!(json["instances"][0]["sent_total"], 3);
        let back: ClusterStatus = serde_json::from_value(json).expect("parses");
        assert_eq!(back, s);
    }
}
