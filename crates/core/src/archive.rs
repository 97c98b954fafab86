//! The S3 archive's layout, pure: which object an archived event goes into, the NDJSON line it
//! becomes, and the segment of a partition's offsets an upload covers.
//!
//! An archive reads the topic at its own pace and cuts each partition into **segments**: spans
//! of consecutive offsets, closed by size or age. A segment's events go into one object per
//! (hour of event time, service), each named by the partition and the segment's offset span:
//!
//! ```text
//! PREFIX/dt=2026-12-04/hour=19/service=orders/logs.raw-2-00000000000000001200-00000000000000004711.ndjson.zst
//! ```
//!
//! A segment's span is recorded in PostgreSQL before its objects are uploaded, so after a crash
//! the next owner closes the segment at the same offset: the same objects, under the same keys,
//! with the same lines (an upload again overwrites, it never adds). An object is either whole
//! or absent (S3 writes objects whole), so the archive holds every routed event exactly once.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Timelike};
use serde::Serialize;

/// Where an archived event came from: written into its line, so the archive can be checked
/// against the topic and the database.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Provenance<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

/// The archived line of an event: its JSON form (an object) with a `kafka` member holding
/// `provenance` appended, on one line (attributes keep the whitespace they came with, and a
/// raw line break can only be whitespace between JSON tokens: it becomes a space). None when
/// `event_json` is not an object.
pub fn line(event_json: &[u8], provenance: &Provenance<'_>) -> Option<Vec<u8>> {
    let body = event_json.strip_suffix(b"}")?;
    if !event_json.starts_with(b"{") {
        return None;
    }
    let mut out = Vec::with_capacity(event_json.len() + 96);
    out.extend(
        body.iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
    );
    out.extend_from_slice(if body.len() > 1 {
        b",\"kafka\":"
    } else {
        b"\"kafka\":"
    });
    serde_json::to_writer(&mut out, provenance).ok()?;
    out.push(b'}');
    Some(out)
}

/// `text` made safe as one segment of an object key: bytes other than ASCII letters, digits,
/// `.`, `_` and `-` become `_` (at most 100 bytes; `_` when empty).
pub fn key_segment(text: &str) -> String {
    let safe: String = text
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() || safe == "." || safe == ".." {
        "_".to_owned()
    } else {
        safe
    }
}

/// A closed span of one partition's offsets, `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub partition: i32,
    pub first: i64,
    pub last: i64,
}

const HOUR_MS: i64 = 3_600_000;

/// Most objects a segment is written as: past it, further services' events share one object
/// per hour under `service=_other` (100,000 service names must not make 100,000 uploads).
pub const MAX_OBJECTS: usize = 100;

/// The service key of the shared object.
pub const OTHER_SERVICES: &str = "_other";

/// The key of the object holding a segment's events of one hour (`hour` in hours since the
/// epoch) and one service (already a [`key_segment`]).
pub fn object_key(prefix: &str, topic: &str, span: Span, hour: i64, service: &str) -> String {
    let (date, hh) = match DateTime::from_timestamp_millis(hour.saturating_mul(HOUR_MS)) {
        Some(t) => (
            format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day()),
            t.hour(),
        ),
        None => ("invalid".to_owned(), 0),
    };
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    format!(
        "{prefix}dt={date}/hour={hh:02}/service={service}/{}-{}-{:020}-{:020}.ndjson.zst",
        key_segment(topic),
        span.partition,
        span.first,
        span.last
    )
}

/// The daily index of events at `day` (days since the epoch): `PREFIX-YYYY.MM.DD`.
pub fn index_name(prefix: &str, day: i64) -> String {
    match DateTime::from_timestamp_millis(day.saturating_mul(DAY_MS)) {
        Some(t) => format!("{prefix}-{:04}.{:02}.{:02}", t.year(), t.month(), t.day()),
        None => format!("{prefix}-invalid"),
    }
}

const DAY_MS: i64 = 86_400_000;

/// How a segment's events are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Objects of an S3 archive: one per hour of event time and service.
    Archive,
    /// A search cluster's daily indices: one group per day of event time.
    DailyIndex,
}

/// One object of a closed segment: its key (an object key, or an index name), its NDJSON
/// lines, how many, and the offset of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub ndjson: Vec<u8>,
    pub events: u64,
    pub offsets: Vec<i64>,
}

