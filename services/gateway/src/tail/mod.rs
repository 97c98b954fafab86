//! The live tail (`GET /api/v1/tail`): events as they are read from Kafka's `logs.raw`, not as
//! stored. Read from Kafka because that is where every event passes first: a tail shows it as
//! soon as it is published (a stored row waits for its batch's commit), costs PostgreSQL nothing
//! however many tails follow, and keeps working while the collector is behind or down. The price:
//! an event shown may still be dropped by a filter rule or dead-lettered by the collector (a
//! record the tail cannot read as an event is not shown; the collector dead-letters it).
//!
//! `feed` reads the topic (only while someone follows) and hands each event to the `hub`, which
//! gives it to every follower whose filters it matches without ever waiting for one: a follower
//! whose buffer is full skips events and is told how many before the next one it gets.

pub mod feed;
pub mod hub;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use hub::{Hub, TailMetrics};

/// The hub, and the feed that reads for it (while anyone follows) until `shutdown`.
pub fn start(config: &Config, metrics: TailMetrics, shutdown: CancellationToken) -> Arc<Hub> {
    let hub = Hub::new(
        config.tail_max_clients as usize,
        config.tail_buffer as usize,
        metrics,
    );
    let source = feed::Source {
        brokers: config.kafka.kafka_brokers.clone(),
        topic: config.kafka.topic_raw.clone(),
    };
    tokio::spawn(feed::run(hub.clone(), source, shutdown));
    hub
}
