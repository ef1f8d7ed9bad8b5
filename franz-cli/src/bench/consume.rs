//! `franz bench consume`: how fast consumers read a topic from its beginning.
//!
//! The topic's partitions are dealt out to the consumers in turn. Each consumer reads its
//! partitions from the log start offset up to the end offsets they had when the benchmark
//! started, so a run measures reading what is stored, not waiting for new messages.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use franz_net::client::admin::Admin;
use franz_net::client::consumer::{Consumer, ConsumerConfig, OffsetReset};
use franz_net::client::Cluster;
use serde_json::json;

use super::stats::{now, Stats};

/// The log end offset, as ListOffsets names it.
const LATEST: i64 = -1;
/// How long one poll waits for records before the consumer checks whether it is done.
const POLL_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(clap::Args, Debug, Clone)]
pub struct ConsumeBenchArgs {
    /// Topic to read.
    #[arg(short, long, default_value = "franz-bench")]
    topic: String,
    /// Consumers, each with its own connections and its own share of the partitions.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Stop after this many messages in all [default: everything stored when the run starts].
    #[arg(long)]
    count: Option<u64>,
    /// Largest bytes one fetch returns per partition.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_partition_fetch_bytes: i32,
}

pub async fn run(cluster: Arc<Cluster>, args: ConsumeBenchArgs) -> Result<(), String> {
    if args.consumers == 0 {
        return Err("--consumers must be at least 1".to_string());
    }
    let admin = Admin::new(cluster.clone());
    let end_offsets = admin.list_offsets(&args.topic, LATEST).await.map_err(|error| {
        format!(
            "reading the end offsets of {} failed: {error}; fill it first with `franz bench produce -t {}`",
            args.topic, args.topic
        )
    })?;
    if end_offsets.is_empty() {
        return Err(format!(
            "topic {} has no partitions; run `franz bench produce` first",
            args.topic
        ));
    }

    let stats = Stats::new();
    let progress = stats.spawn_progress("consume");
    let started = now();
    let mut tasks = Vec::new();
    for index in 0..args.consumers {
        let share: BTreeMap<i32, i64> = end_offsets
            .iter()
            .filter(|(partition, _)| **partition as usize % args.consumers == index)
            .map(|(partition, end)| (*partition, *end))
            .collect();
        if share.is_empty() {
            continue;
        }
        let cluster = Cluster::connect(cluster.config().clone())
            .await
            .map_err(|error| format!("connecting consumer {index} failed: {error}"))?;
        tasks.push(tokio::spawn(read_share(cluster, args.clone(), share, stats.clone())));
    }
    for task in tasks {
        task.await
            .map_err(|error| format!("a consumer task failed: {error}"))??;
    }
    let elapsed = started.elapsed();
    progress.abort();

    stats.summary(elapsed).print(
        "consume",
        None,
        json!({
            "topic": args.topic,
            "partitions": end_offsets.len(),
            "consumers": args.consumers,
            "max_partition_fetch_bytes": args.max_partition_fetch_bytes,
            "count": args.count,
        }),
    );
    Ok(())
}

/// Reads the partitions of `share` up to their end offsets, or until the whole benchmark
/// has read `--count` messages.
async fn read_share(
    cluster: Arc<Cluster>,
    args: ConsumeBenchArgs,
    share: BTreeMap<i32, i64>,
    stats: Stats,
) -> Result<(), String> {
    let config = ConsumerConfig {
        offset_reset: OffsetReset::Earliest,
        auto_commit: false,
        max_partition_fetch_bytes: args.max_partition_fetch_bytes,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(cluster, config);
    let assignment: Vec<(String, i32)> = share.keys().map(|partition| (args.topic.clone(), *partition)).collect();
    consumer.assign(&assignment);

    loop {
        let done = share.iter().all(|(partition, end)| {
            consumer
                .position(&args.topic, *partition)
                .is_some_and(|position| position >= *end)
        });
        if done || args.count.is_some_and(|count| stats.messages() >= count) {
            return Ok(());
        }
        let mut messages = consumer
            .poll(POLL_TIMEOUT)
            .await
            .map_err(|error| format!("polling {} failed: {error}", args.topic))?;
        if let Some(count) = args.count {
            // A poll returns up to a fetch's worth; only what --count allows is counted.
            let allowed = count.saturating_sub(stats.messages());
            messages.truncate(allowed.min(messages.len() as u64) as usize);
        }
        let bytes: usize = messages
            .iter()
            .map(|message| {
                message.record.key.as_ref().map_or(0, |key| key.len())
                    + message.record.value.as_ref().map_or(0, |value| value.len())
            })
            .sum();
        stats.record(messages.len() as u64, bytes as u64);
    }
}