/// When a partition's open segment closes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Closed once its lines reach this many bytes (uncompressed).
    pub max_bytes: usize,
    /// Closed once its first record is this old (ms of the collector's clock).
    pub max_age_ms: i64,
    /// The largest open segment is closed early once all partitions' open segments together
    /// hold this many bytes (memory stays bounded however many partitions are read).
    pub max_open_bytes: usize,
}

/// The open segment of one partition: the span consumed so far, and its archived lines grouped
/// by object.
#[derive(Debug, Clone)]
pub struct Segment {
    layout: Layout,
    partition: i32,
    /// The first offset of the span (where the archive's progress stands).
    first: i64,
    /// The last offset consumed into it (None: nothing yet).
    last: Option<i64>,
    opened_at_ms: i64,
    bytes: usize,
    events: u64,
    /// Lines (and their offsets) by (hour since the epoch, service key segment), or by (day
    /// since the epoch, "").
    objects: BTreeMap<(i64, String), (Vec<u8>, Vec<i64>)>,
}

impl Segment {
    /// An empty segment of `partition` starting at offset `first`.
    pub fn new(layout: Layout, partition: i32, first: i64) -> Self {
        Self {
            layout,
            partition,
            first,
            last: None,
            opened_at_ms: 0,
            bytes: 0,
            events: 0,
            objects: BTreeMap::new(),
        }
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The offset the next record must have at least (records below it are read again).
    pub fn next_offset(&self) -> i64 {
        self.last.map_or(self.first, |l| l + 1)
    }

    /// Counts a consumed record in the span without archiving anything of it (not routed here,
    /// or not an event).
    pub fn skip(&mut self, offset: i64, now_ms: i64) {
        if self.last.is_none() {
            self.opened_at_ms = now_ms;
        }
        self.last = Some(offset);
    }

    /// Adds the archived `line` of the record at `offset`, an event of `service` at
    /// `event_time_ms`.
    pub fn push(
        &mut self,
        offset: i64,
        now_ms: i64,
        event_time_ms: i64,
        service: &str,
        line: &[u8],
    ) {
        self.skip(offset, now_ms);
        let mut key = match self.layout {
            Layout::Archive => (event_time_ms.div_euclid(HOUR_MS), key_segment(service)),
            Layout::DailyIndex => (event_time_ms.div_euclid(DAY_MS), String::new()),
        };
        if self.objects.len() >= MAX_OBJECTS && !self.objects.contains_key(&key) {
            key.1 = OTHER_SERVICES.to_owned();
        }
        let (lines, offsets) = self.objects.entry(key).or_default();
        lines.extend_from_slice(line);
        lines.push(b'\n');
        offsets.push(offset);
        self.bytes += line.len() + 1;
        self.events += 1;
    }

    /// The span consumed so far (None: no record yet).
    pub fn span(&self) -> Option<Span> {
        self.last.map(|last| Span {
            partition: self.partition,
            first: self.first,
            last,
        })
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the segment is due to close by size or age (never while empty).
    pub fn is_due(&self, now_ms: i64, limits: Limits) -> bool {
        self.last.is_some()
            && (self.bytes >= limits.max_bytes || now_ms - self.opened_at_ms >= limits.max_age_ms)
    }

    /// Closes the segment: its span and objects, and the empty segment that follows it.
    pub fn close(self, prefix: &str, topic: &str) -> Option<(Span, Vec<Object>, Segment)> {
        let span = self.span()?;
        let objects = self
            .objects
            .into_iter()
            .map(|((time, service), (ndjson, offsets))| Object {
                key: match self.layout {
                    Layout::Archive => object_key(prefix, topic, span, time, &service),
                    Layout::DailyIndex => index_name(prefix, time),
                },
                ndjson,
                events: offsets.len() as u64,
                offsets,
            })
            .collect();
        Some((
            span,
            objects,
            Segment::new(self.layout, self.partition, span.last + 1),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Provenance<'static> = Provenance {
        topic: "logs.raw",
        partition: 2,
        offset: 41,
        instance_id: Some("gen \"1\""),
        seq: Some(7),
    };

    #[test]
    fn a_line_stays_one_line_when_the_event_json_spans_several() {
        let line = line(
            b"{\"attributes\":{\r\n \"k\": 1\n},\"message\":\"a\\nb\"}",
            &P,
        )
        .expect("object");
        assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
        let value: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(value["attributes"]["k"], 1);
        assert_eq!(value["message"], "a\nb");
    }

    #[test]
    fn a_line_is_the_event_with_its_provenance() {
        let line = line(br#"{"level":"INFO","message":"m"}"#, &P).expect("object");
        let value: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(value["message"], "m");
        assert_eq!(value["kafka"]["partition"], 2);
        assert_eq!(value["kafka"]["offset"], 41);
        assert_eq!(value["kafka"]["instance_id"], "gen \"1\"");
        assert_eq!(value["kafka"]["seq"], 7);
        let empty = super::line(b"{}", &P).expect("object");
        assert!(serde_json::from_slice::<serde_json::Value>(&empty).is_ok());
        assert_eq!(super::line(b"[1]", &P), None);
    }

    #[test]
    fn keys_are_laid_out_by_hour_and_service_and_named_by_span() {
        let span = Span {
            partition: 2,
            first: 1200,
            last: 4711,
        };
        // 2026-12-04T19:00:00Z
        let hour = 1_796_410_800_000 / HOUR_MS;
        assert_eq!(
            object_key("raw", "logs.raw", span, hour, "orders"),
            "raw/dt=2026-12-04/hour=19/service=orders/logs.raw-2-00000000000000001200-00000000000000004711.ndjson.zst"
        );
        assert!(object_key("", "logs.raw", span, hour, "x").starts_with("dt=2026-12-04/"));
        assert_eq!(key_segment("a/b c..é"), "a_b_c.._");
        assert_eq!(key_segment(".."), "_");
        assert_eq!(key_segment(""), "_");
    }

    #[test]
    fn a_segment_groups_lines_by_object_and_closes_by_size_or_age() {
        let limits = Limits {
            max_bytes: 64,
            max_age_ms: 1_000,
            max_open_bytes: 1 << 20,
        };
        let mut s = Segment::new(Layout::Archive, 0, 10);
        assert!(!s.is_due(1_000_000, limits), "never due while empty");
        s.push(10, 5_000, 0, "a/b", b"{\"n\":1}");
        s.skip(11, 5_100);
        s.push(12, 5_200, HOUR_MS + 1, "a/b", b"{\"n\":2}");
        s.push(13, 5_300, 1, "a_b", b"{\"n\":3}");
        assert!(!s.is_due(5_999, limits));
        assert!(s.is_due(6_000, limits), "due by age from the first record");
        assert_eq!(s.next_offset(), 14);
        let (span, objects, next) = s.close("p", "t").expect("records");
        assert_eq!(
            span,
            Span {
                partition: 0,
                first: 10,
                last: 13
            }
        );
        assert_eq!(objects.len(), 2, "{objects:?}");
        assert_eq!(objects[0].ndjson, b"{\"n\":1}\n{\"n\":3}\n");
        assert_eq!(objects[0].events, 2);
        assert!(objects[1].key.contains("hour=01/service=a_b/t-0-"));
        assert_eq!(next.next_offset(), 14);
        assert!(next.span().is_none());
        let mut many = Segment::new(Layout::Archive, 2, 0);
        for i in 0..(MAX_OBJECTS as i64 + 50) {
            many.push(i, 0, 0, &format!("service-{i}"), b"{}");
        }
        let (_, objects, _) = many.close("p", "t").expect("records");
        assert_eq!(
            objects.len(),
            MAX_OBJECTS + 1,
            "capped, plus the shared object"
        );
        let other = objects
            .iter()
            .find(|o| o.key.contains("service=_other/"))
            .expect("shared object");
        assert_eq!(other.events, 50);
        let mut big = Segment::new(Layout::Archive, 1, 0);
        big.push(0, 0, 0, "s", &[b'x'; 64]);
        assert!(big.is_due(0, limits), "due by size");
        let mut daily = Segment::new(Layout::DailyIndex, 3, 0);
        daily.push(0, 0, 1_796_410_800_000, "a", b"{}");
        daily.push(1, 0, 1_796_410_800_000 + HOUR_MS, "b", b"{}");
        daily.push(2, 0, 1_796_410_800_000 + DAY_MS, "a", b"{}");
        let (_, objects, _) = daily.close("logstream", "t").expect("records");
        let keys: Vec<_> = objects
            .iter()
            .map(|o| (o.key.as_str(), o.offsets.clone()))
            .collect();
        assert_eq!(
            keys,
            [
                ("logstream-2026.12.04", vec![0, 1]),
                ("logstream-2026.12.05", vec![2])
            ]
        );
    }
}
