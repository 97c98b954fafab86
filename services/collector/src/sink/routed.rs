//! Extra destinations of routed events, besides PostgreSQL: Kafka topics, NDJSON files, stdout.
//! A batch's routed events are sent (and Kafka's acknowledged, files flushed) before the batch
//! commits, so none is lost; a crash in between can repeat some (at least once), while
//! PostgreSQL stays exactly once. A routed event too large for Kafka is cut to fit, with
//! `route-truncated: true` and `route-original-size` headers.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::sync::Mutex;

use logstream_core::route::{Destination, Routing};
use logstream_service::kafka;
use logstream_service::sync::lock;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::messages::Routed;

enum Sink {
    Kafka(String),
    File(Mutex<BufWriter<File>>),
    Stdout,
    /// Reads the topic on its own (`crate::archive`): nothing comes with the batches.
    Archive,
}

pub struct RouteSinks {
    producer: Option<FutureProducer>,
    sinks: Vec<Sink>,
}

impl RouteSinks {
    /// Opens every route's destination (files in append mode, created when missing); fails with
    /// the setting's name.
    pub fn open(routing: &Routing, brokers: &str) -> anyhow::Result<Self> {
        let mut producer = None;
        let mut sinks = Vec::with_capacity(routing.routes.len());
        for route in &routing.routes {
            sinks.push(match &route.destination {
                Destination::Kafka(topic) => {
                    if producer.is_none() {
                        producer = Some(
                            kafka::acknowledged_config(brokers, "logstream-collector-routes")
                                .set("compression.type", "lz4")
                                .create::<FutureProducer>()
                                .map_err(|e| {
                                    anyhow::anyhow!(
                                    "cannot create route producer (LOGSTREAM_KAFKA_BROKERS): {e}"
                                )
                                })?,
                        );
                    }
                    Sink::Kafka(topic.clone())
                }
                Destination::File(path) => {
                    let file = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "LOGSTREAM_ROUTES: cannot open {path} for appending: {e}"
                            )
                        })?;
                    Sink::File(Mutex::new(BufWriter::new(file)))
                }
                Destination::Stdout => Sink::Stdout,
                Destination::S3 { .. } | Destination::Search { .. } => Sink::Archive,
            });
        }
        Ok(Self { producer, sinks })
    }

    /// Delivers every routed event: first to Kafka (all acknowledged), then to files (flushed)
    /// and stdout, so a retry after a Kafka failure has written no local line yet.
    pub async fn send_all(&self, routed: &[Routed]) -> Result<(), String> {
        let mut pending = Vec::new();
        for item in routed {
            if let (Some(Sink::Kafka(topic)), Some(producer)) =
                (self.sinks.get(item.route), &self.producer)
            {
                let (key, json, original) = kafka::fit(item.key.as_deref(), &item.json);
                let mut record: FutureRecord<'_, [u8], [u8]> =
                    FutureRecord::to(topic).payload(json);
                if let Some(original) = original {
                    let original = original.to_string();
                    record = record.headers(
                        OwnedHeaders::new_with_capacity(2)
                            .insert(Header {
                                key: "route-truncated",
                                value: Some("true"),
                            })
                            .insert(Header {
                                key: "route-original-size",
                                value: Some(original.as_str()),
                            }),
                    );
                }
                if let Some(key) = key {
                    record = record.key(key);
                }
                pending.push(
                    kafka::enqueue(producer, record)
                        .await
                        .map_err(|e| format!("routed event refused by {topic}: {e}"))?,
                );
            }
        }
        kafka::acknowledged(pending, "routed events").await?;

        let mut stdout = Vec::new();
        let mut touched = vec![false; self.sinks.len()];
        for item in routed {
            match self.sinks.get(item.route) {
                Some(Sink::File(file)) => {
                    let mut file = lock(file);
                    file.write_all(&item.json)
                        .and_then(|()| file.write_all(b"\n"))
                        .map_err(|e| format!("cannot append a routed event: {e}"))?;
                    touched[item.route] = true;
                }
                Some(Sink::Stdout) => {
                    stdout.extend_from_slice(&item.json);
                    stdout.push(b'\n');
                }
                _ => {}
            }
        }
        for (sink, touched) in self.sinks.iter().zip(touched) {
            if let (Sink::File(file), true) = (sink, touched) {
                lock(file)
                    .flush()
                    .map_err(|e| format!("cannot flush a route file: {e}"))?;
            }
        }
        if !stdout.is_empty() {
            let mut out = std::io::stdout().lock();
            out.write_all(&stdout)
                .and_then(|()| out.flush())
                .map_err(|e| format!("cannot write routed events to stdout: {e}"))?;
        }
        Ok(())
    }
}
