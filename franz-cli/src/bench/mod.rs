//! `franz bench`: load generators that measure throughput and latency of any
//! Kafka-compatible broker through the Rust client library.
//!
//! Progress lines and the summary go to stderr; the last line on stdout is the result as
//! one JSON object, for scripts.

mod consume;
mod e2e;
mod produce;
mod stats;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use franz_net::client::admin::Admin;
use franz_net::client::Cluster;

use crate::produce::{parse_acks, parse_compression};

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Produces messages as fast as possible or at a fixed rate and reports throughput and
    /// acknowledgement latency.
    Produce(produce::ProduceBenchArgs),
    /// Reads a topic from the beginning with one or more consumers and reports throughput.
    Consume(consume::ConsumeBenchArgs),
    /// Produces at a fixed rate while consuming and reports end-to-end latency, from the
    /// send time carried in each message to its arrival at the consumer.
    E2e(e2e::EndToEndArgs),
}

pub async fn run(cluster: Arc<Cluster>, command: BenchCommand) -> Result<(), String> {
    match command {
        BenchCommand::Produce(args) => produce::run(cluster, args).await,
        BenchCommand::Consume(args) => consume::run(cluster, args).await,
        BenchCommand::E2e(args) => e2e::run(cluster, args).await,
    }
}

/// The topic a benchmark uses, and how to create it when it does not exist.
#[derive(clap::Args, Debug, Clone)]
pub struct TopicArgs {
    /// Topic to use.
    #[arg(short, long, default_value = "franz-bench")]
    topic: String,
    /// Partitions of the topic when the benchmark creates it.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// A topic setting for the benchmark to create the topic with, as KEY=VALUE, for
    /// example flush.messages=1. Repeatable. Ignored when the topic exists.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
}

/// Creates the benchmark's topic unless it exists, and returns its partition count.
async fn ensure_topic(cluster: &Arc<Cluster>, args: &TopicArgs) -> Result<i32, String> {
    let admin = Admin::new(cluster.clone());
    if let Ok(topic) = admin.describe_topic(&args.topic).await {
        eprintln!(
            "using the existing topic {} with {} partitions; --partitions and --config apply only to a new topic",
            args.topic,
            topic.partitions.len()
        );
        return Ok(topic.partitions.len() as i32);
    }
    let mut configs = BTreeMap::new();
    for setting in &args.configs {
        let Some((key, value)) = setting.split_once('=') else {
            return Err(format!(
                "invalid --config {setting:?}: write KEY=VALUE, for example flush.messages=1"
            ));
        };
        configs.insert(key.to_string(), value.to_string());
    }
    admin
        .create_topic(&args.topic, args.partitions, &configs)
        .await
        .map_err(|error| format!("creating the topic {} failed: {error}", args.topic))?;
    let noun = if args.partitions == 1 {
        "partition"
    } else {
        "partitions"
    };
    eprintln!("created the topic {} with {} {noun}", args.topic, args.partitions);
    Ok(args.partitions)
}

/// How late tokio's timer may wake a task: it counts in whole milliseconds.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Sleeps until a message's slot in a fixed-rate schedule and returns the time its
/// latency counts from. That is the wake-up time when the timer woke within its slack,
/// so the timer's granularity is not counted as the broker's latency. When the sender fell
/// further behind, it is the slot itself, so that a stalled sender counts against the
/// latency instead of hiding it (no coordinated omission).
async fn wait_for_slot(slot: tokio::time::Instant) -> tokio::time::Instant {
    tokio::time::sleep_until(slot).await;
    let woke = stats::now();
    if woke.saturating_duration_since(slot) <= TIMER_SLACK {
        woke
    } else {
        slot
    }
}

/// Parses a benchmark's run time, such as `30s`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("invalid duration {text:?}: {error}; write for example 30s"))
}

/// Returns a payload of `size` bytes: each byte is one of 64 printable characters drawn
/// from a fixed sequence. Every message of a run carries the same payload, so compression
/// finds the repeats between messages and does better than on real data.
fn payload(size: usize) -> Bytes {
    const ALPHABET: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            // xorshift64: a fixed, cheap sequence, the same in every run.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % 64) as usize]
        })
        .collect();
    Bytes::from(bytes)
}
