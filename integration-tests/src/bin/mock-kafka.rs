//! A Kafka cluster for the native stack's fault-injection runs: librdkafka's built-in mock
//! cluster (`rdkafka::mocking`) in a process of its own, so collectors can be killed and started
//! against it while it keeps every record. Unlike tansu 0.6 its group coordinator hands a dead or
//! departed member's partitions to the remaining ones, which the crash and rebalance tests need.
//! It keeps everything in memory and is for tests only.
//!
//!   mock-kafka BOOTSTRAP_FILE PARTITIONS TOPIC [TOPIC ...]
//!
//! Creates each TOPIC with PARTITIONS partitions, writes the cluster's bootstrap address to
//! BOOTSTRAP_FILE (written whole, then renamed into place) and runs until it is terminated.

use std::process::ExitCode;

use rdkafka::mocking::MockCluster;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock-kafka: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, partitions, topics @ ..] = args.as_slice() else {
        return Err("usage: mock-kafka BOOTSTRAP_FILE PARTITIONS TOPIC [TOPIC ...]".into());
    };
    let partitions: i32 = partitions
        .parse()
        .ok()
        .filter(|p| (1..=1000).contains(p))
        .ok_or_else(|| format!("PARTITIONS must be 1..=1000, not {partitions:?}"))?;
    if topics.is_empty() {
        return Err("name at least one TOPIC".into());
    }
    let cluster = MockCluster::new(1).map_err(|e| format!("cannot start the mock cluster: {e}"))?;
    for topic in topics {
        cluster
            .create_topic(topic, partitions, 1)
            .map_err(|e| format!("cannot create topic {topic}: {e}"))?;
    }
    let bootstrap = cluster.bootstrap_servers();
    let partial = format!("{file}.partial");
    std::fs::write(&partial, format!("{bootstrap}\n"))
        .and_then(|()| std::fs::rename(&partial, file))
        .map_err(|e| format!("cannot write {file}: {e}"))?;
    println!(
        "mock Kafka cluster on {bootstrap}: {} topic(s) with {partitions} partitions",
        topics.len()
    );
    // The cluster lives as long as this thread; SIGTERM or SIGINT ends the process.
    loop {
        std::thread::park();
    }
}
